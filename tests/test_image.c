/* test_image.c - decoding (formats, EXIF, hostile input), encoding, resize, crop, draw. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "pipeline/image.h"
#include "pipeline/image_internal.h"
#include "tests/leak_check.h"

LEAK_CHECKED_SUITE(image);

/* ---- helpers ---- */

struct rgb {
    uint8_t r, g, b;
};

static const struct rgb RED = {255, 0, 0}, GREEN = {0, 255, 0}, BLUE = {0, 0, 255},
                        YELLOW = {255, 255, 0};

static void set_pixel(struct fv_image *img, int x, int y, struct rgb c)
{
    uint8_t *p = img->rgb + ((size_t)y * img->width + x) * 3;
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
}

static void expect_pixel(const struct fv_image *img, int x, int y, struct rgb c, int tolerance)
{
    const uint8_t *p = img->rgb + ((size_t)y * img->width + x) * 3;
    cr_expect(abs(p[0] - c.r) <= tolerance && abs(p[1] - c.g) <= tolerance &&
                  abs(p[2] - c.b) <= tolerance,
              "pixel (%d,%d) of %dx%d is (%d,%d,%d), expected (%d,%d,%d) +- %d", x, y,
              img->width, img->height, p[0], p[1], p[2], c.r, c.g, c.b, tolerance);
}

/* Deterministic pseudo-random bytes (a 64-bit LCG, high bits). */
static uint64_t rng_state;
static uint32_t rng_next(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

static struct fv_image *random_image(int w, int h, uint64_t seed)
{
    rng_state = seed;
    struct fv_image *img = fv_image_new(w, h);
    cr_assert_not_null(img);
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        img->rgb[i] = (uint8_t)rng_next();
    return img;
}

/* Top-left red, top-right green, bottom-left blue, bottom-right yellow. */
static struct fv_image *quadrant_image(int w, int h)
{
    struct fv_image *img = fv_image_new(w, h);
    cr_assert_not_null(img);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            set_pixel(img, x, y, y < h / 2 ? (x < w / 2 ? RED : GREEN)
                                           : (x < w / 2 ? BLUE : YELLOW));
    return img;
}

static struct fv_image *decode_ok(const uint8_t *data, size_t size)
{
    struct fv_image *img = NULL;
    struct fv_error err = {0};
    enum fv_status status = fv_image_decode(data, size, NULL, &img, &err);
    cr_assert_eq(status, FV_OK, "decode failed: %s", err.message);
    cr_assert_not_null(img);
    return img;
}

/* Decodes expecting a failure with `status` and a message containing `words`. */
static void decode_fails(const uint8_t *data, size_t size, const struct fv_image_limits *limits,
                         enum fv_status expected, const char *words)
{
    struct fv_image *img = (struct fv_image *)0x1;
    struct fv_error err = {0};
    enum fv_status status = fv_image_decode(data, size, limits, &img, &err);
    cr_expect_eq(status, expected, "status %d (%s), expected %d", status, err.message, expected);
    cr_expect_null(img, "no image on failure");
    cr_expect(strstr(err.message, words) != NULL, "message \"%s\" lacks \"%s\"", err.message,
              words);
    fv_image_free(status == FV_OK ? img : NULL);
}

static uint8_t *encode_jpeg(const struct fv_image *img, int quality, size_t *size)
{
    uint8_t *data = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_image_encode_jpeg(img, quality, &data, size, &err), FV_OK, "%s",
                 err.message);
    return data;
}

static uint8_t *encode_png(const struct fv_image *img, size_t *size)
{
    uint8_t *data = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_image_encode_png(img, &data, size, &err), FV_OK, "%s", err.message);
    return data;
}

/* A JPEG straight from libjpeg, for colour spaces fv_image_encode_jpeg never writes. */
static uint8_t *write_jpeg_raw(int w, int h, int components, J_COLOR_SPACE space,
                               const uint8_t *pixels, bool adobe_marker, size_t *size)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned char *buffer = NULL;
    unsigned long length = 0;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buffer, &length);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = components;
    cinfo.in_color_space = space;
    jpeg_set_defaults(&cinfo);
    cinfo.write_Adobe_marker = adobe_marker;
    jpeg_set_quality(&cinfo, 100, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * w * components);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *size = length;
    return buffer;
}

struct buffer {
    uint8_t *data;
    size_t size;
};

static void buffer_append(struct buffer *b, const void *data, size_t n)
{
    b->data = realloc(b->data, b->size + n);
    cr_assert_not_null(b->data);
    memcpy(b->data + b->size, data, n);
    b->size += n;
}

static void png_test_write(png_structp png, png_bytep data, size_t n)
{
    buffer_append(png_get_io_ptr(png), data, n);
}

static void png_test_flush(png_structp png)
{
    (void)png;
}

struct png_spec {
    int width, height, color_type, depth;
    const uint8_t *rows; /* packed rows as libpng takes them (16-bit big-endian) */
    size_t row_bytes;
    const png_color *palette;
    int palette_size;
    const uint8_t *palette_alpha;
    int palette_alpha_count;
    const uint8_t *exif;
    uint32_t exif_size;
    bool interlace;
};

static uint8_t *write_png_raw(const struct png_spec *s, size_t *size)
{
    struct buffer out = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    cr_assert(png && info);
    if (setjmp(png_jmpbuf(png)))
        cr_assert_fail("libpng failed writing the test PNG");
    png_set_write_fn(png, &out, png_test_write, png_test_flush);
    png_set_IHDR(png, info, (png_uint_32)s->width, (png_uint_32)s->height, s->depth,
                 s->color_type, s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->palette)
        png_set_PLTE(png, info, s->palette, s->palette_size);
    if (s->palette_alpha)
        png_set_tRNS(png, info, s->palette_alpha, s->palette_alpha_count, NULL);
    if (s->exif)
        png_set_eXIf_1(png, info, s->exif_size, (png_bytep)s->exif);
    png_write_info(png, info);
    png_bytep *rows = malloc((size_t)s->height * sizeof *rows);
    for (int y = 0; y < s->height; y++)
        rows[y] = (png_bytep)(s->rows + (size_t)y * s->row_bytes);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *size = out.size;
    return out.data;
}

/* A minimal EXIF TIFF block: IFD0 with a Make entry and then the orientation. */
static size_t make_exif_tiff(uint8_t *t, int orientation, bool big_endian)
{
    static const uint8_t little[] = {
        'I', 'I', 42, 0, 8, 0, 0, 0,            /* header, IFD0 at 8 */
        2, 0,                                   /* two entries */
        0x0f, 0x01, 2, 0, 4, 0, 0, 0, 'A', 'B', 'C', 0, /* Make, ASCII, "ABC" inline */
        0x12, 0x01, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0,       /* Orientation, SHORT, 1 */
        0, 0, 0, 0};                            /* no IFD1 */
    static const uint8_t big[] = {
        'M', 'M', 0, 42, 0, 0, 0, 8,
        0, 2,
        0x01, 0x0f, 0, 2, 0, 0, 0, 4, 'A', 'B', 'C', 0,
        0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0,
        0, 0, 0, 0};
    memcpy(t, big_endian ? big : little, sizeof little);
    t[big_endian ? 31 : 30] = (uint8_t)orientation; /* the SHORT's low byte */
    return sizeof little;
}

/* The JPEG with an APP1 segment holding `payload` inserted after SOI. */
static uint8_t *splice_app1(const uint8_t *jpeg, size_t size, const uint8_t *payload,
                            size_t payload_size, size_t *out_size)
{
    size_t segment = 2 + 2 + payload_size;
    uint8_t *out = malloc(size + segment);
    cr_assert_not_null(out);
    memcpy(out, jpeg, 2);
    out[2] = 0xff;
    out[3] = 0xe1;
    out[4] = (uint8_t)((payload_size + 2) >> 8);
    out[5] = (uint8_t)(payload_size + 2);
    memcpy(out + 6, payload, payload_size);
    memcpy(out + 2 + segment, jpeg + 2, size - 2);
    *out_size = size + segment;
    return out;
}

static uint8_t *splice_exif(const uint8_t *jpeg, size_t size, int orientation, bool big_endian,
                            size_t *out_size)
{
    uint8_t payload[64] = "Exif\0\0";
    size_t n = make_exif_tiff(payload + 6, orientation, big_endian);
    return splice_app1(jpeg, size, payload, 6 + n, out_size);
}

/* ---- limits and construction ---- */

Test(image, default_limits)
{
    struct fv_image_limits limits;
    fv_image_default_limits(&limits);
    cr_expect_eq(limits.max_bytes, 20u * 1024 * 1024);
    cr_expect_eq(limits.max_pixels, 40000000u);
}

Test(image, new_is_zeroed_and_rejects_bad_sizes)
{
    struct fv_image *img = fv_image_new(5, 3);
    cr_assert_not_null(img);
    cr_expect_eq(img->width, 5);
    cr_expect_eq(img->height, 3);
    for (int i = 0; i < 5 * 3 * 3; i++)
        cr_expect_eq(img->rgb[i], 0);
    fv_image_free(img);
    cr_expect_null(fv_image_new(0, 3));
    cr_expect_null(fv_image_new(3, -1));
    fv_image_free(NULL);
}

/* ---- round trips ---- */

