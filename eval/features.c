/* features.c - threaded feature extraction with landmark fallbacks and a cache. */
#include "eval/features.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/hash.h"
#include "model/model_file.h"
#include "pipeline/align.h"

#define LANDMARKS_MAX_BYTES ((size_t)256 << 20)
#define CACHE_MAX_BYTES ((size_t)4 << 30)
#define IMAGE_MAX_BYTES ((size_t)64 << 20)

static const char cache_magic[8] = {'F', 'V', 'F', 'E', 'A', 'T', '\0', '\0'};
#define CACHE_VERSION 1

const char *fv_feature_source_name(enum fv_feature_source s)
{
    switch (s) {
    case FV_FEATURE_DETECTED: return "detected";
    case FV_FEATURE_LANDMARKS: return "landmarks";
    case FV_FEATURE_CENTER: return "center";
    case FV_FEATURE_FAILED: return "failed";
    }
    return "unknown";
}

struct fv_features_params fv_features_default_params(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct fv_features_params p = {
        .policy = FV_FACE_CENTER,
        .threads = cpus > 0 && cpus < 256 ? (int)cpus : 1,
        .center_fallback = 1,
    };
    return p;
}

uint64_t fv_hash64(const void *data, size_t size, uint64_t h)
{
    return fv_fnv1a(h ? h : FV_FNV1A_BASIS, data, size);
}

void fv_features_center_landmarks(int w, int h, float landmarks[5][2])
{
    float tpl[5][2];
    float s = (float)(w < h ? w : h) / 195.0f;
    fv_align_template(112, 96, tpl);
    for (int k = 0; k < 5; k++) {
        landmarks[k][0] = (tpl[k][0] - 48.0f) * s + (float)w * 0.5f;
        landmarks[k][1] = (tpl[k][1] - 56.0f) * s + (float)h * 0.5f;
    }
}

/* ---- a small string -> index hash table ---- */

struct table {
    size_t cap;
    const char **keys;
    size_t *values;
};

static int table_init(struct table *t, size_t n)
{
    t->cap = 16;
    while (t->cap < 2 * n + 1)
        t->cap *= 2;
    t->keys = calloc(t->cap, sizeof *t->keys);
    t->values = calloc(t->cap, sizeof *t->values);
    return t->keys && t->values ? 0 : -1;
}

static void table_free(struct table *t)
{
    free(t->keys);
    free(t->values);
}

/* Returns the slot for key: occupied by key, or the empty slot where it goes. */
static size_t table_slot(const struct table *t, const char *key)
{
    size_t i = (size_t)fv_hash64(key, strlen(key), 0) & (t->cap - 1);
    while (t->keys[i] && strcmp(t->keys[i], key) != 0)
        i = (i + 1) & (t->cap - 1);
    return i;
}

/* ---- landmarks file ---- */

struct landmarks {
    char *text;        /* the file, with names NUL-terminated in place */
    struct table index;
    float (*points)[10];
    size_t n;
};

static void landmarks_free(struct landmarks *l)
{
    free(l->text);
    free(l->points);
    table_free(&l->index);
}

