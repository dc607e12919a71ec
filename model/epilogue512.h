/* epilogue512.h - the GEMM epilogue on one AVX-512 vector (internal: for the
 * kernels in gemm.c and winograd.c, x86-64 only). */
#ifndef FV_EPILOGUE512_H
#define FV_EPILOGUE512_H

#include <immintrin.h>

#include "model/gemm.h"

#define FV_AVX512 __attribute__((target("avx512f")))

/* The epilogue of one 16-column vector of one row, stored under mask. */
static inline __attribute__((always_inline)) FV_AVX512 void
fv_store_vec(__m512 v, __mmask16 mask, size_t row, int col, int n,
             const struct fv_gemm_epilogue *e, float *c)
{
    if (e->bias)
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, e->bias + col));
    if (e->residual)
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, e->residual + row * n + col));
    if (e->act != FV_ACT_NONE) {
        v = _mm512_max_ps(v, _mm512_setzero_ps());
        if (e->act == FV_ACT_RELU6)
            v = _mm512_min_ps(v, _mm512_set1_ps(6.0f));
    }
    if (e->slopes) {
        __m512 a = e->n_slopes == 1 ? _mm512_set1_ps(e->slopes[0])
                                    : _mm512_maskz_loadu_ps(mask, e->slopes + col);
        __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        v = _mm512_mask_mul_ps(v, neg, v, a);
    }
    _mm512_mask_storeu_ps(c + row * n + col, mask, v);
}

#endif
