/* image.h - decode, encode and resample 8-bit RGB images; crop and draw on them.
 *
 *   struct fv_image_limits limits;
 *   fv_image_default_limits(&limits);
 *   struct fv_image *img = NULL, *small = NULL;
 *   struct fv_error err = {0};
 *   if (fv_image_decode(body, body_size, &limits, &img, &err) != FV_OK)
 *       return reply_error(err.status, err.message);
 *   fv_image_resize(img, img->width / 2, img->height / 2, &small, &err);
 *   fv_image_free(small);
 *   fv_image_free(img);
 *
 * Decoding treats its input as hostile: it checks the size of the encoded
 * bytes and the declared pixel count against the limits before allocating
 * pixel memory, never prints, and never lets libjpeg, libpng, libwebp or
 * libheif exit.
 */
#ifndef FV_IMAGE_H
#define FV_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "model/status.h"

/* 8-bit RGB, row-major, 3 bytes per pixel, rows packed with no padding:
 * pixel (x, y) starts at rgb[3 * ((size_t)y * width + x)]. */
struct fv_image {
    int width, height;
    uint8_t *rgb;
    size_t mapped; /* bytes mapped for rgb (a large image), 0 when malloc'd */
};

/* Bounds for decoding untrusted images; 0 in a field means "no limit". */
struct fv_image_limits {
    size_t max_bytes;    /* encoded size */
    uint64_t max_pixels; /* width * height as declared by the header */
};

/* 20 MiB of encoded data and 40 000 000 pixels. */
void fv_image_default_limits(struct fv_image_limits *limits);

/* A width x height image with every pixel black, owned by the caller (free it
 * with fv_image_free). NULL when a dimension is not positive, the byte count
 * does not fit in size_t, or memory runs out. */
struct fv_image *fv_image_new(int width, int height);

/* Frees img and its pixels; NULL is fine. */
void fv_image_free(struct fv_image *img);

/* A deep copy of src, or NULL when out of memory. */
struct fv_image *fv_image_clone(const struct fv_image *src);

/* Decodes an image held in memory into *out (owned by the caller): JPEG
 * (libjpeg-turbo), PNG (libpng), WebP (libwebp; an animation gives its first
 * frame), HEIC/HEIF and AVIF (libheif with libde265 and dav1d; the primary
 * image). limits may be NULL for the defaults. The image comes upright: by its
 * EXIF orientation for JPEG (APP1 "Exif" segment), PNG (eXIf chunk) and WebP
 * (EXIF chunk); by the irot/imir/clap properties for HEIF and AVIF, whose Exif
 * orientation is informative and not applied (pipeline/image_heif.c).
 * Every colour model ends as RGB8: grayscale is replicated, CMYK and Adobe's
 * inverted CMYK are converted, 16-bit PNG samples and 10/12-bit HEIF and AVIF
 * samples are scaled to 8 bits, and an alpha channel (or tRNS transparency)
 * is dropped, keeping the stored colours as PIL's convert("RGB") does.
 * Errors: FV_ERR_FORMAT for empty, corrupt or truncated data (a JPEG that ends
 * before its EOI marker counts as truncated), FV_ERR_UNSUPPORTED for other
 * formats (GIF, BMP, TIFF, ...; the message names the supported ones, see
 * fv_image_formats) and for features a decoder lacks, FV_ERR_TOO_LARGE when a
 * limit is exceeded, by the header or by any size the file declares for its
 * coded streams, FV_ERR_NOMEM. *out is set only on success. */
enum fv_status fv_image_decode(const uint8_t *data, size_t size,
                               const struct fv_image_limits *limits,
                               struct fv_image **out, struct fv_error *err);

/* The formats fv_image_decode reads, as a constant list for messages:
 * "JPEG, PNG, WebP, HEIC/HEIF, AVIF". */
const char *fv_image_formats(void);

/* Reads the file at path and decodes it as fv_image_decode does; a file larger
 * than limits->max_bytes is refused before it is read. A missing file is
 * FV_ERR_NOT_FOUND, one that cannot be read FV_ERR_IO. Error messages start
 * with the path. */
enum fv_status fv_image_load(const char *path, const struct fv_image_limits *limits,
                             struct fv_image **out, struct fv_error *err);

/* Encodes img as an 8-bit RGB PNG into a malloc'd buffer *out of *out_size
 * bytes; the caller frees *out with free(). Nothing is returned on error. */
