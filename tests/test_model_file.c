/* test_model_file.c - model files: round trip, and hostile files rejected cleanly. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/model_file.h"

/* conv 3×3 (2 filters) -> prelu -> fc(3) on a 4×4×1 input. */
static struct fv_graph *small_graph(void)
{
    struct fv_error err = {0};
    struct fv_graph *g = fv_graph_new();
    float w[18], fc[3 * 8], slope[2] = {0.25f, 0.5f};
    for (int i = 0; i < 18; i++)
        w[i] = 0.1f * (float)(i - 9);
    for (int i = 0; i < 24; i++)
        fc[i] = 0.05f * (float)i - 0.5f;
    int x = fv_graph_add_tensor(g, "input", 4, 4, 1);
    int bw = fv_graph_add_blob(g, "w", (int[]){2, 3, 3, 1}, 4, w);
    int bb = fv_graph_add_blob(g, "b", (int[]){2}, 1, (float[]){0.5f, -0.5f});
    int bs = fv_graph_add_blob(g, "slope", (int[]){2}, 1, slope);
    int bf = fv_graph_add_blob(g, "fc", (int[]){3, 8}, 2, fc);
    int t1 = fv_graph_add_tensor(g, "conv", 0, 0, 0);
    int t2 = fv_graph_add_tensor(g, "prelu", 0, 0, 0);
    int t3 = fv_graph_add_tensor(g, "embedding", 0, 0, 0);
    struct fv_node n = fv_node_init(FV_OP_CONV2D, "conv");
    n.n_inputs = 1, n.inputs[0] = x, n.output = t1, n.blobs[0] = bw, n.blobs[1] = bb;
    n.kernel_h = n.kernel_w = 3, n.stride_h = n.stride_w = 2, n.padding = FV_PADDING_SAME;
    fv_graph_add_node(g, &n, &err);
    n = fv_node_init(FV_OP_PRELU, "prelu");
    n.n_inputs = 1, n.inputs[0] = t1, n.output = t2, n.blobs[0] = bs;
    fv_graph_add_node(g, &n, &err);
    n = fv_node_init(FV_OP_FULLY_CONNECTED, "embedding");
    n.n_inputs = 1, n.inputs[0] = t2, n.output = t3, n.blobs[0] = bf;
    fv_graph_add_node(g, &n, &err);
    fv_graph_set_input(g, x);
    fv_graph_add_output(g, t3);
    struct fv_model_meta *meta = fv_graph_meta(g);
    snprintf(meta->name, sizeof meta->name, "small");
    snprintf(meta->embedding, sizeof meta->embedding, "embedding");
    meta->template_h = 4, meta->template_w = 4, meta->threshold = 0.3f;
    cr_assert_eq(fv_graph_validate(g, &err), FV_OK, "%s", err.message);
    return g;
}

