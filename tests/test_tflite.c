/* test_tflite.c - the FlatBuffers reader and the TFLite importer: the four
 * shipped models import to the expected graphs; hostile buffers are refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/flatbuf.h"
#include "model/graph.h"
#include "model/tflite.h"

#define MODEL_DIR "models/tflite/"

/* ------------------------------------------------------------ helpers */

static uint8_t *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(n > 0 ? (size_t)n : 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return data;
}

/* The model file's bytes, or skips the test when `make models` has not run. */
static uint8_t *load_model(const char *name, size_t *size)
{
    char path[256];
    snprintf(path, sizeof path, MODEL_DIR "%s", name);
    uint8_t *data = read_all(path, size);
    if (!data)
        cr_skip_test("%s is absent (run `make models`)", path);
    return data;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static void histogram(struct fv_graph *g, int hist[FV_OP_COUNT])
{
    memset(hist, 0, sizeof(int) * FV_OP_COUNT);
    for (int i = 0; i < fv_graph_node_count(g); i++)
        hist[fv_graph_node(g, i)->op]++;
}

static void expect_output(struct fv_graph *g, int i, const char *name, int h, int w, int c)
{
    cr_assert_gt(fv_graph_output_count(g), i);
    struct fv_tensor_info *t = fv_graph_tensor(g, fv_graph_output(g, i));
    cr_expect_str_eq(t->name, name);
    cr_expect(t->h == h && t->w == w && t->c == c, "output %s is %dx%dx%d, expected %dx%dx%d",
              name, t->h, t->w, t->c, h, w, c);
}

/* Imports name and checks the histogram (counts in enum order), input and size. */
static struct fv_graph *import_checked(const char *name, const int want[FV_OP_COUNT], int in_h,
                                       int in_w, const char *input_name)
{
    size_t size;
    uint8_t *data = load_model(name, &size);
    struct fv_graph *g = NULL;
    struct fv_error err = {0};
    enum fv_status st = fv_tflite_import(data, size, &g, &err);
    free(data);
    cr_assert_eq(st, FV_OK, "%s: %s", name, err.message);
    int hist[FV_OP_COUNT];
    histogram(g, hist);
    for (int op = 0; op < FV_OP_COUNT; op++)
        cr_expect_eq(hist[op], want[op], "%s: %d %s nodes, expected %d", name, hist[op],
                     fv_op_name(op), want[op]);
    struct fv_model_meta *meta = fv_graph_meta(g);
    cr_expect(meta->input_h == in_h && meta->input_w == in_w && meta->input_c == 3,
              "%s: input %dx%dx%d", name, meta->input_h, meta->input_w, meta->input_c);
    cr_expect_str_eq(fv_graph_tensor(g, fv_graph_input(g))->name, input_name);
    cr_expect_float_eq(meta->pixel_mean, 127.5f, 1e-6);
    cr_expect_float_eq(meta->pixel_scale, 0.0078125f, 1e-9);
    cr_expect_eq(meta->transpose_input, 0);
    cr_expect_str_eq(meta->embedding, "");
    return g;
}

/* ------------------------------------------------------------ real models */

Test(tflite_models, pnet)
{
    int want[FV_OP_COUNT] = {0};
    want[FV_OP_CONV2D] = 5, want[FV_OP_PRELU] = 3, want[FV_OP_MAX_POOL2D] = 1;
    want[FV_OP_SOFTMAX] = 1;
    struct fv_graph *g = import_checked("pnet.tflite", want, 1280, 960, "pnet/input");
    cr_assert_eq(fv_graph_output_count(g), 2);
    expect_output(g, 0, "pnet/prob1", 635, 475, 2);
    expect_output(g, 1, "pnet/conv4-2/BiasAdd", 635, 475, 4);
    /* the first PReLU's slope is alpha itself */
    int t = fv_graph_find_tensor(g, "pnet/PReLU1/add");
    cr_assert_geq(t, 0);
    for (int i = 0; i < fv_graph_node_count(g); i++) {
        struct fv_node *n = fv_graph_node(g, i);
        if (n->output == t) {
            struct fv_blob *b = fv_graph_blob(g, n->blobs[0]);
            cr_expect_eq(b->count, 10);
            cr_expect_float_eq(b->data[0], -0.625406f, 1e-5);
        }
        if (n->op == FV_OP_MAX_POOL2D)
            cr_expect(n->kernel_h == 2 && n->stride_h == 2 && n->padding == FV_PADDING_SAME);
    }
    fv_graph_free(g);
}

Test(tflite_models, rnet)
{
    int want[FV_OP_COUNT] = {0};
    want[FV_OP_CONV2D] = 3, want[FV_OP_PRELU] = 4, want[FV_OP_MAX_POOL2D] = 2;
    want[FV_OP_FULLY_CONNECTED] = 3, want[FV_OP_SOFTMAX] = 1;
    struct fv_graph *g = import_checked("rnet.tflite", want, 24, 24, "rnet/input");
    cr_assert_eq(fv_graph_output_count(g), 2);
    expect_output(g, 0, "rnet/prob1", 1, 1, 2);
    expect_output(g, 1, "rnet/conv5-2/conv5-2", 1, 1, 4);
    fv_graph_free(g);
}

Test(tflite_models, onet)
{
    int want[FV_OP_COUNT] = {0};
    want[FV_OP_CONV2D] = 4, want[FV_OP_PRELU] = 5, want[FV_OP_MAX_POOL2D] = 3;
    want[FV_OP_FULLY_CONNECTED] = 4, want[FV_OP_SOFTMAX] = 1;
    struct fv_graph *g = import_checked("onet.tflite", want, 48, 48, "onet/input");
    cr_assert_eq(fv_graph_output_count(g), 3);
    expect_output(g, 0, "onet/prob1", 1, 1, 2);
    expect_output(g, 1, "onet/conv6-2/conv6-2", 1, 1, 4);
    expect_output(g, 2, "onet/conv6-3/conv6-3", 1, 1, 10);
    fv_graph_free(g);
}

Test(tflite_models, mobilefacenet)
{
    int want[FV_OP_COUNT] = {0};
    want[FV_OP_CONV2D] = 35, want[FV_OP_DEPTHWISE_CONV2D] = 17, want[FV_OP_PRELU] = 33;
    want[FV_OP_ADD] = 12, want[FV_OP_RESHAPE] = 1;
    struct fv_graph *g = import_checked("MobileFaceNet.tflite", want, 112, 112, "input");
    cr_assert_eq(fv_graph_output_count(g), 1);
    expect_output(g, 0, "embeddings", 1, 1, 192);
    int t = fv_graph_find_tensor(g, "MobileFaceNet/Logits/LinearConv1x1/BatchNorm/FusedBatchNorm");
    cr_assert_geq(t, 0);
    struct fv_tensor_info *info = fv_graph_tensor(g, t);
    cr_expect(info->h == 1 && info->w == 1 && info->c == 192);
    for (int i = 0; i < fv_graph_node_count(g); i++) {
        struct fv_node *n = fv_graph_node(g, i);
        if (n->op == FV_OP_DEPTHWISE_CONV2D) {
            struct fv_blob *b = fv_graph_blob(g, n->blobs[0]);
            cr_expect_eq(b->rank, 3, "depthwise filter '%s' has rank %d", b->name, b->rank);
        }
        if (n->op == FV_OP_ADD)
            cr_expect_eq(n->n_inputs, 2, "residual add '%s'", n->name);
    }
    fv_graph_free(g);
}

Test(tflite_models, import_file_names_the_file)
{
    struct fv_graph *g = (struct fv_graph *)1;
    struct fv_error err = {0};
    cr_assert_eq(fv_tflite_import_file("/nonexistent/x.tflite", &g, &err), FV_ERR_IO);
    cr_expect_null(g);
    cr_expect(strstr(err.message, "/nonexistent/x.tflite") != NULL, "%s", err.message);

    size_t size;
    free(load_model("rnet.tflite", &size));
    cr_assert_eq(fv_tflite_import_file(MODEL_DIR "rnet.tflite", &g, &err), FV_OK, "%s",
                 err.message);
    fv_graph_free(g);
}

/* ------------------------------------------------------------ hostile copies of a real file */

static enum fv_status import_bytes(const uint8_t *data, size_t size, struct fv_error *err)
{
    struct fv_graph *g = NULL;
    enum fv_status st = fv_tflite_import(data, size, &g, err);
    if (st == FV_OK)
        cr_assert_not_null(g);
    else
        cr_assert_null(g);
    fv_graph_free(g);
    return st;
}

Test(tflite_hostile, empty_and_tiny)
{
    struct fv_error err = {0};
    uint8_t byte = 0;
    cr_expect_eq(import_bytes(NULL, 0, &err), FV_ERR_FORMAT);
    cr_expect_eq(import_bytes(&byte, 0, &err), FV_ERR_FORMAT);
    cr_expect_eq(import_bytes(&byte, 1, &err), FV_ERR_FORMAT);
    uint8_t header[8] = {8, 0, 0, 0, 'T', 'F', 'L', '3'};
    cr_expect_eq(import_bytes(header, sizeof header, &err), FV_ERR_FORMAT, "%s", err.message);
}

Test(tflite_hostile, wrong_identifier)
{
    size_t size;
    uint8_t *data = load_model("pnet.tflite", &size);
    struct fv_error err = {0};
    memcpy(data + 4, "TFL2", 4);
    cr_expect_eq(import_bytes(data, size, &err), FV_ERR_FORMAT);
    cr_expect(strstr(err.message, "TFL2") != NULL, "%s", err.message);
    free(data);
}

Test(tflite_hostile, root_offset_past_end)
{
    size_t size;
    uint8_t *data = load_model("pnet.tflite", &size);
    struct fv_error err = {0};
    put_u32(data, (uint32_t)size + 8);
    cr_expect_eq(import_bytes(data, size, &err), FV_ERR_FORMAT);
    put_u32(data, 0xfffffffcu);
    cr_expect_eq(import_bytes(data, size, &err), FV_ERR_FORMAT, "%s", err.message);
    free(data);
}

Test(tflite_hostile, vtable_offset_past_end)
{
    size_t size;
    uint8_t *data = load_model("pnet.tflite", &size);
    struct fv_error err = {0};
    uint32_t root = data[0] | data[1] << 8 | data[2] << 16 | (uint32_t)data[3] << 24;
    /* vtable = table - soffset: a large negative soffset points past the end */
    put_u32(data + root, (uint32_t)-(int32_t)(size + 64));
    cr_expect_eq(import_bytes(data, size, &err), FV_ERR_FORMAT);
    cr_expect(strstr(err.message, "vtable") != NULL, "%s", err.message);
    put_u32(data + root, (uint32_t)(root + 4)); /* before the start */
    cr_expect_eq(import_bytes(data, size, &err), FV_ERR_FORMAT, "%s", err.message);
    free(data);
}

/* The subgraphs vector of a real file, located through the reader itself. */
static uint32_t subgraphs_vector_pos(const uint8_t *data, size_t size)
{
    struct fv_fb fb;
    struct fv_fb_table root;
    struct fv_fb_vector v;
    cr_assert_eq(fv_fb_init(&fb, data, size, NULL), FV_OK);
    cr_assert_eq(fv_fb_root(&fb, &root, NULL), FV_OK);
    cr_assert_eq(fv_fb_vector(&root, 2, FV_FB_OFFSET_SIZE, &v, NULL), FV_OK);
    return v.pos;
}

Test(tflite_hostile, vector_length_overflow)
{
    size_t size;
    uint8_t *data = load_model("pnet.tflite", &size);
    struct fv_error err = {0};
    uint32_t pos = subgraphs_vector_pos(data, size);
    /* 0x40000000 * 4 wraps to 0 in 32 bits; 0xffffffff * 4 overflows too */
    const uint32_t counts[] = {0x40000000u, 0xffffffffu, 0x3fffffffu, (uint32_t)size};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        put_u32(data + pos - 4, counts[i]);
        cr_expect_eq(import_bytes(data, size, &err), FV_ERR_FORMAT, "count %u: %s", counts[i],
                     err.message);
    }
    free(data);
}

