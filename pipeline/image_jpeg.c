/* image_jpeg.c - JPEG decoding and encoding with libjpeg-turbo. */
#include "pipeline/image_internal.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

/* A real progressive JPEG has about ten scans; thousands of tiny scans over a
 * large image make libjpeg walk its coefficient buffer once per scan. */
#define JPEG_MAX_SCANS 500

/* A progressive (or any multi-scan) JPEG is decoded from a buffer holding
 * every DCT coefficient of the image: 64 of 2 bytes per 8x8 block of each
 * component, so 2 bytes per pixel for each component at full resolution.
 * libjpeg's memory is bounded by what the largest image within the pixel limit
 * can need, four full-resolution components (CMYK 4:4:4) at 8 bytes per pixel,
 * plus room for its row buffers; with no pixel limit, by what the default
 * limit allows. A 40-megapixel progressive 4:2:0 photo needs 120 MB for its
 * coefficients (and the decoded RGB another 120 MB), and decodes whatever the
 * scale. libjpeg-turbo has no backing store, so an image that needs more is
 * refused. */
#define JPEG_COEFFICIENT_BYTES_PER_PIXEL 8
#define JPEG_WORKING_BYTES ((uint64_t)32 * 1024 * 1024)

/* ---- libjpeg error handling, shared by decoding and encoding ---- */

struct jpeg_error_context {
    struct jpeg_error_mgr manager; /* first: libjpeg hands us a pointer to it */
    jmp_buf jump;
    enum fv_status status;
    bool truncated;
    bool too_many_scans;
    bool over_memory; /* needed more than cinfo->mem->max_memory_to_use */
    char message[JMSG_LENGTH_MAX];
};

