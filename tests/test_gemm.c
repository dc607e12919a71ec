/* test_gemm.c - every CPU level's kernels (packed-weight GEMM and its
 * epilogue, windowed convolutions, Winograd, depthwise with PReLU, bf16)
 * against a float64 reference and against the generic level, on the edge
 * sizes of every level's tiles (AVX-512 12 × 32, AVX2 and NEON 6 × 16,
 * generic 4 × 8). Levels this CPU lacks are skipped with a note; FV_CPU does
 * not narrow these tests: they run every supported level in-process. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gemm.h"
#include "model/kernels.h"
#include "model/ops.h"
#include "model/winograd.h"
#include "tests/levels.h"

/* Deterministic values in [-1, 1). */
static float value(unsigned *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 23) - 1.0f;
}

/* c = epilogue(a · wᵀ) in double precision, the way gemm.h defines it. */
static void reference(size_t m, int n, int k, const float *a, const float *w,
                      const struct fv_gemm_epilogue *e, const float *residual, double *c)
{
    for (size_t i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double v = 0.0;
            for (int p = 0; p < k; p++)
                v += (double)a[i * (size_t)k + p] * w[(size_t)j * k + p];
            if (e->bias)
                v += e->bias[j];
            if (residual)
                v += residual[i * (size_t)n + j];
            if (e->act != FV_ACT_NONE && v < 0.0)
                v = 0.0;
            if (e->act == FV_ACT_RELU6 && v > 6.0)
                v = 6.0;
            if (e->slopes && v < 0.0)
                v *= e->slopes[e->n_slopes == 1 ? 0 : j];
            c[i * (size_t)n + j] = v;
        }
}

enum residual_kind { NO_RESIDUAL, SEPARATE, IN_PLACE };

/* x rounded to bfloat16 and back. */
static float bf16_round(float x) { return fv_bf16_to_float(fv_bf16_from_float(x)); }

/* The bf16 kernel, where the CPU has it, against the reference on operands
 * rounded to bf16: each product is then exact, so only float summation differs. */
static void check_bf16(size_t m, int n, int k, const float *a, const float *w,
                       struct fv_gemm_epilogue *e, enum residual_kind res, const float *r, float *c)
{
    size_t count = fv_gemm_packed_bf16_count(n, k);
    if (count == 0 || !fv_cpu_supports(FV_CPU_AVX512_BF16))
        return;
    float *a16 = malloc(m * (size_t)k * sizeof *a16), *w16 = malloc((size_t)n * k * sizeof *w16);
    double *want = malloc(m * (size_t)n * sizeof *want);
    uint16_t *packed = aligned_alloc(64, ((count + 31) & ~(size_t)31) * sizeof *packed);
    cr_assert(a16 && w16 && want && packed);
    for (size_t i = 0; i < m * (size_t)k; i++)
        a16[i] = bf16_round(a[i]);
    for (size_t i = 0; i < (size_t)n * k; i++)
        w16[i] = bf16_round(w[i]);
    reference(m, n, k, a16, w16, e, res == NO_RESIDUAL ? NULL : r, want);
    fv_gemm_pack_bf16(n, k, w, packed);
    memset(c, 0xff, m * (size_t)n * sizeof *c);
    if (res == IN_PLACE)
        memcpy(c, r, m * (size_t)n * sizeof *c);
    e->residual = res == NO_RESIDUAL ? NULL : res == IN_PLACE ? c : r;
    fv_kernels_get(FV_CPU_AVX512_BF16)->gemm_bf16(m, n, k, a, (size_t)k, packed, e, c);
    for (size_t i = 0; i < m * (size_t)n; i++)
        cr_assert(fabs(c[i] - want[i]) <= 2e-6 * (k + 2),
                  "bf16 m=%zu n=%d k=%d element %zu: got %.7g, want %.7g", m, n, k, i, c[i],
                  want[i]);
    free(a16), free(w16), free(want), free(packed);
}

