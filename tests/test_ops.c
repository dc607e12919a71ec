/* test_ops.c - hand-computed cases for every forward kernel and for the engine. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "model/graph.h"
#include "model/model.h"
#include "model/ops.h"

static void expect_close(const float *got, const float *want, int n, float tol)
{
    for (int i = 0; i < n; i++)
        cr_expect(fabsf(got[i] - want[i]) <= tol, "element %d: got %g, want %g", i, got[i],
                  want[i]);
}

/* Single-channel image with x[i][j] = i * w + j. */
static void ramp(float *x, int h, int w)
{
    for (int i = 0; i < h * w; i++)
        x[i] = (float)i;
}

Test(ops, conv_same_stride2_odd_size)
{
    /* 5×5 input, 3×3 ones, stride 2: out 3×3, padding total (3-1)*2+3-5 = 2, so 1 before
     * and 1 after. out[0][0] = 0+1+5+6 = 12; out[1][1] = sum of rows 1-3, cols 1-3 =
     * 21+36+51 = 108; out[2][2] = 18+19+23+24 = 84; out[0][2] = rows 0-1, cols 3-4 =
     * 3+4+8+9 = 24. */
    float x[25], w[9], y[9], scratch[256];
    ramp(x, 5, 5);
    for (int i = 0; i < 9; i++)
        w[i] = 1.0f;
    struct fv_conv_shape s = fv_conv_shape_make(1, 5, 5, 1, 3, 3, 2, 2, FV_PADDING_SAME, 1);
    cr_assert_eq(s.out_h, 3);
    cr_assert_eq(s.pad_top, 1);
    cr_assert(fv_ops_conv2d_scratch(&s) <= 256);
    fv_ops_conv2d(&s, x, w, NULL, FV_ACT_NONE, scratch, y);
    cr_expect_float_eq(y[0], 12.0f, 1e-5);
    cr_expect_float_eq(y[4], 108.0f, 1e-5);
    cr_expect_float_eq(y[8], 84.0f, 1e-5);
    cr_expect_float_eq(y[2], 24.0f, 1e-5);
}

Test(ops, conv_same_stride2_even_size_is_asymmetric)
{
    /* 4×4 input, 3×3 ones, stride 2: out 2×2, padding total (2-1)*2+3-4 = 1: TensorFlow
     * puts 0 before and 1 after. out[0][0] = rows 0-2, cols 0-2 = 3+15+27 = 45;
     * out[0][1] = rows 0-2, cols 2-3 = 5+13+21 = 39; out[1][0] = rows 2-3, cols 0-2 =
     * 27+39 = 66; out[1][1] = 10+11+14+15 = 50. Symmetric padding would give 10 for
     * out[0][0]. */
    float x[16], w[9], y[4], scratch[256];
    ramp(x, 4, 4);
    for (int i = 0; i < 9; i++)
        w[i] = 1.0f;
    struct fv_conv_shape s = fv_conv_shape_make(1, 4, 4, 1, 3, 3, 2, 2, FV_PADDING_SAME, 1);
    cr_assert_eq(s.out_h, 2);
    cr_assert_eq(s.pad_top, 0);
    fv_ops_conv2d(&s, x, w, NULL, FV_ACT_NONE, scratch, y);
    expect_close(y, (float[]){45, 39, 66, 50}, 4, 1e-5f);
}

Test(ops, conv_valid_multichannel_bias_relu_batch)
{
    /* Two samples of 2×2×2, 2×2 VALID filter with 2 outputs: output o = sum over the
     * window of w[o] · x + b[o]. Filter 0 is all ones, filter 1 all -1. Sample 0 is
     * 1..8 (sum 36), sample 1 is all 0.5 (sum 4). Bias (1, 2). Out: (37, 0 after relu
     * of -34), (5, 0 after relu of -2). */
    float x[16], w[16], y[4], scratch[64];
    for (int i = 0; i < 8; i++) {
        x[i] = (float)(i + 1);
        x[8 + i] = 0.5f;
        w[i] = 1.0f;
        w[8 + i] = -1.0f;
    }
    struct fv_conv_shape s = fv_conv_shape_make(2, 2, 2, 2, 2, 2, 1, 1, FV_PADDING_VALID, 2);
    fv_ops_conv2d(&s, x, w, (float[]){1, 2}, FV_ACT_RELU, scratch, y);
    expect_close(y, (float[]){37, 0, 5, 0}, 4, 1e-5f);
}

