/* image_source.c - an encoded image read at the resolution each use needs. */
#include "pipeline/image.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_file.h"
#include "pipeline/image_internal.h"

/* JPEGs above this many pixels are decoded in parts at DCT scales (smaller
 * ones whole, when opened, so that their pixels and faces are exactly those of
 * fv_image_decode). */
#define LAZY_JPEG_PIXELS 4000000
/* A progressive JPEG must be entropy-decoded whole for any part of it, so a
 * large one is decoded once, at the smallest DCT scale whose longer side
 * reaches this, and every part is read from that. */
#define PROGRESSIVE_LONG_SIDE 2048

/* Decodings that hold a whole large image (a progressive JPEG's coefficients,
 * a PNG, HEIF or WebP's pixels) share this many bytes across the process; one
 * that would exceed it waits until the others finish (and runs alone when it
 * needs more by itself), so that workers decoding large photos at once stay
 * within a bound: two 40-megapixel progressive JPEGs are decoded one after
 * the other rather than costing 240 MB at once. */
#define DECODE_MEMORY_BUDGET ((uint64_t)256 << 20)
/* Decodings smaller than this pass freely. */
#define DECODE_MEMORY_FREE ((uint64_t)16 << 20)

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static uint64_t gate_used;

/* Reserves need bytes of the budget; returns what to give back. */
static uint64_t gate_enter(uint64_t need)
{
    if (need < DECODE_MEMORY_FREE)
        return 0;
    pthread_mutex_lock(&gate_lock);
    while (gate_used > 0 && gate_used + need > DECODE_MEMORY_BUDGET)
        pthread_cond_wait(&gate_cond, &gate_lock);
    gate_used += need;
    pthread_mutex_unlock(&gate_lock);
    return need;
}

static void gate_leave(uint64_t held)
{
    if (!held)
        return;
    pthread_mutex_lock(&gate_lock);
    gate_used -= held;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/* What decoding a whole width × height image costs at most: the RGB result
 * and as much again for the decoder's own planes or coefficients. */
static uint64_t decode_cost(const struct fv_image_info *info)
{
    return (uint64_t)info->width * info->height * 6;
}

/* A decoded part of a lazy JPEG, kept as stored: reads crop it and turn only
 * the crop upright. */
typedef struct fv_jpeg_part part_t;

struct fv_image_source {
    const uint8_t *data; /* encoded bytes (borrowed), or NULL for a wrapped image */
    size_t size;
    struct fv_image_limits limits;
    struct fv_image_info info;
    const struct fv_image *full; /* the whole upright image when it is in memory */
    struct fv_image *owned;      /* full, when the source decoded it */
    uint8_t *owned_data;         /* data, when the source read it from a file */
    bool lazy;                   /* a large JPEG decoded in parts */
    bool progressive;
    part_t whole;                /* lazy: the whole image at a reduced scale */
    part_t last;                 /* lazy: the last finer part decoded */
};

/* Whether a JPEG's frame is progressive (SOF2, SOF6, SOF10, SOF14), from its
 * markers; false when no frame header is found (the decoder reports that). */
static bool jpeg_is_progressive(const uint8_t *d, size_t size)
{
    size_t i = 2;
    while (i + 4 <= size) {
        if (d[i] != 0xff)
            return false;
        uint8_t m = d[i + 1];
        if (m == 0xff) {
            i++;
            continue;
        }
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc)
            return m == 0xc2 || m == 0xc6 || m == 0xca || m == 0xce;
        if (m == 0xda || m == 0xd9)
            return false;
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) {
            i += 2;
            continue;
        }
        i += 2 + ((size_t)d[i + 2] << 8 | d[i + 3]);
    }
    return false;
}

