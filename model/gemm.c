/* gemm.c - packed-weight GEMM with a fused epilogue (see gemm.h). */
#include "model/gemm.h"
#include "model/simd.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FV_GEMM_X86 1
#endif

#define PANEL 32 /* output columns per packed panel: two 16-float vectors */
#define TILE_M 12 /* output rows per register tile: 24 accumulators of 32 */

int fv_gemm_packed_available(void)
{
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *env = getenv("FV_GEMM");
        v = 0;
#ifdef FV_GEMM_X86
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") != 0;
#endif
        if (env && strcmp(env, "blas") == 0)
            v = 0;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

size_t fv_gemm_packed_floats(int n, int k)
{
    if (!fv_gemm_packed_available() || n < 1 || k < 1)
        return 0;
    return (size_t)(n + PANEL - 1) / PANEL * PANEL * (size_t)k;
}

void fv_gemm_pack(int n, int k, const float *w, float *packed)
{
    for (int j0 = 0; j0 < n; j0 += PANEL) {
        float *panel = packed + (size_t)j0 * k;
        for (int p = 0; p < k; p++)
            for (int j = 0; j < PANEL; j++)
                panel[(size_t)p * PANEL + j] = j0 + j < n ? w[(size_t)(j0 + j) * k + p] : 0.0f;
    }
}

FV_HOT void fv_gemm_epilogue_apply(size_t rows, int n, const struct fv_gemm_epilogue *e, float *c)
{
    if (!e)
        return;
    const int n8 = n & ~7;
    const v8f zero = SPLAT8(0.0f), six = SPLAT8(6.0f);
    for (size_t r = 0; r < rows; r++) {
        float *row = c + r * (size_t)n;
        const float *res = e->residual ? e->residual + r * (size_t)n : NULL;
        for (int j = 0; j < n8; j += 8) {
            v8f v = LOAD8(row + j);
            if (e->bias)
                v += LOAD8(e->bias + j);
            if (res)
                v += LOAD8(res + j);
            if (e->act != FV_ACT_NONE)
                v = MAX8(v, zero);
            if (e->act == FV_ACT_RELU6)
                v = MIN8(v, six);
            if (e->slopes) {
                v8f a = e->n_slopes == 1 ? SPLAT8(e->slopes[0]) : LOAD8(e->slopes + j);
                v = MAX8(v, zero) + a * MIN8(v, zero);
            }
            STORE8(row + j, v);
        }
        for (int j = n8; j < n; j++) {
            float v = row[j] + (e->bias ? e->bias[j] : 0.0f) + (res ? res[j] : 0.0f);
            if (e->act != FV_ACT_NONE)
                v = v > 0.0f ? v : 0.0f;
            if (e->act == FV_ACT_RELU6 && v > 6.0f)
                v = 6.0f;
            if (e->slopes && v < 0.0f)
                v *= e->slopes[e->n_slopes == 1 ? 0 : j];
            row[j] = v;
        }
    }
}

#ifdef FV_GEMM_X86
#include "model/epilogue512.h"

/* How a tile reads its rows of A: row i of the tile, column p (p = seg · len + q)
 * is a[i · lda + seg · seg_stride + q]. A plain matrix has one segment of k
 * columns; the windows of a convolution have one segment per kernel row. */
struct a_rows {
    const float *a;
    size_t lda, seg_stride;
    int segs, seg_len;
};

/* One MR × (16 · NV) tile: MR rows of A against one packed panel, stored to c
 * rows [row, row + MR), columns [col, col + 16 · NV). MR and NV are constants
 * after inlining, so the accumulators live in registers. */
static inline __attribute__((always_inline)) FV_AVX512 void
tile(int mr, int nv, const struct a_rows *ar, size_t row, int col, int n, const float *panel,
     __mmask16 m0, __mmask16 m1, const struct fv_gemm_epilogue *e, float *c)
{
    __m512 acc0[TILE_M], acc1[TILE_M];
#pragma GCC unroll 12
    for (int i = 0; i < TILE_M; i++) {
        acc0[i] = _mm512_setzero_ps();
        acc1[i] = _mm512_setzero_ps();
    }
    const size_t lda = ar->lda;
    const float *a = ar->a;
    for (int seg = 0; seg < ar->segs; seg++, a += ar->seg_stride) {
        for (int q = 0; q < ar->seg_len; q++, panel += PANEL) {
            const __m512 b0 = _mm512_load_ps(panel);
            const __m512 b1 = nv > 1 ? _mm512_load_ps(panel + 16) : b0;
#pragma GCC unroll 12
            for (int i = 0; i < TILE_M; i++) {
                if (i < mr) {
                    const __m512 av = _mm512_set1_ps(a[i * lda + q]);
                    acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);
                    if (nv > 1)
                        acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);
                }
            }
        }
    }
    fv_epi512_store_tile(mr, nv, acc0, acc1, m0, m1, row, col, n, e, c);
}

