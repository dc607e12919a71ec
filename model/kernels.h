/* kernels.h - the kernel table of one CPU level (internal to model/).
 *
 *   const struct fv_kernels *k = fv_kernels_get(FV_CPU_AVX2);
 *   float *packed = aligned_alloc(64, fv_kernels_packed_floats(k, n, kk) * sizeof(float));
 *   k->pack(n, kk, weights, packed);
 *   k->gemm(m, n, kk, a, lda, packed, &epilogue, c);
 *
 * Every level's kernels come from the same sources (model/kern/), compiled once
 * per instruction set over a small vector vocabulary (model/kern/vec.h); the
 * generic level is the portable reference the others are tested against. A
 * table never changes; a model fixes the one it runs on when it is loaded.
 */
#ifndef FV_KERNELS_H
#define FV_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "model/cpu.h"
#include "model/gemm.h"
#include "model/ops.h"

/* Output blocks a Winograd convolution transforms per pass (its scratch is
 * fv_winograd_scratch floats). */
#define FV_WINOGRAD_CHUNK 48

struct fv_kernels {
    enum fv_cpu_level level;
    const char *name;
    const char *gemm_tile; /* "12x32", for system-info */
    int panel;             /* output columns per packed weight panel */
    int vector_floats;     /* floats per vector register */

    /* Packs w (n × k, one row per output) into panels of `panel` outputs,
     * k-major inside a panel, zero past n. packed is 64-byte aligned and holds
     * fv_kernels_packed_floats(n, k) floats. */
    void (*pack)(int n, int k, const float *w, float *packed);
    /* c (m × n, row stride n) = epilogue(a · wᵀ), a m × k with row stride lda,
     * w packed by pack(). c must not overlap a (the residual may be c). */
    void (*gemm)(size_t m, int n, int k, const float *a, size_t lda, const float *packed,
                 const struct fv_gemm_epilogue *e, float *c);
    /* The same with the rows of a read as convolution windows in place. */
    void (*gemm_windows)(const struct fv_gemm_windows *win, const float *input, int n,
                         const float *packed, const struct fv_gemm_epilogue *e, float *c);
    /* The epilogue alone, in place on rows × n values of c. */
    void (*epilogue)(size_t rows, int n, const struct fv_gemm_epilogue *e, float *c);
    /* Depthwise convolution (any kernel size) with bias and PReLU fused. */
    void (*depthwise)(const struct fv_conv_shape *s, const float *input, const float *filter,
                      const float *bias, const float *slopes, int n_slopes, float *output);
    void (*max_pool)(const struct fv_conv_shape *s, const float *input, float *output);
    /* Winograd F(tile × tile, 3 × 3), tile 2 or 3, over this table's gemm;
     * packed from fv_winograd_pack (see winograd.h). */
    void (*winograd)(int tile, const struct fv_conv_shape *s, const float *input,
                     const float *packed, const struct fv_gemm_epilogue *e, float *scratch,
                     float *output);

    /* bf16 operands, float accumulation (avx512-bf16 only; NULL elsewhere). */
    void (*gemm_bf16)(size_t m, int n, int k, const float *a, size_t lda,
                      const uint16_t *packed, const struct fv_gemm_epilogue *e, float *c);
};

/* The table of a level this build has kernels for, or NULL. Does not check
 * the CPU (see fv_cpu_check). */
const struct fv_kernels *fv_kernels_get(enum fv_cpu_level level);
/* The table of the active level (fv_cpu_active_level). */
const struct fv_kernels *fv_kernels_active(void);

/* Floats of a packed n × k matrix for k's panel width. */
size_t fv_kernels_packed_floats(const struct fv_kernels *k, int n, int kk);

/* The tables, one per compiled instruction set. */
extern const struct fv_kernels fv_kernels_generic;
#if defined(__x86_64__)
extern const struct fv_kernels fv_kernels_avx2;
extern const struct fv_kernels fv_kernels_avx512;
extern const struct fv_kernels fv_kernels_avx512_bf16;
#elif defined(__aarch64__)
extern const struct fv_kernels fv_kernels_neon;
#endif

#endif
