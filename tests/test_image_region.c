/* test_image_region.c - JPEG parts decoded at a DCT scale, every EXIF orientation, windows. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "pipeline/image.h"
#include "pipeline/image_internal.h"
#include "tests/leak_check.h"

LEAK_CHECKED_SUITE(image_region);

/* ---- test images ---- */

/* The upright test image: smooth colour gradients and, centred on (mx, my),
 * a bright 8x8 square whose position the windows must give back. */
struct scene {
    int width, height;
    double mx, my; /* centre of the marker, in pixel-index coordinates */
};

static uint8_t smooth(double v)
{
    return (uint8_t)lround(v < 0 ? 0 : v > 255 ? 255 : v);
}

static struct fv_image *scene_image(const struct scene *s, bool marker)
{
    struct fv_image *img = fv_image_new(s->width, s->height);
    cr_assert_not_null(img);
    for (int y = 0; y < s->height; y++)
        for (int x = 0; x < s->width; x++) {
            uint8_t *p = img->rgb + ((size_t)y * s->width + x) * 3;
            p[0] = smooth(60 + 40 * sin(x * 0.031) + 20 * cos(y * 0.023));
            p[1] = smooth(70 + 30 * cos(x * 0.017 + y * 0.029));
            p[2] = smooth(50 + 0.2 * x + 0.15 * y);
            bool in_marker = fabs(x - s->mx) < 4 && fabs(y - s->my) < 4;
            if (marker && in_marker)
                p[0] = p[1] = p[2] = 255;
        }
    return img;
}

/* The orientation whose transformation undoes `orientation`'s. */
static int inverse_orientation(int orientation)
{
    return orientation == 6 ? 8 : orientation == 8 ? 6 : orientation;
}

/* A JPEG whose decoding, turned upright by its EXIF orientation, is `upright`:
 * the pixels stored as the camera would have, an APP1 "Exif" segment with the
 * orientation after SOI. progressive selects libjpeg's progressive script. */
static uint8_t *oriented_jpeg(const struct fv_image *upright, int orientation, bool progressive,
                              size_t *size)
{
    struct fv_image *stored = fv_image_clone(upright);
    struct fv_error err = {0};
    cr_assert_eq(fv_image_orient(&stored, inverse_orientation(orientation), &err), FV_OK);

    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned char *buffer = NULL;
    unsigned long length = 0;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buffer, &length);
    cinfo.image_width = (JDIMENSION)stored->width;
    cinfo.image_height = (JDIMENSION)stored->height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 95, TRUE); /* 4:2:0, as cameras write */
    if (progressive)
        jpeg_simple_progression(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);

    /* IFD0 with one entry, the orientation (SHORT), little-endian */
    uint8_t exif[6 + 26] = {'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0,
                            0x12, 0x01, 3, 0, 1, 0, 0, 0, (uint8_t)orientation, 0, 0, 0,
                            0, 0, 0, 0};
    jpeg_write_marker(&cinfo, JPEG_APP0 + 1, exif, sizeof exif);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = stored->rgb + (size_t)cinfo.next_scanline * stored->width * 3;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    fv_image_free(stored);
    *size = length;
    return buffer;
}

static struct fv_image *decode_whole(const uint8_t *data, size_t size)
{
    struct fv_image *img = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_image_decode(data, size, NULL, &img, &err), FV_OK, "%s", err.message);
    return img;
}

static struct fv_image *decode_region(const uint8_t *data, size_t size, float min_scale, int x,
                                      int y, int w, int h, struct fv_image_window *window)
{
    struct fv_image *part = NULL;
    struct fv_error err = {0};
    enum fv_status status = fv_jpeg_decode_region(data, size, NULL, min_scale, x, y, w, h,
                                                  &part, window, &err);
    cr_assert_eq(status, FV_OK, "region (%d, %d, %d, %d) at %g: %s", x, y, w, h, min_scale,
                 err.message);
    cr_assert_not_null(part);
    return part;
}

