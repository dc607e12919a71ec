/* pipeline.c - detection, face choice, alignment and flip-concatenated embeddings. */
#include "pipeline/pipeline.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gemm.h"
#include "pipeline/align.h"

struct fv_pipeline {
    struct fv_pipeline_params params;
    struct fv_detector *detector;
    struct fv_model *model;
    int embedding_tensor;
    int net_dim;  /* embedding size of one forward pass */
    float *proj_offset, *proj; /* components · mean, components */
    int proj_out;
};

struct fv_pipeline_worker {
    const struct fv_pipeline *pipe;
    struct fv_detector_context *detect;
    struct fv_context *embed;
    float *input; /* 2 × H × W × C */
    float *raw;   /* 2 × net_dim */
};

static const char *const policy_names[FV_FACE_POLICY_COUNT] = {"largest", "center", "all"};

const char *fv_face_policy_name(enum fv_face_policy p)
{
    return (unsigned)p < FV_FACE_POLICY_COUNT ? policy_names[p] : "unknown";
}

int fv_face_policy_from_name(const char *name)
{
    for (int i = 0; i < FV_FACE_POLICY_COUNT; i++)
        if (strcmp(name, policy_names[i]) == 0)
            return i;
    if (strcmp(name, "centre") == 0)
        return FV_FACE_CENTER;
    return -1;
}

static const char *const precision_names[] = {"auto", "fp32", "bf16"};

const char *fv_pipeline_precision_name(enum fv_pipeline_precision p)
{
    return (unsigned)p < 3 ? precision_names[p] : "?";
}

int fv_pipeline_precision_from_name(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, precision_names[i]) == 0)
            return i;
    return -1;
}

void fv_pipeline_default_params(struct fv_pipeline_params *p)
{
    fv_detect_default_params(&p->detect);
    fv_image_default_limits(&p->limits);
    p->precision = FV_PIPELINE_AUTO;
}

void fv_face_embeddings_free(struct fv_face_embedding *faces, int n)
{
    if (!faces)
        return;
    for (int i = 0; i < n; i++)
        free(faces[i].embedding);
    free(faces);
}

enum fv_status fv_pipeline_new(const char *detector_dir, const char *model_path,
                               const struct fv_pipeline_params *params, struct fv_pipeline **out,
                               struct fv_error *err)
{
    enum fv_status st;
    *out = NULL;
    if ((st = fv_detect_check_params(&params->detect, err)))
        return st;
    if ((unsigned)params->precision > FV_PIPELINE_BF16)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "unknown precision %d",
                            (int)params->precision);
    struct fv_pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory creating pipeline");
    p->params = *params;
    if ((st = fv_detector_load(detector_dir, &p->detector, err)) ||
        (st = fv_model_load(model_path, &p->model, err)))
        goto fail;
    if (params->precision == FV_PIPELINE_BF16 ||
        (params->precision == FV_PIPELINE_AUTO &&
         fv_model_cpu_level(p->model) == FV_CPU_AVX512_BF16)) {
        if ((st = fv_model_set_precision(p->model, FV_PRECISION_BF16, err)))
            goto fail;
    }
    const struct fv_model_meta *meta = fv_model_meta(p->model);
    p->embedding_tensor = meta->embedding[0] ? fv_model_find_tensor(p->model, meta->embedding) : -1;
    if (p->embedding_tensor < 0) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s: the model names no embedding tensor", model_path);
        goto fail;
    }
    if (meta->input_c != 3 || meta->template_h < 1 || meta->template_w < 1) {
        st = fv_error_set(err, FV_ERR_FORMAT,
                          "%s: an embedding model needs a 3-channel input and a template size",
                          model_path);
        goto fail;
    }
    if (meta->template_h != meta->input_h || meta->template_w != meta->input_w) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s: template %dx%d differs from input %dx%d",
                          model_path, meta->template_h, meta->template_w, meta->input_h,
                          meta->input_w);
        goto fail;
    }
    int shape[3];
    fv_model_tensor_shape(p->model, p->embedding_tensor, shape);
    p->net_dim = shape[0] * shape[1] * shape[2];
    *out = p;
    return FV_OK;
fail:
    fv_pipeline_free(p);
    return st;
}

void fv_pipeline_free(struct fv_pipeline *p)
{
    if (!p)
        return;
    fv_detector_free(p->detector);
    fv_model_free(p->model);
    free(p->proj_offset);
    free(p->proj);
    free(p);
}

