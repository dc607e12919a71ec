/* kernels.c - the engine's kernels, written once over vec.h and compiled once
 * per instruction set into that set's kernel table (see model/kernels.h).
 *
 * The build compiles this file with -DFV_ISA_<SET> and that set's compiler
 * flags; everything but the exported table is static, so the copies never
 * meet. The generic copy is the portable reference the others are tested
 * against.
 */
#include "model/kern/vec.h"

#include <float.h>
#include <stddef.h>

#include "model/kernels.h"

/* ---- weight packing ---- */

/* Layers with at most SMALL_N outputs (MTCNN's 2- and 4-output box and score
 * heads) would use 1 to 4 lanes of a tile's vectors: they keep their weights
 * row-major and compute dot products along k instead (gemm_small_n). */
#define SMALL_N 4

static int small_n(int n, int k) { return n <= SMALL_N && k >= VL; }

static void pack(int n, int k, const float *w, float *packed)
{
    if (small_n(n, k)) {
        memcpy(packed, w, (size_t)n * k * sizeof *packed);
        return;
    }
    for (int j0 = 0; j0 < n; j0 += FV_PANEL) {
        float *panel = packed + (size_t)j0 * k;
        for (int p = 0; p < k; p++)
            for (int j = 0; j < FV_PANEL; j++)
                panel[(size_t)p * FV_PANEL + j] = j0 + j < n ? w[(size_t)(j0 + j) * k + p] : 0.0f;
    }
}

/* ---- the epilogue: + bias, + residual, activation, PReLU ---- */

/* Per-column constants of one vector of columns [col, col + VL), loaded once
 * and used for many rows. */
struct epi_cols {
    vf bias, slope;
    vmask mask;
    int full; /* all VL columns are real: plain loads and stores */
    int col;
};

/* The epilogue helpers take it by value: the kernels' vector stores may alias
 * anything, and a copy the compiler can keep in registers is not re-read
 * after each of them. */
FV_INLINE struct epi_cols epi_cols_load(const struct fv_gemm_epilogue *e, int col, int lanes)
{
    struct epi_cols p = {vf_zero(), vf_zero(), vmask_first(lanes), lanes >= VL, col};
    if (e->bias)
        p.bias = p.full ? vf_load(e->bias + col) : vf_load_mask(p.mask, e->bias + col);
    if (e->slopes)
        p.slope = e->n_slopes == 1 ? vf_set1(e->slopes[0])
                  : p.full         ? vf_load(e->slopes + col)
                                   : vf_load_mask(p.mask, e->slopes + col);
    return p;
}

/* The epilogue of one vector of output row `row` (row stride n), stored. */
FV_INLINE void epi_store(vf v, const struct epi_cols *p, size_t row, int n,
                         const struct fv_gemm_epilogue ev, float *c)
{
    const struct fv_gemm_epilogue *e = &ev;
    float *dst = c + row * (size_t)n + p->col;
    v = vf_add(v, p->bias);
    if (e->residual) {
        const float *r = e->residual + row * (size_t)n + p->col;
        v = vf_add(v, p->full ? vf_load(r) : vf_load_mask(p->mask, r));
    }
    if (e->act != FV_ACT_NONE) {
        v = vf_max(v, vf_zero());
        if (e->act == FV_ACT_RELU6)
            v = vf_min(v, vf_set1(6.0f));
    }
    if (e->slopes)
        v = vf_prelu(v, p->slope);
    if (p->full)
        vf_store(dst, v);
    else
        vf_store_mask(dst, p->mask, v);
}

static void epilogue_apply(size_t rows, int n, const struct fv_gemm_epilogue *e, float *c)
{
    if (!e || (!e->bias && !e->residual && e->act == FV_ACT_NONE && !e->slopes))
        return;
    for (int col = 0; col < n; col += VL) {
        const struct epi_cols p = epi_cols_load(e, col, n - col);
        for (size_t r = 0; r < rows; r++) {
            const float *src = c + r * (size_t)n + col;
            epi_store(p.full ? vf_load(src) : vf_load_mask(p.mask, src), &p, r, n, *e, c);
        }
    }
}

/* ---- GEMM: register tiles of FV_GEMM_MR rows × FV_GEMM_NV vectors ---- */

/* How a tile reads its rows of A: row i of the tile, column p (p = seg · len + q)
 * is a[i · lda + seg · seg_stride + q]. A plain matrix has one segment of k
 * columns; the windows of a convolution have one segment per kernel row. */
struct a_rows {
    const float *a;
    size_t lda, seg_stride;
    int segs, seg_len;
};