static void jpeg_on_error(j_common_ptr cinfo)
{
    struct jpeg_error_context *context = (struct jpeg_error_context *)cinfo->err;
    cinfo->err->format_message(cinfo, context->message);
    switch (cinfo->err->msg_code) {
    case JERR_IMAGE_TOO_BIG: context->status = FV_ERR_TOO_LARGE; break;
    case JERR_NO_BACKING_STORE: /* asked for more than max_memory_to_use */
        context->status = FV_ERR_TOO_LARGE;
        context->over_memory = true;
        break;
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

/* What a decoder run is for: the header alone (probing), the whole image at
 * full size, or the part of the upright image covering the rectangle (x, y,
 * w, h) of its full size, at scale_eighths / 8. */
struct jpeg_request {
    bool header_only;
    bool whole;
    int scale_eighths;
    int64_t x, y, w, h;
};

/* Everything the decoder allocates, so that the caller can release it
 * whichever way jpeg_decode_run() ends, longjmp included. Keeping this state
 * out of the function that calls setjmp() keeps it well defined after the
 * jump. */
struct jpeg_decoder {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_context error;
    struct jpeg_progress_mgr progress;
    struct jpeg_request request;
    struct fv_image *img;
    uint8_t *row; /* one row as libjpeg gives it, when it needs converting or trimming */
    int orientation;
    /* the decoded part, in pixels of the stored image at the decoding scale,
     * whose size is scaled_width x scaled_height */
    int part_x, part_y;
    int scaled_width, scaled_height;
};

static int jpeg_find_orientation(j_decompress_ptr cinfo)
{
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
            memcmp(m->data, "Exif\0\0", 6) == 0)
            return fv_exif_orientation(m->data, m->data_length);
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

/* [*first, *last) of a side of `size` pixels mirrored: [size - last, size - first). */
static void mirror_interval(int64_t *first, int64_t *last, int64_t size)
{
    int64_t f = *first;
    *first = size - *last;
    *last = size - f;
}

/* Orientations that mirror the stored image's columns, or its rows, on the
 * way to the upright one (before the transposition of 5..8). */
static bool orientation_mirrors_columns(int orientation)
{
    return orientation == 2 || orientation == 3 || orientation == 7 || orientation == 8;
}

static bool orientation_mirrors_rows(int orientation)
{
    return orientation == 3 || orientation == 4 || orientation == 6 || orientation == 7;
}

/* The rectangle of the stored image, at full size, that holds the upright
 * rectangle (x, y, w, h) under `orientation`. */
static void upright_to_stored(int orientation, int64_t stored_width, int64_t stored_height,
                              int64_t x, int64_t y, int64_t w, int64_t h, int64_t *sx0,
                              int64_t *sy0, int64_t *sx1, int64_t *sy1)
{
    bool transposed = orientation >= 5 && orientation <= 8;
    *sx0 = transposed ? y : x;
    *sx1 = transposed ? y + h : x + w;
    *sy0 = transposed ? x : y;
    *sy1 = transposed ? x + w : y + h;
    if (orientation_mirrors_columns(orientation))
        mirror_interval(sx0, sx1, stored_width);
    if (orientation_mirrors_rows(orientation))
        mirror_interval(sy0, sy1, stored_height);
}

/* libjpeg's own rounding of a side scaled by M/8 (jdiv_round_up). */
static int64_t scaled_side(int64_t side, int scale_eighths)
{
    return (side * scale_eighths + 7) / 8;
}

/* Clamps the rectangle of a region request to the upright image; one wholly
 * outside it is FV_ERR_INVALID_ARG. */
static enum fv_status clamp_to_upright(struct jpeg_request *r, int orientation,
                                       int64_t stored_width, int64_t stored_height,
                                       struct fv_error *err)
{
    bool transposed = orientation >= 5 && orientation <= 8;
    int64_t width = transposed ? stored_height : stored_width;
    int64_t height = transposed ? stored_width : stored_height;
    int64_t x0 = r->x > 0 ? r->x : 0, y0 = r->y > 0 ? r->y : 0;
    int64_t x1 = r->x + r->w < width ? r->x + r->w : width;
    int64_t y1 = r->y + r->h < height ? r->y + r->h : height;
    if (x0 >= x1 || y0 >= y1)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "JPEG region (%" PRId64 ", %" PRId64
                            ", %" PRId64 ", %" PRId64 ") lies outside the %" PRId64 "x%"
                            PRId64 " image", r->x, r->y, r->w, r->h, width, height);
    r->x = x0;
    r->y = y0;
    r->w = x1 - x0;
    r->h = y1 - y0;
    return FV_OK;
}

/* The most memory libjpeg may use decoding one image (see
 * JPEG_COEFFICIENT_BYTES_PER_PIXEL), in bytes. */
static long jpeg_memory_bound(const struct fv_image_limits *limits)
{
    struct fv_image_limits defaults;
    fv_image_default_limits(&defaults);
    uint64_t pixels = limits->max_pixels ? limits->max_pixels : defaults.max_pixels;
    uint64_t most = (LONG_MAX - JPEG_WORKING_BYTES) / JPEG_COEFFICIENT_BYTES_PER_PIXEL;
    if (pixels > most)
        pixels = most;
    return (long)(pixels * JPEG_COEFFICIENT_BYTES_PER_PIXEL + JPEG_WORKING_BYTES);
}

/* Whether the data left unread from here on holds the EOI marker: a decoder
 * that stops after the rows it needs must still tell a truncated file, as a
 * whole decode would. In entropy-coded data a 0xff byte is always followed by
 * 0x00 or a restart marker, so FF D9 there is the EOI marker itself. */
static bool jpeg_rest_has_eoi(j_decompress_ptr cinfo)
{
    if (jpeg_input_complete(cinfo) || cinfo->unread_marker == JPEG_EOI)
        return true;
    const uint8_t *p = cinfo->src->next_input_byte;
    size_t n = cinfo->src->bytes_in_buffer;
    while (n >= 2) {
        const uint8_t *ff = memchr(p, 0xff, n - 1);
        if (!ff)
            return false;
        if (ff[1] == JPEG_EOI)
            return true;
        n -= (size_t)(ff + 1 - p);
        p = ff + 1;
    }
    return false;
}

static enum fv_status jpeg_decode_run(struct jpeg_decoder *d, const uint8_t *data, size_t size,
                                      const struct fv_image_limits *limits, struct fv_error *err)
{
    if (setjmp(d->error.jump))
        return d->error.status; /* the message is written by the caller */

    jpeg_create_decompress(&d->cinfo);
    d->cinfo.mem->max_memory_to_use = jpeg_memory_bound(limits);
    d->progress.progress_monitor = jpeg_on_progress;
    d->cinfo.progress = &d->progress;
    jpeg_mem_src(&d->cinfo, data, (unsigned long)size);
    jpeg_save_markers(&d->cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&d->cinfo, TRUE);

    enum fv_status status = fv_image_check_dimensions(d->cinfo.image_width,
                                                      d->cinfo.image_height, limits, "JPEG",
                                                      err);
    if (status != FV_OK)
        return status;
    d->orientation = jpeg_find_orientation(&d->cinfo);
    struct jpeg_request *request = &d->request;
    if (request->header_only)
        return FV_OK;
    if (!request->whole) {
        status = clamp_to_upright(request, d->orientation, d->cinfo.image_width,
                                  d->cinfo.image_height, err);
        if (status != FV_OK)
            return status;
    }

    bool cmyk = d->cinfo.jpeg_color_space == JCS_CMYK || d->cinfo.jpeg_color_space == JCS_YCCK;
    d->cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    d->cinfo.scale_num = (unsigned)request->scale_eighths;
    d->cinfo.scale_denom = 8;
    jpeg_start_decompress(&d->cinfo);

    int64_t image_width = d->cinfo.image_width, image_height = d->cinfo.image_height;
    int64_t expected_width = scaled_side(image_width, request->scale_eighths);
    int64_t expected_height = scaled_side(image_height, request->scale_eighths);
    if (d->cinfo.output_width != expected_width || d->cinfo.output_height != expected_height ||
        d->cinfo.output_components != (cmyk ? 4 : 3))
        return fv_error_set(err, FV_ERR_INTERNAL, "JPEG decoder produced %ux%u x %d, "
                            "expected %" PRId64 "x%" PRId64, d->cinfo.output_width,
                            d->cinfo.output_height, d->cinfo.output_components,
                            expected_width, expected_height);
    d->scaled_width = (int)d->cinfo.output_width;
    d->scaled_height = (int)d->cinfo.output_height;

    /* the stored rows and columns to decode, rounded out to whole pixels of
     * the decoding scale */
    int64_t sx0 = 0, sy0 = 0, sx1 = image_width, sy1 = image_height;
    if (!request->whole)
        upright_to_stored(d->orientation, image_width, image_height, request->x, request->y,
                          request->w, request->h, &sx0, &sy0, &sx1, &sy1);
    int64_t first_column = sx0 * request->scale_eighths / 8;
    int64_t last_column = scaled_side(sx1, request->scale_eighths);
    int64_t first_row = sy0 * request->scale_eighths / 8;
    int64_t last_row = scaled_side(sy1, request->scale_eighths);

    /* Columns: libjpeg crops in whole iMCUs, moving the left edge down to an
     * iMCU boundary. Its upsampling of chroma reads the neighbouring samples,
     * which at a cropped edge are missing (it repeats the edge instead), so
     * the crop reaches at least one pixel past each edge of the columns kept,
     * unless that edge is the image's. Rows need no such margin:
     * jpeg_skip_scanlines() decodes the rows that the first kept row's
     * upsampling reads. */
    int components = cmyk ? 4 : 3;
    JDIMENSION crop_x = (JDIMENSION)(first_column > 0 ? first_column - 1 : 0);
    JDIMENSION crop_end = (JDIMENSION)(last_column < expected_width ? last_column + 1
                                                                    : expected_width);
    JDIMENSION crop_width = crop_end - crop_x;
    if (crop_x != 0 || crop_width != d->cinfo.output_width)
        jpeg_crop_scanline(&d->cinfo, &crop_x, &crop_width);
    if (crop_x > first_column || crop_x + crop_width < last_column)
        return fv_error_set(err, FV_ERR_INTERNAL, "JPEG crop gave columns %u..%u, asked "
                            "%" PRId64 "..%" PRId64, crop_x, crop_x + crop_width,
                            first_column, last_column);
    d->part_x = (int)first_column;
    d->part_y = (int)first_row;

    /* rows go straight into the image when they are its rows as they are */
    int width = (int)(last_column - first_column), height = (int)(last_row - first_row);
    bool staged = cmyk || crop_width != (JDIMENSION)width;
    size_t skip_bytes = (size_t)(first_column - crop_x) * (size_t)components;
    d->img = fv_image_new(width, height);
    if (staged)
        d->row = malloc((size_t)crop_width * (size_t)components);
    if (!d->img || (staged && !d->row))
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory decoding a %dx%d JPEG",
                            width, height);

    if (first_row > 0 &&
        jpeg_skip_scanlines(&d->cinfo, (JDIMENSION)first_row) != (JDIMENSION)first_row)
        return fv_error_set(err, FV_ERR_FORMAT, "truncated JPEG");
    while (d->cinfo.output_scanline < (JDIMENSION)last_row) {
        uint8_t *out = fv_image_pixel_at(d->img, 0, (int)(d->cinfo.output_scanline - first_row));
        JSAMPROW row = staged ? d->row : out;
        if (jpeg_read_scanlines(&d->cinfo, &row, 1) != 1)
            return fv_error_set(err, FV_ERR_FORMAT, "truncated JPEG");
        if (cmyk)
            cmyk_row_to_rgb(d->row + skip_bytes, out, width, d->cinfo.saw_Adobe_marker);
        else if (staged)
            memcpy(out, d->row + skip_bytes, (size_t)width * 3);
    }
    if (d->cinfo.output_scanline == d->cinfo.output_height) {
        jpeg_finish_decompress(&d->cinfo);
    } else {
        if (!jpeg_rest_has_eoi(&d->cinfo))
            return fv_error_set(err, FV_ERR_FORMAT, "truncated JPEG");
        jpeg_abort_decompress(&d->cinfo);
    }
    return FV_OK;
}