static int scaled_side(int side, int eighths)
{
    return (side * eighths + 7) / 8;
}

/* The part covers the rectangle scaled and rounded out to whole pixels, give
 * or take `slack` pixels, and lies within the scaled upright image. Where the
 * scale does not divide a side, the scaled pixels of a mirrored side are
 * anchored at its far end, and the part may lie one pixel off. */
static void expect_covers(const struct fv_image *part, const struct fv_image_window *window,
                          int width, int height, int eighths, int x, int y, int w, int h,
                          int slack)
{
    int sw = scaled_side(width, eighths), sh = scaled_side(height, eighths);
    int left = x * eighths / 8, top = y * eighths / 8;
    int right = scaled_side(x + w, eighths), bottom = scaled_side(y + h, eighths);
    cr_expect(window->x >= 0 && window->y >= 0 && window->x + part->width <= sw &&
                  window->y + part->height <= sh,
              "part %dx%d at (%d, %d) outside the %dx%d scaled image", part->width,
              part->height, window->x, window->y, sw, sh);
    cr_expect(abs(window->x - left) <= slack && abs(window->y - top) <= slack &&
                  abs(window->x + part->width - right) <= slack &&
                  abs(window->y + part->height - bottom) <= slack,
              "part %dx%d at (%d, %d) for (%d, %d, %d, %d) at %d/8, which is (%d, %d) to "
              "(%d, %d)", part->width, part->height, window->x, window->y, x, y, w, h, eighths,
              left, top, right, bottom);
}

/* Mean absolute difference between part and the same pixels of whole, which
 * window places in it. */
static double mean_difference(const struct fv_image *part, const struct fv_image_window *window,
                              const struct fv_image *whole)
{
    double total = 0;
    for (int j = 0; j < part->height; j++)
        for (int i = 0; i < part->width; i++) {
            const uint8_t *a = part->rgb + ((size_t)j * part->width + i) * 3;
            const uint8_t *b =
                whole->rgb + ((size_t)(window->y + j) * whole->width + window->x + i) * 3;
            for (int c = 0; c < 3; c++)
                total += abs(a[c] - b[c]);
        }
    return total / ((double)part->width * part->height * 3);
}

/* The marker's centre as the window places it: the centroid of how much
 * brighter the part with the marker is than the same part without it, mapped
 * to full-size coordinates. */
static void marker_centre(const struct fv_image *with, const struct fv_image *without,
                          const struct fv_image_window *window, double *x, double *y)
{
    cr_assert(with->width == without->width && with->height == without->height);
    double total = 0, sx = 0, sy = 0;
    for (int j = 0; j < with->height; j++)
        for (int i = 0; i < with->width; i++) {
            const uint8_t *a = with->rgb + ((size_t)j * with->width + i) * 3;
            const uint8_t *b = without->rgb + ((size_t)j * with->width + i) * 3;
            double weight = (a[0] - b[0]) + (a[1] - b[1]) + (a[2] - b[2]);
            if (weight <= 0)
                continue;
            total += weight;
            sx += weight * ((window->x + i + 0.5) / window->scale - 0.5);
            sy += weight * ((window->y + j + 0.5) / window->scale - 0.5);
        }
    cr_assert_gt(total, 0, "no marker in the part");
    *x = sx / total;
    *y = sy / total;
}

static const int EIGHTHS[] = {1, 3, 4, 8};

/* Every orientation and scale on a 200x136 scene (sides multiples of 8, so
 * every scale divides them), baseline and progressive. */