/* One result: every element within tol of want (NaN fails). */
static void expect_near(const char *what, size_t m, int n, int k, const float *c,
                        const double *want, double tol)
{
    for (size_t i = 0; i < m * (size_t)n; i++)
        cr_assert(fabs(c[i] - want[i]) <= tol, "%s m=%zu n=%d k=%d element %zu: got %.7g, want %.7g",
                  what, m, n, k, i, c[i], want[i]);
}

/* Runs one case through BLAS and through every level's packed kernel, and
 * compares each with the float64 reference and each level with generic. */
static void check_case(size_t m, int n, int k, int with_bias, enum fv_activation act,
                       int n_slopes, enum residual_kind res)
{
    unsigned state = (unsigned)(m * 7919 + (size_t)n * 131 + (size_t)k);
    float *a = malloc(m * (size_t)k * sizeof *a), *w = malloc((size_t)n * k * sizeof *w);
    float *bias = malloc((size_t)n * sizeof *bias), *slopes = malloc((size_t)n * sizeof *slopes);
    float *r = malloc(m * (size_t)n * sizeof *r), *c = malloc(m * (size_t)n * sizeof *c);
    double *want = malloc(m * (size_t)n * sizeof *want), *generic = malloc(m * (size_t)n * sizeof *generic);
    cr_assert(a && w && bias && slopes && r && c && want && generic);
    for (size_t i = 0; i < m * (size_t)k; i++)
        a[i] = value(&state);
    for (size_t i = 0; i < (size_t)n * k; i++)
        w[i] = value(&state);
    for (int j = 0; j < n; j++) {
        bias[j] = value(&state);
        slopes[j] = 0.25f * value(&state);
    }
    for (size_t i = 0; i < m * (size_t)n; i++)
        r[i] = value(&state);
    struct fv_gemm_epilogue e = {.bias = with_bias ? bias : NULL, .act = act,
                                 .slopes = n_slopes ? slopes : NULL, .n_slopes = n_slopes};
    reference(m, n, k, a, w, &e, res == NO_RESIDUAL ? NULL : r, want);
    check_bf16(m, n, k, a, w, &e, res, r, c);
    const struct fv_kernels *levels[FV_CPU_LEVEL_COUNT];
    int n_levels = test_levels(levels);
    for (int path = -1; path < n_levels; path++) {
        const struct fv_kernels *kl = path < 0 ? NULL : levels[path];
        float *packed = NULL;
        if (kl) {
            size_t pf = fv_kernels_packed_floats(kl, n, k);
            packed = aligned_alloc(64, ((pf + 15) & ~(size_t)15) * sizeof *packed);
            cr_assert(packed);
            memset(packed, 0xff, pf * sizeof *packed);
            kl->pack(n, k, w, packed);
        }
        memset(c, 0xff, m * (size_t)n * sizeof *c); /* NaN: every element must be written */
        if (res == IN_PLACE)
            memcpy(c, r, m * (size_t)n * sizeof *c);
        e.residual = res == NO_RESIDUAL ? NULL : res == IN_PLACE ? c : r;
        fv_gemm_nt(kl, m, n, k, a, (size_t)k, w, packed, &e, c);
        expect_near(kl ? kl->name : "blas", m, n, k, c, want, 1e-5 * (k + 2));
        if (kl && kl->level == FV_CPU_GENERIC)
            for (size_t i = 0; i < m * (size_t)n; i++)
                generic[i] = c[i];
        else if (kl) /* the same sums in another order: float rounding apart */
            expect_near(kl->name, m, n, k, c, generic, 2e-6 * (k + 2));
        free(packed);
    }
    free(a), free(w), free(bias), free(slopes), free(r), free(c), free(want), free(generic);
}

