/* image_resample.c - fv_image_resize and the resampler: PIL's BILINEAR, with AVX2 paths.
 *
 * For each output pixel PIL centres the triangle filter on the matching
 * source position, widens it by the scale factor when shrinking, normalises
 * the weights to sum 1 and turns them into fixed point with 22 fraction bits;
 * the horizontal pass runs first and its uint8 result feeds the vertical one.
 * The same doubles in the same order give the same weights as PIL. */
#include "pipeline/image.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/cpu.h"
#include "pipeline/image_internal.h"

#define RESAMPLE_PRECISION_BITS 22

struct resample_weights {
    int taps;        /* weights per output pixel */
    int *first;      /* first source pixel of each output pixel */
    int *count;      /* how many source pixels it reads */
    int32_t *weight; /* [output pixel][tap], fixed point */
};

static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static void resample_weights_free(struct resample_weights *w)
{
    free(w->first);
    free(w->count);
    free(w->weight);
}

static bool resample_weights_init(struct resample_weights *w, int in_size, int out_size)
{
    double scale = (double)in_size / out_size;
    double filter_scale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filter_scale; /* the triangle's support is 1 */
    double *row = NULL;

    memset(w, 0, sizeof *w);
    if (ceil(support) > (INT_MAX - 1) / 2)
        return false;
    w->taps = (int)ceil(support) * 2 + 1;
    if ((size_t)w->taps > SIZE_MAX / sizeof(int32_t) / (size_t)out_size)
        return false;
    w->first = malloc((size_t)out_size * sizeof *w->first);
    w->count = malloc((size_t)out_size * sizeof *w->count);
    w->weight = malloc((size_t)out_size * (size_t)w->taps * sizeof *w->weight);
    row = malloc((size_t)w->taps * sizeof *row);
    if (!w->first || !w->count || !w->weight || !row)
        goto fail;

    for (int out = 0; out < out_size; out++) {
        double center = (out + 0.5) * scale;
        double inverse = 1.0 / filter_scale;
        int first = (int)(center - support + 0.5); /* truncation, as in PIL */
        if (first < 0)
            first = 0;
        int last = (int)(center + support + 0.5);
        if (last > in_size)
            last = in_size;
        int count = last - first;
        double total = 0.0;
        for (int k = 0; k < count; k++) {
            row[k] = triangle((k + first - center + 0.5) * inverse);
            total += row[k];
        }
        int32_t *fixed = w->weight + (size_t)out * (size_t)w->taps;
        for (int k = 0; k < w->taps; k++) {
            double value = k < count && total != 0.0 ? row[k] / total : 0.0;
            fixed[k] = value < 0 ? (int32_t)(-0.5 + value * (1 << RESAMPLE_PRECISION_BITS))
                                 : (int32_t)(0.5 + value * (1 << RESAMPLE_PRECISION_BITS));
        }
        w->first[out] = first;
        w->count[out] = count;
    }
    free(row);
    return true;

fail:
    free(row);
    resample_weights_free(w);
    return false;
}

/* The triangle filter's weights are non-negative and sum to 2^22 (give or take
 * rounding), so 255 times their sum plus the rounding half fits in int32 with room
 * to spare, as in PIL; int32 lets the compiler vectorise the loops. */
static inline uint8_t resample_round(int32_t sum)
{
    sum >>= RESAMPLE_PRECISION_BITS;
    return (uint8_t)(sum < 0 ? 0 : sum > 255 ? 255 : sum);
}

/* Rows resampled together by the horizontal pass: one vector lane per row. */
#define RESAMPLE_ROWS 8

typedef uint8_t v16u8 __attribute__((vector_size(16)));

/* out[i][r] = in[r][i] for an 8 × 8 block of bytes, in three rounds of
 * interleaving (bytes, pairs, quads). Pointers only cross the call, so it
 * inlines into its callers. */