/* One mr × (nv · VL) tile: mr rows of A against one packed panel, stored to c
 * rows [row, row + mr), columns [col, col + cols). mr and nv are constants
 * after inlining, so the accumulators live in registers. */
FV_INLINE void tile(int mr, int nv, const struct a_rows *ar, size_t row, int col, int cols, int n,
                    const float *panel, const struct fv_gemm_epilogue *e, float *c)
{
    vf acc[FV_GEMM_MR][FV_GEMM_NV];
#pragma GCC unroll 16
    for (int i = 0; i < FV_GEMM_MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < FV_GEMM_NV; j++)
            acc[i][j] = vf_zero();
    const size_t lda = ar->lda;
    const float *a = ar->a;
    for (int seg = 0; seg < ar->segs; seg++, a += ar->seg_stride) {
        for (int q = 0; q < ar->seg_len; q++, panel += FV_PANEL) {
            vf b[FV_GEMM_NV];
#pragma GCC unroll 4
            for (int j = 0; j < FV_GEMM_NV; j++)
                if (j < nv)
                    b[j] = vf_load(panel + j * VL);
#pragma GCC unroll 16
            for (int i = 0; i < FV_GEMM_MR; i++) {
                if (i < mr) {
                    const vf av = vf_set1(a[i * lda + q]);
#pragma GCC unroll 4
                    for (int j = 0; j < FV_GEMM_NV; j++)
                        if (j < nv)
                            acc[i][j] = vf_fma(av, b[j], acc[i][j]);
                }
            }
        }
    }
    const struct fv_gemm_epilogue ev = *e;
#pragma GCC unroll 4
    for (int j = 0; j < FV_GEMM_NV; j++) {
        if (j < nv) {
            const struct epi_cols p = epi_cols_load(&ev, col + j * VL, cols - j * VL);
#pragma GCC unroll 16
            for (int i = 0; i < FV_GEMM_MR; i++)
                if (i < mr)
                    epi_store(acc[i][j], &p, row + (size_t)i, n, ev, c);
        }
    }
}

#define TILE_NV(MR, NV)                                                                  \
    case NV:                                                                             \
        if (NV <= FV_GEMM_NV)                                                            \
            tile(MR, NV, ar, row, col, cols, n, panel, e, c);                            \
        break;
#define TILE_CASE(MR)                                                                    \
    case MR:                                                                             \
        if (MR <= FV_GEMM_MR) {                                                          \
            switch (nv) { TILE_NV(MR, 1) TILE_NV(MR, 2) TILE_NV(MR, 3) TILE_NV(MR, 4) } \
        }                                                                                \
        break;

static void tile_any(int mr, const struct a_rows *ar, size_t row, int col, int cols, int n,
                     const float *panel, const struct fv_gemm_epilogue *e, float *c)
{
    const int nv = (cols + VL - 1) / VL;
    switch (mr) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
        TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
        TILE_CASE(13) TILE_CASE(14) TILE_CASE(15) TILE_CASE(16)
    }
}

/* Rows [row, row + mr) of c against every panel; ar points at their first row. */
static void tile_row(int mr, const struct a_rows *ar, size_t row, int n, int k,
                     const float *packed, const struct fv_gemm_epilogue *e, float *c)
{
    for (int col = 0; col < n; col += FV_PANEL) {
        int cols = n - col < FV_PANEL ? n - col : FV_PANEL;
        tile_any(mr, ar, row, col, cols, n, packed + (size_t)col * k, e, c);
    }
}

/* The epilogue of one value (the scalar form of epi_store). */
FV_INLINE float epi_scalar(float v, const struct fv_gemm_epilogue *e, size_t row, int n, int col)
{
    if (e->bias)
        v += e->bias[col];
    if (e->residual)
        v += e->residual[row * (size_t)n + col];
    if (e->act != FV_ACT_NONE) {
        v = v > 0.0f ? v : 0.0f;
        if (e->act == FV_ACT_RELU6 && v > 6.0f)
            v = 6.0f;
    }
    if (e->slopes && v < 0.0f)
        v *= e->slopes[e->n_slopes == 1 ? 0 : col];
    return v;
}

/* n (1..SMALL_N) outputs for m rows of A read as ar says (rows [row0, row0 + m)
 * of c), as dot products of each row with each weight row, VL products at a
 * time, the partial sums added across lanes at the end. */