enum fv_status fv_image_source_open(const uint8_t *data, size_t size,
                                    const struct fv_image_limits *limits,
                                    struct fv_image_source **out, struct fv_error *err)
{
    *out = NULL;
    struct fv_image_source *s = calloc(1, sizeof *s);
    if (!s)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory opening image");
    if (limits)
        s->limits = *limits;
    else
        fv_image_default_limits(&s->limits);
    s->data = data;
    s->size = size;
    enum fv_status st = fv_image_probe(data, size, &s->limits, &s->info, err);
    if (st == FV_OK && strcmp(s->info.format, "JPEG") == 0 &&
        (uint64_t)s->info.width * s->info.height > LAZY_JPEG_PIXELS) {
        s->lazy = true;
        s->progressive = jpeg_is_progressive(data, size);
        *out = s;
        return FV_OK;
    }
    if (st == FV_OK) {
        uint64_t held = gate_enter(decode_cost(&s->info));
        st = fv_image_decode(data, size, &s->limits, &s->owned, err);
        gate_leave(held);
    }
    if (st) {
        fv_image_source_free(s);
        return st;
    }
    s->full = s->owned;
    s->info.width = s->owned->width;
    s->info.height = s->owned->height;
    *out = s;
    return FV_OK;
}

enum fv_status fv_image_source_wrap(const struct fv_image *img, struct fv_image_source **out,
                                    struct fv_error *err)
{
    *out = NULL;
    if (!img || img->width < 1 || img->height < 1)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "empty image");
    struct fv_image_source *s = calloc(1, sizeof *s);
    if (!s)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory opening image");
    s->info.format = "RGB";
    s->info.width = img->width;
    s->info.height = img->height;
    s->full = img;
    *out = s;
    return FV_OK;
}

enum fv_status fv_image_source_load(const char *path, const struct fv_image_limits *limits,
                                    struct fv_image_source **out, struct fv_error *err)
{
    struct fv_image_limits defaults;
    uint8_t *data = NULL;
    size_t size = 0;
    *out = NULL;
    if (!limits) {
        fv_image_default_limits(&defaults);
        limits = &defaults;
    }
    enum fv_status st = fv_read_file(path, limits->max_bytes ? limits->max_bytes : SIZE_MAX,
                                     &data, &size, err);
    if (st == FV_ERR_IO && !data) {
        /* Not a regular file (a pipe, a device): read and decode it whole. */
        struct fv_image *img = NULL;
        if ((st = fv_image_load(path, limits, &img, err)))
            return st;
        if ((st = fv_image_source_wrap(img, out, err))) {
            fv_image_free(img);
            return st;
        }
        (*out)->owned = img;
        return FV_OK;
    }
    if (st == FV_ERR_TOO_LARGE)
        return fv_error_set(err, st, "%s: image too large: over the limit of %zu bytes", path,
                            limits->max_bytes);
    if (st)
        return st;
    if ((st = fv_image_source_open(data, size, limits, out, err))) {
        free(data);
        fv_error_prefix(err, "%s: ", path);
        return st;
    }
    (*out)->owned_data = data;
    return FV_OK;
}

void fv_image_source_free(struct fv_image_source *s)
{
    if (!s)
        return;
    fv_image_free(s->whole.img);
    fv_image_free(s->last.img);
    fv_image_free(s->owned);
    free(s->owned_data);
    free(s);
}

const struct fv_image_info *fv_image_source_info(const struct fv_image_source *s)
{
    return &s->info;
}

const struct fv_image *fv_image_source_full(const struct fv_image_source *s)
{
    return s->full;
}

/* Clamps the rectangle to the image; false when nothing is left. */
static bool clamp_rect(const struct fv_image_info *info, int *x, int *y, int *w, int *h)
{
    long x0 = *x < 0 ? 0 : *x, y0 = *y < 0 ? 0 : *y;
    long x1 = (long)*x + *w, y1 = (long)*y + *h;
    if (x1 > info->width)
        x1 = info->width;
    if (y1 > info->height)
        y1 = info->height;
    if (x1 <= x0 || y1 <= y0)
        return false;
    *x = (int)x0, *y = (int)y0, *w = (int)(x1 - x0), *h = (int)(y1 - y0);
    return true;
}

