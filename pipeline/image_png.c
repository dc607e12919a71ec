/* image_png.c - PNG decoding and encoding with libpng. */
#include "pipeline/image_internal.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

/* Ancillary chunks are skipped unread (png_decode_run), so libpng holds none
 * in memory and inflates none; should one ever be read, libpng keeps at most
 * this many and inflates none beyond this size. eXIf chunks larger than that
 * are ignored too. */
#define PNG_MAX_CACHED_CHUNKS 1000
#define PNG_MAX_CHUNK_BYTES ((png_alloc_size_t)8 * 1024 * 1024)

/* ---- PNG decoding ---- */

struct png_decoder {
    png_structp png;
    png_infop info, end_info;
    const uint8_t *data;
    size_t size, position;
    bool truncated;
    char message[256];
    struct fv_image *img;
    png_bytep *rows;
};

static void png_on_error(png_structp png, png_const_charp message)
{
    struct png_decoder *d = png_get_error_ptr(png);
    snprintf(d->message, sizeof d->message, "%s", message);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp message)
{
    (void)png;
    (void)message;
}

static void png_on_read(png_structp png, png_bytep out, size_t length)
{
    struct png_decoder *d = png_get_io_ptr(png);
    if (length > d->size - d->position) {
        d->truncated = true;
        png_error(png, "truncated PNG");
    }
    memcpy(out, d->data + d->position, length);
    d->position += length;
}

static uint32_t read_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The PNG signature is followed by the IHDR chunk; read its size before
 * libpng does anything, so a decompression bomb costs nothing. */
static enum fv_status png_check_header(const uint8_t *data, size_t size,
                                       const struct fv_image_limits *limits,
                                       struct fv_error *err)
{
    if (size < 8 + 8 + 13 + 4)
        return fv_error_set(err, FV_ERR_FORMAT, "truncated PNG");
    if (read_be32(data + 8) != 13 || memcmp(data + 12, "IHDR", 4) != 0)
        return fv_error_set(err, FV_ERR_FORMAT, "corrupt PNG: it does not start with IHDR");
    return fv_image_check_dimensions(read_be32(data + 16), read_be32(data + 20), limits, "PNG",
                                     err);
}