static enum fv_status landmarks_load(const char *path, struct landmarks *l, struct fv_error *err)
{
    uint8_t *data = NULL;
    size_t size = 0;
    memset(l, 0, sizeof *l);
    enum fv_status st = fv_read_file(path, LANDMARKS_MAX_BYTES, &data, &size, err);
    if (st)
        return st;
    l->text = realloc(data, size + 1);
    if (!l->text) {
        free(data);
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
    }
    l->text[size] = '\0';
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += l->text[i] == '\n';
    l->points = malloc(lines * sizeof *l->points);
    if (!l->points || table_init(&l->index, lines)) {
        landmarks_free(l);
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
    }
    char *line = l->text;
    for (size_t number = 1; line && *line; number++) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *save = NULL, *name = strtok_r(line, " \t\r", &save);
        if (!name || name[0] == '#') {
            line = next;
            continue;
        }
        float *p = l->points[l->n];
        for (int k = 0; k < 10; k++) {
            char *tok = strtok_r(NULL, " \t\r", &save), *end;
            errno = 0;
            double v = tok ? strtod(tok, &end) : 0;
            if (!tok || *end || errno || !isfinite(v) || fabs(v) > 1e6) {
                landmarks_free(l);
                return fv_error_set(err, FV_ERR_FORMAT,
                                    "%s:%zu: expected an image name and 10 coordinates", path,
                                    number);
            }
            p[k] = (float)v;
        }
        if (strtok_r(NULL, " \t\r", &save)) {
            landmarks_free(l);
            return fv_error_set(err, FV_ERR_FORMAT, "%s:%zu: more than 10 coordinates", path,
                                number);
        }
        size_t slot = table_slot(&l->index, name);
        l->index.keys[slot] = name;
        l->index.values[slot] = l->n++;
        line = next;
    }
    return FV_OK;
}

static const float *landmarks_find(const struct landmarks *l, const char *name)
{
    if (!l->text)
        return NULL;
    size_t slot = table_slot(&l->index, name);
    return l->index.keys[slot] ? l->points[l->index.values[slot]] : NULL;
}

/* ---- cache file ----
 * magic "FVFEAT\0\0", u32 version, u32 dim, u64 key, u64 count, then per entry:
 * u64 content hash, u32 source, u32 path length, path bytes, dim float32. */

struct cache {
    uint8_t *data;
    size_t size;
    struct table index; /* path -> byte offset of the entry */
    char **paths;
    size_t n;
};

static void cache_free(struct cache *c)
{
    if (c->paths)
        for (size_t i = 0; i < c->n; i++)
            free(c->paths[i]);
    free(c->paths);
    free(c->data);
    table_free(&c->index);
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Loads a cache written for key and dim; any mismatch or damage gives an empty cache. */
static void cache_load(const char *path, uint64_t key, int dim, struct cache *c)
{
    memset(c, 0, sizeof *c);
    if (!path || fv_read_file(path, CACHE_MAX_BYTES, &c->data, &c->size, NULL) != FV_OK)
        return;
    if (c->size < 32 || memcmp(c->data, cache_magic, 8) || rd32(c->data + 8) != CACHE_VERSION ||
        rd32(c->data + 12) != (uint32_t)dim || rd64(c->data + 16) != key)
        goto reject;
    uint64_t count = rd64(c->data + 24);
    size_t entry_min = 16 + (size_t)dim * 4;
    if (count > (c->size - 32) / entry_min)
        goto reject;
    if (table_init(&c->index, (size_t)count) || !(c->paths = calloc((size_t)count + 1, sizeof *c->paths)))
        goto reject;
    size_t off = 32;
    for (uint64_t i = 0; i < count; i++) {
        if (c->size - off < 16)
            goto reject;
        uint32_t len = rd32(c->data + off + 12);
        if (len == 0 || len > 4096 || c->size - off - 16 < (size_t)len + (size_t)dim * 4)
            goto reject;
        char *name = malloc(len + 1);
        if (!name)
            goto reject;
        memcpy(name, c->data + off + 16, len);
        name[len] = '\0';
        c->paths[c->n++] = name;
        size_t slot = table_slot(&c->index, name);
        c->index.keys[slot] = name;
        c->index.values[slot] = off;
        off += 16 + len + (size_t)dim * 4;
    }
    return;
reject:
    cache_free(c);
    memset(c, 0, sizeof *c);
}

/* Looks up name with the given content hash; copies its features on a hit. */
static int cache_get(const struct cache *c, const char *name, uint64_t content, int dim,
                     float *out, enum fv_feature_source *how)
{
    if (!c->data || !c->index.keys)
        return 0;
    size_t slot = table_slot(&c->index, name);
    if (!c->index.keys[slot])
        return 0;
    const uint8_t *e = c->data + c->index.values[slot];
    uint32_t source = rd32(e + 8);
    if (rd64(e) != content || source > FV_FEATURE_FAILED)
        return 0;
    memcpy(out, e + 16 + rd32(e + 12), (size_t)dim * 4);
    for (int k = 0; k < dim; k++)
        if (!isfinite(out[k]))
            return 0;
    *how = (enum fv_feature_source)source;
    return 1;
}

static enum fv_status cache_save(const char *path, uint64_t key, int dim, const char *const *names,
                                 const uint64_t *content, const enum fv_feature_source *how,
                                 const float *features, size_t n, struct fv_error *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return fv_error_set(err, FV_ERR_IO, "%s: cannot write cache: %s", path, strerror(errno));
    uint32_t version = CACHE_VERSION, d = (uint32_t)dim;
    uint64_t count = n;
    int ok = fwrite(cache_magic, 8, 1, f) == 1 && fwrite(&version, 4, 1, f) == 1 &&
             fwrite(&d, 4, 1, f) == 1 && fwrite(&key, 8, 1, f) == 1 && fwrite(&count, 8, 1, f) == 1;
    for (size_t i = 0; ok && i < n; i++) {
        uint32_t source = how[i], len = (uint32_t)strlen(names[i]);
        ok = fwrite(&content[i], 8, 1, f) == 1 && fwrite(&source, 4, 1, f) == 1 &&
             fwrite(&len, 4, 1, f) == 1 && fwrite(names[i], 1, len, f) == len &&
             fwrite(features + i * (size_t)dim, 4, (size_t)dim, f) == (size_t)dim;
    }
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return fv_error_set(err, FV_ERR_IO, "%s: cannot write cache", path);
    }
    return FV_OK;
}