Test(ops, conv_pointwise_uses_no_scratch)
{
    /* 1×1 conv: W = [[1, 2], [3, -4]] (O×I); x = (1, 1) -> (3, -1) + bias (0.5, 0.5). */
    float x[2] = {1, 1}, w[4] = {1, 2, 3, -4}, y[2];
    struct fv_conv_shape s = fv_conv_shape_make(1, 1, 1, 2, 1, 1, 1, 1, FV_PADDING_SAME, 2);
    cr_assert_eq(fv_ops_conv2d_scratch(&s), 0);
    fv_ops_conv2d(&s, x, w, (float[]){0.5f, 0.5f}, FV_ACT_NONE, NULL, y);
    expect_close(y, (float[]){3.5f, -0.5f}, 2, 1e-6f);
}

Test(ops, depthwise_per_channel)
{
    /* 3×3×2 input: channel 0 = 0..8, channel 1 = 10 everywhere. Channel 0 filter all
     * ones, channel 1 filter 2 at the centre only. VALID: one output (36, 20) + bias
     * (1, -1) = (37, 19). SAME stride 2 on 3×3: out 2×2, pad 1 before: out[0][0] for
     * channel 0 = 0+1+3+4 = 8. */
    float x[18], w[18] = {0}, y[8];
    for (int i = 0; i < 9; i++) {
        x[2 * i] = (float)i;
        x[2 * i + 1] = 10.0f;
        w[2 * i] = 1.0f;
    }
    w[2 * 4 + 1] = 2.0f;
    struct fv_conv_shape s = fv_conv_shape_make(1, 3, 3, 2, 3, 3, 1, 1, FV_PADDING_VALID, 2);
    fv_ops_depthwise_conv2d(&s, x, w, (float[]){1, -1}, FV_ACT_NONE, y);
    expect_close(y, (float[]){37, 19}, 2, 1e-5f);
    s = fv_conv_shape_make(1, 3, 3, 2, 3, 3, 2, 2, FV_PADDING_SAME, 2);
    cr_assert_eq(s.out_w, 2);
    fv_ops_depthwise_conv2d(&s, x, w, NULL, FV_ACT_NONE, y);
    /* out[1][1] centre (2,2): channel 0 = 4+5+7+8 = 24; channel 1 = 2·10 = 20 at (2,2). */
    cr_expect_float_eq(y[0], 8.0f, 1e-5);
    cr_expect_float_eq(y[6], 24.0f, 1e-5);
    cr_expect_float_eq(y[7], 20.0f, 1e-5);
}

Test(ops, max_pool_same_ignores_padding)
{
    /* All values negative: a pool that counted padding as 0 would output 0. 3×3 input
     * -9..-1, 2×2 stride 2 SAME: out 2×2, pad total 1, 0 before. out[0][0] = max(-9,-8,
     * -6,-5) = -5; out[0][1] = max(-7,-4) = -4; out[1][0] = max(-3,-2) = -2; out[1][1] = -1. */
    float x[9], y[4];
    for (int i = 0; i < 9; i++)
        x[i] = (float)(i - 9);
    struct fv_conv_shape s = fv_conv_shape_make(1, 3, 3, 1, 2, 2, 2, 2, FV_PADDING_SAME, 1);
    fv_ops_max_pool2d(&s, x, y);
    expect_close(y, (float[]){-5, -4, -2, -1}, 4, 0);
}

Test(ops, fully_connected)
{
    /* W (2×3) = [[1,0,-1],[2,2,2]], bias (0, -1); x = [[1,2,3],[-1,0,1]]:
     * row 0: (1-3, 12-1) = (-2, 11); row 1: (-2, 0-1) = (-2, -1). */
    float x[6] = {1, 2, 3, -1, 0, 1}, w[6] = {1, 0, -1, 2, 2, 2}, y[4];
    fv_ops_fully_connected(2, 3, 2, x, w, (float[]){0, -1}, FV_ACT_NONE, y);
    expect_close(y, (float[]){-2, 11, -2, -1}, 4, 1e-6f);
}

