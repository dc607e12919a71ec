/* handlers.c - the route handlers: verify, embed, detect and the cheap GET routes. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/base64.h"
#include "api/multipart.h"
#include "api/routes.h"
#include "pipeline/pipeline.h"

#define MAX_PARTS 64

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double round_to(double v, double scale)
{
    return round(v * scale) / scale;
}

/* ---- request bodies: JSON or multipart/form-data, read through one interface ---- */

struct input {
    cJSON *json; /* the body's object, or NULL for multipart */
    struct fv_multipart_part parts[MAX_PARTS];
    int n_parts;
};

static void input_free(struct input *in)
{
    cJSON_Delete(in->json);
    in->json = NULL;
}

/* 0, or an HTTP status with the reply filled in. */
static int input_parse(const struct fv_request *req, struct input *in, struct fv_reply *r)
{
    memset(in, 0, sizeof *in);
    if (strncasecmp(req->content_type, "multipart/form-data", 19) == 0) {
        char boundary[FV_MULTIPART_BOUNDARY_MAX + 1];
        if (fv_multipart_boundary(req->content_type, boundary))
            return fv_reply_error(r, 400, FV_API_CODE_BAD_MULTIPART, NULL,
                                  "multipart/form-data needs a valid boundary parameter");
        struct fv_error err = {0};
        enum fv_status st = fv_multipart_parse(req->body, req->body_size, boundary, in->parts,
                                               MAX_PARTS, &in->n_parts, &err);
        if (st)
            return fv_reply_error(r, st == FV_ERR_TOO_LARGE ? 413 : 400,
                                  st == FV_ERR_TOO_LARGE ? FV_API_CODE_TOO_MANY_PARTS
                                                         : FV_API_CODE_BAD_MULTIPART,
                                  NULL, "%s", err.message);
        return 0;
    }
    if (req->body_size == 0)
        return fv_reply_error(r, 400, FV_API_CODE_BAD_JSON, NULL, "the request body is empty");
    const char *end = NULL;
    in->json = cJSON_ParseWithLengthOpts((const char *)req->body, req->body_size, &end, 0);
    if (!in->json) {
        size_t at = end ? (size_t)(end - (const char *)req->body) : 0;
        return fv_reply_error(r, 400, FV_API_CODE_BAD_JSON, NULL, "malformed JSON near byte %zu",
                              at);
    }
    if (!cJSON_IsObject(in->json)) {
        input_free(in);
        return fv_reply_error(r, 400, FV_API_CODE_BAD_JSON, NULL,
                              "the JSON body must be an object");
    }
    return 0;
}

/* A text field (JSON string, or a multipart part's bytes) into buf: 1 present,
 * 0 absent, or -status with the reply filled in. JSON non-strings are an error. */
static int input_text(const struct input *in, const char *name, char *buf, size_t cap,
                      struct fv_reply *r)
{
    if (in->json) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in->json, name);
        if (!v || cJSON_IsNull(v))
            return 0;
        if (!cJSON_IsString(v))
            return -fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, name, "%s must be a string",
                                   name);
        snprintf(buf, cap, "%s", v->valuestring);
        return 1;
    }
    const struct fv_multipart_part *p = fv_multipart_find(in->parts, in->n_parts, name);
    if (!p)
        return 0;
    if (p->size >= cap)
        return -fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, name, "%s is too long", name);
    memcpy(buf, p->data, p->size);
    buf[p->size] = 0;
    return 1;
}

/* The policy option: default when absent; "all" only where allow_all. */
static int input_policy(const struct input *in, enum fv_face_policy fallback, int allow_all,
                        enum fv_face_policy *out, struct fv_reply *r)
{
    char text[32];
    int got = input_text(in, "policy", text, sizeof text, r);
    if (got < 0)
        return -got;
    *out = fallback;
    if (!got)
        return 0;
    int p = fv_face_policy_from_name(text);
    if (p < 0 || (p == FV_FACE_ALL && !allow_all))
        return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, "policy",
                              "policy must be %s, not '%s'",
                              allow_all ? "largest, center or all" : "largest or center", text);
    *out = (enum fv_face_policy)p;
    return 0;
}

static int input_bool(const struct input *in, const char *name, int *out, struct fv_reply *r)
{
    *out = 0;
    if (in->json) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in->json, name);
        if (!v || cJSON_IsNull(v))
            return 0;
        if (!cJSON_IsBool(v))
            return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, name,
                                  "%s must be true or false", name);
        *out = cJSON_IsTrue(v);
        return 0;
    }
    char text[16];
    int got = input_text(in, name, text, sizeof text, r);
    if (got < 0)
        return -got;
    if (!got)
        return 0;
    if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
        *out = 1;
    else if (strcmp(text, "false") != 0 && strcmp(text, "0") != 0)
        return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, name, "%s must be true or false",
                              name);
    return 0;
}

