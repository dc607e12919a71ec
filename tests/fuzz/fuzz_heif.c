/* fuzz_heif.c - libFuzzer harness for the HEIF/HEIC and AVIF decoder (pipeline/image_heif.c:
 * the box checks, the coded-size checks, libheif with libde265 and dav1d): probe, then decode.
 *
 * The bytes go straight to fv_heif_probe and fv_heif_decode, not through fv_image_decode's
 * sniffing, so every input reaches the decoder. The limits are the production defaults, as
 * in fuzz_image.c, which also checks that what decodes probes to its size. Seeds are
 * made at set-up by make_format_seeds.sh (heif-enc), not committed.
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
    enum fv_status probed = fv_heif_probe(data, size, &limits, &info, &err);
    if (probed == FV_OK && (uint64_t)info.width * (uint64_t)info.height > limits.max_pixels)
        abort(); /* probe let an image over the limit through */
    struct fv_image *img = NULL;
    int orientation = 0;
    if (fv_heif_decode(data, size, &limits, &img, &orientation, &err) == FV_OK) {
        /* Whatever decodes, probes, to its size; HEIF is upright as decoded. */
        if (orientation != 1 || probed != FV_OK || info.width != img->width ||
            info.height != img->height)
            abort();
        /* Touch the pixels so a short allocation shows up under ASan. */
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