static void jpeg_decoder_init(struct jpeg_decoder *d)
{
    memset(d, 0, sizeof *d);
    jpeg_error_init(&d->error);
    d->cinfo.err = &d->error.manager;
    d->orientation = 1;
}

/* Runs the decoder for request and, when it failed inside libjpeg, turns
 * libjpeg's account into ours. */
static enum fv_status jpeg_decoder_run(struct jpeg_decoder *d, const uint8_t *data, size_t size,
                                       const struct fv_image_limits *limits,
                                       const struct jpeg_request *request,
                                       struct fv_error *err)
{
    d->request = *request;
    enum fv_status status = jpeg_decode_run(d, data, size, limits, err);
    if (status == FV_OK || d->error.status == FV_OK)
        return status;
    /* came through longjmp */
    if (d->error.truncated)
        fv_error_set(err, status, "truncated JPEG");
    else if (d->error.too_many_scans)
        fv_error_set(err, status, "corrupt JPEG: more than %d progressive scans",
                     JPEG_MAX_SCANS);
    else if (d->error.over_memory)
        fv_error_set(err, status, "image too large: this %ux%u JPEG needs more than %ld MB "
                     "to decode", d->cinfo.image_width, d->cinfo.image_height,
                     d->cinfo.mem->max_memory_to_use / 1000000);
    else if (status == FV_ERR_TOO_LARGE)
        fv_error_set(err, status, "image too large: %ux%u pixels, JPEG allows at most "
                     "%ld per side", d->cinfo.image_width, d->cinfo.image_height,
                     (long)JPEG_MAX_DIMENSION);
    else if (status == FV_ERR_NOMEM)
        fv_error_set(err, status, "out of memory decoding JPEG");
    else if (status == FV_ERR_UNSUPPORTED)
        fv_error_set(err, status, "unsupported JPEG: %s", d->error.message);
    else
        fv_error_set(err, status, "corrupt JPEG: %s", d->error.message);
    return status;
}

