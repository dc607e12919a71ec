/* ops.c - forward kernels: im2col + sgemm convolutions, depthwise, pooling, PReLU, ... */
#include "model/ops.h"

#include "model/gemm.h"
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

FV_HOT void fv_ops_activation(size_t count, enum fv_activation act, float *data)
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

void fv_ops_conv2d_fused(const struct fv_conv_shape *s, const float *input, const float *filter,
                         const float *packed, const struct fv_gemm_epilogue *e, float *scratch,
                         float *output)
{
    const size_t rows = (size_t)s->n * s->out_h * s->out_w;
    const int k = s->kernel_h * s->kernel_w * s->in_c;
    if (rows == 0)
        return;
    if (fv_conv_is_pointwise(s)) {
        fv_gemm_nt(rows, s->out_c, k, input, (size_t)k, filter, packed, e, output);
        return;
    }
    const struct fv_gemm_windows win = {s->n, s->in_h, s->in_w, s->in_c, s->kernel_h,
                                        s->kernel_w, s->stride_h, s->stride_w, s->out_h,
                                        s->out_w};
    if (s->pad_top == 0 && s->pad_left == 0 && fv_gemm_windows_ok(&win, packed)) {
        fv_gemm_windows_nt(&win, input, s->out_c, packed, e, output);
        return;
    }
    const size_t block = fv_conv_block_rows(s);
    for (size_t r0 = 0; r0 < rows; r0 += block) {
        size_t nr = rows - r0 < block ? rows - r0 : block;
        struct fv_gemm_epilogue part = *e;
        if (part.residual)
            part.residual += r0 * s->out_c;
        fv_ops_im2col(s, input, r0, nr, scratch);
        fv_gemm_nt(nr, s->out_c, k, scratch, (size_t)k, filter, packed, &part,
                   output + r0 * s->out_c);
    }
}

void fv_ops_conv2d(const struct fv_conv_shape *s, const float *input, const float *filter,
                   const float *bias, enum fv_activation act, float *scratch, float *output)
{
    const struct fv_gemm_epilogue e = {.bias = bias, .act = act};
    fv_ops_conv2d_fused(s, input, filter, NULL, &e, scratch, output);
}

/* Input positions [lo, hi) under the pooling window of output o, clipped to
 * the image: SAME padding never wins the max. */
static inline void window_range(int o, int stride, int pad, int kernel, int size, int *lo,
                                int *hi)
{
    int a = o * stride - pad, b = a + kernel;
    *lo = a < 0 ? 0 : a;
    *hi = b > size ? size : b;
}

/* Output columns [lo, hi) whose whole window is inside the input columns. */
static void interior_columns(const struct fv_conv_shape *s, int *lo, int *hi)
{
    *lo = (s->pad_left + s->stride_w - 1) / s->stride_w;
    *hi = (s->in_w - s->kernel_w + s->pad_left) / s->stride_w + 1;
    if (*hi > s->out_w)
        *hi = s->out_w;
    if (*lo > *hi)
        *lo = *hi;
}

/* PReLU of eight channels [k0, k0 + 8) where slopes is set; x itself otherwise. */
#define PRELU8(x, slopes, n_slopes, k0) __extension__({ v8f x_ = (x); \
        if (slopes) { \
            v8f a_ = (n_slopes) == 1 ? SPLAT8((slopes)[0]) : LOAD8((slopes) + (k0)); \
            x_ = MAX8(x_, SPLAT8(0.0f)) + a_ * MIN8(x_, SPLAT8(0.0f)); \
        } \
        x_; })

/* One output pixel of a depthwise convolution, channels [k0, k0 + 8): the
 * accumulator stays in registers across the window. */