/* A face index (a non-negative integer; a number or digits in multipart):
 * *out is -1 when absent. 0, or the HTTP status with the reply filled in. */
static int input_index(const struct input *in, const char *name, int *out, struct fv_reply *r)
{
    *out = -1;
    double v;
    if (in->json) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(in->json, name);
        if (!t || cJSON_IsNull(t))
            return 0;
        if (!cJSON_IsNumber(t))
            return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, name,
                                  "%s must be a face index (0, 1, ...)", name);
        v = t->valuedouble;
    } else {
        char text[32], *end;
        int got = input_text(in, name, text, sizeof text, r);
        if (got < 0)
            return -got;
        if (!got)
            return 0;
        v = strtod(text, &end);
        if (end == text || *end)
            return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, name,
                                  "%s must be a face index (0, 1, ...)", name);
    }
    if (!(v >= 0 && v <= 100000) || v != floor(v))
        return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, name,
                              "%s must be a face index (0, 1, ...), not %g", name, v);
    *out = (int)v;
    return 0;
}

/* The threshold option, or the server's default (the model's when unset). */
static int input_threshold(const struct fv_handler_env *env, const struct input *in, float *out,
                           struct fv_reply *r)
{
    *out = isnan(env->config->threshold) ? fv_pipeline_threshold(env->pipeline)
                                         : env->config->threshold;
    double v;
    if (in->json) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(in->json, "threshold");
        if (!t || cJSON_IsNull(t))
            return 0;
        if (!cJSON_IsNumber(t))
            return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, "threshold",
                                  "threshold must be a number between -1 and 1");
        v = t->valuedouble;
    } else {
        char text[64], *end;
        int got = input_text(in, "threshold", text, sizeof text, r);
        if (got < 0)
            return -got;
        if (!got)
            return 0;
        v = strtod(text, &end);
        if (end == text || *end)
            return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, "threshold",
                                  "threshold must be a number between -1 and 1");
    }
    if (!(v >= -1 && v <= 1))
        return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, "threshold",
                              "threshold must be between -1 and 1, not %g", v);
    *out = (float)v;
    return 0;
}

/* Whether the body has a (non-null) field or part with this name. */
static int input_has(const struct input *in, const char *name)
{
    if (in->json) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in->json, name);
        return v && !cJSON_IsNull(v);
    }
    return fv_multipart_find(in->parts, in->n_parts, name) != NULL;
}

/* Encoded image bytes: points into the body (multipart) or owns decoded base64. */
struct blob {
    const uint8_t *data;
    size_t size;
    uint8_t *owned;
};

static int blob_from_base64(const cJSON *v, const char *field, struct blob *b, struct fv_reply *r)
{
    int status = fv_api_image_from_json(v, field, &b->owned, &b->size, r);
    b->data = b->owned;
    return status;
}

/* 1 present, 0 absent, -status on error. */
static int input_image(const struct input *in, const char *field, struct blob *b,
                       struct fv_reply *r)
{
    memset(b, 0, sizeof *b);
    if (in->json) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in->json, field);
        if (!v || cJSON_IsNull(v))
            return 0;
        int st = blob_from_base64(v, field, b, r);
        return st ? -st : 1;
    }
    const struct fv_multipart_part *p = fv_multipart_find(in->parts, in->n_parts, field);
    if (!p)
        return 0;
    b->data = p->data;
    b->size = p->size;
    return 1;
}

/* An embedding of exactly dim finite numbers: 1 present, 0 absent, -status on error. */
static int input_embedding(const struct input *in, const char *field, int dim, float *out,
                           struct fv_reply *r)
{
    cJSON *parsed = NULL;
    const cJSON *v;
    if (in->json) {
        v = cJSON_GetObjectItemCaseSensitive(in->json, field);
    } else {
        const struct fv_multipart_part *p = fv_multipart_find(in->parts, in->n_parts, field);
        if (!p)
            return 0;
        v = parsed = cJSON_ParseWithLength((const char *)p->data, p->size);
        if (!parsed) {
            return -fv_reply_error(r, 400, FV_API_CODE_BAD_JSON, field, "%s is not a JSON array",
                                   field);
        }
    }
    int status = 0;
    if (!v || cJSON_IsNull(v))
        goto done;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != dim) {
        status = fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, field,
                                "%s must be an array of %d numbers", field, dim);
        goto done;
    }
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, v)
    {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > 1e30) {
            status = fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, field,
                                    "%s[%d] is not a finite number", field, i);
            goto done;
        }
        out[i++] = (float)x->valuedouble;
    }
    cJSON_Delete(parsed);
    return 1;
