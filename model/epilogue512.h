/* epilogue512.h - the GEMM epilogue on one AVX-512 vector (internal: for the
 * kernels in gemm.c and winograd.c, x86-64 only). */
#ifndef FV_EPILOGUE512_H
#define FV_EPILOGUE512_H

#include <immintrin.h>

#include "model/gemm.h"

#define FV_AVX512 __attribute__((target("avx512f")))

/* The epilogue's per-column constants for 16 columns [col, col + 16), loaded
 * once and used for many rows. */
struct fv_epi512 {
    __m512 bias, slope;
    __mmask16 mask;
    int col;
};

static inline __attribute__((always_inline)) FV_AVX512 struct fv_epi512
fv_epi512_load(const struct fv_gemm_epilogue *e, int col, __mmask16 mask)
{
    struct fv_epi512 p = {_mm512_setzero_ps(), _mm512_setzero_ps(), mask, col};
    if (e->bias)
        p.bias = _mm512_maskz_loadu_ps(mask, e->bias + col);
    if (e->slopes)
        p.slope = e->n_slopes == 1 ? _mm512_set1_ps(e->slopes[0])
                                   : _mm512_maskz_loadu_ps(mask, e->slopes + col);
    return p;
}

/* The epilogue of one 16-column vector of output row `row` (row stride n),
 * stored under the mask: + bias, + residual, activation, PReLU. */
static inline __attribute__((always_inline)) FV_AVX512 void
fv_epi512_store(__m512 v, const struct fv_epi512 *p, size_t row, int n,
                const struct fv_gemm_epilogue *e, float *c)
{
    v = _mm512_add_ps(v, p->bias);
    if (e->residual)
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(p->mask, e->residual + row * n + p->col));
    if (e->act != FV_ACT_NONE) {
        v = _mm512_max_ps(v, _mm512_setzero_ps());
        if (e->act == FV_ACT_RELU6)
            v = _mm512_min_ps(v, _mm512_set1_ps(6.0f));
    }
    if (e->slopes) {
        __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        v = _mm512_mask_mul_ps(v, neg, v, p->slope);
    }
    _mm512_mask_storeu_ps(c + row * n + p->col, p->mask, v);
}

/* The end of a GEMM register tile: the epilogue of mr rows (at most 16) of one
 * or two 16-column vectors, acc0 for columns [col, col + 16) under m0 and acc1
 * for the next 16 under m1, into output rows [row, row + mr). */
static inline __attribute__((always_inline)) FV_AVX512 void
fv_epi512_store_tile(int mr, int nv, const __m512 *acc0, const __m512 *acc1, __mmask16 m0,
                     __mmask16 m1, size_t row, int col, int n, const struct fv_gemm_epilogue *e,
                     float *c)
{
    const struct fv_epi512 p0 = fv_epi512_load(e, col, m0);
    const struct fv_epi512 p1 = nv > 1 ? fv_epi512_load(e, col + 16, m1) : p0;
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) {
        if (i < mr) {
            fv_epi512_store(acc0[i], &p0, row + i, n, e, c);
            if (nv > 1)
                fv_epi512_store(acc1[i], &p1, row + i, n, e, c);
        }
    }
}

/* Store masks of a 32-column panel with cols (1..32) real columns. */
static inline __attribute__((always_inline)) void fv_epi512_panel_masks(int cols, __mmask16 *m0,
                                                                        __mmask16 *m1)
{
    *m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    *m1 = cols >= 32 ? 0xFFFF : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;
}

#endif