Test(image, png_round_trip_is_exact)
{
    struct fv_image *img = random_image(37, 23, 1);
    size_t size;
    uint8_t *png = encode_png(img, &size);
    struct fv_image *back = decode_ok(png, size);
    cr_expect_eq(back->width, 37);
    cr_expect_eq(back->height, 23);
    cr_expect_eq(memcmp(back->rgb, img->rgb, 37 * 23 * 3), 0);
    fv_image_free(back);
    fv_image_free(img);
    free(png);
}

Test(image, jpeg_round_trip_is_close)
{
    struct fv_image *img = fv_image_new(64, 48);
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++)
            set_pixel(img, x, y, (struct rgb){(uint8_t)(x * 4), (uint8_t)(y * 5),
                                              (uint8_t)(128 + 60 * sin(x * 0.2))});
    size_t size;
    uint8_t *jpeg = encode_jpeg(img, 95, &size);
    struct fv_image *back = decode_ok(jpeg, size);
    cr_assert_eq(back->width, 64);
    cr_assert_eq(back->height, 48);
    double total = 0;
    for (size_t i = 0; i < 64 * 48 * 3; i++)
        total += abs(back->rgb[i] - img->rgb[i]);
    cr_expect_lt(total / (64 * 48 * 3), 2.0, "mean abs diff %f", total / (64 * 48 * 3));
    fv_image_free(back);
    fv_image_free(img);
    free(jpeg);
}

Test(image, jpeg_encoder_rejects_bad_quality)
{
    struct fv_image *img = fv_image_new(4, 4);
    uint8_t *data = NULL;
    size_t size = 0;
    struct fv_error err = {0};
    cr_expect_eq(fv_image_encode_jpeg(img, 0, &data, &size, &err), FV_ERR_INVALID_ARG);
    cr_expect_eq(fv_image_encode_jpeg(img, 101, &data, &size, &err), FV_ERR_INVALID_ARG);
    cr_expect_null(data);
    fv_image_free(img);
}

/* ---- EXIF orientation ---- */

/* Where the four source quadrants (R G / B Y) land for each orientation,
 * read as top-left, top-right, bottom-left, bottom-right of the output. */
static void check_orientation(const uint8_t *data, size_t size, int orientation)
{
    static const char *layout[9] = {NULL,   "RGBY", "GRYB", "YBGR", "BYRG",
                                    "RBGY", "BRYG", "YGBR", "GYRB"};
    struct fv_image *img = decode_ok(data, size);
    bool swapped = orientation >= 5;
    cr_expect_eq(img->width, swapped ? 32 : 64, "orientation %d width", orientation);
    cr_expect_eq(img->height, swapped ? 64 : 32, "orientation %d height", orientation);
    int w = img->width, h = img->height;
    int xs[4] = {w / 4, 3 * w / 4, w / 4, 3 * w / 4};
    int ys[4] = {h / 4, h / 4, 3 * h / 4, 3 * h / 4};
    for (int q = 0; q < 4; q++) {
        char c = layout[orientation][q];
        struct rgb expected = c == 'R' ? RED : c == 'G' ? GREEN : c == 'B' ? BLUE : YELLOW;
        expect_pixel(img, xs[q], ys[q], expected, 16);
    }
    fv_image_free(img);
}

Test(image, exif_orientation_all_eight_both_byte_orders)
{
    struct fv_image *src = quadrant_image(64, 32);
    size_t size;
    uint8_t *jpeg = encode_jpeg(src, 100, &size);
    for (int big = 0; big <= 1; big++)
        for (int orientation = 1; orientation <= 8; orientation++) {
            size_t with_size;
            uint8_t *with = splice_exif(jpeg, size, orientation, big, &with_size);
            check_orientation(with, with_size, orientation);
            free(with);
        }
    check_orientation(jpeg, size, 1); /* no EXIF at all */
    fv_image_free(src);
    free(jpeg);
}

Test(image, exif_orientation_long_type_is_accepted)
{
    struct fv_image *src = quadrant_image(64, 32);
    size_t size, with_size;
    uint8_t *jpeg = encode_jpeg(src, 100, &size);
    uint8_t payload[64] = "Exif\0\0";
    size_t n = make_exif_tiff(payload + 6, 6, false);
    payload[6 + 24] = 4; /* orientation entry's type: LONG, value 6 still in the low byte */
    uint8_t *with = splice_app1(jpeg, size, payload, 6 + n, &with_size);
    check_orientation(with, with_size, 6);
    free(with);
    free(jpeg);
    fv_image_free(src);
}

Test(image, malformed_exif_is_ignored)
{
    struct fv_image *src = quadrant_image(64, 32);
    size_t size;
    uint8_t *jpeg = encode_jpeg(src, 100, &size);
    for (int variant = 0; variant < 7; variant++) {
        uint8_t payload[64] = "Exif\0\0";
        size_t n = make_exif_tiff(payload + 6, 6, false);
        uint8_t *t = payload + 6;
        switch (variant) {
        case 0: t[4] = 0xff; t[7] = 0xff; break;          /* IFD0 offset far past the end */
        case 1: t[4] = (uint8_t)(n - 1); break;           /* IFD0 offset at the last byte */
        case 2: t[8] = 0xff; t[9] = 0xff; n = 10; break;  /* 65535 entries, none present */
        case 3: t[30] = 9; break;                         /* orientation out of range */
        case 4: t[24] = 2; break;                         /* orientation typed ASCII */
        case 5: t[2] = 43; break;                         /* TIFF magic wrong */
        case 6: n = 5; break;                             /* block shorter than a header */
        }
        size_t with_size;
        uint8_t *with = splice_app1(jpeg, size, payload, 6 + n, &with_size);
        check_orientation(with, with_size, 1);
        free(with);
    }
    free(jpeg);
    fv_image_free(src);
}

Test(image, png_exif_chunk_orientation)
{
    struct fv_image *src = quadrant_image(64, 32);
    uint8_t tiff[64];
    size_t n = make_exif_tiff(tiff, 8, true);
    struct png_spec spec = {.width = 64, .height = 32, .color_type = PNG_COLOR_TYPE_RGB,
                            .depth = 8, .rows = src->rgb, .row_bytes = 64 * 3,
                            .exif = tiff, .exif_size = (uint32_t)n};
    size_t size;
    uint8_t *png = write_png_raw(&spec, &size);
    check_orientation(png, size, 8);
    free(png);
    fv_image_free(src);
}

/* ---- colour models ---- */

Test(image, grayscale_jpeg_becomes_rgb)
{
    uint8_t gray[16 * 16];
    for (int i = 0; i < 16 * 16; i++)
        gray[i] = i < 128 ? 40 : 200; /* top half dark, bottom half light */
    size_t size;
    uint8_t *jpeg = write_jpeg_raw(16, 16, 1, JCS_GRAYSCALE, gray, false, &size);
    struct fv_image *img = decode_ok(jpeg, size);
    cr_assert_eq(img->width, 16);
    expect_pixel(img, 4, 2, (struct rgb){40, 40, 40}, 2);
    expect_pixel(img, 4, 13, (struct rgb){200, 200, 200}, 2);
    fv_image_free(img);
    free(jpeg);
}

/* C=0 M=255 Y=128 K=51 is R = 255*204/255 = 204, G = 0, B = 127*204/255 = 101.6. */
static void check_cmyk(bool adobe)
{
    uint8_t cmyk[16 * 16 * 4];
    for (int i = 0; i < 16 * 16; i++) {
        uint8_t ink[4] = {0, 255, 128, 51};
        for (int c = 0; c < 4; c++)
            cmyk[i * 4 + c] = adobe ? (uint8_t)(255 - ink[c]) : ink[c];
    }
    size_t size;
    uint8_t *jpeg = write_jpeg_raw(16, 16, 4, JCS_CMYK, cmyk, adobe, &size);
    struct fv_image *img = decode_ok(jpeg, size);
    expect_pixel(img, 8, 8, (struct rgb){204, 0, 102}, 3);
    fv_image_free(img);
    free(jpeg);
}

Test(image, cmyk_jpeg_becomes_rgb)
{
    check_cmyk(false);
}

Test(image, adobe_inverted_cmyk_jpeg_becomes_rgb)
{
    check_cmyk(true);
}

Test(image, palette_png_with_transparency)
{
    png_color palette[3] = {{10, 20, 30}, {200, 100, 50}, {0, 255, 128}};
    uint8_t alpha[2] = {0, 128};
    uint8_t rows[2 * 3] = {0, 1, 2, 2, 1, 0};
    struct png_spec spec = {.width = 3, .height = 2, .color_type = PNG_COLOR_TYPE_PALETTE,
                            .depth = 8, .rows = rows, .row_bytes = 3, .palette = palette,
                            .palette_size = 3, .palette_alpha = alpha,
                            .palette_alpha_count = 2};
    size_t size;
    uint8_t *png = write_png_raw(&spec, &size);
    struct fv_image *img = decode_ok(png, size);
    cr_assert_eq(img->width, 3);
    cr_assert_eq(img->height, 2);
    expect_pixel(img, 0, 0, (struct rgb){10, 20, 30}, 0); /* fully transparent: colour kept */
    expect_pixel(img, 1, 0, (struct rgb){200, 100, 50}, 0);
    expect_pixel(img, 2, 0, (struct rgb){0, 255, 128}, 0);
    expect_pixel(img, 0, 1, (struct rgb){0, 255, 128}, 0);
    fv_image_free(img);
    free(png);
}

