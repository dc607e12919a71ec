/* detect.c - MTCNN: P-Net pyramid in tiles, R-Net and O-Net on batched crops. */
#include "pipeline/detect.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "model/hash.h"
#include "model/model.h"

/* P-Net runs on tiles of at most this many rows and columns (even, so tiles
 * line up with the 2×2 pooling). Tiles overlap by P-Net's cell size minus its
 * stride, so every output cell comes from exactly one tile and the result is
 * the same as running on the whole level, with memory bounded. */
#define PNET_TILE 512
#define PNET_CELL 12
#define PNET_STRIDE 2
#define RNET_BATCH 64
#define ONET_BATCH 32

/* MTCNN's usual smallest face, in pixels of the image P-Net searches. */
#define MIN_FACE_DEFAULT 20.0f
#define DEFAULT_MAX_SIDE 640
/* Finer pixels read for R-Net and O-Net crops: at most this many times the
 * pixels of the copy P-Net searched. */
#define FINE_BUDGET 4.0

struct fv_detector {
    struct fv_model *net[3];
    int prob[3], reg[3], points; /* output tensor indices */
};

struct fv_detector_context {
    const struct fv_detector *det;
    struct fv_context *ctx[3];
    float *input; /* largest network input of the three */
};

struct candidate {
    float box[4];
    float score;
    float reg[4];
    float points[10];
};

void fv_detect_default_params(struct fv_detect_params *p)
{
    p->min_face = 0.0f;
    p->min_face_relative = 0.0f;
    p->max_side = DEFAULT_MAX_SIDE;
    p->factor = 0.709f;
    p->thresholds[0] = 0.6f;
    p->thresholds[1] = 0.7f;
    p->thresholds[2] = 0.7f;
    p->max_faces = 1000;
}

enum fv_status fv_detect_check_params(const struct fv_detect_params *p, struct fv_error *err)
{
    if (!(p->min_face == 0.0f || (p->min_face >= 12.0f && p->min_face <= 100000.0f)))
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "min_face must be 0 (automatic) or between 12 and 100000 pixels");
    if (!(p->min_face_relative >= 0.0f && p->min_face_relative <= 1.0f))
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "min_face_relative must be between 0 and 1 (a fraction of the "
                            "shorter side)");
    if (p->max_side != 0 && (p->max_side < 48 || p->max_side > 100000))
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "max_side must be 0 (full size) or between 48 and 100000 pixels");
    if (!(p->factor >= 0.1f && p->factor <= 0.95f))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "pyramid factor must be between 0.1 and 0.95");
    for (int i = 0; i < 3; i++)
        if (!(p->thresholds[i] >= 0.0f && p->thresholds[i] <= 1.0f))
            return fv_error_set(err, FV_ERR_INVALID_ARG, "threshold %d must be between 0 and 1",
                                i + 1);
    if (p->max_faces < 1 || p->max_faces > 100000)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "max_faces must be between 1 and 100000");
    return FV_OK;
}

/* The output of net whose channel count is c, or -1. */
static int output_with_channels(const struct fv_model *m, int c)
{
    struct fv_graph *g = fv_model_graph(m);
    for (int i = 0; i < fv_graph_output_count(g); i++) {
        int t = fv_graph_output(g, i);
        if (fv_graph_tensor(g, t)->c == c)
            return t;
    }
    return -1;
}