static void check_orientations(bool progressive)
{
    const struct scene s = {.width = 200, .height = 136, .mx = 83.5, .my = 57.5};
    struct fv_image *upright = scene_image(&s, true), *plain = scene_image(&s, false);
    const int rx = 50, ry = 30, rw = 70, rh = 56; /* holds the marker */
    for (int orientation = 1; orientation <= 8; orientation++) {
        size_t size, plain_size;
        uint8_t *jpeg = oriented_jpeg(upright, orientation, progressive, &size);
        uint8_t *plain_jpeg = oriented_jpeg(plain, orientation, progressive, &plain_size);
        struct fv_image *whole = decode_whole(jpeg, size);
        cr_assert_eq(whole->width, s.width);
        cr_assert_eq(whole->height, s.height);
        for (size_t k = 0; k < sizeof EIGHTHS / sizeof *EIGHTHS; k++) {
            int m = EIGHTHS[k];
            struct fv_image_window window, plain_window;
            struct fv_image *part = decode_region(jpeg, size, m / 8.0f, rx, ry, rw, rh,
                                                  &window);
            struct fv_image *plain_part = decode_region(plain_jpeg, plain_size, m / 8.0f, rx,
                                                        ry, rw, rh, &plain_window);
            cr_expect_eq(window.scale, m / 8.0f);
            expect_covers(part, &window, s.width, s.height, m, rx, ry, rw, rh, 0);
            struct fv_image *reference = NULL;
            struct fv_error err = {0};
            cr_assert_eq(fv_image_resize(whole, scaled_side(s.width, m),
                                         scaled_side(s.height, m), &reference, &err),
                         FV_OK);
            double difference = mean_difference(part, &window, reference);
            if (m == 8)
                cr_expect_eq(difference, 0, "orientation %d: part differs from the whole "
                             "decode (mean %f)", orientation, difference);
            else
                cr_expect_lt(difference, 3.0, "orientation %d at %d/8: mean difference %f "
                             "from the resized whole", orientation, m, difference);
            double cx, cy;
            marker_centre(part, plain_part, &window, &cx, &cy);
            cr_expect(fabs(cx - s.mx) < 0.5 && fabs(cy - s.my) < 0.5,
                      "orientation %d at %d/8: marker at (%.2f, %.2f), expected (%.1f, %.1f)",
                      orientation, m, cx, cy, s.mx, s.my);
            fv_image_free(reference);
            fv_image_free(part);
            fv_image_free(plain_part);
        }
        fv_image_free(whole);
        free(jpeg);
        free(plain_jpeg);
    }
    fv_image_free(upright);
    fv_image_free(plain);
}

Test(image_region, every_orientation_and_scale_baseline)
{
    check_orientations(false);
}

Test(image_region, every_orientation_and_scale_progressive)
{
    check_orientations(true);
}

/* Sides that no scale divides (203x141, odd, not multiples of a 16-pixel
 * iMCU) and rectangles at every edge: at full size the part is the whole
 * decode's pixels exactly; at other scales the part is libjpeg's scaled image
 * (a whole-image region) cut where the window says. */
Test(image_region, odd_sizes_and_edges_match_the_whole_image)
{
    const struct scene s = {.width = 203, .height = 141, .mx = 150, .my = 20};
    struct fv_image *upright = scene_image(&s, true);
    const int rects[][4] = {{0, 0, 203, 141}, {0, 0, 1, 1}, {202, 140, 1, 1}, {17, 5, 33, 9},
                            {180, 100, 23, 41}, {0, 120, 203, 21}, {101, 0, 1, 141}};
    for (int orientation = 1; orientation <= 8; orientation++) {
        size_t size;
        uint8_t *jpeg = oriented_jpeg(upright, orientation, orientation % 2 == 0, &size);
        struct fv_image *whole = decode_whole(jpeg, size);
        for (size_t k = 0; k < sizeof EIGHTHS / sizeof *EIGHTHS; k++) {
            int m = EIGHTHS[k];
            struct fv_image_window all_window;
            struct fv_image *all = decode_region(jpeg, size, m / 8.0f, 0, 0, s.width,
                                                 s.height, &all_window);
            cr_expect(all_window.x == 0 && all_window.y == 0);
            cr_expect_eq(all->width, scaled_side(s.width, m));
            cr_expect_eq(all->height, scaled_side(s.height, m));
            if (m == 8)
                cr_expect_eq(memcmp(all->rgb, whole->rgb, fv_image_byte_count(whole)), 0);
            for (size_t r = 0; r < sizeof rects / sizeof *rects; r++) {
                const int *q = rects[r];
                struct fv_image_window window;
                struct fv_image *part = decode_region(jpeg, size, m / 8.0f, q[0], q[1], q[2],
                                                      q[3], &window);
                expect_covers(part, &window, s.width, s.height, m, q[0], q[1], q[2], q[3],
                              m == 8 ? 0 : 1);
                cr_expect_eq(mean_difference(part, &window, all), 0,
                             "orientation %d at %d/8, rectangle (%d, %d, %d, %d): part %dx%d "
                             "at (%d, %d) differs", orientation, m, q[0], q[1], q[2], q[3],
                             part->width, part->height, window.x, window.y);
                fv_image_free(part);
            }
            fv_image_free(all);
        }
        fv_image_free(whole);
        free(jpeg);
    }
    fv_image_free(upright);
}

