/* image_internal.h - what the pipeline/image*.c files share; not part of the API.
 *
 * The public API is pipeline/image.h. Behind it, one file per concept, as in
 * libvips' foreign/ folder:
 *
 *   image.c           limits, new/free/clone, checks every decoder and encoder makes
 *   image_format.c    format sniffing and the dispatch: decode, load, save, probe
 *   image_jpeg.c      JPEG decoding and encoding (libjpeg-turbo)
 *   image_png.c       PNG decoding and encoding (libpng)
 *   image_exif.c      the EXIF orientation tag and turning an image upright
 *   image_resample.c  PIL-compatible resize and its SIMD paths
 *   image_draw.c      crop and drawing
 *
 * A format's decoder gives the image as stored plus its EXIF orientation
 * (1..8, 1 when there is none); image_format.c turns it upright. Decoders
 * check the encoded size and the declared dimensions against the limits
 * before they allocate pixel memory, never print and never exit.
 */
#ifndef FV_IMAGE_INTERNAL_H
#define FV_IMAGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/status.h"
#include "pipeline/image.h"

/* ---- image.c ---- */

static inline size_t fv_image_byte_count(const struct fv_image *img)
{
    return (size_t)img->width * (size_t)img->height * 3;
}

static inline uint8_t *fv_image_pixel_at(const struct fv_image *img, int x, int y)
{
    return img->rgb + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
}

static inline bool fv_image_is_valid(const struct fv_image *img)
{
    return img && img->rgb && img->width > 0 && img->height > 0;
}

/* limits, or the defaults written to *storage when limits is NULL. */
const struct fv_image_limits *fv_image_limits_or_default(const struct fv_image_limits *limits,
                                                         struct fv_image_limits *storage);

/* Checks the encoded bytes before a decoder sees them: none is FV_ERR_FORMAT
 * ("empty image"), more than limits->max_bytes FV_ERR_TOO_LARGE. */
enum fv_status fv_image_check_encoded(const uint8_t *data, size_t size,
                                      const struct fv_image_limits *limits,
                                      struct fv_error *err);

/* Checks declared dimensions before any pixel memory is allocated: zero is
 * FV_ERR_FORMAT ("corrupt <kind>: ..."), over the pixel limit or too large for
 * an int side or a size_t byte count FV_ERR_TOO_LARGE. */
enum fv_status fv_image_check_dimensions(uint64_t width, uint64_t height,
                                         const struct fv_image_limits *limits,
                                         const char *kind, struct fv_error *err);

/* The encoders' argument checks: clears *out and *out_size, and refuses a
 * missing output or an empty image with FV_ERR_INVALID_ARG. */
enum fv_status fv_image_check_encodable(const struct fv_image *img, uint8_t **out,
                                        size_t *out_size, struct fv_error *err);

/* ---- image_exif.c ---- */

/* The orientation (1..8) in IFD0 of an EXIF block (a TIFF structure, with or
 * without the "Exif\0\0" prefix of JPEG's APP1), or 1 when it is absent or
 * anything about the block is malformed. */
int fv_exif_orientation(const uint8_t *tiff, size_t size);

/* Replaces *img with its upright version for an EXIF orientation (1 or an
 * out-of-range value leaves it as it is). On failure *img is unchanged and
 * still the caller's. */
enum fv_status fv_image_orient(struct fv_image **img, int orientation, struct fv_error *err);

/* ---- format decoders (image_jpeg.c, image_png.c) ----
 *
 * fv_<format>_decode: the image as stored into *out (owned by the caller) and
 * its EXIF orientation into *orientation; errors as fv_image_decode's, *out set
 * only on success.
 * fv_<format>_probe: info as fv_image_probe gives it (format name, upright
 * size), from the header alone.
 * The dispatcher has already checked the encoded bytes (fv_image_check_encoded)
 * and that they begin with the format's magic number; limits is never NULL.
 * HEIF/AVIF and WebP, further down, take the same arguments. */

enum fv_status fv_jpeg_decode(const uint8_t *data, size_t size,
                              const struct fv_image_limits *limits, struct fv_image **out,
                              int *orientation, struct fv_error *err);
enum fv_status fv_jpeg_probe(const uint8_t *data, size_t size,
                             const struct fv_image_limits *limits, struct fv_image_info *info,
                             struct fv_error *err);

enum fv_status fv_png_decode(const uint8_t *data, size_t size,
                             const struct fv_image_limits *limits, struct fv_image **out,
                             int *orientation, struct fv_error *err);
enum fv_status fv_png_probe(const uint8_t *data, size_t size,
                            const struct fv_image_limits *limits, struct fv_image_info *info,
                            struct fv_error *err);

