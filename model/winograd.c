/* winograd.c - F(2×2, 3×3) and F(3×3, 3×3) convolutions on the packed GEMM (see winograd.h). */
#include "model/winograd.h"

#include <stdlib.h>
#include <string.h>

#include "model/kernels.h"

#define MAX_POINTS 25 /* 5 × 5 transformed values per block of F(3×3, 3×3) */

/* The two variants: F(2×2, 3×3) on 4×4 patches (16 points, 4 outputs) and
 * F(3×3, 3×3) on 5×5 patches (25 points, 9 outputs: 2.78 multiplications per
 * output instead of 4). Packed filters hold F2's 16 points, then F3's 25. */
enum { F2, F3 };
static const int tile_in[2] = {4, 5};

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
    return kernel_h == 3 && kernel_w == 3 && stride_h == 1 && stride_w == 1 && pad_top == 0 &&
           pad_left == 0 && in_c >= 16;
}

int fv_winograd_applies(const struct fv_conv_shape *s)
{
    return fv_winograd_supported(s->kernel_h, s->kernel_w, s->stride_h, s->stride_w, s->pad_top,
                                 s->pad_left, s->in_c) &&
           s->out_h >= 1 && s->out_w >= 1 && s->in_h == s->out_h + 2 && s->in_w == s->out_w + 2;
}

size_t fv_winograd_packed_floats(const struct fv_kernels *k, int out_c, int in_c)
{
    return (16 + 25) * fv_kernels_packed_floats(k, out_c, in_c);
}

size_t fv_winograd_scratch(int in_c, int out_c)
{
    return (size_t)MAX_POINTS * FV_WINOGRAD_CHUNK * ((size_t)in_c + (size_t)out_c);
}

int fv_winograd_pack(const struct fv_kernels *k, int out_c, int in_c, const float *filter,
                     float *packed)
{
    const size_t per = fv_kernels_packed_floats(k, out_c, in_c);
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
            k->pack(out_c, in_c, u, dst + (size_t)point * per);
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

void fv_winograd_conv(const struct fv_kernels *k, const struct fv_conv_shape *s,
                      const float *input, const float *packed, const struct fv_gemm_epilogue *e,
                      float *scratch, float *output)
{
    k->winograd(fv_winograd_tile(s), s, input, packed, e, scratch, output);
}