Test(image_region, probe_gives_the_upright_size)
{
    const struct scene s = {.width = 64, .height = 40};
    struct fv_image *upright = scene_image(&s, false);
    for (int orientation = 1; orientation <= 8; orientation++) {
        size_t size;
        uint8_t *jpeg = oriented_jpeg(upright, orientation, false, &size);
        struct fv_image_info info = {0};
        struct fv_error err = {0};
        cr_assert_eq(fv_image_probe(jpeg, size, NULL, &info, &err), FV_OK, "%s", err.message);
        cr_expect_str_eq(info.format, "JPEG");
        cr_expect_eq(info.width, 64, "orientation %d", orientation);
        cr_expect_eq(info.height, 40, "orientation %d", orientation);
        free(jpeg);
    }
    fv_image_free(upright);
}

Test(image_region, rectangle_is_clamped_to_the_image)
{
    const struct scene s = {.width = 96, .height = 64};
    struct fv_image *upright = scene_image(&s, false);
    size_t size;
    uint8_t *jpeg = oriented_jpeg(upright, 6, false, &size);
    struct fv_image *whole = decode_whole(jpeg, size);

    struct fv_image_window window;
    struct fv_image *part = decode_region(jpeg, size, 1, -50, -40, 1000, 60, &window);
    cr_expect(window.x == 0 && window.y == 0, "window (%d, %d)", window.x, window.y);
    cr_expect_eq(part->width, 96);
    cr_expect_geq(part->height, 20);
    cr_expect_eq(mean_difference(part, &window, whole), 0);
    fv_image_free(part);

    part = decode_region(jpeg, size, 1, 90, 60, 1 << 30, 1 << 30, &window);
    cr_expect(window.x <= 90 && window.y <= 60 && window.x + part->width == 96 &&
              window.y + part->height == 64);
    fv_image_free(part);

    struct fv_error err = {0};
    part = (struct fv_image *)0x1;
    cr_expect_eq(fv_jpeg_decode_region(jpeg, size, NULL, 1, 96, 0, 10, 10, &part, &window,
                                       &err), FV_ERR_INVALID_ARG);
    cr_expect_null(part);
    cr_expect(strstr(err.message, "outside") != NULL, "%s", err.message);
    cr_expect_eq(fv_jpeg_decode_region(jpeg, size, NULL, 1, -20, -20, 20, 5, &part, &window,
                                       &err), FV_ERR_INVALID_ARG);
    cr_expect_eq(fv_jpeg_decode_region(jpeg, size, NULL, 1, 0, 0, 0, 5, &part, &window, &err),
                 FV_ERR_INVALID_ARG);
    cr_expect_eq(fv_jpeg_decode_region(jpeg, size, NULL, NAN, 0, 0, 5, 5, &part, &window,
                                       &err), FV_ERR_INVALID_ARG);
    fv_image_free(whole);
    free(jpeg);
    fv_image_free(upright);
}

