/* test_train.c - finite-difference gradient checks for every backward kernel and loss,
 * the centre update, LR schedules, and whole-network gradients through the trainer. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/backward.h"
#include "model/loss.h"
#include "model/ops.h"
#include "model/train.h"

/* ------------------------------------------------------------ helpers */

static struct fv_rng test_rng;

static void fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)fv_rng_uniform(&test_rng);
}

/* Values of magnitude in [0.2, 1] with random sign: far from the kinks of ReLU / PReLU. */
static void fill_away_from_zero(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = 0.2f + 0.8f * (float)fv_rng_uniform(&test_rng);
        x[i] = fv_rng_uniform(&test_rng) < 0.5 ? -v : v;
    }
}

static float *alloc_floats(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* The scalar every layer check differentiates: L = Σ r_i y_i, in double. */
static double dot(const float *r, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)r[i] * y[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Central differences of f with respect to every element of x (a sample of at
 * most ~250 for big arrays), compared with the analytic gradient. */
static void check_gradient(const char *what, float *x, size_t count, const float *analytic,
                           loss_fn f, void *ctx, float eps)
{
    size_t step = count > 250 ? count / 250 : 1;
    int bad = 0;
    for (size_t i = 0; i < count; i += step) {
        float saved = x[i];
        x[i] = saved + eps;
        double lp = f(ctx);
        x[i] = saved - eps;
        double lm = f(ctx);
        x[i] = saved;
        double num = (lp - lm) / (2.0 * eps), ana = analytic[i];
        double scale = fmax(fmax(fabs(num), fabs(ana)), 1e-2);
        if (fabs(num - ana) / scale > 1e-2 && bad++ < 5)
            cr_expect(0, "%s[%zu]: numeric %.6g, analytic %.6g", what, i, num, ana);
    }
    cr_expect_eq(bad, 0, "%s: %d elements disagree", what, bad);
}

/* ------------------------------------------------------------ conv2d */

struct conv_case {
    struct fv_conv_shape s;
    float *x, *w, *b, *y, *r, *scratch;
    int depthwise;
};

static double conv_loss(void *p)
{
    struct conv_case *c = p;
    if (c->depthwise)
        fv_ops_depthwise_conv2d(&c->s, c->x, c->w, c->b, FV_ACT_NONE, c->y);
    else
        fv_ops_conv2d(&c->s, c->x, c->w, c->b, FV_ACT_NONE, c->scratch, c->y);
    return dot(c->r, c->y, (size_t)c->s.n * c->s.out_h * c->s.out_w * c->s.out_c);
}

static void run_conv_check(int depthwise, int n, int h, int w, int cin, int k, int stride,
                           enum fv_padding pad, int cout)
{
    struct conv_case c = {.depthwise = depthwise};
    fv_rng_seed(&test_rng, 42 + (uint64_t)k * 7 + stride);
    if (depthwise)
        cout = cin;
    c.s = fv_conv_shape_make(n, h, w, cin, k, k, stride, stride, pad, cout);
    size_t nx = (size_t)n * h * w * cin, ny = (size_t)n * c.s.out_h * c.s.out_w * cout;
    size_t nw = depthwise ? (size_t)k * k * cin : (size_t)cout * k * k * cin;
    size_t scratch = fv_ops_conv2d_scratch(&c.s), bs = fv_backward_conv2d_scratch(&c.s);
    c.x = alloc_floats(nx), c.w = alloc_floats(nw), c.b = alloc_floats(cout);
    c.y = alloc_floats(ny), c.r = alloc_floats(ny);
    c.scratch = alloc_floats(scratch > bs ? scratch : bs);
    float *dx = alloc_floats(nx), *dw = alloc_floats(nw), *db = alloc_floats(cout);
    fill(c.x, nx, -1, 1), fill(c.w, nw, -1, 1), fill(c.b, cout, -1, 1), fill(c.r, ny, -1, 1);
    /* non-zero start: the kernels accumulate */
    dx[0] = 0.5f, dw[0] = 0.25f, db[0] = -1.0f;
    if (depthwise)
        fv_backward_depthwise_conv2d(&c.s, c.x, c.w, c.r, dx, dw, db);
    else
        fv_backward_conv2d(&c.s, c.x, c.w, c.r, dx, dw, db, c.scratch);
    dx[0] -= 0.5f, dw[0] -= 0.25f, db[0] += 1.0f;
    check_gradient("dx", c.x, nx, dx, conv_loss, &c, 1e-2f);
    check_gradient("dw", c.w, nw, dw, conv_loss, &c, 1e-2f);
    check_gradient("db", c.b, cout, db, conv_loss, &c, 1e-2f);
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.r), free(c.scratch);
    free(dx), free(dw), free(db);
}

Test(backward, conv2d_same_stride1) { run_conv_check(0, 2, 6, 5, 3, 3, 1, FV_PADDING_SAME, 4); }
Test(backward, conv2d_same_stride2) { run_conv_check(0, 2, 7, 6, 3, 3, 2, FV_PADDING_SAME, 5); }
Test(backward, conv2d_same_5x5) { run_conv_check(0, 1, 8, 8, 2, 5, 1, FV_PADDING_SAME, 3); }
Test(backward, conv2d_valid_stride2) { run_conv_check(0, 2, 7, 7, 2, 3, 2, FV_PADDING_VALID, 3); }
Test(backward, conv2d_pointwise) { run_conv_check(0, 2, 4, 3, 6, 1, 1, FV_PADDING_SAME, 5); }
Test(backward, depthwise_same_stride1) { run_conv_check(1, 2, 6, 5, 10, 3, 1, FV_PADDING_SAME, 0); }
Test(backward, depthwise_same_stride2) { run_conv_check(1, 2, 7, 6, 9, 3, 2, FV_PADDING_SAME, 0); }
Test(backward, depthwise_valid_7x7) { run_conv_check(1, 2, 7, 7, 4, 7, 1, FV_PADDING_VALID, 0); }

/* ------------------------------------------------------------ fully connected */

struct fc_case {
    int n, in, out;
    float *x, *w, *b, *y, *r;
};

static double fc_loss(void *p)
{
    struct fc_case *c = p;
    fv_ops_fully_connected(c->n, c->in, c->out, c->x, c->w, c->b, FV_ACT_NONE, c->y);
    return dot(c->r, c->y, (size_t)c->n * c->out);
}

Test(backward, fully_connected)
{
    struct fc_case c = {.n = 3, .in = 7, .out = 4};
    fv_rng_seed(&test_rng, 7);
    c.x = alloc_floats(21), c.w = alloc_floats(28), c.b = alloc_floats(4);
    c.y = alloc_floats(12), c.r = alloc_floats(12);
    fill(c.x, 21, -1, 1), fill(c.w, 28, -1, 1), fill(c.b, 4, -1, 1), fill(c.r, 12, -1, 1);
    float *dx = alloc_floats(21), *dw = alloc_floats(28), *db = alloc_floats(4);
    fv_backward_fully_connected(c.n, c.in, c.out, c.x, c.w, c.r, dx, dw, db);
    check_gradient("dx", c.x, 21, dx, fc_loss, &c, 1e-2f);
    check_gradient("dw", c.w, 28, dw, fc_loss, &c, 1e-2f);
    check_gradient("db", c.b, 4, db, fc_loss, &c, 1e-2f);
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.r), free(dx), free(dw), free(db);
}