done:
    cJSON_Delete(parsed);
    return status ? -status : 0;
}

/* Opens an image (the blob must outlive *img); on failure fills the reply
 * (naming field) and returns its status. */
static int decode_image(const struct fv_handler_env *env, const struct blob *b, const char *field,
                        struct fv_image_source **img, struct fv_reply *r)
{
    struct fv_error err = {0};
    enum fv_status st = fv_image_source_open(b->data, b->size,
                                             &fv_pipeline_params(env->pipeline)->limits, img, &err);
    if (!st)
        return 0;
    enum fv_api_code code;
    int status = fv_reply_status_of(st, &code);
    return fv_reply_error(r, status, code, field, "%s: %s", field,
                          err.message[0] ? err.message : fv_status_str(st));
}

static int pipeline_error(enum fv_status st, const struct fv_error *err, const char *field,
                          struct fv_reply *r)
{
    if (st == FV_ERR_NO_FACE)
        return fv_reply_error(r, 422, FV_API_CODE_NO_FACE, field, "no face found in %s", field);
    enum fv_api_code code;
    int status = fv_reply_status_of(st, &code);
    return fv_reply_error(r, status, code, field, "%s: %s", field,
                          err->message[0] ? err->message : fv_status_str(st));
}

static cJSON *embedding_json(const float *e, int dim)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < dim; i++)
        if (!cJSON_AddItemToArray(a, cJSON_CreateNumber(round_to(e[i], 1e7)))) {
            cJSON_Delete(a);
            return NULL;
        }
    return a;
}

static void add_model_fields(const struct fv_handler_env *env, cJSON *root)
{
    cJSON_AddStringToObject(root, "model", fv_pipeline_model_meta(env->pipeline)->name);
}

/* ---- POST /v1/verify ---- */

struct side {
    const char *image_field, *embedding_field, *face_field;
    int face_index;                  /* the face asked for (face1/face2), -1: by policy */
    int from_image;
    struct fv_face_embedding *faces; /* from the image */
    int n_faces;
    int chosen;                      /* index into faces */
    float *embedding;                /* the one compared */
    double decode_ms, process_ms;
};

/* The face at s->face_index of every face found (the order of /v1/detect with
 * policy all), alone in s->faces. FV_ERR_INVALID_ARG with the reply filled in
 * when there are fewer faces; other failures are the pipeline's. */
static enum fv_status embed_chosen(const struct fv_handler_env *env, struct fv_image_source *img,
                                   struct side *s, struct fv_reply *r, struct fv_error *err)
{
    struct fv_face *found = NULL;
    int n = 0;
    enum fv_status st = fv_pipeline_detect_source(env->worker, img, FV_FACE_ALL, &found, &n, err);
    if (st)
        goto done;
    if (s->face_index >= n) {
        fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, s->face_field,
                       "%s is %d but %s has %d face%s (0 to %d)", s->face_field, s->face_index,
                       s->image_field, n, n == 1 ? "" : "s", n - 1);
        st = FV_ERR_INVALID_ARG;
        goto done;
    }
    s->faces = calloc(1, sizeof *s->faces);
    float *e = malloc((size_t)fv_pipeline_dim(env->pipeline) * sizeof *e);
    if (!s->faces || !e) {
        free(e);
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    s->faces[0].face = found[s->face_index];
    s->faces[0].embedding = e;
    s->n_faces = 1;
    st = fv_pipeline_embed_source(env->worker, img,
                                  (const float(*)[2])found[s->face_index].landmarks, NULL, e, err);
done:
    free(found);
    return st;
}