Test(image_region, scale_is_the_smallest_eighth_at_least_asked)
{
    const struct scene s = {.width = 64, .height = 48};
    struct fv_image *upright = scene_image(&s, false);
    size_t size;
    uint8_t *jpeg = oriented_jpeg(upright, 1, false, &size);
    const struct {
        float asked, given;
    } cases[] = {{0.01f, 0.125f}, {0, 0.125f}, {-3, 0.125f}, {0.125f, 0.125f},
                 {0.126f, 0.25f}, {0.3f, 0.375f}, {0.5f, 0.5f}, {0.51f, 0.625f},
                 {1, 1}, {5, 1}, {INFINITY, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct fv_image_window window;
        struct fv_image *part = decode_region(jpeg, size, cases[i].asked, 0, 0, 64, 48,
                                              &window);
        cr_expect_eq(window.scale, cases[i].given, "asked %g, given %g", cases[i].asked,
                     window.scale);
        cr_expect_eq(part->width, (int)(64 * cases[i].given + 0.999f));
        fv_image_free(part);
    }
    free(jpeg);
    fv_image_free(upright);
}

/* Only the rows a region needs are decoded, but a file whose end is missing
 * is still refused, as fv_image_decode refuses it; so are limits. */
Test(image_region, truncated_data_and_limits)
{
    const struct scene s = {.width = 160, .height = 160};
    struct fv_image *upright = scene_image(&s, false);
    for (int progressive = 0; progressive <= 1; progressive++) {
        size_t size;
        uint8_t *jpeg = oriented_jpeg(upright, 1, progressive, &size);
        size_t cuts[] = {size - 2, size - 200, size / 2, 40};
        for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
            struct fv_image *part = (struct fv_image *)0x1;
            struct fv_image_window window;
            struct fv_error err = {0};
            enum fv_status status = fv_jpeg_decode_region(jpeg, cuts[i], NULL, 1, 0, 0, 16,
                                                          16, &part, &window, &err);
            cr_expect_eq(status, FV_ERR_FORMAT, "%s cut to %zu of %zu bytes: %d (%s)",
                         progressive ? "progressive" : "baseline", cuts[i], size, status,
                         err.message);
            cr_expect_null(part);
            cr_expect(strstr(err.message, "truncated JPEG") != NULL, "%s", err.message);
        }
        struct fv_image_limits limits = {.max_bytes = 0, .max_pixels = 160 * 160 - 1};
        struct fv_image *part = NULL;
        struct fv_image_window window;
        struct fv_error err = {0};
        cr_expect_eq(fv_jpeg_decode_region(jpeg, size, &limits, 1, 0, 0, 16, 16, &part,
                                           &window, &err), FV_ERR_TOO_LARGE);
        cr_expect(strstr(err.message, "160x160") != NULL, "%s", err.message);
        limits = (struct fv_image_limits){.max_bytes = size - 1, .max_pixels = 0};
        cr_expect_eq(fv_jpeg_decode_region(jpeg, size, &limits, 1, 0, 0, 16, 16, &part,
                                           &window, &err), FV_ERR_TOO_LARGE);
        cr_expect_eq(fv_jpeg_decode_region(jpeg, 0, NULL, 1, 0, 0, 16, 16, &part, &window,
                                           &err), FV_ERR_FORMAT);
        free(jpeg);
    }
    fv_image_free(upright);
}