/* ------------------------------------------------------------ PReLU, ReLU, activations */

struct prelu_case {
    size_t pixels;
    int c, n_slopes;
    float *x, *a, *y, *r;
};

static double prelu_loss(void *p)
{
    struct prelu_case *c = p;
    fv_ops_prelu(c->pixels, c->c, c->x, c->a, c->n_slopes, c->y);
    return dot(c->r, c->y, c->pixels * c->c);
}

static void run_prelu_check(int n_slopes)
{
    struct prelu_case c = {.pixels = 6, .c = 10, .n_slopes = n_slopes};
    size_t count = c.pixels * c.c;
    fv_rng_seed(&test_rng, 11 + n_slopes);
    c.x = alloc_floats(count), c.a = alloc_floats(10), c.y = alloc_floats(count);
    c.r = alloc_floats(count);
    fill_away_from_zero(c.x, count), fill(c.a, 10, 0.05f, 0.5f), fill(c.r, count, -1, 1);
    float *dx = alloc_floats(count), *da = alloc_floats(10);
    fv_backward_prelu(c.pixels, c.c, c.x, c.a, n_slopes, c.r, dx, da);
    check_gradient("dx", c.x, count, dx, prelu_loss, &c, 1e-2f);
    check_gradient("dslope", c.a, (size_t)n_slopes, da, prelu_loss, &c, 1e-2f);
    free(c.x), free(c.a), free(c.y), free(c.r), free(dx), free(da);
}

Test(backward, prelu_per_channel) { run_prelu_check(10); }
Test(backward, prelu_shared_slope) { run_prelu_check(1); }

struct relu_case {
    size_t n;
    float *x, *y, *r;
};

static double relu_loss(void *p)
{
    struct relu_case *c = p;
    memcpy(c->y, c->x, c->n * sizeof *c->y);
    fv_ops_activation(c->n, FV_ACT_RELU, c->y);
    return dot(c->r, c->y, c->n);
}

Test(backward, relu_and_fused_activations)
{
    struct relu_case c = {.n = 40};
    fv_rng_seed(&test_rng, 5);
    c.x = alloc_floats(40), c.y = alloc_floats(40), c.r = alloc_floats(40);
    fill_away_from_zero(c.x, 40), fill(c.r, 40, -1, 1);
    relu_loss(&c);
    float *dx = alloc_floats(40);
    fv_backward_relu(40, c.y, c.r, dx);
    check_gradient("relu dx", c.x, 40, dx, relu_loss, &c, 1e-2f);
    /* fused activations: the mask is taken from the output */
    float y[4] = {-0.0f, 3.0f, 7.0f, 0.5f}, dy[4] = {1, 1, 1, 1};
    fv_backward_activation(4, FV_ACT_RELU6, y, dy);
    cr_expect(dy[0] == 0 && dy[1] == 1 && dy[2] == 0 && dy[3] == 1);
    float dz[4] = {1, 1, 1, 1};
    fv_backward_activation(4, FV_ACT_RELU, y, dz);
    cr_expect(dz[0] == 0 && dz[1] == 1 && dz[2] == 1 && dz[3] == 1);
    free(c.x), free(c.y), free(c.r), free(dx);
}

/* ------------------------------------------------------------ max pool */

struct pool_case {
    struct fv_conv_shape s;
    float *x, *y, *r;
    int32_t *argmax;
};

static double pool_loss(void *p)
{
    struct pool_case *c = p;
    fv_forward_max_pool2d_argmax(&c->s, c->x, c->y, c->argmax);
    return dot(c->r, c->y, (size_t)c->s.n * c->s.out_h * c->s.out_w * c->s.out_c);
}

static void run_pool_check(int h, int w, enum fv_padding pad)
{
    struct pool_case c;
    c.s = fv_conv_shape_make(2, h, w, 3, 2, 2, 2, 2, pad, 3);
    size_t nx = (size_t)2 * h * w * 3, ny = (size_t)2 * c.s.out_h * c.s.out_w * 3;
    fv_rng_seed(&test_rng, 99);
    c.x = alloc_floats(nx), c.y = alloc_floats(ny), c.r = alloc_floats(ny);
    c.argmax = calloc(ny, sizeof *c.argmax);
    /* distinct values 0.1 apart: a 1e-2 step never changes a window's winner */
    int *perm = malloc(nx * sizeof *perm);
    for (size_t i = 0; i < nx; i++)
        perm[i] = (int)i;
    fv_rng_shuffle(&test_rng, perm, (int)nx);
    for (size_t i = 0; i < nx; i++)
        c.x[i] = 0.1f * (float)perm[i];
    fill(c.r, ny, -1, 1);
    pool_loss(&c);
    /* the recording forward agrees with the inference kernel */
    float *y2 = alloc_floats(ny);
    fv_ops_max_pool2d(&c.s, c.x, y2);
    cr_expect_arr_eq(y2, c.y, ny * sizeof *y2);
    float *dx = alloc_floats(nx);
    fv_backward_max_pool2d(&c.s, c.argmax, c.r, dx);
    check_gradient("pool dx", c.x, nx, dx, pool_loss, &c, 1e-2f);
    free(perm), free(y2), free(dx), free(c.x), free(c.y), free(c.r), free(c.argmax);
}

Test(backward, max_pool_valid) { run_pool_check(6, 4, FV_PADDING_VALID); }
Test(backward, max_pool_same_odd) { run_pool_check(7, 5, FV_PADDING_SAME); }

/* ------------------------------------------------------------ batch norm */

struct bn_case {
    size_t pixels;
    int c;
    float *x, *gamma, *beta, *y, *r, *mean, *inv_std;
};

static double bn_loss(void *p)
{
    struct bn_case *c = p;
    fv_forward_batch_norm_train(c->pixels, c->c, c->x, c->gamma, c->beta, 1e-3f, 0.1f, NULL,
                                NULL, c->mean, c->inv_std, c->y);
    return dot(c->r, c->y, c->pixels * c->c);
}