static inline __attribute__((always_inline)) void transpose8x8(const uint8_t *const in[8],
                                                               uint8_t *const out[8])
{
    v16u8 a[8], t[4], u[4], v[4];
    for (int r = 0; r < 8; r++) {
        a[r] = (v16u8){0};
        memcpy(&a[r], in[r], 8);
    }
    for (int j = 0; j < 4; j++)
        t[j] = __builtin_shufflevector(a[2 * j], a[2 * j + 1], 0, 16, 1, 17, 2, 18, 3, 19, 4, 20,
                                       5, 21, 6, 22, 7, 23);
    for (int j = 0; j < 2; j++) {
        u[2 * j] = __builtin_shufflevector(t[2 * j], t[2 * j + 1], 0, 1, 16, 17, 2, 3, 18, 19, 4,
                                           5, 20, 21, 6, 7, 22, 23);
        u[2 * j + 1] = __builtin_shufflevector(t[2 * j], t[2 * j + 1], 8, 9, 24, 25, 10, 11, 26,
                                               27, 12, 13, 28, 29, 14, 15, 30, 31);
    }
    /* u[0]: columns 0-3 of rows 0-3, u[2]: of rows 4-7; u[1], u[3]: columns 4-7 */
    for (int j = 0; j < 2; j++) {
        v[2 * j] = __builtin_shufflevector(u[j], u[j + 2], 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7,
                                           20, 21, 22, 23);
        v[2 * j + 1] = __builtin_shufflevector(u[j], u[j + 2], 8, 9, 10, 11, 24, 25, 26, 27, 12,
                                               13, 14, 15, 28, 29, 30, 31);
    }
    for (int i = 0; i < 4; i++) {
        memcpy(out[2 * i], &v[i], 8);
        memcpy(out[2 * i + 1], (const uint8_t *)&v[i] + 8, 8);
    }
}

typedef uint16_t v8u16 __attribute__((vector_size(16)));
typedef uint32_t v4u32 __attribute__((vector_size(16)));

/* out[8 · i + r] = in[r][i] for sixteen bytes i of eight rows r: byte, pair
 * and quad interleaving, each a single unpack instruction on x86 and ARM. */
static inline __attribute__((always_inline)) void interleave8x16(const uint8_t *const in[8],
                                                                 uint8_t *out)
{
    v16u8 a[8];
    v8u16 b[8];
    v4u32 c[8];
    for (int r = 0; r < 8; r++)
        memcpy(&a[r], in[r], 16);
    for (int j = 0; j < 4; j++) {
        v16u8 lo = __builtin_shufflevector(a[2 * j], a[2 * j + 1], 0, 16, 1, 17, 2, 18, 3, 19, 4,
                                           20, 5, 21, 6, 22, 7, 23);
        v16u8 hi = __builtin_shufflevector(a[2 * j], a[2 * j + 1], 8, 24, 9, 25, 10, 26, 11, 27,
                                           12, 28, 13, 29, 14, 30, 15, 31);
        memcpy(&b[2 * j], &lo, 16); /* rows 2j, 2j + 1: bytes 0-7, then 8-15 */
        memcpy(&b[2 * j + 1], &hi, 16);
    }
    /* rows 0-3 from b[0], b[2] (bytes 0-7) and b[1], b[3] (8-15); rows 4-7 likewise */
    for (int half = 0; half < 2; half++)
        for (int j = 0; j < 2; j++) {
            v8u16 x = b[4 * half + j], y = b[4 * half + j + 2];
            v8u16 lo = __builtin_shufflevector(x, y, 0, 8, 1, 9, 2, 10, 3, 11);
            v8u16 hi = __builtin_shufflevector(x, y, 4, 12, 5, 13, 6, 14, 7, 15);
            memcpy(&c[4 * half + 2 * j], &lo, 16);     /* bytes 8j .. 8j + 3 */
            memcpy(&c[4 * half + 2 * j + 1], &hi, 16); /* bytes 8j + 4 .. 8j + 7 */
        }
    for (int q = 0; q < 4; q++) { /* c[q]: rows 0-3 of bytes 4q..4q+3; c[4 + q]: rows 4-7 */
        v4u32 lo = __builtin_shufflevector(c[q], c[4 + q], 0, 4, 1, 5);
        v4u32 hi = __builtin_shufflevector(c[q], c[4 + q], 2, 6, 3, 7);
        memcpy(out + 32 * q, &lo, 16);
        memcpy(out + 32 * q + 16, &hi, 16);
    }
}