/* Grayscale and CMYK files go through the same conversions as a whole decode. */
Test(image_region, grayscale_and_cmyk_parts)
{
    const int w = 72, h = 56;
    uint8_t *pixels = malloc((size_t)w * h * 4);
    for (int i = 0; i < w * h * 4; i++)
        pixels[i] = (uint8_t)(40 + (i * 7) % 170);
    const struct {
        int components;
        J_COLOR_SPACE space;
    } kinds[] = {{1, JCS_GRAYSCALE}, {4, JCS_CMYK}};
    for (size_t k = 0; k < 2; k++) {
        struct jpeg_compress_struct cinfo;
        struct jpeg_error_mgr jerr;
        unsigned char *buffer = NULL;
        unsigned long length = 0;
        cinfo.err = jpeg_std_error(&jerr);
        jpeg_create_compress(&cinfo);
        jpeg_mem_dest(&cinfo, &buffer, &length);
        cinfo.image_width = (JDIMENSION)w;
        cinfo.image_height = (JDIMENSION)h;
        cinfo.input_components = kinds[k].components;
        cinfo.in_color_space = kinds[k].space;
        jpeg_set_defaults(&cinfo);
        jpeg_start_compress(&cinfo, TRUE);
        while (cinfo.next_scanline < cinfo.image_height) {
            JSAMPROW row = pixels + (size_t)cinfo.next_scanline * w * kinds[k].components;
            jpeg_write_scanlines(&cinfo, &row, 1);
        }
        jpeg_finish_compress(&cinfo);
        jpeg_destroy_compress(&cinfo);

        struct fv_image *whole = decode_whole(buffer, length);
        struct fv_image_window window;
        struct fv_image *part = decode_region(buffer, length, 1, 20, 11, 30, 25, &window);
        expect_covers(part, &window, w, h, 8, 20, 11, 30, 25, 0);
        cr_expect_eq(mean_difference(part, &window, whole), 0, "%d components",
                     kinds[k].components);
        fv_image_free(part);
        fv_image_free(whole);
        free(buffer);
    }
    free(pixels);
}

/* Every chroma subsampling cameras and encoders write (4:4:4, 4:2:2, 4:4:0,
 * 4:2:0, 4:1:1): libjpeg upsamples each differently, and at a cropped edge the
 * upsampling must still see its neighbours. */
Test(image_region, every_subsampling)
{
    const struct scene s = {.width = 157, .height = 93};
    struct fv_image *img = scene_image(&s, false);
    for (int i = 0; i < s.width * s.height * 3; i += 7)
        img->rgb[i] ^= 0x3f; /* detail for the chroma to differ between neighbours */
    const int factors[][2] = {{1, 1}, {2, 1}, {1, 2}, {2, 2}, {4, 1}};
    const int rects[][4] = {{31, 17, 45, 40}, {0, 50, 157, 3}, {100, 0, 57, 93}, {1, 1, 1, 1}};
    for (size_t f = 0; f < sizeof factors / sizeof *factors; f++) {
        struct jpeg_compress_struct cinfo;
        struct jpeg_error_mgr jerr;
        unsigned char *jpeg = NULL;
        unsigned long size = 0;
        cinfo.err = jpeg_std_error(&jerr);
        jpeg_create_compress(&cinfo);
        jpeg_mem_dest(&cinfo, &jpeg, &size);
        cinfo.image_width = (JDIMENSION)s.width;
        cinfo.image_height = (JDIMENSION)s.height;
        cinfo.input_components = 3;
        cinfo.in_color_space = JCS_RGB;
        jpeg_set_defaults(&cinfo);
        cinfo.comp_info[0].h_samp_factor = factors[f][0];
        cinfo.comp_info[0].v_samp_factor = factors[f][1];
        jpeg_start_compress(&cinfo, TRUE);
        while (cinfo.next_scanline < cinfo.image_height) {
            JSAMPROW row = img->rgb + (size_t)cinfo.next_scanline * s.width * 3;
            jpeg_write_scanlines(&cinfo, &row, 1);
        }
        jpeg_finish_compress(&cinfo);
        jpeg_destroy_compress(&cinfo);

        for (size_t k = 0; k < sizeof EIGHTHS / sizeof *EIGHTHS; k++) {
            int m = EIGHTHS[k];
            struct fv_image_window all_window;
            struct fv_image *all = decode_region(jpeg, size, m / 8.0f, 0, 0, s.width,
                                                 s.height, &all_window);
            for (size_t r = 0; r < sizeof rects / sizeof *rects; r++) {
                const int *q = rects[r];
                struct fv_image_window window;
                struct fv_image *part = decode_region(jpeg, size, m / 8.0f, q[0], q[1], q[2],
                                                      q[3], &window);
                expect_covers(part, &window, s.width, s.height, m, q[0], q[1], q[2], q[3], 0);
                cr_expect_eq(mean_difference(part, &window, all), 0,
                             "%dx%d sampling at %d/8, rectangle (%d, %d, %d, %d) differs",
                             factors[f][0], factors[f][1], m, q[0], q[1], q[2], q[3]);
                fv_image_free(part);
            }
            if (m == 8) {
                struct fv_image *whole = decode_whole(jpeg, size);
                cr_expect_eq(memcmp(all->rgb, whole->rgb, fv_image_byte_count(whole)), 0);
                fv_image_free(whole);
            }
            fv_image_free(all);
        }
        free(jpeg);
    }
    fv_image_free(img);
}

