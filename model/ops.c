/* ops.c - forward kernels: im2col + sgemm convolutions, depthwise, pooling, PReLU, ... */
#include "model/ops.h"

#include "model/gemm.h"
#include "model/kernels.h"
#include "model/simd.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* im2col works on row blocks of at most this many floats, so scratch stays
 * small on big P-Net pyramid levels and the block stays in cache. */
#define FV_IM2COL_BLOCK_FLOATS ((size_t)1 << 20)

static int same_pad_before(int in, int out, int kernel, int stride)
{
    int total = (out - 1) * stride + kernel - in;
    return total > 0 ? total / 2 : 0;
}

struct fv_conv_shape fv_conv_shape_make(int n, int in_h, int in_w, int in_c, int kernel_h,
                                        int kernel_w, int stride_h, int stride_w,
                                        enum fv_padding padding, int out_c)
{
    struct fv_conv_shape s = {
        .n = n, .in_h = in_h, .in_w = in_w, .in_c = in_c,
        .kernel_h = kernel_h, .kernel_w = kernel_w, .stride_h = stride_h, .stride_w = stride_w,
        .out_c = out_c,
    };
    if (padding == FV_PADDING_SAME) {
        s.out_h = (in_h + stride_h - 1) / stride_h;
        s.out_w = (in_w + stride_w - 1) / stride_w;
        s.pad_top = same_pad_before(in_h, s.out_h, kernel_h, stride_h);
        s.pad_left = same_pad_before(in_w, s.out_w, kernel_w, stride_w);
    } else {
        s.out_h = in_h >= kernel_h ? (in_h - kernel_h) / stride_h + 1 : 0;
        s.out_w = in_w >= kernel_w ? (in_w - kernel_w) / stride_w + 1 : 0;
    }
    return s;
}

int fv_conv_is_pointwise(const struct fv_conv_shape *s)
{
    return s->kernel_h == 1 && s->kernel_w == 1 && s->stride_h == 1 && s->stride_w == 1 &&
           s->pad_top == 0 && s->pad_left == 0;
}

size_t fv_conv_block_rows(const struct fv_conv_shape *s)
{
    size_t k = (size_t)s->kernel_h * s->kernel_w * s->in_c;
    size_t rows = (size_t)s->n * s->out_h * s->out_w;
    size_t block = FV_IM2COL_BLOCK_FLOATS / k;
    if (block < 64)
        block = 64;
    return block < rows ? block : rows;
}

size_t fv_ops_conv2d_scratch(const struct fv_conv_shape *s)
{
    if (fv_conv_is_pointwise(s))
        return 0;
    return fv_conv_block_rows(s) * (size_t)s->kernel_h * s->kernel_w * s->in_c;
}

void fv_ops_activation(size_t count, enum fv_activation act, float *data)
{
    if (act == FV_ACT_NONE)
        return;
    const size_t c8 = count & ~(size_t)7;
    const v8f zero = SPLAT8(0.0f), six = SPLAT8(6.0f);
    for (size_t i = 0; i < c8; i += 8) {
        v8f v = MAX8(LOAD8(data + i), zero);
        STORE8(data + i, act == FV_ACT_RELU6 ? MIN8(v, six) : v);
    }
    for (size_t i = c8; i < count; i++) {
        float v = data[i] > 0.0f ? data[i] : 0.0f;
        data[i] = act == FV_ACT_RELU6 && v > 6.0f ? 6.0f : v;
    }
}

void fv_ops_im2col(const struct fv_conv_shape *s, const float *input, size_t row0, size_t rows,
                   float *col)
{
    const int c = s->in_c;
    const size_t k = (size_t)s->kernel_h * s->kernel_w * c;
    const size_t per_image = (size_t)s->out_h * s->out_w;
    for (size_t r = 0; r < rows; r++) {
        size_t idx = row0 + r;
        int b = (int)(idx / per_image);
        int rem = (int)(idx % per_image);
        int oy = rem / s->out_w, ox = rem % s->out_w;
        float *dst = col + r * k;
        const float *img = input + (size_t)b * s->in_h * s->in_w * c;
        for (int ky = 0; ky < s->kernel_h; ky++) {
            int iy = oy * s->stride_h - s->pad_top + ky;
            if (iy < 0 || iy >= s->in_h) {
                memset(dst, 0, (size_t)s->kernel_w * c * sizeof *dst);
                dst += (size_t)s->kernel_w * c;
                continue;
            }
            int ix0 = ox * s->stride_w - s->pad_left;
            if (ix0 >= 0 && ix0 + s->kernel_w <= s->in_w) {
                memcpy(dst, img + ((size_t)iy * s->in_w + ix0) * c,
                       (size_t)s->kernel_w * c * sizeof *dst);
                dst += (size_t)s->kernel_w * c;
                continue;
            }
            for (int kx = 0; kx < s->kernel_w; kx++, dst += c) {
                int ix = ix0 + kx;
                if (ix < 0 || ix >= s->in_w)
                    memset(dst, 0, (size_t)c * sizeof *dst);
                else
                    memcpy(dst, img + ((size_t)iy * s->in_w + ix) * c, (size_t)c * sizeof *dst);
            }
        }
    }
}

