/* image.c - JPEG/PNG decoding with EXIF orientation, encoding, PIL-compatible resize,
 * crop and drawing on 8-bit RGB images. */
#include "pipeline/image.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "model/cpu.h"
#include "model/simd.h"

#define DEFAULT_MAX_BYTES ((size_t)20 * 1024 * 1024)
#define DEFAULT_MAX_PIXELS ((uint64_t)40000000)

/* A real progressive JPEG has about ten scans; thousands of tiny scans over a
 * large image make libjpeg walk its coefficient buffer once per scan. */
#define JPEG_MAX_SCANS 500

/* libpng keeps ancillary chunks in memory; bound how many and how large. */
#define PNG_MAX_CACHED_CHUNKS 1000
#define PNG_MAX_CHUNK_BYTES ((png_alloc_size_t)8 * 1024 * 1024)

#define SAVE_JPEG_QUALITY 95

void fv_image_default_limits(struct fv_image_limits *limits)
{
    limits->max_bytes = DEFAULT_MAX_BYTES;
    limits->max_pixels = DEFAULT_MAX_PIXELS;
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
    free(img->rgb);
    free(img);
}

static size_t image_bytes(const struct fv_image *img)
{
    return (size_t)img->width * (size_t)img->height * 3;
}

static uint8_t *pixel_at(const struct fv_image *img, int x, int y)
{
    return img->rgb + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
}

static bool image_is_valid(const struct fv_image *img)
{
    return img && img->rgb && img->width > 0 && img->height > 0;
}

struct fv_image *fv_image_clone(const struct fv_image *src)
{
    if (!image_is_valid(src))
        return NULL;
    struct fv_image *copy = fv_image_new(src->width, src->height);
    if (copy)
        memcpy(copy->rgb, src->rgb, image_bytes(src));
    return copy;
}

/* ---- format detection and limits ---- */

enum image_format { FORMAT_JPEG, FORMAT_PNG, FORMAT_OTHER };

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* Which format data holds; for one we do not decode, *name says which (or
 * "unrecognised data"), for the error message. */
static enum image_format detect_format(const uint8_t *data, size_t size, const char **name)
{
    *name = "unrecognised data";
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return FORMAT_JPEG;
    if (size >= 8 && memcmp(data, png_signature, 8) == 0)
        return FORMAT_PNG;
    if (size >= 4 && memcmp(data, "GIF8", 4) == 0)
        *name = "GIF";
    else if (size >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0)
        *name = "WebP";
    else if (size >= 12 && memcmp(data + 4, "ftyp", 4) == 0) {
        const uint8_t *brand = data + 8;
        if (memcmp(brand, "avif", 4) == 0 || memcmp(brand, "avis", 4) == 0)
            *name = "AVIF";
        else if (memcmp(brand, "hei", 3) == 0 || memcmp(brand, "hev", 3) == 0 ||
                 memcmp(brand, "mif1", 4) == 0 || memcmp(brand, "msf1", 4) == 0)
            *name = "HEIC";
        else
            *name = "ISO media";
    } else if (size >= 2 && data[0] == 'B' && data[1] == 'M')
        *name = "BMP";
    else if (size >= 4 && (memcmp(data, "II*\0", 4) == 0 || memcmp(data, "MM\0*", 4) == 0))
        *name = "TIFF";
    else if ((size >= 2 && data[0] == 0xff && data[1] == 0x0a) ||
             (size >= 12 && memcmp(data, "\0\0\0\x0cJXL \r\n\x87\n", 12) == 0))
        *name = "JPEG XL";
    else if (size >= 12 && memcmp(data, "\0\0\0\x0cjP  \r\n\x87\n", 12) == 0)
        *name = "JPEG 2000";
    return FORMAT_OTHER;
}

static const struct fv_image_limits *limits_or_default(const struct fv_image_limits *limits,
                                                       struct fv_image_limits *storage)
{
    if (limits)
        return limits;
    fv_image_default_limits(storage);
    return storage;
}

/* Checks declared dimensions before any pixel memory is allocated. */
static enum fv_status check_dimensions(uint64_t width, uint64_t height,
                                       const struct fv_image_limits *limits, const char *kind,
                                       struct fv_error *err)
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

/* ---- EXIF orientation ---- */

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
static int exif_orientation(const uint8_t *tiff, size_t size)
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
static enum fv_status apply_orientation(struct fv_image **img, int orientation,
                                        struct fv_error *err)
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
    uint8_t *out = dst->rgb;
    for (ptrdiff_t y = 0; y < dst->height; y++) {
        ptrdiff_t index = base + y * step_y;
        for (ptrdiff_t x = 0; x < dst->width; x++, index += step_x, out += 3)
            memcpy(out, src->rgb + index * 3, 3);
    }
    fv_image_free(*img);
    *img = dst;
    return FV_OK;
}

/* ---- libjpeg error handling, shared by decoding and encoding ---- */

struct jpeg_error_context {
    struct jpeg_error_mgr manager; /* first: libjpeg hands us a pointer to it */
    jmp_buf jump;
    enum fv_status status;
    bool truncated;
    bool too_many_scans;
    char message[JMSG_LENGTH_MAX];
};

static void jpeg_on_error(j_common_ptr cinfo)
{
    struct jpeg_error_context *context = (struct jpeg_error_context *)cinfo->err;
    cinfo->err->format_message(cinfo, context->message);
    switch (cinfo->err->msg_code) {
    case JERR_IMAGE_TOO_BIG: context->status = FV_ERR_TOO_LARGE; break;
    case JERR_OUT_OF_MEMORY: context->status = FV_ERR_NOMEM; break;
    case JERR_CONVERSION_NOTIMPL:
    case JERR_NOT_COMPILED:
    case JERR_NO_ARITH_TABLE: context->status = FV_ERR_UNSUPPORTED; break;
    default: context->status = FV_ERR_FORMAT; break;
    }
    longjmp(context->jump, 1);
}