struct fv_resampler {
    const struct fv_image *src;
    /* The region resampled: w × h pixels of src from (x, y), black outside src
     * (the whole of src but for fv_image_resize_region). */
    int x, y, w, h;
    /* The region in blocks of eight rows, interleaved: byte (block, i, r) is
     * byte i of row 8 · block + r (a short last block repeats its last row).
     * NULL: each block is interleaved when the horizontal pass reads it. */
    uint8_t *rows;
};

static bool region_inside(const struct fv_resampler *rs)
{
    return rs->x >= 0 && rs->y >= 0 && rs->x <= rs->src->width - rs->w &&
           rs->y <= rs->src->height - rs->h;
}

/* One block of eight interleaved rows through the horizontal filter: staged
 * gets byte (x, channel, lane) at (x · 3 + channel) · 8 + lane. */
static void taps_generic(const uint8_t *block, const struct resample_weights *w, int out_w,
                         uint8_t *staged)
{
    for (int x = 0; x < out_w; x++) {
        const int32_t *weight = w->weight + (size_t)x * (size_t)w->taps;
        const uint8_t *p = block + (size_t)w->first[x] * 3 * RESAMPLE_ROWS;
        int32_t acc[3 * RESAMPLE_ROWS];
        for (int i = 0; i < 3 * RESAMPLE_ROWS; i++)
            acc[i] = 1 << (RESAMPLE_PRECISION_BITS - 1);
        for (int k = 0; k < w->count[x]; k++, p += 3 * RESAMPLE_ROWS)
            for (int i = 0; i < 3 * RESAMPLE_ROWS; i++)
                acc[i] += (int32_t)p[i] * weight[k];
        for (int i = 0; i < 3 * RESAMPLE_ROWS; i++)
            staged[(size_t)x * 3 * RESAMPLE_ROWS + i] = resample_round(acc[i]);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))

/* Eight bytes widened to eight int32 lanes, times the weight, added to acc. */
static inline __attribute__((always_inline)) AVX2 __m256i mac8(__m256i acc, const uint8_t *p,
                                                               __m256i weight)
{
    __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
    return _mm256_add_epi32(acc, _mm256_mullo_epi32(v, weight));
}

/* (acc >> 22) clamped to 0..255, as eight bytes at out. */
static inline __attribute__((always_inline)) AVX2 void round8(__m256i acc, uint8_t *out)
{
    __m256i v = _mm256_srai_epi32(acc, RESAMPLE_PRECISION_BITS);
    __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64((__m128i *)(void *)out, _mm_packus_epi16(words, words));
}

static AVX2 void taps_avx2(const uint8_t *block, const struct resample_weights *w, int out_w,
                           uint8_t *staged)
{
    const __m256i half = _mm256_set1_epi32(1 << (RESAMPLE_PRECISION_BITS - 1));
    for (int x = 0; x < out_w; x++) {
        const int32_t *weight = w->weight + (size_t)x * (size_t)w->taps;
        const uint8_t *p = block + (size_t)w->first[x] * 3 * RESAMPLE_ROWS;
        __m256i r = half, g = half, b = half;
        for (int k = 0; k < w->count[x]; k++, p += 3 * RESAMPLE_ROWS) {
            __m256i wk = _mm256_set1_epi32(weight[k]);
            r = mac8(r, p, wk);
            g = mac8(g, p + RESAMPLE_ROWS, wk);
            b = mac8(b, p + 2 * RESAMPLE_ROWS, wk);
        }
        uint8_t *out = staged + (size_t)x * 3 * RESAMPLE_ROWS;
        round8(r, out);
        round8(g, out + RESAMPLE_ROWS);
        round8(b, out + 2 * RESAMPLE_ROWS);
    }
}