Test(tflite_hostile, string_without_terminator)
{
    size_t size;
    uint8_t *data = load_model("pnet.tflite", &size);
    struct fv_error err = {0};
    struct fv_fb fb;
    struct fv_fb_table root, subgraph, tensor;
    struct fv_fb_vector subgraphs, tensors;
    const char *name;
    uint32_t len;
    cr_assert_eq(fv_fb_init(&fb, data, size, NULL), FV_OK);
    cr_assert_eq(fv_fb_root(&fb, &root, NULL), FV_OK);
    cr_assert_eq(fv_fb_vector(&root, 2, 4, &subgraphs, NULL), FV_OK);
    cr_assert_eq(fv_fb_vector_table(&subgraphs, 0, &subgraph, NULL), FV_OK);
    cr_assert_eq(fv_fb_vector(&subgraph, 0, 4, &tensors, NULL), FV_OK);
    cr_assert_eq(fv_fb_vector_table(&tensors, 5, &tensor, NULL), FV_OK);
    cr_assert_eq(fv_fb_string(&tensor, 3, &name, &len, NULL), FV_OK);
    cr_assert_str_eq(name, "pnet/PReLU1/Neg_1");
    data[(const uint8_t *)name - data + len] = 'x';
    cr_expect_eq(import_bytes(data, size, &err), FV_ERR_FORMAT);
    cr_expect(strstr(err.message, "not terminated") != NULL, "%s", err.message);
    /* a length that runs to the very end */
    put_u32((uint8_t *)data + ((const uint8_t *)name - data) - 4,
            (uint32_t)(size - (size_t)((const uint8_t *)name - data)));
    cr_expect_eq(import_bytes(data, size, &err), FV_ERR_FORMAT, "%s", err.message);
    free(data);
}