/* Warnings and trace messages: never printed. The one warning that matters is
 * the end of the data arriving early: libjpeg would fill the rest of the image
 * with gray and call it a success, so stop there instead. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    struct jpeg_error_context *context = (struct jpeg_error_context *)cinfo->err;
    if (level >= 0)
        return;
    cinfo->err->num_warnings++;
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
        context->status = FV_ERR_FORMAT;
        context->truncated = true;
        longjmp(context->jump, 1);
    }
}

static void jpeg_on_output(j_common_ptr cinfo)
{
    (void)cinfo;
}

static void jpeg_on_progress(j_common_ptr cinfo)
{
    if (!cinfo->is_decompressor)
        return;
    j_decompress_ptr dinfo = (j_decompress_ptr)cinfo;
    if (dinfo->progressive_mode && dinfo->input_scan_number > JPEG_MAX_SCANS) {
        struct jpeg_error_context *context = (struct jpeg_error_context *)cinfo->err;
        context->status = FV_ERR_FORMAT;
        context->too_many_scans = true;
        longjmp(context->jump, 1);
    }
}

static void jpeg_error_init(struct jpeg_error_context *context)
{
    jpeg_std_error(&context->manager);
    context->manager.error_exit = jpeg_on_error;
    context->manager.emit_message = jpeg_on_message;
    context->manager.output_message = jpeg_on_output;
    context->status = FV_OK;
}

/* ---- JPEG decoding ---- */

/* Everything the decoder allocates, so that the caller can release it
 * whichever way jpeg_decode_run() ends, longjmp included. Keeping this state
 * out of the function that calls setjmp() keeps it well defined after the
 * jump. */
struct jpeg_decoder {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_context error;
    struct jpeg_progress_mgr progress;
    struct fv_image *img;
    uint8_t *cmyk_row;
    int orientation;
};

static int jpeg_find_orientation(j_decompress_ptr cinfo)
{
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
            memcmp(m->data, "Exif\0\0", 6) == 0)
            return exif_orientation(m->data, m->data_length);
    return 1;
}

/* One CMYK row to RGB. Adobe's applications store CMYK inverted (0 = full ink)
 * and mark the file with an APP14 "Adobe" segment. */
static void cmyk_row_to_rgb(const uint8_t *cmyk, uint8_t *rgb, int width, bool inverted)
{
    for (int x = 0; x < width; x++, cmyk += 4, rgb += 3) {
        unsigned c = cmyk[0], m = cmyk[1], y = cmyk[2], k = cmyk[3];
        if (!inverted) {
            c = 255 - c;
            m = 255 - m;
            y = 255 - y;
            k = 255 - k;
        }
        /* now 255 means no ink: the channel is c * k / 255, rounded */
        rgb[0] = (uint8_t)((c * k + 127) / 255);
        rgb[1] = (uint8_t)((m * k + 127) / 255);
        rgb[2] = (uint8_t)((y * k + 127) / 255);
    }
}

static enum fv_status jpeg_decode_run(struct jpeg_decoder *d, const uint8_t *data, size_t size,
                                      const struct fv_image_limits *limits,
                                      struct fv_error *err)
{
    if (setjmp(d->error.jump))
        return d->error.status; /* the message is written by the caller */

    jpeg_create_decompress(&d->cinfo);
    d->progress.progress_monitor = jpeg_on_progress;
    d->cinfo.progress = &d->progress;
    jpeg_mem_src(&d->cinfo, data, (unsigned long)size);
    jpeg_save_markers(&d->cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&d->cinfo, TRUE);

    enum fv_status status = check_dimensions(d->cinfo.image_width, d->cinfo.image_height,
                                             limits, "JPEG", err);
    if (status != FV_OK)
        return status;
    d->orientation = jpeg_find_orientation(&d->cinfo);

    bool cmyk = d->cinfo.jpeg_color_space == JCS_CMYK || d->cinfo.jpeg_color_space == JCS_YCCK;
    d->cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&d->cinfo);

    int width = (int)d->cinfo.output_width, height = (int)d->cinfo.output_height;
    if (d->cinfo.output_width != d->cinfo.image_width ||
        d->cinfo.output_height != d->cinfo.image_height ||
        d->cinfo.output_components != (cmyk ? 4 : 3))
        return fv_error_set(err, FV_ERR_INTERNAL, "JPEG decoder produced %ux%u x %d, "
                            "expected %ux%u", d->cinfo.output_width, d->cinfo.output_height,
                            d->cinfo.output_components, d->cinfo.image_width,
                            d->cinfo.image_height);
    d->img = fv_image_new(width, height);
    if (cmyk)
        d->cmyk_row = malloc((size_t)width * 4);
    if (!d->img || (cmyk && !d->cmyk_row))
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory decoding a %dx%d JPEG",
                            width, height);

    while (d->cinfo.output_scanline < d->cinfo.output_height) {
        int y = (int)d->cinfo.output_scanline;
        JSAMPROW row = cmyk ? d->cmyk_row : pixel_at(d->img, 0, y);
        if (jpeg_read_scanlines(&d->cinfo, &row, 1) != 1)
            return fv_error_set(err, FV_ERR_FORMAT, "truncated JPEG");
        if (cmyk)
            cmyk_row_to_rgb(d->cmyk_row, pixel_at(d->img, 0, y), width,
                            d->cinfo.saw_Adobe_marker);
    }
    jpeg_finish_decompress(&d->cinfo);
    return FV_OK;
}

static enum fv_status jpeg_decode(const uint8_t *data, size_t size,
                                  const struct fv_image_limits *limits,
                                  struct fv_image **out, int *orientation,
                                  struct fv_error *err)
{
    struct jpeg_decoder d;
    memset(&d, 0, sizeof d);
    jpeg_error_init(&d.error);
    d.cinfo.err = &d.error.manager;
    d.orientation = 1;

    enum fv_status status = jpeg_decode_run(&d, data, size, limits, err);
    if (status != FV_OK && d.error.status != FV_OK) {
        /* came through longjmp: turn libjpeg's account into ours */
        if (d.error.truncated)
            fv_error_set(err, status, "truncated JPEG");
        else if (d.error.too_many_scans)
            fv_error_set(err, status, "corrupt JPEG: more than %d progressive scans",
                         JPEG_MAX_SCANS);
        else if (status == FV_ERR_TOO_LARGE)
            fv_error_set(err, status, "image too large: %ux%u pixels, JPEG allows at most "
                         "%ld per side", d.cinfo.image_width, d.cinfo.image_height,
                         (long)JPEG_MAX_DIMENSION);
        else if (status == FV_ERR_NOMEM)
            fv_error_set(err, status, "out of memory decoding JPEG");
        else if (status == FV_ERR_UNSUPPORTED)
            fv_error_set(err, status, "unsupported JPEG: %s", d.error.message);
        else
            fv_error_set(err, status, "corrupt JPEG: %s", d.error.message);
    }
    if (status != FV_OK)
        goto fail;
    jpeg_destroy_decompress(&d.cinfo);
    free(d.cmyk_row);
    *out = d.img;
    *orientation = d.orientation;
    return FV_OK;

fail:
    jpeg_destroy_decompress(&d.cinfo); /* safe on a zeroed struct */
    free(d.cmyk_row);
    fv_image_free(d.img);
    return status;
}

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
    int orientation;
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
    return read_u32(p, true);
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
    return check_dimensions(read_be32(data + 16), read_be32(data + 20), limits, "PNG", err);
}