enum fv_status fv_detector_load(const char *dir, struct fv_detector **out, struct fv_error *err)
{
    static const char *const names[3] = {"pnet.fvm", "rnet.fvm", "onet.fvm"};
    static const int sizes[3] = {0, 24, 48};
    enum fv_status st = FV_OK;
    *out = NULL;
    struct fv_detector *det = calloc(1, sizeof *det);
    if (!det)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory loading detector");
    for (int i = 0; i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if ((st = fv_model_load(path, &det->net[i], err)) != FV_OK)
            goto fail;
        const struct fv_model_meta *meta = fv_model_meta(det->net[i]);
        det->prob[i] = output_with_channels(det->net[i], 2);
        det->reg[i] = output_with_channels(det->net[i], 4);
        if (det->prob[i] < 0 || det->reg[i] < 0 || meta->input_c != 3 ||
            (sizes[i] && (meta->input_h != sizes[i] || meta->input_w != sizes[i]))) {
            st = fv_error_set(err, FV_ERR_FORMAT,
                              "%s: not an MTCNN %s network (needs a 3-channel %dx%d input and "
                              "2- and 4-channel outputs)",
                              path, names[i], sizes[i] ? sizes[i] : 12, sizes[i] ? sizes[i] : 12);
            goto fail;
        }
    }
    det->points = output_with_channels(det->net[2], 10);
    if (det->points < 0) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s/onet.fvm: no 10-value landmark output", dir);
        goto fail;
    }
    *out = det;
    return FV_OK;
fail:
    fv_detector_free(det);
    return st;
}

void fv_detector_free(struct fv_detector *det)
{
    if (!det)
        return;
    for (int i = 0; i < 3; i++)
        fv_model_free(det->net[i]);
    free(det);
}

enum fv_status fv_detector_context_new(const struct fv_detector *det,
                                       struct fv_detector_context **out, struct fv_error *err)
{
    enum fv_status st;
    *out = NULL;
    struct fv_detector_context *c = calloc(1, sizeof *c);
    if (!c)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory creating detector context");
    c->det = det;
    if ((st = fv_context_new(det->net[0], 1, PNET_TILE, PNET_TILE, &c->ctx[0], err)) ||
        (st = fv_context_new(det->net[1], RNET_BATCH, 0, 0, &c->ctx[1], err)) ||
        (st = fv_context_new(det->net[2], ONET_BATCH, 0, 0, &c->ctx[2], err)))
        goto fail;
    size_t need = (size_t)PNET_TILE * PNET_TILE * 3;
    if (need < (size_t)RNET_BATCH * 24 * 24 * 3)
        need = (size_t)RNET_BATCH * 24 * 24 * 3;
    if (need < (size_t)ONET_BATCH * 48 * 48 * 3)
        need = (size_t)ONET_BATCH * 48 * 48 * 3;
    if (!(c->input = malloc(need * sizeof *c->input))) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory creating detector context");
        goto fail;
    }
    *out = c;
    return FV_OK;
fail:
    fv_detector_context_free(c);
    return st;
}

void fv_detector_context_free(struct fv_detector_context *c)
{
    if (!c)
        return;
    for (int i = 0; i < 3; i++)
        fv_context_free(c->ctx[i]);
    free(c->input);
    free(c);
}

