/* gemm_bf16.c - the inference GEMM with bfloat16 operands and float accumulation
 * (see gemm.h). */
#include "model/gemm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FV_BF16_X86 1
#endif

#define PANEL 32 /* output columns per packed panel, as in gemm.c */
#define TILE_M 12

uint16_t fv_bf16_from_float(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u); /* NaN stays a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u);             /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float fv_bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

int fv_gemm_bf16_available(void)
{
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        v = 0;
#ifdef FV_BF16_X86
        __builtin_cpu_init();
        v = fv_gemm_packed_available() && __builtin_cpu_supports("avx512bf16");
#endif
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

size_t fv_gemm_packed_bf16_count(int n, int k)
{
    if (!fv_gemm_bf16_available() || n < 1 || k < 2 || k % 2 || k > FV_GEMM_BF16_MAX_K)
        return 0;
    return (size_t)(n + PANEL - 1) / PANEL * PANEL * (size_t)k;
}

/* Panel j0 holds, for each pair of inputs (2p, 2p + 1), 16 columns' pairs and then
 * the next 16 columns' pairs: the operand layout of one bf16 dot-product step. */
void fv_gemm_pack_bf16(int n, int k, const float *w, uint16_t *packed)
{
    for (int j0 = 0; j0 < n; j0 += PANEL) {
        uint16_t *panel = packed + (size_t)j0 * k;
        for (int p = 0; p < k / 2; p++)
            for (int j = 0; j < PANEL; j++)
                for (int h = 0; h < 2; h++)
                    panel[(size_t)p * 2 * PANEL + 2 * j + h] =
                        j0 + j < n ? fv_bf16_from_float(w[(size_t)(j0 + j) * k + 2 * p + h]) : 0;
    }
}

#ifdef FV_BF16_X86
#include "model/epilogue512.h"

#define FV_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* One MR × (16 · NV) tile from MR rows of bf16 A (row stride k) and one panel. */
static inline __attribute__((always_inline)) FV_AVX512_BF16 void
tile16(int mr, int nv, const uint16_t *a, int k, size_t row, int col, int n,
       const uint16_t *panel, __mmask16 m0, __mmask16 m1, const struct fv_gemm_epilogue *e,
       float *c)
{
    __m512 acc0[TILE_M], acc1[TILE_M];
#pragma GCC unroll 12
    for (int i = 0; i < TILE_M; i++) {
        acc0[i] = _mm512_setzero_ps();
        acc1[i] = _mm512_setzero_ps();
    }
    for (int p = 0; p < k; p += 2, panel += 2 * PANEL) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(panel);
        const __m512bh b1 = nv > 1 ? (__m512bh)_mm512_load_si512(panel + PANEL) : b0;
#pragma GCC unroll 12
        for (int i = 0; i < TILE_M; i++) {
            if (i < mr) {
                int32_t pair;
                memcpy(&pair, a + (size_t)i * k + p, sizeof pair);
                const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
                acc0[i] = _mm512_dpbf16_ps(acc0[i], av, b0);
                if (nv > 1)
                    acc1[i] = _mm512_dpbf16_ps(acc1[i], av, b1);
            }
        }
    }
    fv_epi512_store_tile(mr, nv, acc0, acc1, m0, m1, row, col, n, e, c);
}

#define TILE16_CASE(MR)                                                                 \
    case MR:                                                                            \
        if (nv > 1)                                                                     \
            tile16(MR, 2, a, k, row, col, n, panel, m0, m1, e, c);                      \
        else                                                                            \
            tile16(MR, 1, a, k, row, col, n, panel, m0, m1, e, c);                      \
        break;

static FV_AVX512_BF16 void tile16_any(int mr, int nv, const uint16_t *a, int k, size_t row,
                                      int col, int n, const uint16_t *panel, __mmask16 m0,
                                      __mmask16 m1, const struct fv_gemm_epilogue *e, float *c)
{
    switch (mr) {
        TILE16_CASE(1) TILE16_CASE(2) TILE16_CASE(3) TILE16_CASE(4) TILE16_CASE(5)
        TILE16_CASE(6) TILE16_CASE(7) TILE16_CASE(8) TILE16_CASE(9) TILE16_CASE(10)
        TILE16_CASE(11) TILE16_CASE(12)
    }
}

/* mr rows of float A (row stride lda) to bf16, k values each (k even), rounded to
 * nearest even. */
static FV_AVX512_BF16 void convert_rows(int mr, int k, const float *a, size_t lda, uint16_t *out)
{
    for (int i = 0; i < mr; i++) {
        const float *src = a + (size_t)i * lda;
        uint16_t *dst = out + (size_t)i * k;
        int p = 0;
        for (; p + 32 <= k; p += 32) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + p + 16), _mm512_loadu_ps(src + p));
            _mm512_storeu_si512(dst + p, (__m512i)v);
        }
        if (p < k) {
            int left = k - p;
            __mmask16 lo = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
            __mmask16 hi = left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, src + p + 16),
                                             _mm512_maskz_loadu_ps(lo, src + p));
            _mm512_mask_storeu_epi16(dst + p, (__mmask32)(((uint64_t)1 << left) - 1), (__m512i)v);
        }
    }
}

static FV_AVX512_BF16 void gemm_bf16(size_t m, int n, int k, const float *a, size_t lda,
                                     const uint16_t *packed, const struct fv_gemm_epilogue *e,
                                     float *c)
{
    uint16_t rows[TILE_M * FV_GEMM_BF16_MAX_K] __attribute__((aligned(64)));
    for (size_t row = 0; row < m; row += TILE_M) {
        int mr = m - row < TILE_M ? (int)(m - row) : TILE_M;
        convert_rows(mr, k, a + row * lda, lda, rows);
        for (int col = 0; col < n; col += PANEL) {
            int cols = n - col < PANEL ? n - col : PANEL;
            __mmask16 m0, m1;
            fv_epi512_panel_masks(cols, &m0, &m1);
            tile16_any(mr, cols > 16 ? 2 : 1, rows, k, row, col, n, packed + (size_t)col * k,
                       m0, m1, e, c);
        }
    }
}
#endif

void fv_gemm_nt_bf16(size_t m, int n, int k, const float *a, size_t lda, const uint16_t *packed,
                     const struct fv_gemm_epilogue *e, float *c)
{
    static const struct fv_gemm_epilogue none = {0};
#ifdef FV_BF16_X86
    if (m > 0 && n > 0)
        gemm_bf16(m, n, k, a, lda, packed, e ? e : &none, c);
#else
    (void)m, (void)n, (void)k, (void)a, (void)lda, (void)packed, (void)e, (void)c, (void)none;
#endif
}