static int png_find_orientation(png_structp png, png_infop info)
{
#ifdef PNG_eXIf_SUPPORTED
    png_uint_32 length = 0;
    png_bytep exif = NULL;
    if (info && png_get_eXIf_1(png, info, &length, &exif) && exif)
        return exif_orientation(exif, length);
#else
    (void)png;
    (void)info;
#endif
    return 1;
}

static enum fv_status png_decode_run(struct png_decoder *d, const struct fv_image_limits *limits,
                                     struct fv_error *err)
{
    if (setjmp(png_jmpbuf(d->png)))
        return FV_ERR_FORMAT; /* the message is written by the caller */

    png_uint_32 side_limit = PNG_UINT_31_MAX;
    if (limits->max_pixels && limits->max_pixels < side_limit)
        side_limit = (png_uint_32)limits->max_pixels;
    png_set_user_limits(d->png, side_limit, side_limit);
    png_set_chunk_cache_max(d->png, PNG_MAX_CACHED_CHUNKS);
    png_set_chunk_malloc_max(d->png, PNG_MAX_CHUNK_BYTES);
    png_set_read_fn(d->png, d, png_on_read);
    png_read_info(d->png, d->info);

    png_uint_32 width, height;
    int depth, color_type, interlace;
    png_get_IHDR(d->png, d->info, &width, &height, &depth, &color_type, &interlace, NULL, NULL);
    enum fv_status status = check_dimensions(width, height, limits, "PNG", err);
    if (status != FV_OK)
        return status;

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
        d->rows[y] = pixel_at(d->img, 0, (int)y);
    png_read_image(d->png, d->rows);
    png_read_end(d->png, d->end_info); /* eXIf may follow the image data */

    d->orientation = png_find_orientation(d->png, d->info);
    if (d->orientation == 1)
        d->orientation = png_find_orientation(d->png, d->end_info);
    return FV_OK;
}

static enum fv_status png_decode(const uint8_t *data, size_t size,
                                 const struct fv_image_limits *limits, struct fv_image **out,
                                 int *orientation, struct fv_error *err)
{
    struct png_decoder d;
    memset(&d, 0, sizeof d);
    d.data = data;
    d.size = size;
    d.orientation = 1;

    enum fv_status status = png_check_header(data, size, limits, err);
    if (status != FV_OK)
        goto fail;
    d.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d, png_on_error, png_on_warning);
    if (d.png) {
        d.info = png_create_info_struct(d.png);
        d.end_info = png_create_info_struct(d.png);
    }
    if (!d.png || !d.info || !d.end_info) {
        status = fv_error_set(err, FV_ERR_NOMEM, "out of memory starting the PNG decoder");
        goto fail;
    }
    d.message[0] = '\0';
    status = png_decode_run(&d, limits, err);
    if (status == FV_ERR_FORMAT && d.message[0]) {
        /* came through png_error() */
        if (d.truncated)
            fv_error_set(err, status, "truncated PNG");
        else if (strstr(d.message, "ut of memory"))
            status = fv_error_set(err, FV_ERR_NOMEM, "out of memory decoding PNG");
        else
            fv_error_set(err, status, "corrupt PNG: %s", d.message);
    }
    if (status != FV_OK)
        goto fail;
    png_destroy_read_struct(&d.png, &d.info, &d.end_info);
    free(d.rows);
    *out = d.img;
    *orientation = d.orientation;
    return FV_OK;

fail:
    png_destroy_read_struct(&d.png, &d.info, &d.end_info); /* accepts NULLs */
    free(d.rows);
    fv_image_free(d.img);
    return status;
}

/* ---- decoding entry points ---- */

enum fv_status fv_image_decode(const uint8_t *data, size_t size,
                               const struct fv_image_limits *limits, struct fv_image **out,
                               struct fv_error *err)
{
    struct fv_image_limits default_limits;
    struct fv_image *img = NULL;
    int orientation = 1;
    enum fv_status status;

    if (!out || (!data && size > 0))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_decode: NULL argument");
    *out = NULL;
    limits = limits_or_default(limits, &default_limits);
    if (size == 0)
        return fv_error_set(err, FV_ERR_FORMAT, "empty image");
    if (limits->max_bytes && size > limits->max_bytes)
        return fv_error_set(err, FV_ERR_TOO_LARGE, "image too large: %zu bytes, the limit "
                            "is %zu bytes", size, limits->max_bytes);
    if (size > ULONG_MAX) /* jpeg_mem_src takes an unsigned long */
        return fv_error_set(err, FV_ERR_TOO_LARGE, "image too large: %zu bytes", size);

    const char *name;
    switch (detect_format(data, size, &name)) {
    case FORMAT_JPEG:
        status = jpeg_decode(data, size, limits, &img, &orientation, err);
        break;
    case FORMAT_PNG:
        status = png_decode(data, size, limits, &img, &orientation, err);
        break;
    default:
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "unsupported image format (%s)", name);
    }
    if (status != FV_OK)
        goto fail;
    status = apply_orientation(&img, orientation, err);
    if (status != FV_OK)
        goto fail;
    *out = img;
    return FV_OK;

fail:
    fv_image_free(img);
    return status;
}

/* Prefixes err's message with the path, if there is an err to prefix. */
static enum fv_status with_path(struct fv_error *err, enum fv_status status, const char *path)
{
    if (err)
        fv_error_prefix(err, "%s: ", path);
    return status;
}

enum fv_status fv_image_load(const char *path, const struct fv_image_limits *limits,
                             struct fv_image **out, struct fv_error *err)
{
    struct fv_image_limits default_limits;
    uint8_t *data = NULL;
    size_t size = 0, capacity = 0, expected = 0;
    enum fv_status status;
    FILE *file = NULL;

