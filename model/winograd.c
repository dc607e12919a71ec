/* winograd.c - F(2×2, 3×3) convolutions on the packed GEMM (see winograd.h). */
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
#define POINTS 16 /* 4 × 4 transformed values per block */

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
    return POINTS * fv_gemm_packed_floats(out_c, in_c);
}

size_t fv_winograd_scratch(int in_c, int out_c)
{
    return (size_t)POINTS * CHUNK * ((size_t)in_c + (size_t)out_c);
}

int fv_winograd_pack(int out_c, int in_c, const float *filter, float *packed)
{
    const size_t per = fv_gemm_packed_floats(out_c, in_c);
    float *u = malloc((size_t)out_c * in_c * sizeof *u);
    if (!u)
        return -1;
    /* Point (r, q) of G g Gᵀ for the 3×3 filter g of output o, channel c, with
     * G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]: one out_c × in_c matrix per point. */
    for (int point = 0; point < POINTS; point++) {
        int r = point / 4, q = point % 4;
        for (int o = 0; o < out_c; o++)
            for (int c = 0; c < in_c; c++) {
                const float *g = filter + (size_t)o * 9 * in_c + c;
                float row[3]; /* row r of G g, across kx */
                for (int kx = 0; kx < 3; kx++) {
                    float g0 = g[(size_t)kx * in_c], g1 = g[(size_t)(3 + kx) * in_c],
                          g2 = g[(size_t)(6 + kx) * in_c];
                    row[kx] = r == 0   ? g0
                              : r == 1 ? 0.5f * (g0 + g1 + g2)
                              : r == 2 ? 0.5f * (g0 - g1 + g2)
                                       : g2;
                }
                u[(size_t)o * in_c + c] = q == 0   ? row[0]
                                          : q == 1 ? 0.5f * (row[0] + row[1] + row[2])
                                          : q == 2 ? 0.5f * (row[0] - row[1] + row[2])
                                                   : row[2];
            }
        fv_gemm_pack(out_c, in_c, u, packed + (size_t)point * per);
    }
    free(u);
    return 0;
}

#ifdef FV_WINOGRAD
/* Input block t of the pass (output block (ty, tx) of image b): the 4×4 patch
 * at (2 ty, 2 tx), zero past the image, as Bᵀ d B with
 * Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], 16 channels at a time. */