/* The DCT scale to decode at for min_scale: 1/8, 1/4, 1/2 or 1, the scales
 * libjpeg-turbo has SIMD code for (3/8 and 5/8 to 7/8 take longer to decode
 * than the next of these up: measured 20 ms at 3/8 against 14 ms at 1/2, and
 * 41 to 63 ms at 5/8 to 7/8 against 35 ms at 8/8 for a 12-megapixel photo). */
static float dct_scale(double min_scale)
{
    int m = (int)ceil(min_scale * 8 - 1e-6);
    return (float)(m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8) / 8;
}

/* Decodes the whole lazy image once, at the scale `scale` calls for (or, for a
 * progressive JPEG, at least PROGRESSIVE_LONG_SIDE long). */
static enum fv_status decode_whole(struct fv_image_source *s, double scale, struct fv_error *err)
{
    if (s->whole.img)
        return FV_OK;
    if (s->progressive) {
        /* Any M/8 here: the entropy decoding of every scan, not the IDCT,
         * is what a progressive JPEG costs. */
        int longer = s->info.width > s->info.height ? s->info.width : s->info.height;
        scale = fmax(scale, fmin(1.0, (double)PROGRESSIVE_LONG_SIDE / longer));
        scale = fmin(1.0, ceil(scale * 8 - 1e-6) / 8);
    } else {
        scale = dct_scale(scale);
    }
    uint64_t held = s->progressive ? gate_enter(decode_cost(&s->info)) : 0;
    enum fv_status st = fv_jpeg_decode_stored(s->data, s->size, &s->limits, (float)scale, 0, 0,
                                              s->info.width, s->info.height, &s->whole, err);
    gate_leave(held);
    return st;
}

/* The rectangle of p's stored pixels holding the full-size upright rectangle
 * (x, y, w, h) at p's scale: the upright rectangle in pixels of the upright
 * image at that scale is *ux, *uy (top-left), and in p's stored pixels
 * [*sx0, *sx1) x [*sy0, *sy1). */
static void part_rect(const part_t *p, int x, int y, int w, int h, int64_t *ux, int64_t *uy,
                      int64_t *sx0, int64_t *sx1, int64_t *sy0, int64_t *sy1)
{
    double f = p->scale_eighths / 8.0;
    int64_t x0 = (int64_t)floor(x * f), x1 = (int64_t)ceil((x + w) * f);
    int64_t y0 = (int64_t)floor(y * f), y1 = (int64_t)ceil((y + h) * f);
    *ux = x0, *uy = y0;
    fv_orient_upright_to_stored(p->orientation, p->scaled_width, p->scaled_height, &x0, &x1, &y0,
                                &y1);
    *sx0 = x0 - p->x, *sx1 = x1 - p->x, *sy0 = y0 - p->y, *sy1 = y1 - p->y;
}

/* Whether part p holds the full-size rectangle at a scale of at least scale. */
static bool part_covers(const part_t *p, double scale, int x, int y, int w, int h)
{
    if (!p->img || p->scale_eighths / 8.0 < scale - 1e-6)
        return false;
    int64_t ux, uy, x0, x1, y0, y1;
    part_rect(p, x, y, w, h, &ux, &uy, &x0, &x1, &y0, &y1);
    return x0 >= 0 && y0 >= 0 && x1 <= p->img->width && y1 <= p->img->height;
}

/* The part of p covering the full-size rectangle, upright, as a new image. */
static enum fv_status crop_part(const part_t *p, int x, int y, int w, int h,
                                struct fv_image **out, struct fv_image_window *window,
                                struct fv_error *err)
{
    int64_t ux, uy, x0, x1, y0, y1;
    part_rect(p, x, y, w, h, &ux, &uy, &x0, &x1, &y0, &y1);
    *out = fv_image_crop(p->img, (int)x0, (int)y0, (int)(x1 - x0), (int)(y1 - y0));
    if (!*out)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory reading an image region");
    enum fv_status st = fv_image_orient(out, p->orientation, err);
    if (st) {
        fv_image_free(*out);
        *out = NULL;
        return st;
    }
    *window = (struct fv_image_window){p->scale_eighths / 8.0f, (int)ux, (int)uy};
    return FV_OK;
}

