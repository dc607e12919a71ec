/* photo_tool.c - a phone-size test photo from one of the sample photos, for scripts/phone-photos.sh.
 *
 *   build/tests/tools/photo_tool [-c CANVAS] [-o ORIENTATION] [-q QUALITY] SOURCE SCALE OUT
 *   build/tests/tools/photo_tool -c 4:3 -o 6 tests/data/sample1.jpg 2.1 out/sample1-o6.jpg
 *
 * The upright photo is SOURCE resized by SCALE to round(width * SCALE) x
 * round(height * SCALE) with facever's resampler, centred on a mid-grey canvas:
 * CANVAS is WIDTHxHEIGHT, or 4:3 for the smallest 4:3 landscape canvas that
 * holds the resized photo (4032x3024 for a 1920x1280 source at 2.1); without
 * -c the canvas is the resized photo itself.
 *
 * OUT ends in .jpg or .jpeg (a baseline JPEG of QUALITY, default 92), .png or
 * .ppm (binary P6, for encoders that read it). With -o the JPEG holds an EXIF
 * APP1 segment, right after SOI, whose IFD0 has only Orientation = ORIENTATION
 * (1..8), and its pixels are stored so that a viewer applying that orientation
 * shows the upright photo (orientations 5..8 swap width and height).
 *
 * Prints one line on stdout, "SCALE X Y WIDTHxHEIGHT": the upright photo's
 * pixel (SCALE * u + X, SCALE * v + Y) shows SOURCE's pixel (u, v) (to within
 * half a pixel when SCALE times a side is not a whole number), and the canvas
 * is WIDTH x HEIGHT. Exit status 0, or 1 with a message on stderr.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "pipeline/image.h"

#define DEFAULT_QUALITY 92
#define CANVAS_GREY 128
#define MAX_SCALE 16.0
/* JPEG's 16-bit dimensions, and a bound on the pixels this tool will allocate */
#define MAX_SIDE 65500
#define MAX_PIXELS 200000000ull

struct options {
    const char *canvas; /* NULL, "4:3" or "WxH" */
    int orientation;    /* 0: no EXIF block */
    int quality;
    const char *source, *scale_text, *out;
    double scale;
};

static void usage(void)
{
    fprintf(stderr, "usage: photo_tool [-c WIDTHxHEIGHT|4:3] [-o ORIENTATION] [-q QUALITY] "
                    "SOURCE SCALE OUT.{jpg,png,ppm}\n");
}

static bool has_extension(const char *path, const char *extension)
{
    size_t n = strlen(path), m = strlen(extension);
    return n > m && strcasecmp(path + n - m, extension) == 0;
}

static bool parse_int(const char *text, int low, int high, int *value)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < low || v > high)
        return false;
    *value = (int)v;
    return true;
}

static bool parse_options(int argc, char **argv, struct options *o)
{
    *o = (struct options){.quality = DEFAULT_QUALITY};
    int c;
    while ((c = getopt(argc, argv, "c:o:q:")) != -1) {
        switch (c) {
        case 'c':
            o->canvas = optarg;
            break;
        case 'o':
            if (!parse_int(optarg, 1, 8, &o->orientation)) {
                fprintf(stderr, "photo_tool: orientation %s is not in 1..8\n", optarg);
                return false;
            }
            break;
        case 'q':
            if (!parse_int(optarg, 1, 100, &o->quality)) {
                fprintf(stderr, "photo_tool: quality %s is not in 1..100\n", optarg);
                return false;
            }
            break;
        default:
            usage();
            return false;
        }
    }
    if (argc - optind != 3) {
        usage();
        return false;
    }
    o->source = argv[optind];
    o->scale_text = argv[optind + 1];
    o->out = argv[optind + 2];
    char *end;
    o->scale = strtod(o->scale_text, &end);
    if (end == o->scale_text || *end || !(o->scale > 0 && o->scale <= MAX_SCALE)) {
        fprintf(stderr, "photo_tool: scale %s is not in (0, %g]\n", o->scale_text, MAX_SCALE);
        return false;
    }
    bool jpeg = has_extension(o->out, ".jpg") || has_extension(o->out, ".jpeg");
    if (!jpeg && !has_extension(o->out, ".png") && !has_extension(o->out, ".ppm")) {
        fprintf(stderr, "photo_tool: %s: OUT must end in .jpg, .jpeg, .png or .ppm\n", o->out);
        return false;
    }
    if (o->orientation && !jpeg) {
        fprintf(stderr, "photo_tool: -o needs a JPEG output\n");
        return false;
    }
    return true;
}

