/* backward.c - gradients of the forward kernels: col2im + sgemm convolutions, pooling, BN, ... */
#include "model/backward.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

size_t fv_backward_conv2d_scratch(const struct fv_conv_shape *s)
{
    if (fv_conv_is_pointwise(s))
        return 0;
    /* one block of im2col(x) and one of its gradient */
    return 2 * fv_conv_block_rows(s) * (size_t)s->kernel_h * s->kernel_w * s->in_c;
}

/* The adjoint of im2col: adds each window row back onto the pixels it came from. */
static void col2im_rows(const struct fv_conv_shape *s, const float *col, size_t row0,
                        size_t rows, float *dinput)
{
    const int c = s->in_c;
    const size_t k = (size_t)s->kernel_h * s->kernel_w * c;
    const size_t per_image = (size_t)s->out_h * s->out_w;
    for (size_t r = 0; r < rows; r++) {
        size_t idx = row0 + r;
        int b = (int)(idx / per_image), rem = (int)(idx % per_image);
        int oy = rem / s->out_w, ox = rem % s->out_w;
        const float *src = col + r * k;
        float *img = dinput + (size_t)b * s->in_h * s->in_w * c;
        for (int ky = 0; ky < s->kernel_h; ky++) {
            int iy = oy * s->stride_h - s->pad_top + ky;
            for (int kx = 0; kx < s->kernel_w; kx++, src += c) {
                int ix = ox * s->stride_w - s->pad_left + kx;
                if (iy < 0 || iy >= s->in_h || ix < 0 || ix >= s->in_w)
                    continue;
                float *d = img + ((size_t)iy * s->in_w + ix) * c;
                for (int q = 0; q < c; q++)
                    d[q] += src[q];
            }
        }
    }
}

static void sum_rows(size_t rows, int c, const float *dy, float *dbias)
{
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < c; k++)
            dbias[k] += dy[r * c + k];
}

void fv_backward_conv2d(const struct fv_conv_shape *s, const float *input, const float *filter,
                        const float *dy, float *dinput, float *dfilter, float *dbias,
                        float *scratch)
{
    const size_t rows = (size_t)s->n * s->out_h * s->out_w;
    const int k = s->kernel_h * s->kernel_w * s->in_c, o = s->out_c;
    if (rows == 0)
        return;
    if (dbias)
        sum_rows(rows, o, dy, dbias);
    if (fv_conv_is_pointwise(s)) {
        if (dfilter)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, k, (int)rows, 1.0f, dy, o,
                        input, k, 1.0f, dfilter, k);
        if (dinput)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, k, o, 1.0f, dy, o,
                        filter, k, 1.0f, dinput, k);
        return;
    }
    const size_t block = fv_conv_block_rows(s);
    float *col = scratch, *dcol = scratch + block * (size_t)k;
    for (size_t r0 = 0; r0 < rows; r0 += block) {
        size_t nr = rows - r0 < block ? rows - r0 : block;
        const float *dyb = dy + r0 * o;
        if (dfilter) {
            fv_ops_im2col(s, input, r0, nr, col);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, k, (int)nr, 1.0f, dyb, o, col,
                        k, 1.0f, dfilter, k);
        }
        if (dinput) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, k, o, 1.0f, dyb, o,
                        filter, k, 0.0f, dcol, k);
            col2im_rows(s, dcol, r0, nr, dinput);
        }
    }
}