static enum fv_status png_decode_run(struct png_decoder *d, const struct fv_image_limits *limits,
                                     bool header_only, struct fv_error *err)
{
    if (setjmp(png_jmpbuf(d->png)))
        return FV_ERR_FORMAT; /* the message is written by the caller */

    png_uint_32 side_limit = PNG_UINT_31_MAX;
    if (limits->max_pixels && limits->max_pixels < side_limit)
        side_limit = (png_uint_32)limits->max_pixels;
    png_set_user_limits(d->png, side_limit, side_limit);
    png_set_chunk_cache_max(d->png, PNG_MAX_CACHED_CHUNKS);
    png_set_chunk_malloc_max(d->png, PNG_MAX_CHUNK_BYTES);
    /* Every chunk that may be skipped is (all but IHDR, PLTE, tRNS, IDAT and
     * IEND): colour spaces, text and ICC profiles are not used here, and a
     * compressed one (zTXt, iTXt, iCCP) would be inflated for nothing. eXIf
     * is read by png_orientation(). */
    png_set_keep_unknown_chunks(d->png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_set_read_fn(d->png, d, png_on_read);
    png_read_info(d->png, d->info);

    png_uint_32 width, height;
    int depth, color_type, interlace;
    png_get_IHDR(d->png, d->info, &width, &height, &depth, &color_type, &interlace, NULL, NULL);
    enum fv_status status = fv_image_check_dimensions(width, height, limits, "PNG", err);
    if (status != FV_OK)
        return status;
    if (header_only)
        return FV_OK;

    /* Every colour model to 8-bit RGB. Alpha (including tRNS, which palette
     * expansion turns into alpha) is dropped, keeping the stored colours as
     * PIL's convert("RGB") does. */
    if (color_type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(d->png);
    if (color_type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(d->png);
    if (depth == 16)
        png_set_scale_16(d->png);
    png_set_strip_alpha(d->png);
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(d->png);
    png_set_interlace_handling(d->png);
    png_read_update_info(d->png, d->info);

    if (png_get_channels(d->png, d->info) != 3 || png_get_bit_depth(d->png, d->info) != 8 ||
        png_get_rowbytes(d->png, d->info) != (size_t)width * 3)
        return fv_error_set(err, FV_ERR_INTERNAL, "PNG transformations gave %d channels of "
                            "%d bits, expected RGB8", png_get_channels(d->png, d->info),
                            png_get_bit_depth(d->png, d->info));

    d->img = fv_image_new((int)width, (int)height);
    d->rows = malloc((size_t)height * sizeof *d->rows);
    if (!d->img || !d->rows)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory decoding a %ux%u PNG",
                            (unsigned)width, (unsigned)height);
    for (png_uint_32 y = 0; y < height; y++)
        d->rows[y] = fv_image_pixel_at(d->img, 0, (int)y);
    png_read_image(d->png, d->rows);
    png_read_end(d->png, d->end_info);
    return FV_OK;
}

/* The CRC-32 of ISO 3309 that every PNG chunk ends with, four bits at a time. */
static uint32_t png_crc(const uint8_t *p, size_t n)
{
    static const uint32_t nibble[16] = {
        0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
        0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
        0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c};
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ nibble[crc & 15];
        crc = (crc >> 4) ^ nibble[crc & 15];
    }
    return ~crc;
}

/* Whether an eXIf chunk is read: a TIFF byte order ("II" or "MM") to start
 * with, its CRC right (a damaged ancillary chunk is ignored, as libpng ignores
 * one) and its size within PNG_MAX_CHUNK_BYTES. */
static bool png_exif_usable(const uint8_t *type, const uint8_t *body, uint32_t length)
{
    return length >= 2 && length <= PNG_MAX_CHUNK_BYTES && body[0] == body[1] &&
           (body[0] == 'I' || body[0] == 'M') &&
           png_crc(type, 4 + (size_t)length) == read_be32(body + length);
}

/* The EXIF orientation of a PNG, from a walk over its chunks that reads only
 * eXIf bodies and inflates nothing: the first usable eXIf chunk before the
 * image data or, when that gives none (or 1), the first one after it. -1 when
 * the data ends before IEND. The probe and the decoder both take the
 * orientation from here, so they agree. */
static int png_orientation(const uint8_t *data, size_t size)
{
    int before = 1, after = 0; /* 0: none found yet */
    bool after_image = false, found_before = false;
    for (size_t at = 8; size - at >= 12;) {
        uint32_t length = read_be32(data + at);
        const uint8_t *type = data + at + 4, *body = data + at + 8;
        if (length > PNG_UINT_31_MAX || length > size - at - 12)
            return -1;
        if (memcmp(type, "IEND", 4) == 0)
            return before != 1 || !after ? before : after;
        if (memcmp(type, "IDAT", 4) == 0) {
            after_image = true;
        } else if (memcmp(type, "eXIf", 4) == 0 && png_exif_usable(type, body, length)) {
            if (!after_image && !found_before) {
                before = fv_exif_orientation(body, length);
                found_before = true;
            } else if (after_image && !after) {
                after = fv_exif_orientation(body, length);
            }
        }
        at += 12 + (size_t)length;
    }
    return -1;
}

/* Creates libpng's structures and runs the decoder, turning libpng's errors
 * into ours. */
static enum fv_status png_decoder_run(struct png_decoder *d, const uint8_t *data, size_t size,
                                      const struct fv_image_limits *limits, bool header_only,
                                      struct fv_error *err)
{
    memset(d, 0, sizeof *d);
    d->data = data;
    d->size = size;

    enum fv_status status = png_check_header(data, size, limits, err);
    if (status != FV_OK)
        return status;
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d, png_on_error, png_on_warning);
    if (d->png) {
        d->info = png_create_info_struct(d->png);
        d->end_info = png_create_info_struct(d->png);
    }
    if (!d->png || !d->info || !d->end_info)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory starting the PNG decoder");
    d->message[0] = '\0';
    status = png_decode_run(d, limits, header_only, err);
    if (status == FV_ERR_FORMAT && d->message[0]) {
        /* came through png_error() */
        if (d->truncated)
            fv_error_set(err, status, "truncated PNG");
        else if (strstr(d->message, "ut of memory"))
            status = fv_error_set(err, FV_ERR_NOMEM, "out of memory decoding PNG");
        else
            fv_error_set(err, status, "corrupt PNG: %s", d->message);
    }
    return status;
}

static void png_decoder_free(struct png_decoder *d)
{
    png_destroy_read_struct(&d->png, &d->info, &d->end_info); /* accepts NULLs */
    free(d->rows);
    fv_image_free(d->img);
}