Test(image, low_bit_depth_palette_and_gray_png)
{
    png_color palette[2] = {{1, 2, 3}, {250, 251, 252}};
    uint8_t rows[2] = {0x40, 0x80}; /* 1-bit: row 0 is 0 1, row 1 is 1 0 */
    struct png_spec spec = {.width = 2, .height = 2, .color_type = PNG_COLOR_TYPE_PALETTE,
                            .depth = 1, .rows = rows, .row_bytes = 1, .palette = palette,
                            .palette_size = 2};
    size_t size;
    uint8_t *png = write_png_raw(&spec, &size);
    struct fv_image *img = decode_ok(png, size);
    expect_pixel(img, 0, 0, (struct rgb){1, 2, 3}, 0);
    expect_pixel(img, 1, 0, (struct rgb){250, 251, 252}, 0);
    expect_pixel(img, 0, 1, (struct rgb){250, 251, 252}, 0);
    fv_image_free(img);
    free(png);

    uint8_t gray[1] = {0x1b}; /* 2-bit gray 0 1 2 3 -> 0 85 170 255 */
    struct png_spec gray_spec = {.width = 4, .height = 1, .color_type = PNG_COLOR_TYPE_GRAY,
                                 .depth = 2, .rows = gray, .row_bytes = 1};
    png = write_png_raw(&gray_spec, &size);
    img = decode_ok(png, size);
    expect_pixel(img, 0, 0, (struct rgb){0, 0, 0}, 0);
    expect_pixel(img, 1, 0, (struct rgb){85, 85, 85}, 0);
    expect_pixel(img, 2, 0, (struct rgb){170, 170, 170}, 0);
    expect_pixel(img, 3, 0, (struct rgb){255, 255, 255}, 0);
    fv_image_free(img);
    free(png);
}

/* 16-bit samples 0x1234, 0xabcd, 0xffff scale to 8 bits as 18, 171, 255
 * (0x1234 * 255 / 65535 = 18.1, 0xabcd * 255 / 65535 = 171.1). */
Test(image, sixteen_bit_png)
{
    uint8_t rows[2 * 6] = {0x12, 0x34, 0xab, 0xcd, 0xff, 0xff,
                           0x00, 0x00, 0x80, 0x80, 0x12, 0x34};
    struct png_spec spec = {.width = 2, .height = 1, .color_type = PNG_COLOR_TYPE_RGB,
                            .depth = 16, .rows = rows, .row_bytes = 12};
    size_t size;
    uint8_t *png = write_png_raw(&spec, &size);
    struct fv_image *img = decode_ok(png, size);
    cr_assert_eq(img->width, 2);
    expect_pixel(img, 0, 0, (struct rgb){18, 171, 255}, 0);
    expect_pixel(img, 1, 0, (struct rgb){0, 128, 18}, 0);
    fv_image_free(img);
    free(png);
}

Test(image, gray_alpha_and_rgba_png_drop_alpha)
{
    uint8_t gray_alpha[2 * 2] = {77, 0, 150, 255};
    struct png_spec spec = {.width = 2, .height = 1, .color_type = PNG_COLOR_TYPE_GRAY_ALPHA,
                            .depth = 8, .rows = gray_alpha, .row_bytes = 4};
    size_t size;
    uint8_t *png = write_png_raw(&spec, &size);
    struct fv_image *img = decode_ok(png, size);
    expect_pixel(img, 0, 0, (struct rgb){77, 77, 77}, 0);
    expect_pixel(img, 1, 0, (struct rgb){150, 150, 150}, 0);
    fv_image_free(img);
    free(png);

    uint8_t rgba[2 * 4] = {1, 2, 3, 0, 200, 150, 100, 40};
    struct png_spec rgba_spec = {.width = 2, .height = 1, .color_type = PNG_COLOR_TYPE_RGBA,
                                 .depth = 8, .rows = rgba, .row_bytes = 8};
    png = write_png_raw(&rgba_spec, &size);
    img = decode_ok(png, size);
    expect_pixel(img, 0, 0, (struct rgb){1, 2, 3}, 0);
    expect_pixel(img, 1, 0, (struct rgb){200, 150, 100}, 0);
    fv_image_free(img);
    free(png);
}

Test(image, interlaced_png)
{
    struct fv_image *src = random_image(19, 13, 7);
    struct png_spec spec = {.width = 19, .height = 13, .color_type = PNG_COLOR_TYPE_RGB,
                            .depth = 8, .rows = src->rgb, .row_bytes = 19 * 3,
                            .interlace = true};
    size_t size;
    uint8_t *png = write_png_raw(&spec, &size);
    struct fv_image *img = decode_ok(png, size);
    cr_expect_eq(memcmp(img->rgb, src->rgb, 19 * 13 * 3), 0);
    fv_image_free(img);
    fv_image_free(src);
    free(png);
}

/* A progressive JPEG of img: libjpeg's usual script when levels is 0, else one
 * scan per component and AC coefficient for each of `levels` bit planes
 * (successive approximation), 1 + 3 * 63 * levels scans in all. */
static uint8_t *write_progressive_jpeg(const struct fv_image *img, int levels, size_t *size)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned char *buffer = NULL;
    unsigned long length = 0;
    jpeg_scan_info *scans = NULL;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buffer, &length);
    cinfo.image_width = (JDIMENSION)img->width;
    cinfo.image_height = (JDIMENSION)img->height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 95, TRUE);
    if (levels == 0) {
        jpeg_simple_progression(&cinfo);
    } else {
        int count = 1 + 3 * 63 * levels, n = 0;
        scans = calloc((size_t)count, sizeof *scans);
        scans[n++] = (jpeg_scan_info){.comps_in_scan = 3, .component_index = {0, 1, 2}};
        for (int level = levels - 1; level >= 0; level--)
            for (int c = 0; c < 3; c++)
                for (int k = 1; k < 64; k++)
                    scans[n++] = (jpeg_scan_info){.comps_in_scan = 1, .component_index = {c},
                                                  .Ss = k, .Se = k,
                                                  .Ah = level == levels - 1 ? 0 : level + 1,
                                                  .Al = level};
        cinfo.scan_info = scans;
        cinfo.num_scans = count;
    }
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = img->rgb + (size_t)cinfo.next_scanline * img->width * 3;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    free(scans);
    *size = length;
    return buffer;
}

Test(image, progressive_jpeg)
{
    struct fv_image *img = quadrant_image(40, 24);
    size_t size;
    uint8_t *jpeg = write_progressive_jpeg(img, 0, &size);
    struct fv_image *back = decode_ok(jpeg, size);
    cr_assert_eq(back->width, 40);
    expect_pixel(back, 5, 3, RED, 12);
    expect_pixel(back, 35, 20, YELLOW, 12);
    fv_image_free(back);
    free(jpeg);
    jpeg = write_progressive_jpeg(img, 0, &size);
    decode_fails(jpeg, size - 100, NULL, FV_ERR_FORMAT, "truncated JPEG");
    free(jpeg);

    jpeg = write_progressive_jpeg(img, 2, &size); /* 379 scans: allowed */
    back = decode_ok(jpeg, size);
    expect_pixel(back, 35, 3, GREEN, 12);
    fv_image_free(back);
    free(jpeg);
    jpeg = write_progressive_jpeg(img, 3, &size); /* 568 scans: refused */
    decode_fails(jpeg, size, NULL, FV_ERR_FORMAT, "progressive scans");
    free(jpeg);
    fv_image_free(img);
}

/* ---- hostile input ---- */

Test(image, one_pixel_images_decode)
{
    struct fv_image *img = fv_image_new(1, 1);
    set_pixel(img, 0, 0, (struct rgb){9, 99, 199});
    size_t size;
    uint8_t *png = encode_png(img, &size);
    struct fv_image *back = decode_ok(png, size);
    expect_pixel(back, 0, 0, (struct rgb){9, 99, 199}, 0);
    fv_image_free(back);
    free(png);
    uint8_t *jpeg = encode_jpeg(img, 100, &size);
    back = decode_ok(jpeg, size);
    cr_expect_eq(back->width, 1);
    cr_expect_eq(back->height, 1);
    expect_pixel(back, 0, 0, (struct rgb){9, 99, 199}, 8);
    fv_image_free(back);
    free(jpeg);
    fv_image_free(img);
}

Test(image, empty_input)
{
    uint8_t byte = 0;
    decode_fails(&byte, 0, NULL, FV_ERR_FORMAT, "empty image");
    decode_fails(NULL, 0, NULL, FV_ERR_FORMAT, "empty image");
}

Test(image, other_formats_are_unsupported)
{
    static const struct {
        const char *magic;
        size_t size;
        const char *name;
    } cases[] = {
        {"GIF89a\x01\x00\x01\x00\x00\x00", 12, "(GIF)"},
        {"BM\x36\x00\x00\x00\x00\x00\x00\x00", 10, "(BMP)"},
        {"II*\x00\x08\x00\x00\x00", 8, "(TIFF)"},
        {"MM\x00*\x00\x00\x00\x08", 8, "(TIFF)"},
        {"hello, this is text", 19, "(unrecognised data)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        decode_fails((const uint8_t *)cases[i].magic, cases[i].size, NULL, FV_ERR_UNSUPPORTED,
                     cases[i].name);
}

Test(image, random_bytes_are_rejected)
{
    rng_state = 42;
    uint8_t data[4096];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)rng_next();
    data[0] = 0x17; /* not a magic number we know, whatever the generator gives */
    decode_fails(data, sizeof data, NULL, FV_ERR_UNSUPPORTED,
                 "unsupported image format (unrecognised data)");
}

