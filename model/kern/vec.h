/* vec.h - the vector vocabulary the kernels are written in (internal: included
 * only by model/kern/kernels.c, which is compiled once per instruction set).
 *
 * The build defines one of FV_ISA_GENERIC, FV_ISA_AVX2, FV_ISA_AVX512 or
 * FV_ISA_NEON, with the compiler flags of that instruction set, so everything
 * here is a plain static inline function of that target. A vector `vf` holds
 * VL floats; a `vmask` selects its first lanes (loads give 0 past them,
 * stores leave memory past them untouched). No load or store assumes
 * alignment.
 *
 * vf_sum adds a vector's lanes (the order is the set's own).
 *
 * Register blocking per set (what fits its register file):
 *   FV_GEMM_MR × FV_GEMM_NV  GEMM tile in vectors (rows × vectors of columns)
 *   FV_DW_STRIP              widest strip of 3×3 depthwise outputs
 */
#ifndef FV_KERN_VEC_H
#define FV_KERN_VEC_H

#include <stdint.h>
#include <string.h>

#define FV_INLINE static inline __attribute__((always_inline))

#if defined(FV_ISA_AVX512)
/* ---- AVX-512: 32 registers of 16 floats, mask registers ---- */
#include <immintrin.h>
#define VL 16
#define FV_GEMM_MR 12
#define FV_GEMM_NV 2
#define FV_DW_STRIP 8
#define FV_GEMM_TILE_NAME "12x32"
typedef __m512 vf;
typedef __mmask16 vmask;
FV_INLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
FV_INLINE void vf_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
FV_INLINE vf vf_set1(float x) { return _mm512_set1_ps(x); }
FV_INLINE vf vf_zero(void) { return _mm512_setzero_ps(); }
FV_INLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
FV_INLINE vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
FV_INLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
FV_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }  /* a·b + c */
FV_INLINE vf vf_fnma(vf a, vf b, vf c) { return _mm512_fnmadd_ps(a, b, c); } /* c − a·b */
FV_INLINE vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
FV_INLINE vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
/* x where x >= 0, a·x where x < 0 */
FV_INLINE vf vf_prelu(vf x, vf a)
{
    return _mm512_mask_mul_ps(x, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), x, a);
}
FV_INLINE vmask vmask_first(int n) { return n >= VL ? (vmask)0xFFFF : (vmask)((1u << n) - 1); }
FV_INLINE vf vf_load_mask(vmask m, const float *p) { return _mm512_maskz_loadu_ps(m, p); }
FV_INLINE void vf_store_mask(float *p, vmask m, vf v) { _mm512_mask_storeu_ps(p, m, v); }
FV_INLINE float vf_sum(vf v) { return _mm512_reduce_add_ps(v); }

