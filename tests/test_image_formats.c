/* test_image_formats.c - HEIF/HEIC, AVIF and WebP decoding: fidelity against the source,
 * orientation (irot, EXIF), alpha, 10-bit, sequences and animations, and hostile files.
 *
 * Test files are made at run time, never committed: images written with fv_image_save
 * (or libpng, for alpha and 16 bits) are encoded with heif-enc (libheif-examples),
 * cwebp and img2webp (webp), then patched here where a test needs a hostile or unusual
 * file. A test whose tool is missing is skipped and says which package to install. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <png.h>

#include "pipeline/image.h"
#include "pipeline/image_internal.h"
#include "tests/leak_check.h"

static char workdir[64];

static void workdir_make(void)
{
    snprintf(workdir, sizeof workdir, "/tmp/facever-formats-XXXXXX");
    cr_assert_not_null(mkdtemp(workdir), "mkdtemp failed");
}

static void workdir_remove(void)
{
    if (workdir[0]) {
        char command[128];
        snprintf(command, sizeof command, "rm -rf '%s'", workdir);
        if (system(command) != 0)
            fprintf(stderr, "could not remove %s\n", workdir);
    }
    leak_check_fini();
}

TestSuite(image_formats, .init = workdir_make, .fini = workdir_remove);

/* ---- helpers ---- */

struct bytes {
    uint8_t *data;
    size_t size;
};

static void bytes_free(struct bytes *b)
{
    free(b->data);
    b->data = NULL;
    b->size = 0;
}

static const char *path_of(const char *name)
{
    static char paths[8][128];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, sizeof paths[0], "%s/%s", workdir, name);
    return path;
}

static bool have_tool(const char *tool)
{
    char command[128];
    snprintf(command, sizeof command, "command -v %s >/dev/null 2>&1", tool);
    return system(command) == 0;
}

static void need_tool(const char *tool, const char *package)
{
    if (!have_tool(tool))
        cr_skip_test("%s not found: install Debian's %s to run this test", tool, package);
}

/* Runs a shell command (in the work directory) and asserts that it succeeded. */
__attribute__((format(printf, 1, 2))) static void run(const char *fmt, ...)
{
    char command[1024];
    int n = snprintf(command, sizeof command, "cd '%s' && ", workdir);
    va_list args;
    va_start(args, fmt);
    vsnprintf(command + n, sizeof command - (size_t)n, fmt, args);
    va_end(args);
    strncat(command, " >/dev/null 2>&1", sizeof command - strlen(command) - 1);
    cr_assert_eq(system(command), 0, "command failed: %s", command);
}

static struct bytes read_file(const char *name)
{
    FILE *f = fopen(path_of(name), "rb");
    cr_assert_not_null(f, "cannot open %s", name);
    struct bytes b = {NULL, 0};
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    cr_assert_gt(size, 0, "%s is empty", name);
    rewind(f);
    b.data = malloc((size_t)size);
    cr_assert_not_null(b.data);
    cr_assert_eq(fread(b.data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    b.size = (size_t)size;
    return b;
}

static void write_file(const char *name, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path_of(name), "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, size, f), size);
    cr_assert_eq(fclose(f), 0);
}

static void save(const struct fv_image *img, const char *name)
{
    struct fv_error err = {0};
    cr_assert_eq(fv_image_save(img, path_of(name), &err), FV_OK, "%s", err.message);
}

static struct fv_image *decode_ok(const struct bytes *b, const struct fv_image_limits *limits)
{
    struct fv_image *img = NULL;
    struct fv_error err = {0};
    enum fv_status status = fv_image_decode(b->data, b->size, limits, &img, &err);
    cr_assert_eq(status, FV_OK, "decode failed: %s", err.message);
    return img;
}

/* Decodes expecting `expected` and a message containing `words`. */
static void decode_fails(const uint8_t *data, size_t size, const struct fv_image_limits *limits,
                         enum fv_status expected, const char *words)
{
    struct fv_image *img = (struct fv_image *)0x1;
    struct fv_error err = {0};
    enum fv_status status = fv_image_decode(data, size, limits, &img, &err);
    cr_expect_eq(status, expected, "status %d (%s), expected %d", status, err.message,
                 expected);
    cr_expect_null(img, "no image on failure");
    cr_expect(strstr(err.message, words) != NULL, "message \"%s\" lacks \"%s\"", err.message,
              words);
    if (status == FV_OK)
        fv_image_free(img);
}

static double mean_abs_diff(const struct fv_image *a, const struct fv_image *b)
{
    cr_assert_eq(a->width, b->width);
    cr_assert_eq(a->height, b->height);
    size_t n = (size_t)a->width * (size_t)a->height * 3;
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += abs(a->rgb[i] - b->rgb[i]);
    return total / (double)n;
}

/* tests/data/sample1.jpg at 240x160: a photo, for fidelity checks. */
static struct fv_image *photo(void)
{
    if (access("tests/data/sample1.jpg", R_OK) != 0)
        cr_skip_test("tests/data/sample1.jpg missing: run `make test-data`");
    struct fv_image *full = NULL, *small = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_image_load("tests/data/sample1.jpg", NULL, &full, &err), FV_OK, "%s",
                 err.message);
    cr_assert_eq(fv_image_resize(full, 240, 160, &small, &err), FV_OK, "%s", err.message);
    fv_image_free(full);
    return small;
}

struct rgb {
    uint8_t r, g, b;
};
static const struct rgb RED = {255, 0, 0}, GREEN = {0, 255, 0}, BLUE = {0, 0, 255},
                        YELLOW = {255, 255, 0};

/* Top-left red, top-right green, bottom-left blue, bottom-right yellow. */
static struct fv_image *quadrants(int w, int h)
{
    struct fv_image *img = fv_image_new(w, h);
    cr_assert_not_null(img);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            struct rgb c = y < h / 2 ? (x < w / 2 ? RED : GREEN) : (x < w / 2 ? BLUE : YELLOW);
            uint8_t *p = fv_image_pixel_at(img, x, y);
            p[0] = c.r;
            p[1] = c.g;
            p[2] = c.b;
        }
    return img;
}