Test(image, encoded_size_over_limit)
{
    struct fv_image *img = random_image(16, 16, 3);
    size_t size;
    uint8_t *png = encode_png(img, &size);
    struct fv_image_limits limits = {.max_bytes = size - 1, .max_pixels = 0};
    decode_fails(png, size, &limits, FV_ERR_TOO_LARGE, "bytes");
    limits.max_bytes = size; /* exactly at the limit is fine */
    struct fv_image *back = NULL;
    cr_expect_eq(fv_image_decode(png, size, &limits, &back, NULL), FV_OK);
    fv_image_free(back);
    fv_image_free(img);
    free(png);
}

Test(image, pixel_limit_is_applied)
{
    struct fv_image *img = random_image(20, 10, 3);
    size_t size;
    uint8_t *png = encode_png(img, &size);
    struct fv_image_limits limits = {.max_bytes = 0, .max_pixels = 199};
    decode_fails(png, size, &limits, FV_ERR_TOO_LARGE, "20x10");
    free(png);
    uint8_t *jpeg = encode_jpeg(img, 90, &size);
    decode_fails(jpeg, size, &limits, FV_ERR_TOO_LARGE, "20x10");
    limits.max_pixels = 200;
    struct fv_image *back = NULL;
    cr_expect_eq(fv_image_decode(jpeg, size, &limits, &back, NULL), FV_OK);
    fv_image_free(back);
    free(jpeg);
    fv_image_free(img);
}

/* Rewrites the height and width of the JPEG's SOF0 or SOF2 segment. */
static void patch_jpeg_size(uint8_t *jpeg, size_t size, unsigned width, unsigned height)
{
    size_t i = 2;
    while (i + 9 < size && jpeg[i] == 0xff) {
        unsigned marker = jpeg[i + 1], length = (unsigned)jpeg[i + 2] << 8 | jpeg[i + 3];
        if (marker == 0xc0 || marker == 0xc2) { /* baseline or progressive */
            jpeg[i + 5] = (uint8_t)(height >> 8);
            jpeg[i + 6] = (uint8_t)height;
            jpeg[i + 7] = (uint8_t)(width >> 8);
            jpeg[i + 8] = (uint8_t)width;
            return;
        }
        i += 2 + length;
    }
    cr_assert_fail("no SOF0 or SOF2 in the test JPEG");
}

/* The image data is 16x16, so decoding past the header would end in
 * "truncated"; TOO_LARGE shows the size was refused before that. */
Test(image, jpeg_header_claiming_huge_size)
{
    struct fv_image *img = random_image(16, 16, 5);
    size_t size;
    uint8_t *jpeg = encode_jpeg(img, 90, &size);
    patch_jpeg_size(jpeg, size, 65535, 65535);
    decode_fails(jpeg, size, NULL, FV_ERR_TOO_LARGE, "65535x65535");
    patch_jpeg_size(jpeg, size, 10000, 10000); /* within JPEG's 65500, over 40 megapixels */
    decode_fails(jpeg, size, NULL, FV_ERR_TOO_LARGE, "10000x10000");
    patch_jpeg_size(jpeg, size, 0, 16);
    decode_fails(jpeg, size, NULL, FV_ERR_FORMAT, "JPEG");
    free(jpeg);
    fv_image_free(img);
}

static uint32_t crc32_of(const uint8_t *data, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++)
            crc = crc & 1 ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
    }
    return ~crc;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void append_chunk(struct buffer *b, const char *type, const uint8_t *data, uint32_t n)
{
    uint8_t head[8], crc[4];
    put_be32(head, n);
    memcpy(head + 4, type, 4);
    buffer_append(b, head, 8);
    uint8_t *body = malloc(4 + n);
    memcpy(body, type, 4);
    if (n)
        memcpy(body + 4, data, n);
    if (n)
        buffer_append(b, data, n);
    put_be32(crc, crc32_of(body, 4 + n));
    buffer_append(b, crc, 4);
    free(body);
}

/* A valid PNG declaring width x height RGB8 whose IDAT is a few bytes. */
static struct buffer png_with_header(uint32_t width, uint32_t height)
{
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t idat[] = {0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01};
    struct buffer b = {0};
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, width);
    put_be32(ihdr + 4, height);
    ihdr[8] = 8;
    ihdr[9] = 2;
    buffer_append(&b, signature, 8);
    append_chunk(&b, "IHDR", ihdr, 13);
    append_chunk(&b, "IDAT", idat, sizeof idat);
    append_chunk(&b, "IEND", NULL, 0);
    return b;
}

Test(image, png_bomb_is_refused_before_decoding)
{
    struct buffer bomb = png_with_header(20000, 20000);
    cr_expect_lt(bomb.size, 100);
    decode_fails(bomb.data, bomb.size, NULL, FV_ERR_TOO_LARGE, "20000x20000");
    free(bomb.data);

    /* 3000000 x 1 is only 3 megapixels, but wider than the pixel limit allows
     * for any height of 1: the same path, with a side far beyond libpng's default. */
    struct fv_image_limits limits = {.max_bytes = 0, .max_pixels = 1000};
    struct buffer wide = png_with_header(3000000, 1);
    decode_fails(wide.data, wide.size, &limits, FV_ERR_TOO_LARGE, "3000000x1");
    free(wide.data);

    struct buffer empty = png_with_header(0, 10);
    decode_fails(empty.data, empty.size, NULL, FV_ERR_FORMAT, "zero");
    free(empty.data);
}

Test(image, png_whose_data_is_too_short)
{
    /* a 2x2 image whose IDAT holds the data of a single empty row */
    struct buffer b = png_with_header(2, 2);
    decode_fails(b.data, b.size, NULL, FV_ERR_FORMAT, "PNG");
    free(b.data);
}

Test(image, truncated_jpeg)
{
    struct fv_image *img = random_image(48, 40, 11);
    size_t size;
    uint8_t *jpeg = encode_jpeg(img, 90, &size);
    decode_fails(jpeg, size / 2, NULL, FV_ERR_FORMAT, "truncated JPEG");
    decode_fails(jpeg, 20, NULL, FV_ERR_FORMAT, "truncated JPEG");
    decode_fails(jpeg, size - 2, NULL, FV_ERR_FORMAT, "truncated JPEG"); /* EOI missing */
    free(jpeg);
    fv_image_free(img);
}

Test(image, truncated_png)
{
    struct fv_image *img = random_image(48, 40, 12);
    size_t size;
    uint8_t *png = encode_png(img, &size);
    decode_fails(png, size / 2, NULL, FV_ERR_FORMAT, "truncated PNG");
    decode_fails(png, 30, NULL, FV_ERR_FORMAT, "truncated PNG");
    decode_fails(png, size - 6, NULL, FV_ERR_FORMAT, "truncated PNG"); /* inside IEND */
    free(png);
    fv_image_free(img);
}

Test(image, corrupt_jpeg_reports_libjpeg_message)
{
    static const uint8_t no_image[] = {0xff, 0xd8, 0xff, 0xd9};
    decode_fails(no_image, sizeof no_image, NULL, FV_ERR_FORMAT, "corrupt JPEG: ");
}

Test(image, every_prefix_of_a_valid_file_is_rejected)
{
    struct fv_image *img = random_image(17, 9, 21);
    size_t sizes[2];
    uint8_t *files[2] = {encode_jpeg(img, 80, &sizes[0]), encode_png(img, &sizes[1])};
    for (int f = 0; f < 2; f++) {
        for (size_t n = 0; n < sizes[f]; n++) {
            struct fv_image *out = NULL;
            struct fv_error err = {0};
            enum fv_status status = fv_image_decode(files[f], n, NULL, &out, &err);
            cr_expect_neq(status, FV_OK, "%s prefix of %zu of %zu bytes decoded",
                          f ? "PNG" : "JPEG", n, sizes[f]);
            cr_expect_null(out);
            fv_image_free(out);
        }
        struct fv_image *whole = decode_ok(files[f], sizes[f]);
        fv_image_free(whole);
        free(files[f]);
    }
    fv_image_free(img);
}

/* Random byte changes must give a clean success or a clean error (ASan and
 * LeakSanitizer watch for the rest). */
Test(image, mutated_files_fail_cleanly)
{
    struct fv_image *img = random_image(24, 24, 31);
    size_t sizes[2];
    uint8_t *files[2] = {encode_jpeg(img, 75, &sizes[0]), encode_png(img, &sizes[1])};
    rng_state = 99;
    for (int f = 0; f < 2; f++) {
        uint8_t *copy = malloc(sizes[f]);
        for (int round = 0; round < 400; round++) {
            memcpy(copy, files[f], sizes[f]);
            int changes = 1 + (int)(rng_next() % 4);
            for (int c = 0; c < changes; c++)
                copy[rng_next() % sizes[f]] = (uint8_t)rng_next();
            struct fv_image *out = NULL;
            struct fv_error err = {0};
            enum fv_status status = fv_image_decode(copy, sizes[f], NULL, &out, &err);
            cr_expect(status == FV_OK || status == FV_ERR_FORMAT ||
                          status == FV_ERR_UNSUPPORTED || status == FV_ERR_TOO_LARGE,
                      "unexpected status %d: %s", status, err.message);
            if (status == FV_OK)
                cr_expect(out && out->width > 0 && out->height > 0);
            else
                cr_expect(err.message[0] != '\0', "an error without a message");
            fv_image_free(out);
        }
        free(copy);
        free(files[f]);
    }
    fv_image_free(img);
}