size_t fv_nms(const float (*boxes)[4], const float *scores, size_t n, float threshold,
              int use_min, size_t *keep)
{
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    char *dropped = calloc(n ? n : 1, 1);
    size_t kept = 0;
    if (!order || !dropped) {
        free(order);
        free(dropped);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    /* Insertion sort would be quadratic on big P-Net levels: sort by score, descending,
     * ties by index so results do not depend on the sort. */
    for (size_t gap = n / 2; gap > 0; gap /= 2)
        for (size_t i = gap; i < n; i++)
            for (size_t j = i; j >= gap; j -= gap) {
                size_t a = order[j - gap], b = order[j];
                if (scores[a] > scores[b] || (scores[a] == scores[b] && a < b))
                    break;
                order[j - gap] = b, order[j] = a;
            }
    for (size_t a = 0; a < n; a++) {
        size_t i = order[a];
        if (dropped[i])
            continue;
        keep[kept++] = i;
        const float *bi = boxes[i];
        float area_i = (bi[2] - bi[0] + 1) * (bi[3] - bi[1] + 1);
        for (size_t b = a + 1; b < n; b++) {
            size_t j = order[b];
            if (dropped[j])
                continue;
            const float *bj = boxes[j];
            float w = fminf(bi[2], bj[2]) - fmaxf(bi[0], bj[0]) + 1;
            float h = fminf(bi[3], bj[3]) - fmaxf(bi[1], bj[1]) + 1;
            if (w <= 0 || h <= 0)
                continue;
            float inter = w * h;
            float area_j = (bj[2] - bj[0] + 1) * (bj[3] - bj[1] + 1);
            float overlap = use_min ? inter / fminf(area_i, area_j) : inter / (area_i + area_j - inter);
            if (overlap > threshold)
                dropped[j] = 1;
        }
    }
    free(order);
    free(dropped);
    return kept;
}

/* Keeps the candidates NMS keeps, in NMS order; returns the new count. */
static size_t nms_candidates(struct candidate *c, size_t n, float threshold, int use_min)
{
    if (n == 0)
        return 0;
    float(*boxes)[4] = malloc(n * sizeof *boxes);
    float *scores = malloc(n * sizeof *scores);
    size_t *keep = malloc(n * sizeof *keep);
    struct candidate *copy = malloc(n * sizeof *copy);
    size_t kept = 0;
    if (boxes && scores && keep && copy) {
        for (size_t i = 0; i < n; i++) {
            memcpy(boxes[i], c[i].box, sizeof boxes[i]);
            scores[i] = c[i].score;
        }
        kept = fv_nms((const float(*)[4])boxes, scores, n, threshold, use_min, keep);
        memcpy(copy, c, n * sizeof *copy);
        for (size_t i = 0; i < kept; i++)
            c[i] = copy[keep[i]];
    } else {
        kept = n; /* out of memory: keep everything rather than lose faces */
    }
    free(boxes);
    free(scores);
    free(keep);
    free(copy);
    return kept;
}

/* Makes each box a square around its centre with side max(w, h) (MTCNN's rerec). */
static void square(struct candidate *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float *b = c[i].box;
        float w = b[2] - b[0], h = b[3] - b[1], l = fmaxf(w, h);
        b[0] = b[0] + w * 0.5f - l * 0.5f;
        b[1] = b[1] + h * 0.5f - l * 0.5f;
        b[2] = b[0] + l;
        b[3] = b[1] + l;
    }
}

/* Applies the regression offsets, scaled by the box size (+1 when inclusive). */
static void regress(struct candidate *c, size_t n, float plus_one)
{
    for (size_t i = 0; i < n; i++) {
        float *b = c[i].box;
        float w = b[2] - b[0] + plus_one, h = b[3] - b[1] + plus_one;
        b[0] += c[i].reg[0] * w;
        b[1] += c[i].reg[1] * h;
        b[2] += c[i].reg[2] * w;
        b[3] += c[i].reg[3] * h;
    }
}

static void truncate_boxes(struct candidate *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            c[i].box[k] = truncf(c[i].box[k]);
}

/* Growable candidate array. */
struct candidates {
    struct candidate *c;
    size_t n, cap;
};

static int push(struct candidates *list, const struct candidate *c)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 256;
        struct candidate *p = realloc(list->c, cap * sizeof *p);
        if (!p)
            return -1;
        list->c = p;
        list->cap = cap;
    }
    list->c[list->n++] = *c;
    return 0;
}

/* Writes rows × cols × 3 normalised floats of img starting at (row0, col0) into
 * dst. With transpose, rows run along the image's x axis. */
static void fill_input(const struct fv_image *img, int transpose, int row0, int col0, int rows,
                       int cols, float mean, float scale, float *dst)
{
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < cols; q++) {
            int x = transpose ? row0 + r : col0 + q;
            int y = transpose ? col0 + q : row0 + r;
            const uint8_t *p = img->rgb + 3 * ((size_t)y * img->width + x);
            float *d = dst + 3 * ((size_t)r * cols + q);
            d[0] = ((float)p[0] - mean) * scale;
            d[1] = ((float)p[1] - mean) * scale;
            d[2] = ((float)p[2] - mean) * scale;
        }
}