Test(gemm, hand_computed_product_and_epilogue)
{
    /* a = [[1, 2], [3, 4]], w = [[1, 0], [1, -1], [0, 2]]: a · wᵀ = [[1, -1, 4], [3, -1, 8]].
     * bias (0, 1, -10): [[1, 0, -6], [3, 0, -2]]; PReLU with slope 0.5: [[1, 0, -3], [3, 0, -1]]. */
    const float a[] = {1, 2, 3, 4}, w[] = {1, 0, 1, -1, 0, 2}, bias[] = {0, 1, -10};
    const float want[] = {1, 0, -3, 3, 0, -1};
    float c[6];
    struct fv_gemm_epilogue e = {.bias = bias, .slopes = (const float[]){0.5f}, .n_slopes = 1};
    fv_gemm_nt(NULL, 2, 3, 2, a, 2, w, NULL, &e, c);
    for (int i = 0; i < 6; i++)
        cr_expect_float_eq(c[i], want[i], 1e-6, "blas element %d: %g", i, c[i]);
    const struct fv_kernels *levels[FV_CPU_LEVEL_COUNT];
    int n_levels = test_levels(levels);
    for (int li = 0; li < n_levels; li++) {
        const struct fv_kernels *k = levels[li];
        const int p = k->panel;
        cr_assert_eq(fv_kernels_packed_floats(k, 3, 2), (size_t)(2 * p), "%s", k->name);
        float *aligned = aligned_alloc(64, 2 * p * sizeof *aligned);
        k->pack(3, 2, w, aligned);
        /* Panel layout: k-major, `panel` columns per k, zeros past n. */
        cr_expect_eq(aligned[0], 1.0f);
        cr_expect_eq(aligned[1], 1.0f);
        cr_expect_eq(aligned[2], 0.0f);
        cr_expect_eq(aligned[3], 0.0f);
        cr_expect_eq(aligned[p + 1], -1.0f);
        cr_expect_eq(aligned[p + 2], 2.0f);
        cr_expect_eq(aligned[p + 3], 0.0f);
        memset(c, 0, sizeof c);
        fv_gemm_nt(k, 2, 3, 2, a, 2, w, aligned, &e, c);
        for (int i = 0; i < 6; i++)
            cr_expect_float_eq(c[i], want[i], 1e-6, "%s element %d: %g", k->name, i, c[i]);
        free(aligned);
    }
}