Test(backward, batch_norm_training_mode)
{
    struct bn_case c = {.pixels = 12, .c = 3};
    size_t count = 36;
    fv_rng_seed(&test_rng, 3);
    c.x = alloc_floats(count), c.gamma = alloc_floats(3), c.beta = alloc_floats(3);
    c.y = alloc_floats(count), c.r = alloc_floats(count);
    c.mean = alloc_floats(3), c.inv_std = alloc_floats(3);
    fill(c.x, count, -2, 2), fill(c.gamma, 3, 0.5f, 1.5f), fill(c.beta, 3, -1, 1);
    fill(c.r, count, -1, 1);
    bn_loss(&c);
    float *dx = alloc_floats(count), *dg = alloc_floats(3), *dbeta = alloc_floats(3);
    fv_backward_batch_norm(c.pixels, c.c, c.x, c.gamma, c.mean, c.inv_std, c.r, dx, dg, dbeta);
    check_gradient("bn dx", c.x, count, dx, bn_loss, &c, 1e-2f);
    check_gradient("bn dgamma", c.gamma, 3, dg, bn_loss, &c, 1e-2f);
    check_gradient("bn dbeta", c.beta, 3, dbeta, bn_loss, &c, 1e-2f);
    free(c.x), free(c.gamma), free(c.beta), free(c.y), free(c.r), free(c.mean);
    free(c.inv_std), free(dx), free(dg), free(dbeta);
}

Test(backward, batch_norm_running_statistics)
{
    /* one channel, values 1..4: mean 2.5, biased var 1.25, unbiased 5/3 */
    float x[4] = {1, 2, 3, 4}, y[4], gamma = 1, beta = 0, rm = 0, rv = 1, sm, si;
    fv_forward_batch_norm_train(4, 1, x, &gamma, &beta, 0.0f, 0.1f, &rm, &rv, &sm, &si, y);
    cr_expect_float_eq(sm, 2.5f, 1e-6);
    cr_expect_float_eq(si, 1.0f / sqrtf(1.25f), 1e-5);
    cr_expect_float_eq(rm, 0.25f, 1e-6);
    cr_expect_float_eq(rv, 0.9f + 0.1f * 5.0f / 3.0f, 1e-6);
    cr_expect_float_eq(y[0], -1.5f / sqrtf(1.25f), 1e-5);
}

/* ------------------------------------------------------------ add, reshape */

struct add_case {
    size_t count;
    int c;
    size_t b_count;
    float *a, *b, *y, *r;
};

static double add_loss(void *p)
{
    struct add_case *c = p;
    fv_ops_add(c->count, c->c, c->a, c->b, c->b_count, FV_ACT_NONE, c->y);
    return dot(c->r, c->y, c->count);
}

static void run_add_check(size_t b_count)
{
    struct add_case c = {.count = 24, .c = 4, .b_count = b_count};
    fv_rng_seed(&test_rng, 21);
    c.a = alloc_floats(24), c.b = alloc_floats(b_count), c.y = alloc_floats(24);
    c.r = alloc_floats(24);
    fill(c.a, 24, -1, 1), fill(c.b, b_count, -1, 1), fill(c.r, 24, -1, 1);
    float *da = alloc_floats(24), *db = alloc_floats(b_count);
    fv_backward_add(c.count, c.c, b_count, c.r, da, db);
    check_gradient("add da", c.a, 24, da, add_loss, &c, 1e-2f);
    check_gradient("add db", c.b, b_count, db, add_loss, &c, 1e-2f);
    free(c.a), free(c.b), free(c.y), free(c.r), free(da), free(db);
}

Test(backward, add_two_tensors) { run_add_check(24); }
Test(backward, add_per_channel_constant) { run_add_check(4); }
Test(backward, add_scalar_constant) { run_add_check(1); }

Test(backward, reshape_flatten_is_identity)
{
    float dy[6] = {1, 2, 3, 4, 5, 6}, dx[6] = {1, 1, 1, 1, 1, 1};
    fv_backward_reshape(6, dy, dx);
    for (int i = 0; i < 6; i++)
        cr_expect_float_eq(dx[i], dy[i] + 1.0f, 1e-7);
}

/* ------------------------------------------------------------ losses */

struct ce_case {
    int n, classes;
    float *z;
    int *labels;
};

static double ce_loss(void *p)
{
    struct ce_case *c = p;
    return fv_loss_softmax_cross_entropy(c->n, c->classes, c->z, c->labels, NULL, NULL);
}

Test(loss, softmax_cross_entropy_gradient)
{
    int labels[4] = {0, 3, 2, 3};
    struct ce_case c = {.n = 4, .classes = 5, .labels = labels};
    fv_rng_seed(&test_rng, 1);
    c.z = alloc_floats(20);
    fill(c.z, 20, -3, 3);
    float *dz = alloc_floats(20);
    int correct;
    float l = fv_loss_softmax_cross_entropy(4, 5, c.z, labels, dz, &correct);
    cr_expect(l > 0);
    check_gradient("dlogits", c.z, 20, dz, ce_loss, &c, 1e-2f);
    /* uniform logits: loss log(classes) */
    float zero[5] = {0};
    int label = 2;
    cr_expect_float_eq(fv_loss_softmax_cross_entropy(1, 5, zero, &label, NULL, NULL), logf(5.0f),
                       1e-6);
    free(c.z), free(dz);
}

struct center_case {
    struct fv_center_loss *cl;
    int n;
    float *x;
    int *labels;
};

static double center_loss_value(void *p)
{
    struct center_case *c = p;
    return fv_center_loss_lambda(c->cl) *
           fv_center_loss_forward(c->cl, c->n, c->x, c->labels, NULL);
}

Test(loss, center_loss_gradient_and_normalisation)
{
    int labels[5] = {0, 1, 0, 2, 1};
    struct center_case c = {.n = 5, .labels = labels};
    cr_assert_eq(fv_center_loss_new(3, 4, 0.7f, 0.5f, &c.cl, NULL), FV_OK);
    fv_rng_seed(&test_rng, 17);
    fill(fv_center_loss_centers(c.cl), 12, -1, 1);
    c.x = alloc_floats(20);
    fill(c.x, 20, -2, 2);
    float *dx = alloc_floats(20);
    float lc = fv_center_loss_forward(c.cl, 5, c.x, labels, dx);
    check_gradient("center dx", c.x, 20, dx, center_loss_value, &c, 1e-2f);
    /* L_C = (1/(2m)) Σ ‖x_i − c_{y_i}‖², m = 5 */
    double want = 0.0;
    const float *centres = fv_center_loss_centers(c.cl);
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 4; k++) {
            double d = c.x[i * 4 + k] - centres[labels[i] * 4 + k];
            want += d * d;
        }
    cr_expect_float_eq(lc, (float)(want / 10.0), 1e-5);
    /* gradient = λ (x_i − c_{y_i}) / m */
    cr_expect_float_eq(dx[5], 0.7f * (c.x[5] - centres[4 + 1]) / 5.0f, 1e-6);
    fv_center_loss_free(c.cl), free(c.x), free(dx);
}