/* ---- image sources (pipeline/image_source.c) ---- */

static struct fv_image_source *open_source(const uint8_t *data, size_t size)
{
    struct fv_image_source *src = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_image_source_open(data, size, NULL, &src, &err), FV_OK, "%s", err.message);
    return src;
}

static struct fv_image *source_read(struct fv_image_source *src, float scale, int x, int y,
                                    int w, int h, struct fv_image_window *window)
{
    struct fv_image *part = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_image_source_read(src, scale, x, y, w, h, &part, window, &err), FV_OK,
                 "read (%d, %d, %d, %d) at %g: %s", x, y, w, h, scale, err.message);
    return part;
}

/* fv_image_source_resample around the marker, straight from the stored part,
 * against the whole decode cropped and resampled upright: the same pixels for
 * an upright baseline JPEG, within rounding (the passes run in the other order
 * or the blocks start at another corner) for the other orientations. */
static void check_resample(struct fv_image_source *src, const struct fv_image *whole,
                           int orientation, bool progressive)
{
    const struct {
        double x, y, w, h;
        int size;
    } rects[] = {{1476.3, 574.8, 51.0, 57.4, 24},   /* k = 1: the filter only */
                 {1402.0, 520.0, 199.5, 180.2, 24}, /* k = 3: block averages first */
                 {1480.0, 590.0, 40.0, 40.0, 48}};  /* enlarged */
    for (size_t r = 0; r < sizeof rects / sizeof *rects; r++) {
        struct fv_image *got = fv_image_new(rects[r].size, rects[r].size), *want;
        struct fv_error err = {0};
        cr_assert_eq(fv_image_source_resample(src, 1.0f, rects[r].x, rects[r].y, rects[r].w,
                                              rects[r].h, got, &err),
                     FV_OK, "%s", err.message);
        int x = (int)lround(rects[r].x), y = (int)lround(rects[r].y);
        int w = (int)lround(rects[r].w), h = (int)lround(rects[r].h);
        int k = (w < h ? w : h) / (2 * rects[r].size);
        struct fv_image *from = k >= 2 ? fv_image_reduce_region(whole, x, y, w, h, k) : NULL;
        want = fv_image_new(rects[r].size, rects[r].size);
        if (from)
            cr_assert_eq(fv_image_resize_region(from, 0, 0, from->width, from->height, want,
                                                &err), FV_OK);
        else
            cr_assert_eq(fv_image_resize_region(whole, x, y, w, h, want, &err), FV_OK);
        struct fv_image_window origin = {1, 0, 0};
        double difference = mean_difference(got, &origin, want);
        if (orientation == 1 && !progressive)
            cr_expect_eq(difference, 0, "rectangle %zu: differs by %f from the whole decode's",
                         r, difference);
        else
            cr_expect_lt(difference, progressive ? 2.0 : 1.5,
                         "orientation %d, rectangle %zu: differs by %f from the whole decode's",
                         orientation, r, difference);
        fv_image_free(from);
        fv_image_free(got);
        fv_image_free(want);
    }
}

