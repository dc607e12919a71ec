/* winograd.h - 3×3 stride-1 unpadded convolutions by Winograd's minimal
 * filtering, F(2×2, 3×3) or F(3×3, 3×3).
 *
 * Each m × m block of outputs comes from an (m + 2) × (m + 2) input patch: the
 * patch is transformed (Bᵀ d B), multiplied channel-wise by the transformed
 * filter (G g Gᵀ, computed once at load) as (m + 2)² GEMMs on the packed
 * kernel, and transformed back (Aᵀ p A). F(2×2, 3×3) makes 16 multiplications
 * per 4 outputs instead of 36 (2.25× fewer), F(3×3, 3×3) 25 per 9 instead of
 * 81 (3.24× fewer); each convolution takes the one with fewer multiplications
 * for its output size, edge blocks included. Used for the MTCNN convolutions
 * with 16 or more input channels, at every CPU level (the transforms are each
 * level's, model/kern/kernels.c); results agree with the
 * direct convolution to float rounding (the transforms' coefficients are
 * small integers, and G's fractions are applied to the filter in double).
 *
 *   if (fv_winograd_applies(&shape) && (packed = aligned_alloc(64, ...)))
 *       fv_winograd_pack(kernels, out_c, in_c, filter, packed);          at load
 *   fv_winograd_conv(kernels, &shape, input, packed, &epilogue, scratch, output);
 */
#ifndef FV_WINOGRAD_H
#define FV_WINOGRAD_H

#include <stddef.h>

#include "model/gemm.h"
#include "model/ops.h"

/* 1 when the kernel can run a convolution of this geometry (3×3, stride 1,
 * no padding, at least 16 input channels). The batch and
 * spatial size do not matter. */
int fv_winograd_supported(int kernel_h, int kernel_w, int stride_h, int stride_w, int pad_top,
                          int pad_left, int in_c);
int fv_winograd_applies(const struct fv_conv_shape *s);

struct fv_kernels;

/* Floats of the transformed, packed filter of an out_c × 3 × 3 × in_c filter
 * for the kernels' panel width, and the transformation itself (packed 64-byte
 * aligned); -1 when out of memory, else 0. */
size_t fv_winograd_packed_floats(const struct fv_kernels *k, int out_c, int in_c);
int fv_winograd_pack(const struct fv_kernels *k, int out_c, int in_c, const float *filter,
                     float *packed);

/* The output block size fv_winograd_conv uses for s: 2 or 3. */
int fv_winograd_tile(const struct fv_conv_shape *s);

/* Floats of scratch fv_winograd_conv needs for in_c → out_c. */
size_t fv_winograd_scratch(int in_c, int out_c);

/* output = epilogue(conv3×3(input)) for s (fv_winograd_applies(s)). */
void fv_winograd_conv(const struct fv_kernels *k, const struct fv_conv_shape *s,
                      const float *input, const float *packed, const struct fv_gemm_epilogue *e,
                      float *scratch, float *output);

#endif
