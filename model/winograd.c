/* winograd.c - F(2×2, 3×3) and F(3×3, 3×3) convolutions on the packed GEMM (see winograd.h). */
#include "model/winograd.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "model/epilogue512.h"
#define FV_WINOGRAD 1
#endif

/* Output blocks transformed per pass: the transformed input and products of
 * one pass (16 · CHUNK · (in_c + out_c) floats) stay in the L2 cache. A
 * multiple of the GEMM's 12-row tile. */
#define CHUNK 48
#define MAX_POINTS 25 /* 5 × 5 transformed values per block of F(3×3, 3×3) */

/* The two variants: F(2×2, 3×3) on 4×4 patches (16 points, 4 outputs) and
 * F(3×3, 3×3) on 5×5 patches (25 points, 9 outputs: 2.78 multiplications per
 * output instead of 4). Packed filters hold F2's 16 points, then F3's 25. */
enum { F2, F3 };
static const int tile_out[2] = {2, 3}, tile_in[2] = {4, 5};

/* G of each variant (points 0, 1, -1 and ∞; F3 adds 2). */
static const double g2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double g3[5][3] = {{0.5, 0, 0},
                                {-0.5, -0.5, -0.5},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 6, 1.0 / 3, 2.0 / 3},
                                {0, 0, 1}};

int fv_winograd_supported(int kernel_h, int kernel_w, int stride_h, int stride_w, int pad_top,
                          int pad_left, int in_c)
{
#ifdef FV_WINOGRAD
    return kernel_h == 3 && kernel_w == 3 && stride_h == 1 && stride_w == 1 && pad_top == 0 &&
           pad_left == 0 && in_c >= 16 && fv_gemm_packed_available();
#else
    (void)kernel_h, (void)kernel_w, (void)stride_h, (void)stride_w, (void)pad_top, (void)pad_left,
        (void)in_c;
    return 0;
#endif
}

int fv_winograd_applies(const struct fv_conv_shape *s)
{
    return fv_winograd_supported(s->kernel_h, s->kernel_w, s->stride_h, s->stride_w, s->pad_top,
                                 s->pad_left, s->in_c) &&
           s->out_h >= 1 && s->out_w >= 1 && s->in_h == s->out_h + 2 && s->in_w == s->out_w + 2;
}

size_t fv_winograd_packed_floats(int out_c, int in_c)
{
    return (16 + 25) * fv_gemm_packed_floats(out_c, in_c);
}

size_t fv_winograd_scratch(int in_c, int out_c)
{
    return (size_t)MAX_POINTS * CHUNK * ((size_t)in_c + (size_t)out_c);
}

int fv_winograd_pack(int out_c, int in_c, const float *filter, float *packed)
{
    const size_t per = fv_gemm_packed_floats(out_c, in_c);
    float *u = malloc((size_t)out_c * in_c * sizeof *u);
    if (!u)
        return -1;
    /* Point (r, q) of G g Gᵀ for the 3×3 filter g of output o, channel c: one
     * out_c × in_c matrix per point, in double and rounded once. */
    for (int v = F2; v <= F3; v++) {
        const int a = tile_in[v];
        const double(*gm)[3] = v == F2 ? g2 : g3;
        float *dst = packed + (v == F2 ? 0 : 16 * per);
        for (int point = 0; point < a * a; point++) {
            int r = point / a, q = point % a;
            for (int o = 0; o < out_c; o++)
                for (int c = 0; c < in_c; c++) {
                    const float *g = filter + (size_t)o * 9 * in_c + c;
                    double sum = 0.0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++)
                            sum += gm[r][ky] * gm[q][kx] * g[(size_t)(ky * 3 + kx) * in_c];
                    u[(size_t)o * in_c + c] = (float)sum;
                }
            fv_gemm_pack(out_c, in_c, u, dst + (size_t)point * per);
        }
    }
    free(u);
    return 0;
}

int fv_winograd_tile(const struct fv_conv_shape *s)
{
    size_t f2 = (size_t)((s->out_h + 1) / 2) * ((s->out_w + 1) / 2) * 16;
    size_t f3 = (size_t)((s->out_h + 2) / 3) * ((s->out_w + 2) / 3) * 25;
    return f3 < f2 ? 3 : 2;
}