FV_INLINE void small_n_rows(int n, size_t m, const struct a_rows *ar, int k, const float *w,
                            const struct fv_gemm_epilogue *e, size_t row0, float *c)
{
    const int len = ar->seg_len, full = len - len % VL;
    const vmask tail = vmask_first(len % VL);
    for (size_t i = 0; i < m; i++) {
        vf acc[SMALL_N];
#pragma GCC unroll 4
        for (int j = 0; j < SMALL_N; j++)
            acc[j] = vf_zero();
        for (int seg = 0; seg < ar->segs; seg++) {
            const float *x = ar->a + i * ar->lda + (size_t)seg * ar->seg_stride;
            const float *ws = w + (size_t)seg * len;
            for (int p = 0; p < full; p += VL) {
                const vf xv = vf_load(x + p);
#pragma GCC unroll 4
                for (int j = 0; j < SMALL_N; j++)
                    if (j < n)
                        acc[j] = vf_fma(xv, vf_load(ws + (size_t)j * k + p), acc[j]);
            }
            if (full < len) {
                const vf xv = vf_load_mask(tail, x + full);
#pragma GCC unroll 4
                for (int j = 0; j < SMALL_N; j++)
                    if (j < n)
                        acc[j] = vf_fma(xv, vf_load_mask(tail, ws + (size_t)j * k + full), acc[j]);
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < SMALL_N; j++)
            if (j < n)
                c[(row0 + i) * (size_t)n + j] = epi_scalar(vf_sum(acc[j]), e, row0 + i, n, j);
    }
}

static void gemm_small_n(size_t m, int n, int k, const struct a_rows *ar, const float *w,
                         const struct fv_gemm_epilogue *e, size_t row0, float *c)
{
    const struct fv_gemm_epilogue ev = *e;
    switch (n) {
    case 1: small_n_rows(1, m, ar, k, w, &ev, row0, c); break;
    case 2: small_n_rows(2, m, ar, k, w, &ev, row0, c); break;
    case 3: small_n_rows(3, m, ar, k, w, &ev, row0, c); break;
    default: small_n_rows(4, m, ar, k, w, &ev, row0, c); break;
    }
}

static void gemm(size_t m, int n, int k, const float *a, size_t lda, const float *packed,
                 const struct fv_gemm_epilogue *e, float *c)
{
    static const struct fv_gemm_epilogue none = {0};
    if (!e)
        e = &none;
    if (small_n(n, k)) {
        const struct a_rows ar = {a, lda, 0, 1, k};
        gemm_small_n(m, n, k, &ar, packed, e, 0, c);
        return;
    }
    for (size_t row = 0; row < m; row += FV_GEMM_MR) {
        int mr = m - row < FV_GEMM_MR ? (int)(m - row) : FV_GEMM_MR;
        struct a_rows ar = {a + row * lda, lda, 0, 1, k};
        tile_row(mr, &ar, row, n, k, packed, e, c);
    }
}

/* Output pixels of one output row share a stride between their windows
 * (stride_w · c), so tiles never cross an output row. */
static void gemm_windows(const struct fv_gemm_windows *win, const float *input, int n,
                         const float *packed, const struct fv_gemm_epilogue *e, float *c)
{
    static const struct fv_gemm_epilogue none = {0};
    if (!e)
        e = &none;
    const int k = win->kernel_h * win->kernel_w * win->c;
    const size_t row_floats = (size_t)win->in_w * win->c;
    for (int b = 0; b < win->n; b++) {
        const float *img = input + (size_t)b * win->in_h * row_floats;
        for (int oy = 0; oy < win->out_h; oy++) {
            const float *line = img + (size_t)oy * win->stride_h * row_floats;
            size_t row0 = ((size_t)b * win->out_h + oy) * win->out_w;
            for (int ox = 0; ox < win->out_w; ox += FV_GEMM_MR) {
                int mr = win->out_w - ox < FV_GEMM_MR ? win->out_w - ox : FV_GEMM_MR;
                struct a_rows ar = {line + (size_t)ox * win->stride_w * win->c,
                                    (size_t)win->stride_w * win->c, row_floats, win->kernel_h,
                                    win->kernel_w * win->c};
                if (small_n(n, k))
                    gemm_small_n((size_t)mr, n, k, &ar, packed, e, row0 + ox, c);
                else
                    tile_row(mr, &ar, row0 + ox, n, k, packed, e, c);
            }
        }
    }
}

/* ---- depthwise convolution with bias and PReLU ---- */

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

FV_INLINE vf maybe_prelu(vf v, vf slope, int have_slopes)
{
    return have_slopes ? vf_prelu(v, slope) : v;
}

/* A strip of `width` horizontally adjacent 3×3 outputs whose windows lie inside
 * the image columns, VL channels: each input pixel of a kernel row is loaded
 * once and feeds every output whose window covers it; the nine taps stay in
 * registers for the whole output row. */
FV_INLINE void dw3_strip(int width, int stride, const float *const rows[3], int ky0, int ky1,
                         int x0, int c, const vf w[9], vf bias, vf slope, int have_slopes,
                         float *out)
{
    vf acc[FV_DW_STRIP];
#pragma GCC unroll 8
    for (int t = 0; t < FV_DW_STRIP; t++)
        acc[t] = bias;
    /* ky runs over constants (rows outside the image skipped), so the taps are
     * indexed by constants and stay in registers */
#pragma GCC unroll 3
    for (int ky = 0; ky < 3; ky++) {
        if (ky < ky0 || ky >= ky1)
            continue;
        const float *row = rows[ky] + (ptrdiff_t)x0 * c;
#pragma GCC unroll 17
        for (int j = 0; j < (width - 1) * stride + 3; j++) {
            const vf v = vf_load(row + (size_t)j * c);
#pragma GCC unroll 8
            for (int t = 0; t < FV_DW_STRIP; t++) {
                int kx = j - t * stride;
                if (t < width && kx >= 0 && kx < 3)
                    acc[t] = vf_fma(v, w[ky * 3 + kx], acc[t]);
            }
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < FV_DW_STRIP; t++)
        if (t < width)
            vf_store(out + (size_t)t * c, maybe_prelu(acc[t], slope, have_slopes));
}

/* The widest strip that fits `avail` outputs (FV_DW_STRIP, half of it, or 1);
 * returns its width. */
FV_INLINE int dw3_strips(int avail, int stride, const float *const rows[3], int ky0, int ky1,
                         int x0, int c, const vf w[9], vf bias, vf slope, int have_slopes,
                         float *out)
{
    if (avail >= FV_DW_STRIP) {
        dw3_strip(FV_DW_STRIP, stride, rows, ky0, ky1, x0, c, w, bias, slope, have_slopes, out);
        return FV_DW_STRIP;
    }
    if (FV_DW_STRIP > 4 && avail >= 4) {
        dw3_strip(4, stride, rows, ky0, ky1, x0, c, w, bias, slope, have_slopes, out);
        return 4;
    }
    dw3_strip(1, stride, rows, ky0, ky1, x0, c, w, bias, slope, have_slopes, out);
    return 1;
}

/* 3×3 depthwise, stride_w 1 or 2, channels a multiple of VL. */
static void depthwise3x3(const struct fv_conv_shape *s, const float *input, const float *filter,
                         const float *bias, const float *slopes, int n_slopes, float *output)
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
            for (int cb = 0; cb < c; cb += VL) {
                vf w[9];
                for (int t = 0; t < 9; t++)
                    w[t] = vf_load(filter + (size_t)t * c + cb);
                const vf bv = bias ? vf_load(bias + cb) : vf_zero();
                const vf av = !slopes ? vf_zero()
                              : n_slopes == 1 ? vf_set1(slopes[0])
                                              : vf_load(slopes + cb);
                const float *crows[3] = {rows[0] + cb, rows[1] + cb, rows[2] + cb};
                for (int ox = 0; ox < s->out_w;) {
                    int x0 = ox * sw - s->pad_left;
                    if (ox >= ox_lo && ox < ox_hi) {
                        float *o = out_row + (size_t)ox * c + cb;
                        if (sw == 1)
                            ox += dw3_strips(ox_hi - ox, 1, crows, ky0, ky1, x0, c, w, bv, av,
                                             slopes != NULL, o);
                        else
                            ox += dw3_strips(ox_hi - ox, 2, crows, ky0, ky1, x0, c, w, bv, av,
                                             slopes != NULL, o);
                        continue;
                    }
                    /* the window leaves the image columns: checked taps */
                    vf acc = bv;
                    for (int ky = ky0; ky < ky1; ky++)
                        for (int kx = 0; kx < 3; kx++)
                            if (x0 + kx >= 0 && x0 + kx < s->in_w)
                                acc = vf_fma(vf_load(crows[ky] + (size_t)(x0 + kx) * c),
                                             w[ky * 3 + kx], acc);
                    vf_store(out_row + (size_t)ox * c + cb, maybe_prelu(acc, av, slopes != NULL));
                    ox++;
                }
            }
        }
    }
}