Test(loss, center_update_rule_by_hand)
{
    /* two classes in 2-D, centres c0 = (1, 1), c1 = (0, 0), α = 0.5.
     * batch: x = (3, 1) and (1, 5) of class 0, (2, 2) of class 1.
     * Δc0 = ((1−3) + (1−1), (1−1) + (1−5)) / (1 + 2) = (−2/3, −4/3)
     * c0 ← (1, 1) − 0.5 · Δc0 = (4/3, 5/3)
     * Δc1 = ((0−2), (0−2)) / (1 + 1) = (−1, −1); c1 ← (0.5, 0.5)
     * a class absent from the batch does not move (class 2). */
    struct fv_center_loss *cl;
    cr_assert_eq(fv_center_loss_new(3, 2, 0.1f, 0.5f, &cl, NULL), FV_OK);
    float *c = fv_center_loss_centers(cl);
    c[0] = 1, c[1] = 1, c[2] = 0, c[3] = 0, c[4] = 7, c[5] = -7;
    float x[6] = {3, 1, 1, 5, 2, 2};
    int labels[3] = {0, 0, 1};
    fv_center_loss_update(cl, 3, x, labels);
    cr_expect_float_eq(c[0], 4.0f / 3.0f, 1e-6);
    cr_expect_float_eq(c[1], 5.0f / 3.0f, 1e-6);
    cr_expect_float_eq(c[2], 0.5f, 1e-6);
    cr_expect_float_eq(c[3], 0.5f, 1e-6);
    cr_expect(c[4] == 7 && c[5] == -7);
    fv_center_loss_free(cl);
}

struct lmcl_case {
    int n, dim, classes;
    float s, m;
    float *x, *w, *scratch;
    int *labels;
};

static double lmcl_value(void *p)
{
    struct lmcl_case *c = p;
    return fv_loss_lmcl(c->n, c->dim, c->classes, c->x, c->w, c->labels, c->s, c->m, NULL, NULL,
                        NULL, c->scratch);
}

Test(loss, lmcl_gradients_to_features_and_weights)
{
    int labels[4] = {2, 0, 1, 2};
    struct lmcl_case c = {.n = 4, .dim = 5, .classes = 3, .s = 8.0f, .m = 0.35f, .labels = labels};
    fv_rng_seed(&test_rng, 23);
    c.x = alloc_floats(20), c.w = alloc_floats(15);
    c.scratch = alloc_floats(fv_loss_lmcl_scratch(4, 5, 3));
    fill(c.x, 20, -1, 1), fill(c.w, 15, -1, 1);
    float *dx = alloc_floats(20), *dw = alloc_floats(15);
    float l = fv_loss_lmcl(4, 5, 3, c.x, c.w, labels, c.s, c.m, dx, dw, NULL, c.scratch);
    cr_expect(l > 0);
    check_gradient("lmcl dx", c.x, 20, dx, lmcl_value, &c, 1e-3f);
    check_gradient("lmcl dw", c.w, 15, dw, lmcl_value, &c, 1e-3f);
    /* the loss only sees directions: scaling a feature changes nothing */
    for (int k = 0; k < 5; k++)
        c.x[k] *= 3.0f;
    cr_expect_float_eq((float)lmcl_value(&c), l, 1e-4);
    /* hand case: one sample along class 0's weight, m = 0 vs m = 0.5 */
    float x1[2] = {2, 0}, w1[4] = {1, 0, 0, 3}, scratch[64];
    int y1 = 0;
    float l0 = fv_loss_lmcl(1, 2, 2, x1, w1, &y1, 4.0f, 0.0f, NULL, NULL, NULL, scratch);
    float l5 = fv_loss_lmcl(1, 2, 2, x1, w1, &y1, 4.0f, 0.5f, NULL, NULL, NULL, scratch);
    cr_expect_float_eq(l0, logf(1.0f + expf(-4.0f)), 1e-5);  /* cos 1 vs 0 */
    cr_expect_float_eq(l5, logf(1.0f + expf(-2.0f)), 1e-5);  /* s(1 − 0.5) vs 0 */
    free(c.x), free(c.w), free(c.scratch), free(dx), free(dw);
}

/* The MNIST experiment's setting: 2-D features, ten classes, s = 16, m = 0.2.
 * Features and class weights of length 1 to 3 in every direction (near the
 * origin v/|v| curves too fast for central differences). */
Test(loss, lmcl_gradients_2d_ten_classes)
{
    int labels[6] = {0, 9, 4, 4, 7, 2};
    struct lmcl_case c = {.n = 6, .dim = 2, .classes = 10, .s = 16.0f, .m = 0.2f, .labels = labels};
    fv_rng_seed(&test_rng, 31);
    c.x = alloc_floats(12), c.w = alloc_floats(20);
    c.scratch = alloc_floats(fv_loss_lmcl_scratch(6, 2, 10));
    for (int i = 0; i < 16; i++) { /* 6 features, then 10 class weights */
        double angle = 2.0 * M_PI * fv_rng_uniform(&test_rng), r = 1.0 + 2.0 * fv_rng_uniform(&test_rng);
        float *v = i < 6 ? c.x + 2 * i : c.w + 2 * (i - 6);
        v[0] = (float)(r * cos(angle)), v[1] = (float)(r * sin(angle));
    }
    float *dx = alloc_floats(12), *dw = alloc_floats(20);
    int correct = -1;
    fv_loss_lmcl(6, 2, 10, c.x, c.w, labels, c.s, c.m, dx, dw, &correct, c.scratch);
    cr_expect(correct >= 0 && correct <= 6);
    check_gradient("lmcl 2-D dx", c.x, 12, dx, lmcl_value, &c, 1e-2f);
    check_gradient("lmcl 2-D dw", c.w, 20, dw, lmcl_value, &c, 1e-2f);
    /* only directions matter: the feature gradient is orthogonal to the feature */
    for (int i = 0; i < 6; i++)
        cr_expect(fabsf(dx[2 * i] * c.x[2 * i] + dx[2 * i + 1] * c.x[2 * i + 1]) < 1e-5f);
    free(c.x), free(c.w), free(c.scratch), free(dx), free(dw);
}

/* ------------------------------------------------------------ schedules, PRNG */