/* ---- probing ---- */

/* png with an eXIf chunk holding `tiff` inserted just before IEND, after the
 * image data, where libpng reads it only in png_read_end(). */
static uint8_t *png_with_trailing_exif(const uint8_t *png, size_t size, const uint8_t *tiff,
                                       uint32_t n, bool bad_crc, size_t *out_size)
{
    struct buffer b = {0};
    buffer_append(&b, png, size - 12);
    append_chunk(&b, "eXIf", tiff, n);
    if (bad_crc)
        b.data[b.size - 1] ^= 1;
    buffer_append(&b, png + size - 12, 12);
    *out_size = b.size;
    return b.data;
}

/* fv_image_probe gives the size fv_image_decode's image has, and the format. */
static void expect_probe_matches_decode(const uint8_t *data, size_t size, const char *format)
{
    struct fv_image_info info = {0};
    struct fv_error err = {0};
    cr_assert_eq(fv_image_probe(data, size, NULL, &info, &err), FV_OK, "%s", err.message);
    struct fv_image *img = decode_ok(data, size);
    cr_expect_str_eq(info.format, format);
    cr_expect(info.width == img->width && info.height == img->height,
              "probe %dx%d, decode %dx%d", info.width, info.height, img->width, img->height);
    fv_image_free(img);
}

Test(image, probe_gives_format_and_upright_size)
{
    struct fv_image *src = quadrant_image(64, 32);
    size_t size, png_size;
    uint8_t *jpeg = encode_jpeg(src, 90, &size);
    uint8_t *png = encode_png(src, &png_size);
    expect_probe_matches_decode(jpeg, size, "JPEG");
    expect_probe_matches_decode(png, png_size, "PNG");
    for (int orientation = 1; orientation <= 8; orientation++) {
        size_t with_size;
        uint8_t *with = splice_exif(jpeg, size, orientation, orientation % 2, &with_size);
        expect_probe_matches_decode(with, with_size, "JPEG");
        free(with);

        uint8_t tiff[64];
        uint32_t n = (uint32_t)make_exif_tiff(tiff, orientation, orientation % 2);
        struct png_spec spec = {.width = 64, .height = 32, .color_type = PNG_COLOR_TYPE_RGB,
                                .depth = 8, .rows = src->rgb, .row_bytes = 64 * 3,
                                .exif = tiff, .exif_size = n};
        with = write_png_raw(&spec, &with_size); /* eXIf before the image data */
        expect_probe_matches_decode(with, with_size, "PNG");
        free(with);
        for (int bad_crc = 0; bad_crc <= 1; bad_crc++) {
            /* libpng drops an ancillary chunk whose CRC is wrong: no rotation */
            with = png_with_trailing_exif(png, png_size, tiff, n, bad_crc, &with_size);
            expect_probe_matches_decode(with, with_size, "PNG");
            struct fv_image_info info = {0};
            cr_assert_eq(fv_image_probe(with, with_size, NULL, &info, NULL), FV_OK);
            cr_expect_eq(info.width, orientation >= 5 && !bad_crc ? 32 : 64);
            free(with);
        }
    }
    struct fv_image_info info = {0};
    size_t with_size;
    uint8_t *with = splice_exif(jpeg, size, 6, false, &with_size);
    cr_assert_eq(fv_image_probe(with, with_size, NULL, &info, NULL), FV_OK);
    cr_expect(info.width == 32 && info.height == 64, "orientation 6: %dx%d", info.width,
              info.height);
    free(with);
    free(png);
    free(jpeg);
    fv_image_free(src);
}

/* Probing refuses what decoding refuses, with the same status and message,
 * from the header alone: a header claiming 20000 x 20000 pixels is probed
 * without its pixels when there is no pixel limit. */
