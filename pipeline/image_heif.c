/* image_heif.c - HEIF (HEIC) and AVIF decoding through libheif: the primary image, upright,
 * as 8-bit RGB, once image_heif_check.c has checked what the file declares. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <libheif/heif.h>

#include "pipeline/image_internal.h"

/* libheif refuses an image wider or taller than this while it reads the file
 * (its own default, MAX_IMAGE_WIDTH/HEIGHT in 1.15); a caller's pixel limit
 * below it lowers it. */
#define HEIF_MAX_SIDE 32768

/* ---- orientation ----
 *
 * A HEIF file states how its coded image is to be shown in transformative item
 * properties: clap (crop), irot (rotation), imir (mirror). libheif applies them
 * while decoding (heif_decoding_options.ignore_transformations stays 0), and
 * heif_image_handle_get_width/height already give the transformed size.
 *
 * The Exif orientation tag in a HEIF file is never applied, irot/imir or not.
 * MIAF (ISO/IEC 23000-22, 7.3.6.7) says no image transformation should be
 * expressed by Exif, and libheif's authors read HEIF the same way: the tag is
 * informative, describing the image before irot/imir. Cameras that write both
 * (iPhones: irot plus a matching Exif orientation) would otherwise be turned
 * twice. libheif's own heif-convert and libvips ignore the tag for HEIF and
 * AVIF too. So fv_heif_decode always reports orientation 1. */

/* ---- libheif ---- */

/* Turns a libheif error into ours; `what` says which step failed. libheif's
 * messages may end in a newline, which is dropped. */
static enum fv_status heif_status(struct heif_error e, const char *format, const char *what,
                                  struct fv_error *err)
{
    const char *message = e.message && e.message[0] ? e.message : "no detail";
    int length = (int)strnlen(message, FV_ERROR_MESSAGE_MAX);
    while (length > 0 && (message[length - 1] == '\n' || message[length - 1] == ' '))
        length--;
    switch (e.code) {
    case heif_error_Ok:
        return FV_OK;
    case heif_error_Memory_allocation_error:
        if (e.subcode == heif_suberror_Security_limit_exceeded)
            return fv_error_set(err, FV_ERR_TOO_LARGE, "image too large: %s: %.*s", format,
                                length, message);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory decoding %s (%s)", format,
                            what);
    case heif_error_Unsupported_feature:
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "unsupported %s: %.*s", format, length,
                            message);
    case heif_error_Unsupported_filetype:
        /* The sniffer saw a HEIF brand; libheif finding none it reads means
         * the ftyp box contradicts itself. */
    case heif_error_Invalid_input:
        return fv_error_set(err, FV_ERR_FORMAT, "%s %s: %.*s",
                            e.subcode == heif_suberror_End_of_data ? "truncated" : "corrupt",
                            format, length, message);
    default:
        /* Decoder errors and whatever else hostile data provokes: the input
         * is at fault, not us. */
        return fv_error_set(err, FV_ERR_FORMAT, "corrupt %s: %s failed: %.*s", format, what,
                            length, message);
    }
}

/* Negative sizes from libheif (-1 means unknown) read as 0, which
 * fv_image_check_dimensions rejects as corrupt. */
static uint64_t side_of(int value)
{
    return value > 0 ? (uint64_t)value : 0;
}

/* One read of the file: the context and its primary image's handle. */
struct heif_reading {
    struct heif_context *context;
    struct heif_image_handle *handle;
    const char *format;
    bool initialised;
};

static void reading_close(struct heif_reading *r)
{
    if (r->handle)
        heif_image_handle_release(r->handle);
    if (r->context)
        heif_context_free(r->context);
    if (r->initialised)
        heif_deinit();
    memset(r, 0, sizeof *r);
}

/* Checks the file (its boxes, references and coded sizes), then has libheif
 * parse it and checks the primary image's upright size against the limits;
 * no pixel memory yet. data must outlive r; reading_close(r) whatever this
 * returns. */