/* ---- workers ---- */

struct job {
    const struct fv_pipeline *pipe;
    const struct fv_features_params *params;
    const char *root;
    const struct fv_features_blob *blobs; /* images in memory, or NULL: read root/paths[i] */
    const char *const *paths;
    size_t n;
    int dim;
    float *features;
    enum fv_feature_source *how;
    uint64_t *content;
    const struct landmarks *landmarks;
    const struct cache *cache;
    atomic_size_t next;
    atomic_size_t done;
    atomic_size_t computed;
    atomic_int stop;       /* set on a fatal error or a cancellation: workers take no more */
    pthread_mutex_t lock;  /* guards status, err, first_failed, first_failure, the callbacks */
    enum fv_status status;
    struct fv_error err;
    size_t first_failed;
    char first_failure[FV_ERROR_MESSAGE_MAX];
};

static void job_fail(struct job *job, enum fv_status st, const struct fv_error *err)
{
    pthread_mutex_lock(&job->lock);
    if (!job->status) {
        job->status = st;
        job->err = *err;
    }
    pthread_mutex_unlock(&job->lock);
    atomic_store(&job->stop, 1);
}

/* Keeps the reason of the lowest-numbered image that failed, so that it does not
 * depend on which thread got there first. */
static void note_failure(struct job *job, size_t i, const char *reason)
{
    pthread_mutex_lock(&job->lock);
    if (i < job->first_failed) {
        job->first_failed = i;
        snprintf(job->first_failure, sizeof job->first_failure, "%s", reason);
    }
    pthread_mutex_unlock(&job->lock);
}