/* Any kernel size and channel count: one output pixel at a time, VL channels
 * per vector and a masked last vector. */
static void depthwise_any(const struct fv_conv_shape *s, const float *input, const float *filter,
                          const float *bias, const float *slopes, int n_slopes, float *output)
{
    const int c = s->in_c;
    for (int b = 0; b < s->n; b++) {
        const float *img = input + (size_t)b * s->in_h * s->in_w * c;
        float *out = output + (size_t)b * s->out_h * s->out_w * c;
        for (int oy = 0; oy < s->out_h; oy++)
            for (int ox = 0; ox < s->out_w; ox++, out += c)
                for (int k0 = 0; k0 < c; k0 += VL) {
                    const vmask m = vmask_first(c - k0);
                    vf acc = bias ? vf_load_mask(m, bias + k0) : vf_zero();
                    for (int ky = 0; ky < s->kernel_h; ky++) {
                        int iy = oy * s->stride_h - s->pad_top + ky;
                        if (iy < 0 || iy >= s->in_h)
                            continue;
                        for (int kx = 0; kx < s->kernel_w; kx++) {
                            int ix = ox * s->stride_w - s->pad_left + kx;
                            if (ix < 0 || ix >= s->in_w)
                                continue;
                            acc = vf_fma(
                                vf_load_mask(m, img + ((size_t)iy * s->in_w + ix) * c + k0),
                                vf_load_mask(m, filter + ((size_t)ky * s->kernel_w + kx) * c + k0),
                                acc);
                        }
                    }
                    if (slopes)
                        acc = vf_prelu(acc, n_slopes == 1 ? vf_set1(slopes[0])
                                                          : vf_load_mask(m, slopes + k0));
                    vf_store_mask(out + k0, m, acc);
                }
    }
}