static inline __attribute__((always_inline)) void
depthwise_pixel8(const struct fv_conv_shape *s, const float *img, const float *filter,
                 const float *bias, const float *slopes, int n_slopes, int oy, int ox, int k0,
                 float *out)
{
    const int c = s->in_c;
    v8f acc = bias ? LOAD8(bias + k0) : SPLAT8(0.0f);
    for (int ky = 0; ky < s->kernel_h; ky++) {
        int iy = oy * s->stride_h - s->pad_top + ky;
        if (iy < 0 || iy >= s->in_h)
            continue;
        for (int kx = 0; kx < s->kernel_w; kx++) {
            int ix = ox * s->stride_w - s->pad_left + kx;
            if (ix < 0 || ix >= s->in_w)
                continue;
            acc += LOAD8(img + ((size_t)iy * s->in_w + ix) * c + k0) *
                   LOAD8(filter + ((size_t)ky * s->kernel_w + kx) * c + k0);
        }
    }
    STORE8(out + k0, PRELU8(acc, slopes, n_slopes, k0));
}

/* Four horizontally adjacent output pixels whose windows lie inside the image
 * columns, channels [k0, k0 + 8): each filter tap is loaded once for all four. */
static inline __attribute__((always_inline)) void
depthwise_quad8(const struct fv_conv_shape *s, const float *img, const float *filter,
                const float *bias, const float *slopes, int n_slopes, int oy, int ox, int k0,
                float *out)
{
    const int c = s->in_c;
    const size_t step = (size_t)s->stride_w * c;
    v8f a0 = bias ? LOAD8(bias + k0) : SPLAT8(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int ky = 0; ky < s->kernel_h; ky++) {
        int iy = oy * s->stride_h - s->pad_top + ky;
        if (iy < 0 || iy >= s->in_h)
            continue;
        const float *row = img + ((size_t)iy * s->in_w + (ox * s->stride_w - s->pad_left)) * c + k0;
        const float *w = filter + (size_t)ky * s->kernel_w * c + k0;
        for (int kx = 0; kx < s->kernel_w; kx++, row += c, w += c) {
            v8f wv = LOAD8(w);
            a0 += LOAD8(row) * wv;
            a1 += LOAD8(row + step) * wv;
            a2 += LOAD8(row + 2 * step) * wv;
            a3 += LOAD8(row + 3 * step) * wv;
        }
    }
    STORE8(out + k0, PRELU8(a0, slopes, n_slopes, k0));
    STORE8(out + c + k0, PRELU8(a1, slopes, n_slopes, k0));
    STORE8(out + 2 * c + k0, PRELU8(a2, slopes, n_slopes, k0));
    STORE8(out + 3 * c + k0, PRELU8(a3, slopes, n_slopes, k0));
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FV_DW512 1
#define AVX512 __attribute__((target("avx512f")))

/* 3×3 depthwise on 16 channels per vector with AVX-512's 32 registers: the nine
 * filter taps stay in registers for a whole output row, and a strip of eight
 * (or four, or one) output pixels loads each input pixel of a kernel row once,
 * feeding every output whose window covers it. Only pixels whose window
 * leaves the image columns take the checked path. Needs channels % 16 == 0. */
static inline __attribute__((always_inline)) AVX512 __m512 dw512_prelu(__m512 v, __m512 a,
                                                                        int have_slopes)
{
    if (!have_slopes)
        return v;
    return _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v, a);
}

static inline __attribute__((always_inline)) AVX512 void
dw512_strip(int width, int stride, const float *const rows[3], int ky0, int ky1, int x0, int c,
            const __m512 w[9], __m512 bias, __m512 slope, int have_slopes, float *out)
{
    __m512 acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++)
        acc[t] = bias;
    for (int ky = ky0; ky < ky1; ky++) {
        const float *row = rows[ky] + (ptrdiff_t)x0 * c;
#pragma GCC unroll 17
        for (int j = 0; j < (width - 1) * stride + 3; j++) {
            const __m512 v = _mm512_loadu_ps(row + (size_t)j * c);
#pragma GCC unroll 8
            for (int t = 0; t < width; t++) {
                int kx = j - t * stride;
                if (kx >= 0 && kx < 3)
                    acc[t] = _mm512_fmadd_ps(v, w[ky * 3 + kx], acc[t]);
            }
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < width; t++)
        _mm512_storeu_ps(out + (size_t)t * c, dw512_prelu(acc[t], slope, have_slopes));
}