static void jpeg_decoder_free(struct jpeg_decoder *d)
{
    jpeg_destroy_decompress(&d->cinfo); /* safe on a zeroed struct */
    free(d->row);
    fv_image_free(d->img);
}

enum fv_status fv_jpeg_decode(const uint8_t *data, size_t size,
                              const struct fv_image_limits *limits, struct fv_image **out,
                              int *orientation, struct fv_error *err)
{
    struct jpeg_decoder d;
    jpeg_decoder_init(&d);
    const struct jpeg_request whole = {.scale_eighths = 8, .whole = true};
    enum fv_status status = jpeg_decoder_run(&d, data, size, limits, &whole, err);
    if (status == FV_OK) {
        *out = d.img;
        *orientation = d.orientation;
        d.img = NULL;
    }
    jpeg_decoder_free(&d);
    return status;
}

enum fv_status fv_jpeg_probe(const uint8_t *data, size_t size,
                             const struct fv_image_limits *limits, struct fv_image_info *info,
                             struct fv_error *err)
{
    struct jpeg_decoder d;
    jpeg_decoder_init(&d);
    const struct jpeg_request header = {.header_only = true};
    enum fv_status status = jpeg_decoder_run(&d, data, size, limits, &header, err);
    if (status == FV_OK) {
        bool transposed = d.orientation >= 5 && d.orientation <= 8;
        info->format = "JPEG";
        info->width = (int)(transposed ? d.cinfo.image_height : d.cinfo.image_width);
        info->height = (int)(transposed ? d.cinfo.image_width : d.cinfo.image_height);
    }
    jpeg_decoder_free(&d);
    return status;
}