static void one_image(struct job *job, struct fv_pipeline_worker *w, size_t i)
{
    char path[4096];
    float *out = job->features + i * (size_t)job->dim;
    uint8_t *owned = NULL;
    const uint8_t *data;
    size_t size = 0;
    struct fv_image_source *img = NULL;
    struct fv_face *faces = NULL;
    int n = 0;
    struct fv_error err = {0};
    const struct fv_pipeline_params *pp = fv_pipeline_params(job->pipe);

    memset(out, 0, (size_t)job->dim * sizeof *out);
    job->how[i] = FV_FEATURE_FAILED;
    job->content[i] = 0;
    if (job->blobs) {
        data = job->blobs[i].data;
        size = job->blobs[i].size;
    } else {
        if (job->root && *job->root)
            snprintf(path, sizeof path, "%s/%s", job->root, job->paths[i]);
        else
            snprintf(path, sizeof path, "%s", job->paths[i]);
        if (fv_read_file(path, IMAGE_MAX_BYTES, &owned, &size, &err)) {
            note_failure(job, i, err.message);
            return;
        }
        data = owned;
    }
    job->content[i] = fv_hash64(data, size, 0);
    if (cache_get(job->cache, job->paths[i], job->content[i], job->dim, out, &job->how[i])) {
        if (job->how[i] == FV_FEATURE_FAILED)
            note_failure(job, i, "could not be embedded (as the feature cache remembers)");
        free(owned);
        return;
    }
    atomic_fetch_add(&job->computed, 1);
    enum fv_status st = fv_image_source_open(data, size, &pp->limits, &img, &err);
    if (st) {
        note_failure(job, i, err.message);
        free(owned);
        return;
    }
    st = fv_pipeline_detect_source(w, img, job->params->policy, &faces, &n, &err);
    if (st == FV_OK && n > 0) {
        st = fv_pipeline_embed_source(w, img, (const float(*)[2])faces[0].landmarks, out, NULL,
                                      &err);
        job->how[i] = FV_FEATURE_DETECTED;
    } else if (st == FV_OK) {
        const float *given = landmarks_find(job->landmarks, job->paths[i]);
        float lm[5][2];
        if (given) {
            memcpy(lm, given, sizeof lm);
            job->how[i] = FV_FEATURE_LANDMARKS;
        } else if (job->params->center_fallback) {
            fv_features_center_landmarks(fv_image_source_info(img)->width,
                                         fv_image_source_info(img)->height, lm);
            job->how[i] = FV_FEATURE_CENTER;
        }
        if (job->how[i] != FV_FEATURE_FAILED)
            st = fv_pipeline_embed_source(w, img, (const float(*)[2])lm, out, NULL, &err);
        else
            note_failure(job, i, "no face found, and no landmarks or centre crop to fall back on");
    }
    if (st) {
        job->how[i] = FV_FEATURE_FAILED;
        memset(out, 0, (size_t)job->dim * sizeof *out);
        note_failure(job, i, err.message);
        if (st == FV_ERR_NOMEM || st == FV_ERR_INTERNAL)
            job_fail(job, st, &err);
    }
    free(faces);
    fv_image_source_free(img);
    free(owned);
}

/* Whether the workers should stop before the next image: an error, or the
 * caller's cancel callback (asked under the lock, so one call at a time). */
static int should_stop(struct job *job)
{
    if (atomic_load(&job->stop))
        return 1;
    if (!job->params->cancel)
        return 0;
    pthread_mutex_lock(&job->lock);
    int cancel = job->params->cancel(job->params->cancel_user);
    pthread_mutex_unlock(&job->lock);
    if (cancel)
        atomic_store(&job->stop, 1);
    return cancel;
}

