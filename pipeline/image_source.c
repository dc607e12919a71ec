/* image_source.c - an encoded image read at the resolution each use needs. */
#include "pipeline/image.h"

#include <stdint.h>

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_file.h"

struct fv_image_source {
    const uint8_t *data; /* encoded bytes (borrowed), or NULL for a wrapped image */
    size_t size;
    struct fv_image_limits limits;
    struct fv_image_info info;
    const struct fv_image *full; /* the whole upright image when it is in memory */
    struct fv_image *owned;      /* full, when the source decoded it */
    uint8_t *owned_data;         /* data, when the source read it from a file */
};

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
    enum fv_status st = fv_image_decode(data, size, &s->limits, &s->owned, err);
    if (st) {
        fv_image_source_free(s);
        return st;
    }
    s->full = s->owned;
    s->info.format = "image";
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

enum fv_status fv_image_source_read(struct fv_image_source *s, float min_scale, int x, int y,
                                    int w, int h, struct fv_image **out,
                                    struct fv_image_window *window, struct fv_error *err)
{
    *out = NULL;
    if (!clamp_rect(&s->info, &x, &y, &w, &h))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "region lies outside the image");
    (void)min_scale;
    *out = fv_image_crop(s->full, x, y, w, h);
    if (!*out)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory reading an image region");
    *window = (struct fv_image_window){1.0f, x, y};
    return FV_OK;
}

enum fv_status fv_image_source_scaled(struct fv_image_source *s, int width, int height,
                                      struct fv_image **out, struct fv_error *err)
{
    *out = NULL;
    if (width < 1 || height < 1 || width > s->info.width || height > s->info.height)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "cannot scale a %dx%d image to %dx%d",
                            s->info.width, s->info.height, width, height);
    /* Shrinking by more than 4: average blocks first, keeping at least twice
     * the target size for the filter (PIL's reducing_gap of 2). */
    int k = s->info.width / (2 * width) < s->info.height / (2 * height)
                ? s->info.width / (2 * width)
                : s->info.height / (2 * height);
    k = k > 256 ? 256 : k;
    if (k < 2)
        return fv_image_resize(s->full, width, height, out, err);
    struct fv_image *reduced = fv_image_reduce(s->full, k);
    if (!reduced)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory reducing an image");
    enum fv_status st = fv_image_resize(reduced, width, height, out, err);
    fv_image_free(reduced);
    return st;
}