static int load_side(const struct fv_handler_env *env, const struct input *in, struct side *s,
                     enum fv_face_policy policy, float *buffer, struct fv_reply *r)
{
    int dim = fv_pipeline_dim(env->pipeline);
    struct blob b;
    int has_image = input_image(in, s->image_field, &b, r);
    if (has_image < 0)
        goto fail;
    int has_embedding = input_embedding(in, s->embedding_field, dim, buffer, r);
    if (has_embedding < 0)
        goto fail;
    if (has_image && has_embedding) {
        fv_reply_error(r, 400, FV_API_CODE_INVALID_FIELD, s->image_field, "give %s or %s, not both",
                       s->image_field, s->embedding_field);
        goto fail;
    }
    if (!has_image && !has_embedding) {
        fv_reply_error(r, 400, FV_API_CODE_MISSING_FIELD, s->image_field, "%s (or %s) is required",
                       s->image_field, s->embedding_field);
        goto fail;
    }
    if (has_embedding) {
        s->embedding = buffer;
        return 0;
    }
    s->from_image = 1;
    struct fv_image_source *img = NULL;
    double t0 = now_ms();
    if (decode_image(env, &b, s->image_field, &img, r))
        goto fail;
    double t1 = now_ms();
    struct fv_error err = {0};
    enum fv_status st =
        s->face_index < 0
            ? fv_pipeline_process_source(env->worker, img, policy, &s->faces, &s->n_faces, &err)
            : embed_chosen(env, img, s, r, &err);
    fv_image_source_free(img);
    if (st == FV_ERR_INVALID_ARG && r->status) /* the index is out of range: answered */
        goto fail;
    s->decode_ms = t1 - t0;
    s->process_ms = now_ms() - t1;
    free(b.owned);
    b.owned = NULL;
    if (st) {
        pipeline_error(st, &err, s->image_field, r);
        goto fail;
    }
    s->embedding = s->faces[0].embedding;
    return 0;
fail:
    free(b.owned);
    return r->status;
}

/* image2's side of a verify, run as a side job: on another worker when one is
 * idle, else after image1 on this one. Its reply is its own, so the two sides
 * never write one reply at once. */
struct side_task {
    const struct fv_handler_env *env;
    const struct input *in;
    struct side *side;
    float *buffer;
    struct fv_reply reply;
    int status;
};

static void run_side(void *arg, struct fv_pipeline_worker *worker)
{
    struct side_task *t = arg;
    struct fv_handler_env env = *t->env;
    env.worker = worker;
    t->status = load_side(&env, t->in, t->side, FV_FACE_ALL, t->buffer, &t->reply);
}

void fv_handle_verify(const struct fv_handler_env *env, const struct fv_request *req,
                      struct fv_reply *r)
{
    double t_start = now_ms();
    int dim = fv_pipeline_dim(env->pipeline);
    struct input in;
    struct side a = {"image1", "embedding1", "face1", -1, 0, NULL, 0, 0, NULL, 0, 0};
    struct side b = {"image2", "embedding2", "face2", -1, 0, NULL, 0, 0, NULL, 0, 0};
    float *buffers = malloc((size_t)2 * dim * sizeof *buffers);
    if (!buffers) {
        fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
        return;
    }
    if (input_parse(req, &in, r)) {
        free(buffers);
        return;
    }
    /* Both sides must be there before either is decoded and run. */
    const struct side *sides[2] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        if (!input_has(&in, sides[i]->image_field) && !input_has(&in, sides[i]->embedding_field)) {
            fv_reply_error(r, 400, FV_API_CODE_MISSING_FIELD, sides[i]->image_field,
                           "%s (or %s) is required", sides[i]->image_field,
                           sides[i]->embedding_field);
            goto done;
        }
    }
    enum fv_face_policy policy;
    float threshold;
    int return_embeddings;
    if (input_policy(&in, env->config->policy, 0, &policy, r) ||
        input_threshold(env, &in, &threshold, r) ||
        input_bool(&in, "return_embeddings", &return_embeddings, r) ||
        input_index(&in, a.face_field, &a.face_index, r) ||
        input_index(&in, b.face_field, &b.face_index, r))
        goto done;
    for (int i = 0; i < 2; i++)
        if (sides[i]->face_index >= 0 && !input_has(&in, sides[i]->image_field)) {
            fv_reply_error(r, 400, FV_API_CODE_INVALID_FIELD, sides[i]->face_field,
                           "%s picks a face of %s, which is not given", sides[i]->face_field,
                           sides[i]->image_field);
            goto done;
        }
    /* Two images: image2 goes to an idle worker, if there is one, while this one
     * does image1; the answer is the same either way. */
    struct side_task task = {env, &in, &b, buffers + dim, {0}, 0};
    struct fv_side_job job = {run_side, &task, 0, 0, NULL};
    int offered = input_has(&in, a.image_field) && input_has(&in, b.image_field) &&
                  fv_side_job_offer(env, &job);
    int failed = load_side(env, &in, &a, policy, buffers, r);
    if (offered)
        fv_side_job_join(env, &job);
    else if (!failed)
        run_side(&task, env->worker);
    if (!failed && task.status) {
        fv_reply_clear(r);
        *r = task.reply; /* image2's error, which becomes the answer */
        task.reply = (struct fv_reply){0};
    }
    fv_reply_clear(&task.reply);
    if (failed || task.status)
        goto done;
    if (job.ran_elsewhere)
        fv_metrics_verify_split(env->metrics);
    fv_metrics_faces(env->metrics, a.n_faces + b.n_faces);

    /* image2 is searched: every face in it is scored, the best one is face2. */
    float score = fv_cosine(a.embedding, b.embedding, dim);
    if (b.from_image) {
        for (int i = 0; i < b.n_faces; i++) {
            float s = fv_cosine(a.embedding, b.faces[i].embedding, dim);
            if (i == 0 || s > score) {
                score = s;
                b.chosen = i;
            }
        }
        b.embedding = b.faces[b.chosen].embedding;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "score", round_to(score, 1e6));
    cJSON_AddBoolToObject(root, "match", score >= threshold);
    cJSON_AddNumberToObject(root, "threshold", round_to(threshold, 1e6));
    if (a.from_image)
        cJSON_AddItemToObject(root, "face1", fv_api_face_json(&a.faces[a.chosen].face));
    if (b.from_image)
        cJSON_AddItemToObject(root, "face2", fv_api_face_json(&b.faces[b.chosen].face));
    if (b.from_image && b.n_faces > 1) {
        cJSON *matches = cJSON_AddArrayToObject(root, "matches");
        for (int i = 0; i < b.n_faces; i++) {
            float s = fv_cosine(a.embedding, b.faces[i].embedding, dim);
            cJSON *m = cJSON_CreateObject();
            cJSON_AddItemToObject(m, "face", fv_api_face_json(&b.faces[i].face));
            cJSON_AddNumberToObject(m, "score", round_to(s, 1e6));
            cJSON_AddBoolToObject(m, "match", s >= threshold);
            cJSON_AddItemToArray(matches, m);
        }
    }
    if (return_embeddings) {
        cJSON_AddItemToObject(root, "embedding1", embedding_json(a.embedding, dim));
        cJSON_AddItemToObject(root, "embedding2", embedding_json(b.embedding, dim));
    }
    add_model_fields(env, root);
    cJSON *t = cJSON_AddObjectToObject(root, "timings_ms");
    cJSON_AddNumberToObject(t, "decode", round_to(a.decode_ms + b.decode_ms, 10));
    cJSON_AddNumberToObject(t, "image1", round_to(a.process_ms, 10));
    cJSON_AddNumberToObject(t, "image2", round_to(b.process_ms, 10));
    cJSON_AddNumberToObject(t, "total", round_to(now_ms() - t_start, 10));
    fv_reply_json(r, 200, root);