Test(schedule, step_multistep_cosine)
{
    struct fv_lr_schedule s = {.base_lr = 0.1f, .gamma = 0.1f};
    cr_assert_eq(fv_lr_schedule_parse("step:2", 100, 1000, &s, NULL), FV_OK);
    cr_expect_eq(s.kind, FV_SCHEDULE_STEP);
    cr_expect_float_eq(fv_lr_schedule_at(&s, 199), 0.1f, 1e-7);
    cr_expect_float_eq(fv_lr_schedule_at(&s, 200), 0.01f, 1e-7);
    cr_expect_float_eq(fv_lr_schedule_at(&s, 450), 0.001f, 1e-8);
    cr_assert_eq(fv_lr_schedule_parse("step:3,5", 10, 100, &s, NULL), FV_OK);
    cr_expect_eq(s.kind, FV_SCHEDULE_MULTISTEP);
    cr_expect_float_eq(fv_lr_schedule_at(&s, 29), 0.1f, 1e-7);
    cr_expect_float_eq(fv_lr_schedule_at(&s, 30), 0.01f, 1e-7);
    cr_expect_float_eq(fv_lr_schedule_at(&s, 99), 0.001f, 1e-8);
    cr_assert_eq(fv_lr_schedule_parse("cosine", 10, 100, &s, NULL), FV_OK);
    cr_expect_float_eq(fv_lr_schedule_at(&s, 0), 0.1f, 1e-7);
    cr_expect_float_eq(fv_lr_schedule_at(&s, 50), 0.05f, 1e-7);
    cr_expect_float_eq(fv_lr_schedule_at(&s, 100), 0.0f, 1e-7);
    cr_assert_eq(fv_lr_schedule_parse("constant", 10, 100, &s, NULL), FV_OK);
    cr_expect_float_eq(fv_lr_schedule_at(&s, 77), 0.1f, 1e-7);
    cr_expect_neq(fv_lr_schedule_parse("step:5,3", 10, 100, &s, NULL), FV_OK);
    cr_expect_neq(fv_lr_schedule_parse("step:", 10, 100, &s, NULL), FV_OK);
    cr_expect_neq(fv_lr_schedule_parse("linear", 10, 100, &s, NULL), FV_OK);
}

Test(rng, deterministic_and_in_range)
{
    struct fv_rng a, b;
    fv_rng_seed(&a, 5);
    fv_rng_seed(&b, 5);
    for (int i = 0; i < 100; i++)
        cr_expect_eq(fv_rng_next(&a), fv_rng_next(&b));
    for (int i = 0; i < 1000; i++) {
        double u = fv_rng_uniform(&a);
        cr_expect(u >= 0.0 && u < 1.0);
        cr_expect(fv_rng_below(&a, 7) < 7);
    }
}

/* ------------------------------------------------------------ whole networks */

/* A small graph with every trainable op: conv (fused ReLU), PReLU, batch norm,
 * residual add, max pool, depthwise, ReLU node, reshape, fully connected. */
static struct fv_graph *small_graph(void)
{
    struct fv_graph *g = fv_graph_new();
    struct fv_rng r;
    fv_rng_seed(&r, 77);
    int x = fv_graph_add_tensor(g, "input", 6, 6, 2);
    fv_graph_set_input(g, x);
    float buf[512];
#define BLOB(name, shape, rank, lo, hi)                                                        \
    (fill(buf, 512, lo, hi), fv_graph_add_blob(g, name, (int[])shape, rank, buf))
#define SHAPE(...) {__VA_ARGS__}
    struct fv_node n;
    n = fv_node_init(FV_OP_CONV2D, "c1");
    n.kernel_h = n.kernel_w = 3, n.padding = FV_PADDING_SAME, n.activation = FV_ACT_RELU;
    n.blobs[0] = BLOB("c1/w", SHAPE(4, 3, 3, 2), 4, -0.5f, 0.5f);
    n.blobs[1] = BLOB("c1/b", SHAPE(4), 1, 0.0f, 0.5f);
    n.inputs[0] = x, n.n_inputs = 1, n.output = fv_graph_add_tensor(g, "c1", 0, 0, 0);
    fv_graph_add_node(g, &n, NULL);
    n = fv_node_init(FV_OP_PRELU, "p1");
    n.blobs[0] = BLOB("p1/a", SHAPE(4), 1, 0.1f, 0.4f);
    n.inputs[0] = fv_graph_find_tensor(g, "c1"), n.n_inputs = 1;
    n.output = fv_graph_add_tensor(g, "p1", 0, 0, 0);
    fv_graph_add_node(g, &n, NULL);
    n = fv_node_init(FV_OP_BATCH_NORM, "bn");
    n.epsilon = 1e-3f;
    n.blobs[0] = BLOB("bn/gamma", SHAPE(4), 1, 0.5f, 1.5f);
    n.blobs[1] = BLOB("bn/beta", SHAPE(4), 1, -0.5f, 0.5f);
    n.blobs[2] = BLOB("bn/mean", SHAPE(4), 1, 0.0f, 0.0f);
    n.blobs[3] = BLOB("bn/var", SHAPE(4), 1, 1.0f, 1.0f);
    n.inputs[0] = fv_graph_find_tensor(g, "p1"), n.n_inputs = 1;
    n.output = fv_graph_add_tensor(g, "bn", 0, 0, 0);
    fv_graph_add_node(g, &n, NULL);
    n = fv_node_init(FV_OP_CONV2D, "c2");
    n.kernel_h = n.kernel_w = 3, n.padding = FV_PADDING_SAME;
    n.blobs[0] = BLOB("c2/w", SHAPE(4, 3, 3, 4), 4, -0.3f, 0.3f);
    n.inputs[0] = fv_graph_find_tensor(g, "bn"), n.n_inputs = 1;
    n.output = fv_graph_add_tensor(g, "c2", 0, 0, 0);
    fv_graph_add_node(g, &n, NULL);
    n = fv_node_init(FV_OP_ADD, "res");
    n.inputs[0] = fv_graph_find_tensor(g, "bn"), n.inputs[1] = fv_graph_find_tensor(g, "c2");
    n.n_inputs = 2, n.output = fv_graph_add_tensor(g, "res", 0, 0, 0);
    fv_graph_add_node(g, &n, NULL);
    n = fv_node_init(FV_OP_MAX_POOL2D, "pool");
    n.kernel_h = n.kernel_w = 2, n.stride_h = n.stride_w = 2;
    n.inputs[0] = fv_graph_find_tensor(g, "res"), n.n_inputs = 1;
    n.output = fv_graph_add_tensor(g, "pool", 0, 0, 0);
    fv_graph_add_node(g, &n, NULL);
    n = fv_node_init(FV_OP_DEPTHWISE_CONV2D, "dw");
    n.kernel_h = n.kernel_w = 3, n.padding = FV_PADDING_SAME;
    n.blobs[0] = BLOB("dw/w", SHAPE(3, 3, 4), 3, -0.5f, 0.5f);
    n.blobs[1] = BLOB("dw/b", SHAPE(4), 1, -0.2f, 0.2f);
    n.inputs[0] = fv_graph_find_tensor(g, "pool"), n.n_inputs = 1;
    n.output = fv_graph_add_tensor(g, "dw", 0, 0, 0);
    fv_graph_add_node(g, &n, NULL);
    n = fv_node_init(FV_OP_ADD, "shift");
    n.blobs[0] = BLOB("shift/b", SHAPE(4), 1, -0.2f, 0.2f);
    n.inputs[0] = fv_graph_find_tensor(g, "dw"), n.n_inputs = 1;
    n.output = fv_graph_add_tensor(g, "shift", 0, 0, 0);
    fv_graph_add_node(g, &n, NULL);
    n = fv_node_init(FV_OP_RELU, "r");
    n.inputs[0] = fv_graph_find_tensor(g, "shift"), n.n_inputs = 1;
    n.output = fv_graph_add_tensor(g, "r", 0, 0, 0);
    fv_graph_add_node(g, &n, NULL);
    n = fv_node_init(FV_OP_RESHAPE, "flat");
    n.inputs[0] = fv_graph_find_tensor(g, "r"), n.n_inputs = 1;
    n.output = fv_graph_add_tensor(g, "flat", 1, 1, 36);
    fv_graph_add_node(g, &n, NULL);
    n = fv_node_init(FV_OP_FULLY_CONNECTED, "feat");
    n.blobs[0] = BLOB("feat/w", SHAPE(3, 36), 2, -0.4f, 0.4f);
    n.blobs[1] = BLOB("feat/b", SHAPE(3), 1, -0.1f, 0.1f);
    n.inputs[0] = fv_graph_find_tensor(g, "flat"), n.n_inputs = 1;
    n.output = fv_graph_add_tensor(g, "feat", 0, 0, 0);
    fv_graph_add_node(g, &n, NULL);
#undef BLOB
#undef SHAPE
    fv_graph_add_output(g, fv_graph_find_tensor(g, "feat"));
    snprintf(fv_graph_meta(g)->embedding, FV_NAME_MAX, "feat");
    return g;
}

