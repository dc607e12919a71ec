/* image.c - the image type: limits, new/free/clone, checks shared by decoders and encoders. */
#include "pipeline/image.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pipeline/image_internal.h"

#define DEFAULT_MAX_BYTES ((size_t)20 * 1024 * 1024)
#define DEFAULT_MAX_PIXELS ((uint64_t)40000000)
/* Pixels of images this large are asked for in huge pages (see fv_image_new). */
#define HUGE_PAGE_BYTES ((uint64_t)2 << 20)

void fv_image_default_limits(struct fv_image_limits *limits)
{
    limits->max_bytes = DEFAULT_MAX_BYTES;
    limits->max_pixels = DEFAULT_MAX_PIXELS;
}

/* Pixels of a large image: mapped afresh (zero), on a 2 MiB boundary and
 * asked for in huge pages, so that a decoded photo faults 512 times less
 * often and crops reading it in scattered rows miss the TLB less (where the
 * kernel has transparent huge pages on madvise; only a hint). NULL for a
 * small image or when mapping fails: then malloc'd. */
static uint8_t *map_pixels(size_t bytes, size_t *mapped)
{
    *mapped = 0;
#ifdef MADV_HUGEPAGE
    const size_t huge = (size_t)HUGE_PAGE_BYTES;
    if (bytes < 2 * huge || bytes > SIZE_MAX - 2 * huge)
        return NULL;
    size_t length = (bytes + huge - 1) & ~(huge - 1);
    uint8_t *base = mmap(NULL, length + huge, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    uint8_t *start = (uint8_t *)(((uintptr_t)base + huge - 1) & ~(uintptr_t)(huge - 1));
    if (start > base)
        munmap(base, (size_t)(start - base));
    if (base + huge > start)
        munmap(start + length, (size_t)(base + huge - start));
    (void)madvise(start, length, MADV_HUGEPAGE);
    *mapped = length;
    return start;
#else
    (void)bytes;
    return NULL;
#endif
}

struct fv_image *fv_image_new(int width, int height)
{
    if (width <= 0 || height <= 0)
        return NULL;
    uint64_t bytes = (uint64_t)width * (uint64_t)height * 3;
    if (bytes > SIZE_MAX)
        return NULL;
    struct fv_image *img = calloc(1, sizeof *img);
    if (!img)
        return NULL;
    img->rgb = map_pixels((size_t)bytes, &img->mapped);
    if (!img->rgb)
        img->rgb = calloc(1, (size_t)bytes);
    if (!img->rgb) {
        free(img);
        return NULL;
    }
    img->width = width;
    img->height = height;
    return img;
}

void fv_image_free(struct fv_image *img)
{
    if (!img)
        return;
    if (img->mapped)
        munmap(img->rgb, img->mapped);
    else
        free(img->rgb);
    free(img);
}

struct fv_image *fv_image_clone(const struct fv_image *src)
{
    if (!fv_image_is_valid(src))
        return NULL;
    struct fv_image *copy = fv_image_new(src->width, src->height);
    if (copy)
        memcpy(copy->rgb, src->rgb, fv_image_byte_count(src));
    return copy;
}

/* ---- checks shared by the decoders and encoders ---- */

const struct fv_image_limits *fv_image_limits_or_default(const struct fv_image_limits *limits,
                                                         struct fv_image_limits *storage)
{
    if (limits)
        return limits;
    fv_image_default_limits(storage);
    return storage;
}

enum fv_status fv_image_check_encoded(const uint8_t *data, size_t size,
                                      const struct fv_image_limits *limits,
                                      struct fv_error *err)
{
    (void)data;
    if (size == 0)
        return fv_error_set(err, FV_ERR_FORMAT, "empty image");
    if (limits->max_bytes && size > limits->max_bytes)
        return fv_error_set(err, FV_ERR_TOO_LARGE, "image too large: %zu bytes, the limit "
                            "is %zu bytes", size, limits->max_bytes);
    if (size > ULONG_MAX) /* jpeg_mem_src takes an unsigned long */
        return fv_error_set(err, FV_ERR_TOO_LARGE, "image too large: %zu bytes", size);
    return FV_OK;
}

enum fv_status fv_image_check_dimensions(uint64_t width, uint64_t height,
                                         const struct fv_image_limits *limits,
                                         const char *kind, struct fv_error *err)
{
    if (width == 0 || height == 0)
        return fv_error_set(err, FV_ERR_FORMAT, "corrupt %s: image has zero size (%" PRIu64
                            "x%" PRIu64 ")", kind, width, height);
    uint64_t pixels = width * height; /* both come from 32-bit header fields */
    if (limits->max_pixels && pixels > limits->max_pixels)
        return fv_error_set(err, FV_ERR_TOO_LARGE, "image too large: %" PRIu64 "x%" PRIu64
                            " pixels, the limit is %" PRIu64 " pixels",
                            width, height, limits->max_pixels);
    if (width > INT_MAX || height > INT_MAX || pixels > SIZE_MAX / 3)
        return fv_error_set(err, FV_ERR_TOO_LARGE, "image too large: %" PRIu64 "x%" PRIu64
                            " pixels", width, height);
    return FV_OK;
}

enum fv_status fv_image_check_encodable(const struct fv_image *img, uint8_t **out,
                                        size_t *out_size, struct fv_error *err)
{
    if (!out || !out_size)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "image encoder: NULL output");
    *out = NULL;
    *out_size = 0;
    if (!fv_image_is_valid(img))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "image encoder: no image or empty image");
    return FV_OK;
}