/* P-Net on one pyramid level, in tiles; appends candidates above threshold. */
static enum fv_status pnet_level(struct fv_detector_context *ctx, const struct fv_image *level,
                                 float scale, float threshold, struct candidates *out,
                                 struct fv_error *err)
{
    const struct fv_detector *det = ctx->det;
    const struct fv_model_meta *meta = fv_model_meta(det->net[0]);
    const int transpose = meta->transpose_input;
    const int rows = transpose ? level->width : level->height;
    const int cols = transpose ? level->height : level->width;
    const int step = PNET_TILE - (PNET_CELL - PNET_STRIDE);
    for (int r0 = 0; r0 < rows; r0 += step) {
        int th = rows - r0 < PNET_TILE ? rows - r0 : PNET_TILE;
        if (th < PNET_CELL - 1)
            break;
        for (int c0 = 0; c0 < cols; c0 += step) {
            int tw = cols - c0 < PNET_TILE ? cols - c0 : PNET_TILE;
            if (tw < PNET_CELL - 1)
                break;
            fill_input(level, transpose, r0, c0, th, tw, meta->pixel_mean, meta->pixel_scale,
                       ctx->input);
            enum fv_status st = fv_context_run(ctx->ctx[0], ctx->input, 1, th, tw, err);
            if (st)
                return st;
            int ps[4], rs[4];
            const float *prob = fv_context_tensor(ctx->ctx[0], det->prob[0], ps);
            const float *reg = fv_context_tensor(ctx->ctx[0], det->reg[0], rs);
            for (int i = 0; i < ps[1]; i++)
                for (int j = 0; j < ps[2]; j++) {
                    size_t cell = (size_t)i * ps[2] + j;
                    float score = prob[cell * 2 + 1];
                    if (score < threshold)
                        continue;
                    int gi = r0 / PNET_STRIDE + i, gj = c0 / PNET_STRIDE + j;
                    int cx = transpose ? gi : gj, cy = transpose ? gj : gi;
                    struct candidate c = {.score = score};
                    c.box[0] = truncf((float)(PNET_STRIDE * cx + 1) / scale);
                    c.box[1] = truncf((float)(PNET_STRIDE * cy + 1) / scale);
                    c.box[2] = truncf((float)(PNET_STRIDE * cx + PNET_CELL) / scale);
                    c.box[3] = truncf((float)(PNET_STRIDE * cy + PNET_CELL) / scale);
                    memcpy(c.reg, reg + cell * 4, sizeof c.reg);
                    if (push(out, &c))
                        return fv_error_set(err, FV_ERR_NOMEM, "out of memory in P-Net");
                }
        }
    }
    return FV_OK;
}

/* Where R-Net and O-Net read their crops. Boxes are in pixels of img, the
 * image P-Net searched; when that is a reduced copy of src's image (sx, sy
 * of its pixels per full-size pixel), a box smaller than twice the network's
 * input is read from src at fine_scale (the region the boxes cover,
 * prepared by prepare_crops). */
struct crop_source {
    const struct fv_image *img;
    struct fv_image_source *src; /* NULL: img is the full image */
    float sx, sy;
    float fine_scale;            /* read such crops from src at this scale (0: none) */
};

static bool needs_fine(const struct crop_source *cs, const float *b, int size)
{
    return cs->src && (b[2] - b[0] + 1 < 2.0f * size || b[3] - b[1] + 1 < 2.0f * size);
}

/* Prepares the finer pixels that the boxes smaller than twice size need: one
 * region covering them all, at the scale the smallest needs (within a
 * budget), which crop_box then reads from. */