Test(tflite_hostile, truncated_copies, .timeout = 120)
{
    const char *names[] = {"pnet.tflite", "rnet.tflite"};
    for (int m = 0; m < 2; m++) {
        size_t size;
        uint8_t *data = load_model(names[m], &size);
        size_t step = size / 1500 + 1;
        for (size_t len = 0; len < size; len += (len < 512 || size - len < 512) ? 1 : step) {
            /* an exact-size copy so that ASan sees any read past the end */
            uint8_t *copy = malloc(len ? len : 1);
            memcpy(copy, data, len);
            struct fv_error err = {0};
            enum fv_status st = import_bytes(copy, len, &err);
            /* The converter leaves one unreferenced 8-byte table at the very
             * end, so only cutting into that may still import. */
            if (st == FV_OK)
                cr_expect_geq(len, size - 8, "%s truncated to %zu bytes was accepted", names[m],
                              len);
            else
                cr_expect(err.message[0] != 0, "%s truncated to %zu: no message", names[m], len);
            free(copy);
        }
        free(data);
    }
}

/* Random byte corruption must never crash: any status is fine. */
Test(tflite_hostile, corrupted_bytes, .timeout = 120)
{
    size_t size;
    uint8_t *data = load_model("rnet.tflite", &size);
    uint8_t *copy = malloc(size);
    uint32_t state = 12345;
    int accepted = 0;
    for (int iter = 0; iter < 600; iter++) {
        memcpy(copy, data, size);
        for (int k = 0; k < 1 + iter % 4; k++) {
            state = state * 1664525u + 1013904223u;
            /* aim mostly at the structure (tables and vectors lie in the first
             * and last few KiB; the weight blobs fill the middle) */
            size_t span = size < 8192 ? size : 8192;
            size_t pos = (state >> 8) % span;
            if (iter % 3 == 1)
                pos = size - 1 - pos;
            else if (iter % 3 == 2)
                pos = (state >> 8) % size;
            state = state * 1664525u + 1013904223u;
            copy[pos] = (uint8_t)(state >> 24);
        }
        struct fv_error err = {0};
        accepted += import_bytes(copy, size, &err) == FV_OK;
    }
    cr_log_info("%d of 600 corrupted copies still imported", accepted);
    free(copy);
    free(data);
}

/* ------------------------------------------------------------ a small FlatBuffer writer */

/* Writes front to back: every table's vtable precedes it and every object an
 * offset refers to comes after the offset, so all offsets are positive. */
struct fbb {
    uint8_t buf[1 << 16];
    size_t len;
};

static void fbb_pad(struct fbb *b, size_t align, size_t extra)
{
    while ((b->len + extra) % align)
        b->buf[b->len++] = 0;
}