static void depthwise(const struct fv_conv_shape *s, const float *input, const float *filter,
                      const float *bias, const float *slopes, int n_slopes, float *output)
{
    if (s->kernel_h == 3 && s->kernel_w == 3 && s->in_c % VL == 0 && s->stride_w <= 2)
        depthwise3x3(s, input, filter, bias, slopes, n_slopes, output);
    else
        depthwise_any(s, input, filter, bias, slopes, n_slopes, output);
}

/* ---- max pooling: SAME padding never wins ---- */

/* Input positions [lo, hi) under the window of output o, clipped to the image. */
FV_INLINE void window_range(int o, int stride, int pad, int kernel, int size, int *lo, int *hi)
{
    int a = o * stride - pad, b = a + kernel;
    *lo = a < 0 ? 0 : a;
    *hi = b > size ? size : b;
}

static void max_pool(const struct fv_conv_shape *s, const float *input, float *output)
{
    const int c = s->in_c;
    const vmask mask = vmask_first(c);
    const size_t row = (size_t)s->in_w * c;
    for (int b = 0; b < s->n; b++) {
        const float *img = input + (size_t)b * s->in_h * row;
        float *out = output + (size_t)b * s->out_h * s->out_w * c;
        for (int oy = 0; oy < s->out_h; oy++) {
            int y0, y1;
            window_range(oy, s->stride_h, s->pad_top, s->kernel_h, s->in_h, &y0, &y1);
            for (int ox = 0; ox < s->out_w; ox++, out += c) {
                int x0, x1;
                window_range(ox, s->stride_w, s->pad_left, s->kernel_w, s->in_w, &x0, &x1);
                const float *win = img + (size_t)y0 * row + (size_t)x0 * c;
                const int wh = y1 - y0, ww = x1 - x0;
                for (int k0 = 0; k0 < c; k0 += VL) {
                    /* A partial last group is the last VL channels again, overlapping
                     * (a max is a max); fewer than VL channels go under a mask. */
                    const int k = k0 + VL <= c ? k0 : c >= VL ? c - VL : 0;
                    const float *p = win + k;
                    vf m;
                    if (c >= VL) {
                        if (wh == 3 && ww == 3) { /* MTCNN's 3×3 windows, unrolled */
                            vf r[3];
                            for (int y = 0; y < 3; y++)
                                r[y] = vf_max(vf_max(vf_load(p + y * row), vf_load(p + y * row + c)),
                                              vf_load(p + y * row + 2 * c));
                            m = vf_max(vf_max(r[0], r[1]), r[2]);
                        } else if (wh == 2 && ww == 2) {
                            m = vf_max(vf_max(vf_load(p), vf_load(p + c)),
                                       vf_max(vf_load(p + row), vf_load(p + row + c)));
                        } else {
                            m = vf_set1(-FLT_MAX);
                            for (int iy = 0; iy < wh; iy++)
                                for (int ix = 0; ix < ww; ix++)
                                    m = vf_max(m, vf_load(p + iy * row + (size_t)ix * c));
                        }
                        vf_store(out + k, m);
                    } else {
                        m = vf_set1(-FLT_MAX);
                        for (int iy = 0; iy < wh; iy++)
                            for (int ix = 0; ix < ww; ix++)
                                m = vf_max(m, vf_load_mask(mask, p + iy * row + (size_t)ix * c));
                        vf_store_mask(out + k, mask, m);
                    }
                }
            }
        }
    }
}