void fv_ops_conv2d_fused(const struct fv_kernels *kernels, const struct fv_conv_shape *s,
                         const float *input, const float *filter, const float *packed,
                         const struct fv_gemm_epilogue *e, float *scratch, float *output)
{
    const size_t rows = (size_t)s->n * s->out_h * s->out_w;
    const int k = s->kernel_h * s->kernel_w * s->in_c;
    if (rows == 0)
        return;
    if (fv_conv_is_pointwise(s)) {
        fv_gemm_nt(kernels, rows, s->out_c, k, input, (size_t)k, filter, packed, e, output);
        return;
    }
    const struct fv_gemm_windows win = {s->n, s->in_h, s->in_w, s->in_c, s->kernel_h,
                                        s->kernel_w, s->stride_h, s->stride_w, s->out_h,
                                        s->out_w};
    if (packed && s->pad_top == 0 && s->pad_left == 0 && fv_gemm_windows_ok(&win)) {
        kernels->gemm_windows(&win, input, s->out_c, packed, e, output);
        return;
    }
    const size_t block = fv_conv_block_rows(s);
    for (size_t r0 = 0; r0 < rows; r0 += block) {
        size_t nr = rows - r0 < block ? rows - r0 : block;
        struct fv_gemm_epilogue part = *e;
        if (part.residual)
            part.residual += r0 * s->out_c;
        fv_ops_im2col(s, input, r0, nr, scratch);
        fv_gemm_nt(kernels, nr, s->out_c, k, scratch, (size_t)k, filter, packed, &part,
                   output + r0 * s->out_c);
    }
}

void fv_ops_conv2d(const struct fv_conv_shape *s, const float *input, const float *filter,
                   const float *bias, enum fv_activation act, float *scratch, float *output)
{
    const struct fv_gemm_epilogue e = {.bias = bias, .act = act};
    fv_ops_conv2d_fused(NULL, s, input, filter, NULL, &e, scratch, output);
}

void fv_ops_depthwise_conv2d_prelu(const struct fv_conv_shape *s, const float *input,
                                   const float *filter, const float *bias, const float *slopes,
                                   int n_slopes, float *output)
{
    fv_kernels_active()->depthwise(s, input, filter, bias, slopes, n_slopes, output);
}

void fv_ops_depthwise_conv2d(const struct fv_conv_shape *s, const float *input,
                             const float *filter, const float *bias, enum fv_activation act,
                             float *output)
{
    fv_ops_depthwise_conv2d_prelu(s, input, filter, bias, NULL, 0, output);
    fv_ops_activation((size_t)s->n * s->out_h * s->out_w * s->in_c, act, output);
}

void fv_ops_max_pool2d(const struct fv_conv_shape *s, const float *input, float *output)
{
    fv_kernels_active()->max_pool(s, input, output);
}

void fv_ops_fully_connected(int n, int in, int out, const float *input, const float *weights,
                            const float *bias, enum fv_activation act, float *output)
{
    const struct fv_gemm_epilogue e = {.bias = bias, .act = act};
    fv_gemm_nt(NULL, (size_t)n, out, in, input, (size_t)in, weights, NULL, &e, output);
}