struct net_case {
    struct fv_trainer *tr;
    float *x;
    int *labels;
    int n;
};

static double net_loss(void *p)
{
    struct net_case *c = p;
    return fv_trainer_loss_and_gradients(c->tr, c->x, c->labels, c->n);
}

static void run_network_check(enum fv_loss_kind loss)
{
    fv_rng_seed(&test_rng, 1234);
    struct fv_graph *g = small_graph();
    struct fv_train_params p;
    fv_train_default_params(&p);
    p.batch = 4, p.classes = 4, p.loss = loss, p.lambda = 0.5f, p.s = 4.0f, p.m = 0.2f;
    struct fv_error err = {0};
    struct net_case c = {.n = 4, .labels = (int[]){0, 3, 1, 3}};
    cr_assert_eq(fv_trainer_new(g, &p, &c.tr, &err), FV_OK, "%s", err.message);
    if (loss == FV_LOSS_CENTER)
        fill(fv_center_loss_centers(fv_trainer_center_loss(c.tr)), 12, -1, 1);
    c.x = alloc_floats(4 * 72);
    fill(c.x, 4 * 72, -1, 1);
    struct fv_graph *tg = fv_trainer_graph(c.tr);
    for (int b = 0; b < fv_graph_blob_count(tg); b++) {
        float *grad = fv_trainer_param_grad(c.tr, b);
        struct fv_blob *blob = fv_graph_blob(tg, b);
        if (!grad)
            continue;
        net_loss(&c);
        float *analytic = alloc_floats(blob->count);
        memcpy(analytic, grad, blob->count * sizeof *analytic);
        check_gradient(blob->name, blob->data, blob->count, analytic, net_loss, &c, 2e-3f);
        free(analytic);
    }
    cr_expect_null(fv_trainer_param_grad(c.tr, fv_graph_find_tensor(tg, "nonexistent")));
    free(c.x);
    fv_trainer_free(c.tr);
}

Test(network, gradients_softmax) { run_network_check(FV_LOSS_SOFTMAX); }
Test(network, gradients_center_loss) { run_network_check(FV_LOSS_CENTER); }
Test(network, gradients_lmcl) { run_network_check(FV_LOSS_LMCL); }

/* A batch split over two workers gives exactly what one worker gives for each
 * half, summed with weights 1/2: with the gradient checks above, the split
 * gradients are those of the mean loss over the batch (batch norm normalising
 * each half by its own statistics, as data-parallel training does). */
static void run_halves_check(enum fv_loss_kind loss)
{
    struct fv_trainer *tr[2];
    struct fv_train_params p;
    fv_train_default_params(&p);
    p.batch = 4, p.classes = 4, p.loss = loss, p.lambda = 0.5f, p.s = 4.0f, p.m = 0.2f;
    for (int k = 0; k < 2; k++) {
        fv_rng_seed(&test_rng, 1234);
        p.threads = 2 - k;
        cr_assert_eq(fv_trainer_new(small_graph(), &p, &tr[k], NULL), FV_OK);
        if (loss == FV_LOSS_CENTER) {
            fv_rng_seed(&test_rng, 5);
            fill(fv_center_loss_centers(fv_trainer_center_loss(tr[k])), 12, -1, 1);
        }
    }
    float x[4 * 72];
    fill(x, 4 * 72, -1, 1);
    int labels[4] = {0, 3, 1, 3};
    float split = fv_trainer_loss_and_gradients(tr[0], x, labels, 4);
    struct fv_graph *g = fv_trainer_graph(tr[1]);
    const int nb = fv_graph_blob_count(g);
    float **sum = calloc((size_t)nb, sizeof *sum);
    float halves = 0.0f;
    for (int h = 0; h < 2; h++) {
        halves += 0.5f * fv_trainer_loss_and_gradients(tr[1], x + h * 2 * 72, labels + h * 2, 2);
        for (int b = 0; b < nb; b++) {
            const float *grad = fv_trainer_param_grad(tr[1], b);
            if (!grad)
                continue;
            if (!sum[b])
                sum[b] = alloc_floats(fv_graph_blob(g, b)->count);
            for (size_t i = 0; i < fv_graph_blob(g, b)->count; i++)
                sum[b][i] += 0.5f * grad[i];
        }
    }
    cr_expect_float_eq(split, halves, 1e-6f * fmaxf(1.0f, fabsf(halves)));
    for (int b = 0; b < nb; b++) {
        const float *grad = fv_trainer_param_grad(tr[0], b);
        cr_assert_eq(grad == NULL, sum[b] == NULL);
        for (size_t i = 0; grad && i < fv_graph_blob(g, b)->count; i++)
            cr_expect_float_eq(grad[i], sum[b][i], 1e-6f * fmaxf(1.0f, fabsf(sum[b][i])),
                               "%s[%zu]: %g split, %g from the halves", fv_graph_blob(g, b)->name,
                               i, grad[i], sum[b][i]);
        free(sum[b]);
    }
    free(sum);
    fv_trainer_free(tr[0]);
    fv_trainer_free(tr[1]);
}