/* ---- Winograd F(2×2, 3×3) and F(3×3, 3×3) on this set's GEMM ---- */

/* Output blocks transformed per pass: the transformed input and products of
 * one pass (16 · CHUNK · (in_c + out_c) floats) stay in the L2 cache. */
#define WINO_CHUNK FV_WINOGRAD_CHUNK

/* Bᵀ along one line of a patch. F2: Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
 * F3: Bᵀ = [2 -1 -2 1 0; 0 -2 -1 1 0; 0 2 -3 1 0; 0 -1 0 1 0; 0 2 -1 -2 1]. */
FV_INLINE void wino_input_line(int m, const vf *d, vf *u)
{
    if (m == 2) {
        u[0] = vf_sub(d[0], d[2]);
        u[1] = vf_add(d[1], d[2]);
        u[2] = vf_sub(d[2], d[1]);
        u[3] = vf_sub(d[1], d[3]);
        return;
    }
    const vf two = vf_set1(2.0f);
    const vf d31 = vf_sub(d[3], d[1]), d32 = vf_sub(d[3], d[2]);
    u[0] = vf_fma(two, vf_sub(d[0], d[2]), d31);
    u[1] = vf_fnma(two, d[1], d32);
    u[2] = vf_fma(two, vf_sub(d[1], d[2]), d32);
    u[3] = d31;
    u[4] = vf_fnma(two, d31, vf_sub(d[4], d[2]));
}

/* Aᵀ along one line of products. F2: Aᵀ = [1 1 1 0; 0 1 -1 -1].
 * F3: Aᵀ = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 1]. */
FV_INLINE void wino_output_line(int m, const vf *p, vf *y)
{
    if (m == 2) {
        y[0] = vf_add(vf_add(p[0], p[1]), p[2]);
        y[1] = vf_sub(vf_sub(p[1], p[2]), p[3]);
        return;
    }
    const vf s12 = vf_add(p[1], p[2]), d12 = vf_sub(p[1], p[2]);
    y[0] = vf_add(vf_add(p[0], s12), p[3]);
    y[1] = vf_fma(vf_set1(2.0f), p[3], d12);
    y[2] = vf_add(vf_fma(vf_set1(4.0f), p[3], s12), p[4]);
}

/* Input block (ty, tx) of one image: the a × a patch at (m ty, m tx), zero past
 * the image, as Bᵀ d B, VL channels at a time; point (i, j) goes to
 * v + (i a + j) · point_stride. */
FV_INLINE void wino_transform_input(int m, const struct fv_conv_shape *s, const float *img,
                                    int ty, int tx, float *v, size_t point_stride)
{
    const int c = s->in_c, a = m + 2;
    for (int c0 = 0; c0 < c; c0 += VL) {
        const vmask mask = vmask_first(c - c0);
        vf t[5][5];
#pragma GCC unroll 5
        for (int j = 0; j < a; j++) {
            vf d[5], u[5];
            int ix = m * tx + j;
#pragma GCC unroll 5
            for (int i = 0; i < a; i++) {
                int iy = m * ty + i;
                d[i] = iy < s->in_h && ix < s->in_w
                           ? vf_load_mask(mask, img + ((size_t)iy * s->in_w + ix) * c + c0)
                           : vf_zero();
            }
            wino_input_line(m, d, u);
#pragma GCC unroll 5
            for (int i = 0; i < a; i++)
                t[i][j] = u[i];
        }
#pragma GCC unroll 5
        for (int i = 0; i < a; i++) {
            vf u[5];
            wino_input_line(m, t[i], u);
            float *row = v + (size_t)i * a * point_stride + c0;
#pragma GCC unroll 5
            for (int j = 0; j < a; j++)
                vf_store_mask(row + j * point_stride, mask, u[j]);
        }
    }
}

/* The products of one block back to its m × m outputs, Aᵀ p A, then the
 * epilogue; outputs past the image edge are dropped. */