enum fv_status fv_png_decode(const uint8_t *data, size_t size,
                             const struct fv_image_limits *limits, struct fv_image **out,
                             int *orientation, struct fv_error *err)
{
    struct png_decoder d;
    enum fv_status status = png_decoder_run(&d, data, size, limits, false, err);
    int found = status == FV_OK ? png_orientation(data, size) : 1;
    if (found < 0) /* libpng read up to IEND, so this would be a bug */
        status = fv_error_set(err, FV_ERR_INTERNAL, "PNG chunks end before IEND");
    if (status == FV_OK) {
        *out = d.img;
        *orientation = found;
        d.img = NULL;
    }
    png_decoder_free(&d);
    return status;
}

enum fv_status fv_png_probe(const uint8_t *data, size_t size,
                            const struct fv_image_limits *limits, struct fv_image_info *info,
                            struct fv_error *err)
{
    struct png_decoder d;
    enum fv_status status = png_decoder_run(&d, data, size, limits, true, err);
    if (status != FV_OK)
        goto fail;
    int orientation = png_orientation(data, size);
    if (orientation < 0) {
        status = fv_error_set(err, FV_ERR_FORMAT, "truncated PNG");
        goto fail;
    }
    bool transposed = orientation >= 5 && orientation <= 8;
    info->format = "PNG";
    info->width = (int)(transposed ? png_get_image_height(d.png, d.info)
                                   : png_get_image_width(d.png, d.info));
    info->height = (int)(transposed ? png_get_image_width(d.png, d.info)
                                    : png_get_image_height(d.png, d.info));
    png_decoder_free(&d);
    return FV_OK;

fail:
    png_decoder_free(&d);
    return status;
}

/* ---- PNG encoding ---- */

struct png_encoder {
    png_structp png;
    png_infop info;
    uint8_t *buffer;
    size_t size, capacity;
    bool out_of_memory;
    char message[256];
};

static void png_on_write_error(png_structp png, png_const_charp message)
{
    struct png_encoder *e = png_get_error_ptr(png);
    snprintf(e->message, sizeof e->message, "%s", message);
    png_longjmp(png, 1);
}

static void png_on_write(png_structp png, png_bytep data, size_t length)
{
    struct png_encoder *e = png_get_io_ptr(png);
    if (length > e->capacity - e->size) {
        size_t needed = e->size + length;
        size_t grown = e->capacity ? e->capacity : 65536;
        while (grown < needed && grown <= SIZE_MAX / 2)
            grown *= 2;
        uint8_t *bigger = grown >= needed && needed >= length ? realloc(e->buffer, grown) : NULL;
        if (!bigger) {
            e->out_of_memory = true;
            png_error(png, "out of memory");
        }
        e->buffer = bigger;
        e->capacity = grown;
    }
    memcpy(e->buffer + e->size, data, length);
    e->size += length;
}

static void png_on_flush(png_structp png)
{
    (void)png;
}

static enum fv_status png_encode_run(struct png_encoder *e, const struct fv_image *img)
{
    if (setjmp(png_jmpbuf(e->png)))
        return e->out_of_memory ? FV_ERR_NOMEM : FV_ERR_INTERNAL;
    png_set_write_fn(e->png, e, png_on_write, png_on_flush);
    png_set_IHDR(e->png, e->info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(e->png, e->info);
    for (int y = 0; y < img->height; y++)
        png_write_row(e->png, fv_image_pixel_at(img, 0, y));
    png_write_end(e->png, NULL);
    return FV_OK;
}

enum fv_status fv_image_encode_png(const struct fv_image *img, uint8_t **out,
                                   size_t *out_size, struct fv_error *err)
{
    struct png_encoder e;
    memset(&e, 0, sizeof e);
    enum fv_status status = fv_image_check_encodable(img, out, out_size, err);
    if (status != FV_OK)
        return status;
    e.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e, png_on_write_error,
                                    png_on_warning);
    if (e.png)
        e.info = png_create_info_struct(e.png);
    if (!e.png || !e.info) {
        status = fv_error_set(err, FV_ERR_NOMEM, "out of memory starting the PNG encoder");
        goto fail;
    }
    status = png_encode_run(&e, img);
    if (status != FV_OK) {
        fv_error_set(err, status, "PNG encoding failed: %s", e.message);
        goto fail;
    }
    png_destroy_write_struct(&e.png, &e.info);
    *out = e.buffer;
    *out_size = e.size;
    return FV_OK;

fail:
    png_destroy_write_struct(&e.png, &e.info);
    free(e.buffer);
    return status;
}