/* out[i] = (acc[i] >> 22) clamped to 0..255, for i < n8 (a multiple of 8). */
static AVX2 void column_round_avx2(const int32_t *acc, uint8_t *out, size_t n8)
{
    for (size_t i = 0; i < n8; i += 8)
        round8(_mm256_loadu_si256((const __m256i *)(const void *)(acc + i)), out + i);
}

/* acc[i] += p[i] · weight for i < n8 (a multiple of 8). */
static AVX2 void column_mac_avx2(int32_t *acc, const uint8_t *p, size_t n8, int32_t weight)
{
    const __m256i wk = _mm256_set1_epi32(weight);
    for (size_t i = 0; i < n8; i += 8) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(acc + i));
        _mm256_storeu_si256((__m256i *)(void *)(acc + i), mac8(a, p + i, wk));
    }
}

/* The CPU level chosen for the process (model/cpu.h) decides, as for the networks. */
static int resample_avx2(void)
{
    const enum fv_cpu_level level = fv_cpu_active_level();
    return level == FV_CPU_AVX2 || level == FV_CPU_AVX512 || level == FV_CPU_AVX512_BF16;
}
#else
/* Without x86 intrinsics: never chosen (resample_avx2() is 0). */
static int resample_avx2(void) { return 0; }
static void taps_avx2(const uint8_t *block, const struct resample_weights *w, int out_w,
                      uint8_t *staged)
{
    taps_generic(block, w, out_w, staged);
}
static void column_round_avx2(const int32_t *acc, uint8_t *out, size_t n8)
{
    (void)acc, (void)out, (void)n8;
}
static void column_mac_avx2(int32_t *acc, const uint8_t *p, size_t n8, int32_t weight)
{
    (void)acc, (void)p, (void)n8, (void)weight;
}
#endif

/* Rows y0 .. y0 + 7 of the region (its last row repeated past the end) into
 * block, byte i of row y0 + r at i · 8 + r. A region reaching outside src
 * needs scratch: eight of its rows, to put them together in, black-padded. */
static void interleave_rows(const struct fv_resampler *rs, int y0, uint8_t *block,
                            uint8_t *scratch)
{
    const struct fv_image *src = rs->src;
    const int bytes = rs->w * 3, b16 = bytes & ~15, b8 = bytes & ~7;
    const bool inside = region_inside(rs);
    const int x0 = rs->x > 0 ? rs->x : 0;
    const int x1 = rs->x + rs->w < src->width ? rs->x + rs->w : src->width;
    const uint8_t *rows[RESAMPLE_ROWS];
    for (int lane = 0; lane < RESAMPLE_ROWS; lane++) {
        int y = rs->y + (y0 + lane < rs->h ? y0 + lane : rs->h - 1);
        if (inside) {
            rows[lane] = fv_image_pixel_at(src, rs->x, y);
            continue;
        }
        uint8_t *row = scratch + (size_t)lane * bytes;
        memset(row, 0, (size_t)bytes);
        if (y >= 0 && y < src->height && x0 < x1)
            memcpy(row + (size_t)(x0 - rs->x) * 3, fv_image_pixel_at(src, x0, y),
                   (size_t)(x1 - x0) * 3);
        rows[lane] = row;
    }
    for (int i0 = 0; i0 < b16; i0 += 16) {
        const uint8_t *in[8];
        for (int j = 0; j < 8; j++)
            in[j] = rows[j] + i0;
        interleave8x16(in, block + (size_t)i0 * RESAMPLE_ROWS);
    }
    for (int i0 = b16; i0 < b8; i0 += 8) {
        const uint8_t *in[8];
        uint8_t *to[8];
        for (int j = 0; j < 8; j++) {
            in[j] = rows[j] + i0;
            to[j] = block + (size_t)(i0 + j) * RESAMPLE_ROWS;
        }
        transpose8x8(in, to);
    }
    for (int i = b8; i < bytes; i++)
        for (int lane = 0; lane < RESAMPLE_ROWS; lane++)
            block[(size_t)i * RESAMPLE_ROWS + lane] = rows[lane][i];
}