done:
    fv_face_embeddings_free(a.faces, a.n_faces);
    fv_face_embeddings_free(b.faces, b.n_faces);
    free(buffers);
    input_free(&in);
}

/* ---- POST /v1/embed and /v1/detect ---- */

/* Collects the images of a single or batch request: JSON "image" or "images",
 * multipart parts named "image" or "images" (several make a batch). */
struct image_list {
    struct blob *blobs;
    int n, batch;
};

static void image_list_free(struct image_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->blobs[i].owned);
    free(l->blobs);
    memset(l, 0, sizeof *l);
}

static int input_images(const struct fv_handler_env *env, const struct input *in,
                        struct image_list *l, struct fv_reply *r)
{
    memset(l, 0, sizeof *l);
    int max = env->config->max_batch;
    if (in->json) {
        const cJSON *one = cJSON_GetObjectItemCaseSensitive(in->json, "image");
        const cJSON *many = cJSON_GetObjectItemCaseSensitive(in->json, "images");
        if (one && many)
            return fv_reply_error(r, 400, FV_API_CODE_INVALID_FIELD, "images",
                                  "give image or images, not both");
        if (!one && !many)
            return fv_reply_error(r, 400, FV_API_CODE_MISSING_FIELD, "image",
                                  "image (or images) is required");
        if (many) {
            if (!cJSON_IsArray(many) || cJSON_GetArraySize(many) < 1)
                return fv_reply_error(r, 400, FV_API_CODE_INVALID_FIELD, "images",
                                      "images must be a non-empty array of base64 strings");
            if (cJSON_GetArraySize(many) > max)
                return fv_reply_error(r, 413, FV_API_CODE_TOO_MANY_IMAGES, "images",
                                      "at most %d images per request", max);
            l->batch = 1;
        }
        int count = many ? cJSON_GetArraySize(many) : 1;
        l->blobs = calloc((size_t)count, sizeof *l->blobs);
        if (!l->blobs)
            return fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
        const cJSON *v = many ? many->child : one;
        for (; l->n < count; l->n++, v = v->next)
            if (blob_from_base64(v, many ? "images" : "image", &l->blobs[l->n], r)) {
                l->n++;
                return r->status;
            }
        return 0;
    }
    int count = 0;
    for (int i = 0; i < in->n_parts; i++)
        count += strcmp(in->parts[i].name, "image") == 0 || strcmp(in->parts[i].name, "images") == 0;
    if (count == 0)
        return fv_reply_error(r, 400, FV_API_CODE_MISSING_FIELD, "image",
                              "a part named image is required");
    if (count > max)
        return fv_reply_error(r, 413, FV_API_CODE_TOO_MANY_IMAGES, "images",
                              "at most %d images per request", max);
    l->blobs = calloc((size_t)count, sizeof *l->blobs);
    if (!l->blobs)
        return fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
    for (int i = 0; i < in->n_parts; i++) {
        if (strcmp(in->parts[i].name, "image") == 0 || strcmp(in->parts[i].name, "images") == 0) {
            l->blobs[l->n].data = in->parts[i].data;
            l->blobs[l->n++].size = in->parts[i].size;
            if (strcmp(in->parts[i].name, "images") == 0)
                l->batch = 1;
        }
    }
    l->batch |= count > 1;
    return 0;
}