/* Strips of 8, 4 or 1 output pixels at stride 1 or 2; returns the width run. */
static inline __attribute__((always_inline)) AVX512 int
dw512_strips(int avail, int stride, const float *const rows[3], int ky0, int ky1, int x0, int c,
             const __m512 w[9], __m512 bias, __m512 slope, int have_slopes, float *out)
{
    if (avail >= 8) {
        dw512_strip(8, stride, rows, ky0, ky1, x0, c, w, bias, slope, have_slopes, out);
        return 8;
    }
    if (avail >= 4) {
        dw512_strip(4, stride, rows, ky0, ky1, x0, c, w, bias, slope, have_slopes, out);
        return 4;
    }
    dw512_strip(1, stride, rows, ky0, ky1, x0, c, w, bias, slope, have_slopes, out);
    return 1;
}

static AVX512 void depthwise3x3_512(const struct fv_conv_shape *s, const float *input,
                                    const float *filter, const float *bias, const float *slopes,
                                    int n_slopes, float *output)
{
    const int c = s->in_c, sw = s->stride_w;
    int ox_lo, ox_hi;
    interior_columns(s, &ox_lo, &ox_hi);
    for (int b = 0; b < s->n; b++) {
        const float *img = input + (size_t)b * s->in_h * s->in_w * c;
        float *out_img = output + (size_t)b * s->out_h * s->out_w * c;
        for (int oy = 0; oy < s->out_h; oy++) {
            const float *rows[3];
            int ky0 = 3, ky1 = 0;
            for (int ky = 0; ky < 3; ky++) {
                int iy = oy * s->stride_h - s->pad_top + ky;
                rows[ky] = img + (size_t)(iy < 0 ? 0 : iy >= s->in_h ? s->in_h - 1 : iy) * s->in_w * c;
                if (iy >= 0 && iy < s->in_h) {
                    ky0 = ky < ky0 ? ky : ky0;
                    ky1 = ky + 1;
                }
            }
            float *out_row = out_img + (size_t)oy * s->out_w * c;
            for (int cb = 0; cb < c; cb += 16) {
                __m512 w[9];
                for (int t = 0; t < 9; t++)
                    w[t] = _mm512_loadu_ps(filter + (size_t)t * c + cb);
                const __m512 bv = bias ? _mm512_loadu_ps(bias + cb) : _mm512_setzero_ps();
                const __m512 av = !slopes ? _mm512_setzero_ps()
                                  : n_slopes == 1 ? _mm512_set1_ps(slopes[0])
                                                  : _mm512_loadu_ps(slopes + cb);
                const float *crows[3] = {rows[0] + cb, rows[1] + cb, rows[2] + cb};
                for (int ox = 0; ox < s->out_w;) {
                    int x0 = ox * sw - s->pad_left;
                    if (ox >= ox_lo && ox < ox_hi) {
                        /* whole window inside the columns */
                        float *o = out_row + (size_t)ox * c + cb;
                        if (sw == 1)
                            ox += dw512_strips(ox_hi - ox, 1, crows, ky0, ky1, x0, c, w, bv, av,
                                               slopes != NULL, o);
                        else
                            ox += dw512_strips(ox_hi - ox, 2, crows, ky0, ky1, x0, c, w, bv, av,
                                               slopes != NULL, o);
                        continue;
                    }
                    __m512 acc = bv;
                    for (int ky = ky0; ky < ky1; ky++)
                        for (int kx = 0; kx < 3; kx++)
                            if (x0 + kx >= 0 && x0 + kx < s->in_w)
                                acc = _mm512_fmadd_ps(
                                    _mm512_loadu_ps(crows[ky] + (size_t)(x0 + kx) * c),
                                    w[ky * 3 + kx], acc);
                    _mm512_storeu_ps(out_row + (size_t)ox * c + cb,
                                     dw512_prelu(acc, av, slopes != NULL));
                    ox++;
                }
            }
        }
    }
}

/* The maximum of a 3×3 window of 16 channels (rows row floats apart, pixels c). */
static inline __attribute__((always_inline)) AVX512 __m512 max3x3_512(const float *p, size_t row,
                                                                      int c, __mmask16 mask)
{
    __m512 m[3];
    for (int y = 0; y < 3; y++, p += row)
        m[y] = _mm512_max_ps(_mm512_max_ps(_mm512_maskz_loadu_ps(mask, p),
                                           _mm512_maskz_loadu_ps(mask, p + c)),
                             _mm512_maskz_loadu_ps(mask, p + 2 * c));
    return _mm512_max_ps(_mm512_max_ps(m[0], m[1]), m[2]);
}