/* Where a pass keeps source row y (of rows [first, last)): row y - first of
 * img, or with a ring, row (y - first) % img->height, when img holds only the
 * last few rows the vertical pass still reads. */
struct row_store {
    struct fv_image *img;
    int first, last;
    bool ring;
};

static uint8_t *stored_row(const struct row_store *to, int y)
{
    int r = y - to->first;
    return fv_image_pixel_at(to->img, 0, to->ring ? r % to->img->height : r);
}

/* The horizontal pass for blocks [yb0, yb1) of eight rows of the region,
 * kept in `to` (rows outside [to->first, to->last) are dropped). Eight rows at
 * a time from the interleaved copy: each tap is one vector multiply-add per
 * channel for all eight rows (they share the weights). The sums are integers,
 * so the result is PIL's exactly whatever the order. staged and spare come
 * from horizontal_buffers. */
static void horizontal_blocks(const struct fv_resampler *rs, const struct row_store *to, int yb0,
                              int yb1, const struct resample_weights *w, uint8_t *staged,
                              uint8_t *spare)
{
    const size_t block_bytes = (size_t)rs->w * 3 * RESAMPLE_ROWS;
    const int out_w = to->img->width, first = to->first, last = to->last;
    const int use_avx2 = resample_avx2();
    for (int yb = yb0; yb < yb1; yb++) {
        const uint8_t *block;
        if (rs->rows) {
            block = rs->rows + (size_t)yb * block_bytes;
        } else { /* one resize: each block interleaved as it is needed */
            block = spare + (size_t)out_w * 3;
            interleave_rows(rs, yb * RESAMPLE_ROWS, spare + (size_t)out_w * 3,
                            spare + (size_t)out_w * 3 + block_bytes);
        }
        if (use_avx2)
            taps_avx2(block, w, out_w, staged);
        else
            taps_generic(block, w, out_w, staged);
        /* back to rows: lanes outside [first, last) go to a scratch row */
        uint8_t *rows[RESAMPLE_ROWS];
        for (int lane = 0; lane < RESAMPLE_ROWS; lane++) {
            int y = yb * RESAMPLE_ROWS + lane;
            rows[lane] = y >= first && y < last ? stored_row(to, y) : spare;
        }
        const int bytes = out_w * 3, b8 = bytes & ~7;
        for (int i0 = 0; i0 < b8; i0 += 8) {
            const uint8_t *in[8];
            uint8_t *to[8];
            for (int j = 0; j < 8; j++) {
                in[j] = staged + (size_t)(i0 + j) * RESAMPLE_ROWS;
                to[j] = rows[j] + i0;
            }
            transpose8x8(in, to);
        }
        for (int i = b8; i < bytes; i++)
            for (int lane = 0; lane < RESAMPLE_ROWS; lane++)
                rows[lane][i] = staged[(size_t)i * RESAMPLE_ROWS + lane];
    }
}

/* The buffers horizontal_blocks needs for out_w wide rows: staged, a spare
 * row and, without an interleaved copy, one block of the region and the
 * scratch rows interleave_rows may need. */
static uint8_t *horizontal_buffers(const struct fv_resampler *rs, int out_w, uint8_t **spare)
{
    size_t block = rs->rows ? 0 : (size_t)rs->w * 3 * RESAMPLE_ROWS * (region_inside(rs) ? 1 : 2);
    uint8_t *staged = malloc((size_t)out_w * 3 * (RESAMPLE_ROWS + 1) + block);
    *spare = staged ? staged + (size_t)out_w * 3 * RESAMPLE_ROWS : NULL;
    return staged;
}