enum fv_status fv_pipeline_set_projection(struct fv_pipeline *p, const float *mean,
                                          const float *components, int in_dim, int out_dim,
                                          struct fv_error *err)
{
    if (in_dim != 2 * p->net_dim)
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "projection expects %d-dimensional features but the model gives %d",
                            in_dim, 2 * p->net_dim);
    if (out_dim < 1 || out_dim > in_dim)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "projection to %d dimensions is out of range",
                            out_dim);
    float *m = malloc((size_t)out_dim * sizeof *m);
    float *c = malloc((size_t)in_dim * out_dim * sizeof *c);
    if (!m || !c) {
        free(m);
        free(c);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory installing projection");
    }
    memcpy(c, components, (size_t)in_dim * out_dim * sizeof *c);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out_dim, in_dim, 1.0f, c, in_dim, mean, 1, 0.0f, m, 1);
    free(p->proj_offset);
    free(p->proj);
    p->proj_offset = m;
    p->proj = c;
    p->proj_out = out_dim;
    return FV_OK;
}

const struct fv_model_meta *fv_pipeline_model_meta(const struct fv_pipeline *p)
{
    return fv_model_meta(p->model);
}
const struct fv_pipeline_params *fv_pipeline_params(const struct fv_pipeline *p)
{
    return &p->params;
}
int fv_pipeline_raw_dim(const struct fv_pipeline *p) { return 2 * p->net_dim; }
int fv_pipeline_dim(const struct fv_pipeline *p) { return p->proj ? p->proj_out : 2 * p->net_dim; }
int fv_pipeline_has_projection(const struct fv_pipeline *p) { return p->proj != NULL; }

float fv_pipeline_threshold(const struct fv_pipeline *p)
{
    float t = fv_model_meta(p->model)->threshold;
    return isnan(t) ? 0.5f : t;
}

enum fv_status fv_pipeline_worker_new(const struct fv_pipeline *p, struct fv_pipeline_worker **out,
                                      struct fv_error *err)
{
    enum fv_status st;
    const struct fv_model_meta *meta = fv_model_meta(p->model);
    *out = NULL;
    struct fv_pipeline_worker *w = calloc(1, sizeof *w);
    if (!w)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory creating worker");
    w->pipe = p;
    if ((st = fv_detector_context_new(p->detector, &w->detect, err)) ||
        (st = fv_context_new(p->model, 2, 0, 0, &w->embed, err)))
        goto fail;
    w->input = malloc((size_t)2 * meta->input_h * meta->input_w * meta->input_c * sizeof *w->input);
    w->raw = malloc((size_t)2 * p->net_dim * sizeof *w->raw);
    if (!w->input || !w->raw) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory creating worker");
        goto fail;
    }
    *out = w;
    return FV_OK;
fail:
    fv_pipeline_worker_free(w);
    return st;
}

void fv_pipeline_worker_free(struct fv_pipeline_worker *w)
{
    if (!w)
        return;
    fv_detector_context_free(w->detect);
    fv_context_free(w->embed);
    free(w->input);
    free(w->raw);
    free(w);
}

static float box_area(const struct fv_face *f)
{
    return (f->box[2] - f->box[0]) * (f->box[3] - f->box[1]);
}

enum fv_status fv_pipeline_detect_source(struct fv_pipeline_worker *w,
                                         struct fv_image_source *src, enum fv_face_policy policy,
                                         struct fv_face **faces, int *n, struct fv_error *err)
{
    const struct fv_image_info *info = fv_image_source_info(src);
    enum fv_status st = fv_detect_source(w->detect, src, &w->pipe->params.detect, faces, n, err);
    if (st || *n <= 1 || policy == FV_FACE_ALL)
        return st;
    int best = 0;
    float best_value = -INFINITY;
    for (int i = 0; i < *n; i++) {
        const struct fv_face *f = &(*faces)[i];
        float value = box_area(f);
        if (policy == FV_FACE_CENTER) {
            /* FaceNet's choice for pre-cropped data sets: size minus twice the squared
             * distance of the box centre from the image centre. */
            float dx = (f->box[0] + f->box[2]) * 0.5f - info->width * 0.5f;
            float dy = (f->box[1] + f->box[3]) * 0.5f - info->height * 0.5f;
            value -= 2.0f * (dx * dx + dy * dy);
        }
        if (value > best_value)
            best_value = value, best = i;
    }
    (*faces)[0] = (*faces)[best];
    *n = 1;
    return FV_OK;
}

/* Runs fn over a source wrapping img. */
#define WITH_SOURCE(img, src, st, call)                                                            \
    do {                                                                                           \
        struct fv_image_source *src = NULL;                                                        \
        if (((st) = fv_image_source_wrap((img), &src, err)) == FV_OK)                               \
            (st) = (call);                                                                         \
        fv_image_source_free(src);                                                                 \
    } while (0)