Test(gemm, bf16_rounding_hand_cases)
{
    cr_expect_eq(fv_bf16_from_float(1.0f), 0x3f80);
    cr_expect_eq(fv_bf16_from_float(-2.5f), 0xc020);
    /* 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even one, 1. */
    cr_expect_eq(fv_bf16_from_float(1.0f + 0x1p-8f), 0x3f80);
    /* 1 + 3·2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up. */
    cr_expect_eq(fv_bf16_from_float(1.0f + 3 * 0x1p-8f), 0x3f82);
    /* Just above the halfway point rounds up, just below rounds down. */
    cr_expect_eq(fv_bf16_from_float(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    cr_expect_eq(fv_bf16_from_float(1.0f + 0x1p-8f - 0x1p-20f), 0x3f80);
    cr_expect_eq(fv_bf16_from_float(INFINITY), 0x7f80);
    cr_expect_eq(fv_bf16_from_float(3.4028235e38f), 0x7f80); /* FLT_MAX rounds up to inf */
    cr_expect(isnan(fv_bf16_to_float(fv_bf16_from_float(NAN))));
    cr_expect_eq(fv_bf16_to_float(0x3f81), 1.0078125f);
    cr_expect_eq(fv_bf16_to_float(0x8000), 0.0f);
    cr_expect(signbit(fv_bf16_to_float(0x8000)));
}

Test(gemm, bf16_hand_computed_product)
{
    if (!fv_cpu_supports(FV_CPU_AVX512_BF16)) {
        fprintf(stderr, "gemm: no AVX-512 BF16 here: bf16 kernel not checked\n");
        return;
    }
    /* As hand_computed_product_and_epilogue, with a value that bf16 rounds:
     * 1 + 2^-8 + 2^-10 becomes 1 + 2^-7, so a · wᵀ row 0 is [1 + 2^-7, -1 + 2^-7 ... ]. */
    const float a[] = {1.0f + 0x1p-8f + 0x1p-10f, 2, 3, 4}, w[] = {1, 0, 1, -1, 0, 2};
    const float bias[] = {0, 1, -10};
    const float want[] = {1.0078125f, 0.0078125f, -3.0f, 3, 0, -1};
    float c[6];
    uint16_t *packed = aligned_alloc(64, 64 * sizeof *packed);
    cr_assert_eq(fv_gemm_packed_bf16_count(3, 2), 64); /* one panel: 32 columns × 2 */
    fv_gemm_pack_bf16(3, 2, w, packed);
    /* Pairs along k, column by column: (w00, w01), (w10, w11), (w20, w21), zeros. */
    static const uint16_t head[] = {0x3f80, 0, 0x3f80, 0xbf80, 0, 0x4000, 0, 0};
    for (int i = 0; i < 8; i++)
        cr_expect_eq(packed[i], head[i], "packed[%d] = %#x", i, packed[i]);
    struct fv_gemm_epilogue e = {.bias = bias, .slopes = (const float[]){0.5f}, .n_slopes = 1};
    fv_kernels_get(FV_CPU_AVX512_BF16)->gemm_bf16(2, 3, 2, a, 2, packed, &e, c);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(c[i], want[i], "element %d: %.9g, want %.9g", i, c[i], want[i]);
    free(packed);
}

Test(gemm, tile_edges_against_reference)
{
    fprintf(stderr, "gemm: kernels checked at: %s\n", fv_cpu_supported_names());
    /* Rows around the 4-, 6- and 12-row tiles, columns around the 4-, 8-, 16- and
     * 32-wide vectors and panels. */
    static const size_t ms[] = {1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 25, 49};
    static const int ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 10, 15, 16, 17, 24, 31, 32, 33, 48, 64, 70};
    static const int ks[] = {1, 2, 3, 27, 28, 64, 130};
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++)
            for (size_t l = 0; l < sizeof ks / sizeof *ks; l++)
                check_case(ms[i], ns[j], ks[l], 1, FV_ACT_NONE, 0, NO_RESIDUAL);
}

Test(gemm, every_epilogue)
{
    const enum fv_activation acts[] = {FV_ACT_NONE, FV_ACT_RELU, FV_ACT_RELU6};
    for (int bias = 0; bias < 2; bias++)
        for (int act = 0; act < 3; act++)
            for (int slopes = 0; slopes < 3; slopes++) /* none, one shared, one per column */
                for (int res = NO_RESIDUAL; res <= IN_PLACE; res++) {
                    int n_slopes = slopes == 0 ? 0 : slopes == 1 ? 1 : 37;
                    check_case(29, 37, 19, bias, acts[act], n_slopes, (enum residual_kind)res);
                }
}

Test(gemm, large_values_relu6)
{
    /* Products far above 6 are clamped; with bias -100 all go to zero. */
    float a[12 * 4], w[40 * 4], c[12 * 40];
    for (int i = 0; i < 48; i++)
        a[i] = 10.0f;
    for (int i = 0; i < 160; i++)
        w[i] = 1.0f;
    const struct fv_kernels *levels[FV_CPU_LEVEL_COUNT];
    int n_levels = test_levels(levels);
    for (int li = -1; li < n_levels; li++) {
        const struct fv_kernels *k = li < 0 ? NULL : levels[li];
        float *packed = NULL;
        if (k) {
            packed = aligned_alloc(64, fv_kernels_packed_floats(k, 40, 4) * sizeof *packed);
            k->pack(40, 4, w, packed);
        }
        struct fv_gemm_epilogue e = {.act = FV_ACT_RELU6};
        fv_gemm_nt(k, 12, 40, 4, a, 4, w, packed, &e, c);
        for (int i = 0; i < 12 * 40; i++)
            cr_assert_eq(c[i], 6.0f, "element %d: %g", i, c[i]);
        float bias[40];
        for (int j = 0; j < 40; j++)
            bias[j] = -100.0f;
        e.bias = bias;
        fv_gemm_nt(k, 12, 40, 4, a, 4, w, packed, &e, c);
        for (int i = 0; i < 12 * 40; i++)
            cr_assert_eq(c[i], 0.0f, "element %d: %g", i, c[i]);
        free(packed);
    }
}