/* Row y of dst from the source rows first[y].. kept in `from`. A whole row
 * accumulates tap by tap in acc (width · 3 values), which keeps the inner loop
 * contiguous. */
static void vertical_row(const struct row_store *from, struct fv_image *dst, int y,
                         const struct resample_weights *w, int32_t *acc)
{
    const size_t stride = (size_t)dst->width * 3;
    /* the first `vec` values of a row go through AVX2, the rest one by one */
    const size_t vec = resample_avx2() ? stride & ~(size_t)7 : 0;
    const int32_t *weight = w->weight + (size_t)y * (size_t)w->taps;
    uint8_t *out = fv_image_pixel_at(dst, 0, y);
    for (size_t i = 0; i < stride; i++)
        acc[i] = 1 << (RESAMPLE_PRECISION_BITS - 1);
    for (int k = 0; k < w->count[y]; k++) {
        const uint8_t *p = stored_row(from, w->first[y] + k);
        column_mac_avx2(acc, p, vec, weight[k]);
        for (size_t i = vec; i < stride; i++)
            acc[i] += (int32_t)p[i] * weight[k];
    }
    column_round_avx2(acc, out, vec);
    for (size_t i = vec; i < stride; i++)
        out[i] = resample_round(acc[i]);
}

struct fv_resampler *fv_resampler_new(const struct fv_image *src)
{
    if (!fv_image_is_valid(src))
        return NULL;
    struct fv_resampler *rs = calloc(1, sizeof *rs);
    size_t blocks = ((size_t)src->height + RESAMPLE_ROWS - 1) / RESAMPLE_ROWS;
    size_t row_bytes = (size_t)src->width * 3;
    if (!rs || !(rs->rows = malloc(blocks * row_bytes * RESAMPLE_ROWS))) {
        free(rs);
        return NULL;
    }
    *rs = (struct fv_resampler){src, 0, 0, src->width, src->height, rs->rows};
    for (size_t yb = 0; yb < blocks; yb++)
        interleave_rows(rs, (int)(yb * RESAMPLE_ROWS), rs->rows + yb * row_bytes * RESAMPLE_ROWS,
                        NULL);
    return rs;
}

void fv_resampler_free(struct fv_resampler *rs)
{
    if (!rs)
        return;
    free(rs->rows);
    free(rs);
}

/* The region of rs resampled into dst (allocated, of another size; the same
 * width only when the region is the whole of src, which the vertical pass
 * then reads directly). */
static enum fv_status resample_into(const struct fv_resampler *rs, struct fv_image *dst,
                                    struct fv_error *err)
{
    struct resample_weights horizontal = {0}, vertical = {0};
    struct fv_image *temp = NULL;
    int32_t *acc = NULL;
    uint8_t *staged = NULL, *spare = NULL;
    const int width = dst->width, height = dst->height;
    const bool need_horizontal = width != rs->w, need_vertical = height != rs->h;
    if (need_vertical && !resample_weights_init(&vertical, rs->h, height))
        goto fail;
    if (need_horizontal && !resample_weights_init(&horizontal, rs->w, width))
        goto fail;
    if (need_vertical && !(acc = malloc((size_t)width * 3 * sizeof *acc)))
        goto fail;

    if (need_horizontal && !(staged = horizontal_buffers(rs, width, &spare)))
        goto fail;