Test(network, two_threads_sum_the_halves_softmax) { run_halves_check(FV_LOSS_SOFTMAX); }
Test(network, two_threads_sum_the_halves_center_loss) { run_halves_check(FV_LOSS_CENTER); }
Test(network, two_threads_sum_the_halves_lmcl) { run_halves_check(FV_LOSS_LMCL); }

/* LeNets++ has no batch norm, so a batch split over workers has the same loss
 * and gradients as the whole batch on one, up to the order of the sums; also
 * with uneven shards (5 over 3) and with more workers than samples. */
static void run_split_matches_whole(enum fv_loss_kind loss)
{
    struct fv_train_params p;
    fv_train_default_params(&p);
    p.batch = 5, p.classes = 10, p.loss = loss, p.lambda = 0.1f, p.s = 16.0f, p.m = 0.1f;
    struct fv_trainer *tr[3];
    const int threads[3] = {1, 3, 4};
    for (int k = 0; k < 3; k++) {
        struct fv_graph *g;
        struct fv_error err = {0};
        p.threads = threads[k];
        cr_assert_eq(fv_train_arch_new("lenetpp", 5, &g, &err), FV_OK, "%s", err.message);
        cr_assert_eq(fv_trainer_new(g, &p, &tr[k], &err), FV_OK, "%s", err.message);
        if (loss == FV_LOSS_CENTER) {
            fv_rng_seed(&test_rng, 3);
            fill(fv_center_loss_centers(fv_trainer_center_loss(tr[k])), 20, -1, 1);
        }
    }
    fv_rng_seed(&test_rng, 99);
    float *x = alloc_floats(5 * 28 * 28);
    fill(x, 5 * 28 * 28, -1, 1);
    int labels[5] = {3, 1, 4, 1, 5};
    for (int n = 5; n >= 1; n -= 4) { /* the whole batch, then one sample (idle workers) */
        float l1 = fv_trainer_loss_and_gradients(tr[0], x, labels, n);
        for (int k = 1; k < 3; k++) {
            float lk = fv_trainer_loss_and_gradients(tr[k], x, labels, n);
            cr_expect_float_eq(lk, l1, 1e-5f * fmaxf(1.0f, fabsf(l1)), "%d threads, n %d: loss %g vs %g",
                               threads[k], n, lk, l1);
            struct fv_graph *g = fv_trainer_graph(tr[0]);
            for (int b = 0; b < fv_graph_blob_count(g); b++) {
                const float *g1 = fv_trainer_param_grad(tr[0], b), *gk = fv_trainer_param_grad(tr[k], b);
                if (!g1)
                    continue;
                double diff = 0.0, norm = 0.0;
                for (size_t i = 0; i < fv_graph_blob(g, b)->count; i++) {
                    diff = fmax(diff, fabs((double)gk[i] - g1[i]));
                    norm = fmax(norm, fabs((double)g1[i]));
                }
                cr_expect(diff <= 1e-4 * norm + 1e-7, "%d threads, n %d, %s: max diff %g of %g",
                          threads[k], n, fv_graph_blob(g, b)->name, diff, norm);
            }
        }
    }
    /* predictions and features split the same way */
    float f1[10], fk[10];
    int p1[5], pk[5];
    struct fv_error err = {0};
    cr_assert_eq(fv_trainer_predict(tr[0], x, 5, f1, p1, &err), FV_OK);
    for (int k = 1; k < 3; k++) {
        cr_assert_eq(fv_trainer_predict(tr[k], x, 5, fk, pk, &err), FV_OK);
        for (int i = 0; i < 10; i++)
            cr_expect_float_eq(fk[i], f1[i], 1e-5f * fmaxf(1.0f, fabsf(f1[i])));
        for (int i = 0; i < 5; i++)
            cr_expect_eq(pk[i], p1[i]);
    }
    for (int k = 0; k < 3; k++)
        fv_trainer_free(tr[k]);
    free(x);
}

Test(network, split_batch_matches_whole_softmax) { run_split_matches_whole(FV_LOSS_SOFTMAX); }
Test(network, split_batch_matches_whole_center_loss) { run_split_matches_whole(FV_LOSS_CENTER); }
Test(network, split_batch_matches_whole_lmcl) { run_split_matches_whole(FV_LOSS_LMCL); }

/* ------------------------------------------------------------ checkpoints */

static void train_steps(struct fv_trainer *tr, int from, int to)
{
    struct fv_rng r;
    float x[4 * 72];
    int labels[4];
    for (int s = from; s < to; s++) {
        fv_rng_seed(&r, (uint64_t)s);
        for (int i = 0; i < 4 * 72; i++)
            x[i] = (float)(2.0 * fv_rng_uniform(&r) - 1.0);
        for (int i = 0; i < 4; i++)
            labels[i] = (int)fv_rng_below(&r, 4);
        cr_assert_eq(fv_trainer_step(tr, x, labels, 4, NULL, NULL), FV_OK);
    }
}

static struct fv_trainer *small_trainer_threads(int threads)
{
    fv_rng_seed(&test_rng, 1234);
    struct fv_train_params p;
    fv_train_default_params(&p);
    p.batch = 4, p.classes = 4, p.loss = FV_LOSS_CENTER, p.lambda = 0.1f, p.threads = threads;
    p.schedule.kind = FV_SCHEDULE_COSINE, p.schedule.total_steps = 20;
    struct fv_trainer *tr;
    struct fv_error err = {0};
    cr_assert_eq(fv_trainer_new(small_graph(), &p, &tr, &err), FV_OK, "%s", err.message);
    return tr;
}

static struct fv_trainer *small_trainer(void) { return small_trainer_threads(1); }