void fv_backward_depthwise_conv2d(const struct fv_conv_shape *s, const float *input,
                                  const float *filter, const float *dy, float *dinput,
                                  float *dfilter, float *dbias)
{
    const int c = s->in_c;
    for (int b = 0; b < s->n; b++) {
        const float *img = input + (size_t)b * s->in_h * s->in_w * c;
        float *dimg = dinput ? dinput + (size_t)b * s->in_h * s->in_w * c : NULL;
        const float *dimg_out = dy + (size_t)b * s->out_h * s->out_w * c;
        for (int oy = 0; oy < s->out_h; oy++)
            for (int ox = 0; ox < s->out_w; ox++) {
                const float *g = dimg_out + ((size_t)oy * s->out_w + ox) * c;
                if (dbias)
                    for (int q = 0; q < c; q++)
                        dbias[q] += g[q];
                for (int ky = 0; ky < s->kernel_h; ky++) {
                    int iy = oy * s->stride_h - s->pad_top + ky;
                    if (iy < 0 || iy >= s->in_h)
                        continue;
                    for (int kx = 0; kx < s->kernel_w; kx++) {
                        int ix = ox * s->stride_w - s->pad_left + kx;
                        if (ix < 0 || ix >= s->in_w)
                            continue;
                        size_t pix = ((size_t)iy * s->in_w + ix) * c;
                        size_t tap = ((size_t)ky * s->kernel_w + kx) * c;
                        if (dfilter)
                            for (int q = 0; q < c; q++)
                                dfilter[tap + q] += g[q] * img[pix + q];
                        if (dimg)
                            for (int q = 0; q < c; q++)
                                dimg[pix + q] += g[q] * filter[tap + q];
                    }
                }
            }
    }
}

void fv_backward_fully_connected(int n, int in, int out, const float *input,
                                 const float *weights, const float *dy, float *dinput,
                                 float *dweights, float *dbias)
{
    if (dbias)
        sum_rows((size_t)n, out, dy, dbias);
    if (dweights)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, input, in,
                    1.0f, dweights, in);
    if (dinput)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, weights,
                    in, 1.0f, dinput, in);
}

void fv_backward_prelu(size_t pixels, int c, const float *input, const float *slopes,
                       int n_slopes, const float *dy, float *dinput, float *dslopes)
{
    for (size_t p = 0; p < pixels; p++) {
        const float *x = input + p * c, *g = dy + p * c;
        for (int k = 0; k < c; k++) {
            int si = n_slopes == 1 ? 0 : k;
            if (x[k] > 0.0f) {
                if (dinput)
                    dinput[p * c + k] += g[k];
            } else {
                if (dinput)
                    dinput[p * c + k] += g[k] * slopes[si];
                if (dslopes)
                    dslopes[si] += g[k] * x[k];
            }
        }
    }
}

void fv_backward_activation(size_t count, enum fv_activation act, const float *output, float *dy)
{
    if (act == FV_ACT_NONE)
        return;
    for (size_t i = 0; i < count; i++) {
        int pass = output[i] > 0.0f && (act != FV_ACT_RELU6 || output[i] < 6.0f);
        if (!pass)
            dy[i] = 0.0f;
    }
}

void fv_backward_relu(size_t count, const float *output, const float *dy, float *dinput)
{
    for (size_t i = 0; i < count; i++)
        if (output[i] > 0.0f)
            dinput[i] += dy[i];
}

void fv_forward_max_pool2d_argmax(const struct fv_conv_shape *s, const float *input,
                                  float *output, int32_t *argmax)
{
    const int c = s->in_c;
    for (int b = 0; b < s->n; b++) {
        const float *img = input + (size_t)b * s->in_h * s->in_w * c;
        size_t obase = (size_t)b * s->out_h * s->out_w * c;
        for (int oy = 0; oy < s->out_h; oy++) {
            int y0 = oy * s->stride_h - s->pad_top, y1 = y0 + s->kernel_h;
            y0 = y0 < 0 ? 0 : y0;
            y1 = y1 > s->in_h ? s->in_h : y1;
            for (int ox = 0; ox < s->out_w; ox++) {
                int x0 = ox * s->stride_w - s->pad_left, x1 = x0 + s->kernel_w;
                x0 = x0 < 0 ? 0 : x0;
                x1 = x1 > s->in_w ? s->in_w : x1;
                size_t o = obase + ((size_t)oy * s->out_w + ox) * c;
                for (int k = 0; k < c; k++) {
                    float m = -FLT_MAX;
                    int32_t at = (int32_t)(((size_t)y0 * s->in_w + x0) * c + k);
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++) {
                            int32_t i = (int32_t)(((size_t)iy * s->in_w + ix) * c + k);
                            if (img[i] > m) {
                                m = img[i];
                                at = i;
                            }
                        }
                    output[o + k] = m;
                    argmax[o + k] = at;
                }
            }
        }
    }
}