    if (!path || !out)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_load: NULL argument");
    *out = NULL;
    limits = limits_or_default(limits, &default_limits);
    file = fopen(path, "rb");
    if (!file) {
        status = fv_error_set(err, errno == ENOENT ? FV_ERR_NOT_FOUND : FV_ERR_IO,
                              "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fileno(file), &st) == 0 && S_ISREG(st.st_mode)) {
        if (limits->max_bytes && (uint64_t)st.st_size > limits->max_bytes) {
            status = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: image too large: %jd bytes, "
                                  "the limit is %zu bytes", path, (intmax_t)st.st_size,
                                  limits->max_bytes);
            goto fail;
        }
        if ((uint64_t)st.st_size < SIZE_MAX)
            expected = (size_t)st.st_size + 1; /* + 1 sees the end without a regrow */
    }
    for (;;) {
        if (size == capacity) {
            size_t grown = capacity ? capacity * 2 : expected ? expected : 65536;
            if (grown < capacity) {
                status = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: file too large", path);
                goto fail;
            }
            uint8_t *bigger = realloc(data, grown);
            if (!bigger) {
                status = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory reading", path);
                goto fail;
            }
            data = bigger;
            capacity = grown;
        }
        size_t got = fread(data + size, 1, capacity - size, file);
        size += got;
        if (limits->max_bytes && size > limits->max_bytes) {
            status = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: image too large: over the "
                                  "limit of %zu bytes", path, limits->max_bytes);
            goto fail;
        }
        if (got == 0)
            break;
    }
    if (ferror(file)) {
        status = fv_error_set(err, FV_ERR_IO, "%s: read error", path);
        goto fail;
    }
    status = fv_image_decode(data, size, limits, out, err);
    if (status != FV_OK) {
        with_path(err, status, path);
        goto fail;
    }
    fclose(file);
    free(data);
    return FV_OK;

fail:
    if (file)
        fclose(file);
    free(data);
    return status;
}

/* ---- encoding ---- */

static enum fv_status check_encodable(const struct fv_image *img, uint8_t **out,
                                      size_t *out_size, struct fv_error *err)
{
    if (!out || !out_size)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "image encoder: NULL output");
    *out = NULL;
    *out_size = 0;
    if (!image_is_valid(img))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "image encoder: no image or empty image");
    return FV_OK;
}

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
        png_write_row(e->png, pixel_at(img, 0, y));
    png_write_end(e->png, NULL);
    return FV_OK;
}

enum fv_status fv_image_encode_png(const struct fv_image *img, uint8_t **out,
                                   size_t *out_size, struct fv_error *err)
{
    struct png_encoder e;
    memset(&e, 0, sizeof e);
    enum fv_status status = check_encodable(img, out, out_size, err);
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

/* A libjpeg destination writing into a malloc'd buffer that we own, so that
 * it can be freed after an error (jpeg_mem_dest's buffer would leak then). */
struct jpeg_buffer_dest {
    struct jpeg_destination_mgr manager; /* first */
    uint8_t *buffer;
    size_t capacity, size;
};

static void jpeg_dest_init(j_compress_ptr cinfo)
{
    struct jpeg_buffer_dest *dest = (struct jpeg_buffer_dest *)cinfo->dest;
    dest->capacity = 65536;
    dest->buffer = malloc(dest->capacity);
    if (!dest->buffer)
        ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
    dest->manager.next_output_byte = dest->buffer;
    dest->manager.free_in_buffer = dest->capacity;
}

static boolean jpeg_dest_grow(j_compress_ptr cinfo)
{
    struct jpeg_buffer_dest *dest = (struct jpeg_buffer_dest *)cinfo->dest;
    size_t used = dest->capacity; /* libjpeg calls this only with the buffer full */
    uint8_t *bigger = used <= SIZE_MAX / 2 ? realloc(dest->buffer, used * 2) : NULL;
    if (!bigger)
        ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 1);
    dest->buffer = bigger;
    dest->capacity = used * 2;
    dest->manager.next_output_byte = dest->buffer + used;
    dest->manager.free_in_buffer = dest->capacity - used;
    return TRUE;
}

static void jpeg_dest_term(j_compress_ptr cinfo)
{
    struct jpeg_buffer_dest *dest = (struct jpeg_buffer_dest *)cinfo->dest;
    dest->size = dest->capacity - dest->manager.free_in_buffer;
}

struct jpeg_encoder {
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_context error;
    struct jpeg_buffer_dest dest;
};

static enum fv_status jpeg_encode_run(struct jpeg_encoder *e, const struct fv_image *img,
                                      int quality)
{
    if (setjmp(e->error.jump))
        return e->error.status;
    jpeg_create_compress(&e->cinfo);
    e->dest.manager.init_destination = jpeg_dest_init;
    e->dest.manager.empty_output_buffer = jpeg_dest_grow;
    e->dest.manager.term_destination = jpeg_dest_term;
    e->cinfo.dest = &e->dest.manager;
    e->cinfo.image_width = (JDIMENSION)img->width;
    e->cinfo.image_height = (JDIMENSION)img->height;
    e->cinfo.input_components = 3;
    e->cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&e->cinfo);
    jpeg_set_quality(&e->cinfo, quality, TRUE);
    jpeg_start_compress(&e->cinfo, TRUE);
    while (e->cinfo.next_scanline < e->cinfo.image_height) {
        /* libjpeg's prototype is not const-correct; it only reads the row */
        JSAMPROW row = pixel_at(img, 0, (int)e->cinfo.next_scanline);
        jpeg_write_scanlines(&e->cinfo, &row, 1);
    }
    jpeg_finish_compress(&e->cinfo);
    return FV_OK;
}

enum fv_status fv_image_encode_jpeg(const struct fv_image *img, int quality, uint8_t **out,
                                    size_t *out_size, struct fv_error *err)
{
    struct jpeg_encoder e;
    memset(&e, 0, sizeof e);
    enum fv_status status = check_encodable(img, out, out_size, err);
    if (status != FV_OK)
        return status;
    if (quality < 1 || quality > 100)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "JPEG quality %d is not in 1..100",
                            quality);
    jpeg_error_init(&e.error);
    e.cinfo.err = &e.error.manager;
    status = jpeg_encode_run(&e, img, quality);
    if (status != FV_OK) {
        fv_error_set(err, status, "JPEG encoding failed: %s", e.error.message);
        goto fail;
    }
    jpeg_destroy_compress(&e.cinfo);
    *out = e.dest.buffer;
    *out_size = e.dest.size;
    return FV_OK;