Test(ops, prelu_relu_add_mul)
{
    float x[4] = {-2, 3, 4, -1}, y[4];
    fv_ops_prelu(2, 2, x, (float[]){0.5f, 0.25f}, 2, y);
    expect_close(y, (float[]){-1, 3, 4, -0.25f}, 4, 0);
    fv_ops_prelu(2, 2, x, (float[]){0.1f}, 1, y);
    expect_close(y, (float[]){-0.2f, 3, 4, -0.1f}, 4, 1e-7f);
    fv_ops_add(4, 2, x, (float[]){1, 10}, 2, FV_ACT_RELU, y);
    expect_close(y, (float[]){0, 13, 5, 9}, 4, 0);
    fv_ops_mul(4, 2, x, (float[]){-1}, 1, FV_ACT_NONE, y);
    expect_close(y, (float[]){2, -3, -4, 1}, 4, 0);
    fv_ops_add(4, 2, x, x, 4, FV_ACT_NONE, y);
    expect_close(y, (float[]){-4, 6, 8, -2}, 4, 0);
    fv_ops_activation(4, FV_ACT_RELU6, (memcpy(y, (float[]){-1, 3, 7, 6}, sizeof y), y));
    expect_close(y, (float[]){0, 3, 6, 6}, 4, 0);
}

Test(ops, softmax_l2norm_batchnorm)
{
    /* softmax(0, ln 3) = (1/4, 3/4); a large offset must not overflow. */
    float x[4] = {0, logf(3.0f), 1000.0f, 1000.0f + logf(3.0f)}, y[4];
    fv_ops_softmax(2, 2, x, y);
    expect_close(y, (float[]){0.25f, 0.75f, 0.25f, 0.75f}, 4, 1e-4f); /* 1000 + ln 3 rounds in float */
    /* (3, 4) / 5 and the zero vector stays zero. */
    float v[4] = {3, 4, 0, 0};
    fv_ops_l2_norm(2, 2, 1e-12f, v, y);
    expect_close(y, (float[]){0.6f, 0.8f, 0, 0}, 4, 1e-6f);
    /* (x - mean) / sqrt(var + eps) * gamma + beta: (5 - 1) / 2 * 3 + 1 = 7 and
     * (0 - 0) / 1 * 1 + (-2) = -2. */
    float b[2] = {5, 0};
    fv_ops_batch_norm(1, 2, b, (float[]){3, 1}, (float[]){1, -2}, (float[]){1, 0},
                      (float[]){4, 1}, 0.0f, y);
    expect_close(y, (float[]){7, -2}, 2, 1e-6f);
}

/* A graph with a residual connection: x -> conv(3×3 same) -> bn -> prelu -> add(x) ->
 * conv 1×1 -> fc. Runs through the engine at batch 3 and is compared with the
 * same computation done kernel by kernel. */
static struct fv_graph *residual_graph(void)
{
    struct fv_graph *g = fv_graph_new();
    struct fv_error err = {0};
    int x = fv_graph_add_tensor(g, "x", 6, 5, 4);
    float w1[4 * 3 * 3 * 4], w2[2 * 4], fc[3 * 6 * 5 * 2], gamma[4], beta[4], mean[4], var[4],
        slope[4];
    for (size_t i = 0; i < sizeof w1 / sizeof *w1; i++)
        w1[i] = sinf((float)i) * 0.3f;
    for (size_t i = 0; i < sizeof w2 / sizeof *w2; i++)
        w2[i] = cosf((float)i);
    for (size_t i = 0; i < sizeof fc / sizeof *fc; i++)
        fc[i] = sinf(0.7f * (float)i) * 0.1f;
    for (int i = 0; i < 4; i++) {
        gamma[i] = 1.0f + 0.1f * i, beta[i] = 0.2f * i - 0.3f, mean[i] = 0.05f * i;
        var[i] = 0.5f + i, slope[i] = 0.25f;
    }
    int bw1 = fv_graph_add_blob(g, "w1", (int[]){4, 3, 3, 4}, 4, w1);
    int bg = fv_graph_add_blob(g, "gamma", (int[]){4}, 1, gamma);
    int bb = fv_graph_add_blob(g, "beta", (int[]){4}, 1, beta);
    int bm = fv_graph_add_blob(g, "mean", (int[]){4}, 1, mean);
    int bv = fv_graph_add_blob(g, "var", (int[]){4}, 1, var);
    int bs = fv_graph_add_blob(g, "slope", (int[]){4}, 1, slope);
    int bw2 = fv_graph_add_blob(g, "w2", (int[]){2, 1, 1, 4}, 4, w2);
    int bfc = fv_graph_add_blob(g, "fc", (int[]){3, 60}, 2, fc);
    int t1 = fv_graph_add_tensor(g, "c1", 0, 0, 0), t2 = fv_graph_add_tensor(g, "bn", 0, 0, 0);
    int t3 = fv_graph_add_tensor(g, "pr", 0, 0, 0), t4 = fv_graph_add_tensor(g, "sum", 0, 0, 0);
    int t5 = fv_graph_add_tensor(g, "c2", 0, 0, 0), t6 = fv_graph_add_tensor(g, "out", 0, 0, 0);
    struct fv_node n = fv_node_init(FV_OP_CONV2D, "c1");
    n.n_inputs = 1, n.inputs[0] = x, n.output = t1, n.blobs[0] = bw1;
    n.kernel_h = n.kernel_w = 3, n.padding = FV_PADDING_SAME;
    cr_assert_geq(fv_graph_add_node(g, &n, &err), 0, "%s", err.message);
    n = fv_node_init(FV_OP_BATCH_NORM, "bn");
    n.n_inputs = 1, n.inputs[0] = t1, n.output = t2, n.epsilon = 1e-3f;
    n.blobs[0] = bg, n.blobs[1] = bb, n.blobs[2] = bm, n.blobs[3] = bv;
    cr_assert_geq(fv_graph_add_node(g, &n, &err), 0, "%s", err.message);
    n = fv_node_init(FV_OP_PRELU, "pr");
    n.n_inputs = 1, n.inputs[0] = t2, n.output = t3, n.blobs[0] = bs;
    cr_assert_geq(fv_graph_add_node(g, &n, &err), 0, "%s", err.message);
    n = fv_node_init(FV_OP_ADD, "sum");
    n.n_inputs = 2, n.inputs[0] = t3, n.inputs[1] = x, n.output = t4;
    cr_assert_geq(fv_graph_add_node(g, &n, &err), 0, "%s", err.message);
    n = fv_node_init(FV_OP_CONV2D, "c2");
    n.n_inputs = 1, n.inputs[0] = t4, n.output = t5, n.blobs[0] = bw2;
    cr_assert_geq(fv_graph_add_node(g, &n, &err), 0, "%s", err.message);
    n = fv_node_init(FV_OP_FULLY_CONNECTED, "out");
    n.n_inputs = 1, n.inputs[0] = t5, n.output = t6, n.blobs[0] = bfc;
    cr_assert_geq(fv_graph_add_node(g, &n, &err), 0, "%s", err.message);
    fv_graph_set_input(g, x);
    fv_graph_add_output(g, t6);
    return g;
}

