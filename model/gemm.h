/* gemm.h - the inference GEMM: activations times constant weights, with the
 * bias, residual add and activation applied as each output tile is stored.
 *
 *   float *packed = aligned_alloc(64, fv_gemm_packed_floats(n, k) * sizeof(float));
 *   fv_gemm_pack(n, k, weights, packed);                  once, at model load
 *   struct fv_gemm_epilogue e = {.bias = bias, .slopes = slopes, .n_slopes = n};
 *   fv_gemm_nt(m, n, k, input, k, weights, packed, &e, output);
 *
 * On CPUs with AVX-512 the weights are packed once into 32-column panels and a
 * register-blocked kernel computes 12 × 32 output tiles straight from the
 * activations; elsewhere (or with packed == NULL, or FV_GEMM=blas in the
 * environment) the product goes through cblas_sgemm and the epilogue is a
 * second pass. Both give the same result up to float rounding order.
 */
#ifndef FV_GEMM_H
#define FV_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "model/graph.h"

/* What happens to each output value after the product, in this order:
 * + bias[col], + residual[row][col], activation, PReLU. */
struct fv_gemm_epilogue {
    const float *bias;      /* n values or NULL */
    const float *residual;  /* m × n (row stride n) or NULL; may be the output itself */
    enum fv_activation act; /* FV_ACT_NONE, FV_ACT_RELU or FV_ACT_RELU6 */
    const float *slopes;    /* PReLU slopes (n values, or 1 shared) or NULL */
    int n_slopes;
};

/* 1 when the packed kernel runs on this CPU (and FV_GEMM=blas is not set). */
int fv_gemm_packed_available(void);

/* Floats a packed copy of an n × k weight matrix takes (0 when the packed
 * kernel is not available). */
size_t fv_gemm_packed_floats(int n, int k);

/* Packs w (n × k, row-major: one row per output) into panels of 32 outputs,
 * k-major inside a panel, zero-padded past n. packed must be 64-byte aligned. */
void fv_gemm_pack(int n, int k, const float *w, float *packed);

/* c (m × n, row stride n) = epilogue(a · wᵀ); a is m × k with row stride lda.
 * packed is w in fv_gemm_pack's layout, or NULL to use w through BLAS. c must
 * not overlap a. */
void fv_gemm_nt(size_t m, int n, int k, const float *a, size_t lda, const float *w,
                const float *packed, const struct fv_gemm_epilogue *e, float *c);

/* The rows of A as the windows of a convolution without padding over an NHWC
 * batch: row (b, oy, ox) is the kernel_h × kernel_w × c window at
 * (oy · stride_h, ox · stride_w) of image b, flattened in (ky, kx, channel)
 * order. The packed kernel reads the windows in place, with no im2col copy. */
struct fv_gemm_windows {
    int n, in_h, in_w, c;
    int kernel_h, kernel_w, stride_h, stride_w;
    int out_h, out_w;
};

/* 1 when fv_gemm_windows_nt can run win: the packed kernel is available, packed
 * is set, every window lies inside the image and output rows are at least 8
 * pixels wide (narrower ones are cheaper through im2col). */
int fv_gemm_windows_ok(const struct fv_gemm_windows *win, const float *packed);

/* c (n·out_h·out_w × n_out, row stride n_out) = epilogue(windows · wᵀ), with w
 * in fv_gemm_pack's layout (n_out × kernel_h·kernel_w·c). Only when
 * fv_gemm_windows_ok(win, packed). */
void fv_gemm_windows_nt(const struct fv_gemm_windows *win, const float *input, int n_out,
                        const float *packed, const struct fv_gemm_epilogue *e, float *c);

/* ---- bfloat16 operands ----
 * The same product with both operands rounded to bfloat16 (round to nearest
 * even) and float accumulation, on CPUs with AVX-512 BF16 dot products, where it
 * runs at twice the float rate. Each product of two bf16 values is exact in
 * float; the difference from fv_gemm_nt is the rounding of the operands
 * (relative 2^-9 each).
 *
 *   uint16_t *w16 = aligned_alloc(64, fv_gemm_packed_bf16_count(n, k) * 2);
 *   fv_gemm_pack_bf16(n, k, weights, w16);                 once
 *   fv_gemm_nt_bf16(m, n, k, input, k, w16, &e, output);   float in, float out
 */
#define FV_GEMM_BF16_MAX_K 1024

uint16_t fv_bf16_from_float(float x);
float fv_bf16_to_float(uint16_t h);

/* 1 when the CPU has AVX-512 BF16 and the packed kernels are on. */
int fv_gemm_bf16_available(void);

/* bf16 values a packed copy of an n × k matrix takes; 0 when the bf16 kernel is
 * not available or k is odd or above FV_GEMM_BF16_MAX_K. */
size_t fv_gemm_packed_bf16_count(int n, int k);

/* Packs w (n × k, row-major) into 32-column panels of bf16 pairs along k.
 * packed must be 64-byte aligned. */
void fv_gemm_pack_bf16(int n, int k, const float *w, uint16_t *packed);

/* c (m × n, row stride n) = epilogue(bf16(a) · bf16(w)ᵀ) with packed from
 * fv_gemm_pack_bf16. Only when fv_gemm_packed_bf16_count(n, k) > 0. */
void fv_gemm_nt_bf16(size_t m, int n, int k, const float *a, size_t lda, const uint16_t *packed,
                     const struct fv_gemm_epilogue *e, float *c);

/* The epilogue alone, applied in place to rows × n values of c that already
 * hold the product. */
void fv_gemm_epilogue_apply(size_t rows, int n, const struct fv_gemm_epilogue *e, float *c);

#endif