/* Depthwise convolution + bias + PReLU straight from the definition. */
static float depthwise_reference(const struct fv_conv_shape *s, const float *x, const float *f,
                                 const float *b, const float *slopes, int n_slopes, int oy,
                                 int ox, int k)
{
    double acc = b[k];
    for (int ky = 0; ky < s->kernel_h; ky++)
        for (int kx = 0; kx < s->kernel_w; kx++) {
            int iy = oy * s->stride_h - s->pad_top + ky, ix = ox * s->stride_w - s->pad_left + kx;
            if (iy >= 0 && iy < s->in_h && ix >= 0 && ix < s->in_w)
                acc += (double)x[((size_t)iy * s->in_w + ix) * s->in_c + k] *
                       f[((size_t)ky * s->kernel_w + kx) * s->in_c + k];
        }
    if (acc < 0.0)
        acc *= slopes[n_slopes == 1 ? 0 : k];
    return (float)acc;
}

/* Every level against the definition and against generic. 12, 20, 24 and 32
 * channels take each level's 3×3 strip kernel where they are a multiple of its
 * vector and the any-size kernel with a masked tail where not (20 on AVX2,
 * 12/20/24 on AVX-512); widths 23 and 13 give full strips of 8 and 4 and
 * left-over pixels at both strides, SAME and VALID; a 5×5 and a 7×7 kernel
 * (MobileFaceNet's global depthwise) take the any-size kernel everywhere. */
Test(gemm, depthwise_with_prelu_against_reference)
{
    enum { H = 11, W = 23, CMAX = 32 };
    unsigned state = 7;
    static float x[H * W * CMAX], f[49 * CMAX], b[CMAX], slopes[CMAX], y[H * W * CMAX];
    for (int i = 0; i < H * W * CMAX; i++)
        x[i] = value(&state);
    for (int i = 0; i < 49 * CMAX; i++)
        f[i] = value(&state);
    for (int i = 0; i < CMAX; i++) {
        b[i] = value(&state);
        slopes[i] = 0.3f * value(&state);
    }
    static float ygen[H * W * CMAX];
    const int channels[] = {12, 20, 24, 32}, widths[] = {W, 13}, kernels[] = {3, 5, 7};
    const struct fv_kernels *levels[FV_CPU_LEVEL_COUNT];
    int n_levels = test_levels(levels);
    for (int ki = 0; ki < 3; ki++)
    for (int ci = 0; ci < 4; ci++)
        for (int wi = 0; wi < 2; wi++)
            for (int stride = 1; stride <= 2; stride++)
                for (int pad = 0; pad < 2; pad++)
                    for (int n_slopes = 1; n_slopes <= 2; n_slopes++)
                        for (int li = 0; li < n_levels; li++) {
                            int c = channels[ci], ns = n_slopes == 1 ? 1 : c, kk = kernels[ki];
                            if (kk > 3 && (ci != 1 || n_slopes != 2))
                                continue;
                            struct fv_conv_shape s = fv_conv_shape_make(
                                1, H, widths[wi], c, kk, kk, stride, stride,
                                pad ? FV_PADDING_SAME : FV_PADDING_VALID, c);
                            memset(y, 0xff, sizeof y);
                            levels[li]->depthwise(&s, x, f, b, slopes, ns, y);
                            const size_t count = (size_t)s.out_h * s.out_w * c;
                            for (int oy = 0; oy < s.out_h; oy++)
                                for (int ox = 0; ox < s.out_w; ox++)
                                    for (int k = 0; k < c; k++) {
                                        float want = depthwise_reference(&s, x, f, b, slopes, ns,
                                                                         oy, ox, k);
                                        float got = y[((size_t)oy * s.out_w + ox) * c + k];
                                        cr_assert(fabsf(got - want) <= 1e-5f,
                                                  "%s c %d k %d w %d stride %d %s: (%d, %d, %d) %g vs %g",
                                                  levels[li]->name, c, kk, widths[wi], stride,
                                                  pad ? "SAME" : "VALID", oy, ox, k, got, want);
                                    }
                            if (li == 0)
                                memcpy(ygen, y, count * sizeof *y);
                            for (size_t i = 0; li > 0 && i < count; i++)
                                cr_assert(fabsf(y[i] - ygen[i]) <= 2e-6f,
                                          "%s vs generic, c %d element %zu: %g vs %g",
                                          levels[li]->name, c, i, y[i], ygen[i]);
                        }
}