FV_INLINE void wino_transform_output(int m, const struct fv_conv_shape *s, int b, int ty, int tx,
                                     const float *prod, size_t point_stride,
                                     const struct fv_gemm_epilogue *e, float *output)
{
    const int n = s->out_c, a = m + 2;
    for (int o0 = 0; o0 < n; o0 += VL) {
        const struct epi_cols ep = epi_cols_load(e, o0, n - o0);
        vf t[3][5];
#pragma GCC unroll 5
        for (int j = 0; j < a; j++) {
            vf p[5], y[3];
#pragma GCC unroll 5
            for (int i = 0; i < a; i++)
                p[i] = vf_load_mask(ep.mask, prod + (size_t)(i * a + j) * point_stride + o0);
            wino_output_line(m, p, y);
#pragma GCC unroll 3
            for (int i = 0; i < m; i++)
                t[i][j] = y[i];
        }
#pragma GCC unroll 3
        for (int i = 0; i < m; i++) {
            int oy = m * ty + i;
            if (oy >= s->out_h)
                break;
            vf y[3];
            wino_output_line(m, t[i], y);
#pragma GCC unroll 3
            for (int j = 0; j < m; j++) {
                int ox = m * tx + j;
                if (ox >= s->out_w)
                    break;
                epi_store(y[j], &ep, ((size_t)b * s->out_h + oy) * s->out_w + ox, n, *e, output);
            }
        }
    }
}

FV_INLINE void wino_conv(int m, const struct fv_conv_shape *s, const float *input,
                         const float *packed, const struct fv_gemm_epilogue *e, float *scratch,
                         float *output)
{
    const int c = s->in_c, n = s->out_c, points = (m + 2) * (m + 2);
    const int th = (s->out_h + m - 1) / m, tw = (s->out_w + m - 1) / m;
    const size_t blocks = (size_t)s->n * th * tw;
    const size_t per = (size_t)(n + FV_PANEL - 1) / FV_PANEL * FV_PANEL * c;
    const size_t v_stride = (size_t)WINO_CHUNK * c, m_stride = (size_t)WINO_CHUNK * n;
    float *v = scratch, *prod = scratch + (size_t)points * v_stride;
    packed += m == 2 ? 0 : 16 * per;
    for (size_t t0 = 0; t0 < blocks; t0 += WINO_CHUNK) {
        int count = blocks - t0 < WINO_CHUNK ? (int)(blocks - t0) : WINO_CHUNK;
        for (int t = 0; t < count; t++) {
            size_t id = t0 + (size_t)t;
            int b = (int)(id / ((size_t)th * tw)), rest = (int)(id % ((size_t)th * tw));
            wino_transform_input(m, s, input + (size_t)b * s->in_h * s->in_w * c, rest / tw,
                                 rest % tw, v + (size_t)t * c, v_stride);
        }
        for (int point = 0; point < points; point++)
            gemm((size_t)count, n, c, v + point * v_stride, (size_t)c, packed + point * per, NULL,
                 prod + point * m_stride);
        for (int t = 0; t < count; t++) {
            size_t id = t0 + (size_t)t;
            int b = (int)(id / ((size_t)th * tw)), rest = (int)(id % ((size_t)th * tw));
            wino_transform_output(m, s, b, rest / tw, rest % tw, prod + (size_t)t * n, m_stride,
                                  e, output);
        }
    }
}

static void winograd(int tile_size, const struct fv_conv_shape *s, const float *input,
                     const float *packed, const struct fv_gemm_epilogue *e, float *scratch,
                     float *output)
{
    static const struct fv_gemm_epilogue none = {0};
    if (!e)
        e = &none;
    if (tile_size == 3)
        wino_conv(3, s, input, packed, e, scratch, output);
    else
        wino_conv(2, s, input, packed, e, scratch, output);
}

#if defined(FV_ISA_AVX512)
/* ---- bf16 operands, float accumulation (AVX-512 BF16 dot products) ----
 * Weights come packed by fv_gemm_pack_bf16 (32-column panels of k-pairs); A's
 * rows are rounded to bf16 twelve at a time as the product goes. */
#define BF16 __attribute__((target("avx512bf16")))
#define BF16_MR 12

/* One mr × (16 · nv) tile from mr rows of bf16 A (row stride k) and one panel. */
FV_INLINE BF16 void tile16(int mr, int nv, const uint16_t *a, int k, size_t row, int col,
                           int cols, int n, const uint16_t *panel,
                           const struct fv_gemm_epilogue *e, float *c)
{
    const struct fv_gemm_epilogue ev = *e;
    vf acc[BF16_MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < BF16_MR; i++)
        acc[i][0] = acc[i][1] = vf_zero();
    for (int p = 0; p < k; p += 2, panel += 2 * 32) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel);
        const __m512bh b1 = nv > 1 ? (__m512bh)_mm512_loadu_si512(panel + 32) : b0;