#define TILE_CASE(MR)                                                                   \
    case MR:                                                                            \
        if (nv > 1)                                                                     \
            tile(MR, 2, ar, row, col, n, panel, m0, m1, e, c);                          \
        else                                                                            \
            tile(MR, 1, ar, row, col, n, panel, m0, m1, e, c);                          \
        break;

static FV_AVX512 void tile_any(int mr, int nv, const struct a_rows *ar, size_t row, int col, int n,
                            const float *panel, __mmask16 m0, __mmask16 m1,
                            const struct fv_gemm_epilogue *e, float *c)
{
    switch (mr) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
        TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
    }
}

/* Rows [row, row + mr) of c against every panel; ar points at their first row. */
static FV_AVX512 void tile_row(int mr, const struct a_rows *ar, size_t row, int n, int k,
                            const float *packed, const struct fv_gemm_epilogue *e, float *c)
{
    for (int col = 0; col < n; col += PANEL) {
        int cols = n - col < PANEL ? n - col : PANEL;
        __mmask16 m0, m1;
        fv_epi512_panel_masks(cols, &m0, &m1);
        tile_any(mr, cols > 16 ? 2 : 1, ar, row, col, n, packed + (size_t)col * k, m0, m1, e, c);
    }
}

static FV_AVX512 void gemm_packed(size_t m, int n, int k, const float *a, size_t lda,
                               const float *packed, const struct fv_gemm_epilogue *e, float *c)
{
    for (size_t row = 0; row < m; row += TILE_M) {
        int mr = m - row < TILE_M ? (int)(m - row) : TILE_M;
        struct a_rows ar = {a + row * lda, lda, 0, 1, k};
        tile_row(mr, &ar, row, n, k, packed, e, c);
    }
}

/* Output pixels of one output row share a stride between their windows
 * (stride_w · c), so tiles never cross an output row. */
static FV_AVX512 void gemm_windows(const struct fv_gemm_windows *win, const float *input, int n,
                                const float *packed, const struct fv_gemm_epilogue *e, float *c)
{
    const int k = win->kernel_h * win->kernel_w * win->c;
    const size_t row_floats = (size_t)win->in_w * win->c;
    for (int b = 0; b < win->n; b++) {
        const float *img = input + (size_t)b * win->in_h * row_floats;
        for (int oy = 0; oy < win->out_h; oy++) {
            const float *line = img + (size_t)oy * win->stride_h * row_floats;
            size_t row0 = ((size_t)b * win->out_h + oy) * win->out_w;
            for (int ox = 0; ox < win->out_w; ox += TILE_M) {
                int mr = win->out_w - ox < TILE_M ? win->out_w - ox : TILE_M;
                struct a_rows ar = {line + (size_t)ox * win->stride_w * win->c,
                                    (size_t)win->stride_w * win->c, row_floats, win->kernel_h,
                                    win->kernel_w * win->c};
                tile_row(mr, &ar, row0 + ox, n, k, packed, e, c);
            }
        }
    }
}
#endif

int fv_gemm_windows_ok(const struct fv_gemm_windows *win, const float *packed)
{
    return packed && fv_gemm_packed_available() && win->out_w >= 8 &&
           (win->out_h - 1) * win->stride_h + win->kernel_h <= win->in_h &&
           (win->out_w - 1) * win->stride_w + win->kernel_w <= win->in_w;
}

void fv_gemm_windows_nt(const struct fv_gemm_windows *win, const float *input, int n,
                        const float *packed, const struct fv_gemm_epilogue *e, float *c)
{
    static const struct fv_gemm_epilogue none = {0};
#ifdef FV_GEMM_X86
    gemm_windows(win, input, n, packed, e ? e : &none, c);
#else
    (void)win, (void)input, (void)n, (void)packed, (void)e, (void)c, (void)none;
#endif
}

void fv_gemm_nt(size_t m, int n, int k, const float *a, size_t lda, const float *w,
                const float *packed, const struct fv_gemm_epilogue *e, float *c)
{
    static const struct fv_gemm_epilogue none = {0};
    if (!e)
        e = &none;
    if (m == 0 || n < 1)
        return;
#ifdef FV_GEMM_X86
    if (packed && fv_gemm_packed_available()) {
        gemm_packed(m, n, k, a, lda, packed, e, c);
        return;
    }
#endif
    /* BLAS, then the epilogue as a second pass. A residual that is c itself is
     * accumulated by sgemm (beta = 1). */
    struct fv_gemm_epilogue rest = *e;
    float beta = 0.0f;
    if (e->residual == c) {
        beta = 1.0f;
        rest.residual = NULL;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, n, k, 1.0f, a, (int)lda, w, k,
                beta, c, n);
    if (rest.bias || rest.residual || rest.act != FV_ACT_NONE || rest.slopes)
        fv_gemm_epilogue_apply(m, n, &rest, c);
}
