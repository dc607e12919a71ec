/* fuzz_webp.c - libFuzzer harness for the WebP decoder (pipeline/image_webp.c: the RIFF
 * check, still images, the first frame of animations, the EXIF chunk): probe, then decode.
 *
 * The bytes go straight to fv_webp_probe and fv_webp_decode, not through fv_image_decode's
 * sniffing. The limits are the production defaults, as in fuzz_image.c. Seeds are made at
 * set-up by make_format_seeds.sh (cwebp, img2webp), not committed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "pipeline/image.h"
#include "pipeline/image_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fv_image_limits limits;
    fv_image_default_limits(&limits);
    if (size == 0 || size > limits.max_bytes) /* the dispatcher's checks */
        return 0;
    struct fv_image_info info;
    struct fv_error err = {0};
    enum fv_status probed = fv_webp_probe(data, size, &limits, &info, &err);
    struct fv_image *img = NULL;
    int orientation = 0;
    if (fv_webp_decode(data, size, &limits, &img, &orientation, &err) == FV_OK) {
        if (orientation < 1 || orientation > 8 ||
            (uint64_t)img->width * (uint64_t)img->height > limits.max_pixels)
            abort();
        /* Whatever decodes, probes: at the size decoding gives once turned upright. */
        int width = orientation >= 5 ? img->height : img->width;
        int height = orientation >= 5 ? img->width : img->height;
        if (probed != FV_OK || info.width != width || info.height != height)
            abort();
        size_t n = (size_t)img->width * (size_t)img->height * 3;
        unsigned sum = 0;
        for (size_t i = 0; i < n; i += 61)
            sum += img->rgb[i];
        sum += img->rgb[n - 1];
        (void)sum;
        fv_image_free(img);
    }
    return 0;
}