/* Max pooling on 16 channels per vector. */
static AVX512 void max_pool_512(const struct fv_conv_shape *s, const float *input, float *output)
{
    const int c = s->in_c;
    const __mmask16 mask = c >= 16 ? 0xFFFF : (__mmask16)((1u << c) - 1);
    for (int b = 0; b < s->n; b++) {
        const float *img = input + (size_t)b * s->in_h * s->in_w * c;
        float *out = output + (size_t)b * s->out_h * s->out_w * c;
        for (int oy = 0; oy < s->out_h; oy++) {
            int y0, y1;
            window_range(oy, s->stride_h, s->pad_top, s->kernel_h, s->in_h, &y0, &y1);
            for (int ox = 0; ox < s->out_w; ox++, out += c) {
                int x0, x1;
                window_range(ox, s->stride_w, s->pad_left, s->kernel_w, s->in_w, &x0, &x1);
                const float *win = img + ((size_t)y0 * s->in_w + x0) * c;
                const size_t row = (size_t)s->in_w * c;
                const int wh = y1 - y0, ww = x1 - x0;
                for (int k0 = 0; k0 < c; k0 += 16) {
                    /* A partial last group is the last 16 channels again, overlapping
                     * (a max is a max); fewer than 16 channels go under a mask. */
                    const int k = k0 + 16 <= c ? k0 : c >= 16 ? c - 16 : 0;
                    __m512 m;
                    if (wh == 3 && ww == 3) /* MTCNN's 3×3 windows, unrolled */
                        m = max3x3_512(win + k, row, c, mask);
                    else if (wh == 2 && ww == 2)
                        m = _mm512_max_ps(
                            _mm512_max_ps(_mm512_maskz_loadu_ps(mask, win + k),
                                          _mm512_maskz_loadu_ps(mask, win + c + k)),
                            _mm512_max_ps(_mm512_maskz_loadu_ps(mask, win + row + k),
                                          _mm512_maskz_loadu_ps(mask, win + row + c + k)));
                    else {
                        m = _mm512_set1_ps(-FLT_MAX);
                        for (int iy = 0; iy < wh; iy++)
                            for (int ix = 0; ix < ww; ix++)
                                m = _mm512_max_ps(m, _mm512_maskz_loadu_ps(mask, win + iy * row + (size_t)ix * c + k));
                    }
                    _mm512_mask_storeu_ps(out + k, mask, m);
                }
            }
        }
    }
}
#endif

FV_HOT void fv_ops_depthwise_conv2d_prelu(const struct fv_conv_shape *s, const float *input,
                                          const float *filter, const float *bias,
                                          const float *slopes, int n_slopes, float *output)
{
#ifdef FV_DW512
    if (s->kernel_h == 3 && s->kernel_w == 3 && s->in_c % 16 == 0 && s->stride_w <= 2 &&
        fv_gemm_packed_available()) {
        depthwise3x3_512(s, input, filter, bias, slopes, n_slopes, output);
        return;
    }
#endif
    const int c = s->in_c, c8 = c & ~7;
    int ox_lo, ox_hi;
    interior_columns(s, &ox_lo, &ox_hi);
    for (int b = 0; b < s->n; b++) {
        const float *img = input + (size_t)b * s->in_h * s->in_w * c;
        float *out_img = output + (size_t)b * s->out_h * s->out_w * c;
        for (int oy = 0; oy < s->out_h; oy++) {
            for (int ox = 0; ox < s->out_w; ox++) {
                float *out = out_img + ((size_t)oy * s->out_w + ox) * c;
                if (c8 == c && ox >= ox_lo && ox + 4 <= ox_hi) {
                    for (int k0 = 0; k0 < c8; k0 += 8)
                        depthwise_quad8(s, img, filter, bias, slopes, n_slopes, oy, ox, k0, out);
                    ox += 3;
                    continue;
                }
                for (int k0 = 0; k0 < c8; k0 += 8)
                    depthwise_pixel8(s, img, filter, bias, slopes, n_slopes, oy, ox, k0, out);
                for (int k = c8; k < c; k++) {
                    float acc = bias ? bias[k] : 0.0f;
                    for (int ky = 0; ky < s->kernel_h; ky++) {
                        int iy = oy * s->stride_h - s->pad_top + ky;
                        if (iy < 0 || iy >= s->in_h)
                            continue;
                        for (int kx = 0; kx < s->kernel_w; kx++) {
                            int ix = ox * s->stride_w - s->pad_left + kx;
                            if (ix >= 0 && ix < s->in_w)
                                acc += img[((size_t)iy * s->in_w + ix) * c + k] *
                                       filter[((size_t)ky * s->kernel_w + kx) * c + k];
                        }
                    }
                    if (slopes && acc < 0.0f)
                        acc *= slopes[n_slopes == 1 ? 0 : k];
                    out[k] = acc;
                }
            }
        }
    }
}