enum fv_status fv_image_encode_png(const struct fv_image *img, uint8_t **out,
                                   size_t *out_size, struct fv_error *err);

/* Encodes img as a baseline JPEG (4:2:0, quality 1..100) into a malloc'd
 * buffer, as fv_image_encode_png does. */
enum fv_status fv_image_encode_jpeg(const struct fv_image *img, int quality, uint8_t **out,
                                    size_t *out_size, struct fv_error *err);

/* Writes img to path as PNG or as JPEG (quality 95), chosen by the extension
 * (.png, .jpg, .jpeg, any case); another extension is FV_ERR_INVALID_ARG. */
enum fv_status fv_image_save(const struct fv_image *img, const char *path,
                             struct fv_error *err);

/* Resamples src to width x height into *out (owned by the caller) the way
 * PIL's Image.resize(size, Image.BILINEAR) does: a separable triangle filter
 * whose support grows with the scale factor when shrinking (antialiasing),
 * horizontal pass first, each pass rounded to uint8 with PIL's 22-bit fixed
 * point, so results match PIL's exactly. Same size gives a copy. */
enum fv_status fv_image_resize(const struct fv_image *src, int width, int height,
                               struct fv_image **out, struct fv_error *err);

/* src averaged over k × k blocks, the last row and column of blocks partial
 * where k does not divide the size, as PIL's Image.reduce does: a cheap first
 * step when shrinking by a large factor, so that the antialiasing filter after
 * it has a short support. NULL when k is not in 1..256 or out of memory. */
struct fv_image *fv_image_reduce(const struct fv_image *src, int k);
/* fv_image_reduce(fv_image_crop(src, x, y, w, h), k), copying nothing when the
 * region lies inside src. */
struct fv_image *fv_image_reduce_region(const struct fv_image *src, int x, int y, int w, int h,
                                        int k);

/* Several sizes of one source (an image pyramid): the resampler keeps the
 * source's rows in the layout the horizontal pass reads, so each further size
 * costs only its own filtering. Results are fv_image_resize's exactly. src must
 * outlive the resampler. NULL when out of memory or src is empty. */
struct fv_resampler;
struct fv_resampler *fv_resampler_new(const struct fv_image *src);
enum fv_status fv_resampler_resize(const struct fv_resampler *rs, int width, int height,
                                   struct fv_image **out, struct fv_error *err);
void fv_resampler_free(struct fv_resampler *rs);

/* The w x h region of src whose top-left corner is (x, y), as a new image
 * owned by the caller. The region may extend past src (or lie wholly outside
 * it): only the overlap is copied and every other pixel is black, as in PIL's
 * crop. NULL when w or h is not positive or memory runs out. */
struct fv_image *fv_image_crop(const struct fv_image *src, int x, int y, int w, int h);

/* fv_image_resize(fv_image_crop(src, x, y, w, h), width, height) exactly, into
 * dst (width x height, owned by the caller), without the intermediate images:
 * for the many small crops of detection. FV_ERR_INVALID_ARG for empty sizes,
 * FV_ERR_NOMEM when out of memory. */
enum fv_status fv_image_resize_region(const struct fv_image *src, int x, int y, int w, int h,
                                      struct fv_image *dst, struct fv_error *err);

/* Outlines the rectangle with corners (x1, y1) and (x2, y2), both inclusive
 * and rounded to the nearest pixel, with lines `thickness` pixels wide grown
 * inwards (at least 1). Clipped to the image; non-finite coordinates draw
 * nothing. */
void fv_image_draw_rect(struct fv_image *img, float x1, float y1, float x2, float y2,
                        uint8_t r, uint8_t g, uint8_t b, int thickness);

/* Fills the disc of the given radius (0: one pixel) centred on (x, y) rounded
 * to the nearest pixel. Clipped to the image; non-finite coordinates draw
 * nothing. */
void fv_image_draw_point(struct fv_image *img, float x, float y, int radius, uint8_t r,
                         uint8_t g, uint8_t b);

/* What an encoded image is, read from its header without decoding pixels. */
struct fv_image_info {
    const char *format; /* "JPEG", "PNG", ... (static string) */
    int width, height;  /* of the upright image (orientation applied) */
};

/* Reads the header of an encoded image: format and upright size. Same checks,
 * limits and errors as fv_image_decode, allocating no pixel memory. */