/* A JPEG above the size sources decode in parts (4 megapixels), in every
 * orientation, baseline and progressive: reads at full size are the whole
 * decode's pixels, reads at 1/4 put the marker where it is, and the reduced
 * copy detection uses is the whole decode resized, give or take the DCT. */
static void check_sources(bool progressive)
{
    const struct scene s = {.width = 2400, .height = 1808, .mx = 1501.5, .my = 601.5};
    struct fv_image *upright = scene_image(&s, true), *plain = scene_image(&s, false);
    const int rx = 1380, ry = 500, rw = 300, rh = 220; /* holds the marker */
    for (int orientation = 1; orientation <= 8; orientation++) {
        size_t size, plain_size;
        uint8_t *jpeg = oriented_jpeg(upright, orientation, progressive, &size);
        uint8_t *plain_jpeg = oriented_jpeg(plain, orientation, progressive, &plain_size);
        struct fv_image *whole = decode_whole(jpeg, size);
        struct fv_image_source *src = open_source(jpeg, size);
        struct fv_image_source *plain_src = open_source(plain_jpeg, plain_size);
        const struct fv_image_info *info = fv_image_source_info(src);
        cr_expect_eq(info->width, s.width);
        cr_expect_eq(info->height, s.height);
        cr_expect_null(fv_image_source_full(src), "a large JPEG is not decoded whole");

        /* The reduced copy first, as detection asks for it. */
        struct fv_image *copy = NULL, *reference = NULL;
        struct fv_error err = {0};
        cr_assert_eq(fv_image_source_scaled(src, 600, 452, 0.25f, &copy, &err), FV_OK, "%s",
                     err.message);
        cr_assert_eq(fv_image_resize(whole, 600, 452, &reference, &err), FV_OK);
        struct fv_image_window origin = {1, 0, 0};
        double difference = mean_difference(copy, &origin, reference);
        cr_expect_lt(difference, 3.0, "orientation %d: reduced copy differs by %f", orientation,
                     difference);

        struct fv_image_window window, plain_window;
        struct fv_image *part = source_read(src, 1.0f, rx, ry, rw, rh, &window);
        if (!progressive) {
            cr_expect_eq(window.scale, 1.0f);
            cr_expect(window.x <= rx && window.y <= ry && window.x + part->width >= rx + rw &&
                      window.y + part->height >= ry + rh);
            cr_expect_eq(mean_difference(part, &window, whole), 0,
                         "orientation %d: a full-size read differs from the whole decode",
                         orientation);
        }
        fv_image_free(part);
        part = source_read(src, 0.25f, rx, ry, rw, rh, &window);
        struct fv_image *plain_part = source_read(plain_src, 0.25f, rx, ry, rw, rh,
                                                  &plain_window);
        double cx, cy;
        marker_centre(part, plain_part, &window, &cx, &cy);
        cr_expect(fabs(cx - s.mx) < 1.0 && fabs(cy - s.my) < 1.0,
                  "orientation %d: marker read at (%.2f, %.2f), expected (%.1f, %.1f)",
                  orientation, cx, cy, s.mx, s.my);
        fv_image_free(part);
        fv_image_free(plain_part);
        check_resample(src, whole, orientation, progressive);
        fv_image_free(copy);
        fv_image_free(reference);
        fv_image_source_free(src);
        fv_image_source_free(plain_src);
        fv_image_free(whole);
        free(jpeg);
        free(plain_jpeg);
    }
    fv_image_free(upright);
    fv_image_free(plain);
}

Test(image_region, sources_in_every_orientation_baseline, .timeout = 120)
{
    check_sources(false);
}

Test(image_region, sources_in_every_orientation_progressive, .timeout = 120)
{
    check_sources(true);
}