/* M of the smallest scale M/8 >= min_scale, M in 1..8. */
static int scale_eighths_for(float min_scale)
{
    if (!(min_scale > 0.125f))
        return 1;
    if (min_scale >= 1.0f)
        return 8;
    return (int)ceil((double)min_scale * 8.0);
}

enum fv_status fv_jpeg_decode_region(const uint8_t *data, size_t size,
                                     const struct fv_image_limits *limits, float min_scale,
                                     int x, int y, int w, int h, struct fv_image **out,
                                     struct fv_image_window *window, struct fv_error *err)
{
    struct fv_image_limits default_limits;
    struct jpeg_decoder d;
    jpeg_decoder_init(&d);

    if (!out || !window || (!data && size > 0))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_jpeg_decode_region: NULL argument");
    *out = NULL;
    if (isnan(min_scale))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "JPEG region: the scale is not a number");
    if (w <= 0 || h <= 0)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "JPEG region: empty rectangle %dx%d",
                            w, h);
    limits = fv_image_limits_or_default(limits, &default_limits);
    enum fv_status status = fv_image_check_encoded(data, size, limits, err);
    if (status != FV_OK)
        return status;

    const struct jpeg_request region = {.scale_eighths = scale_eighths_for(min_scale),
                                        .x = x, .y = y, .w = w, .h = h};
    status = jpeg_decoder_run(&d, data, size, limits, &region, err);
    if (status != FV_OK)
        goto fail;

    /* where the part lies in the upright image at that scale: its stored
     * intervals, mirrored and transposed as its pixels are about to be */
    int64_t px0 = d.part_x, px1 = d.part_x + d.img->width;
    int64_t py0 = d.part_y, py1 = d.part_y + d.img->height;
    if (orientation_mirrors_columns(d.orientation))
        mirror_interval(&px0, &px1, d.scaled_width);
    if (orientation_mirrors_rows(d.orientation))
        mirror_interval(&py0, &py1, d.scaled_height);
    bool transposed = d.orientation >= 5 && d.orientation <= 8;
    status = fv_image_orient(&d.img, d.orientation, err);
    if (status != FV_OK)
        goto fail;
    window->scale = (float)region.scale_eighths / 8.0f;
    window->x = (int)(transposed ? py0 : px0);
    window->y = (int)(transposed ? px0 : py0);
    *out = d.img;
    d.img = NULL;
    jpeg_decoder_free(&d);
    return FV_OK;

fail:
    jpeg_decoder_free(&d);
    return status;
}

/* ---- JPEG encoding ---- */

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
        JSAMPROW row = fv_image_pixel_at(img, 0, (int)e->cinfo.next_scanline);
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
    enum fv_status status = fv_image_check_encodable(img, out, out_size, err);
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