enum fv_status fv_image_probe(const uint8_t *data, size_t size, const struct fv_image_limits *limits,
                              struct fv_image_info *info, struct fv_error *err);

/* Where a decoded part of an image lies in the full-size upright image: the
 * part was decoded at `scale` decoded pixels per full-size pixel, and its pixel
 * (i, j) is pixel (x + i, y + j) of the whole upright image at that scale, so
 * its centre is at full-size coordinate ((x + i + 0.5) / scale - 0.5, likewise
 * for y). A whole image decoded at full size is {1, 0, 0}. */
struct fv_image_window {
    float scale;
    int x, y;
};

/* An encoded image read at the resolution each use needs (detection on a
 * reduced copy, face crops at finer pixels). JPEG parts are decoded with DCT
 * scaling and cropping straight from the bytes, which must outlive the source;
 * other formats are decoded once, in full, when the source is opened. */
struct fv_image_source;

/* Opens data (probing it as fv_image_probe does; FV_ERR_* as fv_image_decode). */
enum fv_status fv_image_source_open(const uint8_t *data, size_t size,
                                    const struct fv_image_limits *limits,
                                    struct fv_image_source **out, struct fv_error *err);
/* Reads the file at path into a source that owns the bytes (errors as
 * fv_image_load gives them). */
enum fv_status fv_image_source_load(const char *path, const struct fv_image_limits *limits,
                                    struct fv_image_source **out, struct fv_error *err);
/* A source over an image already decoded (borrowed: img must outlive it). */
enum fv_status fv_image_source_wrap(const struct fv_image *img, struct fv_image_source **out,
                                    struct fv_error *err);
void fv_image_source_free(struct fv_image_source *src);
/* Upright full-size width and height, and format. */
const struct fv_image_info *fv_image_source_info(const struct fv_image_source *src);
/* The part of the upright image covering the rectangle (x, y, w, h) of the
 * full-size image (clamped to it), at a scale of at least min_scale (at most 1:
 * never enlarged), except for a large progressive JPEG, which is decoded once
 * with its longer side at least 2048 pixels and read from that. The part
 * returned may be larger and finer than asked; *window says where it lies.
 * *out is owned by the caller. A rectangle wholly outside the image is
 * FV_ERR_INVALID_ARG; a JPEG found corrupt or truncated only now is
 * FV_ERR_FORMAT. */
enum fv_status fv_image_source_read(struct fv_image_source *src, float min_scale, int x, int y,
                                    int w, int h, struct fv_image **out,
                                    struct fv_image_window *window, struct fv_error *err);
/* The full-size upright rectangle with top-left corner (x, y), w × h
 * full-size pixels, at the scale fv_image_source_read picks for min_scale
 * (pixels of the part read, the rectangle rounded to them), resampled to
 * dst's size (dst owned by the caller): averaged over k × k blocks first when
 * its shorter side there is 2k or more times dst's (k <= 256), then filtered
 * as fv_image_resize does; black outside the image. Resampled as stored and
 * the small result turned upright, so nothing of the size of the rectangle
 * is copied. Errors as fv_image_source_read. */
enum fv_status fv_image_source_resample(struct fv_image_source *src, float min_scale, double x,
                                        double y, double w, double h, struct fv_image *dst,
                                        struct fv_error *err);
/* Decodes (and keeps) what reads of the rectangle at min_scale will need, so
 * that many small reads inside it cost no further decoding; reads of regions
 * it does not cover may evict it. Nothing to do for an image in memory. */
enum fv_status fv_image_source_prepare(struct fv_image_source *src, float min_scale, int x, int y,
                                       int w, int h, struct fv_error *err);
/* The whole upright image resampled to width x height (at most its full size)
 * as fv_image_resize does (after block averaging when shrinking by more than
 * 4), read from the coarsest decoding that is at least that large and at least
 * keep_scale of the full size: a large JPEG keeps that decoding, so later reads
 * at up to keep_scale cost no further decoding. */
enum fv_status fv_image_source_scaled(struct fv_image_source *src, int width, int height,
                                      float keep_scale, struct fv_image **out,
                                      struct fv_error *err);
/* The whole upright image at full size when the source holds it in memory
 * (wrapped images, formats decoded when opened, small JPEGs); else NULL. */
const struct fv_image *fv_image_source_full(const struct fv_image_source *src);

#endif