fail:
    jpeg_destroy_compress(&e.cinfo);
    free(e.dest.buffer);
    return status;
}

static bool has_extension(const char *path, const char *extension)
{
    size_t n = strlen(path), m = strlen(extension);
    return n > m && strcasecmp(path + n - m, extension) == 0;
}

enum fv_status fv_image_save(const struct fv_image *img, const char *path,
                             struct fv_error *err)
{
    uint8_t *data = NULL;
    size_t size = 0;
    enum fv_status status;
    FILE *file = NULL;

    if (!path)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_save: NULL path");
    if (has_extension(path, ".png"))
        status = fv_image_encode_png(img, &data, &size, err);
    else if (has_extension(path, ".jpg") || has_extension(path, ".jpeg"))
        status = fv_image_encode_jpeg(img, SAVE_JPEG_QUALITY, &data, &size, err);
    else
        return fv_error_set(err, FV_ERR_INVALID_ARG, "%s: unknown image extension "
                            "(use .png, .jpg or .jpeg)", path);
    if (status != FV_OK) {
        with_path(err, status, path);
        goto fail;
    }
    file = fopen(path, "wb");
    if (!file) {
        status = fv_error_set(err, FV_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto fail;
    }
    bool written = fwrite(data, 1, size, file) == size;
    int close_result = fclose(file);
    file = NULL;
    if (!written || close_result != 0) {
        status = fv_error_set(err, FV_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        unlink(path);
        goto fail;
    }
    free(data);
    return FV_OK;

fail:
    if (file)
        fclose(file);
    free(data);
    return status;
}

/* ---- resampling (PIL's BILINEAR) ----
 *
 * For each output pixel PIL centres the triangle filter on the matching
 * source position, widens it by the scale factor when shrinking, normalises
 * the weights to sum 1 and turns them into fixed point with 22 fraction bits;
 * the horizontal pass runs first and its uint8 result feeds the vertical one.
 * The same doubles in the same order give the same weights as PIL. */

#define RESAMPLE_PRECISION_BITS 22

struct resample_weights {
    int taps;        /* weights per output pixel */
    int *first;      /* first source pixel of each output pixel */
    int *count;      /* how many source pixels it reads */
    int32_t *weight; /* [output pixel][tap], fixed point */
};

static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static void resample_weights_free(struct resample_weights *w)
{
    free(w->first);
    free(w->count);
    free(w->weight);
}

static bool resample_weights_init(struct resample_weights *w, int in_size, int out_size)
{
    double scale = (double)in_size / out_size;
    double filter_scale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filter_scale; /* the triangle's support is 1 */
    double *row = NULL;

    memset(w, 0, sizeof *w);
    if (ceil(support) > (INT_MAX - 1) / 2)
        return false;
    w->taps = (int)ceil(support) * 2 + 1;
    if ((size_t)w->taps > SIZE_MAX / sizeof(int32_t) / (size_t)out_size)
        return false;
    w->first = malloc((size_t)out_size * sizeof *w->first);
    w->count = malloc((size_t)out_size * sizeof *w->count);
    w->weight = malloc((size_t)out_size * (size_t)w->taps * sizeof *w->weight);
    row = malloc((size_t)w->taps * sizeof *row);
    if (!w->first || !w->count || !w->weight || !row)
        goto fail;

    for (int out = 0; out < out_size; out++) {
        double center = (out + 0.5) * scale;
        double inverse = 1.0 / filter_scale;
        int first = (int)(center - support + 0.5); /* truncation, as in PIL */
        if (first < 0)
            first = 0;
        int last = (int)(center + support + 0.5);
        if (last > in_size)
            last = in_size;
        int count = last - first;
        double total = 0.0;
        for (int k = 0; k < count; k++) {
            row[k] = triangle((k + first - center + 0.5) * inverse);
            total += row[k];
        }
        int32_t *fixed = w->weight + (size_t)out * (size_t)w->taps;
        for (int k = 0; k < w->taps; k++) {
            double value = k < count && total != 0.0 ? row[k] / total : 0.0;
            fixed[k] = value < 0 ? (int32_t)(-0.5 + value * (1 << RESAMPLE_PRECISION_BITS))
                                 : (int32_t)(0.5 + value * (1 << RESAMPLE_PRECISION_BITS));
        }
        w->first[out] = first;
        w->count[out] = count;
    }
    free(row);
    return true;

fail:
    free(row);
    resample_weights_free(w);
    return false;
}

/* The triangle filter's weights are non-negative and sum to 2^22 (give or take
 * rounding), so 255 times their sum plus the rounding half fits in int32 with room
 * to spare, as in PIL; int32 lets the compiler vectorise the loops. */
static inline uint8_t resample_round(int32_t sum)
{
    sum >>= RESAMPLE_PRECISION_BITS;
    return (uint8_t)(sum < 0 ? 0 : sum > 255 ? 255 : sum);
}

/* Rows resampled together by the horizontal pass: one vector lane per row. */
#define RESAMPLE_ROWS 8

typedef uint8_t v16u8 __attribute__((vector_size(16)));

/* out[i][r] = in[r][i] for an 8 × 8 block of bytes, in three rounds of
 * interleaving (bytes, pairs, quads). Pointers only cross the call, so it
 * inlines into its callers. */
static inline __attribute__((always_inline)) void transpose8x8(const uint8_t *const in[8],
                                                               uint8_t *const out[8])
{
    v16u8 a[8], t[4], u[4], v[4];
    for (int r = 0; r < 8; r++) {
        a[r] = (v16u8){0};
        memcpy(&a[r], in[r], 8);
    }
    for (int j = 0; j < 4; j++)
        t[j] = __builtin_shufflevector(a[2 * j], a[2 * j + 1], 0, 16, 1, 17, 2, 18, 3, 19, 4, 20,
                                       5, 21, 6, 22, 7, 23);
    for (int j = 0; j < 2; j++) {
        u[2 * j] = __builtin_shufflevector(t[2 * j], t[2 * j + 1], 0, 1, 16, 17, 2, 3, 18, 19, 4,
                                           5, 20, 21, 6, 7, 22, 23);
        u[2 * j + 1] = __builtin_shufflevector(t[2 * j], t[2 * j + 1], 8, 9, 24, 25, 10, 11, 26,
                                               27, 12, 13, 28, 29, 14, 15, 30, 31);
    }
    /* u[0]: columns 0-3 of rows 0-3, u[2]: of rows 4-7; u[1], u[3]: columns 4-7 */
    for (int j = 0; j < 2; j++) {
        v[2 * j] = __builtin_shufflevector(u[j], u[j + 2], 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7,
                                           20, 21, 22, 23);
        v[2 * j + 1] = __builtin_shufflevector(u[j], u[j + 2], 8, 9, 10, 11, 24, 25, 26, 27, 12,
                                               13, 14, 15, 28, 29, 30, 31);
    }
    for (int i = 0; i < 4; i++) {
        memcpy(out[2 * i], &v[i], 8);
        memcpy(out[2 * i + 1], (const uint8_t *)&v[i] + 8, 8);
    }
}


struct fv_resampler {
    const struct fv_image *src;
    /* src in blocks of eight rows, interleaved: byte (block, i, r) is byte i of
     * row 8 · block + r (a short last block repeats its last row). */
    uint8_t *rows;
};

/* One block of eight interleaved rows through the horizontal filter: staged
 * gets byte (x, channel, lane) at (x · 3 + channel) · 8 + lane. */
static void taps_generic(const uint8_t *block, const struct resample_weights *w, int out_w,
                         uint8_t *staged)
{
    for (int x = 0; x < out_w; x++) {
        const int32_t *weight = w->weight + (size_t)x * (size_t)w->taps;
        const uint8_t *p = block + (size_t)w->first[x] * 3 * RESAMPLE_ROWS;
        int32_t acc[3 * RESAMPLE_ROWS];
        for (int i = 0; i < 3 * RESAMPLE_ROWS; i++)
            acc[i] = 1 << (RESAMPLE_PRECISION_BITS - 1);
        for (int k = 0; k < w->count[x]; k++, p += 3 * RESAMPLE_ROWS)
            for (int i = 0; i < 3 * RESAMPLE_ROWS; i++)
                acc[i] += (int32_t)p[i] * weight[k];
        for (int i = 0; i < 3 * RESAMPLE_ROWS; i++)
            staged[(size_t)x * 3 * RESAMPLE_ROWS + i] = resample_round(acc[i]);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))

/* Eight bytes widened to eight int32 lanes, times the weight, added to acc. */
static inline __attribute__((always_inline)) AVX2 __m256i mac8(__m256i acc, const uint8_t *p,
                                                               __m256i weight)
{
    __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
    return _mm256_add_epi32(acc, _mm256_mullo_epi32(v, weight));
}

/* (acc >> 22) clamped to 0..255, as eight bytes at out. */
static inline __attribute__((always_inline)) AVX2 void round8(__m256i acc, uint8_t *out)
{
    __m256i v = _mm256_srai_epi32(acc, RESAMPLE_PRECISION_BITS);
    __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64((__m128i *)(void *)out, _mm_packus_epi16(words, words));
}

static AVX2 void taps_avx2(const uint8_t *block, const struct resample_weights *w, int out_w,
                           uint8_t *staged)
{
    const __m256i half = _mm256_set1_epi32(1 << (RESAMPLE_PRECISION_BITS - 1));
    for (int x = 0; x < out_w; x++) {
        const int32_t *weight = w->weight + (size_t)x * (size_t)w->taps;
        const uint8_t *p = block + (size_t)w->first[x] * 3 * RESAMPLE_ROWS;
        __m256i r = half, g = half, b = half;
        for (int k = 0; k < w->count[x]; k++, p += 3 * RESAMPLE_ROWS) {
            __m256i wk = _mm256_set1_epi32(weight[k]);
            r = mac8(r, p, wk);
            g = mac8(g, p + RESAMPLE_ROWS, wk);
            b = mac8(b, p + 2 * RESAMPLE_ROWS, wk);
        }
        uint8_t *out = staged + (size_t)x * 3 * RESAMPLE_ROWS;
        round8(r, out);
        round8(g, out + RESAMPLE_ROWS);
        round8(b, out + 2 * RESAMPLE_ROWS);
    }
}

/* out[i] = (acc[i] >> 22) clamped to 0..255, for i < n8 (a multiple of 8). */
static AVX2 void column_round_avx2(const int32_t *acc, uint8_t *out, size_t n8)
{
    for (size_t i = 0; i < n8; i += 8)
        round8(_mm256_loadu_si256((const __m256i *)(const void *)(acc + i)), out + i);
}

/* acc[i] += p[i] · weight for i < n8 (a multiple of 8). */
static AVX2 void column_mac_avx2(int32_t *acc, const uint8_t *p, size_t n8, int32_t weight)
{
    const __m256i wk = _mm256_set1_epi32(weight);
    for (size_t i = 0; i < n8; i += 8) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(acc + i));
        _mm256_storeu_si256((__m256i *)(void *)(acc + i), mac8(a, p + i, wk));
    }
}