static void *worker_main(void *arg)
{
    struct job *job = arg;
    struct fv_pipeline_worker *w = NULL;
    struct fv_error err = {0};
    enum fv_status st = fv_pipeline_worker_new(job->pipe, &w, &err);
    if (st) {
        job_fail(job, st, &err);
        return NULL;
    }
    while (!should_stop(job)) {
        size_t i = atomic_fetch_add(&job->next, 1);
        if (i >= job->n)
            break;
        one_image(job, w, i);
        size_t done = atomic_fetch_add(&job->done, 1) + 1;
        if (job->params->progress) {
            pthread_mutex_lock(&job->lock);
            job->params->progress(job->params->progress_user, done, job->n);
            pthread_mutex_unlock(&job->lock);
        }
    }
    fv_pipeline_worker_free(w);
    return NULL;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Both entry points: images from root/paths[i], or from blobs[i] named paths[i]. */
static enum fv_status extract(const struct fv_pipeline *pipe, const char *root,
                              const struct fv_features_blob *blobs, const char *const *paths,
                              size_t n, const struct fv_features_params *params, float *features,
                              enum fv_feature_source *how, struct fv_features_stats *stats,
                              struct fv_error *err)
{
    struct landmarks lm = {0};
    struct cache cache = {0};
    struct job job;
    pthread_t tids[256];
    int started = 0;
    enum fv_status st;
    double t0 = seconds_now();
    memset(&job, 0, sizeof job);
    if (params->threads < 1 || params->threads > 256)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "threads must be between 1 and 256");
    if (params->landmarks_path && (st = landmarks_load(params->landmarks_path, &lm, err)))
        return st;
    job.dim = fv_pipeline_raw_dim(pipe);
    uint64_t key = fv_pipeline_fingerprint(pipe);
    key = fv_hash64(&params->policy, sizeof params->policy, key);
    key = fv_hash64(&params->center_fallback, sizeof params->center_fallback, key);
    if (lm.text) {
        for (size_t i = 0; i < lm.n; i++)
            key = fv_hash64(lm.points[i], sizeof lm.points[i], key);
    }
    cache_load(params->cache_path, key, job.dim, &cache);
    job.content = calloc(n ? n : 1, sizeof *job.content);
    if (!job.content) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory extracting features");
        goto done;
    }
    job.pipe = pipe;
    job.params = params;
    job.root = root;
    job.blobs = blobs;
    job.paths = paths;
    job.n = n;
    job.features = features;
    job.how = how;
    job.landmarks = &lm;
    job.cache = &cache;
    job.first_failed = n;
    pthread_mutex_init(&job.lock, NULL);
    int want = params->threads < (int)n ? params->threads : (int)(n ? n : 1);
    for (; started < want; started++)
        if (pthread_create(&tids[started], NULL, worker_main, &job))
            break;
    for (int t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    pthread_mutex_destroy(&job.lock);
    if (started == 0) {
        st = fv_error_set(err, FV_ERR_INTERNAL, "cannot start worker threads");
        goto done;
    }
    if (job.status) {
        st = job.status;
        if (err)
            *err = job.err;
        goto done;
    }
    size_t done = atomic_load(&job.done);
    if (done < n) { /* no error, so the caller cancelled */
        st = fv_error_set(err, FV_ERR_CANCELLED, "cancelled after %zu of %zu images", done, n);
        goto done;
    }
    st = FV_OK;
    if (params->cache_path && atomic_load(&job.computed) > 0)
        st = cache_save(params->cache_path, key, job.dim, paths, job.content, how, features, n, err);
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->computed = atomic_load(&job.computed);
        stats->cached = n - stats->computed;
        for (size_t i = 0; i < n; i++) {
            stats->detected += how[i] == FV_FEATURE_DETECTED;
            stats->from_landmarks += how[i] == FV_FEATURE_LANDMARKS;
            stats->from_center += how[i] == FV_FEATURE_CENTER;
            stats->failed += how[i] == FV_FEATURE_FAILED;
        }
        stats->seconds = seconds_now() - t0;
        stats->first_failed = job.first_failed;
        memcpy(stats->first_failure, job.first_failure, sizeof stats->first_failure);
    }
done:
    free(job.content);
    landmarks_free(&lm);
    cache_free(&cache);
    return st;
}

enum fv_status fv_features_extract(const struct fv_pipeline *pipe, const char *root,
                                   const char *const *paths, size_t n,
                                   const struct fv_features_params *params, float *features,
                                   enum fv_feature_source *how, struct fv_features_stats *stats,
                                   struct fv_error *err)
{
    return extract(pipe, root, NULL, paths, n, params, features, how, stats, err);
}

enum fv_status fv_features_extract_blobs(const struct fv_pipeline *pipe,
                                         const struct fv_features_blob *blobs,
                                         const char *const *names, size_t n,
                                         const struct fv_features_params *params,
                                         float *features, enum fv_feature_source *how,
                                         struct fv_features_stats *stats, struct fv_error *err)
{
    return extract(pipe, NULL, blobs, names, n, params, features, how, stats, err);
}