/* One image's result as an object ({width, height, faces} or its error), and
 * the HTTP status it would have alone. */
static cJSON *one_image(const struct fv_handler_env *env, const struct blob *b, const char *field,
                        enum fv_face_policy policy, int with_embeddings, int *status,
                        struct fv_reply *scratch)
{
    int dim = fv_pipeline_dim(env->pipeline);
    struct fv_image_source *img = NULL;
    *status = decode_image(env, b, field, &img, scratch);
    if (*status)
        return NULL;
    struct fv_error err = {0};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "width", fv_image_source_info(img)->width);
    cJSON_AddNumberToObject(o, "height", fv_image_source_info(img)->height);
    cJSON *faces_json = cJSON_AddArrayToObject(o, "faces");
    enum fv_status st;
    int n = 0;
    if (with_embeddings) {
        struct fv_face_embedding *faces = NULL;
        st = fv_pipeline_process_source(env->worker, img, policy, &faces, &n, &err);
        for (int i = 0; !st && i < n; i++) {
            cJSON *f = fv_api_face_json(&faces[i].face);
            cJSON_AddItemToObject(f, "embedding", embedding_json(faces[i].embedding, dim));
            cJSON_AddItemToArray(faces_json, f);
        }
        fv_face_embeddings_free(faces, n);
    } else {
        struct fv_face *faces = NULL;
        st = fv_pipeline_detect_source(env->worker, img, policy, &faces, &n, &err);
        if (st == FV_ERR_NO_FACE)
            st = FV_OK, n = 0; /* detection finding nothing is an answer, not an error */
        for (int i = 0; !st && i < n; i++)
            cJSON_AddItemToArray(faces_json, fv_api_face_json(&faces[i]));
        free(faces);
    }
    fv_image_source_free(img);
    if (st) {
        cJSON_Delete(o);
        *status = pipeline_error(st, &err, field, scratch);
        return NULL;
    }
    fv_metrics_faces(env->metrics, n);
    return o;
}

static void embed_or_detect(const struct fv_handler_env *env, const struct fv_request *req,
                            struct fv_reply *r, int with_embeddings)
{
    double t_start = now_ms();
    struct input in;
    struct image_list images = {0};
    if (input_parse(req, &in, r))
        return;
    enum fv_face_policy policy;
    if (input_policy(&in, with_embeddings ? env->config->policy : FV_FACE_ALL, 1, &policy, r) ||
        input_images(env, &in, &images, r))
        goto done;
    cJSON *root = cJSON_CreateObject();
    add_model_fields(env, root);
    if (with_embeddings) {
        cJSON_AddNumberToObject(root, "dim", fv_pipeline_dim(env->pipeline));
        cJSON_AddBoolToObject(root, "pca", fv_pipeline_has_projection(env->pipeline));
    }
    cJSON_AddStringToObject(root, "policy", fv_face_policy_name(policy));
    if (!images.batch) {
        int status;
        cJSON *o = one_image(env, &images.blobs[0], "image", policy, with_embeddings, &status, r);
        if (!o) {
            cJSON_Delete(root);
            goto done;
        }
        /* Move the single result's fields up: {model, ..., width, height, faces}. */
        while (o->child) {
            cJSON *item = cJSON_DetachItemViaPointer(o, o->child);
            cJSON_AddItemToObject(root, item->string, item);
        }
        cJSON_Delete(o);
    } else {
        cJSON *results = cJSON_AddArrayToObject(root, "results");
        for (int i = 0; i < images.n; i++) {
            char field[32];
            snprintf(field, sizeof field, "images[%d]", i);
            struct fv_reply scratch = {0};
            int status;
            cJSON *o = one_image(env, &images.blobs[i], field, policy, with_embeddings, &status,
                                 &scratch);
            if (!o) {
                /* The error object the single-image request would have returned. */
                o = scratch.body ? cJSON_Parse(scratch.body) : NULL;
                if (o)
                    cJSON_AddNumberToObject(cJSON_GetObjectItem(o, "error"), "status", status);
            }
            fv_reply_clear(&scratch);
            cJSON_AddItemToArray(results, o ? o : cJSON_CreateNull());
        }
    }
    cJSON *t = cJSON_AddObjectToObject(root, "timings_ms");
    cJSON_AddNumberToObject(t, "total", round_to(now_ms() - t_start, 10));
    fv_reply_json(r, 200, root);
done:
    image_list_free(&images);
    input_free(&in);
}