/* The CPU level chosen for the process (model/cpu.h) decides, as for the networks. */
static int resample_avx2(void)
{
    const enum fv_cpu_level level = fv_cpu_active_level();
    return level == FV_CPU_AVX2 || level == FV_CPU_AVX512 || level == FV_CPU_AVX512_BF16;
}
#else
/* Without x86 intrinsics: never chosen (resample_avx2() is 0). */
static int resample_avx2(void) { return 0; }
static void taps_avx2(const uint8_t *block, const struct resample_weights *w, int out_w,
                      uint8_t *staged)
{
    taps_generic(block, w, out_w, staged);
}
static void column_round_avx2(const int32_t *acc, uint8_t *out, size_t n8)
{
    (void)acc, (void)out, (void)n8;
}
static void column_mac_avx2(int32_t *acc, const uint8_t *p, size_t n8, int32_t weight)
{
    (void)acc, (void)p, (void)n8, (void)weight;
}
#endif

/* The horizontal pass for dst rows [0, dst->height), which read src rows
 * row_offset.. Eight rows at a time from the interleaved copy: each tap is one
 * vector multiply-add per channel for all eight rows (they share the weights).
 * The sums are integers, so the result is PIL's exactly whatever the order.
 * staged holds dst->width * 24 bytes, spare one row of dst. */