Test(engine, residual_graph_matches_kernels_and_folds_batch_norm)
{
    struct fv_error err = {0};
    struct fv_graph *g = residual_graph();
    /* Kernel-by-kernel reference, before the model folds the batch norm. */
    enum { B = 3, H = 6, W = 5, C = 4 };
    float x[B * H * W * C], c1[B * H * W * C], bn[B * H * W * C], pr[B * H * W * C];
    float sum[B * H * W * C], c2[B * H * W * 2], want[B * 3], scratch[B * H * W * 36];
    for (int i = 0; i < B * H * W * C; i++)
        x[i] = sinf(0.37f * (float)i);
    struct fv_conv_shape s = fv_conv_shape_make(B, H, W, C, 3, 3, 1, 1, FV_PADDING_SAME, C);
    fv_ops_conv2d(&s, x, fv_graph_blob(g, 0)->data, NULL, FV_ACT_NONE, scratch, c1);
    fv_ops_batch_norm(B * H * W, C, c1, fv_graph_blob(g, 1)->data, fv_graph_blob(g, 2)->data,
                      fv_graph_blob(g, 3)->data, fv_graph_blob(g, 4)->data, 1e-3f, bn);
    fv_ops_prelu(B * H * W, C, bn, fv_graph_blob(g, 5)->data, 4, pr);
    fv_ops_add(B * H * W * C, C, pr, x, B * H * W * C, FV_ACT_NONE, sum);
    s = fv_conv_shape_make(B, H, W, C, 1, 1, 1, 1, FV_PADDING_VALID, 2);
    fv_ops_conv2d(&s, sum, fv_graph_blob(g, 6)->data, NULL, FV_ACT_NONE, NULL, c2);
    fv_ops_fully_connected(B, H * W * 2, 3, c2, fv_graph_blob(g, 7)->data, NULL, FV_ACT_NONE,
                           want);

    struct fv_model *m = NULL;
    cr_assert_eq(fv_model_from_graph(g, &m, &err), FV_OK, "%s", err.message);
    /* The batch norm was folded into the convolution. */
    cr_expect_eq(fv_graph_node_count(fv_model_graph(m)), 5);
    struct fv_context *ctx = NULL;
    cr_assert_eq(fv_context_new(m, 4, 0, 0, &ctx, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_context_run(ctx, x, B, H, W, &err), FV_OK, "%s", err.message);
    int shape[4];
    const float *got = fv_context_tensor(ctx, fv_model_find_tensor(m, "out"), shape);
    cr_assert_not_null(got);
    cr_expect_eq(shape[0], B);
    cr_expect_eq(shape[3], 3);
    expect_close(got, want, B * 3, 1e-4f);
    /* A batch over the planned size is refused, not overflowed. */
    cr_expect_eq(fv_context_run(ctx, x, 5, H, W, &err), FV_ERR_INVALID_ARG);
    fv_context_free(ctx);
    fv_model_free(m);
}

Test(engine, validate_rejects_shape_mismatch)
{
    struct fv_error err = {0};
    struct fv_graph *g = fv_graph_new();
    int x = fv_graph_add_tensor(g, "x", 4, 4, 3);
    int w = fv_graph_add_blob(g, "w", (int[]){2, 3, 3, 2}, 4, NULL); /* wrong input channels */
    int y = fv_graph_add_tensor(g, "y", 0, 0, 0);
    struct fv_node n = fv_node_init(FV_OP_CONV2D, "conv");
    n.n_inputs = 1, n.inputs[0] = x, n.output = y, n.blobs[0] = w, n.kernel_h = n.kernel_w = 3;
    cr_assert_geq(fv_graph_add_node(g, &n, &err), 0);
    fv_graph_set_input(g, x);
    fv_graph_add_output(g, y);
    cr_expect_eq(fv_graph_validate(g, &err), FV_ERR_FORMAT);
    cr_expect(strstr(err.message, "conv") != NULL, "message: %s", err.message);
    fv_graph_free(g);
}

Test(engine, pointwise_conv_fused_into_residual_add)
{
    /* x (3×4×8) -> conv 1×1 (8 -> 8, bias) -> add(conv, x) -> relu: the engine runs the
     * conv as out = x + bias, out += x·Wᵀ. Compared with the kernels one by one. */
    struct fv_error err = {0};
    struct fv_graph *g = fv_graph_new();
    enum { B = 2, H = 3, W = 4, C = 8 };
    float w[C * C], bias[C], x[B * H * W * C], conv[B * H * W * C], want[B * H * W * C];
    for (int i = 0; i < C * C; i++)
        w[i] = cosf(0.3f * (float)i);
    for (int i = 0; i < C; i++)
        bias[i] = 0.1f * (float)i - 0.4f;
    for (int i = 0; i < B * H * W * C; i++)
        x[i] = sinf(0.11f * (float)i);
    int tx = fv_graph_add_tensor(g, "x", H, W, C);
    int bw = fv_graph_add_blob(g, "w", (int[]){C, 1, 1, C}, 4, w);
    int bb = fv_graph_add_blob(g, "b", (int[]){C}, 1, bias);
    int tc = fv_graph_add_tensor(g, "conv", 0, 0, 0), ts = fv_graph_add_tensor(g, "sum", 0, 0, 0);
    struct fv_node n = fv_node_init(FV_OP_CONV2D, "conv");
    n.n_inputs = 1, n.inputs[0] = tx, n.output = tc, n.blobs[0] = bw, n.blobs[1] = bb;
    cr_assert_geq(fv_graph_add_node(g, &n, &err), 0, "%s", err.message);
    n = fv_node_init(FV_OP_ADD, "sum");
    n.n_inputs = 2, n.inputs[0] = tx, n.inputs[1] = tc, n.output = ts, n.activation = FV_ACT_RELU;
    cr_assert_geq(fv_graph_add_node(g, &n, &err), 0, "%s", err.message);
    fv_graph_set_input(g, tx);
    fv_graph_add_output(g, ts);
    struct fv_conv_shape s = fv_conv_shape_make(B, H, W, C, 1, 1, 1, 1, FV_PADDING_VALID, C);
    fv_ops_conv2d(&s, x, w, bias, FV_ACT_NONE, NULL, conv);
    fv_ops_add(B * H * W * C, C, conv, x, B * H * W * C, FV_ACT_RELU, want);
    struct fv_model *m;
    cr_assert_eq(fv_model_from_graph(g, &m, &err), FV_OK, "%s", err.message);
    struct fv_context *ctx;
    cr_assert_eq(fv_context_new(m, B, 0, 0, &ctx, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_context_run(ctx, x, B, H, W, &err), FV_OK, "%s", err.message);
    expect_close(fv_context_tensor(ctx, fv_model_find_tensor(m, "sum"), NULL), want, B * H * W * C,
                 1e-5f);
    fv_context_free(ctx);
    fv_model_free(m);
}