#elif defined(FV_ISA_AVX2)
/* ---- AVX2 + FMA: 16 registers of 8 floats, masks as vectors ---- */
#include <immintrin.h>
#define VL 8
#define FV_GEMM_MR 6
#define FV_GEMM_NV 2
#define FV_DW_STRIP 4
#define FV_GEMM_TILE_NAME "6x16"
typedef __m256 vf;
typedef __m256i vmask;
FV_INLINE vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
FV_INLINE void vf_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
FV_INLINE vf vf_set1(float x) { return _mm256_set1_ps(x); }
FV_INLINE vf vf_zero(void) { return _mm256_setzero_ps(); }
FV_INLINE vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
FV_INLINE vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
FV_INLINE vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
FV_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
FV_INLINE vf vf_fnma(vf a, vf b, vf c) { return _mm256_fnmadd_ps(a, b, c); }
FV_INLINE vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
FV_INLINE vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
/* blendv picks by the sign bit of x itself: a·x for negative x (−0 gives −0). */
FV_INLINE vf vf_prelu(vf x, vf a) { return _mm256_blendv_ps(x, _mm256_mul_ps(x, a), x); }
FV_INLINE vmask vmask_first(int n)
{
    static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};
    return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - (n > VL ? VL : n)));
}
FV_INLINE vf vf_load_mask(vmask m, const float *p) { return _mm256_maskload_ps(p, m); }
FV_INLINE void vf_store_mask(float *p, vmask m, vf v) { _mm256_maskstore_ps(p, m, v); }
FV_INLINE float vf_sum(vf v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

#elif defined(FV_ISA_NEON)
/* ---- ARM64 Advanced SIMD: 32 registers of 4 floats ---- */
#include <arm_neon.h>
#define VL 4
#define FV_GEMM_MR 6
#define FV_GEMM_NV 4
#define FV_DW_STRIP 8
#define FV_GEMM_TILE_NAME "6x16"
typedef float32x4_t vf;
typedef int vmask; /* lanes in use */
FV_INLINE vf vf_load(const float *p) { return vld1q_f32(p); }
FV_INLINE void vf_store(float *p, vf v) { vst1q_f32(p, v); }
FV_INLINE vf vf_set1(float x) { return vdupq_n_f32(x); }
FV_INLINE vf vf_zero(void) { return vdupq_n_f32(0.0f); }
FV_INLINE vf vf_add(vf a, vf b) { return vaddq_f32(a, b); }
FV_INLINE vf vf_sub(vf a, vf b) { return vsubq_f32(a, b); }
FV_INLINE vf vf_mul(vf a, vf b) { return vmulq_f32(a, b); }
FV_INLINE vf vf_fma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
FV_INLINE vf vf_fnma(vf a, vf b, vf c) { return vfmsq_f32(c, a, b); }
FV_INLINE vf vf_max(vf a, vf b) { return vmaxq_f32(a, b); }
FV_INLINE vf vf_min(vf a, vf b) { return vminq_f32(a, b); }
FV_INLINE vf vf_prelu(vf x, vf a) { return vbslq_f32(vcltzq_f32(x), vmulq_f32(x, a), x); }
FV_INLINE vmask vmask_first(int n) { return n > VL ? VL : n; }
FV_INLINE vf vf_load_mask(vmask m, const float *p)
{
    float t[VL] = {0};
    memcpy(t, p, (size_t)m * sizeof *t);
    return vld1q_f32(t);
}
FV_INLINE void vf_store_mask(float *p, vmask m, vf v)
{
    float t[VL];
    vst1q_f32(t, v);
    memcpy(p, t, (size_t)m * sizeof *t);
}
FV_INLINE float vf_sum(vf v) { return vaddvq_f32(v); }

#elif defined(FV_ISA_GENERIC)
/* ---- portable C: GCC/clang vectors of 4 floats (SSE2 on x86-64, NEON on
 * ARM64, scalar code elsewhere) ---- */
#define VL 4
#define FV_GEMM_MR 4
#define FV_GEMM_NV 2
#define FV_DW_STRIP 4
#define FV_GEMM_TILE_NAME "4x8"
typedef float vf __attribute__((vector_size(16)));
typedef int32_t vi __attribute__((vector_size(16)));
typedef int vmask; /* lanes in use */
FV_INLINE vf vf_load(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
FV_INLINE void vf_store(float *p, vf v) { memcpy(p, &v, sizeof v); }
FV_INLINE vf vf_set1(float x) { return (vf){x, x, x, x}; }
FV_INLINE vf vf_zero(void) { return (vf){0, 0, 0, 0}; }
FV_INLINE vf vf_add(vf a, vf b) { return a + b; }
FV_INLINE vf vf_sub(vf a, vf b) { return a - b; }
FV_INLINE vf vf_mul(vf a, vf b) { return a * b; }
FV_INLINE vf vf_fma(vf a, vf b, vf c) { return a * b + c; }
FV_INLINE vf vf_fnma(vf a, vf b, vf c) { return c - a * b; }
FV_INLINE vf vf_select(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }
FV_INLINE vf vf_max(vf a, vf b) { return vf_select(a > b, a, b); }
FV_INLINE vf vf_min(vf a, vf b) { return vf_select(a < b, a, b); }
FV_INLINE vf vf_prelu(vf x, vf a) { return vf_select(x < vf_zero(), x * a, x); }
FV_INLINE vmask vmask_first(int n) { return n > VL ? VL : n; }
FV_INLINE vf vf_load_mask(vmask m, const float *p)
{
    vf v = vf_zero();
    memcpy(&v, p, (size_t)m * sizeof(float));
    return v;
}
FV_INLINE void vf_store_mask(float *p, vmask m, vf v) { memcpy(p, &v, (size_t)m * sizeof(float)); }
FV_INLINE float vf_sum(vf v) { return (v[0] + v[1]) + (v[2] + v[3]); }

#else
#error "model/kern/vec.h: define one of FV_ISA_GENERIC, FV_ISA_AVX2, FV_ISA_AVX512, FV_ISA_NEON"
#endif

#define FV_PANEL (FV_GEMM_NV * VL) /* output columns per packed weight panel */

#endif