void fv_handle_embed(const struct fv_handler_env *env, const struct fv_request *req,
                     struct fv_reply *r)
{
    embed_or_detect(env, req, r, 1);
}

void fv_handle_detect(const struct fv_handler_env *env, const struct fv_request *req,
                      struct fv_reply *r)
{
    embed_or_detect(env, req, r, 0);
}

/* ---- POST /v1/align ---- */

/* One face of an align answer: the detect fields, its index and the crop the
 * network sees as base64 PNG. NULL with the reply filled in on failure. */
static cJSON *aligned_face_json(const struct fv_handler_env *env, struct fv_image_source *img,
                                const struct fv_face *face, int index, struct fv_reply *r)
{
    struct fv_error err = {0};
    struct fv_image *crop = NULL;
    uint8_t *png = NULL;
    size_t png_size = 0;
    char *text = NULL;
    cJSON *f = NULL;
    enum fv_status st =
        fv_pipeline_align_source(env->pipeline, img, (const float(*)[2])face->landmarks, &crop, &err);
    if (!st)
        st = fv_image_encode_png(crop, &png, &png_size, &err);
    if (st) {
        pipeline_error(st, &err, "image", r);
        goto fail;
    }
    text = fv_base64_encode(png, png_size);
    f = fv_api_face_json(face);
    if (!text || !f || !cJSON_AddNumberToObject(f, "index", index) ||
        !cJSON_AddNumberToObject(f, "crop_width", crop->width) ||
        !cJSON_AddNumberToObject(f, "crop_height", crop->height) ||
        !cJSON_AddStringToObject(f, "crop_png", text)) {
        fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
        goto fail;
    }
    free(text);
    free(png);
    fv_image_free(crop);
    return f;
fail:
    cJSON_Delete(f);
    free(text);
    free(png);
    fv_image_free(crop);
    return NULL;
}

void fv_handle_align(const struct fv_handler_env *env, const struct fv_request *req,
                     struct fv_reply *r)
{
    double t_start = now_ms();
    struct input in;
    struct blob b = {0};
    struct fv_image_source *img = NULL;
    struct fv_face *faces = NULL;
    cJSON *root = NULL;
    int n = 0, index;
    if (input_parse(req, &in, r))
        return;
    enum fv_face_policy policy;
    if (input_policy(&in, FV_FACE_ALL, 1, &policy, r) || input_index(&in, "face", &index, r))
        goto done;
    int got = input_image(&in, "image", &b, r);
    if (got < 0)
        goto done;
    if (!got) {
        fv_reply_error(r, 400, FV_API_CODE_MISSING_FIELD, "image", "image is required");
        goto done;
    }
    if (decode_image(env, &b, "image", &img, r))
        goto done;
    struct fv_error err = {0};
    enum fv_status st = fv_pipeline_detect_source(env->worker, img, policy, &faces, &n, &err);
    if (!st && n == 0)
        st = FV_ERR_NO_FACE;
    if (st) {
        pipeline_error(st, &err, "image", r);
        goto done;
    }
    if (index >= n) {
        fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, "face",
                       "face is %d but the image has %d face%s (0 to %d)", index, n,
                       n == 1 ? "" : "s", n - 1);
        goto done;
    }
    const struct fv_model_meta *meta = fv_pipeline_model_meta(env->pipeline);
    root = cJSON_CreateObject();
    add_model_fields(env, root);
    cJSON_AddStringToObject(root, "policy", fv_face_policy_name(policy));
    cJSON_AddNumberToObject(root, "width", fv_image_source_info(img)->width);
    cJSON_AddNumberToObject(root, "height", fv_image_source_info(img)->height);
    cJSON *input = cJSON_AddObjectToObject(root, "input");
    cJSON_AddNumberToObject(input, "width", meta->input_w);
    cJSON_AddNumberToObject(input, "height", meta->input_h);
    cJSON *list = cJSON_AddArrayToObject(root, "faces");
    if (!list) {
        fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (index >= 0 && i != index)
            continue;
        cJSON *f = aligned_face_json(env, img, &faces[i], i, r);
        if (!f)
            goto done;
        cJSON_AddItemToArray(list, f);
    }
    fv_metrics_faces(env->metrics, index >= 0 ? 1 : n);
    cJSON *t = cJSON_AddObjectToObject(root, "timings_ms");
    cJSON_AddNumberToObject(t, "total", round_to(now_ms() - t_start, 10));
    fv_reply_json(r, 200, root);
    root = NULL;