static size_t fbb_put(struct fbb *b, const void *p, size_t n)
{
    cr_assert_lt(b->len + n, sizeof b->buf);
    size_t pos = b->len;
    memcpy(b->buf + pos, p, n);
    b->len += n;
    return pos;
}

static size_t fbb_u32(struct fbb *b, uint32_t v)
{
    uint8_t bytes[4];
    put_u32(bytes, v);
    return fbb_put(b, bytes, 4);
}

static void fbb_link(struct fbb *b, size_t slot, size_t target)
{
    put_u32(b->buf + slot, (uint32_t)(target - slot));
}

struct field {
    int id;
    int size;       /* 1 or 4; 0 = an offset, its slot filled in by fbb_table */
    uint32_t value;
    size_t slot;
};

static size_t fbb_table(struct fbb *b, struct field *f, int n)
{
    int max_id = -1;
    for (int i = 0; i < n; i++)
        max_id = f[i].id > max_id ? f[i].id : max_id;
    fbb_pad(b, 4, 0);
    size_t vtable = b->len;
    uint16_t vsize = (uint16_t)(4 + 2 * (max_id + 1));
    b->len += vsize;
    fbb_pad(b, 4, 0);
    size_t table = fbb_u32(b, 0); /* soffset, written below */
    uint16_t entries[64] = {0};
    for (int pass = 0; pass < 2; pass++) /* 4-byte fields first, then bytes */
        for (int i = 0; i < n; i++) {
            int size = f[i].size ? f[i].size : 4;
            if ((size == 4) != (pass == 0))
                continue;
            entries[f[i].id] = (uint16_t)(b->len - table);
            if (size == 1) {
                uint8_t v = (uint8_t)f[i].value;
                fbb_put(b, &v, 1);
            } else {
                f[i].slot = fbb_u32(b, f[i].value);
            }
        }
    uint16_t inline_size = (uint16_t)(b->len - table);
    uint8_t *v = b->buf + vtable;
    v[0] = (uint8_t)vsize, v[1] = (uint8_t)(vsize >> 8);
    v[2] = (uint8_t)inline_size, v[3] = (uint8_t)(inline_size >> 8);
    for (int i = 0; i <= max_id; i++)
        v[4 + 2 * i] = (uint8_t)entries[i], v[5 + 2 * i] = (uint8_t)(entries[i] >> 8);
    put_u32(b->buf + table, (uint32_t)(table - vtable));
    return table;
}

static size_t fbb_vector_i32(struct fbb *b, const int32_t *v, int n)
{
    fbb_pad(b, 4, 0);
    size_t pos = fbb_u32(b, (uint32_t)n);
    for (int i = 0; i < n; i++)
        fbb_u32(b, (uint32_t)v[i]);
    return pos;
}

/* A vector of n offsets, returned with its element slots zero. */
static size_t fbb_vector_slots(struct fbb *b, int n)
{
    fbb_pad(b, 4, 0);
    size_t pos = fbb_u32(b, (uint32_t)n);
    for (int i = 0; i < n; i++)
        fbb_u32(b, 0);
    return pos;
}

static size_t fbb_string(struct fbb *b, const char *s)
{
    fbb_pad(b, 4, 0);
    size_t pos = fbb_u32(b, (uint32_t)strlen(s));
    fbb_put(b, s, strlen(s) + 1);
    return pos;
}

/* ------------------------------------------------------------ synthetic TFLite models */

enum { T_FLOAT32 = 0, T_INT32 = 2, T_INT8 = 9 };

struct t_tensor {
    const char *name;
    int type;
    int rank;
    int dims[6];
    int n_values;         /* constant data: n_values 4-byte words from values */
    uint32_t values[64];
};

struct t_op {
    int code;
    int n_in;
    int in[3];
    int out;
    int options_tag;
    int n_options;
    struct field options[6];
};

struct t_model {
    int version;
    int n_tensors;
    struct t_tensor t[24];
    int n_ops;
    struct t_op op[24];
    int input;
    int n_outputs;
    int outputs[4];
};