Test(image, probe_errors_are_decode_errors)
{
    struct fv_image *img = random_image(40, 30, 17);
    size_t jpeg_size, png_size;
    uint8_t *jpeg = encode_jpeg(img, 90, &jpeg_size);
    uint8_t *png = encode_png(img, &png_size);
    struct buffer bomb = png_with_header(20000, 20000);
    struct fv_image_limits small = {.max_bytes = 0, .max_pixels = 1000};
    struct fv_image_limits few_bytes = {.max_bytes = 100, .max_pixels = 0};
    const struct {
        const uint8_t *data;
        size_t size;
        const struct fv_image_limits *limits;
    } cases[] = {
        {jpeg, 0, NULL},           {jpeg, 20, NULL},          {jpeg, jpeg_size, &small},
        {jpeg, jpeg_size, &few_bytes}, {png, 30, NULL},       {png, png_size, &small},
        {png, png_size / 2, NULL}, {bomb.data, bomb.size, NULL},
        {(const uint8_t *)"GIF89a\x01\x00\x01\x00\x00\x00", 12, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct fv_error decode_err = {0}, probe_err = {0};
        struct fv_image *out = NULL;
        struct fv_image_info info = {0};
        enum fv_status decoded = fv_image_decode(cases[i].data, cases[i].size, cases[i].limits,
                                                 &out, &decode_err);
        enum fv_status probed = fv_image_probe(cases[i].data, cases[i].size, cases[i].limits,
                                               &info, &probe_err);
        cr_expect_neq(decoded, FV_OK, "case %zu decoded", i);
        cr_expect_eq(probed, decoded, "case %zu: probe %d (%s), decode %d (%s)", i, probed,
                     probe_err.message, decoded, decode_err.message);
        cr_expect_str_eq(probe_err.message, decode_err.message, "case %zu", i);
        fv_image_free(out);
    }
    struct fv_image_limits unlimited = {0};
    struct fv_image_info info = {0};
    cr_expect_eq(fv_image_probe(bomb.data, bomb.size, &unlimited, &info, NULL), FV_OK);
    cr_expect(info.width == 20000 && info.height == 20000);
    cr_expect_eq(fv_image_probe(NULL, 5, NULL, &info, NULL), FV_ERR_INVALID_ARG);
    cr_expect_eq(fv_image_probe(png, png_size, NULL, NULL, NULL), FV_ERR_INVALID_ARG);
    free(bomb.data);
    free(png);
    free(jpeg);
    fv_image_free(img);
}

/* ---- memory while decoding ---- */

/* A progressive JPEG is decoded from a buffer of all its DCT coefficients,
 * about 3 bytes per pixel for 4:2:0. libjpeg's memory is bounded by what the
 * pixel limit allows (8 bytes per pixel, plus 32 MiB), or the default limit
 * when there is none, so a header claiming 65500 x 65500 pixels is refused
 * before 12 GB are asked for; one within the pixel limit is not. */
Test(image, jpeg_decoding_memory_is_bounded)
{
    struct fv_image *img = quadrant_image(64, 48);
    size_t size;
    uint8_t *jpeg = write_progressive_jpeg(img, 0, &size);
    patch_jpeg_size(jpeg, size, 65500, 65500);
    struct fv_image_limits no_pixel_limit = {.max_bytes = 0, .max_pixels = 0};
    decode_fails(jpeg, size, &no_pixel_limit, FV_ERR_TOO_LARGE, "needs more than 353 MB");
    struct fv_image_info info = {0};
    cr_expect_eq(fv_image_probe(jpeg, size, &no_pixel_limit, &info, NULL), FV_OK,
                 "the header alone needs no coefficients");

    /* 36 MB of coefficients (the scans, made for 64 x 48, leave the rest zero) */
    patch_jpeg_size(jpeg, size, 4000, 3000);
    struct fv_image_limits twelve_megapixels = {.max_bytes = 0, .max_pixels = 12000000};
    struct fv_image *big = NULL;
    struct fv_error err = {0};
    cr_expect_eq(fv_image_decode(jpeg, size, &twelve_megapixels, &big, &err), FV_OK, "%s",
                 err.message);
    cr_expect(big && big->width == 4000 && big->height == 3000);
    fv_image_free(big);
    free(jpeg);
    fv_image_free(img);
}

/* Peak resident memory of this process so far, in bytes. */
static long peak_memory(void)
{
    struct rusage usage;
    cr_assert_eq(getrusage(RUSAGE_SELF, &usage), 0);
    return usage.ru_maxrss * 1024L;
}

/* The whole chunk (length, type, data, CRC) of the given type in png. */
static struct buffer find_chunk(const uint8_t *png, size_t size, const char *type)
{
    for (size_t at = 8; at + 12 <= size;) {
        uint32_t length = (uint32_t)png[at] << 24 | (uint32_t)png[at + 1] << 16 |
                          (uint32_t)png[at + 2] << 8 | png[at + 3];
        if (memcmp(png + at + 4, type, 4) == 0) {
            struct buffer b = {0};
            buffer_append(&b, png + at, 12 + (size_t)length);
            return b;
        }
        at += 12 + (size_t)length;
    }
    cr_assert_fail("no %s chunk", type);
    return (struct buffer){0};
}

/* A zTXt chunk holding n bytes of text, compressed by libpng. */
static struct buffer ztxt_chunk(size_t n)
{
    char *text = malloc(n + 1);
    memset(text, 'a', n);
    text[n] = '\0';
    png_text comment = {.compression = PNG_TEXT_COMPRESSION_zTXt, .key = "Comment",
                        .text = text, .text_length = n};
    struct buffer out = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    cr_assert(png && info);
    if (setjmp(png_jmpbuf(png)))
        cr_assert_fail("libpng failed writing the zTXt chunk");
    png_set_write_fn(png, &out, png_test_write, png_test_flush);
    png_set_IHDR(png, info, 1, 1, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_text(png, info, &comment, 1);
    png_write_info(png, info);
    png_byte row[1] = {0};
    png_write_row(png, row);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(text);
    struct buffer chunk = find_chunk(out.data, out.size, "zTXt");
    free(out.data);
    return chunk;
}

/* Ancillary chunks are skipped unread: none is kept in memory or inflated, so
 * neither a chunk over libpng's 8 MiB chunk limit (which libpng 1.6 only warns
 * about, then reads) nor a text bomb costs memory, and neither is refused: an
 * ancillary chunk the decoder does not use is never an error in PNG, and the
 * encoded size limit already bounds its size. Fifty zTXt chunks of 7 MiB of
 * text each would otherwise be inflated and kept: 350 MB from 0.4 MB. */
Test(image, png_ancillary_chunks_are_skipped_unread)
{
    struct fv_image *img = random_image(16, 16, 23);
    size_t png_size;
    uint8_t *png = encode_png(img, &png_size);
    struct buffer bomb = ztxt_chunk((size_t)7 << 20);
    cr_assert_lt(bomb.size, 64 * 1024);
    uint8_t *big = calloc(1, (size_t)9 << 20);
    memcpy(big, "Comment", 8); /* a tEXt keyword, then NULs */

    struct buffer file = {0};
    buffer_append(&file, png, 8 + 25); /* signature and IHDR */
    for (int i = 0; i < 50; i++)
        buffer_append(&file, bomb.data, bomb.size);
    append_chunk(&file, "abCd", big, (uint32_t)9 << 20); /* unknown, ancillary */
    append_chunk(&file, "tEXt", big, (uint32_t)9 << 20);
    buffer_append(&file, png + 8 + 25, png_size - 8 - 25);
    cr_assert_lt(file.size, (size_t)20 << 20, "within the default encoded size limit");
    free(big);

    long before = peak_memory();
    struct fv_image *back = decode_ok(file.data, file.size);
    long growth = peak_memory() - before;
    cr_expect_eq(memcmp(back->rgb, img->rgb, 16 * 16 * 3), 0);
    cr_expect_lt(growth, 32L << 20, "decoding took %ld MB more", growth >> 20);
    expect_probe_matches_decode(file.data, file.size, "PNG");
    fv_image_free(back);
    free(file.data);
    free(bomb.data);
    free(png);
    fv_image_free(img);
}

/* An eXIf chunk over the 8 MiB chunk limit is ignored, by probing and decoding alike. */
Test(image, png_oversized_exif_is_ignored)
{
    struct fv_image *src = quadrant_image(64, 32);
    size_t png_size, with_size;
    uint8_t *png = encode_png(src, &png_size);
    size_t n = ((size_t)8 << 20) + 1;
    uint8_t *tiff = calloc(1, n);
    make_exif_tiff(tiff, 6, false);
    uint8_t *with = png_with_trailing_exif(png, png_size, tiff, (uint32_t)n, false, &with_size);
    check_orientation(with, with_size, 1);
    expect_probe_matches_decode(with, with_size, "PNG");
    free(with);
    with = png_with_trailing_exif(png, png_size, tiff, 200, false, &with_size);
    check_orientation(with, with_size, 6); /* the same block, within the limit */
    free(with);
    free(tiff);
    free(png);
    fv_image_free(src);
}

/* ---- files ---- */

Test(image, save_and_load)
{
    char dir[] = "/tmp/fv_image_test_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char png_path[64], jpeg_path[64], bad_path[64];
    snprintf(png_path, sizeof png_path, "%s/a.png", dir);
    snprintf(jpeg_path, sizeof jpeg_path, "%s/b.JPEG", dir);
    snprintf(bad_path, sizeof bad_path, "%s/c.bmp", dir);
    struct fv_image *img = random_image(21, 11, 8);
    struct fv_error err = {0};
    cr_assert_eq(fv_image_save(img, png_path, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_image_save(img, jpeg_path, &err), FV_OK, "%s", err.message);
    cr_expect_eq(fv_image_save(img, bad_path, &err), FV_ERR_INVALID_ARG);
    cr_expect(access(bad_path, F_OK) != 0, "nothing written for an unknown extension");

    struct fv_image *back = NULL;
    cr_assert_eq(fv_image_load(png_path, NULL, &back, &err), FV_OK, "%s", err.message);
    cr_expect_eq(memcmp(back->rgb, img->rgb, 21 * 11 * 3), 0);
    fv_image_free(back);
    back = NULL;
    cr_assert_eq(fv_image_load(jpeg_path, NULL, &back, &err), FV_OK, "%s", err.message);
    cr_expect_eq(back->width, 21);
    cr_expect_eq(back->height, 11);
    fv_image_free(back);
    back = NULL;

    struct fv_image_limits tiny = {.max_bytes = 10, .max_pixels = 0};
    cr_expect_eq(fv_image_load(png_path, &tiny, &back, &err), FV_ERR_TOO_LARGE);
    cr_expect(strstr(err.message, png_path) != NULL, "%s", err.message);

    char missing[80];
    snprintf(missing, sizeof missing, "%s/missing.jpg", dir);
    cr_expect_eq(fv_image_load(missing, NULL, &back, &err), FV_ERR_NOT_FOUND);
    cr_expect(strstr(err.message, missing) != NULL, "%s", err.message);

    FILE *f = fopen(bad_path, "wb");
    fputs("GIF89a and some more", f);
    fclose(f);
    cr_expect_eq(fv_image_load(bad_path, NULL, &back, &err), FV_ERR_UNSUPPORTED);
    cr_expect(strstr(err.message, bad_path) != NULL && strstr(err.message, "GIF") != NULL,
              "%s", err.message);
    cr_expect_eq(fv_image_load(bad_path, NULL, &back, NULL), FV_ERR_UNSUPPORTED);
    cr_expect_null(back);

    unlink(png_path);
    unlink(jpeg_path);
    unlink(bad_path);
    rmdir(dir);
    fv_image_free(img);
}

/* ---- resize ---- */

static struct fv_image *resize_ok(const struct fv_image *src, int w, int h)
{
    struct fv_image *out = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_image_resize(src, w, h, &out, &err), FV_OK, "%s", err.message);
    cr_assert_eq(out->width, w);
    cr_assert_eq(out->height, h);
    return out;
}

static struct fv_image *gray_row(const uint8_t *values, int n)
{
    struct fv_image *img = fv_image_new(n, 1);
    for (int x = 0; x < n; x++)
        set_pixel(img, x, 0, (struct rgb){values[x], values[x], values[x]});
    return img;
}

Test(image, resize_constant_stays_constant)
{
    struct fv_image *src = fv_image_new(7, 5);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 7; x++)
            set_pixel(src, x, y, (struct rgb){10, 200, 77});
    int sizes[][2] = {{3, 2}, {13, 11}, {1, 1}, {7, 2}, {20, 5}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct fv_image *out = resize_ok(src, sizes[i][0], sizes[i][1]);
        for (int y = 0; y < out->height; y++)
            for (int x = 0; x < out->width; x++)
                expect_pixel(out, x, y, (struct rgb){10, 200, 77}, 0);
        fv_image_free(out);
    }
    fv_image_free(src);
}

/* PIL's BILINEAR for 4 -> 2: scale 2, so the triangle is stretched to support
 * 2 and evaluated at (source index + 0.5 - centre) / 2.
 * Output 0, centre 1.0, sources 0..2 at distances -0.25, 0.25, 0.75:
 *   weights 0.75, 0.75, 0.25, normalised 3/7, 3/7, 1/7:
 *   (0*3 + 64*3 + 128*1) / 7 = 320 / 7 = 45.71 -> 46.
 * Output 1, centre 3.0, sources 1..3 at distances -0.75, -0.25, 0.25:
 *   weights 1/7, 3/7, 3/7: (64 + 128*3 + 192*3) / 7 = 1024 / 7 = 146.29 -> 146.
 * (A plain 2x2 average would give 32 and 160.) */
Test(image, resize_downsample_ramp_matches_pil)
{
    uint8_t ramp[4] = {0, 64, 128, 192};
    struct fv_image *src = gray_row(ramp, 4);
    struct fv_image *out = resize_ok(src, 2, 1);
    expect_pixel(out, 0, 0, (struct rgb){46, 46, 46}, 0);
    expect_pixel(out, 1, 0, (struct rgb){146, 146, 146}, 0);
    fv_image_free(out);
    fv_image_free(src);
}

/* 2 -> 4: scale 0.5, support stays 1. Output 0 has centre 0.25 and reads only
 * source 0 (weight 1); output 1 has centre 0.75: sources 0, 1 at distances
 * 0.25, 0.75 give 0.75*0 + 0.25*200 = 50; symmetrically 150 and 200. */
Test(image, resize_upsample_preserves_ends)
{
    uint8_t two[2] = {0, 200};
    struct fv_image *src = gray_row(two, 2);
    struct fv_image *out = resize_ok(src, 4, 1);
    expect_pixel(out, 0, 0, (struct rgb){0, 0, 0}, 0);
    expect_pixel(out, 1, 0, (struct rgb){50, 50, 50}, 0);
    expect_pixel(out, 2, 0, (struct rgb){150, 150, 150}, 0);
    expect_pixel(out, 3, 0, (struct rgb){200, 200, 200}, 0);
    fv_image_free(out);
    fv_image_free(src);

    struct fv_image *square = quadrant_image(2, 2);
    out = resize_ok(square, 5, 7);
    expect_pixel(out, 0, 0, RED, 0);
    expect_pixel(out, 4, 0, GREEN, 0);
    expect_pixel(out, 0, 6, BLUE, 0);
    expect_pixel(out, 4, 6, YELLOW, 0);
    fv_image_free(out);
    fv_image_free(square);
}

/* Reference values from PIL 9.4: Image.resize(size, Image.BILINEAR) on the
 * 9x7 image with R = (37x + 11y) & 255, G = (5x^2 + 23y) & 255, B = (7xy + 13) & 255. */
Test(image, resize_matches_pil_on_a_pattern)
{
    static const uint8_t down_4x3[] = {
        40, 26, 18, 115, 65, 30, 181, 144, 44, 70, 114, 56, 64, 75, 30, 139, 114, 73,
        185, 167, 120, 79, 109, 152, 88, 124, 43, 163, 161, 116, 160, 129, 159, 66, 122, 92};
    static const uint8_t mixed_13x4[] = {
        6, 12, 13, 26, 15, 15, 52, 20, 18, 77, 31, 20, 103, 47, 22, 128, 68, 25, 154, 92, 28,
        180, 123, 30, 205, 158, 33, 211, 188, 35, 60, 148, 38, 26, 108, 40, 46, 76, 42, 23,
        48, 13, 43, 51, 21, 69, 56, 31, 94, 67, 41, 120, 83, 51, 145, 104, 61, 171, 128, 71,
        197, 159, 82, 222, 194, 91, 228, 213, 102, 77, 81, 112, 43, 72, 121, 63, 112, 129, 43,
        90, 13, 63, 93, 28, 89, 98, 47, 114, 109, 66, 140, 125, 85, 165, 146, 104, 191, 170,
        123, 217, 201, 142, 172, 166, 161, 78, 85, 176, 54, 81, 160, 63, 114, 167, 83, 154,
        181, 60, 126, 13, 80, 129, 34, 106, 134, 60, 131, 145, 87, 157, 161, 114, 182, 182,
        140, 208, 206, 166, 234, 144, 193, 161, 91, 168, 29, 55, 103, 54, 100, 54, 80, 150,
        55, 100, 190, 76};
    struct fv_image *src = fv_image_new(9, 7);
    for (int y = 0; y < 7; y++)
        for (int x = 0; x < 9; x++)
            set_pixel(src, x, y, (struct rgb){(uint8_t)(x * 37 + y * 11),
                                              (uint8_t)(x * x * 5 + y * 23),
                                              (uint8_t)(x * y * 7 + 13)});
    struct fv_image *down = resize_ok(src, 4, 3);
    for (size_t i = 0; i < sizeof down_4x3; i++)
        cr_expect_eq(down->rgb[i], down_4x3[i], "4x3 byte %zu: %d, PIL %d", i, down->rgb[i],
                     down_4x3[i]);
    struct fv_image *mixed = resize_ok(src, 13, 4);
    for (size_t i = 0; i < sizeof mixed_13x4; i++)
        cr_expect_eq(mixed->rgb[i], mixed_13x4[i], "13x4 byte %zu: %d, PIL %d", i,
                     mixed->rgb[i], mixed_13x4[i]);
    fv_image_free(down);
    fv_image_free(mixed);
    fv_image_free(src);
}

/* The horizontal pass resamples eight rows at a time: a 21-row image resized
 * in width only must match each of its rows resized on its own. */
Test(image, resize_rows_in_blocks_match_single_rows)
{
    struct fv_image *src = random_image(53, 21, 5);
    const int widths[] = {7, 30, 53 * 2 + 1};
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++) {
        struct fv_image *all = resize_ok(src, widths[i], 21);
        for (int y = 0; y < 21; y++) {
            struct fv_image *row = fv_image_crop(src, 0, y, 53, 1);
            struct fv_image *one = resize_ok(row, widths[i], 1);
            cr_expect_eq(memcmp(one->rgb, all->rgb + (size_t)y * widths[i] * 3,
                                (size_t)widths[i] * 3), 0, "width %d, row %d differs",
                         widths[i], y);
            fv_image_free(row);
            fv_image_free(one);
        }
        fv_image_free(all);
    }
    fv_image_free(src);
}

