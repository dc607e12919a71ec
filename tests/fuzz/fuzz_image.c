/* fuzz_image.c - libFuzzer harness for fv_image_decode (JPEG, PNG, EXIF orientation).
 *
 * The limits are the production defaults (20 MiB encoded, 40 000 000 pixels): the
 * server decodes with fv_pipeline_params()->limits, which start from them.
 */
#include <stddef.h>
#include <stdint.h>

#include "pipeline/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fv_image_limits limits;
    fv_image_default_limits(&limits);
    struct fv_image *img = NULL;
    struct fv_error err = {0};
    if (fv_image_decode(data, size, &limits, &img, &err) == FV_OK) {
        /* Touch every pixel so a short allocation shows up under ASan. */
        size_t n = (size_t)img->width * (size_t)img->height * 3;
        unsigned sum = 0;
        for (size_t i = 0; i < n; i += 61)
            sum += img->rgb[i];
        if (n)
            sum += img->rgb[n - 1];
        (void)sum;
        fv_image_free(img);
    }
    return 0;
}