done:
    cJSON_Delete(root);
    free(faces);
    fv_image_source_free(img);
    free(b.owned);
    input_free(&in);
}

/* ---- GET routes ---- */

void fv_handle_models(const struct fv_handler_env *env, const struct fv_request *req,
                      struct fv_reply *r)
{
    (void)req;
    const struct fv_model_meta *meta = fv_pipeline_model_meta(env->pipeline);
    float threshold = isnan(env->config->threshold) ? fv_pipeline_threshold(env->pipeline)
                                                    : env->config->threshold;
    cJSON *root = cJSON_CreateObject();
    cJSON *models = cJSON_AddArrayToObject(root, "models");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddItemToArray(models, m);
    cJSON_AddStringToObject(m, "name", meta->name);
    cJSON *input = cJSON_AddObjectToObject(m, "input");
    cJSON_AddNumberToObject(input, "height", meta->input_h);
    cJSON_AddNumberToObject(input, "width", meta->input_w);
    cJSON_AddNumberToObject(input, "channels", meta->input_c);
    cJSON_AddNumberToObject(m, "embedding_dim", fv_pipeline_dim(env->pipeline));
    cJSON_AddNumberToObject(m, "raw_embedding_dim", fv_pipeline_raw_dim(env->pipeline));
    cJSON_AddNumberToObject(m, "threshold", round_to(threshold, 1e6));
    cJSON_AddBoolToObject(m, "pca", fv_pipeline_has_projection(env->pipeline));
    cJSON_AddStringToObject(m, "precision",
                            fv_precision_name(fv_pipeline_precision(env->pipeline)));
    cJSON_AddStringToObject(m, "cpu_level",
                            fv_cpu_level_name(fv_pipeline_cpu_level(env->pipeline)));
    cJSON_AddStringToObject(m, "detector", "mtcnn");
    fv_reply_json(r, 200, root);
}

void fv_handle_healthz(const struct fv_handler_env *env, const struct fv_request *req,
                       struct fv_reply *r)
{
    (void)env;
    (void)req;
    static const char ok[] = "{\"status\":\"ok\"}";
    fv_reply_text(r, 200, "application/json", ok, sizeof ok - 1);
}

void fv_handle_readyz(const struct fv_handler_env *env, const struct fv_request *req,
                      struct fv_reply *r)
{
    (void)req;
    if (!env->pipeline) {
        fv_reply_error(r, 503, FV_API_CODE_NOT_READY, NULL, "the pipeline is not loaded");
        return;
    }
    if (env->draining) {
        fv_reply_error(r, 503, FV_API_CODE_DRAINING, NULL,
                       "the server is draining before it stops: send new requests elsewhere");
        return;
    }
    static const char ok[] = "{\"status\":\"ready\"}";
    fv_reply_text(r, 200, "application/json", ok, sizeof ok - 1);
}

void fv_handle_metrics(const struct fv_handler_env *env, const struct fv_request *req,
                       struct fv_reply *r)
{
    (void)req;
    size_t size;
    char *text = fv_metrics_render(env->metrics, &size);
    if (!text) {
        fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
        return;
    }
    fv_reply_clear(r);
    r->status = 200;
    r->body = text;
    r->size = size;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

void fv_handle_openapi(const struct fv_handler_env *env, const struct fv_request *req,
                       struct fv_reply *r)
{
    (void)env;
    (void)req;
    fv_reply_text(r, 200, "application/json", (const char *)fv_openapi_json,
                  fv_openapi_json_size);
}
