/* backward.h - gradients of the forward kernels in ops.h, on raw NHWC float arrays.
 *
 *   struct fv_conv_shape s = fv_conv_shape_make(n, h, w, c, 3, 3, 1, 1, FV_PADDING_SAME, o);
 *   fv_ops_conv2d(&s, x, filter, bias, FV_ACT_NONE, scratch, y);          // forward
 *   ... dy = dLoss/dy ...
 *   fv_backward_conv2d(&s, x, filter, dy, dx, dfilter, dbias, scratch);  // backward
 *
 * Every backward kernel ADDS its result into the gradient arrays it is given
 * (dx += ..., dfilter += ...), so a tensor read by several nodes (residual
 * connections) collects the sum of its readers' gradients; the caller zeroes
 * gradients before a backward pass. A NULL gradient pointer means "not
 * wanted" (the network input, a frozen parameter). Kernels never allocate: the
 * caller passes scratch memory of the size the matching _scratch() says.
 *
 * Training-mode forwards that must remember something for their backward
 * (max pooling's argmax, batch normalisation's batch statistics) live here too.
 */
#ifndef FV_BACKWARD_H
#define FV_BACKWARD_H

#include <stddef.h>
#include <stdint.h>

#include "model/ops.h"

/* Floats of scratch fv_backward_conv2d needs for s. */
size_t fv_backward_conv2d_scratch(const struct fv_conv_shape *s);
/* Convolution (filter O×KH×KW×I): dinput += col2im(dy · W), dfilter += dyᵀ · im2col(x),
 * dbias += Σ dy. dy is the gradient after any fused activation was undone
 * (fv_backward_activation). dinput, dfilter, dbias may each be NULL. */
void fv_backward_conv2d(const struct fv_conv_shape *s, const float *input, const float *filter,
                        const float *dy, float *dinput, float *dfilter, float *dbias,
                        float *scratch);

/* Depthwise convolution (filter KH×KW×C, multiplier 1). */
void fv_backward_depthwise_conv2d(const struct fv_conv_shape *s, const float *input,
                                  const float *filter, const float *dy, float *dinput,
                                  float *dfilter, float *dbias);

/* Fully connected (weights O×I): dinput += dy · W, dweights += dyᵀ · x, dbias += Σ dy. */
void fv_backward_fully_connected(int n, int in, int out, const float *input,
                                 const float *weights, const float *dy, float *dinput,
                                 float *dweights, float *dbias);

/* PReLU: dinput += dy · (x > 0 ? 1 : a), dslopes += Σ dy · min(x, 0) (per channel,
 * or summed into one value when n_slopes == 1). */
void fv_backward_prelu(size_t pixels, int c, const float *input, const float *slopes,
                       int n_slopes, const float *dy, float *dinput, float *dslopes);

/* Undoes a fused activation in place: dy *= act'(y), from the activation's
 * output y (relu: y > 0; relu6: 0 < y < 6). FV_ACT_NONE does nothing. */
void fv_backward_activation(size_t count, enum fv_activation act, const float *output, float *dy);
/* A standalone ReLU node: dinput += dy · (y > 0). */
void fv_backward_relu(size_t count, const float *output, const float *dy, float *dinput);

/* Max pooling that also records, for every output value, the index within
 * its sample (y · W + x) · C + c of the input that won; output as fv_ops_max_pool2d. */
void fv_forward_max_pool2d_argmax(const struct fv_conv_shape *s, const float *input,
                                  float *output, int32_t *argmax);
/* Routes each output gradient to the input that won the max. */
void fv_backward_max_pool2d(const struct fv_conv_shape *s, const int32_t *argmax,
                            const float *dy, float *dinput);

/* Batch normalisation in training mode over the last axis of `pixels` rows:
 * normalises with the batch mean and (biased) variance, stores them for the
 * backward pass (save_mean, save_inv_std: c values each), and moves the running
 * statistics used at inference: running ← (1 − momentum) · running + momentum · batch,
 * with the unbiased variance (PyTorch's convention; momentum 0.1 is usual). */
void fv_forward_batch_norm_train(size_t pixels, int c, const float *input, const float *gamma,
                                 const float *beta, float epsilon, float momentum,
                                 float *running_mean, float *running_var, float *save_mean,
                                 float *save_inv_std, float *output);
/* Gradient of the training-mode batch norm, through the batch statistics. */
void fv_backward_batch_norm(size_t pixels, int c, const float *input, const float *gamma,
                            const float *save_mean, const float *save_inv_std, const float *dy,
                            float *dinput, float *dgamma, float *dbeta);

/* Element-wise add of two tensors (da, db += dy), or of a tensor and a constant
 * broadcast over channels (b_count == c) or a scalar (b_count == 1): db += Σ dy. */
void fv_backward_add(size_t count, int c, size_t b_count, const float *dy, float *da, float *db);

/* Reshape / flatten: memory order does not change, so dinput += dy. */
void fv_backward_reshape(size_t count, const float *dy, float *dinput);

#endif