/* Max pooling at every level: channel counts below 4, 8 and 16 (masked), with a
 * tail past the last full vector (10 as in P-Net, 28 as in R-Net, 17, 40) and
 * multiples of 16, 2×2 SAME and 3×3 VALID windows and a 4×4 one, against the
 * definition (exactly: a max is exact). */
Test(gemm, max_pool_every_level)
{
    enum { H = 9, W = 11, CMAX = 40 };
    static float x[H * W * CMAX], y[H * W * CMAX];
    for (int i = 0; i < H * W * CMAX; i++)
        x[i] = (float)((i * 7919) % 1013) - 500.0f;
    const int channels[] = {1, 3, 5, 10, 16, 17, 28, 32, 40};
    const struct fv_kernels *levels[FV_CPU_LEVEL_COUNT];
    int n_levels = test_levels(levels);
    for (int li = 0; li < n_levels; li++)
        for (int ci = 0; ci < 9; ci++)
            for (int kernel = 2; kernel <= 4; kernel++) {
                int c = channels[ci], stride = kernel == 4 ? 3 : 2;
                struct fv_conv_shape s = fv_conv_shape_make(
                    1, H, W, c, kernel, kernel, stride, stride,
                    kernel == 3 ? FV_PADDING_VALID : FV_PADDING_SAME, c);
                memset(y, 0xff, sizeof y);
                levels[li]->max_pool(&s, x, y);
                for (int oy = 0; oy < s.out_h; oy++)
                    for (int ox = 0; ox < s.out_w; ox++)
                        for (int k = 0; k < c; k++) {
                            float want = -INFINITY;
                            for (int ky = 0; ky < kernel; ky++)
                                for (int kx = 0; kx < kernel; kx++) {
                                    int iy = oy * stride - s.pad_top + ky,
                                        ix = ox * stride - s.pad_left + kx;
                                    if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                        want = fmaxf(want, x[(iy * W + ix) * c + k]);
                                }
                            cr_assert_eq(y[(oy * s.out_w + ox) * c + k], want,
                                         "%s c %d kernel %d (%d, %d, %d)", levels[li]->name, c,
                                         kernel, oy, ox, k);
                        }
            }
}

/* Convolutions whose windows the packed kernel reads in place (no padding,
 * output rows of 8 or more) against the definition, batch of 2, with the
 * last tile of each output row partly filled, at every level; and through
 * im2col + BLAS. */