/* The canvas size for a resized photo of width x height, from -c. */
static bool canvas_size(const char *canvas, int width, int height, int *canvas_width,
                        int *canvas_height)
{
    if (!canvas) {
        *canvas_width = width;
        *canvas_height = height;
    } else if (strcmp(canvas, "4:3") == 0) {
        int units = (width + 3) / 4 > (height + 2) / 3 ? (width + 3) / 4 : (height + 2) / 3;
        *canvas_width = 4 * units;
        *canvas_height = 3 * units;
    } else {
        char w[16], h[16], tail;
        if (sscanf(canvas, "%15[0-9]x%15[0-9]%c", w, h, &tail) != 2 ||
            !parse_int(w, 1, MAX_SIDE, canvas_width) || !parse_int(h, 1, MAX_SIDE, canvas_height)) {
            fprintf(stderr, "photo_tool: canvas %s is not WIDTHxHEIGHT or 4:3\n", canvas);
            return false;
        }
    }
    if (*canvas_width < width || *canvas_height < height) {
        fprintf(stderr, "photo_tool: the %dx%d canvas cannot hold the %dx%d resized photo\n",
                *canvas_width, *canvas_height, width, height);
        return false;
    }
    if (*canvas_width > MAX_SIDE || *canvas_height > MAX_SIDE ||
        (uint64_t)*canvas_width * (uint64_t)*canvas_height > MAX_PIXELS) {
        fprintf(stderr, "photo_tool: a %dx%d canvas is too large\n", *canvas_width,
                *canvas_height);
        return false;
    }
    return true;
}

/* Where the upright pixel (x, y) lies in the stored pixels of a photo whose
 * EXIF orientation is `orientation` (TIFF 6.0 / EXIF 2.3: the stored row 0
 * and column 0 are the upright image's top/left (1), top/right (2),
 * bottom/right (3), bottom/left (4), left/top (5), right/top (6),
 * right/bottom (7), left/bottom (8)). stored_w x stored_h is the stored size. */
static void stored_position(int orientation, int x, int y, int stored_w, int stored_h,
                            int *sx, int *sy)
{
    switch (orientation) {
    case 2: *sx = stored_w - 1 - x; *sy = y;                break;
    case 3: *sx = stored_w - 1 - x; *sy = stored_h - 1 - y; break;
    case 4: *sx = x;                *sy = stored_h - 1 - y; break;
    case 5: *sx = y;                *sy = x;                break;
    case 6: *sx = y;                *sy = stored_h - 1 - x; break;
    case 7: *sx = stored_w - 1 - y; *sy = stored_h - 1 - x; break;
    case 8: *sx = stored_w - 1 - y; *sy = x;                break;
    default: *sx = x;               *sy = y;                break;
    }
}

/* The pixels to store for an upright image so that `orientation` turns them
 * upright again; owned by the caller, NULL when out of memory. */
static struct fv_image *store_for_orientation(const struct fv_image *upright, int orientation)
{
    bool swap = orientation >= 5;
    int stored_w = swap ? upright->height : upright->width;
    int stored_h = swap ? upright->width : upright->height;
    struct fv_image *stored = fv_image_new(stored_w, stored_h);
    if (!stored)
        return NULL;
    for (int y = 0; y < upright->height; y++) {
        const uint8_t *in = upright->rgb + (size_t)y * upright->width * 3;
        for (int x = 0; x < upright->width; x++, in += 3) {
            int sx, sy;
            stored_position(orientation, x, y, stored_w, stored_h, &sx, &sy);
            memcpy(stored->rgb + ((size_t)sy * stored_w + sx) * 3, in, 3);
        }
    }
    return stored;
}

/* "Exif\0\0" and a big-endian TIFF structure whose IFD0 holds one entry,
 * Orientation (tag 0x0112, type SHORT, count 1), and no next IFD. */
#define EXIF_BLOCK_SIZE (6 + 8 + 2 + 12 + 4)

static void exif_block(int orientation, uint8_t block[EXIF_BLOCK_SIZE])
{
    static const uint8_t head[] = {
        'E', 'x', 'i', 'f', 0, 0,      /* APP1 identifier */
        'M', 'M', 0, 42, 0, 0, 0, 8,  /* TIFF header: big endian, IFD0 at offset 8 */
        0, 1,                         /* one entry */
        0x01, 0x12, 0, 3, 0, 0, 0, 1, /* Orientation, SHORT, count 1 */
    };
    memcpy(block, head, sizeof head);
    /* a SHORT sits in the first two bytes of the entry's 4-byte value field */
    uint8_t *value = block + sizeof head;
    memset(value, 0, 8); /* and the next IFD's offset, 0: none */
    value[1] = (uint8_t)orientation;
}

