/* make_seeds.c - writes the seed corpora under tests/fuzz/corpus/ (run by hand with
 * `sh tests/fuzz/make_seeds.sh`; the output is committed). Every seed is made here
 * with facever's own encoders and writers, or byte by byte: no downloaded data.
 *
 *   make_seeds OUT_DIR
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "api/base64.h"
#include "eval/pca.h"
#include "model/model.h"
#include "model/model_file.h"
#include "pipeline/image.h"

static const char *out_dir;

#define die(what) die_at(__LINE__, what)
static void die_at(int line, const char *what)
{
    fprintf(stderr, "make_seeds:%d: %s\n", line, what);
    exit(1);
}

static void put(const char *harness, const char *name, const void *data, size_t size)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out_dir, harness);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, harness, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f))
        die(path);
}

static void put_str(const char *harness, const char *name, const char *text)
{
    put(harness, name, text, strlen(text));
}

/* ---- images ---- */

static struct fv_image *pattern(int w, int h)
{
    struct fv_image *img = fv_image_new(w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img->rgb + 3 * ((size_t)y * w + x);
            p[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
            p[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
            p[2] = (uint8_t)((x ^ y) * 16);
        }
    return img;
}

/* A big-endian TIFF holding one IFD entry: Orientation (0x0112) = orientation. */
static size_t tiff_orientation(uint8_t *out, int orientation)
{
    static const uint8_t head[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1};
    memcpy(out, head, sizeof head);
    size_t n = sizeof head;
    out[n++] = 0, out[n++] = (uint8_t)orientation, out[n++] = 0, out[n++] = 0;
    out[n++] = 0, out[n++] = 0, out[n++] = 0, out[n++] = 0; /* no next IFD */
    return n;
}

/* jpeg with an APP1 Exif segment inserted after SOI. */
static uint8_t *jpeg_with_exif(const uint8_t *jpeg, size_t size, int orientation, size_t *out_size)
{
    uint8_t tiff[64];
    size_t t = tiff_orientation(tiff, orientation);
    size_t seg = 2 + 6 + t;
    uint8_t *out = malloc(size + 2 + seg);
    memcpy(out, jpeg, 2);
    size_t n = 2;
    out[n++] = 0xFF, out[n++] = 0xE1, out[n++] = (uint8_t)(seg >> 8), out[n++] = (uint8_t)seg;
    memcpy(out + n, "Exif\0\0", 6), n += 6;
    memcpy(out + n, tiff, t), n += t;
    memcpy(out + n, jpeg + 2, size - 2), n += size - 2;
    *out_size = n;
    return out;
}

static size_t png_chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t len)
{
    out[0] = (uint8_t)(len >> 24), out[1] = (uint8_t)(len >> 16), out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    memcpy(out + 4, type, 4);
    if (len)
        memcpy(out + 8, data, len);
    uint32_t crc = (uint32_t)crc32(0, out + 4, len + 4);
    out[8 + len] = (uint8_t)(crc >> 24), out[9 + len] = (uint8_t)(crc >> 16);
    out[10 + len] = (uint8_t)(crc >> 8), out[11 + len] = (uint8_t)crc;
    return 12 + len;
}

/* A PNG written byte by byte: any colour type and depth, raw rows (filter 0 added
 * here), optional PLTE / tRNS / eXIf chunks. declared_w/h go into IHDR as given. */
static size_t png_build(uint8_t *out, uint32_t w, uint32_t h, int depth, int color,
                        const uint8_t *rows, size_t row_bytes, uint32_t n_rows,
                        const uint8_t *plte, uint32_t plte_len, const uint8_t *trns,
                        uint32_t trns_len, int exif_orientation)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    size_t n = 0;
    memcpy(out, sig, 8), n = 8;
    uint8_t ihdr[13] = {(uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w,
                        (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h,
                        (uint8_t)depth, (uint8_t)color, 0, 0, 0};
    n += png_chunk(out + n, "IHDR", ihdr, 13);
    if (plte)
        n += png_chunk(out + n, "PLTE", plte, plte_len);
    if (trns)
        n += png_chunk(out + n, "tRNS", trns, trns_len);
    size_t raw_size = (row_bytes + 1) * n_rows;
    uint8_t *raw = calloc(raw_size ? raw_size : 1, 1);
    for (uint32_t y = 0; y < n_rows; y++)
        memcpy(raw + y * (row_bytes + 1) + 1, rows + y * row_bytes, row_bytes);
    uLongf zsize = compressBound(raw_size);
    uint8_t *z = malloc(zsize);
    if (compress2(z, &zsize, raw, raw_size, 9) != Z_OK)
        die("compress");
    n += png_chunk(out + n, "IDAT", z, (uint32_t)zsize);
    if (exif_orientation) {
        uint8_t tiff[64];
        size_t t = tiff_orientation(tiff, exif_orientation);
        n += png_chunk(out + n, "eXIf", tiff, (uint32_t)t);
    }
    n += png_chunk(out + n, "IEND", NULL, 0);
    free(z);
    free(raw);
    return n;
}

static void put_truncated(const char *harness, const char *stem, const uint8_t *data,
                          size_t size)
{
    char name[128];
    snprintf(name, sizeof name, "%s-half", stem);
    put(harness, name, data, size / 2);
    snprintf(name, sizeof name, "%s-minus1", stem);
    put(harness, name, data, size - 1);
}

static uint8_t *tiny_jpeg, *tiny_png, *exif_jpeg;
static size_t tiny_jpeg_size, tiny_png_size, exif_jpeg_size;

static void image_seeds(void)
{
    struct fv_error err = {0};
    struct fv_image *img = pattern(16, 12);
    if (fv_image_encode_jpeg(img, 80, &tiny_jpeg, &tiny_jpeg_size, &err) ||
        fv_image_encode_png(img, &tiny_png, &tiny_png_size, &err))
        die(err.message);
    put("image", "rgb-16x12.jpg", tiny_jpeg, tiny_jpeg_size);
    put("image", "rgb-16x12.png", tiny_png, tiny_png_size);
    put_truncated("image", "rgb-16x12.jpg", tiny_jpeg, tiny_jpeg_size);
    put_truncated("image", "rgb-16x12.png", tiny_png, tiny_png_size);
    exif_jpeg = jpeg_with_exif(tiny_jpeg, tiny_jpeg_size, 6, &exif_jpeg_size);
    put("image", "exif6-16x12.jpg", exif_jpeg, exif_jpeg_size);
    put_truncated("image", "exif6-16x12.jpg", exif_jpeg, exif_jpeg_size);
    size_t s8;
    uint8_t *e8 = jpeg_with_exif(tiny_jpeg, tiny_jpeg_size, 8, &s8);
    put("image", "exif8-16x12.jpg", e8, s8);
    free(e8);
    struct fv_image *odd = pattern(5, 3);
    uint8_t *j;
    size_t js;
    if (fv_image_encode_jpeg(odd, 10, &j, &js, &err))
        die(err.message);
    put("image", "rgb-5x3-q10.jpg", j, js);
    free(j);

    static uint8_t buf[1 << 16];
    uint8_t rows[64 * 16];
    /* RGB with eXIf orientation 3, 4x3 */
    for (size_t i = 0; i < sizeof rows; i++)
        rows[i] = (uint8_t)(i * 37);
    size_t n = png_build(buf, 4, 3, 8, 2, rows, 12, 3, NULL, 0, NULL, 0, 3);
    put("image", "exif3-4x3.png", buf, n);
    put_truncated("image", "exif3-4x3.png", buf, n);
    /* grayscale 16-bit, 3x2 */
    n = png_build(buf, 3, 2, 16, 0, rows, 6, 2, NULL, 0, NULL, 0, 0);
    put("image", "gray16-3x2.png", buf, n);
    /* gray + alpha 8-bit, 2x2 */
    n = png_build(buf, 2, 2, 8, 4, rows, 4, 2, NULL, 0, NULL, 0, 6);
    put("image", "graya-2x2-exif6.png", buf, n);
    /* RGBA 8-bit, 2x2 */
    n = png_build(buf, 2, 2, 8, 6, rows, 8, 2, NULL, 0, NULL, 0, 0);
    put("image", "rgba-2x2.png", buf, n);
    /* palette 2-bit with tRNS, 4x2 */
    uint8_t plte[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9}, trns[2] = {0, 128};
    uint8_t prow[2] = {0x1B, 0xE4};
    n = png_build(buf, 4, 2, 2, 3, prow, 1, 2, plte, 12, trns, 2, 0);
    put("image", "palette2-4x2-trns.png", buf, n);
    /* gray 1-bit 8x1 */
    uint8_t bit = 0xA5;
    n = png_build(buf, 8, 1, 1, 0, &bit, 1, 1, NULL, 0, NULL, 0, 0);
    put("image", "gray1-8x1.png", buf, n);
    /* decompression bomb: header declares 30000 x 30000 RGB, one row of data */
    static uint8_t row[90000];
    n = png_build(buf, 30000, 30000, 8, 2, row, 0, 0, NULL, 0, NULL, 0, 0);
    put("image", "bomb-30000x30000.png", buf, n);
    /* 6000 x 6000 (under the pixel limit, 108 MB of RGB) with only one row present */
    static uint8_t bigrow[18000];
    n = png_build(buf, 6000, 6000, 8, 2, bigrow, sizeof bigrow, 1, NULL, 0, NULL, 0, 0);
    put("image", "big-6000x6000-1row.png", buf, n);
    /* not an image at all, and formats we do not take */
    put_str("image", "gif-header", "GIF89a\x01\x00\x01\x00\x00\x00\x00;");
    put_str("image", "webp-header", "RIFF\x1a\x00\x00\x00WEBPVP8 ");
    fv_image_free(img);
    fv_image_free(odd);
}

/* ---- base64 ---- */

static void base64_seeds(void)
{
    put_str("base64", "hello", "aGVsbG8gd29ybGQ=");
    put_str("base64", "no-padding", "aGVsbG8gd29ybGQ");
    put_str("base64", "wrapped", "aGVs\r\nbG8g d29y\tbGQ=\n");
    put_str("base64", "urlsafe", "-_-_");
    put_str("base64", "data-uri", "data:image/jpeg;base64,/9j/4AAQ");
    put_str("base64", "data-uri-not-base64", "data:text/plain,hello");
    put_str("base64", "bad-padding", "YQ=a");
    put_str("base64", "lone-char", "YWJjZ");
    char *s = fv_base64_encode(tiny_png, tiny_png_size);
    put_str("base64", "png", s);
    free(s);
}

/* ---- multipart ---- */

static void multipart_seeds(void)
{
    put_str("multipart", "two-parts",
            "multipart/form-data; boundary=XyZ\n"
            "--XyZ\r\nContent-Disposition: form-data; name=\"image1\"; filename=\"a.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\nJPEGDATA\r\n"
            "--XyZ\r\nContent-Disposition: form-data; name=\"threshold\"\r\n\r\n0.4\r\n"
            "--XyZ--\r\n");
    put_str("multipart", "quoted-boundary-lf",
            "multipart/form-data; boundary=\"a b'c\"\n"
            "preamble\n--a b'c\nContent-Disposition: form-data; name=images\n\nX\n--a b'c--");
    put_str("multipart", "truncated",
            "multipart/form-data; boundary=B\n"
            "--B\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc");
    put_str("multipart", "no-disposition",
            "multipart/form-data; boundary=B\n--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--");
    put_str("multipart", "empty-body", "multipart/form-data; boundary=B\n");
}

/* ---- request bodies (byte 0: route | content type, see fuzz_request.c) ---- */

static void request(const char *name, int selector, const char *body)
{
    size_t n = strlen(body);
    uint8_t *b = malloc(n + 1);
    b[0] = (uint8_t)selector;
    memcpy(b + 1, body, n);
    put("request", name, b, n + 1);
    free(b);
}

static void request_seeds(void)
{
    char *jpg = fv_base64_encode(tiny_jpeg, tiny_jpeg_size), *png = fv_base64_encode(tiny_png, tiny_png_size);
    char *exif = fv_base64_encode(exif_jpeg, exif_jpeg_size);
    static char body[1 << 16];
    snprintf(body, sizeof body, "{\"image1\":\"%s\",\"image2\":\"data:image/png;base64,%s\"}",
             jpg, png);
    request("verify-images.json", 0, body);
    /* embeddings: the pipeline's dim is 384 (2 x 192) for MobileFaceNet */
    char *p = body;
    p += sprintf(p, "{\"embedding1\":[");
    for (int i = 0; i < 384; i++)
        p += sprintf(p, "%s%g", i ? "," : "", (i % 5) * 0.01);
    p += sprintf(p, "],\"embedding2\":[");
    for (int i = 0; i < 384; i++)
        p += sprintf(p, "%s%g", i ? "," : "", (i % 3) * 0.02);
    sprintf(p, "],\"threshold\":0.3,\"policy\":\"center\",\"return_embeddings\":true}");
    request("verify-embeddings.json", 0, body);
    request("verify-bad-types.json", 0,
            "{\"image1\":12,\"embedding2\":[1,2],\"threshold\":\"x\",\"policy\":null}");
    request("verify-both.json", 0, "{\"image1\":\"AAAA\",\"embedding1\":[],\"image2\":\"!!\"}");
    snprintf(body, sizeof body, "{\"image\":\"%s\",\"policy\":\"all\"}", exif);
    request("embed-one.json", 1, body);
    snprintf(body, sizeof body, "{\"images\":[\"%s\",\"%s\",\"@@\",null]}", jpg, png);
    request("embed-batch.json", 1, body);
    snprintf(body, sizeof body, "{\"image\":\"%s\"}", png);
    request("detect-one.json", 2, body);
    request("detect-not-object.json", 2, "[1,2,3]");
    request("detect-malformed.json", 2, "{\"image\":\"AAAA\"");
    request("detect-empty.json", 2, "");
    static char mp[1 << 16];
    size_t n = (size_t)snprintf(mp, sizeof mp,
        "--fuzzboundary\r\nContent-Disposition: form-data; name=\"image1\"; filename=\"a.jpg\"\r\n"
        "Content-Type: image/jpeg\r\n\r\n");
    memcpy(mp + n, tiny_jpeg, tiny_jpeg_size), n += tiny_jpeg_size;
    n += (size_t)snprintf(mp + n, sizeof mp - n,
        "\r\n--fuzzboundary\r\nContent-Disposition: form-data; name=\"embedding2\"\r\n\r\n[0.5,1]"
        "\r\n--fuzzboundary\r\nContent-Disposition: form-data; name=\"threshold\"\r\n\r\n0.25"
        "\r\n--fuzzboundary\r\nContent-Disposition: form-data; name=\"return_embeddings\"\r\n\r\n1"
        "\r\n--fuzzboundary--\r\n");
    uint8_t *b = malloc(n + 1);
    b[0] = 4;
    memcpy(b + 1, mp, n);
    put("request", "verify-multipart", b, n + 1);
    b[0] = 4 | 1;
    put("request", "embed-multipart-wrong-names", b, n + 1);
    free(b);
    n = (size_t)snprintf(mp, sizeof mp,
        "--fuzzboundary\r\nContent-Disposition: form-data; name=\"images\"\r\n\r\n");
    memcpy(mp + n, tiny_png, tiny_png_size), n += tiny_png_size;
    n += (size_t)snprintf(mp + n, sizeof mp - n,
        "\r\n--fuzzboundary\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nnot an image"
        "\r\n--fuzzboundary\r\nContent-Disposition: form-data; name=\"policy\"\r\n\r\nall"
        "\r\n--fuzzboundary--\r\n");
    b = malloc(n + 1);
    b[0] = 4 | 2;
    memcpy(b + 1, mp, n);
    put("request", "detect-multipart-batch", b, n + 1);
    free(b);
    snprintf(body, sizeof body,
             "{\"pairs\":[{\"image1\":\"%s\",\"image2\":\"%s\",\"same\":true,\"fold\":0},"
             "{\"image1\":\"%s\",\"image2\":\"%s\",\"same\":false,\"fold\":1}],\"folds\":2}",
             jpg, png, png, exif);
    request("evaluation-inline.json", 3, body);
    request("evaluation-file.json", 3,
            "{\"pairs\":\"pairs.txt\",\"images\":\".\",\"folds\":2,\"pca_dim\":8}");
    request("evaluation-escape.json", 3,
            "{\"pairs\":\"../../etc/passwd\",\"images\":\"/etc\",\"landmarks\":\"x\"}");
    request("evaluation-bad.json", 3, "{\"pairs\":[{\"image1\":1},null,{}],\"folds\":-1}");
    request("detect-multipart-truncated", 4 | 2,
            "--fuzzboundary\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nab");
    free(jpg);
    free(png);
    free(exif);
}

/* ---- model files ---- */

static void model_seeds(void)
{
    struct fv_error err = {0};
    struct fv_graph *g = fv_graph_new();
    float w[2 * 3 * 3 * 1], fc[3 * 8];
    for (int i = 0; i < 18; i++)
        w[i] = 0.1f * (float)(i - 9);
    for (int i = 0; i < 24; i++)
        fc[i] = 0.05f * (float)i - 0.5f;
    int x = fv_graph_add_tensor(g, "input", 4, 4, 1);
    int bw = fv_graph_add_blob(g, "w", (int[]){2, 3, 3, 1}, 4, w);
    int bb = fv_graph_add_blob(g, "b", (int[]){2}, 1, (float[]){0.5f, -0.5f});
    int bs = fv_graph_add_blob(g, "slope", (int[]){2}, 1, (float[]){0.25f, 0.5f});
    int bf = fv_graph_add_blob(g, "fc", (int[]){3, 8}, 2, fc);
    int t1 = fv_graph_add_tensor(g, "conv", 0, 0, 0);
    int t2 = fv_graph_add_tensor(g, "prelu", 0, 0, 0);
    int t3 = fv_graph_add_tensor(g, "embedding", 0, 0, 0);
    struct fv_node n = fv_node_init(FV_OP_CONV2D, "conv");
    n.n_inputs = 1, n.inputs[0] = x, n.output = t1, n.blobs[0] = bw, n.blobs[1] = bb;
    n.kernel_h = n.kernel_w = 3, n.stride_h = n.stride_w = 2, n.padding = FV_PADDING_SAME;
    if (fv_graph_add_node(g, &n, &err) < 0)
        die(err.message);
    n = fv_node_init(FV_OP_PRELU, "prelu");
    n.n_inputs = 1, n.inputs[0] = t1, n.output = t2, n.blobs[0] = bs;
    if (fv_graph_add_node(g, &n, &err) < 0)
        die(err.message);
    n = fv_node_init(FV_OP_FULLY_CONNECTED, "embedding");
    n.n_inputs = 1, n.inputs[0] = t2, n.output = t3, n.blobs[0] = bf;
    if (fv_graph_add_node(g, &n, &err) < 0)
        die(err.message);
    fv_graph_set_input(g, x);
    fv_graph_add_output(g, t3);
    struct fv_model_meta *meta = fv_graph_meta(g);
    snprintf(meta->name, sizeof meta->name, "seed");
    snprintf(meta->embedding, sizeof meta->embedding, "embedding");
    meta->template_h = 4, meta->template_w = 4, meta->threshold = 0.3f;
    if (fv_graph_validate(g, &err))
        die(err.message);
    uint8_t *buf;
    size_t size;
    if (fv_model_file_write(g, &buf, &size, &err))
        die(err.message);
    struct fv_model *m = NULL;
    if (fv_model_load_memory(buf, size, &m, &err))
        die(err.message);
    fv_model_free(m);
    put("model_file", "tiny.fvm", buf, size);
    put_truncated("model_file", "tiny.fvm", buf, size);
    put("model_file", "header-only", buf, 16);
    free(buf);
    fv_graph_free(g);
}

/* ---- PCA ---- */

static void pca_seeds(void)
{
    struct fv_error err = {0};
    float x[6 * 4];
    for (int i = 0; i < 24; i++)
        x[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
    for (int whiten = 0; whiten < 2; whiten++) {
        struct fv_pca_params p = fv_pca_default_params();
        p.k = 2, p.whiten = whiten;
        struct fv_pca *pca = NULL;
        if (fv_pca_fit(x, 6, 4, &p, &pca, &err))
            die(err.message);
        char path[1024];
        snprintf(path, sizeof path, "%s/tmp.fvpca", out_dir);
        if (fv_pca_save(pca, path, &err))
            die(err.message);
        fv_pca_free(pca);
        FILE *f = fopen(path, "rb");
        static uint8_t buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        remove(path);
        put("pca", whiten ? "d4-k2-whitened.fvpca" : "d4-k2.fvpca", buf, n);
        if (!whiten)
            put_truncated("pca", "d4-k2.fvpca", buf, n);
    }
}

/* ---- pairs ---- */

static void pairs_seeds(void)
{
    put_str("pairs", "lfw-view2",
            "2\t2\nAaron\t1\t2\nBob_Smith\t1\t3\nAaron\t1\tBob_Smith\t2\nCarla\t4\tDan\t1\n"
            "Eve\t2\t3\nFrank\t1\t2\nEve\t1\tFrank\t3\nGus\t1\tAaron\t2\n");
    put_str("pairs", "folds", "FOLDS 2\r\nA 1 2\r\nB 1 C 2\r\n\r\nD 3 4\r\nE 1 F 1\r\n");
    put_str("pairs", "no-header", "Zico 1 2\nZico 1 Zoe 9\n");
    put_str("pairs", "hostile-names", "1 1\n../etc 1 2\nA\x01 1 B 2\n");
    put_str("pairs", "repeat-image", "A 1 1\n");
    put_str("pairs", "huge-numbers", "99999999999999999999 1\nA 99999 100000\n");
}

int main(int argc, char **argv)
{
    if (argc != 2)
        die("usage: make_seeds OUT_DIR");
    out_dir = argv[1];
    mkdir(out_dir, 0755);
    image_seeds();
    base64_seeds();
    multipart_seeds();
    request_seeds();
    model_seeds();
    pca_seeds();
    pairs_seeds();
    free(tiny_jpeg);
    free(tiny_png);
    free(exif_jpeg);
    return 0;
}