#ifdef FV_WINOGRAD
/* Bᵀ along one line of a patch. F2: Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
 * F3: Bᵀ = [2 -1 -2 1 0; 0 -2 -1 1 0; 0 2 -3 1 0; 0 -1 0 1 0; 0 2 -1 -2 1]. */
static inline __attribute__((always_inline)) FV_AVX512 void
input_line(int v, const __m512 *d, __m512 *u)
{
    if (v == F2) {
        u[0] = _mm512_sub_ps(d[0], d[2]);
        u[1] = _mm512_add_ps(d[1], d[2]);
        u[2] = _mm512_sub_ps(d[2], d[1]);
        u[3] = _mm512_sub_ps(d[1], d[3]);
        return;
    }
    const __m512 two = _mm512_set1_ps(2.0f);
    const __m512 d31 = _mm512_sub_ps(d[3], d[1]), d32 = _mm512_sub_ps(d[3], d[2]);
    u[0] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[0], d[2]), d31);
    u[1] = _mm512_fnmadd_ps(two, d[1], d32);
    u[2] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[1], d[2]), d32);
    u[3] = d31;
    u[4] = _mm512_fnmadd_ps(two, d31, _mm512_sub_ps(d[4], d[2]));
}

/* Aᵀ along one line of products. F2: Aᵀ = [1 1 1 0; 0 1 -1 -1].
 * F3: Aᵀ = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 1]. */
static inline __attribute__((always_inline)) FV_AVX512 void
output_line(int v, const __m512 *m, __m512 *y)
{
    if (v == F2) {
        y[0] = _mm512_add_ps(_mm512_add_ps(m[0], m[1]), m[2]);
        y[1] = _mm512_sub_ps(_mm512_sub_ps(m[1], m[2]), m[3]);
        return;
    }
    const __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
    y[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), m[3]);
    y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), m[3], d12);
    y[2] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(4.0f), m[3], s12), m[4]);
}

/* Input block (ty, tx) of one image: the a × a patch at (m ty, m tx), zero past
 * the image, as Bᵀ d B, 16 channels at a time; point (i, j) goes to
 * v + (i a + j) · point_stride. */
static inline __attribute__((always_inline)) FV_AVX512 void
transform_input(int var, const struct fv_conv_shape *s, const float *img, int ty, int tx,
                float *v, size_t point_stride)
{
    const int c = s->in_c, a = tile_in[var], step = tile_out[var];
    for (int c0 = 0; c0 < c; c0 += 16) {
        __mmask16 mask = c - c0 >= 16 ? 0xFFFF : (__mmask16)((1u << (c - c0)) - 1);
        __m512 t[5][5];
        #pragma GCC unroll 5
        for (int j = 0; j < a; j++) {
            __m512 d[5], u[5];
            int ix = step * tx + j;
            #pragma GCC unroll 5
            for (int i = 0; i < a; i++) {
                int iy = step * ty + i;
                d[i] = iy < s->in_h && ix < s->in_w
                           ? _mm512_maskz_loadu_ps(mask, img + ((size_t)iy * s->in_w + ix) * c + c0)
                           : _mm512_setzero_ps();
            }
            input_line(var, d, u);
            #pragma GCC unroll 5
            for (int i = 0; i < a; i++)
                t[i][j] = u[i];
        }
        #pragma GCC unroll 5
        for (int i = 0; i < a; i++) {
            __m512 u[5];
            input_line(var, t[i], u);
            float *row = v + (size_t)i * a * point_stride + c0;
            #pragma GCC unroll 5
            for (int j = 0; j < a; j++)
                _mm512_mask_storeu_ps(row + j * point_stride, mask, u[j]);
        }
    }
}

/* The products of one block back to its m × m outputs, Aᵀ p A, then the
 * epilogue; outputs past the image edge are dropped. */