static enum fv_status prepare_crops(struct crop_source *cs, const struct candidate *c, size_t n,
                                    int size, struct fv_error *err)
{
    cs->fine_scale = 0;
    if (!cs->src)
        return FV_OK;
    if (fv_image_source_full(cs->src)) { /* in memory: its full-size pixels */
        cs->fine_scale = 1;
        return FV_OK;
    }
    double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY, scale = 0;
    for (size_t i = 0; i < n; i++) {
        const float *b = c[i].box;
        if (!needs_fine(cs, b, size))
            continue;
        /* Pixel k of img covers [k / s, (k + 1) / s) of the full image. */
        double w = b[2] - b[0] + 1, h = b[3] - b[1] + 1;
        if (!(w >= 1 && h >= 1 && w <= 100000 && h <= 100000))
            continue;
        x0 = fmin(x0, (b[0] - 1) / cs->sx);
        y0 = fmin(y0, (b[1] - 1) / cs->sy);
        x1 = fmax(x1, (b[0] - 1 + w) / cs->sx);
        y1 = fmax(y1, (b[1] - 1 + h) / cs->sy);
        scale = fmax(scale, 2.0 * size * fmax(cs->sx / w, cs->sy / h));
    }
    if (scale == 0)
        return FV_OK;
    scale = fmin(scale, 1.0);
    /* One tiny candidate must not make the whole region decode at full size:
     * the region gets at most FINE_BUDGET times the pixels P-Net searched (and
     * at least a megapixel); the smallest boxes then read somewhat coarser
     * pixels, still finer than the copy's. */
    double area = (x1 - x0) * (y1 - y0) * scale * scale;
    double budget = fmax(1e6, FINE_BUDGET * (double)cs->img->width * cs->img->height);
    if (area > budget)
        scale *= sqrt(budget / area);
    double margin = 2.0 / scale + 1;
    int rx = (int)fmax(floor(x0 - margin), -1e9), ry = (int)fmax(floor(y0 - margin), -1e9);
    int rw = (int)fmin(ceil(x1 + margin) - rx, 1e9), rh = (int)fmin(ceil(y1 + margin) - ry, 1e9);
    enum fv_status st = fv_image_source_prepare(cs->src, (float)scale, rx, ry, rw, rh, err);
    if (st == FV_ERR_INVALID_ARG) /* every box lies outside the image */
        return FV_OK;
    if (st == FV_OK)
        cs->fine_scale = (float)scale;
    return st;
}

/* The box (1-based inclusive coordinates of cs->img, zero outside the image)
 * resampled to size × size, into *out: from cs->img as MTCNN does, or, for a
 * box needing finer pixels, from the source's. */
static enum fv_status crop_box(const struct crop_source *cs, const float *b, int size,
                               struct fv_image **out, struct fv_error *err)
{
    int x = (int)b[0] - 1, y = (int)b[1] - 1;
    int w = (int)(b[2] - b[0] + 1), h = (int)(b[3] - b[1] + 1);
    if (!(*out = fv_image_new(size, size)))
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory cropping faces");
    enum fv_status st;
    if (cs->fine_scale > 0 && needs_fine(cs, b, size)) {
        /* Pixel k of img covers [k / s, (k + 1) / s) of the full image. */
        st = fv_image_source_resample(cs->src, cs->fine_scale, x / cs->sx, y / cs->sy,
                                      w / cs->sx, h / cs->sy, *out, err);
        if (st == FV_ERR_INVALID_ARG) /* wholly outside the image: black */
            return FV_OK;
    } else {
        st = fv_image_resize_region(cs->img, x, y, w, h, *out, err);
    }
    if (st) {
        fv_image_free(*out);
        *out = NULL;
    }
    return st;
}

/* Crops each box, resamples it to size × size and runs net `stage` in
 * batches; keeps the candidates whose face probability exceeds threshold, with
 * score, regression and (O-Net) landmark outputs filled in. Returns the kept
 * count in *n. */