/* Decodes, at the smallest DCT scale M/8 (M = 1..8) with M/8 >= min_scale
 * (min_scale > 1 is treated as 1, <= 1/8 as 1/8), the part of the upright
 * image (EXIF orientation applied) that covers the rectangle (x, y, w, h)
 * given in pixels of the full-size upright image. The rectangle is clamped to
 * the image; an empty one, or one wholly outside, is FV_ERR_INVALID_ARG. The
 * part is the rectangle's pixels at that scale, rounded out to whole scaled
 * pixels; at scale 1 they are exactly fv_image_decode's.
 * *window: scale = M/8 and the position of the part's top-left pixel in the
 * upright image scaled by M/8, that is libjpeg's scaled image (ceil(W*M/8) x
 * ceil(H*M/8) for a W x H stored image) turned upright. Its pixel k covers the
 * stored pixels [8k/M, 8(k+1)/M), so where M/8 does not divide a side that the
 * orientation mirrors, the window's pixel centres on that axis are off by the
 * fraction of a scaled pixel left over at the far end (less than one).
 * Same limits and errors as fv_image_decode (limits may be NULL); pixel memory
 * is only what the part needs. Decoding stops after the last row needed; a
 * file whose EOI marker is missing is still refused as truncated. *out is owned
 * by the caller, set only on success. */
/* A part of a JPEG decoded as stored, before its orientation is applied. */
struct fv_jpeg_part {
    struct fv_image *img;            /* the stored pixels (owned) */
    int x, y;                        /* its top-left pixel in the stored image at that scale */
    int scaled_width, scaled_height; /* the whole stored image at that scale */
    int scale_eighths;               /* M of the DCT scale M/8 */
    int orientation;                 /* the EXIF orientation that turns it upright */
};

/* fv_jpeg_decode_region without turning the part upright (the rectangle is
 * still one of the upright image): turning a part of a rotated photo upright
 * costs a pass over its pixels, which a caller that reads small crops of it
 * can spend on the crops instead. *part is zeroed on error. */
enum fv_status fv_jpeg_decode_stored(const uint8_t *data, size_t size,
                                     const struct fv_image_limits *limits, float min_scale,
                                     int x, int y, int w, int h, struct fv_jpeg_part *part,
                                     struct fv_error *err);

/* Intervals [x0, x1) x [y0, y1) of a stored image of stored_width x
 * stored_height pixels mapped to the upright image under an EXIF orientation,
 * and back. */
void fv_orient_stored_to_upright(int orientation, int64_t stored_width, int64_t stored_height,
                                 int64_t *x0, int64_t *x1, int64_t *y0, int64_t *y1);
void fv_orient_upright_to_stored(int orientation, int64_t stored_width, int64_t stored_height,
                                 int64_t *x0, int64_t *x1, int64_t *y0, int64_t *y1);

enum fv_status fv_jpeg_decode_region(const uint8_t *data, size_t size,
                                     const struct fv_image_limits *limits, float min_scale,
                                     int x, int y, int w, int h, struct fv_image **out,
                                     struct fv_image_window *window, struct fv_error *err);

/* ---- HEIF/AVIF (image_heif.c, libheif) and WebP (image_webp.c, libwebp) ----
 *
 * decode: as the decoders above. HEIF's orientation is always 1: libheif
 * applies irot, imir and clap, and the Exif tag is informative in HEIF
 * (image_heif.c says why). An animated WebP gives its first frame, a HEIF
 * sequence or collection its primary image.
 * probe: format ("HEIF", "AVIF" or "WebP") and upright size into *info, with
 * the same checks, limits and errors as decode, allocating no pixel memory.
 * Both check every size the file declares (HEIF: ispe, and the coded sizes of
 * the HEVC and AV1 streams, grids and overlays, which libheif 1.15 does not
 * compare with ispe) before a decoder allocates. */

/* image_heif_check.c: "AVIF" when the ftyp box names an AV1 brand (as major
 * brand, or as a compatible one with no HEVC brand beside it), else "HEIF". */
const char *fv_heif_format(const uint8_t *data, size_t size);

/* image_heif_check.c: what fv_heif_decode checks before libheif parses the
 * file: every top-level box fits the data (else "truncated <format>"); the
 * item table can be followed; derived and auxiliary images nest at most a few
 * levels, with no cycle (libheif 1.15 would recurse until the stack
 * overflows); and every HEVC parameter set, AV1 sequence header, grid and
 * overlay declares a size within limits (FV_ERR_TOO_LARGE). */
enum fv_status fv_heif_check(const uint8_t *data, size_t size,
                             const struct fv_image_limits *limits, const char *format,
                             struct fv_error *err);

enum fv_status fv_heif_decode(const uint8_t *data, size_t size,
                              const struct fv_image_limits *limits, struct fv_image **out,
                              int *orientation, struct fv_error *err);
enum fv_status fv_heif_probe(const uint8_t *data, size_t size,
                             const struct fv_image_limits *limits, struct fv_image_info *info,
                             struct fv_error *err);

enum fv_status fv_webp_decode(const uint8_t *data, size_t size,
                              const struct fv_image_limits *limits, struct fv_image **out,
                              int *orientation, struct fv_error *err);
enum fv_status fv_webp_probe(const uint8_t *data, size_t size,
                             const struct fv_image_limits *limits, struct fv_image_info *info,
                             struct fv_error *err);

#endif