/* For a lazy source: the decoded part that holds the (clamped) rectangle at
 * a scale of at least scale, decoding it if no part kept does. */
static enum fv_status covering_part(struct fv_image_source *s, double scale, int x, int y, int w,
                                    int h, const part_t **part, struct fv_error *err)
{
    enum fv_status st;
    if (s->progressive) { /* every part comes from the one decoding */
        if ((st = decode_whole(s, scale, err)))
            return st;
        *part = &s->whole;
        return FV_OK;
    }
    if (part_covers(&s->whole, scale, x, y, w, h)) {
        *part = &s->whole;
        return FV_OK;
    }
    if (!part_covers(&s->last, scale, x, y, w, h)) {
        fv_image_free(s->last.img);
        s->last.img = NULL;
        if ((st = fv_jpeg_decode_stored(s->data, s->size, &s->limits, (float)scale, x, y, w, h,
                                        &s->last, err)))
            return st;
    }
    *part = &s->last;
    return FV_OK;
}

enum fv_status fv_image_source_prepare(struct fv_image_source *s, float min_scale, int x, int y,
                                       int w, int h, struct fv_error *err)
{
    if (!clamp_rect(&s->info, &x, &y, &w, &h))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "region lies outside the image");
    const part_t *part;
    return s->lazy ? covering_part(s, dct_scale(fmin(1.0, min_scale)), x, y, w, h, &part, err)
                   : FV_OK;
}

enum fv_status fv_image_source_read(struct fv_image_source *s, float min_scale, int x, int y,
                                    int w, int h, struct fv_image **out,
                                    struct fv_image_window *window, struct fv_error *err)
{
    *out = NULL;
    if (!clamp_rect(&s->info, &x, &y, &w, &h))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "region lies outside the image");
    if (!s->lazy) {
        *out = fv_image_crop(s->full, x, y, w, h);
        if (!*out)
            return fv_error_set(err, FV_ERR_NOMEM, "out of memory reading an image region");
        *window = (struct fv_image_window){1.0f, x, y};
        return FV_OK;
    }
    const part_t *part;
    enum fv_status st = covering_part(s, dct_scale(fmin(1.0, min_scale)), x, y, w, h, &part, err);
    return st ? st : crop_part(part, x, y, w, h, out, window, err);
}