    if (need_horizontal && need_vertical) {
        /* Only the source rows the vertical pass reads, block by block as it
         * needs them, in a ring of the last rows when there are many (a few
         * rows that stay in cache rather than the whole image filtered
         * horizontally): each output row needs rows up to first + count, the
         * oldest it reads is at most taps + 7 rows behind the newest block. */
        int first = vertical.first[0];
        int last = vertical.first[height - 1] + vertical.count[height - 1];
        int ring = vertical.taps + 2 * RESAMPLE_ROWS;
        temp = fv_image_new(width, last - first > ring ? ring : last - first);
        if (!temp)
            goto fail;
        const struct row_store rows = {temp, first, last, last - first > ring};
        int yb = first / RESAMPLE_ROWS;
        for (int y = 0; y < height; y++) {
            int need = vertical.first[y] + vertical.count[y];
            int upto = (need + RESAMPLE_ROWS - 1) / RESAMPLE_ROWS;
            if (yb < upto) {
                horizontal_blocks(rs, &rows, yb, upto, &horizontal, staged, spare);
                yb = upto;
            }
            vertical_row(&rows, dst, y, &vertical, acc);
        }
    } else if (need_horizontal) {
        const struct row_store rows = {dst, 0, height, false};
        horizontal_blocks(rs, &rows, 0, (height + RESAMPLE_ROWS - 1) / RESAMPLE_ROWS, &horizontal,
                          staged, spare);
    } else {
        const struct row_store rows = {(struct fv_image *)rs->src, 0, rs->h, false};
        for (int y = 0; y < height; y++)
            vertical_row(&rows, dst, y, &vertical, acc);
    }
    resample_weights_free(&horizontal);
    resample_weights_free(&vertical);
    fv_image_free(temp);
    free(acc);
    free(staged);
    return FV_OK;

fail: /* every failure here is an allocation */
    resample_weights_free(&horizontal);
    resample_weights_free(&vertical);
    fv_image_free(temp);
    free(acc);
    free(staged);
    return fv_error_set(err, FV_ERR_NOMEM, "out of memory resizing %dx%d to %dx%d", rs->w, rs->h,
                        width, height);
}

enum fv_status fv_resampler_resize(const struct fv_resampler *rs, int width, int height,
                                   struct fv_image **out, struct fv_error *err)
{
    if (!out)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_resize: NULL output");
    *out = NULL;
    if (!rs || !fv_image_is_valid(rs->src))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_resize: no image");
    if (width <= 0 || height <= 0)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "cannot resize to %dx%d", width, height);
    struct fv_image *dst = width == rs->w && height == rs->h ? fv_image_clone(rs->src)
                                                             : fv_image_new(width, height);
    if (!dst)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory resizing %dx%d to %dx%d", rs->w,
                            rs->h, width, height);
    if (width != rs->w || height != rs->h) {
        enum fv_status st = resample_into(rs, dst, err);
        if (st) {
            fv_image_free(dst);
            return st;
        }
    }
    *out = dst;
    return FV_OK;
}

enum fv_status fv_image_resize(const struct fv_image *src, int width, int height,
                               struct fv_image **out, struct fv_error *err)
{
    if (!out)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_resize: NULL output");
    *out = NULL;
    if (!fv_image_is_valid(src))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_resize: no image");
    /* One resize reads each source row once: no interleaved copy of the
     * whole image, each block of rows is interleaved when the pass needs it. */
    const struct fv_resampler direct = {src, 0, 0, src->width, src->height, NULL};
    return fv_resampler_resize(&direct, width, height, out, err);
}

enum fv_status fv_image_resize_region(const struct fv_image *src, int x, int y, int w, int h,
                                      struct fv_image *dst, struct fv_error *err)
{
    if (!fv_image_is_valid(src) || !fv_image_is_valid(dst) || w < 1 || h < 1)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_resize_region: empty image");
    if (w != dst->width) {
        const struct fv_resampler region = {src, x, y, w, h, NULL};
        return resample_into(&region, dst, err);
    }
    /* No horizontal pass: the vertical one reads a copy of the region. */
    struct fv_image *crop = fv_image_crop(src, x, y, w, h), *out = NULL;
    if (!crop)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory resizing a %dx%d region", w, h);
    enum fv_status st = fv_image_resize(crop, dst->width, dst->height, &out, err);
    fv_image_free(crop);
    if (st == FV_OK)
        memcpy(dst->rgb, out->rgb, fv_image_byte_count(dst));
    fv_image_free(out);
    return st;
}