Test(gemm, convolution_windows_against_reference)
{
    static const int cases[][7] = {
        /* in_h, in_w, c, kernel, stride, out_c, padding (1 = SAME) */
        {12, 30, 3, 3, 1, 10, 0}, {23, 23, 32, 3, 1, 64, 0}, {10, 19, 16, 2, 1, 40, 0},
        {9, 40, 8, 1, 2, 17, 0},  {17, 33, 5, 3, 2, 33, 0},  {14, 14, 3, 3, 2, 16, 1},
        /* 2 and 4 outputs: the small-N dot-product path, over windows of 3 and 5 channels */
        {12, 30, 8, 3, 1, 2, 0},  {10, 19, 5, 3, 1, 4, 0},   {9, 20, 16, 1, 1, 3, 0},
    };
    unsigned state = 11;
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const int *cs = cases[ci];
        struct fv_conv_shape s = fv_conv_shape_make(2, cs[0], cs[1], cs[2], cs[3], cs[3], cs[4],
                                                    cs[4], cs[6] ? FV_PADDING_SAME : FV_PADDING_VALID,
                                                    cs[5]);
        int k = cs[3] * cs[3] * cs[2];
        size_t in = (size_t)2 * cs[0] * cs[1] * cs[2], rows = (size_t)2 * s.out_h * s.out_w;
        float *x = malloc(in * sizeof *x), *w = malloc((size_t)cs[5] * k * sizeof *w);
        float *bias = malloc((size_t)cs[5] * sizeof *bias);
        float *y = malloc(rows * cs[5] * sizeof *y), *y2 = malloc(rows * cs[5] * sizeof *y2);
        float *scratch = malloc(fv_ops_conv2d_scratch(&s) * sizeof *scratch + 64);
        for (size_t i = 0; i < in; i++)
            x[i] = value(&state);
        for (size_t i = 0; i < (size_t)cs[5] * k; i++)
            w[i] = value(&state);
        for (int i = 0; i < cs[5]; i++)
            bias[i] = value(&state);
        struct fv_gemm_epilogue e = {.bias = bias};
        fv_ops_conv2d(&s, x, w, bias, FV_ACT_NONE, scratch, y2);
        const struct fv_kernels *levels[FV_CPU_LEVEL_COUNT];
        int n_levels = test_levels(levels);
        for (int li = 0; li < n_levels; li++) {
        const struct fv_kernels *kl = levels[li];
        size_t pf = fv_kernels_packed_floats(kl, cs[5], k);
        float *packed = aligned_alloc(64, ((pf + 15) & ~(size_t)15) * sizeof *packed);
        kl->pack(cs[5], k, w, packed);
        memset(y, 0xff, rows * cs[5] * sizeof *y);
        fv_ops_conv2d_fused(kl, &s, x, w, packed, &e, scratch, y);
        for (int b = 0; b < 2; b++)
            for (int oy = 0; oy < s.out_h; oy++)
                for (int ox = 0; ox < s.out_w; ox++)
                    for (int o = 0; o < cs[5]; o++) {
                        double want = bias[o];
                        for (int ky = 0; ky < cs[3]; ky++)
                            for (int kx = 0; kx < cs[3]; kx++) {
                                int iy = oy * cs[4] - s.pad_top + ky, ix = ox * cs[4] - s.pad_left + kx;
                                if (iy < 0 || iy >= cs[0] || ix < 0 || ix >= cs[1])
                                    continue;
                                for (int ch = 0; ch < cs[2]; ch++)
                                    want += (double)x[(((size_t)b * cs[0] + iy) * cs[1] + ix) * cs[2] + ch] *
                                            w[(((size_t)o * cs[3] + ky) * cs[3] + kx) * cs[2] + ch];
                            }
                        size_t at = (((size_t)b * s.out_h + oy) * s.out_w + ox) * cs[5] + o;
                        cr_assert(fabs(y[at] - want) <= 1e-4 && fabs(y2[at] - want) <= 1e-4,
                                  "%s case %zu (%d, %d, %d, %d): packed %g, im2col %g, want %g",
                                  kl->name, ci, b, oy, ox, o, y[at], y2[at], want);
                    }
        free(packed);
        }
        free(x), free(w), free(bias), free(y), free(y2), free(scratch);
    }
}

/* Winograd F(2×2, 3×3) against the direct convolution (im2col + BLAS), with
 * odd and even output sizes (partial 2×2 blocks), channel counts that are and
 * are not multiples of 16, more blocks than one pass holds, and the epilogue. */