static void resample_horizontal_rows(const struct fv_resampler *rs, struct fv_image *dst,
                                            int row_offset, const struct resample_weights *w,
                                            uint8_t *staged, uint8_t *spare)
{
    const size_t block_bytes = (size_t)rs->src->width * 3 * RESAMPLE_ROWS;
    const int out_w = dst->width, first = row_offset, last = row_offset + dst->height;
    const int use_avx2 = resample_avx2();
    for (int yb = first / RESAMPLE_ROWS; yb * RESAMPLE_ROWS < last; yb++) {
        const uint8_t *block = rs->rows + (size_t)yb * block_bytes;
        if (use_avx2)
            taps_avx2(block, w, out_w, staged);
        else
            taps_generic(block, w, out_w, staged);
        /* back to rows: lanes outside [first, last) go to a scratch row */
        uint8_t *rows[RESAMPLE_ROWS];
        for (int lane = 0; lane < RESAMPLE_ROWS; lane++) {
            int y = yb * RESAMPLE_ROWS + lane;
            rows[lane] = y >= first && y < last ? pixel_at(dst, 0, y - row_offset) : spare;
        }
        const int bytes = out_w * 3, b8 = bytes & ~7;
        for (int i0 = 0; i0 < b8; i0 += 8) {
            const uint8_t *in[8];
            uint8_t *to[8];
            for (int j = 0; j < 8; j++) {
                in[j] = staged + (size_t)(i0 + j) * RESAMPLE_ROWS;
                to[j] = rows[j] + i0;
            }
            transpose8x8(in, to);
        }
        for (int i = b8; i < bytes; i++)
            for (int lane = 0; lane < RESAMPLE_ROWS; lane++)
                rows[lane][i] = staged[(size_t)i * RESAMPLE_ROWS + lane];
    }
}

/* As above with the buffer allocated here; false when out of memory. */
static bool resample_horizontal(const struct fv_resampler *rs, struct fv_image *dst,
                                int row_offset, const struct resample_weights *w)
{
    uint8_t *staged = malloc((size_t)dst->width * 3 * (RESAMPLE_ROWS + 1));
    if (staged)
        resample_horizontal_rows(rs, dst, row_offset, w, staged,
                                 staged + (size_t)dst->width * 3 * RESAMPLE_ROWS);
    free(staged);
    return staged != NULL;
}

/* dst row y reads src rows first[y] - row_offset.. A whole row accumulates tap by
 * tap in acc (stride values), which keeps the inner loop contiguous. */
static void resample_vertical(const struct fv_image *src, struct fv_image *dst,
                              int row_offset, const struct resample_weights *w, int32_t *acc)
{
    const size_t stride = (size_t)src->width * 3;
    /* the first `vec` values of a row go through AVX2, the rest one by one */
    const size_t vec = resample_avx2() ? stride & ~(size_t)7 : 0;
    for (int y = 0; y < dst->height; y++) {
        const int32_t *weight = w->weight + (size_t)y * (size_t)w->taps;
        const uint8_t *column = pixel_at(src, 0, w->first[y] - row_offset);
        uint8_t *out = pixel_at(dst, 0, y);
        for (size_t i = 0; i < stride; i++)
            acc[i] = 1 << (RESAMPLE_PRECISION_BITS - 1);
        for (int k = 0; k < w->count[y]; k++) {
            const uint8_t *p = column + (size_t)k * stride;
            column_mac_avx2(acc, p, vec, weight[k]);
            for (size_t i = vec; i < stride; i++)
                acc[i] += (int32_t)p[i] * weight[k];
        }
        column_round_avx2(acc, out, vec);
        for (size_t i = vec; i < stride; i++)
            out[i] = resample_round(acc[i]);
    }
}

/* Rows y0 .. y0 + 7 of src (the last row repeated past the end) into block,
 * byte i of row y0 + r at i · 8 + r. */
static void interleave_rows(const struct fv_image *src, int y0, uint8_t *block)
{
    const int bytes = src->width * 3, b8 = bytes & ~7;
    const uint8_t *rows[RESAMPLE_ROWS];
    for (int lane = 0; lane < RESAMPLE_ROWS; lane++)
        rows[lane] = pixel_at(src, 0, y0 + lane < src->height ? y0 + lane : src->height - 1);
    for (int i0 = 0; i0 < b8; i0 += 8) {
        const uint8_t *in[8];
        uint8_t *to[8];
        for (int j = 0; j < 8; j++) {
            in[j] = rows[j] + i0;
            to[j] = block + (size_t)(i0 + j) * RESAMPLE_ROWS;
        }
        transpose8x8(in, to);
    }
    for (int i = b8; i < bytes; i++)
        for (int lane = 0; lane < RESAMPLE_ROWS; lane++)
            block[(size_t)i * RESAMPLE_ROWS + lane] = rows[lane][i];
}

struct fv_resampler *fv_resampler_new(const struct fv_image *src)
{
    if (!image_is_valid(src))
        return NULL;
    struct fv_resampler *rs = calloc(1, sizeof *rs);
    size_t blocks = ((size_t)src->height + RESAMPLE_ROWS - 1) / RESAMPLE_ROWS;
    size_t row_bytes = (size_t)src->width * 3;
    if (!rs || !(rs->rows = malloc(blocks * row_bytes * RESAMPLE_ROWS))) {
        free(rs);
        return NULL;
    }
    rs->src = src;
    for (size_t yb = 0; yb < blocks; yb++)
        interleave_rows(src, (int)(yb * RESAMPLE_ROWS), rs->rows + yb * row_bytes * RESAMPLE_ROWS);
    return rs;
}

void fv_resampler_free(struct fv_resampler *rs)
{
    if (!rs)
        return;
    free(rs->rows);
    free(rs);
}

enum fv_status fv_resampler_resize(const struct fv_resampler *rs, int width, int height,
                                   struct fv_image **out, struct fv_error *err)
{
    struct resample_weights horizontal = {0}, vertical = {0};
    struct fv_image *temp = NULL, *dst = NULL;
    int32_t *acc = NULL;
    enum fv_status status = FV_OK;