static uint32_t f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static struct fbb *build(const struct t_model *m)
{
    struct fbb *b = calloc(1, sizeof *b);
    size_t root_slot = fbb_u32(b, 0);
    fbb_put(b, "TFL3", 4);
    struct field model[] = {{0, 4, (uint32_t)m->version, 0}, {1, 0, 0, 0}, {2, 0, 0, 0},
                            {4, 0, 0, 0}};
    size_t model_table = fbb_table(b, model, 4);
    fbb_link(b, root_slot, model_table);

    size_t codes = fbb_vector_slots(b, m->n_ops);
    fbb_link(b, model[1].slot, codes);
    for (int i = 0; i < m->n_ops; i++) {
        int code = m->op[i].code;
        struct field f[] = {{0, 1, (uint32_t)(code < 127 ? code : 127), 0},
                            {3, 4, (uint32_t)code, 0}, {2, 4, 1, 0}};
        fbb_link(b, codes + 4 + 4 * (size_t)i, fbb_table(b, f, 3));
    }

    size_t subgraphs = fbb_vector_slots(b, 1);
    fbb_link(b, model[2].slot, subgraphs);
    struct field sg[] = {{0, 0, 0, 0}, {1, 0, 0, 0}, {2, 0, 0, 0}, {3, 0, 0, 0}};
    fbb_link(b, subgraphs + 4, fbb_table(b, sg, 4));

    size_t tensors = fbb_vector_slots(b, m->n_tensors);
    fbb_link(b, sg[0].slot, tensors);
    for (int i = 0; i < m->n_tensors; i++) {
        const struct t_tensor *t = &m->t[i];
        struct field f[] = {{0, 0, 0, 0}, {1, 1, (uint32_t)t->type, 0},
                            {2, 4, t->n_values ? (uint32_t)i + 1 : 0, 0}, {3, 0, 0, 0}};
        fbb_link(b, tensors + 4 + 4 * (size_t)i, fbb_table(b, f, 4));
        fbb_link(b, f[0].slot, fbb_vector_i32(b, t->dims, t->rank));
        fbb_link(b, f[3].slot, fbb_string(b, t->name));
    }
    fbb_link(b, sg[1].slot, fbb_vector_i32(b, &m->input, 1));
    fbb_link(b, sg[2].slot, fbb_vector_i32(b, m->outputs, m->n_outputs));

    size_t ops = fbb_vector_slots(b, m->n_ops);
    fbb_link(b, sg[3].slot, ops);
    for (int i = 0; i < m->n_ops; i++) {
        const struct t_op *op = &m->op[i];
        struct field f[] = {{0, 4, (uint32_t)i, 0}, {1, 0, 0, 0}, {2, 0, 0, 0},
                            {3, 1, (uint32_t)op->options_tag, 0}, {4, 0, 0, 0}};
        fbb_link(b, ops + 4 + 4 * (size_t)i, fbb_table(b, f, op->options_tag ? 5 : 4));
        fbb_link(b, f[1].slot, fbb_vector_i32(b, op->in, op->n_in));
        fbb_link(b, f[2].slot, fbb_vector_i32(b, &op->out, 1));
        if (op->options_tag) {
            struct field opts[6];
            memcpy(opts, op->options, sizeof opts);
            fbb_link(b, f[4].slot, fbb_table(b, opts, op->n_options));
        }
    }

    size_t buffers = fbb_vector_slots(b, m->n_tensors + 1);
    fbb_link(b, model[3].slot, buffers);
    fbb_link(b, buffers + 4, fbb_table(b, NULL, 0));
    for (int i = 0; i < m->n_tensors; i++) {
        const struct t_tensor *t = &m->t[i];
        struct field f[] = {{0, 0, 0, 0}};
        size_t table = fbb_table(b, f, t->n_values ? 1 : 0);
        fbb_link(b, buffers + 8 + 4 * (size_t)i, table);
        if (t->n_values) {
            fbb_pad(b, 16, 4);
            size_t data = fbb_u32(b, 4 * (uint32_t)t->n_values);
            for (int k = 0; k < t->n_values; k++)
                fbb_u32(b, t->values[k]);
            fbb_link(b, f[0].slot, data);
        }
    }
    fbb_pad(b, 16, 0);
    return b;
}

