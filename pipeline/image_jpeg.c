/* image_jpeg.c - JPEG decoding and encoding with libjpeg-turbo. */
#include "pipeline/image_internal.h"

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

    enum fv_status status = fv_image_check_dimensions(d->cinfo.image_width,
                                                      d->cinfo.image_height, limits, "JPEG",
                                                      err);
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
        JSAMPROW row = cmyk ? d->cmyk_row : fv_image_pixel_at(d->img, 0, y);
        if (jpeg_read_scanlines(&d->cinfo, &row, 1) != 1)
            return fv_error_set(err, FV_ERR_FORMAT, "truncated JPEG");
        if (cmyk)
            cmyk_row_to_rgb(d->cmyk_row, fv_image_pixel_at(d->img, 0, y), width,
                            d->cinfo.saw_Adobe_marker);
    }
    jpeg_finish_decompress(&d->cinfo);
    return FV_OK;
}

enum fv_status fv_jpeg_decode(const uint8_t *data, size_t size,
                              const struct fv_image_limits *limits, struct fv_image **out,
                              int *orientation, struct fv_error *err)
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