static void run(struct fv_model *m, float out[3])
{
    struct fv_error err = {0};
    struct fv_context *ctx = NULL;
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i / 16.0f;
    cr_assert_eq(fv_context_new(m, 1, 0, 0, &ctx, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_context_run(ctx, x, 1, 4, 4, &err), FV_OK, "%s", err.message);
    memcpy(out, fv_context_tensor(ctx, fv_model_find_tensor(m, "embedding"), NULL),
           3 * sizeof *out);
    fv_context_free(ctx);
}

static void serialise(uint8_t **buf, size_t *size)
{
    struct fv_error err = {0};
    struct fv_graph *g = small_graph();
    cr_assert_eq(fv_model_file_write(g, buf, size, &err), FV_OK, "%s", err.message);
    fv_graph_free(g);
}

Test(model_file, round_trip_preserves_graph_and_outputs)
{
    struct fv_error err = {0};
    struct fv_model *a = NULL, *b = NULL;
    uint8_t *buf;
    size_t size;
    serialise(&buf, &size);
    cr_assert_eq(memcmp(buf, "FVMODEL", 8), 0);
    cr_assert_eq(fv_model_from_graph(small_graph(), &a, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_model_load_memory(buf, size, &b, &err), FV_OK, "%s", err.message);
    float ya[3], yb[3];
    run(a, ya);
    run(b, yb);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(ya[i], yb[i]);
    cr_expect_str_eq(fv_model_meta(b)->name, "small");
    cr_expect_str_eq(fv_model_meta(b)->embedding, "embedding");
    cr_expect_float_eq(fv_model_meta(b)->threshold, 0.3f, 1e-7);
    cr_expect_eq(fv_model_meta(b)->template_h, 4);
    fv_model_free(a);
    fv_model_free(b);
    free(buf);
}

static enum fv_status load_bytes(const uint8_t *buf, size_t size, struct fv_error *err)
{
    struct fv_model *m = NULL;
    enum fv_status st = fv_model_load_memory(buf, size, &m, err);
    fv_model_free(m);
    return st;
}

Test(model_file, truncated_files_are_rejected_at_every_length)
{
    uint8_t *buf;
    size_t size;
    serialise(&buf, &size);
    for (size_t len = 0; len < size; len += (len < 64 ? 1 : 7)) {
        struct fv_error err = {0};
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        cr_expect_neq(load_bytes(copy, len, &err), FV_OK, "length %zu accepted", len);
        cr_expect(err.message[0] != '\0');
        free(copy);
    }
    free(buf);
}

Test(model_file, wrong_magic_and_version)
{
    uint8_t *buf;
    size_t size;
    struct fv_error err = {0};
    serialise(&buf, &size);
    buf[0] = 'X';
    cr_expect_eq(load_bytes(buf, size, &err), FV_ERR_FORMAT);
    cr_expect(strstr(err.message, "magic") != NULL, "%s", err.message);
    buf[0] = 'F';
    buf[8] = 99;
    cr_expect_eq(load_bytes(buf, size, &err), FV_ERR_UNSUPPORTED);
    cr_expect(strstr(err.message, "version 99") != NULL, "%s", err.message);
    free(buf);
}

Test(model_file, absurd_header_length)
{
    uint8_t *buf;
    size_t size;
    struct fv_error err = {0};
    serialise(&buf, &size);
    buf[12] = buf[13] = buf[14] = buf[15] = 0xff;
    cr_expect_eq(load_bytes(buf, size, &err), FV_ERR_FORMAT);
    cr_expect(strstr(err.message, "header length") != NULL, "%s", err.message);
    free(buf);
}

/* Rewrites the JSON header with `from` replaced by `to` (same file otherwise). */
static enum fv_status load_patched(const char *from, const char *to, struct fv_error *err)
{
    uint8_t *buf;
    size_t size;
    serialise(&buf, &size);
    uint32_t len = buf[12] | buf[13] << 8 | buf[14] << 16 | (uint32_t)buf[15] << 24;
    char *json = strndup((char *)buf + 16, len);
    char *at = strstr(json, from);
    cr_assert_not_null(at, "'%s' not in header", from);
    size_t data_start = (16 + len + 63) & ~(size_t)63;
    size_t new_len = len - strlen(from) + strlen(to);
    size_t new_start = (16 + new_len + 63) & ~(size_t)63;
    size_t new_size = new_start + (size - data_start);
    uint8_t *out = calloc(1, new_size);
    memcpy(out, buf, 12);
    out[12] = new_len & 0xff, out[13] = new_len >> 8 & 0xff, out[14] = new_len >> 16 & 0xff,
    out[15] = new_len >> 24;
    size_t pre = (size_t)(at - json);
    memcpy(out + 16, json, pre);
    memcpy(out + 16 + pre, to, strlen(to));
    memcpy(out + 16 + pre + strlen(to), at + strlen(from), len - pre - strlen(from));
    memcpy(out + new_start, buf + data_start, size - data_start);
    enum fv_status st = load_bytes(out, new_size, err);
    free(out);
    free(json);
    free(buf);
    return st;
}

Test(model_file, hostile_headers_name_the_problem)
{
    struct fv_error err = {0};
    cr_expect_eq(load_patched("\"offset\":0", "\"offset\":1e15", &err), FV_ERR_FORMAT);
    cr_expect(strstr(err.message, "offset") != NULL, "%s", err.message);
    cr_expect_eq(load_patched("\"shape\":[2,3,3,1]", "\"shape\":[200000,30000,3,1]", &err),
                 FV_ERR_FORMAT);
    cr_expect(strstr(err.message, "blob 0") != NULL, "%s", err.message);
    cr_expect_eq(load_patched("\"op\":\"prelu\"", "\"op\":\"frobnicate\"", &err),
                 FV_ERR_UNSUPPORTED);
    cr_expect(strstr(err.message, "frobnicate") != NULL, "%s", err.message);
    cr_expect_eq(load_patched("\"output\":1", "\"output\":77", &err), FV_ERR_FORMAT);
    cr_expect(strstr(err.message, "output") != NULL, "%s", err.message);
    cr_expect_eq(load_patched("\"inputs\":[1]", "\"inputs\":[3]", &err), FV_ERR_FORMAT);
    cr_expect(strstr(err.message, "before it is computed") != NULL, "%s", err.message);
    cr_expect_eq(load_patched("\"format\":\"facever-model\"", "\"format\":\"other\"", &err),
                 FV_ERR_FORMAT);
    cr_expect_eq(load_patched("\"kernel\":[3,3]", "\"kernel\":[3,1000]", &err), FV_ERR_FORMAT);
    cr_expect_eq(load_patched("{\"format\"", "[{\"format\"", &err), FV_ERR_FORMAT);
    cr_expect_eq(load_patched("\"threshold\":0.3", "\"threshold\":7", &err), FV_ERR_FORMAT);
}

Test(model_file, missing_file_names_it)
{
    struct fv_error err = {0};
    struct fv_model *m = NULL;
    cr_expect_eq(fv_model_load("/nonexistent/dir/x.fvm", &m, &err), FV_ERR_NOT_FOUND);
    cr_expect(strstr(err.message, "/nonexistent/dir/x.fvm") != NULL, "%s", err.message);
    cr_expect_null(m);
}
