/* fuzz_image.c - libFuzzer harness for fv_image_decode, fv_image_probe and JPEG regions.
 *
 * The limits are the production defaults (20 MiB encoded, 40 000 000 pixels): the
 * server decodes with fv_pipeline_params()->limits, which start from them.
 * Whatever decodes must probe to the same size; a JPEG is also read in part, at
 * a scale and over a rectangle drawn from its size, as image sources read it,
 * and every image through an image source as detection reads it: a reduced
 * copy, a prepared region and a crop inside it.
 */
#include <stddef.h>
#include <stdint.h>

#include "pipeline/image.h"
#include "pipeline/image_internal.h"

/* Reads every pixel so that a short allocation shows up under ASan. */
static void touch(const struct fv_image *img)
{
    size_t n = (size_t)img->width * (size_t)img->height * 3;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i += 61)
        sum += img->rgb[i];
    if (n)
        sum += img->rgb[n - 1];
    (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fv_image_limits limits;
    fv_image_default_limits(&limits);
    struct fv_image *img = NULL;
    struct fv_image_info info = {0};
    struct fv_error err = {0};
    enum fv_status probed = fv_image_probe(data, size, &limits, &info, &err);
    if (fv_image_decode(data, size, &limits, &img, &err) == FV_OK) {
        if (probed != FV_OK || info.width != img->width || info.height != img->height)
            __builtin_trap();
        touch(img);
        fv_image_free(img);
    }
    if (probed == FV_OK && size >= 3 && data[0] == 0xff && data[1] == 0xd8) {
        int w = info.width, h = info.height;
        int x = (int)(size % 7) * w / 8, y = (int)(size % 5) * h / 6;
        struct fv_image_window window;
        struct fv_image *part = NULL;
        if (fv_jpeg_decode_region(data, size, &limits, (float)(size % 9) / 8.0f, x, y, w / 3 + 1,
                                  h / 2 + 1, &part, &window, &err) == FV_OK) {
            touch(part);
            fv_image_free(part);
        }
    }
    struct fv_image_source *src = NULL;
    if (fv_image_source_open(data, size, &limits, &src, &err) == FV_OK) {
        const struct fv_image_info *si = fv_image_source_info(src);
        int w = si->width, h = si->height;
        int cw = w > 8 ? w / 8 : 1, ch = h > 8 ? h / 8 : 1;
        struct fv_image *copy = NULL, *part = NULL;
        struct fv_image_window window;
        if (fv_image_source_scaled(src, cw, ch, 0.25f, &copy, &err) == FV_OK) {
            if (copy->width != cw || copy->height != ch)
                __builtin_trap();
            touch(copy);
            fv_image_free(copy);
        }
        float scale = (float)(size % 9 + 1) / 9.0f;
        if (fv_image_source_prepare(src, scale, w / 4, h / 4, w / 2 + 1, h / 2 + 1, &err) ==
                FV_OK &&
            fv_image_source_read(src, scale, w / 3, h / 3, w / 6 + 1, h / 6 + 1, &part, &window,
                                 &err) == FV_OK) {
            touch(part);
            fv_image_free(part);
        }
        fv_image_source_free(src);
    }
    return 0;
}