static bool write_all(FILE *f, const void *data, size_t size)
{
    return fwrite(data, 1, size, f) == size;
}

/* Writes the JPEG in jpeg (from fv_image_encode_jpeg, starting with SOI) to f,
 * with an EXIF APP1 segment for `orientation` right after SOI when it is not 0. */
static bool write_jpeg(FILE *f, const uint8_t *jpeg, size_t size, int orientation)
{
    if (size < 2 || jpeg[0] != 0xFF || jpeg[1] != 0xD8)
        return false;
    if (!orientation)
        return write_all(f, jpeg, size);
    uint8_t segment[4 + EXIF_BLOCK_SIZE];
    segment[0] = 0xFF;
    segment[1] = 0xE1;
    segment[2] = (uint8_t)((2 + EXIF_BLOCK_SIZE) >> 8); /* length counts itself */
    segment[3] = (uint8_t)((2 + EXIF_BLOCK_SIZE) & 0xFF);
    exif_block(orientation, segment + 4);
    return write_all(f, jpeg, 2) && write_all(f, segment, sizeof segment) &&
           write_all(f, jpeg + 2, size - 2);
}

static bool write_ppm(FILE *f, const struct fv_image *img)
{
    return fprintf(f, "P6\n%d %d\n255\n", img->width, img->height) > 0 &&
           write_all(f, img->rgb, (size_t)img->width * img->height * 3);
}

/* Writes img (already stored for o->orientation) to o->out in its format. */
static bool write_output(const struct options *o, const struct fv_image *img,
                         struct fv_error *err)
{
    uint8_t *data = NULL;
    size_t size = 0;
    bool ppm = has_extension(o->out, ".ppm"), png = has_extension(o->out, ".png");
    if (png && fv_image_encode_png(img, &data, &size, err))
        return false;
    if (!png && !ppm && fv_image_encode_jpeg(img, o->quality, &data, &size, err))
        return false;
    FILE *f = fopen(o->out, "wb");
    bool ok = f != NULL;
    if (ok)
        ok = ppm ? write_ppm(f, img) : png ? write_all(f, data, size)
                                           : write_jpeg(f, data, size, o->orientation);
    if (f && fclose(f) != 0)
        ok = false;
    free(data);
    if (!ok)
        fv_error_set(err, FV_ERR_IO, "cannot write %s", o->out);
    return ok;
}

int main(int argc, char **argv)
{
    struct options o;
    if (!parse_options(argc, argv, &o))
        return 1;
    struct fv_error err = {0};
    struct fv_image *source = NULL, *resized = NULL, *canvas = NULL, *stored = NULL;
    int rc = 1;
    if (fv_image_load(o.source, NULL, &source, &err))
        goto done;
    double width = round(source->width * o.scale), height = round(source->height * o.scale);
    if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) {
        fv_error_set(&err, FV_ERR_INVALID_ARG, "%s at scale %s would be %.0fx%.0f", o.source,
                     o.scale_text, width, height);
        goto done;
    }
    int canvas_w, canvas_h;
    if (!canvas_size(o.canvas, (int)width, (int)height, &canvas_w, &canvas_h))
        goto done;
    if (fv_image_resize(source, (int)width, (int)height, &resized, &err))
        goto done;
    if (!(canvas = fv_image_new(canvas_w, canvas_h))) {
        fv_error_set(&err, FV_ERR_NOMEM, "out of memory for a %dx%d canvas", canvas_w, canvas_h);
        goto done;
    }
    memset(canvas->rgb, CANVAS_GREY, (size_t)canvas_w * canvas_h * 3);
    int left = (canvas_w - resized->width) / 2, top = (canvas_h - resized->height) / 2;
    for (int y = 0; y < resized->height; y++)
        memcpy(canvas->rgb + ((size_t)(top + y) * canvas_w + left) * 3,
               resized->rgb + (size_t)y * resized->width * 3, (size_t)resized->width * 3);
    if (o.orientation > 1 && !(stored = store_for_orientation(canvas, o.orientation))) {
        fv_error_set(&err, FV_ERR_NOMEM, "out of memory rotating a %dx%d image", canvas_w,
                     canvas_h);
        goto done;
    }
    if (!write_output(&o, stored ? stored : canvas, &err))
        goto done;
    printf("%s %d %d %dx%d\n", o.scale_text, left, top, canvas_w, canvas_h);
    rc = 0;
done:
    if (rc && err.status)
        fprintf(stderr, "photo_tool: %s\n", err.message[0] ? err.message : fv_status_str(err.status));
    fv_image_free(stored);
    fv_image_free(canvas);
    fv_image_free(resized);
    fv_image_free(source);
    return rc;
}