void fv_ops_prelu(size_t pixels, int c, const float *input, const float *slopes,
                         int n_slopes, float *output)
{
    /* Branch-free: y = max(x, 0) + a · min(x, 0). Signs are random, so a branch
     * per element would mispredict half the time. */
    const v8f zero = SPLAT8(0.0f);
    if (n_slopes == 1) {
        const size_t count = pixels * (size_t)c, c8 = count & ~(size_t)7;
        const v8f a = SPLAT8(slopes[0]);
        for (size_t i = 0; i < c8; i += 8) {
            v8f x = LOAD8(input + i);
            STORE8(output + i, MAX8(x, zero) + a * MIN8(x, zero));
        }
        for (size_t i = c8; i < count; i++)
            output[i] = input[i] > 0.0f ? input[i] : slopes[0] * input[i];
        return;
    }
    const int c8 = c & ~7;
    for (size_t p = 0; p < pixels; p++) {
        const float *x = input + p * c;
        float *y = output + p * c;
        for (int k = 0; k < c8; k += 8) {
            v8f v = LOAD8(x + k);
            STORE8(y + k, MAX8(v, zero) + LOAD8(slopes + k) * MIN8(v, zero));
        }
        for (int k = c8; k < c; k++)
            y[k] = x[k] > 0.0f ? x[k] : slopes[k] * x[k];
    }
}

void fv_ops_bias_prelu(size_t pixels, int c, const float *input, const float *bias,
                              const float *slopes, int n_slopes, float *output)
{
    const int c8 = c & ~7;
    const v8f zero = SPLAT8(0.0f);
    for (size_t p = 0; p < pixels; p++) {
        const float *x = input + p * c;
        float *y = output + p * c;
        for (int k = 0; k < c8; k += 8) {
            v8f v = LOAD8(x + k) + LOAD8(bias + k);
            v8f a = n_slopes == 1 ? SPLAT8(slopes[0]) : LOAD8(slopes + k);
            STORE8(y + k, MAX8(v, zero) + a * MIN8(v, zero));
        }
        for (int k = c8; k < c; k++) {
            float v = x[k] + bias[k], a = n_slopes == 1 ? slopes[0] : slopes[k];
            y[k] = v > 0.0f ? v : a * v;
        }
    }
}

static void binary_op(int is_mul, size_t count, int c, const float *a, const float *b,
                             size_t b_count, float *out)
{
    if (b_count == count) {
        if (is_mul)
            for (size_t i = 0; i < count; i++)
                out[i] = a[i] * b[i];
        else
            for (size_t i = 0; i < count; i++)
                out[i] = a[i] + b[i];
    } else if (b_count == 1) {
        const float v = b[0];
        if (is_mul)
            for (size_t i = 0; i < count; i++)
                out[i] = a[i] * v;
        else
            for (size_t i = 0; i < count; i++)
                out[i] = a[i] + v;
    } else {
        for (size_t p = 0; p < count; p += c)
            for (int k = 0; k < c; k++)
                out[p + k] = is_mul ? a[p + k] * b[k] : a[p + k] + b[k];
    }
}

void fv_ops_add(size_t count, int c, const float *a, const float *b, size_t b_count,
                enum fv_activation act, float *output)
{
    binary_op(0, count, c, a, b, b_count, output);
    fv_ops_activation(count, act, output);
}

void fv_ops_mul(size_t count, int c, const float *a, const float *b, size_t b_count,
                enum fv_activation act, float *output)
{
    binary_op(1, count, c, a, b, b_count, output);
    fv_ops_activation(count, act, output);
}

void fv_ops_softmax(size_t rows, int c, const float *input, float *output)
{
    for (size_t r = 0; r < rows; r++) {
        const float *x = input + r * c;
        float *y = output + r * c;
        float max = x[0];
        for (int k = 1; k < c; k++)
            max = x[k] > max ? x[k] : max;
        float sum = 0.0f;
        for (int k = 0; k < c; k++) {
            y[k] = expf(x[k] - max);
            sum += y[k];
        }
        for (int k = 0; k < c; k++)
            y[k] /= sum;
    }
}

void fv_ops_l2_norm(int n, size_t size, float epsilon, const float *input, float *output)
{
    for (int b = 0; b < n; b++) {
        const float *x = input + (size_t)b * size;
        float *y = output + (size_t)b * size;
        double sum = 0.0;
        for (size_t i = 0; i < size; i++)
            sum += (double)x[i] * x[i];
        double denom = sqrt(sum > epsilon ? sum : epsilon);
        if (denom == 0.0)
            denom = 1.0;
        for (size_t i = 0; i < size; i++)
            y[i] = (float)(x[i] / denom);
    }
}

void fv_ops_batch_norm(size_t pixels, int c, const float *input, const float *gamma,
                       const float *beta, const float *mean, const float *variance,
                       float epsilon, float *output)
{
    for (size_t p = 0; p < pixels; p++) {
        const float *x = input + p * c;
        float *y = output + p * c;
        for (int k = 0; k < c; k++)
            y[k] = (x[k] - mean[k]) / sqrtf(variance[k] + epsilon) * gamma[k] + beta[k];
    }
}