static int add_tensor(struct t_model *m, const char *name, int rank, int d0, int d1, int d2,
                      int d3)
{
    struct t_tensor *t = &m->t[m->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->rank = rank;
    t->dims[0] = d0, t->dims[1] = d1, t->dims[2] = d2, t->dims[3] = d3;
    return m->n_tensors++;
}

static int add_constant(struct t_model *m, const char *name, int rank, int d0, int d1, int d2,
                        int d3, int n, float value)
{
    int i = add_tensor(m, name, rank, d0, d1, d2, d3);
    m->t[i].n_values = n;
    for (int k = 0; k < n; k++)
        m->t[i].values[k] = f32(value + 0.125f * (float)k);
    return i;
}

static struct t_op *add_op(struct t_model *m, int code, int out, int n_in, int a, int b, int c)
{
    struct t_op *op = &m->op[m->n_ops++];
    memset(op, 0, sizeof *op);
    op->code = code;
    op->out = out;
    op->n_in = n_in;
    op->in[0] = a, op->in[1] = b, op->in[2] = c;
    return op;
}

static void set_option(struct t_op *op, int tag, int id, int size, uint32_t value)
{
    op->options_tag = tag;
    op->options[op->n_options++] = (struct field){id, size, value, 0};
}

/* Tensor indices of the reference model, for tests that modify it. */
enum { X, W, B, CONV, A, NEG1, R, D, ALPHA, MINUS1, Q, P, AXIS, MX, S, E, Z, PROB };

/* input 4x4x2 -> 1x1 conv (3) -> MTCNN PReLU (second negation as MUL by -1)
 * -> softmax over channels. */
static void reference_model(struct t_model *m)
{
    memset(m, 0, sizeof *m);
    m->version = 3;
    add_tensor(m, "input", 4, 1, 4, 4, 2);
    add_constant(m, "conv/w", 4, 3, 1, 1, 2, 6, -0.5f);
    add_constant(m, "conv/b", 1, 3, 0, 0, 0, 3, 0.25f);
    add_tensor(m, "conv", 4, 1, 4, 4, 3);
    add_tensor(m, "prelu/relu", 4, 1, 4, 4, 3);
    add_tensor(m, "prelu/neg", 4, 1, 4, 4, 3);
    add_tensor(m, "prelu/relu_1", 4, 1, 4, 4, 3);
    add_tensor(m, "prelu/neg_1", 4, 1, 4, 4, 3);
    add_constant(m, "prelu/alpha", 1, 3, 0, 0, 0, 3, 0.25f);
    add_constant(m, "prelu/minus_one", 0, 0, 0, 0, 0, 1, -1.0f);
    add_tensor(m, "prelu/mul", 4, 1, 4, 4, 3);
    add_tensor(m, "prelu/add", 4, 1, 4, 4, 3);
    int axis = add_tensor(m, "axis", 0, 0, 0, 0, 0);
    m->t[axis].type = T_INT32, m->t[axis].n_values = 1, m->t[axis].values[0] = 3;
    add_tensor(m, "max", 4, 1, 4, 4, 1);
    add_tensor(m, "sub", 4, 1, 4, 4, 3);
    add_tensor(m, "exp", 4, 1, 4, 4, 3);
    add_tensor(m, "sum", 4, 1, 4, 4, 1);
    add_tensor(m, "prob", 4, 1, 4, 4, 3);

    struct t_op *conv = add_op(m, 3, CONV, 3, X, W, B);
    set_option(conv, 1, 0, 1, 1); /* VALID */
    set_option(conv, 1, 1, 4, 1);
    set_option(conv, 1, 2, 4, 1);
    add_op(m, 19, A, 1, CONV, 0, 0);
    add_op(m, 59, NEG1, 1, CONV, 0, 0);
    add_op(m, 19, R, 1, NEG1, 0, 0);
    set_option(add_op(m, 18, D, 2, R, MINUS1, 0), 21, 0, 1, 0);
    set_option(add_op(m, 18, Q, 2, ALPHA, D, 0), 21, 0, 1, 0);
    set_option(add_op(m, 0, P, 2, A, Q, 0), 11, 0, 1, 0);
    set_option(add_op(m, 82, MX, 2, P, AXIS, 0), 27, 0, 1, 1);
    set_option(add_op(m, 41, S, 2, P, MX, 0), 28, 0, 1, 0);
    add_op(m, 47, E, 1, S, 0, 0);
    set_option(add_op(m, 74, Z, 2, E, AXIS, 0), 27, 0, 1, 1);
    set_option(add_op(m, 42, PROB, 2, E, Z, 0), 29, 0, 1, 0);
    m->input = X;
    m->n_outputs = 1;
    m->outputs[0] = PROB;
}

static enum fv_status import_model(const struct t_model *m, struct fv_graph **g,
                                   struct fv_error *err)
{
    struct fbb *b = build(m);
    *g = NULL;
    enum fv_status st = fv_tflite_import(b->buf, b->len, g, err);
    free(b);
    return st;
}

/* Imports m and expects failure with status and a message containing text. */
static void expect_refused(const struct t_model *m, enum fv_status status, const char *text)
{
    struct fv_graph *g;
    struct fv_error err = {0};
    enum fv_status st = import_model(m, &g, &err);
    cr_expect_eq(st, status, "status %d (%s), expected %d", st, err.message, status);
    cr_expect(strstr(err.message, text) != NULL, "message '%s' lacks '%s'", err.message, text);
    cr_expect_null(g);
    fv_graph_free(g);
}

Test(tflite_synthetic, reference_model_fuses)
{
    struct t_model m;
    reference_model(&m);
    struct fv_graph *g;
    struct fv_error err = {0};
    cr_assert_eq(import_model(&m, &g, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_graph_node_count(g), 3);
    cr_expect_eq(fv_graph_node(g, 0)->op, FV_OP_CONV2D);
    cr_expect_eq(fv_graph_node(g, 1)->op, FV_OP_PRELU);
    cr_expect_eq(fv_graph_node(g, 2)->op, FV_OP_SOFTMAX);
    struct fv_blob *slope = fv_graph_blob(g, fv_graph_node(g, 1)->blobs[0]);
    cr_expect_eq(slope->count, 3);
    cr_expect_float_eq(slope->data[2], 0.5f, 1e-6);
    expect_output(g, 0, "prob", 4, 4, 3);
    fv_graph_free(g);
}

/* A fully convolutional net exported with a 1x1 (or -1) spatial input is
 * imported at 12x12 with every other shape inferred. */
Test(tflite_synthetic, dynamic_input_uses_12x12)
{
    struct t_model m;
    reference_model(&m);
    m.t[X].dims[1] = m.t[X].dims[2] = 1;
    struct fv_graph *g;
    struct fv_error err = {0};
    cr_assert_eq(import_model(&m, &g, &err), FV_OK, "%s", err.message);
    struct fv_model_meta *meta = fv_graph_meta(g);
    cr_expect(meta->input_h == 12 && meta->input_w == 12 && meta->input_c == 2);
    expect_output(g, 0, "prob", 12, 12, 3);
    fv_graph_free(g);
}

Test(tflite_synthetic, mobilefacenet_prelu_slope_is_twice_m)
{
    struct t_model m;
    reference_model(&m);
    /* conv -> relu(x) + m * (x - |x|): reuse tensors NEG1 as |x|, R as x - |x| */
    m.n_ops = 1;
    m.t[NEG1].name = "abs";
    m.t[R].name = "sub";
    add_op(&m, 19, A, 1, CONV, 0, 0);
    add_op(&m, 101, NEG1, 1, CONV, 0, 0);
    set_option(add_op(&m, 41, R, 2, CONV, NEG1, 0), 28, 0, 1, 0);
    set_option(add_op(&m, 18, Q, 2, R, ALPHA, 0), 21, 0, 1, 0);
    add_op(&m, 0, P, 2, Q, A, 0);
    m.outputs[0] = P;
    struct fv_graph *g;
    struct fv_error err = {0};
    cr_assert_eq(import_model(&m, &g, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_graph_node_count(g), 2);
    cr_expect_eq(fv_graph_node(g, 1)->op, FV_OP_PRELU);
    struct fv_blob *slope = fv_graph_blob(g, fv_graph_node(g, 1)->blobs[0]);
    cr_expect_float_eq(slope->data[0], 0.5f, 1e-6);
    cr_expect_float_eq(slope->data[1], 0.75f, 1e-6);
    fv_graph_free(g);
}

Test(tflite_synthetic, negation_by_other_constant_is_not_fused)
{
    struct t_model m;
    reference_model(&m);
    m.t[MINUS1].values[0] = f32(-0.5f);
    expect_refused(&m, FV_ERR_UNSUPPORTED, "unsupported TFLite op NEG producing tensor 'prelu/neg'");
}

Test(tflite_synthetic, intermediate_with_another_reader_is_not_fused)
{
    struct t_model m;
    reference_model(&m);
    m.outputs[m.n_outputs++] = R;
    expect_refused(&m, FV_ERR_UNSUPPORTED, "NEG");
}

Test(tflite_synthetic, softmax_over_other_axis_is_not_fused)
{
    struct t_model m;
    reference_model(&m);
    m.t[AXIS].values[0] = 1;
    expect_refused(&m, FV_ERR_UNSUPPORTED, "unsupported TFLite op REDUCE_MAX producing tensor 'max'");
}

Test(tflite_synthetic, leftover_exp_is_named)
{
    struct t_model m;
    reference_model(&m);
    m.n_ops = 7 + 1; /* stop after the MTCNN PReLU, then a lone EXP */
    m.op[7] = (struct t_op){.code = 47, .n_in = 1, .in = {P}, .out = E};
    m.outputs[0] = E;
    expect_refused(&m, FV_ERR_UNSUPPORTED, "unsupported TFLite op EXP producing tensor 'exp'");
}

Test(tflite_synthetic, unsupported_tensor_type)
{
    struct t_model m;
    reference_model(&m);
    m.t[X].type = T_INT8;
    expect_refused(&m, FV_ERR_UNSUPPORTED, "tensor 'input' has type INT8");
    reference_model(&m);
    m.t[W].type = T_INT8;
    expect_refused(&m, FV_ERR_UNSUPPORTED, "tensor 'conv/w' has type INT8");
}

Test(tflite_synthetic, buffer_size_must_match_shape)
{
    struct t_model m;
    reference_model(&m);
    m.t[W].n_values = 5;
    expect_refused(&m, FV_ERR_FORMAT, "conv/w");
}

Test(tflite_synthetic, bad_shapes)
{
    struct t_model m;
    reference_model(&m);
    m.t[CONV].dims[2] = 0;
    expect_refused(&m, FV_ERR_FORMAT, "dimension");
    reference_model(&m);
    m.t[CONV].rank = 5;
    expect_refused(&m, FV_ERR_UNSUPPORTED, "rank 5");
    reference_model(&m);
    m.t[CONV].dims[1] = 1 << 20, m.t[CONV].dims[2] = 1 << 20;
    expect_refused(&m, FV_ERR_TOO_LARGE, "conv");
    reference_model(&m);
    m.t[CONV].dims[1] = 5; /* declared shape disagrees with inference */
    expect_refused(&m, FV_ERR_FORMAT, "conv");
}

Test(tflite_synthetic, unknown_op_code_and_version)
{
    struct t_model m;
    reference_model(&m);
    m.op[1].code = 250;
    expect_refused(&m, FV_ERR_UNSUPPORTED, "250");
    reference_model(&m);
    m.version = 2;
    expect_refused(&m, FV_ERR_UNSUPPORTED, "version 2");
}

Test(tflite_synthetic, conv_options)
{
    struct t_model m;
    reference_model(&m);
    set_option(&m.op[0], 1, 4, 4, 2); /* dilation_w_factor */
    expect_refused(&m, FV_ERR_UNSUPPORTED, "dilation");
    reference_model(&m);
    set_option(&m.op[0], 1, 3, 1, 4); /* fused TANH */
    expect_refused(&m, FV_ERR_UNSUPPORTED, "TANH");
    reference_model(&m);
    m.op[0].options_tag = 5; /* Pool2DOptions on a CONV_2D */
    expect_refused(&m, FV_ERR_FORMAT, "Conv2DOptions");
    reference_model(&m);
    m.op[0].options[1].value = 0; /* stride 0 */
    expect_refused(&m, FV_ERR_FORMAT, "stride");
}

Test(tflite_synthetic, depthwise_multiplier)
{
    struct t_model m;
    reference_model(&m);
    /* replace the conv by a depthwise conv [1,1,1,2] -> 2 channels, multiplier 2 */
    m.t[W].dims[0] = 1, m.t[W].dims[3] = 2, m.t[W].n_values = 2;
    m.t[B].dims[0] = 2, m.t[B].n_values = 2;
    m.op[0] = (struct t_op){.code = 4, .n_in = 3, .in = {X, W, B}, .out = CONV};
    set_option(&m.op[0], 2, 1, 4, 1);
    set_option(&m.op[0], 2, 2, 4, 1);
    set_option(&m.op[0], 2, 3, 4, 2);
    m.n_ops = 1;
    m.t[CONV].dims[3] = 2;
    m.outputs[0] = CONV;
    expect_refused(&m, FV_ERR_UNSUPPORTED, "depth multiplier 2");
    m.op[0].options[2].value = 1;
    struct fv_graph *g;
    struct fv_error err = {0};
    cr_assert_eq(import_model(&m, &g, &err), FV_OK, "%s", err.message);
    struct fv_blob *w = fv_graph_blob(g, fv_graph_node(g, 0)->blobs[0]);
    cr_expect(w->rank == 3 && w->shape[0] == 1 && w->shape[1] == 1 && w->shape[2] == 2);
    fv_graph_free(g);
}

Test(tflite_synthetic, bad_indices)
{
    struct t_model m;
    reference_model(&m);
    m.op[1].in[0] = 99;
    expect_refused(&m, FV_ERR_FORMAT, "out of range");
    reference_model(&m);
    m.input = -1;
    expect_refused(&m, FV_ERR_FORMAT, "out of range");
    reference_model(&m);
    m.op[2].out = A; /* written twice */
    expect_refused(&m, FV_ERR_FORMAT, "writes tensor");
}

/* ------------------------------------------------------------ the reader on hand-made buffers */

Test(flatbuf, depth_limit)
{
    struct fbb *b = calloc(1, sizeof *b);
    size_t slot = fbb_u32(b, 0);
    fbb_put(b, "TEST", 4);
    for (int i = 0; i < FV_FB_MAX_DEPTH + 4; i++) {
        struct field f[] = {{0, 0, 0, 0}};
        size_t t = fbb_table(b, f, 1);
        fbb_link(b, slot, t);
        slot = f[0].slot;
    }
    struct field leaf[] = {{1, 4, 7, 0}};
    fbb_link(b, slot, fbb_table(b, leaf, 1));
    fbb_pad(b, 8, 0);

    struct fv_fb fb;
    struct fv_fb_table t, next;
    struct fv_error err = {0};
    cr_assert_eq(fv_fb_init(&fb, b->buf, b->len, &err), FV_OK);
    cr_expect(fv_fb_has_identifier(&fb, "TEST"));
    cr_assert_eq(fv_fb_root(&fb, &t, &err), FV_OK);
    enum fv_status st = FV_OK;
    int depth = 0;
    while (st == FV_OK && t.present) {
        st = fv_fb_table(&t, 0, &next, &err);
        t = next;
        depth++;
    }
    cr_expect_eq(st, FV_ERR_TOO_LARGE, "%s", err.message);
    cr_expect_eq(depth, FV_FB_MAX_DEPTH + 1);
    free(b);
}

Test(flatbuf, fields_defaults_and_bounds)
{
    struct fbb *b = calloc(1, sizeof *b);
    size_t slot = fbb_u32(b, 0);
    fbb_put(b, "TEST", 4);
    struct field f[] = {{0, 4, 0xdeadbeefu, 0}, {2, 1, 0xfe, 0}, {3, 0, 0, 0}, {4, 0, 0, 0}};
    fbb_link(b, slot, fbb_table(b, f, 4));
    fbb_link(b, f[2].slot, fbb_string(b, "hello"));
    int32_t values[3] = {1, -2, 3};
    size_t vec = fbb_vector_i32(b, values, 3);
    fbb_link(b, f[3].slot, vec);
    fbb_pad(b, 8, 0);

    struct fv_fb fb;
    struct fv_fb_table root, sub;
    struct fv_fb_vector v;
    struct fv_error err = {0};
    const char *s;
    uint32_t u, len;
    int8_t i8;
    float x;
    cr_assert_eq(fv_fb_init(&fb, b->buf, b->len, &err), FV_OK);
    cr_assert_eq(fv_fb_root(&fb, &root, &err), FV_OK);
    cr_expect_eq(fv_fb_u32(&root, 0, 5, &u, &err), FV_OK);
    cr_expect_eq(u, 0xdeadbeefu);
    cr_expect_eq(fv_fb_u32(&root, 1, 5, &u, &err), FV_OK); /* absent: default */
    cr_expect_eq(u, 5);
    cr_expect_eq(fv_fb_u32(&root, 40, 6, &u, &err), FV_OK); /* beyond the vtable */
    cr_expect_eq(u, 6);
    cr_expect_eq(fv_fb_i8(&root, 2, 0, &i8, &err), FV_OK);
    cr_expect_eq(i8, -2);
    cr_expect_eq(fv_fb_f32(&root, 1, 1.5f, &x, &err), FV_OK);
    cr_expect_float_eq(x, 1.5f, 0);
    cr_expect_eq(fv_fb_string(&root, 3, &s, &len, &err), FV_OK);
    cr_expect_str_eq(s, "hello");
    cr_expect_eq(len, 5);
    cr_expect_eq(fv_fb_vector(&root, 4, 4, &v, &err), FV_OK);
    cr_expect_eq(v.count, 3);
    cr_expect_eq(fv_fb_vector_i32(&v, 1), -2);
    cr_expect_eq(fv_fb_table(&root, 1, &sub, &err), FV_OK); /* absent table */
    cr_expect_eq(sub.present, 0);

    /* the 1-byte field 2 read as 4 bytes runs past the end of the table */
    cr_expect_eq(fv_fb_u32(&root, 2, 0, &u, &err), FV_ERR_FORMAT);
    /* the string read as a table: its bytes make a nonsense vtable offset */
    cr_expect_neq(fv_fb_table(&root, 3, &sub, &err), FV_OK);
    /* a vector whose length overflows */
    put_u32(b->buf + vec, 0x40000001u);
    cr_expect_eq(fv_fb_vector(&root, 4, 4, &v, &err), FV_ERR_FORMAT);
    cr_expect_eq(v.present, 0);
    /* an offset to a misaligned place */
    put_u32(b->buf + f[3].slot, (uint32_t)(vec + 2 - f[3].slot));
    cr_expect_eq(fv_fb_vector(&root, 4, 4, &v, &err), FV_ERR_FORMAT);
    /* a zero offset */
    put_u32(b->buf + f[3].slot, 0);
    cr_expect_eq(fv_fb_vector(&root, 4, 4, &v, &err), FV_ERR_FORMAT);
    free(b);
}
