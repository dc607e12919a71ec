/* gemm.h - the inference GEMM: activations times constant weights, with the
 * bias, residual add and activation applied as each output tile is stored.
 *
 *   const struct fv_kernels *k = fv_kernels_active();          (kernels.h)
 *   float *packed = aligned_alloc(64, fv_kernels_packed_floats(k, n, kk) * sizeof(float));
 *   k->pack(n, kk, weights, packed);                        once, at model load
 *   struct fv_gemm_epilogue e = {.bias = bias, .slopes = slopes, .n_slopes = n};
 *   fv_gemm_nt(k, m, n, kk, input, kk, weights, packed, &e, output);
 *
 * With packed weights the product runs on the level's register-tiled kernel
 * (AVX-512 12 × 32, AVX2 6 × 16, NEON 6 × 16, generic 4 × 8 tiles), which
 * applies the epilogue as it stores; with packed == NULL it goes through
 * cblas_sgemm and the epilogue is a second pass. Both give the same result up
 * to float rounding order.
 */
#ifndef FV_GEMM_H
#define FV_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "model/graph.h"

struct fv_kernels;

/* What happens to each output value after the product, in this order:
 * + bias[col], + residual[row][col], activation, PReLU. */
struct fv_gemm_epilogue {
    const float *bias;      /* n values or NULL */
    const float *residual;  /* m × n (row stride n) or NULL; may be the output itself */
    enum fv_activation act; /* FV_ACT_NONE, FV_ACT_RELU or FV_ACT_RELU6 */
    const float *slopes;    /* PReLU slopes (n values, or 1 shared) or NULL */
    int n_slopes;
};

/* c (m × n, row stride n) = epilogue(a · wᵀ); a is m × k with row stride lda.
 * packed is w in k's packed layout (k->pack), or NULL to use w through BLAS
 * (then kernels may be NULL too: the active level's epilogue is used). c must
 * not overlap a. */
void fv_gemm_nt(const struct fv_kernels *kernels, size_t m, int n, int k, const float *a,
                size_t lda, const float *w, const float *packed,
                const struct fv_gemm_epilogue *e, float *c);

/* The rows of A as the windows of a convolution without padding over an NHWC
 * batch: row (b, oy, ox) is the kernel_h × kernel_w × c window at
 * (oy · stride_h, ox · stride_w) of image b, flattened in (ky, kx, channel)
 * order. The packed kernels read the windows in place, with no im2col copy. */
struct fv_gemm_windows {
    int n, in_h, in_w, c;
    int kernel_h, kernel_w, stride_h, stride_w;
    int out_h, out_w;
};

/* 1 when every window lies inside the image and output rows are at least 8
 * pixels wide (narrower ones are cheaper through im2col): then the packed
 * kernels' gemm_windows can run win. */
int fv_gemm_windows_ok(const struct fv_gemm_windows *win);

/* ---- bfloat16 operands ----
 * The same product with both operands rounded to bfloat16 (round to nearest
 * even) and float accumulation, on CPUs with AVX-512 BF16 dot products (the
 * avx512-bf16 level's gemm_bf16), where it runs at twice the float rate. Each
 * product of two bf16 values is exact in float; the difference from the float
 * GEMM is the rounding of the operands (relative 2^-9 each).
 *
 *   uint16_t *w16 = aligned_alloc(64, fv_gemm_packed_bf16_count(n, k) * 2);
 *   fv_gemm_pack_bf16(n, k, weights, w16);                 once
 *   kernels->gemm_bf16(m, n, k, input, k, w16, &e, output); float in, float out
 */
#define FV_GEMM_BF16_MAX_K 1024

uint16_t fv_bf16_from_float(float x);
float fv_bf16_to_float(uint16_t h);

/* bf16 values a packed copy of an n × k matrix takes; 0 when k is odd or
 * above FV_GEMM_BF16_MAX_K (such layers stay float). */
size_t fv_gemm_packed_bf16_count(int n, int k);

/* Packs w (n × k, row-major) into 32-column panels of bf16 pairs along k.
 * packed must be 64-byte aligned. */
void fv_gemm_pack_bf16(int n, int k, const float *w, uint16_t *packed);

/* The avx512-bf16 kernel: c (m × n) = epilogue(bf16(a) · bf16(w)ᵀ) with packed
 * from fv_gemm_pack_bf16. Only on CPUs with AVX-512 BF16. */
void fv_gemm_nt_bf16(size_t m, int n, int k, const float *a, size_t lda, const uint16_t *packed,
                     const struct fv_gemm_epilogue *e, float *c);

#endif