typedef uint16_t v16u16 __attribute__((vector_size(32)));
typedef uint8_t v16u8_unaligned __attribute__((vector_size(16), aligned(1)));

/* The w × h region of src at (x, y), inside it, averaged over k × k blocks. */
static struct fv_image *reduce_inside(const struct fv_image *src, int x0, int y0, int width,
                                      int height, int k)
{
    int w = (width + k - 1) / k, h = (height + k - 1) / k;
    size_t row_values = (size_t)width * 3, vectors = (row_values + 15) / 16;
    const size_t stride = (size_t)src->width * 3;
    const uint8_t *origin = src->rgb + (size_t)y0 * stride + (size_t)x0 * 3;
    struct fv_image *dst = fv_image_new(w, h);
    /* Sums down a block of rows: at most 256 × 255, so 16 bits suffice. */
    v16u16 *column = aligned_alloc(32, vectors * sizeof *column);
    if (!dst || !column) {
        fv_image_free(dst);
        free(column);
        return NULL;
    }
    const uint16_t *sums = (const uint16_t *)column;
    for (int by = 0; by < h; by++) {
        int r0 = by * k, r1 = r0 + k < height ? r0 + k : height;
        memset(column, 0, vectors * sizeof *column);
        for (int y = r0; y < r1; y++) {
            const uint8_t *row = origin + (size_t)y * stride;
            size_t v = 0;
            for (; (v + 1) * 16 <= row_values; v++)
                column[v] += __builtin_convertvector(*(const v16u8_unaligned *)(row + 16 * v),
                                                     v16u16);
            for (size_t i = 16 * v; i < row_values; i++)
                ((uint16_t *)column)[i] += row[i];
        }
        uint8_t *out = dst->rgb + (size_t)by * w * 3;
        uint32_t n = 0;
        uint64_t inverse = 0;
        for (int bx = 0; bx < w; bx++) {
            int c0 = bx * k, c1 = c0 + k < width ? c0 + k : width;
            uint32_t r = 0, g = 0, b = 0;
            if (n != (uint32_t)((c1 - c0) * (r1 - r0))) {
                /* (v + n / 2) / n without a division: v < 256 n and n <= 2^16, so
                 * with inverse = ceil(2^40 / n) the product's error stays below
                 * one step of the quotient. */
                n = (uint32_t)((c1 - c0) * (r1 - r0));
                inverse = ((UINT64_C(1) << 40) + n - 1) / n;
            }
            for (const uint16_t *p = sums + 3 * c0, *end = sums + 3 * c1; p < end; p += 3)
                r += p[0], g += p[1], b += p[2];
            out[3 * bx] = (uint8_t)(((r + n / 2) * inverse) >> 40);
            out[3 * bx + 1] = (uint8_t)(((g + n / 2) * inverse) >> 40);
            out[3 * bx + 2] = (uint8_t)(((b + n / 2) * inverse) >> 40);
        }
    }
    free(column);
    return dst;
}

struct fv_image *fv_image_reduce(const struct fv_image *src, int k)
{
    if (!src || k < 1 || k > 256 || src->width < 1 || src->height < 1)
        return NULL;
    return reduce_inside(src, 0, 0, src->width, src->height, k);
}

struct fv_image *fv_image_reduce_region(const struct fv_image *src, int x, int y, int w, int h,
                                        int k)
{
    if (!src || k < 1 || k > 256 || src->width < 1 || src->height < 1 || w < 1 || h < 1)
        return NULL;
    if (x >= 0 && y >= 0 && x <= src->width - w && y <= src->height - h)
        return reduce_inside(src, x, y, w, h, k);
    struct fv_image *crop = fv_image_crop(src, x, y, w, h);
    struct fv_image *out = crop ? reduce_inside(crop, 0, 0, w, h, k) : NULL;
    fv_image_free(crop);
    return out;
}