/* PIL's BILINEAR in the plainest C, as a reference for the vectorised passes:
 * one axis of n values at `stride` apart, `count` lines `line` apart. */
static void plain_pass(const uint8_t *in, int in_size, uint8_t *out, int out_size,
                       size_t stride, size_t line, int count)
{
    double scale = (double)in_size / out_size, fscale = scale < 1 ? 1 : scale;
    for (int o = 0; o < out_size; o++) {
        double center = (o + 0.5) * scale;
        int lo = (int)(center - fscale + 0.5), hi = (int)(center + fscale + 0.5);
        lo = lo < 0 ? 0 : lo;
        hi = hi > in_size ? in_size : hi;
        double wsum = 0, wt[64];
        cr_assert_lt(hi - lo, 64);
        for (int i = lo; i < hi; i++) {
            double t = fabs((i - center + 0.5) / fscale);
            wsum += wt[i - lo] = t < 1 ? 1 - t : 0;
        }
        for (int c = 0; c < count; c++) {
            int32_t acc = 1 << 21;
            for (int i = lo; i < hi; i++)
                acc += in[c * line + (size_t)i * stride] *
                       (int32_t)(0.5 + wt[i - lo] / wsum * (1 << 22));
            acc >>= 22;
            out[c * line + (size_t)o * stride] = (uint8_t)(acc < 0 ? 0 : acc > 255 ? 255 : acc);
        }
    }
}

static struct fv_image *plain_resize(const struct fv_image *src, int w, int h)
{
    struct fv_image *mid = fv_image_new(w, src->height), *out = fv_image_new(w, h);
    for (int y = 0; y < src->height; y++) /* horizontal: three channels of each row */
        for (int ch = 0; ch < 3; ch++)
            plain_pass(src->rgb + (size_t)y * src->width * 3 + ch, src->width,
                       mid->rgb + (size_t)y * w * 3 + ch, w, 3, 0, 1);
    if (h == src->height)
        memcpy(out->rgb, mid->rgb, (size_t)w * h * 3);
    else /* vertical: every byte of a row is a line */
        plain_pass(mid->rgb, src->height, out->rgb, h, (size_t)w * 3, 1, w * 3);
    fv_image_free(mid);
    return out;
}

/* The vectorised horizontal pass (rows interleaved 16 bytes at a time, an
 * 8-byte and a byte-wise tail) and vertical pass against the plain one, on
 * widths that leave every tail, shrinking and enlarging, at every CPU level
 * the suite runs at. */
Test(image, resize_matches_the_plain_filter)
{
    const int sizes[][4] = {{301, 97, 96, 72}, {2016, 37, 640, 12}, {53, 21, 7, 30},
                            {17, 9, 41, 23},   {640, 480, 24, 24},  {6, 131, 5, 48},
                            {255, 3, 100, 3},  {100, 100, 100, 33}};
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        struct fv_image *src = random_image(sizes[t][0], sizes[t][1], 40 + t);
        struct fv_image *got = resize_ok(src, sizes[t][2], sizes[t][3]);
        struct fv_image *want = plain_resize(src, sizes[t][2], sizes[t][3]);
        size_t bytes = (size_t)sizes[t][2] * sizes[t][3] * 3, diff = 0;
        for (size_t i = 0; i < bytes; i++)
            diff += got->rgb[i] != want->rgb[i];
        cr_expect_eq(diff, 0, "%dx%d to %dx%d: %zu bytes differ from the plain filter",
                     sizes[t][0], sizes[t][1], sizes[t][2], sizes[t][3], diff);
        fv_image_free(src);
        fv_image_free(got);
        fv_image_free(want);
    }
}

/* Block averages with rounding, partial blocks at the right and bottom edges,
 * against the plain sums and divisions (fv_image_reduce divides by
 * multiplying). */