/* Checks the quadrant colours of a decoded quadrants() image, read as top-left,
 * top-right, bottom-left, bottom-right ("RGBY" is upright). */
static void expect_layout(const struct fv_image *img, int width, int height, const char *layout)
{
    cr_assert_eq(img->width, width, "width %d, expected %d", img->width, width);
    cr_assert_eq(img->height, height, "height %d, expected %d", img->height, height);
    int xs[4] = {width / 4, 3 * width / 4, width / 4, 3 * width / 4};
    int ys[4] = {height / 4, height / 4, 3 * height / 4, 3 * height / 4};
    for (int q = 0; q < 4; q++) {
        char c = layout[q];
        struct rgb e = c == 'R' ? RED : c == 'G' ? GREEN : c == 'B' ? BLUE : YELLOW;
        const uint8_t *p = fv_image_pixel_at(img, xs[q], ys[q]);
        cr_expect(abs(p[0] - e.r) <= 48 && abs(p[1] - e.g) <= 48 && abs(p[2] - e.b) <= 48,
                  "quadrant %d of %s is (%d,%d,%d), expected %c", q, layout, p[0], p[1], p[2],
                  c);
    }
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be(uint8_t *p, uint64_t value, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(value >> (8 * (bytes - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* The EXIF TIFF block with only an orientation entry, little-endian. */
static size_t exif_tiff(uint8_t *t, int orientation)
{
    static const uint8_t block[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0,
                                    0x12, 0x01, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                    0, 0, 0, 0};
    memcpy(t, block, sizeof block);
    t[18] = (uint8_t)orientation;
    return sizeof block;
}

/* A JPEG of img with an APP1 Exif segment holding `orientation`. */
static void save_jpeg_with_orientation(const struct fv_image *img, int orientation,
                                       const char *name)
{
    uint8_t *jpeg = NULL;
    size_t size = 0;
    struct fv_error err = {0};
    cr_assert_eq(fv_image_encode_jpeg(img, 95, &jpeg, &size, &err), FV_OK, "%s", err.message);
    uint8_t payload[64] = "Exif\0\0";
    size_t n = 6 + exif_tiff(payload + 6, orientation);
    uint8_t *out = malloc(size + 4 + n);
    cr_assert_not_null(out);
    memcpy(out, jpeg, 2);
    out[2] = 0xff;
    out[3] = 0xe1;
    put_be(out + 4, n + 2, 2);
    memcpy(out + 6, payload, n);
    memcpy(out + 6 + n, jpeg + 2, size - 2);
    write_file(name, out, size + 4 + n);
    free(out);
    free(jpeg);
}

/* A PNG straight from libpng: `channels` 3 or 4, `depth` 8 or 16, samples
 * big-endian as PNG stores them. */
static void save_png_raw(const char *name, int w, int h, int channels, int depth,
                         const uint8_t *samples)
{
    FILE *f = fopen(path_of(name), "wb");
    cr_assert_not_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    cr_assert(png && info);
    cr_assert_eq(setjmp(png_jmpbuf(png)), 0, "libpng failed writing %s", name);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth,
                 channels == 4 ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t row = (size_t)w * (size_t)channels * (size_t)(depth / 8);
    for (int y = 0; y < h; y++)
        png_write_row(png, samples + (size_t)y * row);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    cr_assert_eq(fclose(f), 0);
}

/* ---- ISO BMFF surgery on heif-enc's files ----
 *
 * heif-enc writes ftyp, meta (hdlr, pitm, iloc, iinf, iprp (ipco, ipma)), mdat, with
 * the image data in mdat after meta. These helpers find boxes and keep sizes and
 * iloc offsets right when bytes are inserted. */

/* The offset of the first box of `type` among the boxes in [from, to), or 0. */
static size_t find_box(const struct bytes *b, size_t from, size_t to, const char *type)
{
    while (from + 8 <= to) {
        size_t size = get_be32(b->data + from);
        if (size < 8 || size > to - from)
            return 0;
        if (memcmp(b->data + from + 4, type, 4) == 0)
            return from;
        from += size;
    }
    return 0;
}

static size_t box_end(const struct bytes *b, size_t box)
{
    return box + get_be32(b->data + box);
}

struct heif_layout {
    size_t meta, iloc, iprp, ipco, ipma, mdat;
};

static struct heif_layout heif_layout(const struct bytes *b)
{
    struct heif_layout l = {0};
    l.meta = find_box(b, 0, b->size, "meta");
    l.mdat = find_box(b, 0, b->size, "mdat");
    cr_assert(l.meta && l.mdat && l.meta < l.mdat, "unexpected heif-enc layout");
    l.iloc = find_box(b, l.meta + 12, box_end(b, l.meta), "iloc");
    l.iprp = find_box(b, l.meta + 12, box_end(b, l.meta), "iprp");
    cr_assert(l.iloc && l.iprp, "no iloc or iprp");
    l.ipco = find_box(b, l.iprp + 8, box_end(b, l.iprp), "ipco");
    l.ipma = find_box(b, l.iprp + 8, box_end(b, l.iprp), "ipma");
    cr_assert(l.ipco && l.ipma, "no ipco or ipma");
    return l;
}

static void insert_bytes(struct bytes *b, size_t at, const uint8_t *data, size_t n)
{
    uint8_t *bigger = realloc(b->data, b->size + n);
    cr_assert_not_null(bigger);
    memmove(bigger + at + n, bigger + at, b->size - at);
    memcpy(bigger + at, data, n);
    b->data = bigger;
    b->size += n;
}

static void grow_box(struct bytes *b, size_t box, size_t n)
{
    put_be(b->data + box, get_be32(b->data + box) + n, 4);
}

/* Calls visit(file, field offset, field width, arg) for the file offset of the
 * data of every iloc item stored in the file (construction method 0): the base
 * offset when iloc has one, else each extent's offset; or, with `lengths`, for
 * each such extent's length. */
static void iloc_fields(struct bytes *b, size_t iloc, bool lengths,
                        void (*visit)(struct bytes *, size_t, unsigned, uint64_t),
                        uint64_t arg)
{
    const uint8_t *p = b->data + iloc + 8;
    unsigned version = p[0];
    cr_assert(version <= 1, "iloc version %u", version);
    unsigned offset_size = p[4] >> 4, length_size = p[4] & 15, base_size = p[5] >> 4;
    unsigned index_size = version == 1 ? p[5] & 15 : 0;
    size_t at = iloc + 8 + 6;
    unsigned count = (unsigned)get_be(b->data + at, 2);
    at += 2;
    for (unsigned i = 0; i < count; i++) {
        at += 2; /* item_ID */
        bool in_file = true;
        if (version == 1) {
            in_file = (get_be(b->data + at, 2) & 15) == 0;
            at += 2;
        }
        at += 2; /* data_reference_index */
        if (in_file && base_size && !lengths)
            visit(b, at, base_size, arg);
        at += base_size;
        unsigned extents = (unsigned)get_be(b->data + at, 2);
        at += 2;
        for (unsigned e = 0; e < extents; e++) {
            at += index_size;
            if (in_file && !base_size && !lengths)
                visit(b, at, offset_size, arg);
            at += offset_size;
            if (in_file && lengths)
                visit(b, at, length_size, arg);
            at += length_size;
        }
    }
}

static void add_to_field(struct bytes *b, size_t at, unsigned width, uint64_t delta)
{
    put_be(b->data + at, get_be(b->data + at, width) + delta, width);
}

/* The primary item (pitm), which heif-enc makes a grid of one tile when the
 * image is smaller than x265's coding unit. */
static unsigned primary_item(const struct bytes *b, const struct heif_layout *l)
{
    size_t pitm = find_box(b, l->meta + 12, box_end(b, l->meta), "pitm");
    cr_assert(pitm && b->data[pitm + 8] == 0, "no pitm (version 0)");
    return (unsigned)get_be(b->data + pitm + 12, 2);
}

/* The ipma entry of `item` (ipma version 0, flags 0: u16 item IDs, one-byte
 * associations, which is what heif-enc writes). */
static size_t ipma_entry(const struct bytes *b, const struct heif_layout *l, unsigned item)
{
    cr_assert(b->data[l->ipma + 8] == 0 && b->data[l->ipma + 11] == 0, "ipma version/flags");
    size_t at = l->ipma + 16;
    unsigned entries = get_be32(b->data + l->ipma + 12);
    for (unsigned i = 0; i < entries; i++) {
        if (get_be(b->data + at, 2) == item)
            return at;
        at += 3 + b->data[at + 2];
    }
    cr_assert_fail("item %u has no ipma entry", item);
    return 0;
}

/* The property box of `type` associated with `item`. */
static size_t item_property(const struct bytes *b, const struct heif_layout *l, unsigned item,
                            const char *type)
{
    size_t entry = ipma_entry(b, l, item);
    for (unsigned k = 0; k < b->data[entry + 2]; k++) {
        unsigned index = b->data[entry + 3 + k] & 0x7f;
        size_t box = l->ipco + 8;
        for (unsigned i = 1; i < index && box < box_end(b, l->ipco); i++)
            box = box_end(b, box);
        if (box < box_end(b, l->ipco) && memcmp(b->data + box + 4, type, 4) == 0)
            return box;
    }
    cr_assert_fail("item %u has no %s", item, type);
    return 0;
}

/* Adds a property box (type + payload) to the primary item, as essential. */
static void heif_add_property(struct bytes *b, const char *type, const uint8_t *payload,
                              size_t payload_size)
{
    struct heif_layout l = heif_layout(b);
    unsigned properties = 0;
    for (size_t at = l.ipco + 8; at < box_end(b, l.ipco); at = box_end(b, at))
        properties++;
    size_t entry = ipma_entry(b, &l, primary_item(b, &l));
    /* the association first: it lies after ipco, so ipco's offset holds */
    uint8_t association = (uint8_t)(0x80 | (properties + 1));
    insert_bytes(b, entry + 3 + b->data[entry + 2], &association, 1);
    b->data[entry + 2]++;
    grow_box(b, l.ipma, 1);
    uint8_t box[64]; /* irot and imir are plain boxes: no version or flags */
    size_t box_size = 8 + payload_size;
    cr_assert_leq(box_size, sizeof box);
    put_be(box, box_size, 4);
    memcpy(box + 4, type, 4);
    memcpy(box + 8, payload, payload_size);
    insert_bytes(b, box_end(b, l.ipco), box, box_size);
    grow_box(b, l.ipco, box_size);
    grow_box(b, l.iprp, box_size + 1);
    grow_box(b, l.meta, box_size + 1);
    iloc_fields(b, l.iloc, false, add_to_field, box_size + 1);
}

/* Writes width x height into the primary item's ispe. */
static void heif_set_ispe(struct bytes *b, uint32_t width, uint32_t height)
{
    struct heif_layout l = heif_layout(b);
    size_t ispe = item_property(b, &l, primary_item(b, &l), "ispe");
    put_be(b->data + ispe + 12, width, 4);
    put_be(b->data + ispe + 16, height, 4);
}

/* The first SPS NAL unit (type 33) in a heif-enc file's hvcC. */
static struct bytes heif_sps(const struct bytes *b)
{
    struct heif_layout l = heif_layout(b);
    size_t hvcc = find_box(b, l.ipco + 8, box_end(b, l.ipco), "hvcC");
    cr_assert(hvcc, "no hvcC");
    size_t at = hvcc + 8 + 22, end = box_end(b, hvcc);
    unsigned arrays = b->data[at++];
    for (unsigned i = 0; i < arrays && at + 3 <= end; i++) {
        unsigned type = b->data[at] & 0x3f, count = (unsigned)get_be(b->data + at + 1, 2);
        at += 3;
        for (unsigned k = 0; k < count && at + 2 <= end; k++) {
            size_t size = (size_t)get_be(b->data + at, 2);
            if (type == 33) {
                struct bytes sps = {malloc(size), size};
                cr_assert_not_null(sps.data);
                memcpy(sps.data, b->data + at + 2, size);
                return sps;
            }
            at += 2 + size;
        }
    }
    cr_assert_fail("no SPS in hvcC");
    return (struct bytes){NULL, 0};
}

/* Puts `nal` (a NAL unit, given a four-byte length here) at the front of the
 * image data in mdat, as a parameter set only the decoder sees. The file must
 * hold one coded image (a grid of one tile, or a plain image). */
static void heif_prepend_nal(struct bytes *b, const struct bytes *nal)
{
    struct heif_layout l = heif_layout(b);
    uint8_t length[4];
    put_be(length, nal->size, 4);
    size_t at = l.mdat + 8;
    insert_bytes(b, at, nal->data, nal->size);
    insert_bytes(b, at, length, 4);
    grow_box(b, l.mdat, 4 + nal->size);
    iloc_fields(b, l.iloc, true, add_to_field, 4 + nal->size);
}

/* ---- fidelity ---- */

static void check_fidelity(const char *encode, const char *file, const char *format,
                           double bound)
{
    need_tool(strncmp(encode, "heif", 4) == 0 ? "heif-enc" : "cwebp",
              strncmp(encode, "heif", 4) == 0 ? "libheif-examples" : "webp");
    struct fv_image *source = photo();
    save(source, "source.png");
    run("%s", encode);
    struct bytes b = read_file(file);
    struct fv_image *img = decode_ok(&b, NULL);
    double diff = mean_abs_diff(img, source);
    cr_expect_lt(diff, bound, "%s: mean abs difference %.2f, bound %.2f", file, diff, bound);

    struct fv_image_info info = {0};
    struct fv_error err = {0};
    struct fv_image_limits limits;
    fv_image_default_limits(&limits);
    enum fv_status status = strcmp(format, "WebP") == 0
                                ? fv_webp_probe(b.data, b.size, &limits, &info, &err)
                                : fv_heif_probe(b.data, b.size, &limits, &info, &err);
    cr_expect_eq(status, FV_OK, "probe: %s", err.message);
    cr_expect_str_eq(info.format, format);
    cr_expect_eq(info.width, 240);
    cr_expect_eq(info.height, 160);
    struct fv_image_info dispatched = {0};
    cr_expect_eq(fv_image_probe(b.data, b.size, NULL, &dispatched, &err), FV_OK, "%s",
                 err.message);
    cr_expect_str_eq(dispatched.format, format);
    cr_expect_eq(dispatched.width, 240);
    fv_image_free(img);
    fv_image_free(source);
    bytes_free(&b);
}

Test(image_formats, heic_matches_its_source)
{
    check_fidelity("heif-enc -q 90 source.png -o out.heic", "out.heic", "HEIF", 4.0);
}

Test(image_formats, avif_matches_its_source)
{
    check_fidelity("heif-enc -A -q 90 source.png -o out.avif", "out.avif", "AVIF", 4.0);
}

Test(image_formats, lossy_webp_matches_its_source)
{
    check_fidelity("cwebp -quiet -q 90 source.png -o out.webp", "out.webp", "WebP", 4.0);
}

Test(image_formats, lossless_webp_is_exact)
{
    check_fidelity("cwebp -quiet -lossless -exact source.png -o out.webp", "out.webp", "WebP",
                   1e-9);
}

/* ---- orientation ---- */

/* irot angle 3 is 270 degrees anticlockwise, i.e. a quarter turn clockwise:
 * the same as EXIF orientation 6, which lays the quadrants out as "BRYG". */
Test(image_formats, heif_irot_is_applied)
{
    need_tool("heif-enc", "libheif-examples");
    struct fv_image *img = quadrants(64, 32);
    save(img, "q.png");
    run("heif-enc -q 95 q.png -o q.heic");
    struct bytes b = read_file("q.heic");
    struct fv_image *plain = decode_ok(&b, NULL);
    expect_layout(plain, 64, 32, "RGBY");
    uint8_t angle = 3;
    heif_add_property(&b, "irot", &angle, 1);
    struct fv_image *turned = decode_ok(&b, NULL);
    expect_layout(turned, 32, 64, "BRYG");

    struct fv_image_info info = {0};
    struct fv_error err = {0};
    cr_expect_eq(fv_heif_probe(b.data, b.size, &(struct fv_image_limits){0, 0}, &info, &err),
                 FV_OK, "%s", err.message);
    cr_expect_eq(info.width, 32, "probe gives the upright size");
    cr_expect_eq(info.height, 64);
    fv_image_free(turned);
    fv_image_free(plain);
    fv_image_free(img);
    bytes_free(&b);
}

/* An iPhone writes irot and a matching EXIF orientation: turned once, not twice.
 * heif-enc copies the EXIF block of a JPEG input (and in 1.15 writes no irot). */
Test(image_formats, heif_exif_orientation_is_not_applied)
{
    need_tool("heif-enc", "libheif-examples");
    struct fv_image *img = quadrants(64, 32);
    save_jpeg_with_orientation(img, 6, "q6.jpg");
    run("heif-enc -q 95 q6.jpg -o q6.heic");
    struct bytes b = read_file("q6.heic");
    struct fv_image *as_stored = decode_ok(&b, NULL);
    expect_layout(as_stored, 64, 32, "RGBY"); /* EXIF 6 alone: informative */
    uint8_t angle = 3;
    heif_add_property(&b, "irot", &angle, 1);
    struct fv_image *turned = decode_ok(&b, NULL);
    expect_layout(turned, 32, 64, "BRYG"); /* irot only; EXIF on top would give 64x32 */
    fv_image_free(turned);
    fv_image_free(as_stored);
    fv_image_free(img);
    bytes_free(&b);
}

Test(image_formats, avif_irot_is_applied)
{
    need_tool("heif-enc", "libheif-examples");
    struct fv_image *img = quadrants(64, 32);
    save(img, "q.png");
    run("heif-enc -A -q 95 q.png -o q.avif");
    struct bytes b = read_file("q.avif");
    uint8_t angle = 1; /* a quarter turn anticlockwise: EXIF 8, "GYRB" */
    heif_add_property(&b, "irot", &angle, 1);
    struct fv_image *turned = decode_ok(&b, NULL);
    expect_layout(turned, 32, 64, "GYRB");
    fv_image_free(turned);
    fv_image_free(img);
    bytes_free(&b);
}

/* cwebp -metadata exif copies a JPEG input's EXIF into the WebP EXIF chunk. */
Test(image_formats, webp_exif_orientation_is_applied)
{
    need_tool("cwebp", "webp");
    struct fv_image *img = quadrants(64, 32);
    save_jpeg_with_orientation(img, 6, "q6.jpg");
    run("cwebp -quiet -q 95 -metadata exif q6.jpg -o q6.webp");
    struct bytes b = read_file("q6.webp");
    struct fv_image *upright = decode_ok(&b, NULL);
    expect_layout(upright, 32, 64, "BRYG");
    struct fv_image_info info = {0};
    struct fv_error err = {0};
    cr_expect_eq(fv_image_probe(b.data, b.size, NULL, &info, &err), FV_OK, "%s", err.message);
    cr_expect_eq(info.width, 32, "probe gives the upright size");
    cr_expect_eq(info.height, 64);
    fv_image_free(upright);
    fv_image_free(img);
    bytes_free(&b);
}

/* ---- alpha, bit depth, sequences ---- */

/* Left half opaque red, right half fully transparent with green stored. */
static void save_alpha_png(const char *name)
{
    uint8_t samples[32 * 16 * 4];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 32; x++) {
            uint8_t *p = samples + (y * 32 + x) * 4;
            p[0] = x < 16 ? 255 : 0;
            p[1] = x < 16 ? 0 : 255;
            p[2] = 0;
            p[3] = x < 16 ? 255 : 0;
        }
    save_png_raw(name, 32, 16, 4, 8, samples);
}

static void expect_alpha_dropped(const struct fv_image *img)
{
    cr_assert_eq(img->width, 32);
    cr_assert_eq(img->height, 16);
    const uint8_t *left = fv_image_pixel_at(img, 6, 8), *right = fv_image_pixel_at(img, 25, 8);
    cr_expect(left[0] > 200 && left[1] < 60, "left is (%d,%d,%d), expected red", left[0],
              left[1], left[2]);
    cr_expect(right[0] < 60 && right[1] > 200, "right is (%d,%d,%d), expected the stored green",
              right[0], right[1], right[2]);
}

Test(image_formats, heif_alpha_is_dropped)
{
    need_tool("heif-enc", "libheif-examples");
    save_alpha_png("alpha.png");
    run("heif-enc -q 95 alpha.png -o alpha.heic");
    struct bytes b = read_file("alpha.heic");
    struct fv_image *img = decode_ok(&b, NULL);
    expect_alpha_dropped(img);
    fv_image_free(img);
    bytes_free(&b);
}

Test(image_formats, webp_alpha_is_dropped)
{
    need_tool("cwebp", "webp");
    save_alpha_png("alpha.png");
    run("cwebp -quiet -lossless -exact alpha.png -o alpha.webp");
    struct bytes b = read_file("alpha.webp");
    struct fv_image *img = decode_ok(&b, NULL);
    expect_alpha_dropped(img);
    fv_image_free(img);
    bytes_free(&b);
}

/* A 16-bit PNG becomes a 10-bit HEIF (heif-enc -b 10), decoded to 8 bits. */
Test(image_formats, ten_bit_heif_becomes_8_bit)
{
    need_tool("heif-enc", "libheif-examples");
    struct fv_image *source = photo();
    size_t n = (size_t)240 * 160 * 3;
    uint8_t *samples = malloc(n * 2);
    cr_assert_not_null(samples);
    for (size_t i = 0; i < n; i++) { /* v * 257: the 16-bit sample of an 8-bit v */
        samples[2 * i] = source->rgb[i];
        samples[2 * i + 1] = source->rgb[i];
    }
    save_png_raw("deep.png", 240, 160, 3, 16, samples);
    free(samples);
    run("heif-enc -b 10 -q 90 deep.png -o deep.heic");
    struct bytes b = read_file("deep.heic");
    struct fv_image *img = decode_ok(&b, NULL);
    double diff = mean_abs_diff(img, source);
    cr_expect_lt(diff, 4.0, "mean abs difference %.2f", diff);
    fv_image_free(img);
    fv_image_free(source);
    bytes_free(&b);
}

/* heif-enc with two inputs writes two top-level images; the first is primary. */
Test(image_formats, heif_collection_gives_its_primary_image)
{
    need_tool("heif-enc", "libheif-examples");
    struct fv_image *first = quadrants(64, 32), *second = fv_image_new(48, 48);
    memset(second->rgb, 128, (size_t)48 * 48 * 3);
    save(first, "first.png");
    save(second, "second.png");
    run("heif-enc -q 95 first.png second.png -o two.heic");
    struct bytes b = read_file("two.heic");
    struct fv_image *img = decode_ok(&b, NULL);
    expect_layout(img, 64, 32, "RGBY");
    fv_image_free(img);
    fv_image_free(first);
    fv_image_free(second);
    bytes_free(&b);
}

Test(image_formats, animated_webp_gives_its_first_frame)
{
    need_tool("img2webp", "webp");
    struct fv_image *first = quadrants(64, 32), *second = quadrants(64, 32);
    for (size_t i = 0; i < (size_t)64 * 32 * 3; i++)
        second->rgb[i] = (uint8_t)(255 - second->rgb[i]);
    save(first, "first.png");
    save(second, "second.png");
    run("img2webp -loop 0 -lossless first.png -d 100 second.png -o anim.webp");
    struct bytes b = read_file("anim.webp");
    struct fv_image *img = decode_ok(&b, NULL);
    expect_layout(img, 64, 32, "RGBY");
    cr_expect_lt(mean_abs_diff(img, first), 1e-9, "the first frame, exactly (lossless)");
    fv_image_free(img);
    fv_image_free(first);
    fv_image_free(second);
    bytes_free(&b);
}

/* ---- hostile files ---- */

static const size_t MIB = 1024 * 1024;

static size_t peak_rss_bytes(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (size_t)usage.ru_maxrss * 1024;
}

/* Every cut of a valid file is refused as corrupt or truncated, never crashes. */
static void check_truncations(const struct bytes *b, const char *format)
{
    size_t cuts[] = {1, 4, 8, 12, 16, 20, 24, 28, 31, 40, 64, 100, 200, 300, 400, 1000,
                     b->size / 4, b->size / 2, b->size - 100, b->size - 10, b->size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        if (cuts[i] >= b->size)
            continue;
        struct fv_image *img = NULL;
        struct fv_error err = {0};
        enum fv_status status = fv_image_decode(b->data, cuts[i], NULL, &img, &err);
        if (cuts[i] < 12) { /* too short to be sniffed */
            cr_expect_eq(status, FV_ERR_UNSUPPORTED, "%s cut at %zu: %s", format, cuts[i],
                         err.message);
            continue;
        }
        cr_expect_eq(status, FV_ERR_FORMAT, "%s cut at %zu of %zu: status %d (%s)", format,
                     cuts[i], b->size, status, err.message);
        cr_expect(strstr(err.message, format) != NULL, "cut at %zu: \"%s\" names no %s",
                  cuts[i], err.message, format);
        cr_expect_null(img);
    }
}

Test(image_formats, truncated_heif_and_avif)
{
    need_tool("heif-enc", "libheif-examples");
    struct fv_image *img = quadrants(64, 32);
    save(img, "q.png");
    run("heif-enc -q 90 q.png -o q.heic && heif-enc -A -q 90 q.png -o q.avif");
    struct bytes heic = read_file("q.heic"), avif = read_file("q.avif");
    check_truncations(&heic, "HEIF");
    check_truncations(&avif, "AVIF");
    /* The file cut just after meta has no mdat at all: libheif's iloc check. */
    struct heif_layout l = heif_layout(&heic);
    decode_fails(heic.data, l.mdat, NULL, FV_ERR_FORMAT, "truncated HEIF");
    fv_image_free(img);
    bytes_free(&heic);
    bytes_free(&avif);
}

Test(image_formats, truncated_webp)
{
    need_tool("cwebp", "webp");
    struct fv_image *img = quadrants(64, 32);
    save_jpeg_with_orientation(img, 6, "q6.jpg");
    run("cwebp -quiet -q 90 -metadata exif q6.jpg -o q6.webp");
    struct bytes b = read_file("q6.webp");
    check_truncations(&b, "WebP");
    /* The EXIF chunk comes last: cut inside it, the image data is whole, but
     * the file is still truncated. */
    decode_fails(b.data, b.size - 4, NULL, FV_ERR_FORMAT, "truncated WebP");
    fv_image_free(img);
    bytes_free(&b);
}

Test(image_formats, heif_absurd_ispe)
{
    need_tool("heif-enc", "libheif-examples");
    struct fv_image *img = quadrants(64, 32);
    save(img, "q.png");
    run("heif-enc -q 90 q.png -o q.heic");
    struct bytes b = read_file("q.heic");
    heif_set_ispe(&b, 100000, 100000); /* over libheif's own limit */
    decode_fails(b.data, b.size, NULL, FV_ERR_TOO_LARGE, "image too large");
    heif_set_ispe(&b, 20000, 20000); /* under it, over ours */
    decode_fails(b.data, b.size, NULL, FV_ERR_TOO_LARGE, "20000x20000");
    heif_set_ispe(&b, UINT32_MAX, 1);
    decode_fails(b.data, b.size, NULL, FV_ERR_TOO_LARGE, "image too large");
    heif_set_ispe(&b, 0, 0);
    decode_fails(b.data, b.size, NULL, FV_ERR_FORMAT, "corrupt HEIF");
    /* A caller's pixel limit below 32768 also bounds libheif's side limit. */
    heif_set_ispe(&b, 64, 32);
    struct fv_image_limits tight = {0, 1000};
    decode_fails(b.data, b.size, &tight, FV_ERR_TOO_LARGE, "image too large");
    fv_image_free(img);
    bytes_free(&b);
}

/* A bomb: ispe says 16x16, the coded stream is larger. libheif 1.15 would decode
 * the stream in full; the coded size is checked first. The limit here is set
 * between ispe's size and the stream's, so that the file can stay small: the
 * same check refuses a few-kilobyte 8192x8192 stream of one colour under the
 * default limit. */
static void check_lying_ispe(const char *encode, const char *file)
{
    need_tool("heif-enc", "libheif-examples");
    struct fv_image *img = quadrants(240, 160);
    save(img, "big.png");
    run("%s", encode);
    struct bytes b = read_file(file);
    heif_set_ispe(&b, 16, 16);
    struct fv_image_limits limits = {0, 16 * 16 * 4};
    decode_fails(b.data, b.size, &limits, FV_ERR_TOO_LARGE, "240x160");
    struct fv_image_info info;
    struct fv_error err = {0};
    cr_expect_eq(fv_heif_probe(b.data, b.size, &limits, &info, &err), FV_ERR_TOO_LARGE,
                 "probe checks the coded size too: %s", err.message);
    /* Within the limits the file is decoded, and refused for not being the
     * size it says (what decodes has the size probe gives). */
    decode_fails(b.data, b.size, NULL, FV_ERR_FORMAT, "decodes to 240x160 pixels");
    fv_image_free(img);
    bytes_free(&b);
}

Test(image_formats, heif_coded_size_over_ispe)
{
    check_lying_ispe("heif-enc -q 50 big.png -o big.heic", "big.heic");
}

Test(image_formats, avif_coded_size_over_ispe)
{
    check_lying_ispe("heif-enc -A -q 50 big.png -o big.avif", "big.avif");
}

/* The larger SPS hidden in the item data, where only libde265 would see it. */
Test(image_formats, heif_sps_in_item_data_is_checked)
{
    need_tool("heif-enc", "libheif-examples");
    struct fv_image *small = quadrants(64, 32), *large = quadrants(240, 160);
    save(small, "small.png");
    save(large, "large.png");
    run("heif-enc -q 50 small.png -o small.heic && heif-enc -q 50 large.png -o large.heic");
    struct bytes s = read_file("small.heic"), l = read_file("large.heic");
    struct bytes sps = heif_sps(&l);
    heif_prepend_nal(&s, &sps);
    struct fv_image_limits limits = {0, 64 * 32 * 2};
    decode_fails(s.data, s.size, &limits, FV_ERR_TOO_LARGE, "240x160");
    fv_image_free(small);
    fv_image_free(large);
    bytes_free(&s);
    bytes_free(&l);
    bytes_free(&sps);
}

static void set_to_zero(struct bytes *b, size_t at, unsigned width, uint64_t unused)
{
    (void)unused;
    put_be(b->data + at, 0, width);
}

/* libheif 1.15 follows a grid's tiles with no guard against cycles: a grid
 * made of itself recursed until the stack overflowed (found by fuzz_image). */
Test(image_formats, heif_grid_made_of_itself)
{
    need_tool("heif-enc", "libheif-examples");
    struct fv_image *img = quadrants(64, 32); /* smaller than a CTU: heif-enc makes a grid */
    save(img, "q.png");
    run("heif-enc -q 90 q.png -o q.heic");
    struct bytes b = read_file("q.heic");
    struct heif_layout l = heif_layout(&b);
    size_t iref = find_box(&b, l.meta + 12, box_end(&b, l.meta), "iref");
    cr_assert(iref, "heif-enc wrote no grid");
    size_t dimg = find_box(&b, iref + 12, box_end(&b, iref), "dimg");
    cr_assert(dimg && get_be(b.data + dimg + 10, 2) == 1, "one tile");
    put_be(b.data + dimg + 12, get_be(b.data + dimg + 8, 2), 2); /* the tile is the grid */
    decode_fails(b.data, b.size, NULL, FV_ERR_FORMAT, "derived from itself");
    fv_image_free(img);
    bytes_free(&b);
}

/* An extent of length 0 reached dav1d as an empty buffer, which it complained
 * about on stderr and leaked (found by fuzz_heif). */
Test(image_formats, heif_empty_extent)
{
    need_tool("heif-enc", "libheif-examples");
    struct fv_image *img = quadrants(240, 160);
    save(img, "q.png");
    run("heif-enc -A -q 90 q.png -o q.avif");
    struct bytes b = read_file("q.avif");
    struct heif_layout l = heif_layout(&b);
    iloc_fields(&b, l.iloc, true, set_to_zero, 0);
    decode_fails(b.data, b.size, NULL, FV_ERR_FORMAT, "length 0");
    fv_image_free(img);
    bytes_free(&b);
}

/* Tiny files whose headers declare huge images: refused from the header, with
 * no large allocation. */
Test(image_formats, webp_bombs)
{
    need_tool("cwebp", "webp");
    struct fv_image *img = quadrants(64, 32);
    save(img, "q.png");
    run("cwebp -quiet -lossless q.png -o lossless.webp && cwebp -quiet -q 80 q.png -o lossy.webp");
    struct bytes lossless = read_file("lossless.webp"), lossy = read_file("lossy.webp");
    size_t before = peak_rss_bytes();

    /* VP8L: 14-bit width-1 and height-1 after the 0x2f signature */
    cr_assert_eq(memcmp(lossless.data + 12, "VP8L", 4), 0);
    uint8_t *bits = lossless.data + 21;
    uint32_t header = (uint32_t)bits[0] | (uint32_t)bits[1] << 8 | (uint32_t)bits[2] << 16 |
                      (uint32_t)bits[3] << 24;
    header = (header & ~(uint32_t)0xfffffff) | 16383u | 16383u << 14;
    for (int i = 0; i < 4; i++)
        bits[i] = (uint8_t)(header >> (8 * i));
    decode_fails(lossless.data, lossless.size, NULL, FV_ERR_TOO_LARGE, "16384x16384");

    /* VP8: 14-bit width and height after the start code 9d 01 2a */
    cr_assert_eq(memcmp(lossy.data + 12, "VP8 ", 4), 0);
    cr_assert_eq(memcmp(lossy.data + 23, "\x9d\x01\x2a", 3), 0);
    put_be(lossy.data + 26, 0xff3f, 2); /* 16383, little-endian, no scaling */
    put_be(lossy.data + 28, 0xff3f, 2);
    decode_fails(lossy.data, lossy.size, NULL, FV_ERR_TOO_LARGE, "16383x16383");

    cr_expect_lt(peak_rss_bytes() - before, 64 * MIB, "peak memory grew by %zu MiB",
                 (peak_rss_bytes() - before) / MIB);
    fv_image_free(img);
    bytes_free(&lossless);
    bytes_free(&lossy);
}

/* The VP8X canvas of a still image must match its bitstream; of an animation
 * it may be larger than any frame, and is what the limits apply to. */
Test(image_formats, webp_absurd_canvas)
{
    need_tool("img2webp", "webp");
    need_tool("cwebp", "webp");
    struct fv_image *img = quadrants(64, 32), *other = quadrants(64, 32);
    memset(other->rgb, 0, 64 * 3);
    save(img, "q.png");
    save(other, "r.png");
    save_jpeg_with_orientation(img, 1, "q.jpg");
    run("cwebp -quiet -metadata exif q.jpg -o still.webp && "
        "img2webp -loop 0 -lossy q.png r.png -o anim.webp");
    struct bytes still = read_file("still.webp"), anim = read_file("anim.webp");
    size_t before = peak_rss_bytes();
    cr_assert_eq(memcmp(still.data + 12, "VP8X", 4), 0);
    cr_assert_eq(memcmp(anim.data + 12, "VP8X", 4), 0);
    for (int i = 0; i < 3; i++) { /* 24-bit width-1 and height-1 */
        still.data[24 + i] = anim.data[24 + i] = 0xff;
        still.data[27 + i] = anim.data[27 + i] = 0xff;
    }
    decode_fails(still.data, still.size, NULL, FV_ERR_FORMAT, "corrupt WebP");
    struct fv_image *out = NULL;
    struct fv_error err = {0};
    enum fv_status status = fv_image_decode(anim.data, anim.size, NULL, &out, &err);
    cr_expect(status == FV_ERR_TOO_LARGE || status == FV_ERR_FORMAT, "status %d: %s", status,
              err.message);
    anim.data[24] = 0x0f, anim.data[25] = 0x27, anim.data[26] = 0; /* 10000 */
    anim.data[27] = 0x0f, anim.data[28] = 0x27, anim.data[29] = 0;
    decode_fails(anim.data, anim.size, NULL, FV_ERR_TOO_LARGE, "10000x10000");
    cr_expect_lt(peak_rss_bytes() - before, 64 * MIB, "peak memory grew by %zu MiB",
                 (peak_rss_bytes() - before) / MIB);
    fv_image_free(img);
    fv_image_free(other);
    bytes_free(&still);
    bytes_free(&anim);
}

static uint64_t rng_state = 1;
static uint8_t rng_byte(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint8_t)(rng_state >> 56);
}

Test(image_formats, garbage_after_a_valid_magic)
{
    uint8_t data[4096];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = rng_byte();
    /* WebP: a RIFF header whose size matches, then noise */
    memcpy(data, "RIFF", 4);
    put_be(data + 4, 0, 4);
    data[4] = (uint8_t)(sizeof data - 8), data[5] = (uint8_t)((sizeof data - 8) >> 8);
    memcpy(data + 8, "WEBP", 4);
    decode_fails(data, sizeof data, NULL, FV_ERR_FORMAT, "corrupt WebP");
    memcpy(data + 12, "VP8L", 4);
    decode_fails(data, sizeof data, NULL, FV_ERR_FORMAT, "WebP");
    /* HEIF: a well-formed ftyp, then noise */
    static const uint8_t ftyp[24] = {0, 0, 0, 24, 'f', 't', 'y', 'p', 'h', 'e', 'i', 'c',
                                     0, 0, 0, 0, 'm', 'i', 'f', '1', 'h', 'e', 'i', 'c'};
    memcpy(data, ftyp, sizeof ftyp);
    decode_fails(data, sizeof data, NULL, FV_ERR_FORMAT, "HEIF");
    /* ... and a meta box full of noise */
    put_be(data + 24, sizeof data - 24, 4);
    memcpy(data + 28, "meta", 4);
    decode_fails(data, sizeof data, NULL, FV_ERR_FORMAT, "corrupt HEIF");
    /* an ftyp with no brand libheif reads */
    static const uint8_t bare[24] = {0, 0, 0, 24, 'f', 't', 'y', 'p', 'h', 'e', 'i', 'c',
                                     0, 0, 0, 0, 'x', 'x', 'x', 'x', 'y', 'y', 'y', 'y'};
    decode_fails(bare, sizeof bare, NULL, FV_ERR_FORMAT, "corrupt HEIF");
}

/* Random byte changes to valid files: any answer but a crash, a leak or an
 * image larger than the limits. */
static void mutate_and_decode(const struct bytes *b, int rounds)
{
    uint8_t *copy = malloc(b->size);
    cr_assert_not_null(copy);
    struct fv_image_limits limits = {0, 1000000};
    for (int round = 0; round < rounds; round++) {
        memcpy(copy, b->data, b->size);
        int changes = 1 + rng_byte() % 8;
        for (int k = 0; k < changes; k++) {
            size_t at = ((size_t)rng_byte() << 16 | (size_t)rng_byte() << 8 | rng_byte()) %
                        b->size;
            copy[at] = rng_byte();
        }
        struct fv_image *img = NULL;
        struct fv_error err = {0};
        enum fv_status status = fv_image_decode(copy, b->size, &limits, &img, &err);
        cr_expect(status == FV_OK || status == FV_ERR_FORMAT || status == FV_ERR_TOO_LARGE ||
                      status == FV_ERR_UNSUPPORTED,
                  "round %d: status %d (%s)", round, status, err.message);
        if (status == FV_OK)
            cr_expect_leq((uint64_t)img->width * (uint64_t)img->height, limits.max_pixels);
        fv_image_free(img);
    }
    free(copy);
}

Test(image_formats, mutated_files_never_crash)
{
    need_tool("heif-enc", "libheif-examples");
    need_tool("cwebp", "webp");
    struct fv_image *img = quadrants(64, 32);
    save(img, "q.png");
    run("heif-enc -q 80 q.png -o q.heic && heif-enc -A -q 80 q.png -o q.avif && "
        "cwebp -quiet -q 80 q.png -o q.webp && cwebp -quiet -lossless q.png -o l.webp");
    const char *names[] = {"q.heic", "q.avif", "q.webp", "l.webp"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct bytes b = read_file(names[i]);
        mutate_and_decode(&b, 150);
        bytes_free(&b);
    }
    fv_image_free(img);
}

/* ---- the list of formats ---- */

Test(image_formats, unsupported_format_names_the_supported_ones)
{
    cr_expect_str_eq(fv_image_formats(), "JPEG, PNG, WebP, HEIC/HEIF, AVIF");
    static const uint8_t gif[] = "GIF89a\x01\x00\x01\x00\x00\x00";
    struct fv_image *img = NULL;
    struct fv_error err = {0};
    cr_expect_eq(fv_image_decode(gif, sizeof gif - 1, NULL, &img, &err), FV_ERR_UNSUPPORTED);
    cr_expect(strstr(err.message, "(GIF)") && strstr(err.message, fv_image_formats()),
              "message: %s", err.message);
    struct fv_image_info info;
    struct fv_error probe_err = {0};
    cr_expect_eq(fv_image_probe(gif, sizeof gif - 1, NULL, &info, &probe_err),
                 FV_ERR_UNSUPPORTED);
    cr_expect_str_eq(probe_err.message, err.message, "probe and decode say the same");
}