    if (!out)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_resize: NULL output");
    *out = NULL;
    if (!rs || !image_is_valid(rs->src))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_resize: no image");
    const struct fv_image *src = rs->src;
    if (width <= 0 || height <= 0)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "cannot resize to %dx%d", width, height);

    bool need_horizontal = width != src->width, need_vertical = height != src->height;
    if (!need_horizontal && !need_vertical) {
        dst = fv_image_clone(src);
        if (!dst)
            goto fail;
        *out = dst;
        return FV_OK;
    }
    dst = fv_image_new(width, height);
    if (!dst)
        goto fail;
    if (need_vertical && !resample_weights_init(&vertical, src->height, height))
        goto fail;
    if (need_horizontal && !resample_weights_init(&horizontal, src->width, width))
        goto fail;
    if (need_vertical && !(acc = malloc((size_t)width * 3 * sizeof *acc)))
        goto fail;

    if (need_horizontal && need_vertical) {
        /* only the source rows the vertical pass will read */
        int first = vertical.first[0];
        int last = vertical.first[height - 1] + vertical.count[height - 1];
        temp = fv_image_new(width, last - first);
        if (!temp)
            goto fail;
        if (!resample_horizontal(rs, temp, first, &horizontal))
            goto fail;
        resample_vertical(temp, dst, first, &vertical, acc);
    } else if (need_horizontal) {
        if (!resample_horizontal(rs, dst, 0, &horizontal))
            goto fail;
    } else {
        resample_vertical(src, dst, 0, &vertical, acc);
    }
    resample_weights_free(&horizontal);
    resample_weights_free(&vertical);
    fv_image_free(temp);
    free(acc);
    *out = dst;
    return FV_OK;

fail: /* every failure here is an allocation */
    status = fv_error_set(err, FV_ERR_NOMEM, "out of memory resizing %dx%d to %dx%d",
                          src->width, src->height, width, height);
    resample_weights_free(&horizontal);
    resample_weights_free(&vertical);
    fv_image_free(temp);
    fv_image_free(dst);
    free(acc);
    return status;
}

enum fv_status fv_image_resize(const struct fv_image *src, int width, int height,
                               struct fv_image **out, struct fv_error *err)
{
    if (!out)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_resize: NULL output");
    *out = NULL;
    if (!image_is_valid(src))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_resize: no image");
    if (width <= 0 || height <= 0)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "cannot resize to %dx%d", width, height);
    if (width == src->width) {
        /* no horizontal pass: no interleaved copy needed */
        struct fv_resampler direct = {src, NULL};
        return fv_resampler_resize(&direct, width, height, out, err);
    }
    struct fv_resampler *rs = fv_resampler_new(src);
    if (!rs)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory resizing %dx%d to %dx%d",
                            src->width, src->height, width, height);
    enum fv_status st = fv_resampler_resize(rs, width, height, out, err);
    fv_resampler_free(rs);
    return st;
}

/* ---- crop and drawing ---- */

struct fv_image *fv_image_crop(const struct fv_image *src, int x, int y, int w, int h)
{
    if (!image_is_valid(src))
        return NULL;
    struct fv_image *dst = fv_image_new(w, h);
    if (!dst)
        return NULL;
    /* the overlap, in source coordinates; int64 because x + w may overflow int */
    int64_t left = x > 0 ? x : 0, top = y > 0 ? y : 0;
    int64_t right = (int64_t)x + w, bottom = (int64_t)y + h;
    if (right > src->width)
        right = src->width;
    if (bottom > src->height)
        bottom = src->height;
    for (int64_t sy = top; sy < bottom && left < right; sy++)
        memcpy(pixel_at(dst, (int)(left - x), (int)(sy - y)), pixel_at(src, (int)left, (int)sy),
               (size_t)(right - left) * 3);
    return dst;
}

/* Nearest pixel of a coordinate, clamped far outside any image so that the
 * conversion to int64 is defined. */
static bool nearest_pixel(float value, int64_t *pixel)
{
    if (!isfinite(value))
        return false;
    double v = floor((double)value + 0.5);
    if (v < -1e12)
        v = -1e12;
    if (v > 1e12)
        v = 1e12;
    *pixel = (int64_t)v;
    return true;
}

/* Fills the inclusive box, clipped to the image. */
static void fill_box(struct fv_image *img, int64_t x1, int64_t y1, int64_t x2, int64_t y2,
                     uint8_t r, uint8_t g, uint8_t b)
{
    if (x1 < 0)
        x1 = 0;
    if (y1 < 0)
        y1 = 0;
    if (x2 >= img->width)
        x2 = img->width - 1;
    if (y2 >= img->height)
        y2 = img->height - 1;
    if (x1 > x2 || y1 > y2)
        return;
    for (int64_t y = y1; y <= y2; y++) {
        uint8_t *p = pixel_at(img, (int)x1, (int)y);
        for (int64_t x = x1; x <= x2; x++, p += 3) {
            p[0] = r;
            p[1] = g;
            p[2] = b;
        }
    }
}

void fv_image_draw_rect(struct fv_image *img, float x1, float y1, float x2, float y2,
                        uint8_t r, uint8_t g, uint8_t b, int thickness)
{
    int64_t left, top, right, bottom;
    if (!image_is_valid(img) || !nearest_pixel(x1, &left) || !nearest_pixel(y1, &top) ||
        !nearest_pixel(x2, &right) || !nearest_pixel(y2, &bottom))
        return;
    if (left > right) {
        int64_t t = left;
        left = right;
        right = t;
    }
    if (top > bottom) {
        int64_t t = top;
        top = bottom;
        bottom = t;
    }
    int64_t t = thickness < 1 ? 1 : thickness;
    fill_box(img, left, top, right, top + t - 1, r, g, b);        /* top */
    fill_box(img, left, bottom - t + 1, right, bottom, r, g, b);  /* bottom */
    fill_box(img, left, top, left + t - 1, bottom, r, g, b);      /* left */
    fill_box(img, right - t + 1, top, right, bottom, r, g, b);    /* right */
}

void fv_image_draw_point(struct fv_image *img, float x, float y, int radius, uint8_t r,
                         uint8_t g, uint8_t b)
{
    int64_t cx, cy;
    if (!image_is_valid(img) || !nearest_pixel(x, &cx) || !nearest_pixel(y, &cy))
        return;
    int64_t rad = radius < 0 ? 0 : radius;
    int64_t y1 = cy - rad < 0 ? 0 : cy - rad;
    int64_t y2 = cy + rad >= img->height ? img->height - 1 : cy + rad;
    int64_t x1 = cx - rad < 0 ? 0 : cx - rad;
    int64_t x2 = cx + rad >= img->width ? img->width - 1 : cx + rad;
    for (int64_t py = y1; py <= y2; py++)
        for (int64_t px = x1; px <= x2; px++) {
            int64_t dx = px - cx, dy = py - cy;
            if (dx * dx + dy * dy <= rad * rad) {
                uint8_t *p = pixel_at(img, (int)px, (int)py);
                p[0] = r;
                p[1] = g;
                p[2] = b;
            }
        }
}