static FV_AVX512 void transform_input(const struct fv_conv_shape *s, const float *img, int ty,
                                      int tx, float *v, size_t point_stride)
{
    const int c = s->in_c;
    for (int c0 = 0; c0 < c; c0 += 16) {
        __mmask16 mask = c - c0 >= 16 ? 0xFFFF : (__mmask16)((1u << (c - c0)) - 1);
        __m512 d[4][4], t[4][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                int iy = 2 * ty + i, ix = 2 * tx + j;
                d[i][j] = iy < s->in_h && ix < s->in_w
                              ? _mm512_maskz_loadu_ps(mask, img + ((size_t)iy * s->in_w + ix) * c + c0)
                              : _mm512_setzero_ps();
            }
        for (int j = 0; j < 4; j++) {
            t[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
            t[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
            t[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
            t[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
        }
        for (int i = 0; i < 4; i++) {
            float *row = v + (size_t)i * 4 * point_stride + c0;
            _mm512_mask_storeu_ps(row, mask, _mm512_sub_ps(t[i][0], t[i][2]));
            _mm512_mask_storeu_ps(row + point_stride, mask, _mm512_add_ps(t[i][1], t[i][2]));
            _mm512_mask_storeu_ps(row + 2 * point_stride, mask, _mm512_sub_ps(t[i][2], t[i][1]));
            _mm512_mask_storeu_ps(row + 3 * point_stride, mask, _mm512_sub_ps(t[i][1], t[i][3]));
        }
    }
}

/* The products of block t back to its 2×2 outputs, Aᵀ m A with
 * Aᵀ = [1 1 1 0; 0 1 -1 -1], then the epilogue; outputs past the image edge
 * (odd sizes) are dropped. */
static FV_AVX512 void transform_output(const struct fv_conv_shape *s, int b, int ty, int tx,
                                       const float *m, size_t point_stride,
                                       const struct fv_gemm_epilogue *e, float *output)
{
    const int n = s->out_c;
    for (int o0 = 0; o0 < n; o0 += 16) {
        __mmask16 mask = n - o0 >= 16 ? 0xFFFF : (__mmask16)((1u << (n - o0)) - 1);
        const struct fv_epi512 ep = fv_epi512_load(e, o0, mask);
        __m512 p[4][4], t[2][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                p[i][j] = _mm512_maskz_loadu_ps(mask, m + (size_t)(i * 4 + j) * point_stride + o0);
        for (int j = 0; j < 4; j++) {
            t[0][j] = _mm512_add_ps(_mm512_add_ps(p[0][j], p[1][j]), p[2][j]);
            t[1][j] = _mm512_sub_ps(_mm512_sub_ps(p[1][j], p[2][j]), p[3][j]);
        }
        for (int i = 0; i < 2; i++) {
            int oy = 2 * ty + i;
            if (oy >= s->out_h)
                break;
            __m512 y[2] = {_mm512_add_ps(_mm512_add_ps(t[i][0], t[i][1]), t[i][2]),
                           _mm512_sub_ps(_mm512_sub_ps(t[i][1], t[i][2]), t[i][3])};
            for (int j = 0; j < 2; j++) {
                int ox = 2 * tx + j;
                if (ox >= s->out_w)
                    break;
                fv_epi512_store(y[j], &ep, ((size_t)b * s->out_h + oy) * s->out_w + ox, n, e,
                                output);
            }
        }
    }
}

static FV_AVX512 void winograd_conv(const struct fv_conv_shape *s, const float *input,
                                    const float *packed, const struct fv_gemm_epilogue *e,
                                    float *scratch, float *output)
{
    const int c = s->in_c, n = s->out_c;
    const int th = (s->out_h + 1) / 2, tw = (s->out_w + 1) / 2;
    const size_t blocks = (size_t)s->n * th * tw, per = fv_gemm_packed_floats(n, c);
    const size_t v_stride = (size_t)CHUNK * c, m_stride = (size_t)CHUNK * n;
    float *v = scratch, *m = scratch + POINTS * v_stride;
    for (size_t t0 = 0; t0 < blocks; t0 += CHUNK) {
        int count = blocks - t0 < CHUNK ? (int)(blocks - t0) : CHUNK;
        for (int t = 0; t < count; t++) {
            size_t id = t0 + (size_t)t;
            int b = (int)(id / ((size_t)th * tw)), rest = (int)(id % ((size_t)th * tw));
            transform_input(s, input + (size_t)b * s->in_h * s->in_w * c, rest / tw, rest % tw,
                            v + (size_t)t * c, v_stride);
        }
        for (int point = 0; point < POINTS; point++)
            fv_gemm_nt((size_t)count, n, c, v + point * v_stride, (size_t)c, NULL,
                       packed + point * per, NULL, m + point * m_stride);
        for (int t = 0; t < count; t++) {
            size_t id = t0 + (size_t)t;
            int b = (int)(id / ((size_t)th * tw)), rest = (int)(id % ((size_t)th * tw));
            transform_output(s, b, rest / tw, rest % tw, m + (size_t)t * n, m_stride, e, output);
        }
    }
}
#endif

void fv_winograd_conv(const struct fv_conv_shape *s, const float *input, const float *packed,
                      const struct fv_gemm_epilogue *e, float *scratch, float *output)
{
#ifdef FV_WINOGRAD
    static const struct fv_gemm_epilogue none = {0};
    winograd_conv(s, input, packed, e ? e : &none, scratch, output);
#else
    (void)s, (void)input, (void)packed, (void)e, (void)scratch, (void)output;
#endif
}