#pragma GCC unroll 12
        for (int i = 0; i < BF16_MR; i++) {
            if (i < mr) {
                int32_t pair;
                memcpy(&pair, a + (size_t)i * k + p, sizeof pair);
                const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
                acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
                if (nv > 1)
                    acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
            }
        }
    }
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) {
        if (j < nv) {
            const struct epi_cols ep = epi_cols_load(&ev, col + j * VL, cols - j * VL);
#pragma GCC unroll 12
            for (int i = 0; i < BF16_MR; i++)
                if (i < mr)
                    epi_store(acc[i][j], &ep, row + (size_t)i, n, ev, c);
        }
    }
}

#define TILE16_CASE(MR)                                                                  \
    case MR:                                                                             \
        if (nv > 1)                                                                      \
            tile16(MR, 2, a, k, row, col, cols, n, panel, e, c);                         \
        else                                                                             \
            tile16(MR, 1, a, k, row, col, cols, n, panel, e, c);                         \
        break;

static BF16 void tile16_any(int mr, const uint16_t *a, int k, size_t row, int col, int cols,
                            int n, const uint16_t *panel, const struct fv_gemm_epilogue *e,
                            float *c)
{
    const int nv = cols > 16 ? 2 : 1;
    switch (mr) {
        TILE16_CASE(1) TILE16_CASE(2) TILE16_CASE(3) TILE16_CASE(4) TILE16_CASE(5)
        TILE16_CASE(6) TILE16_CASE(7) TILE16_CASE(8) TILE16_CASE(9) TILE16_CASE(10)
        TILE16_CASE(11) TILE16_CASE(12)
    }
}

/* mr rows of float A (row stride lda) to bf16, k values each (k even), rounded to
 * nearest even. */
static BF16 void bf16_rows(int mr, int k, const float *a, size_t lda, uint16_t *out)
{
    for (int i = 0; i < mr; i++) {
        const float *src = a + (size_t)i * lda;
        uint16_t *dst = out + (size_t)i * k;
        for (int p = 0; p < k; p += 32) {
            const int left = k - p;
            const __mmask16 lo = vmask_first(left), hi = vmask_first(left > 16 ? left - 16 : 0);
            const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, src + p + 16),
                                                   _mm512_maskz_loadu_ps(lo, src + p));
            _mm512_mask_storeu_epi16(dst + p,
                                     left >= 32 ? (__mmask32)~0u
                                                : (__mmask32)(((uint64_t)1 << left) - 1),
                                     (__m512i)v);
        }
    }
}

void BF16 fv_gemm_nt_bf16(size_t m, int n, int k, const float *a, size_t lda,
                          const uint16_t *packed, const struct fv_gemm_epilogue *e, float *c)
{
    static const struct fv_gemm_epilogue none = {0};
    uint16_t rows[BF16_MR * FV_GEMM_BF16_MAX_K] __attribute__((aligned(64)));
    if (!e)
        e = &none;
    for (size_t row = 0; row < m; row += BF16_MR) {
        int mr = m - row < BF16_MR ? (int)(m - row) : BF16_MR;
        bf16_rows(mr, k, a + row * lda, lda, rows);
        for (int col = 0; col < n; col += 32) {
            int cols = n - col < 32 ? n - col : 32;
            tile16_any(mr, rows, k, row, col, cols, n, packed + (size_t)col * k, e, c);
        }
    }
}
#endif

/* ---- the table ---- */

#define FV_TABLE(LEVEL, NAME, BF16)                                                      \
    {                                                                                    \
        .level = LEVEL, .name = NAME,                                                    \
        .gemm_tile = FV_GEMM_TILE_NAME, .panel = FV_PANEL,                 \
        .vector_floats = VL, .pack = pack, .gemm = gemm, .gemm_windows = gemm_windows,   \
        .epilogue = epilogue_apply, .depthwise = depthwise, .max_pool = max_pool,        \
        .winograd = winograd, .gemm_bf16 = BF16,                                         \
    }

#if defined(FV_ISA_AVX512)
const struct fv_kernels fv_kernels_avx512 = FV_TABLE(FV_CPU_AVX512, "avx512", NULL);
const struct fv_kernels fv_kernels_avx512_bf16 =
    FV_TABLE(FV_CPU_AVX512_BF16, "avx512-bf16", fv_gemm_nt_bf16);
#elif defined(FV_ISA_AVX2)
const struct fv_kernels fv_kernels_avx2 = FV_TABLE(FV_CPU_AVX2, "avx2", NULL);
#elif defined(FV_ISA_NEON)
const struct fv_kernels fv_kernels_neon = FV_TABLE(FV_CPU_NEON, "neon", NULL);
#else
const struct fv_kernels fv_kernels_generic = FV_TABLE(FV_CPU_GENERIC, "generic", NULL);
#endif