static enum fv_status refine(struct fv_detector_context *ctx, int stage, struct crop_source *cs,
                             struct candidate *c, size_t *n, float threshold, struct fv_error *err)
{
    const struct fv_detector *det = ctx->det;
    const struct fv_model_meta *meta = fv_model_meta(det->net[stage]);
    const int size = meta->input_h, batch_max = stage == 1 ? RNET_BATCH : ONET_BATCH;
    const size_t per = (size_t)size * size * 3;
    size_t kept = 0, total = *n;
    enum fv_status st = prepare_crops(cs, c, total, size, err);
    if (st)
        return st;
    for (size_t start = 0; start < total; start += (size_t)batch_max) {
        size_t count = total - start < (size_t)batch_max ? total - start : (size_t)batch_max;
        for (size_t k = 0; k < count; k++) {
            const float *b = c[start + k].box;
            int w = (int)(b[2] - b[0] + 1), h = (int)(b[3] - b[1] + 1);
            struct fv_image *small = NULL;
            if (w < 1 || h < 1 || w > 100000 || h > 100000) {
                memset(ctx->input + k * per, 0, per * sizeof *ctx->input);
                continue;
            }
            if ((st = crop_box(cs, b, size, &small, err)))
                return st;
            fill_input(small, meta->transpose_input, 0, 0, size, size, meta->pixel_mean,
                       meta->pixel_scale, ctx->input + k * per);
            fv_image_free(small);
        }
        if ((st = fv_context_run(ctx->ctx[stage], ctx->input, (int)count, size, size, err)))
            return st;
        const float *prob = fv_context_tensor(ctx->ctx[stage], det->prob[stage], NULL);
        const float *reg = fv_context_tensor(ctx->ctx[stage], det->reg[stage], NULL);
        const float *pts = stage == 2 ? fv_context_tensor(ctx->ctx[2], det->points, NULL) : NULL;
        for (size_t k = 0; k < count; k++) {
            const float *b = c[start + k].box;
            float score = prob[k * 2 + 1];
            if (!(score > threshold) || b[2] - b[0] + 1 < 1 || b[3] - b[1] + 1 < 1)
                continue;
            struct candidate keep = c[start + k];
            keep.score = score;
            memcpy(keep.reg, reg + k * 4, sizeof keep.reg);
            if (pts)
                memcpy(keep.points, pts + k * 10, sizeof keep.points);
            c[kept++] = keep; /* kept <= start + k: never overwrites an unread one */
        }
    }
    *n = kept;
    return FV_OK;
}

/* MTCNN on cs->img with faces of at least min_face pixels of it; faces in
 * cs->img's 0-based pixel coordinates. */
static enum fv_status detect_image(struct fv_detector_context *ctx, struct crop_source *cs,
                                   float min_face, const struct fv_detect_params *p,
                                   struct fv_face **faces, int *n_faces, struct fv_error *err)
{
    struct candidates all = {0}, level_list = {0};
    const struct fv_image *img = cs->img;
    enum fv_status st;

    /* Stage 1: P-Net over the pyramid. */
    struct fv_resampler *pyramid = fv_resampler_new(img);
    if (!pyramid)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory building the image pyramid");
    float m = (float)PNET_CELL / min_face;
    float minl = (float)(img->width < img->height ? img->width : img->height) * m;
    for (float scale = m; minl >= PNET_CELL; scale *= p->factor, minl *= p->factor) {
        int hs = (int)ceil((double)img->height * scale), ws = (int)ceil((double)img->width * scale);
        struct fv_image *level = NULL;
        if ((st = fv_resampler_resize(pyramid, ws, hs, &level, err)))
            goto fail;
        level_list.n = 0;
        st = pnet_level(ctx, level, scale, p->thresholds[0], &level_list, err);
        fv_image_free(level);
        if (st)
            goto fail;
        level_list.n = nms_candidates(level_list.c, level_list.n, 0.5f, 0);
        for (size_t i = 0; i < level_list.n; i++)
            if (push(&all, &level_list.c[i])) {
                st = fv_error_set(err, FV_ERR_NOMEM, "out of memory in P-Net");
                goto fail;
            }
    }
    all.n = nms_candidates(all.c, all.n, 0.7f, 0);
    regress(all.c, all.n, 0.0f);
    square(all.c, all.n);
    truncate_boxes(all.c, all.n);