static void expect_same_weights(struct fv_trainer *a, struct fv_trainer *b)
{
    struct fv_graph *ga = fv_trainer_graph(a), *gb = fv_trainer_graph(b);
    for (int i = 0; i < fv_graph_blob_count(ga); i++)
        cr_expect_arr_eq(fv_graph_blob(ga, i)->data, fv_graph_blob(gb, i)->data,
                         fv_graph_blob(ga, i)->count * sizeof(float), "blob %s",
                         fv_graph_blob(ga, i)->name);
    cr_expect_arr_eq(fv_center_loss_centers(fv_trainer_center_loss(a)),
                     fv_center_loss_centers(fv_trainer_center_loss(b)), 12 * sizeof(float));
}

Test(network, two_threads_are_deterministic_and_resume_exactly)
{
    const char *path = "/tmp/facever-test-train-threads.ckpt";
    struct fv_trainer *a = small_trainer_threads(2), *b = small_trainer_threads(2);
    struct fv_error err = {0};
    train_steps(a, 0, 12);
    train_steps(b, 0, 6);
    cr_assert_eq(fv_trainer_save_checkpoint(b, path, &err), FV_OK, "%s", err.message);
    fv_trainer_free(b);
    b = small_trainer_threads(2);
    cr_assert_eq(fv_trainer_load_checkpoint(b, path, &err), FV_OK, "%s", err.message);
    train_steps(b, 6, 12);
    expect_same_weights(a, b);
    remove(path);
    fv_trainer_free(a);
    fv_trainer_free(b);
}

/* Each worker normalises by its own shard's statistics, but the running
 * statistics follow the whole batch, as on one thread. */
Test(network, batch_norm_running_statistics_cover_the_whole_batch)
{
    struct fv_trainer *one = small_trainer_threads(1), *two = small_trainer_threads(2);
    train_steps(one, 0, 1);
    train_steps(two, 0, 1);
    struct fv_graph *g1 = fv_trainer_graph(one), *g2 = fv_trainer_graph(two);
    /* before the update reaches them, one step's statistics come from the same
     * inputs and the same initial weights */
    const char *names[2] = {"bn/mean", "bn/var"};
    for (int k = 0; k < 2; k++) {
        int b1 = -1, b2 = -1;
        for (int i = 0; i < fv_graph_blob_count(g1); i++) {
            if (strcmp(fv_graph_blob(g1, i)->name, names[k]) == 0)
                b1 = i;
            if (strcmp(fv_graph_blob(g2, i)->name, names[k]) == 0)
                b2 = i;
        }
        cr_assert(b1 >= 0 && b2 >= 0);
        for (int c = 0; c < 4; c++)
            cr_expect_float_eq(fv_graph_blob(g2, b2)->data[c], fv_graph_blob(g1, b1)->data[c], 1e-5,
                               "%s[%d]", names[k], c);
    }
    fv_trainer_free(one);
    fv_trainer_free(two);
}

Test(network, checkpoint_resume_is_exact)
{
    const char *path = "/tmp/facever-test-train.ckpt";
    struct fv_trainer *a = small_trainer(), *b = small_trainer();
    struct fv_error err = {0};
    train_steps(a, 0, 12);
    train_steps(b, 0, 6);
    cr_assert_eq(fv_trainer_save_checkpoint(b, path, &err), FV_OK, "%s", err.message);
    fv_trainer_free(b);
    b = small_trainer();
    cr_assert_eq(fv_trainer_load_checkpoint(b, path, &err), FV_OK, "%s", err.message);
    cr_expect_eq(fv_trainer_steps(b), 6);
    train_steps(b, 6, 12);
    struct fv_graph *ga = fv_trainer_graph(a), *gb = fv_trainer_graph(b);
    for (int i = 0; i < fv_graph_blob_count(ga); i++)
        cr_expect_arr_eq(fv_graph_blob(ga, i)->data, fv_graph_blob(gb, i)->data,
                         fv_graph_blob(ga, i)->count * sizeof(float), "blob %s",
                         fv_graph_blob(ga, i)->name);
    cr_expect_arr_eq(fv_center_loss_centers(fv_trainer_center_loss(a)),
                     fv_center_loss_centers(fv_trainer_center_loss(b)), 12 * sizeof(float));
    /* a checkpoint of another loss is refused */
    struct fv_train_params p;
    fv_train_default_params(&p);
    p.batch = 4, p.classes = 4;
    struct fv_trainer *c;
    cr_assert_eq(fv_trainer_new(small_graph(), &p, &c, NULL), FV_OK);
    cr_expect_eq(fv_trainer_load_checkpoint(c, path, &err), FV_ERR_FORMAT);
    fv_trainer_free(c);
    /* a truncated one too */
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    cr_assert_eq(ftruncate(fileno(f), 200), 0);
    fclose(f);
    cr_expect_neq(fv_trainer_load_checkpoint(b, path, &err), FV_OK);
    remove(path);
    fv_trainer_free(a);
    fv_trainer_free(b);
}

Test(network, thread_count_is_checked_and_capped_by_the_batch)
{
    struct fv_train_params p;
    fv_train_default_params(&p);
    p.batch = 2, p.classes = 4;
    struct fv_trainer *tr;
    struct fv_error err = {0};
    p.threads = 0;
    cr_expect_eq(fv_trainer_new(small_graph(), &p, &tr, &err), FV_ERR_INVALID_ARG);
    p.threads = FV_TRAIN_MAX_THREADS + 1;
    cr_expect_eq(fv_trainer_new(small_graph(), &p, &tr, &err), FV_ERR_INVALID_ARG);
    p.threads = 8; /* two samples: two workers */
    cr_assert_eq(fv_trainer_new(small_graph(), &p, &tr, &err), FV_OK, "%s", err.message);
    float x[2 * 72] = {0};
    int labels[2] = {1, 2};
    cr_expect_eq(fv_trainer_step(tr, x, labels, 2, NULL, &err), FV_OK);
    fv_trainer_free(tr);
}

Test(network, unsupported_op_is_refused)
{
    struct fv_graph *g = fv_graph_new();
    int x = fv_graph_add_tensor(g, "input", 1, 1, 4);
    fv_graph_set_input(g, x);
    struct fv_node n = fv_node_init(FV_OP_SOFTMAX, "sm");
    n.inputs[0] = x, n.n_inputs = 1, n.output = fv_graph_add_tensor(g, "sm", 0, 0, 0);
    fv_graph_add_node(g, &n, NULL);
    fv_graph_add_output(g, n.output);
    snprintf(fv_graph_meta(g)->embedding, FV_NAME_MAX, "sm");
    struct fv_train_params p;
    fv_train_default_params(&p);
    p.classes = 3;
    struct fv_trainer *tr;
    struct fv_error err = {0};
    cr_expect_eq(fv_trainer_new(g, &p, &tr, &err), FV_ERR_UNSUPPORTED);
    cr_expect(strstr(err.message, "softmax") != NULL, "%s", err.message);
}
