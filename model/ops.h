/* ops.h - the forward kernels behind every graph op, on raw NHWC float arrays.
 *
 *   struct fv_conv_shape s = fv_conv_shape_make(n, h, w, c, kh, kw, sh, sw, FV_PADDING_SAME, o);
 *   fv_ops_conv2d(&s, input, filter, bias, FV_ACT_RELU, scratch, output);
 *
 * The engine calls these; tests call them directly with hand-computed cases.
 * No kernel allocates: the caller passes any scratch memory the kernel needs
 * (fv_ops_conv2d_scratch() says how much).
 */
#ifndef FV_OPS_H
#define FV_OPS_H

#include <stddef.h>

#include "model/gemm.h"
#include "model/graph.h"

/* Geometry of a convolution or pooling window over an NHWC batch. Padding is
 * TensorFlow's: SAME pads (out - 1) * stride + kernel - in in total, the
 * smaller half before (top/left) and the larger after. */
struct fv_conv_shape {
    int n, in_h, in_w, in_c;
    int kernel_h, kernel_w, stride_h, stride_w;
    int pad_top, pad_left;
    int out_h, out_w, out_c;
};

struct fv_conv_shape fv_conv_shape_make(int n, int in_h, int in_w, int in_c, int kernel_h,
                                        int kernel_w, int stride_h, int stride_w,
                                        enum fv_padding padding, int out_c);

/* 1: a 1×1, stride-1, unpadded convolution, a plain GEMM on the input. */
int fv_conv_is_pointwise(const struct fv_conv_shape *s);
/* Rows of the im2col matrix handled at once (bounded scratch on large maps). */
size_t fv_conv_block_rows(const struct fv_conv_shape *s);
/* Copies the KH×KW×C window of every output position in [row0, row0 + rows)
 * into consecutive rows of col, zeros where the window leaves the image. */
void fv_ops_im2col(const struct fv_conv_shape *s, const float *input, size_t row0, size_t rows,
                   float *col);

/* Floats of scratch fv_ops_conv2d needs for s (0 for 1×1 stride-1 convolutions). */
size_t fv_ops_conv2d_scratch(const struct fv_conv_shape *s);

/* filter O×KH×KW×I, bias O or NULL. */
void fv_ops_conv2d(const struct fv_conv_shape *s, const float *input, const float *filter,
                   const float *bias, enum fv_activation act, float *scratch, float *output);
/* The same convolution with its epilogue (bias, residual, activation, PReLU)
 * applied as the output is written, and the filter packed by kernels->pack
 * when packed is not NULL (kernels may be NULL when packed is). */
struct fv_kernels;
void fv_ops_conv2d_fused(const struct fv_kernels *kernels, const struct fv_conv_shape *s,
                         const float *input, const float *filter, const float *packed,
                         const struct fv_gemm_epilogue *e, float *scratch, float *output);
/* filter KH×KW×C, bias C or NULL; out_c == in_c. Depthwise and pooling run
 * on the active CPU level's kernels (kernels.h). */
void fv_ops_depthwise_conv2d(const struct fv_conv_shape *s, const float *input,
                             const float *filter, const float *bias, enum fv_activation act,
                             float *output);
/* The same, with PReLU (slopes: c values, or one when n_slopes == 1; NULL for
 * none) applied as each output is stored. */
void fv_ops_depthwise_conv2d_prelu(const struct fv_conv_shape *s, const float *input,
                                   const float *filter, const float *bias, const float *slopes,
                                   int n_slopes, float *output);
/* SAME padding never wins the max: padded cells are ignored. */
void fv_ops_max_pool2d(const struct fv_conv_shape *s, const float *input, float *output);
/* weights O×I, bias O or NULL; input n×I, output n×O. */
void fv_ops_fully_connected(int n, int in, int out, const float *input, const float *weights,
                            const float *bias, enum fv_activation act, float *output);
/* slopes: c values, or one shared value when n_slopes == 1. */
void fv_ops_prelu(size_t pixels, int c, const float *input, const float *slopes, int n_slopes,
                  float *output);
/* output = prelu(input + bias): a convolution's bias and the PReLU after it in one
 * pass over memory. bias has c values; slopes c values or one (n_slopes == 1). */
void fv_ops_bias_prelu(size_t pixels, int c, const float *input, const float *bias,
                       const float *slopes, int n_slopes, float *output);
void fv_ops_activation(size_t count, enum fv_activation act, float *data);
/* output = a (+|×) b elementwise, b either `count` values or broadcast over the
 * last axis (b_count == c) or a scalar (b_count == 1). */
void fv_ops_add(size_t count, int c, const float *a, const float *b, size_t b_count,
                enum fv_activation act, float *output);
void fv_ops_mul(size_t count, int c, const float *a, const float *b, size_t b_count,
                enum fv_activation act, float *output);
/* Softmax over the last axis of length c, for each of `rows` rows. */
void fv_ops_softmax(size_t rows, int c, const float *input, float *output);
/* Each of n samples of `size` values divided by sqrt(max(sum of squares, epsilon)). */
void fv_ops_l2_norm(int n, size_t size, float epsilon, const float *input, float *output);
/* Inference-mode batch norm over the last axis. */
void fv_ops_batch_norm(size_t pixels, int c, const float *input, const float *gamma,
                       const float *beta, const float *mean, const float *variance,
                       float epsilon, float *output);

#endif