    /* Stage 2: R-Net. */
    if ((st = refine(ctx, 1, cs, all.c, &all.n, p->thresholds[1], err)))
        goto fail;
    all.n = nms_candidates(all.c, all.n, 0.7f, 0);
    regress(all.c, all.n, 1.0f);
    square(all.c, all.n);

    /* Stage 3: O-Net, landmarks, final NMS by the smaller area. */
    truncate_boxes(all.c, all.n);
    if ((st = refine(ctx, 2, cs, all.c, &all.n, p->thresholds[2], err)))
        goto fail;
    for (size_t i = 0; i < all.n; i++) {
        struct candidate *c = &all.c[i];
        float w = c->box[2] - c->box[0] + 1, h = c->box[3] - c->box[1] + 1;
        for (int k = 0; k < 5; k++) {
            float px = w * c->points[k] + c->box[0] - 1;
            float py = h * c->points[k + 5] + c->box[1] - 1;
            c->points[k] = px;
            c->points[k + 5] = py;
        }
    }
    regress(all.c, all.n, 1.0f);
    all.n = nms_candidates(all.c, all.n, 0.7f, 1);

    if (all.n > 0) {
        size_t n = all.n < (size_t)p->max_faces ? all.n : (size_t)p->max_faces;
        struct fv_face *out = calloc(n, sizeof *out);
        if (!out) {
            st = fv_error_set(err, FV_ERR_NOMEM, "out of memory returning faces");
            goto fail;
        }
        /* The algorithm's arithmetic is MATLAB's, in 1-based pixel coordinates (the
         * FaceNet port kept it); callers get 0-based coordinates, where pixel (0, 0)
         * is the first one stored. */
        for (size_t i = 0; i < n; i++) {
            for (int k = 0; k < 4; k++)
                out[i].box[k] = all.c[i].box[k] - 1.0f;
            out[i].score = all.c[i].score;
            for (int k = 0; k < 5; k++) {
                out[i].landmarks[k][0] = all.c[i].points[k] - 1.0f;
                out[i].landmarks[k][1] = all.c[i].points[k + 5] - 1.0f;
            }
        }
        *faces = out;
        *n_faces = (int)n;
    }
    st = FV_OK;
fail:
    fv_resampler_free(pyramid);
    free(all.c);
    free(level_list.c);
    return st;
}

/* The scale (pixels of the copy P-Net searches per pixel of the image) and the
 * smallest face in pixels of that copy, for a width × height image. */
static void working_scale(const struct fv_detect_params *p, int width, int height, double *scale,
                          float *min_face)
{
    int longer = width > height ? width : height, shorter = width < height ? width : height;
    double s = p->max_side > 0 && longer > p->max_side ? (double)p->max_side / longer : 1.0;
    double wanted = fmax(p->min_face, (double)p->min_face_relative * shorter);
    if (wanted > 0) {
        s = fmin(1.0, fmax(s, MIN_FACE_DEFAULT / wanted));
        *min_face = (float)fmax(wanted * s, PNET_CELL);
    } else {
        *min_face = MIN_FACE_DEFAULT;
    }
    *scale = s;
}

