/* image_exif.c - the EXIF orientation tag, and turning an image upright by it. */
#include "pipeline/image_internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint32_t read_u16(const uint8_t *p, bool big_endian)
{
    return big_endian ? (uint32_t)p[0] << 8 | p[1] : (uint32_t)p[1] << 8 | p[0];
}

static uint32_t read_u32(const uint8_t *p, bool big_endian)
{
    return big_endian
        ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
        : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* The orientation (1..8) in IFD0 of an EXIF block (a TIFF structure, with or
 * without the "Exif\0\0" prefix of JPEG's APP1), or 1 when it is absent or
 * anything about the block is malformed. Only IFD0 is read, so there is no
 * chain of offsets to follow. */
int fv_exif_orientation(const uint8_t *tiff, size_t size)
{
    if (size >= 6 && memcmp(tiff, "Exif\0\0", 6) == 0) {
        tiff += 6;
        size -= 6;
    }
    if (size < 8)
        return 1;
    bool big_endian;
    if (tiff[0] == 'I' && tiff[1] == 'I')
        big_endian = false;
    else if (tiff[0] == 'M' && tiff[1] == 'M')
        big_endian = true;
    else
        return 1;
    if (read_u16(tiff + 2, big_endian) != 42)
        return 1;
    uint32_t ifd = read_u32(tiff + 4, big_endian);
    if (ifd > size || size - ifd < 2)
        return 1;
    size_t entries = read_u16(tiff + ifd, big_endian);
    size_t room = (size - ifd - 2) / 12;
    if (entries > room)
        entries = room;
    const uint8_t *entry = tiff + ifd + 2;
    for (size_t i = 0; i < entries; i++, entry += 12) {
        if (read_u16(entry, big_endian) != 0x0112)
            continue;
        uint32_t type = read_u16(entry + 2, big_endian);
        uint32_t count = read_u32(entry + 4, big_endian);
        uint32_t value;
        if (count < 1)
            return 1;
        if (type == 3) /* SHORT, the type the standard prescribes */
            value = read_u16(entry + 8, big_endian);
        else if (type == 4) /* LONG, written by a few tools */
            value = read_u32(entry + 8, big_endian);
        else
            return 1;
        return value >= 1 && value <= 8 ? (int)value : 1;
    }
    return 1;
}

/* Replaces *img with its upright version for an EXIF orientation. The source
 * pixel for destination (x, y) is base + x * step_x + y * step_y, in pixels;
 * orientations 5..8 swap width and height. */
enum fv_status fv_image_orient(struct fv_image **img, int orientation, struct fv_error *err)
{
    if (orientation <= 1 || orientation > 8)
        return FV_OK;
    const struct fv_image *src = *img;
    ptrdiff_t w = src->width, h = src->height;
    ptrdiff_t base, step_x, step_y;
    bool swap = orientation >= 5;
    switch (orientation) {
    case 2: base = w - 1;               step_x = -1; step_y = w;  break; /* mirror horizontal */
    case 3: base = (h - 1) * w + w - 1; step_x = -1; step_y = -w; break; /* rotate 180 */
    case 4: base = (h - 1) * w;         step_x = 1;  step_y = -w; break; /* mirror vertical */
    case 5: base = 0;                   step_x = w;  step_y = 1;  break; /* transpose */
    case 6: base = (h - 1) * w;         step_x = -w; step_y = 1;  break; /* rotate 90 CW */
    case 7: base = (h - 1) * w + w - 1; step_x = -w; step_y = -1; break; /* transverse */
    default: base = w - 1;              step_x = w;  step_y = -1; break; /* 8: rotate 90 CCW */
    }
    struct fv_image *dst = swap ? fv_image_new(src->height, src->width)
                                : fv_image_new(src->width, src->height);
    if (!dst)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory rotating a %dx%d image",
                            src->width, src->height);
    /* In 64 × 64 tiles of the destination, so that a transposing walk over the
     * source stays within a few pages instead of touching a new one per pixel. */
    enum { TILE = 64 };
    const ptrdiff_t dw = dst->width, dh = dst->height;
    for (ptrdiff_t ty = 0; ty < dh; ty += TILE)
        for (ptrdiff_t tx = 0; tx < dw; tx += TILE) {
            ptrdiff_t y1 = ty + TILE < dh ? ty + TILE : dh, x1 = tx + TILE < dw ? tx + TILE : dw;
            for (ptrdiff_t y = ty; y < y1; y++) {
                ptrdiff_t index = base + y * step_y + tx * step_x;
                uint8_t *out = dst->rgb + 3 * (y * dw + tx);
                for (ptrdiff_t x = tx; x < x1; x++, index += step_x, out += 3)
                    memcpy(out, src->rgb + index * 3, 3);
            }
        }
    fv_image_free(*img);
    *img = dst;
    return FV_OK;
}