enum fv_status fv_pipeline_detect(struct fv_pipeline_worker *w, const struct fv_image *img,
                                  enum fv_face_policy policy, struct fv_face **faces, int *n,
                                  struct fv_error *err)
{
    enum fv_status st;
    *faces = NULL;
    *n = 0;
    WITH_SOURCE(img, src, st, fv_pipeline_detect_source(w, src, policy, faces, n, err));
    return st;
}

enum fv_status fv_pipeline_align_source(const struct fv_pipeline *p, struct fv_image_source *src,
                                        const float landmarks[5][2], struct fv_image **crop,
                                        struct fv_error *err)
{
    const struct fv_model_meta *meta = fv_model_meta(p->model);
    float tpl[5][2], m[2][3];
    *crop = NULL;
    fv_align_template(meta->template_h, meta->template_w, tpl);
    if (fv_similarity_estimate(landmarks, (const float(*)[2])tpl, 5, m) != FV_OK)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "landmarks are degenerate or not finite");
    double det = (double)m[0][0] * m[1][1] - (double)m[0][1] * m[1][0];
    if (!(fabs(det) > 1e-12) || !isfinite(det))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "landmarks give a singular transform");
    const struct fv_image *full = fv_image_source_full(src);
    struct fv_image *region = NULL;
    if (!full) {
        /* Read only the region the crop covers, at a scale where the face is at
         * least twice the crop's size (2 source pixels per crop pixel). */
        double scale = fmin(1.0, 2.0 * sqrt(fabs(det)));
        double i00 = m[1][1] / det, i01 = -m[0][1] / det, i10 = -m[1][0] / det,
               i11 = m[0][0] / det;
        double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
        for (int c = 0; c < 4; c++) {
            double u = (c & 1) ? meta->input_w : 0, v = (c & 2) ? meta->input_h : 0;
            u -= m[0][2], v -= m[1][2];
            double x = i00 * u + i01 * v, y = i10 * u + i11 * v;
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
        double margin = 2.0 / scale + 2;
        x0 = fmax(x0 - margin, -1e9), y0 = fmax(y0 - margin, -1e9);
        x1 = fmin(x1 + margin, 1e9), y1 = fmin(y1 + margin, 1e9);
        struct fv_image_window win;
        enum fv_status st = fv_image_source_read(src, (float)scale, (int)floor(x0), (int)floor(y0),
                                                 (int)(ceil(x1) - floor(x0)),
                                                 (int)(ceil(y1) - floor(y0)), &region, &win, err);
        if (st == FV_ERR_INVALID_ARG) /* the face lies wholly outside the image */
            return fv_error_set(err, FV_ERR_INVALID_ARG, "landmarks lie outside the image");
        if (st)
            return st;
        /* Region pixel r is at full-size coordinate (r + win.x + 0.5) / f - 0.5. */
        double f = win.scale, ox = (win.x + 0.5) / f - 0.5, oy = (win.y + 0.5) / f - 0.5;
        for (int r = 0; r < 2; r++) {
            m[r][2] = (float)(m[r][0] * ox + m[r][1] * oy + m[r][2]);
            m[r][0] = (float)(m[r][0] / f);
            m[r][1] = (float)(m[r][1] / f);
        }
        full = region;
    }
    *crop = fv_align_warp(full, m, meta->input_h, meta->input_w);
    fv_image_free(region);
    if (!*crop)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory aligning a face");
    return FV_OK;
}

enum fv_status fv_pipeline_align(const struct fv_pipeline *p, const struct fv_image *img,
                                 const float landmarks[5][2], struct fv_image **crop,
                                 struct fv_error *err)
{
    enum fv_status st;
    *crop = NULL;
    WITH_SOURCE(img, src, st, fv_pipeline_align_source(p, src, landmarks, crop, err));
    return st;
}

static void normalise(const struct fv_image *img, const struct fv_model_meta *meta, float *dst)
{
    size_t n = (size_t)img->width * img->height * 3;
    for (size_t i = 0; i < n; i++)
        dst[i] = ((float)img->rgb[i] - meta->pixel_mean) * meta->pixel_scale;
}

void fv_pipeline_finish(const struct fv_pipeline *p, const float *raw, float *out)
{
    int dim = fv_pipeline_dim(p);
    if (p->proj) {
        /* components · (x − mean) = components · x − components · mean, the latter
         * computed once when the projection was installed. */
        int in = 2 * p->net_dim;
        memcpy(out, p->proj_offset, (size_t)dim * sizeof *out);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, p->proj_out, in, 1.0f, p->proj, in, raw, 1, -1.0f,
                    out, 1);
    } else {
        memcpy(out, raw, (size_t)dim * sizeof *out);
    }
    double norm = 0;
    for (int i = 0; i < dim; i++)
        norm += (double)out[i] * out[i];
    norm = sqrt(norm);
    if (norm > 0)
        for (int i = 0; i < dim; i++)
            out[i] = (float)(out[i] / norm);
}

