/* image_draw.c - crop, and rectangles and points drawn on an image. */
#include "pipeline/image.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "pipeline/image_internal.h"

struct fv_image *fv_image_crop(const struct fv_image *src, int x, int y, int w, int h)
{
    if (!fv_image_is_valid(src))
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
        memcpy(fv_image_pixel_at(dst, (int)(left - x), (int)(sy - y)),
               fv_image_pixel_at(src, (int)left, (int)sy), (size_t)(right - left) * 3);
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
        uint8_t *p = fv_image_pixel_at(img, (int)x1, (int)y);
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
    if (!fv_image_is_valid(img) || !nearest_pixel(x1, &left) || !nearest_pixel(y1, &top) ||
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
    if (!fv_image_is_valid(img) || !nearest_pixel(x, &cx) || !nearest_pixel(y, &cy))
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
                uint8_t *p = fv_image_pixel_at(img, (int)px, (int)py);
                p[0] = r;
                p[1] = g;
                p[2] = b;
            }
        }
}