void fv_backward_max_pool2d(const struct fv_conv_shape *s, const int32_t *argmax,
                            const float *dy, float *dinput)
{
    const size_t per_out = (size_t)s->out_h * s->out_w * s->out_c;
    const size_t per_in = (size_t)s->in_h * s->in_w * s->in_c;
    for (int b = 0; b < s->n; b++)
        for (size_t i = 0; i < per_out; i++)
            dinput[(size_t)b * per_in + (size_t)argmax[(size_t)b * per_out + i]] +=
                dy[(size_t)b * per_out + i];
}

void fv_forward_batch_norm_train(size_t pixels, int c, const float *input, const float *gamma,
                                 const float *beta, float epsilon, float momentum,
                                 float *running_mean, float *running_var, float *save_mean,
                                 float *save_inv_std, float *output)
{
    for (int k = 0; k < c; k++) {
        /* two passes in double: the mean first, then centred squares, so the
         * variance does not suffer from cancellation */
        double sum = 0.0;
        for (size_t p = 0; p < pixels; p++)
            sum += input[p * c + k];
        double mean = pixels ? sum / (double)pixels : 0.0;
        double sq = 0.0;
        for (size_t p = 0; p < pixels; p++) {
            double d = input[p * c + k] - mean;
            sq += d * d;
        }
        double var = pixels ? sq / (double)pixels : 0.0;
        double inv_std = 1.0 / sqrt(var + epsilon);
        save_mean[k] = (float)mean;
        save_inv_std[k] = (float)inv_std;
        double unbiased = pixels > 1 ? sq / (double)(pixels - 1) : var;
        if (running_mean)
            running_mean[k] = (float)((1.0 - momentum) * running_mean[k] + momentum * mean);
        if (running_var)
            running_var[k] = (float)((1.0 - momentum) * running_var[k] + momentum * unbiased);
        float sc = (float)inv_std * gamma[k], sh = beta[k] - (float)mean * sc;
        for (size_t p = 0; p < pixels; p++)
            output[p * c + k] = input[p * c + k] * sc + sh;
    }
}

void fv_backward_batch_norm(size_t pixels, int c, const float *input, const float *gamma,
                            const float *save_mean, const float *save_inv_std, const float *dy,
                            float *dinput, float *dgamma, float *dbeta)
{
    for (int k = 0; k < c; k++) {
        const double mean = save_mean[k], inv_std = save_inv_std[k];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (size_t p = 0; p < pixels; p++) {
            double xhat = (input[p * c + k] - mean) * inv_std;
            sum_dy += dy[p * c + k];
            sum_dy_xhat += dy[p * c + k] * xhat;
        }
        if (dgamma)
            dgamma[k] += (float)sum_dy_xhat;
        if (dbeta)
            dbeta[k] += (float)sum_dy;
        if (!dinput || pixels == 0)
            continue;
        /* dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)) */
        const double scale = gamma[k] * inv_std, m_dy = sum_dy / (double)pixels,
                     m_dy_xhat = sum_dy_xhat / (double)pixels;
        for (size_t p = 0; p < pixels; p++) {
            double xhat = (input[p * c + k] - mean) * inv_std;
            dinput[p * c + k] += (float)(scale * (dy[p * c + k] - m_dy - xhat * m_dy_xhat));
        }
    }
}

void fv_backward_add(size_t count, int c, size_t b_count, const float *dy, float *da, float *db)
{
    if (da)
        for (size_t i = 0; i < count; i++)
            da[i] += dy[i];
    if (!db)
        return;
    if (b_count == count)
        for (size_t i = 0; i < count; i++)
            db[i] += dy[i];
    else if (b_count == 1)
        for (size_t i = 0; i < count; i++)
            db[0] += dy[i];
    else
        for (size_t p = 0; p < count; p += c)
            for (int k = 0; k < c; k++)
                db[k] += dy[p + k];
}

void fv_backward_reshape(size_t count, const float *dy, float *dinput)
{
    for (size_t i = 0; i < count; i++)
        dinput[i] += dy[i];
}