enum fv_status fv_image_source_resample(struct fv_image_source *s, float min_scale, double x,
                                        double y, double w, double h, struct fv_image *dst,
                                        struct fv_error *err)
{
    if (!(w >= 1 && h >= 1 && fabs(x) < 1e9 && fabs(y) < 1e9 && w < 1e9 && h < 1e9))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "bad region %gx%g", w, h);
    /* The full-size pixels the rectangle touches, and one more around. */
    int rx = (int)floor(x) - 1, ry = (int)floor(y) - 1;
    int rw = (int)ceil(x + w) + 1 - rx, rh = (int)ceil(y + h) + 1 - ry;
    if (!clamp_rect(&s->info, &rx, &ry, &rw, &rh))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "region lies outside the image");
    /* The pixels read: the part's, as stored, or the whole image upright. */
    const struct fv_image *from = s->full;
    double f = 1.0;
    int orientation = 1;
    int64_t sw = s->info.width, sh = s->info.height, px = 0, py = 0;
    if (s->lazy) {
        const part_t *part;
        enum fv_status st = covering_part(s, dct_scale(fmin(1.0, min_scale)), rx, ry, rw, rh,
                                          &part, err);
        if (st)
            return st;
        from = part->img;
        f = part->scale_eighths / 8.0;
        orientation = part->orientation;
        sw = part->scaled_width, sh = part->scaled_height, px = part->x, py = part->y;
    }
    /* The rectangle in upright pixels at that scale, then in stored ones. */
    int64_t x0 = lround(x * f), y0 = lround(y * f);
    int64_t x1 = x0 + (int64_t)fmax(1, lround(w * f)), y1 = y0 + (int64_t)fmax(1, lround(h * f));
    int shorter = (int)fmin(x1 - x0, y1 - y0);
    fv_orient_upright_to_stored(orientation, sw, sh, &x0, &x1, &y0, &y1);
    x0 -= px, x1 -= px, y0 -= py, y1 -= py;
    int k = shorter / (2 * (dst->width < dst->height ? dst->width : dst->height));
    k = k > 256 ? 256 : k;
    struct fv_image *small = NULL;
    enum fv_status st = FV_OK;
    if (k >= 2) {
        /* Finer pixels than needed: block averages, upright, then the filter. */
        small = fv_image_reduce_region(from, (int)x0, (int)y0, (int)(x1 - x0), (int)(y1 - y0), k);
        if (!small)
            return fv_error_set(err, FV_ERR_NOMEM, "out of memory reading an image region");
        if ((st = fv_image_orient(&small, orientation, err)) == FV_OK)
            st = fv_image_resize_region(small, 0, 0, small->width, small->height, dst, err);
    } else if (orientation == 1) {
        return fv_image_resize_region(from, (int)x0, (int)y0, (int)(x1 - x0), (int)(y1 - y0), dst,
                                      err);
    } else {
        bool turned = orientation >= 5;
        small = fv_image_new(turned ? dst->height : dst->width, turned ? dst->width : dst->height);
        if (!small)
            return fv_error_set(err, FV_ERR_NOMEM, "out of memory reading an image region");
        if ((st = fv_image_resize_region(from, (int)x0, (int)y0, (int)(x1 - x0), (int)(y1 - y0),
                                         small, err)) == FV_OK &&
            (st = fv_image_orient(&small, orientation, err)) == FV_OK)
            memcpy(dst->rgb, small->rgb, fv_image_byte_count(dst));
    }
    fv_image_free(small);
    return st;
}

/* from resampled to width x height, averaging k x k blocks first when
 * shrinking by 2k or more, so that the filter after it shrinks by 2 to 4
 * (PIL's reducing_gap of 2; a gap of 1, block averaging down to less than
 * twice the target, was 7 ms faster on a 12-megapixel photo but lost
 * sample2's near-profile face, which the full-size search finds). */
static enum fv_status resize_from(const struct fv_image *from, int width, int height,
                                  struct fv_image **out, struct fv_error *err)
{
    int k = from->width / (2 * width) < from->height / (2 * height) ? from->width / (2 * width)
                                                                      : from->height / (2 * height);
    k = k > 256 ? 256 : k;
    if (k < 2)
        return fv_image_resize(from, width, height, out, err);
    struct fv_image *reduced = fv_image_reduce(from, k);
    if (!reduced)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory reducing an image");
    enum fv_status st = fv_image_resize(reduced, width, height, out, err);
    fv_image_free(reduced);
    return st;
}

enum fv_status fv_image_source_scaled(struct fv_image_source *s, int width, int height,
                                      float keep_scale, struct fv_image **out,
                                      struct fv_error *err)
{
    *out = NULL;
    if (width < 1 || height < 1 || width > s->info.width || height > s->info.height)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "cannot scale a %dx%d image to %dx%d",
                            s->info.width, s->info.height, width, height);
    const struct fv_image *from = s->full;
    int orientation = 1;
    if (s->lazy) {
        /* The coarsest DCT scale at least as large as asked, kept for crops;
         * resampled as stored, and the small result turned upright. */
        double scale = fmax((double)width / s->info.width, (double)height / s->info.height);
        enum fv_status st = decode_whole(s, fmin(1.0, fmax(scale, keep_scale)), err);
        if (st)
            return st;
        from = s->whole.img;
        orientation = s->whole.orientation;
        if (orientation >= 5) {
            int t = width;
            width = height, height = t;
        }
    }
    enum fv_status st = resize_from(from, width, height, out, err);
    if (st == FV_OK && (st = fv_image_orient(out, orientation, err)) != FV_OK) {
        fv_image_free(*out);
        *out = NULL;
    }
    return st;
}