enum fv_status fv_detect_source(struct fv_detector_context *ctx, struct fv_image_source *src,
                                const struct fv_detect_params *p, struct fv_face **faces,
                                int *n_faces, struct fv_error *err)
{
    enum fv_status st;
    *faces = NULL;
    *n_faces = 0;
    if ((st = fv_detect_check_params(p, err)))
        return st;
    const struct fv_image_info *info = fv_image_source_info(src);
    if (info->width < 1 || info->height < 1)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "empty image");
    double scale;
    float min_face;
    working_scale(p, info->width, info->height, &scale, &min_face);
    int ws = (int)fmax(1, lround(info->width * scale));
    int hs = (int)fmax(1, lround(info->height * scale));
    struct crop_source cs = {.sx = 1, .sy = 1};
    struct fv_image *reduced = NULL;
    const struct fv_image *full = fv_image_source_full(src);
    if (ws >= info->width && hs >= info->height && full) {
        cs.img = full;
    } else {
        /* Keep the pixels R-Net's crops need: its smallest boxes, min_face
         * pixels of the copy, at twice R-Net's input. */
        int rnet = fv_model_meta(ctx->det->net[1])->input_h;
        float keep = (float)fmin(1.0, 2.0 * rnet * scale / min_face);
        if ((st = fv_image_source_scaled(src, ws < info->width ? ws : info->width,
                                         hs < info->height ? hs : info->height, keep, &reduced,
                                         err)))
            return st;
        cs.img = reduced;
        if (reduced->width < info->width || reduced->height < info->height) {
            cs.src = src;
            cs.sx = (float)reduced->width / info->width;
            cs.sy = (float)reduced->height / info->height;
        }
    }
    st = detect_image(ctx, &cs, min_face, p, faces, n_faces, err);
    fv_image_free(reduced);
    if (st || !cs.src)
        return st;
    /* Pixel k of the copy is centred at full-size coordinate (k + 0.5) / s - 0.5. */
    for (int i = 0; i < *n_faces; i++) {
        struct fv_face *f = &(*faces)[i];
        for (int k = 0; k < 4; k++)
            f->box[k] = (f->box[k] + 0.5f) / (k % 2 ? cs.sy : cs.sx) - 0.5f;
        for (int k = 0; k < FV_LANDMARKS; k++) {
            f->landmarks[k][0] = (f->landmarks[k][0] + 0.5f) / cs.sx - 0.5f;
            f->landmarks[k][1] = (f->landmarks[k][1] + 0.5f) / cs.sy - 0.5f;
        }
    }
    return FV_OK;
}

enum fv_status fv_detect(struct fv_detector_context *ctx, const struct fv_image *img,
                         const struct fv_detect_params *p, struct fv_face **faces, int *n_faces,
                         struct fv_error *err)
{
    struct fv_image_source *src = NULL;
    *faces = NULL;
    *n_faces = 0;
    enum fv_status st = fv_detect_check_params(p, err);
    if (st || (st = fv_image_source_wrap(img, &src, err)))
        return st;
    st = fv_detect_source(ctx, src, p, faces, n_faces, err);
    fv_image_source_free(src);
    return st;
}

uint64_t fv_model_hash(const struct fv_model *m, uint64_t h)
{
    struct fv_graph *g = fv_model_graph(m);
    const struct fv_model_meta *meta = fv_model_meta(m);
    h = fv_fnv1a(h, meta->name, strlen(meta->name));
    h = fv_fnv1a(h, &meta->input_h, sizeof meta->input_h);
    h = fv_fnv1a(h, &meta->input_w, sizeof meta->input_w);
    h = fv_fnv1a(h, &meta->pixel_mean, sizeof meta->pixel_mean);
    h = fv_fnv1a(h, &meta->pixel_scale, sizeof meta->pixel_scale);
    h = fv_fnv1a(h, &meta->template_h, sizeof meta->template_h);
    h = fv_fnv1a(h, &meta->template_w, sizeof meta->template_w);
    for (int i = 0; i < fv_graph_blob_count(g); i++) {
        const struct fv_blob *b = fv_graph_blob(g, i);
        h = fv_fnv1a(h, b->data, b->count * sizeof *b->data);
    }
    int n = fv_graph_node_count(g);
    return fv_fnv1a(h, &n, sizeof n);
}

uint64_t fv_detector_hash(const struct fv_detector *det, uint64_t h)
{
    for (int i = 0; i < 3; i++)
        h = fv_model_hash(det->net[i], h);
    return h;
}