void fv_ops_depthwise_conv2d(const struct fv_conv_shape *s, const float *input,
                             const float *filter, const float *bias, enum fv_activation act,
                             float *output)
{
    fv_ops_depthwise_conv2d_prelu(s, input, filter, bias, NULL, 0, output);
    fv_ops_activation((size_t)s->n * s->out_h * s->out_w * s->in_c, act, output);
}

FV_HOT void fv_ops_max_pool2d(const struct fv_conv_shape *s, const float *input, float *output)
{
#ifdef FV_DW512
    if (fv_gemm_packed_available()) {
        max_pool_512(s, input, output);
        return;
    }
#endif
    const int c = s->in_c, c8 = c & ~7;
    for (int b = 0; b < s->n; b++) {
        const float *img = input + (size_t)b * s->in_h * s->in_w * c;
        float *out_img = output + (size_t)b * s->out_h * s->out_w * c;
        for (int oy = 0; oy < s->out_h; oy++) {
            int y0, y1;
            window_range(oy, s->stride_h, s->pad_top, s->kernel_h, s->in_h, &y0, &y1);
            for (int ox = 0; ox < s->out_w; ox++) {
                int x0, x1;
                window_range(ox, s->stride_w, s->pad_left, s->kernel_w, s->in_w, &x0, &x1);
                float *out = out_img + ((size_t)oy * s->out_w + ox) * c;
                /* The window always holds at least one real pixel: padded cells never win. */
                for (int k = 0; k < c8; k += 8) {
                    v8f m = SPLAT8(-FLT_MAX);
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++)
                            m = MAX8(LOAD8(img + ((size_t)iy * s->in_w + ix) * c + k), m);
                    STORE8(out + k, m);
                }
                if (c8 < c && c >= 8) {
                    /* the last eight channels again, overlapping: a max is a max */
                    v8f m = SPLAT8(-FLT_MAX);
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++)
                            m = MAX8(LOAD8(img + ((size_t)iy * s->in_w + ix) * c + c - 8), m);
                    STORE8(out + c - 8, m);
                    continue;
                }
                for (int k = c8; k < c; k++) {
                    float m = -FLT_MAX;
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++)
                            m = img[((size_t)iy * s->in_w + ix) * c + k] > m ? img[((size_t)iy * s->in_w + ix) * c + k] : m;
                    out[k] = m;
                }
            }
        }
    }
}

void fv_ops_fully_connected(int n, int in, int out, const float *input, const float *weights,
                            const float *bias, enum fv_activation act, float *output)
{
    const struct fv_gemm_epilogue e = {.bias = bias, .act = act};
    fv_gemm_nt((size_t)n, out, in, input, (size_t)in, weights, NULL, &e, output);
}

FV_HOT void fv_ops_prelu(size_t pixels, int c, const float *input, const float *slopes,
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

FV_HOT void fv_ops_bias_prelu(size_t pixels, int c, const float *input, const float *bias,
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

FV_HOT static void binary_op(int is_mul, size_t count, int c, const float *a, const float *b,
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
