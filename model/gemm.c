/* gemm.c - the GEMM entry point and the kernel tables (see gemm.h, kernels.h). */
#include "model/gemm.h"

#include <cblas.h>

#include "model/kernels.h"

const struct fv_kernels *fv_kernels_get(enum fv_cpu_level level)
{
    switch (level) {
    case FV_CPU_GENERIC:
        return &fv_kernels_generic;
#if defined(__x86_64__)
    case FV_CPU_AVX2:
        return &fv_kernels_avx2;
    case FV_CPU_AVX512:
        return &fv_kernels_avx512;
    case FV_CPU_AVX512_BF16:
        return &fv_kernels_avx512_bf16;
#elif defined(__aarch64__)
    case FV_CPU_NEON:
        return &fv_kernels_neon;
#endif
    default:
        return NULL;
    }
}

const struct fv_kernels *fv_kernels_active(void)
{
    const struct fv_kernels *k = fv_kernels_get(fv_cpu_active_level());
    return k ? k : &fv_kernels_generic;
}

size_t fv_kernels_packed_floats(const struct fv_kernels *k, int n, int kk)
{
    if (n < 1 || kk < 1)
        return 0;
    return (size_t)(n + k->panel - 1) / k->panel * k->panel * (size_t)kk;
}

int fv_gemm_windows_ok(const struct fv_gemm_windows *win)
{
    return win->out_w >= 8 && (win->out_h - 1) * win->stride_h + win->kernel_h <= win->in_h &&
           (win->out_w - 1) * win->stride_w + win->kernel_w <= win->in_w;
}

void fv_gemm_nt(const struct fv_kernels *kernels, size_t m, int n, int k, const float *a,
                size_t lda, const float *w, const float *packed,
                const struct fv_gemm_epilogue *e, float *c)
{
    static const struct fv_gemm_epilogue none = {0};
    if (!e)
        e = &none;
    if (m == 0 || n < 1)
        return;
    if (packed) {
        kernels->gemm(m, n, k, a, lda, packed, e, c);
        return;
    }
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
    (kernels ? kernels : fv_kernels_active())->epilogue(m, n, &rest, c);
}