Test(image, reduce_matches_plain_block_averages)
{
    const int cases[][3] = {{37, 29, 1}, {37, 29, 2}, {64, 48, 4}, {101, 67, 7},
                            {300, 200, 9}, {520, 260, 256}, {5, 700, 16}};
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        int w = cases[t][0], h = cases[t][1], k = cases[t][2];
        struct fv_image *src = random_image(w, h, 90 + t);
        if (t == 5) /* all 255: the largest sums a block can have */
            memset(src->rgb, 255, (size_t)w * h * 3);
        struct fv_image *got = fv_image_reduce(src, k);
        cr_assert_not_null(got);
        int rw = (w + k - 1) / k, rh = (h + k - 1) / k;
        cr_assert_eq(got->width, rw);
        cr_assert_eq(got->height, rh);
        size_t diff = 0;
        for (int by = 0; by < rh; by++)
            for (int bx = 0; bx < rw; bx++)
                for (int ch = 0; ch < 3; ch++) {
                    uint32_t sum = 0, n = 0;
                    for (int y = by * k; y < by * k + k && y < h; y++)
                        for (int x = bx * k; x < bx * k + k && x < w; x++, n++)
                            sum += src->rgb[((size_t)y * w + x) * 3 + ch];
                    diff += got->rgb[((size_t)by * rw + bx) * 3 + ch] != (sum + n / 2) / n;
                }
        cr_expect_eq(diff, 0, "%dx%d reduced by %d: %zu values differ", w, h, k, diff);
        fv_image_free(src);
        fv_image_free(got);
    }
    cr_expect_null(fv_image_reduce(NULL, 2));
}

/* A region resampled in place is the region cropped (black outside the
 * image) and resampled; block averages of a region likewise. */
Test(image, regions_match_crop_then_resize_or_reduce)
{
    struct fv_image *src = random_image(97, 61, 7);
    const int rects[][4] = {{10, 5, 40, 30}, {-7, -3, 33, 29}, {80, 50, 45, 20},
                            {-20, 10, 140, 20}, {200, 200, 9, 9}, {3, 4, 24, 50}};
    const int sizes[][2] = {{24, 24}, {48, 48}, {13, 7}};
    for (size_t r = 0; r < sizeof rects / sizeof *rects; r++) {
        const int *q = rects[r];
        struct fv_image *crop = fv_image_crop(src, q[0], q[1], q[2], q[3]);
        for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
            struct fv_image *want = resize_ok(crop, sizes[z][0], sizes[z][1]);
            struct fv_image *got = fv_image_new(sizes[z][0], sizes[z][1]);
            struct fv_error err = {0};
            cr_assert_eq(fv_image_resize_region(src, q[0], q[1], q[2], q[3], got, &err), FV_OK,
                         "%s", err.message);
            cr_expect_eq(memcmp(got->rgb, want->rgb, fv_image_byte_count(got)), 0,
                         "region (%d, %d, %d, %d) to %dx%d differs from crop + resize", q[0],
                         q[1], q[2], q[3], sizes[z][0], sizes[z][1]);
            fv_image_free(want);
            fv_image_free(got);
        }
        for (int k = 1; k <= 5; k += 2) {
            struct fv_image *want = fv_image_reduce(crop, k);
            struct fv_image *got = fv_image_reduce_region(src, q[0], q[1], q[2], q[3], k);
            cr_assert_not_null(got);
            cr_expect(got->width == want->width && got->height == want->height &&
                          memcmp(got->rgb, want->rgb, fv_image_byte_count(got)) == 0,
                      "region (%d, %d, %d, %d) reduced by %d differs from crop + reduce", q[0],
                      q[1], q[2], q[3], k);
            fv_image_free(want);
            fv_image_free(got);
        }
        fv_image_free(crop);
    }
    struct fv_image *dst = fv_image_new(4, 4);
    struct fv_error err = {0};
    cr_expect_eq(fv_image_resize_region(src, 0, 0, 0, 5, dst, &err), FV_ERR_INVALID_ARG);
    cr_expect_null(fv_image_reduce_region(src, 0, 0, 5, 0, 2));
    fv_image_free(dst);
    fv_image_free(src);
}

Test(image, resize_same_size_copies_and_bad_size_fails)
{
    struct fv_image *src = random_image(6, 4, 2);
    struct fv_image *out = resize_ok(src, 6, 4);
    cr_expect_neq(out->rgb, src->rgb);
    cr_expect_eq(memcmp(out->rgb, src->rgb, 6 * 4 * 3), 0);
    fv_image_free(out);
    out = NULL;
    struct fv_error err = {0};
    cr_expect_eq(fv_image_resize(src, 0, 4, &out, &err), FV_ERR_INVALID_ARG);
    cr_expect_null(out);
    fv_image_free(src);
}

/* ---- crop and draw ---- */

Test(image, crop_inside_and_across_edges)
{
    struct fv_image *src = random_image(5, 4, 9);
    struct fv_image *inside = fv_image_crop(src, 1, 2, 3, 2);
    cr_assert_not_null(inside);
    cr_expect_eq(inside->width, 3);
    cr_expect_eq(inside->height, 2);
    for (int y = 0; y < 2; y++)
        cr_expect_eq(memcmp(inside->rgb + y * 9, src->rgb + ((y + 2) * 5 + 1) * 3, 9), 0);
    fv_image_free(inside);

    struct fv_image *across = fv_image_crop(src, -1, -2, 4, 4);
    const uint8_t zero[3] = {0};
    cr_expect_eq(memcmp(across->rgb, zero, 3), 0); /* (0,0) lies outside */
    cr_expect_eq(memcmp(across->rgb + (1 * 4 + 3) * 3, zero, 3), 0);
    cr_expect_eq(memcmp(across->rgb + (2 * 4 + 1) * 3, src->rgb, 3), 0); /* src (0,0) */
    cr_expect_eq(memcmp(across->rgb + (3 * 4 + 3) * 3, src->rgb + (1 * 5 + 2) * 3, 3), 0);
    fv_image_free(across);

    struct fv_image *outside = fv_image_crop(src, 100, 100, 2, 2);
    cr_assert_not_null(outside);
    for (int i = 0; i < 12; i++)
        cr_expect_eq(outside->rgb[i], 0);
    fv_image_free(outside);
    cr_expect_null(fv_image_crop(src, 0, 0, 0, 3));
    struct fv_image *far = fv_image_crop(src, 2147483600, 0, 100, 1); /* x + w overflows int */
    cr_assert_not_null(far);
    for (int i = 0; i < 300; i++)
        cr_expect_eq(far->rgb[i], 0);
    fv_image_free(far);
    fv_image_free(src);
}

static bool is_set(const struct fv_image *img, int x, int y)
{
    const uint8_t *p = img->rgb + ((size_t)y * img->width + x) * 3;
    return p[0] == 1 && p[1] == 2 && p[2] == 3;
}

Test(image, draw_rect_outline_and_thickness)
{
    struct fv_image *img = fv_image_new(12, 10);
    fv_image_draw_rect(img, 2.2f, 1.8f, 8.4f, 7.0f, 1, 2, 3, 1); /* rounds to (2,2)-(8,7) */
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 12; x++) {
            bool on_border = x >= 2 && x <= 8 && y >= 2 && y <= 7 &&
                             (x == 2 || x == 8 || y == 2 || y == 7);
            cr_expect_eq(is_set(img, x, y), on_border, "pixel (%d,%d)", x, y);
        }
    fv_image_free(img);

    img = fv_image_new(12, 10);
    fv_image_draw_rect(img, 8, 7, 2, 2, 1, 2, 3, 2); /* corners given in reverse */
    cr_expect(is_set(img, 3, 3) && is_set(img, 7, 6) && is_set(img, 2, 7));
    cr_expect(!is_set(img, 4, 4) && !is_set(img, 6, 5) && !is_set(img, 9, 9));
    fv_image_free(img);

    img = fv_image_new(6, 6);
    fv_image_draw_rect(img, -5, -5, 100, 3, 1, 2, 3, 1); /* clipped: only the bottom edge */
    cr_expect(is_set(img, 0, 3) && is_set(img, 5, 3) && !is_set(img, 2, 2));
    fv_image_draw_rect(img, NAN, 0, 3, 3, 9, 9, 9, 1);
    fv_image_draw_rect(img, 0, 0, INFINITY, 3, 9, 9, 9, 1);
    fv_image_draw_rect(img, 1e30f, 1e30f, -1e30f, -1e30f, 9, 9, 9, 1);
    /* the huge rectangle's outline lies wholly outside the image */
    cr_expect(is_set(img, 0, 3) && img->rgb[0] == 0 && img->rgb[3 * 3 * 6] == 1);
    fv_image_free(img);
}

Test(image, draw_point_disc)
{
    struct fv_image *img = fv_image_new(9, 9);
    fv_image_draw_point(img, 4.4f, 4.6f, 0, 1, 2, 3); /* one pixel at (4,5) */
    int count = 0;
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 9; x++)
            count += is_set(img, x, y);
    cr_expect_eq(count, 1);
    cr_expect(is_set(img, 4, 5));
    fv_image_free(img);

    img = fv_image_new(9, 9);
    fv_image_draw_point(img, 4, 4, 2, 1, 2, 3);
    cr_expect(is_set(img, 4, 4) && is_set(img, 6, 4) && is_set(img, 4, 2) && is_set(img, 5, 5));
    cr_expect(!is_set(img, 6, 6) && !is_set(img, 7, 4) && !is_set(img, 2, 2));
    fv_image_draw_point(img, -1, -1, 1, 1, 2, 3); /* clipped to (0,0)... */
    cr_expect(!is_set(img, 0, 0));               /* ...which is at distance sqrt 2 */
    fv_image_draw_point(img, 0, -1, 1, 1, 2, 3);
    cr_expect(is_set(img, 0, 0));
    fv_image_draw_point(img, NAN, 4, 3, 9, 9, 9);
    fv_image_draw_point(img, 1e30f, -1e30f, 2147483647, 9, 9, 9);
    cr_expect(is_set(img, 4, 4));
    fv_image_free(img);
}