static enum fv_status reading_open(struct heif_reading *r, const uint8_t *data, size_t size,
                                   const struct fv_image_limits *limits, struct fv_error *err)
{
    memset(r, 0, sizeof *r);
    r->format = fv_heif_format(data, size);
    enum fv_status status = fv_heif_check(data, size, limits, r->format, err);
    if (status != FV_OK) /* before libheif parses anything */
        return status;

    /* Reference counted and locked inside libheif, so each decode may pair
     * its own init and deinit whatever other threads do. */
    status = heif_status(heif_init(NULL), r->format, "starting libheif", err);
    if (status != FV_OK)
        return status;
    r->initialised = true;
    r->context = heif_context_alloc();
    if (!r->context)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory starting the %s decoder",
                            r->format);
    /* libheif 1.15's only security setting: the largest side of any image
     * item, checked against ispe as the file is read. */
    int side = HEIF_MAX_SIDE;
    if (limits->max_pixels && limits->max_pixels < (uint64_t)side)
        side = (int)limits->max_pixels;
    heif_context_set_maximum_image_size_limit(r->context, side);
    /* Tiles of a grid image are decoded on the calling thread: the server
     * already runs one decode per worker. */
    heif_context_set_max_decoding_threads(r->context, 0);

    status = heif_status(heif_context_read_from_memory_without_copy(r->context, data, size,
                                                                     NULL),
                         r->format, "reading", err);
    if (status != FV_OK)
        return status;
    status = heif_status(heif_context_get_primary_image_handle(r->context, &r->handle),
                         r->format, "finding the primary image", err);
    if (status != FV_OK)
        return status;
    return fv_image_check_dimensions(side_of(heif_image_handle_get_width(r->handle)),
                                     side_of(heif_image_handle_get_height(r->handle)), limits,
                                     r->format, err);
}

enum fv_status fv_heif_probe(const uint8_t *data, size_t size,
                             const struct fv_image_limits *limits, struct fv_image_info *info,
                             struct fv_error *err)
{
    struct heif_reading r;
    enum fv_status status = reading_open(&r, data, size, limits, err);
    if (status == FV_OK) {
        info->format = r.format;
        info->width = heif_image_handle_get_width(r.handle);
        info->height = heif_image_handle_get_height(r.handle);
    }
    reading_close(&r);
    return status;
}

enum fv_status fv_heif_decode(const uint8_t *data, size_t size,
                              const struct fv_image_limits *limits, struct fv_image **out,
                              int *orientation, struct fv_error *err)
{
    struct heif_reading r;
    struct heif_decoding_options *options = NULL;
    struct heif_image *decoded = NULL;
    struct fv_image *img = NULL;

    enum fv_status status = reading_open(&r, data, size, limits, err);
    if (status != FV_OK)
        goto fail;

    options = heif_decoding_options_alloc();
    if (!options) {
        status = fv_error_set(err, FV_ERR_NOMEM, "out of memory decoding %s", r.format);
        goto fail;
    }
    options->ignore_transformations = 0; /* irot, imir and clap are applied */
    options->convert_hdr_to_8bit = 1;    /* 10- and 12-bit images come as 8 bits */
    /* Interleaved RGB has no alpha: libheif drops an alpha plane, keeping
     * the stored colours, as fv_image_decode does for PNG. */
    status = heif_status(heif_decode_image(r.handle, &decoded, heif_colorspace_RGB,
                                           heif_chroma_interleaved_RGB, options),
                         r.format, "decoding", err);
    if (status != FV_OK)
        goto fail;

    /* The coded image need not have the size ispe declares (libheif 1.15
     * does not compare them). One that differs is refused, so that what
     * decodes has the size fv_heif_probe gives. */
    int width = heif_image_get_width(decoded, heif_channel_interleaved);
    int height = heif_image_get_height(decoded, heif_channel_interleaved);
    int declared_width = heif_image_handle_get_width(r.handle);
    int declared_height = heif_image_handle_get_height(r.handle);
    if (width != declared_width || height != declared_height) {
        status = fv_error_set(err, FV_ERR_FORMAT, "corrupt %s: the image decodes to %dx%d "
                              "pixels, its header says %dx%d", r.format, width, height,
                              declared_width, declared_height);
        goto fail;
    }
    int bits = heif_image_get_bits_per_pixel_range(decoded, heif_channel_interleaved);
    int stride = 0;
    const uint8_t *plane = heif_image_get_plane_readonly(decoded, heif_channel_interleaved,
                                                         &stride);
    if (!plane || bits != 8 || stride < 0 || (size_t)stride < (size_t)width * 3) {
        status = fv_error_set(err, FV_ERR_INTERNAL, "libheif gave %dx%d pixels of %d bits in "
                              "rows of %d bytes, expected interleaved RGB8", width, height,
                              bits, stride);
        goto fail;
    }

    img = fv_image_new(width, height);
    if (!img) {
        status = fv_error_set(err, FV_ERR_NOMEM, "out of memory decoding a %dx%d %s", width,
                              height, r.format);
        goto fail;
    }
    for (int y = 0; y < height; y++)
        memcpy(fv_image_pixel_at(img, 0, y), plane + (size_t)y * (size_t)stride,
               (size_t)width * 3);

    heif_image_release(decoded);
    heif_decoding_options_free(options);
    reading_close(&r);
    *out = img;
    *orientation = 1; /* see "orientation" above */
    return FV_OK;

fail:
    fv_image_free(img);
    if (decoded)
        heif_image_release(decoded);
    if (options)
        heif_decoding_options_free(options);
    reading_close(&r);
    return status;
}