enum fv_status fv_pipeline_embed_source(struct fv_pipeline_worker *w,
                                        struct fv_image_source *src, const float landmarks[5][2],
                                        float *raw, float *out, struct fv_error *err)
{
    const struct fv_pipeline *p = w->pipe;
    const struct fv_model_meta *meta = fv_model_meta(p->model);
    struct fv_image *crop = NULL, *mirror = NULL;
    enum fv_status st = fv_pipeline_align_source(p, src, landmarks, &crop, err);
    if (st)
        return st;
    mirror = fv_image_mirror(crop);
    if (!mirror) {
        fv_image_free(crop);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory mirroring face");
    }
    size_t per = (size_t)meta->input_h * meta->input_w * 3;
    normalise(crop, meta, w->input);
    normalise(mirror, meta, w->input + per);
    fv_image_free(crop);
    fv_image_free(mirror);
    if ((st = fv_context_run(w->embed, w->input, 2, meta->input_h, meta->input_w, err)))
        return st;
    const float *e = fv_context_tensor(w->embed, p->embedding_tensor, NULL);
    memcpy(w->raw, e, (size_t)2 * p->net_dim * sizeof *w->raw);
    if (raw)
        memcpy(raw, w->raw, (size_t)2 * p->net_dim * sizeof *raw);
    if (out)
        fv_pipeline_finish(p, w->raw, out);
    return FV_OK;
}

enum fv_status fv_pipeline_embed_landmarks(struct fv_pipeline_worker *w,
                                           const struct fv_image *img,
                                           const float landmarks[5][2], float *raw, float *out,
                                           struct fv_error *err)
{
    enum fv_status st;
    WITH_SOURCE(img, src, st, fv_pipeline_embed_source(w, src, landmarks, raw, out, err));
    return st;
}

enum fv_status fv_pipeline_process(struct fv_pipeline_worker *w, const struct fv_image *img,
                                   enum fv_face_policy policy, struct fv_face_embedding **faces,
                                   int *n, struct fv_error *err)
{
    enum fv_status st;
    *faces = NULL;
    *n = 0;
    WITH_SOURCE(img, src, st, fv_pipeline_process_source(w, src, policy, faces, n, err));
    return st;
}

enum fv_status fv_pipeline_process_source(struct fv_pipeline_worker *w,
                                          struct fv_image_source *src, enum fv_face_policy policy,
                                          struct fv_face_embedding **faces, int *n,
                                          struct fv_error *err)
{
    struct fv_face *found = NULL;
    int count = 0;
    *faces = NULL;
    *n = 0;
    enum fv_status st = fv_pipeline_detect_source(w, src, policy, &found, &count, err);
    if (st)
        return st;
    if (count == 0)
        return fv_error_set(err, FV_ERR_NO_FACE, "no face found");
    struct fv_face_embedding *out = calloc((size_t)count, sizeof *out);
    if (!out) {
        free(found);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory embedding faces");
    }
    int dim = fv_pipeline_dim(w->pipe);
    for (int i = 0; i < count; i++) {
        out[i].face = found[i];
        out[i].embedding = malloc((size_t)dim * sizeof *out[i].embedding);
        if (!out[i].embedding) {
            st = fv_error_set(err, FV_ERR_NOMEM, "out of memory embedding faces");
            break;
        }
        st = fv_pipeline_embed_source(w, src, (const float(*)[2])found[i].landmarks, NULL,
                                      out[i].embedding, err);
        if (st)
            break;
    }
    free(found);
    if (st) {
        fv_face_embeddings_free(out, count);
        return st;
    }
    *faces = out;
    *n = count;
    return FV_OK;
}

enum fv_cpu_level fv_pipeline_cpu_level(const struct fv_pipeline *p)
{
    return fv_model_cpu_level(p->model);
}

enum fv_precision fv_pipeline_precision(const struct fv_pipeline *p)
{
    return fv_model_precision(p->model);
}

uint64_t fv_pipeline_fingerprint(const struct fv_pipeline *p)
{
    uint64_t h = 14695981039346656037ULL;
    h = fv_detector_hash(p->detector, h);
    h = fv_model_hash(p->model, h);
    h ^= (uint64_t)fv_model_precision(p->model) + 1;
    h *= 1099511628211ULL;
    const unsigned char *d = (const unsigned char *)&p->params.detect;
    for (size_t i = 0; i < sizeof p->params.detect; i++) {
        h ^= d[i];
        h *= 1099511628211ULL;
    }
    return h;
}

float fv_cosine(const float *a, const float *b, int dim)
{
    double dot = 0, na = 0, nb = 0;
    for (int i = 0; i < dim; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    if (na == 0 || nb == 0)
        return 0.0f;
    return (float)(dot / sqrt(na * nb));
}