static inline __attribute__((always_inline)) FV_AVX512 void
transform_output(int var, const struct fv_conv_shape *s, int b, int ty, int tx, const float *m,
                 size_t point_stride, const struct fv_gemm_epilogue *e, float *output)
{
    const int n = s->out_c, a = tile_in[var], step = tile_out[var];
    for (int o0 = 0; o0 < n; o0 += 16) {
        __mmask16 mask = n - o0 >= 16 ? 0xFFFF : (__mmask16)((1u << (n - o0)) - 1);
        const struct fv_epi512 ep = fv_epi512_load(e, o0, mask);
        __m512 t[3][5];
        #pragma GCC unroll 5
        for (int j = 0; j < a; j++) {
            __m512 p[5], y[3];
            #pragma GCC unroll 5
            for (int i = 0; i < a; i++)
                p[i] = _mm512_maskz_loadu_ps(mask, m + (size_t)(i * a + j) * point_stride + o0);
            output_line(var, p, y);
            #pragma GCC unroll 5
            for (int i = 0; i < step; i++)
                t[i][j] = y[i];
        }
        #pragma GCC unroll 5
        for (int i = 0; i < step; i++) {
            int oy = step * ty + i;
            if (oy >= s->out_h)
                break;
            __m512 y[3];
            output_line(var, t[i], y);
            #pragma GCC unroll 5
            for (int j = 0; j < step; j++) {
                int ox = step * tx + j;
                if (ox >= s->out_w)
                    break;
                fv_epi512_store(y[j], &ep, ((size_t)b * s->out_h + oy) * s->out_w + ox, n, e,
                                output);
            }
        }
    }
}

static inline __attribute__((always_inline)) FV_AVX512 void
winograd_conv(int var, const struct fv_conv_shape *s, const float *input, const float *packed,
              const struct fv_gemm_epilogue *e, float *scratch, float *output)
{
    const int c = s->in_c, n = s->out_c, step = tile_out[var], points = tile_in[var] * tile_in[var];
    const int th = (s->out_h + step - 1) / step, tw = (s->out_w + step - 1) / step;
    const size_t blocks = (size_t)s->n * th * tw, per = fv_gemm_packed_floats(n, c);
    const size_t v_stride = (size_t)CHUNK * c, m_stride = (size_t)CHUNK * n;
    float *v = scratch, *m = scratch + (size_t)points * v_stride;
    packed += var == F2 ? 0 : 16 * per;
    for (size_t t0 = 0; t0 < blocks; t0 += CHUNK) {
        int count = blocks - t0 < CHUNK ? (int)(blocks - t0) : CHUNK;
        for (int t = 0; t < count; t++) {
            size_t id = t0 + (size_t)t;
            int b = (int)(id / ((size_t)th * tw)), rest = (int)(id % ((size_t)th * tw));
            transform_input(var, s, input + (size_t)b * s->in_h * s->in_w * c, rest / tw,
                            rest % tw, v + (size_t)t * c, v_stride);
        }
        for (int point = 0; point < points; point++)
            fv_gemm_nt((size_t)count, n, c, v + point * v_stride, (size_t)c, NULL,
                       packed + point * per, NULL, m + point * m_stride);
        for (int t = 0; t < count; t++) {
            size_t id = t0 + (size_t)t;
            int b = (int)(id / ((size_t)th * tw)), rest = (int)(id % ((size_t)th * tw));
            transform_output(var, s, b, rest / tw, rest % tw, m + (size_t)t * n, m_stride, e,
                             output);
        }
    }
}

static FV_AVX512 void winograd_f2(const struct fv_conv_shape *s, const float *input,
                                  const float *packed, const struct fv_gemm_epilogue *e,
                                  float *scratch, float *output)
{
    winograd_conv(F2, s, input, packed, e, scratch, output);
}

static FV_AVX512 void winograd_f3(const struct fv_conv_shape *s, const float *input,
                                  const float *packed, const struct fv_gemm_epilogue *e,
                                  float *scratch, float *output)
{
    winograd_conv(F3, s, input, packed, e, scratch, output);
}
#endif

void fv_winograd_conv(const struct fv_conv_shape *s, const float *input, const float *packed,
                      const struct fv_gemm_epilogue *e, float *scratch, float *output)
{
#ifdef FV_WINOGRAD
    static const struct fv_gemm_epilogue none = {0};
    if (fv_winograd_tile(s) == 3)
        winograd_f3(s, input, packed, e ? e : &none, scratch, output);
    else
        winograd_f2(s, input, packed, e ? e : &none, scratch, output);
#else
    (void)s, (void)input, (void)packed, (void)e, (void)scratch, (void)output;
#endif
}