Test(gemm, winograd_against_direct_convolution)
{
    static const int cases[][5] = {
        /* in_h, in_w, in_c, out_c, the output block size that needs the fewest products */
        {5, 5, 16, 16, 3},   {6, 6, 16, 16, 2},    {12, 9, 28, 48, 3}, {11, 11, 28, 48, 3},
        {23, 23, 32, 64, 3}, {10, 10, 64, 64, 3},  {24, 31, 16, 32, 3}, {4, 34, 32, 16, 2},
        {13, 6, 17, 33, 2},
    };
    cr_assert(fv_winograd_supported(3, 3, 1, 1, 0, 0, 16));
    cr_assert(!fv_winograd_supported(3, 3, 2, 2, 0, 0, 16), "stride 2 is not F(2x2, 3x3)");
    cr_assert(!fv_winograd_supported(3, 3, 1, 1, 0, 0, 3), "3 channels stay on the direct path");
    unsigned state = 5;
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const int *cs = cases[ci];
        struct fv_conv_shape s =
            fv_conv_shape_make(2, cs[0], cs[1], cs[2], 3, 3, 1, 1, FV_PADDING_VALID, cs[3]);
        cr_assert(fv_winograd_applies(&s));
        cr_assert_eq(fv_winograd_tile(&s), cs[4], "case %zu", ci);
        size_t in = (size_t)2 * cs[0] * cs[1] * cs[2], out = (size_t)2 * s.out_h * s.out_w * cs[3];
        size_t wn = (size_t)cs[3] * 9 * cs[2];
        float *x = malloc(in * sizeof *x), *w = malloc(wn * sizeof *w);
        float *bias = malloc((size_t)cs[3] * sizeof *bias), *slopes = malloc((size_t)cs[3] * sizeof *slopes);
        float *res = malloc(out * sizeof *res), *y = malloc(out * sizeof *y), *want = malloc(out * sizeof *want);
        float *scratch = malloc(fv_winograd_scratch(cs[2], cs[3]) * sizeof *scratch);
        float *im2col = malloc(fv_ops_conv2d_scratch(&s) * sizeof *im2col + 64);
        for (size_t i = 0; i < in; i++)
            x[i] = value(&state);
        for (size_t i = 0; i < wn; i++)
            w[i] = value(&state);
        for (int i = 0; i < cs[3]; i++) {
            bias[i] = value(&state);
            slopes[i] = 0.2f * value(&state);
        }
        for (size_t i = 0; i < out; i++)
            res[i] = value(&state);
        struct fv_gemm_epilogue e = {.bias = bias, .residual = res, .slopes = slopes, .n_slopes = cs[3]};
        fv_ops_conv2d_fused(NULL, &s, x, w, NULL, &e, im2col, want);
        const struct fv_kernels *levels[FV_CPU_LEVEL_COUNT];
        int n_levels = test_levels(levels);
        for (int li = 0; li < n_levels; li++) {
            const struct fv_kernels *kl = levels[li];
            float *packed = aligned_alloc(
                64, ((fv_winograd_packed_floats(kl, cs[3], cs[2]) + 15) & ~(size_t)15) * sizeof *packed);
            cr_assert_eq(fv_winograd_pack(kl, cs[3], cs[2], w, packed), 0);
            memset(y, 0xff, out * sizeof *y);
            fv_winograd_conv(kl, &s, x, packed, &e, scratch, y);
            for (size_t i = 0; i < out; i++)
                cr_assert(fabsf(y[i] - want[i]) <= 2e-5f * (1.0f + fabsf(want[i])) * (float)cs[2],
                          "%s case %zu element %zu: winograd %g, direct %g", kl->name, ci, i,
                          y[i], want[i]);
            free(packed);
        }
        free(x), free(w), free(bias), free(slopes), free(res), free(y), free(want);
        free(scratch), free(im2col);
    }
}
