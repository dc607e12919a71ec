/* evaluations.c - evaluation jobs: submission checks, the job thread, status and ROC routes. */
#include "api/evaluations.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/base64.h"
#include "api/routes.h"
#include "eval/features.h"
#include "eval/pairs.h"
#include "eval/protocol.h"
#include "eval/report.h"

#define ID_BYTES 16
#define ID_LEN (2 * ID_BYTES)
#define REL_PATH_MAX 1024
#define MAX_FOLDS 20
#define DEFAULT_FILE_PCA_DIM 128
/* Images per fv_features_extract call for file jobs: the granularity at which a
 * job notices cancellation (about a second per chunk on one thread). */
#define FILE_CHUNK 16

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED };

static const char *const state_names[] = {"queued", "running", "done", "failed"};

/* One inline image: decoded base64 bytes, freed once the job has run. */
struct blob {
    uint8_t *data;
    size_t size;
};

struct job {
    char id[ID_LEN + 1];
    enum job_state state;
    time_t created, started, finished;
    size_t done, total; /* images embedded so far, of total (0 until known) */
    struct job *next;   /* all jobs, oldest first */

    /* a file job: resolved absolute paths below the data root */
    char *images_dir, *pairs_path, *landmarks_path;
    char *pairs_name; /* as the client gave it, for the report title */
    /* an inline job: pairs sorted by fold; image 2i and 2i + 1 belong to pair i */
    size_t n_pairs, n_folds;
    struct blob *images;
    unsigned char *same;
    size_t *source_index; /* the pair's index in the request */
    size_t pca_dim;

    char *report; /* JSON text, when done */
    char *svg;    /* when done */
    char error_code[32];
    char error_message[FV_ERROR_MESSAGE_MAX];
};

struct fv_evaluations {
    const struct fv_pipeline *pipe;
    struct fv_evaluations_params params;
    char *root; /* realpath of params.data_root, NULL when none */
    size_t root_len;

    pthread_mutex_t lock; /* guards the jobs list and every job's state fields */
    pthread_cond_t wake;
    struct job *jobs;
    int n_queued, n_finished, running;
    atomic_int stopping;
    pthread_t thread;
    int thread_started;
    uint64_t serial; /* for ids when the kernel has no randomness to give */
};

struct fv_evaluations_params fv_evaluations_default_params(void)
{
    struct fv_evaluations_params p = {
        .data_root = NULL,
        .threads = 1,
        .max_queued = 4,
        .max_finished = 16,
        .max_inline_pairs = 200,
        .max_file_pairs = 20000,
    };
    return p;
}

static void job_free_inputs(struct job *j)
{
    for (size_t i = 0; j->images && i < 2 * j->n_pairs; i++)
        free(j->images[i].data);
    free(j->images);
    free(j->same);
    free(j->source_index);
    j->images = NULL;
    j->same = NULL;
    j->source_index = NULL;
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    job_free_inputs(j);
    free(j->images_dir);
    free(j->pairs_path);
    free(j->landmarks_path);
    free(j->pairs_name);
    free(j->report);
    free(j->svg);
    free(j);
}

/* ---- the job thread ---- */

static void job_fail(struct job *j, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the failure (kept until the job is finished under the lock). */
static void job_fail(struct job *j, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    snprintf(j->error_code, sizeof j->error_code, "%s", code);
    vsnprintf(j->error_message, sizeof j->error_message, fmt, ap);
    va_end(ap);
}

static void set_progress(struct fv_evaluations *ev, struct job *j, size_t done, size_t total)
{
    pthread_mutex_lock(&ev->lock);
    j->done = done;
    j->total = total;
    pthread_mutex_unlock(&ev->lock);
}

struct chunk_progress {
    struct fv_evaluations *ev;
    struct job *job;
    size_t offset, total;
};

static void on_chunk_progress(void *user, size_t done, size_t total)
{
    (void)total;
    struct chunk_progress *p = user;
    set_progress(p->ev, p->job, p->offset + done, p->total);
}

/* Whether path (absolute, resolved) lies in the data root. */
static int under_root(const struct fv_evaluations *ev, const char *path)
{
    if (ev->root_len == 1) /* the root is "/" */
        return path[0] == '/';
    return strncmp(path, ev->root, ev->root_len) == 0 &&
           (path[ev->root_len] == '/' || path[ev->root_len] == 0);
}

/* The features of every image of a file job, in chunks so that cancellation
 * is noticed. 0, or -1 with the job's error set. */
static int file_features(struct fv_evaluations *ev, struct job *j, const struct fv_pairs *pairs,
                         const char **paths, float *features, enum fv_feature_source *how)
{
    size_t n = fv_pairs_image_count(pairs), d = (size_t)fv_pipeline_raw_dim(ev->pipe);
    /* Each image must resolve inside the root too: a symlink planted among the
     * images could otherwise read any JPEG on the machine. A missing image is
     * left for extraction to report as unreadable. */
    char full[PATH_MAX + REL_PATH_MAX], resolved[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        snprintf(full, sizeof full, "%s/%s", j->images_dir, paths[i]);
        if (realpath(full, resolved) && !under_root(ev, resolved)) {
            job_fail(j, "forbidden_path", "image %s leads outside the data root", paths[i]);
            return -1;
        }
    }
    struct fv_features_params fp = fv_features_default_params();
    fp.threads = ev->params.threads;
    fp.landmarks_path = j->landmarks_path;
    fp.policy = FV_FACE_CENTER;
    struct chunk_progress progress = {ev, j, 0, n};
    fp.progress = on_chunk_progress;
    fp.progress_user = &progress;
    for (size_t off = 0; off < n; off += FILE_CHUNK) {
        if (atomic_load(&ev->stopping)) {
            job_fail(j, "cancelled", "the server shut down during the evaluation");
            return -1;
        }
        size_t m = n - off < FILE_CHUNK ? n - off : FILE_CHUNK;
        struct fv_error err = {0};
        struct fv_features_stats stats;
        progress.offset = off;
        enum fv_status st = fv_features_extract(ev->pipe, j->images_dir, paths + off, m, &fp,
                                                features + off * d, how + off, &stats, &err);
        if (st) {
            const char *code;
            fv_reply_status_of(st, &code);
            job_fail(j, st == FV_ERR_FORMAT || st == FV_ERR_IO ? "bad_landmarks" : code, "%s",
                     err.message[0] ? err.message : fv_status_str(st));
            return -1;
        }
        set_progress(ev, j, off + m, n);
    }
    return 0;
}

/* One inline image: detect (centre face), else centre crop, as fv_features_extract does. */
static enum fv_feature_source inline_feature(const struct fv_pipeline *pipe,
                                             struct fv_pipeline_worker *w, const struct blob *b,
                                             float *out, struct fv_error *err)
{
    struct fv_image_source *img = NULL;
    struct fv_face *faces = NULL;
    int n = 0;
    enum fv_feature_source how = FV_FEATURE_FAILED;
    size_t d = (size_t)fv_pipeline_raw_dim(pipe);
    memset(out, 0, d * sizeof *out);
    enum fv_status st = fv_image_source_open(b->data, b->size, &fv_pipeline_params(pipe)->limits,
                                             &img, err);
    if (st)
        return FV_FEATURE_FAILED;
    st = fv_pipeline_detect_source(w, img, FV_FACE_CENTER, &faces, &n, err);
    float lm[5][2];
    if (st == FV_OK && n > 0) {
        memcpy(lm, faces[0].landmarks, sizeof lm);
        how = FV_FEATURE_DETECTED;
    } else if (st == FV_OK || st == FV_ERR_NO_FACE) {
        fv_features_center_landmarks(fv_image_source_info(img)->width,
                                     fv_image_source_info(img)->height, lm);
        how = FV_FEATURE_CENTER;
        st = FV_OK;
    }
    if (st == FV_OK)
        st = fv_pipeline_embed_source(w, img, (const float(*)[2])lm, out, NULL, err);
    if (st) {
        how = FV_FEATURE_FAILED;
        memset(out, 0, d * sizeof *out);
    }
    free(faces);
    fv_image_source_free(img);
    return how;
}

static int inline_features(struct fv_evaluations *ev, struct job *j, float *features,
                           enum fv_feature_source *how, const char **names)
{
    size_t n = 2 * j->n_pairs, d = (size_t)fv_pipeline_raw_dim(ev->pipe);
    struct fv_pipeline_worker *w = NULL;
    struct fv_error err = {0};
    if (fv_pipeline_worker_new(ev->pipe, &w, &err)) {
        job_fail(j, "internal", "%s", err.message);
        return -1;
    }
    set_progress(ev, j, 0, n);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&ev->stopping)) {
            job_fail(j, "cancelled", "the server shut down during the evaluation");
            rc = -1;
            break;
        }
        memset(&err, 0, sizeof err);
        how[i] = inline_feature(ev->pipe, w, &j->images[i], features + i * d, &err);
        if (how[i] == FV_FEATURE_FAILED) {
            job_fail(j, "bad_image", "%s: %s", names[i],
                     err.message[0] ? err.message : "cannot be decoded or embedded");
            rc = -1;
            break;
        }
        set_progress(ev, j, i + 1, n);
    }
    fv_pipeline_worker_free(w);
    return rc;
}

/* "FOLDS k" and one line per pair, same pairs "sI 1 2", different "aI 1 bI 1": every
 * image distinct, so image 2i and 2i + 1 are pair i's, in this order. */
static char *inline_pairs_text(const struct job *j, size_t *size)
{
    size_t cap = 32 + j->n_pairs * 48;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    size_t used = (size_t)snprintf(text, cap, "FOLDS %zu\n", j->n_folds);
    for (size_t i = 0; i < j->n_pairs; i++)
        used += (size_t)snprintf(text + used, cap - used,
                                 j->same[i] ? "s%zu 1 2\n" : "a%zu 1 b%zu 1\n", i, i);
    *size = used;
    return text;
}

static void run_job(struct fv_evaluations *ev, struct job *j)
{
    struct fv_pairs *pairs = NULL;
    struct fv_protocol_result *result = NULL;
    struct fv_report_failure *failures = NULL;
    float *features = NULL;
    enum fv_feature_source *how = NULL;
    const char **paths = NULL;
    char (*names)[48] = NULL;
    char *text = NULL;
    struct fv_error err = {0};
    const char *model = fv_pipeline_model_meta(ev->pipe)->name;
    char title[REL_PATH_MAX + 128];
    enum fv_status st;

    if (j->pairs_path) {
        struct fv_pairs_params pp = fv_pairs_default_params();
        pp.max_pairs = ev->params.max_file_pairs;
        if ((st = fv_pairs_load(j->pairs_path, &pp, &pairs, &err))) {
            job_fail(j, st == FV_ERR_NOMEM ? "internal" : "bad_pairs", "%s: %s", j->pairs_name,
                     err.message);
            goto done;
        }
        snprintf(title, sizeof title, "%s on %s", model, j->pairs_name);
    } else {
        size_t size;
        text = inline_pairs_text(j, &size);
        if (!text) {
            job_fail(j, "internal", "out of memory");
            goto done;
        }
        if ((st = fv_pairs_parse(text, size, "inline pairs", NULL, &pairs, &err))) {
            job_fail(j, "internal", "%s", err.message);
            goto done;
        }
        snprintf(title, sizeof title, "%s on %zu inline pairs", model, j->n_pairs);
    }
    size_t n = fv_pairs_image_count(pairs), d = (size_t)fv_pipeline_raw_dim(ev->pipe);
    if (n > SIZE_MAX / sizeof(float) / d) {
        job_fail(j, "too_large", "%zu images are too many", n);
        goto done;
    }
    features = malloc(n * d * sizeof *features);
    how = malloc(n * sizeof *how);
    paths = malloc(n * sizeof *paths);
    failures = calloc(n, sizeof *failures);
    if (!j->pairs_path)
        names = malloc(n * sizeof *names);
    if (!features || !how || !paths || !failures || (!j->pairs_path && !names)) {
        job_fail(j, "internal", "out of memory for %zu images", n);
        goto done;
    }
    set_progress(ev, j, 0, n);
    if (j->pairs_path) {
        for (size_t i = 0; i < n; i++)
            paths[i] = fv_pairs_image_path(pairs, i);
        if (file_features(ev, j, pairs, paths, features, how))
            goto done;
    } else {
        for (size_t i = 0; i < n; i++) {
            snprintf(names[i], sizeof names[i], "pairs[%zu].image%d", j->source_index[i / 2],
                     (int)(i % 2) + 1);
            paths[i] = names[i];
        }
        if (inline_features(ev, j, features, how, paths))
            goto done;
    }
    size_t n_failures = 0;
    for (size_t i = 0; i < n; i++) {
        if (how[i] == FV_FEATURE_DETECTED)
            continue;
        if (how[i] == FV_FEATURE_FAILED) {
            job_fail(j, "bad_image", "%s could not be read or embedded", paths[i]);
            goto done;
        }
        failures[n_failures].image = paths[i];
        failures[n_failures].fallback_used = 1;
        failures[n_failures].fallback = fv_feature_source_name(how[i]);
        n_failures++;
    }
    struct fv_protocol_params pp = fv_protocol_default_params();
    pp.pca_dim = j->pca_dim;
    pp.compare_without_pca = true;
    if ((st = fv_protocol_run(features, n, d, pairs, &pp, &result, &err))) {
        job_fail(j, st == FV_ERR_NOMEM ? "internal" : "invalid_value", "%s", err.message);
        goto done;
    }
    struct fv_report_params rp = fv_report_default_params();
    rp.title = title;
    char *report = fv_report_json(result, failures, n_failures, &rp, &err);
    char *svg = report ? fv_report_svg(result, &rp, &err) : NULL;
    if (!svg) {
        free(report);
        job_fail(j, "internal", "report: %s", err.message);
        goto done;
    }
    pthread_mutex_lock(&ev->lock);
    j->report = report;
    j->svg = svg;
    pthread_mutex_unlock(&ev->lock);
done:
    fv_protocol_result_free(result);
    fv_pairs_free(pairs);
    free(features);
    free(how);
    free(paths);
    free(failures);
    free(names);
    free(text);
}

/* Forgets the oldest finished jobs beyond the limit. Called with the lock held. */
static void evict_finished(struct fv_evaluations *ev)
{
    struct job **link = &ev->jobs;
    while (ev->n_finished > ev->params.max_finished && *link) {
        struct job *j = *link;
        if (j->state == JOB_DONE || j->state == JOB_FAILED) {
            *link = j->next;
            job_free(j);
            ev->n_finished--;
        } else {
            link = &j->next;
        }
    }
}

static void *job_thread(void *arg)
{
    struct fv_evaluations *ev = arg;
    pthread_mutex_lock(&ev->lock);
    for (;;) {
        struct job *j = NULL;
        while (!atomic_load(&ev->stopping)) {
            for (j = ev->jobs; j && j->state != JOB_QUEUED; j = j->next)
                ;
            if (j)
                break;
            pthread_cond_wait(&ev->wake, &ev->lock);
        }
        if (!j)
            break; /* stopping */
        j->state = JOB_RUNNING;
        j->started = time(NULL);
        ev->n_queued--;
        ev->running = 1;
        pthread_mutex_unlock(&ev->lock);

        run_job(ev, j);

        pthread_mutex_lock(&ev->lock);
        j->state = j->report ? JOB_DONE : JOB_FAILED;
        ev->running = 0;
        j->finished = time(NULL);
        job_free_inputs(j);
        ev->n_finished++;
        evict_finished(ev);
    }
    pthread_mutex_unlock(&ev->lock);
    return NULL;
}

/* ---- lifecycle ---- */

enum fv_status fv_evaluations_new(const struct fv_pipeline *pipe,
                                  const struct fv_evaluations_params *params,
                                  struct fv_evaluations **out, struct fv_error *err)
{
    *out = NULL;
    if (!pipe || params->threads < 1 || params->threads > 256 || params->max_queued < 0 ||
        params->max_finished < 1 || params->max_inline_pairs < 2 || params->max_file_pairs < 2)
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "evaluations: threads must be 1..256, the queue >= 0, kept jobs "
                            ">= 1 and pair limits >= 2");
    struct fv_evaluations *ev = calloc(1, sizeof *ev);
    if (!ev)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    ev->pipe = pipe;
    ev->params = *params;
    ev->params.data_root = NULL; /* borrowed string: only the resolved copy is kept */
    pthread_mutex_init(&ev->lock, NULL);
    pthread_cond_init(&ev->wake, NULL);
    enum fv_status st;
    if (params->data_root && *params->data_root) {
        struct stat sb;
        ev->root = realpath(params->data_root, NULL);
        if (!ev->root || stat(ev->root, &sb) || !S_ISDIR(sb.st_mode)) {
            st = fv_error_set(err, FV_ERR_INVALID_ARG, "data root %s: %s", params->data_root,
                              ev->root ? "not a folder" : strerror(errno));
            goto fail;
        }
        ev->root_len = strlen(ev->root);
    }
    if (pthread_create(&ev->thread, NULL, job_thread, ev)) {
        st = fv_error_set(err, FV_ERR_NOMEM, "cannot start the evaluation thread");
        goto fail;
    }
    ev->thread_started = 1;
    *out = ev;
    return FV_OK;
fail:
    fv_evaluations_free(ev);
    return st;
}

void fv_evaluations_cancel(struct fv_evaluations *ev)
{
    if (!ev)
        return;
    pthread_mutex_lock(&ev->lock);
    atomic_store(&ev->stopping, 1);
    pthread_cond_broadcast(&ev->wake);
    pthread_mutex_unlock(&ev->lock);
}

void fv_evaluations_free(struct fv_evaluations *ev)
{
    if (!ev)
        return;
    fv_evaluations_cancel(ev);
    if (ev->thread_started)
        pthread_join(ev->thread, NULL);
    while (ev->jobs) {
        struct job *j = ev->jobs;
        ev->jobs = j->next;
        job_free(j);
    }
    free(ev->root);
    pthread_mutex_destroy(&ev->lock);
    pthread_cond_destroy(&ev->wake);
    free(ev);
}

/* ---- JSON views ---- */

static void add_time(cJSON *o, const char *name, time_t t)
{
    if (!t)
        return;
    struct tm tm;
    char text[32];
    gmtime_r(&t, &tm);
    strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(o, name, text);
}

/* The status object of a job. Called with the lock held. NULL when out of memory. */
static cJSON *job_json(const struct job *j)
{
    char link[64];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "status", state_names[j->state]);
    add_time(o, "created_at", j->created);
    add_time(o, "started_at", j->started);
    add_time(o, "finished_at", j->finished);
    cJSON *p = cJSON_AddObjectToObject(o, "progress");
    cJSON_AddNumberToObject(p, "done", (double)j->done);
    cJSON_AddNumberToObject(p, "total", (double)j->total);
    cJSON *links = cJSON_AddObjectToObject(o, "links");
    snprintf(link, sizeof link, "/v1/evaluations/%s", j->id);
    cJSON_AddStringToObject(links, "self", link);
    snprintf(link, sizeof link, "/v1/evaluations/%s/roc.svg", j->id);
    cJSON_AddStringToObject(links, "roc", link);
    if (j->state == JOB_DONE && j->report) {
        cJSON *report = cJSON_Parse(j->report);
        if (!report || !cJSON_AddItemToObject(o, "report", report)) {
            cJSON_Delete(report);
            cJSON_Delete(o);
            return NULL;
        }
    }
    if (j->state == JOB_FAILED) {
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(e, "code", j->error_code[0] ? j->error_code : "internal");
        cJSON_AddStringToObject(e, "message",
                                j->error_message[0] ? j->error_message : "the evaluation failed");
    }
    return o;
}

/* ---- POST /v1/evaluations ---- */

static void make_id(struct fv_evaluations *ev, char *id)
{
    uint8_t bytes[ID_BYTES];
    if (getrandom(bytes, sizeof bytes, GRND_NONBLOCK) != (ssize_t)sizeof bytes) {
        /* No entropy yet (early boot): unique, if guessable. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t a = fv_hash64(&ts, sizeof ts, ++ev->serial);
        uint64_t b = fv_hash64(&a, sizeof a, (uint64_t)getpid() + ev->serial);
        memcpy(bytes, &a, 8);
        memcpy(bytes + 8, &b, 8);
    }
    for (int i = 0; i < ID_BYTES; i++)
        snprintf(id + 2 * i, 3, "%02x", bytes[i]);
}

/* Resolves rel (client input) below the data root into a malloc'd absolute path:
 * 0, or the HTTP status with the reply filled in. want_dir: a folder, else a file. */
static int resolve_path(const struct fv_evaluations *ev, const char *field, const char *rel,
                        int want_dir, char **out, struct fv_reply *r)
{
    *out = NULL;
    size_t len = strlen(rel);
    if (len == 0 || len > REL_PATH_MAX)
        return fv_reply_error(r, 422, "invalid_value", field,
                              "%s must be a path of 1..%d bytes", field, REL_PATH_MAX);
    if (rel[0] == '/')
        return fv_reply_error(r, 403, "forbidden_path", field,
                              "%s must be relative to the data root, not absolute", field);
    for (const char *c = rel; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return fv_reply_error(r, 403, "forbidden_path", field,
                                  "%s may not contain '..' components", field);
        c += n;
        while (*c == '/')
            c++;
    }
    for (const char *c = rel; *c; c++)
        if ((unsigned char)*c < 0x20)
            return fv_reply_error(r, 422, "invalid_value", field,
                                  "%s contains control characters", field);
    char *full = malloc(ev->root_len + len + 2);
    if (!full)
        return fv_reply_error(r, 500, "internal", NULL, "out of memory");
    sprintf(full, "%s/%s", ev->root, rel);
    char *resolved = realpath(full, NULL);
    int e = errno;
    free(full);
    if (!resolved)
        return fv_reply_error(r, 422, "invalid_value", field, "%s: %s under the data root", rel,
                              e == ENOENT || e == ENOTDIR ? "no such file or folder"
                                                          : strerror(e));
    if (!under_root(ev, resolved)) {
        free(resolved);
        return fv_reply_error(r, 403, "forbidden_path", field,
                              "%s leads outside the data root", field);
    }
    struct stat sb;
    if (stat(resolved, &sb) || (want_dir ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode))) {
        free(resolved);
        return fv_reply_error(r, 422, "invalid_value", field, "%s must be a %s", field,
                              want_dir ? "folder" : "regular file");
    }
    *out = resolved;
    return 0;
}

/* An optional integer field in lo..hi: 1 present, 0 absent, -status on error. */
static int json_int(const cJSON *root, const char *name, long lo, long hi, long *out,
                    struct fv_reply *r)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return -fv_reply_error(r, 422, "invalid_value", name,
                               "%s must be an integer in %ld..%ld", name, lo, hi);
    *out = (long)v->valuedouble;
    return 1;
}

static int file_job(const struct fv_handler_env *env, const cJSON *root, struct job *j,
                    struct fv_reply *r)
{
    struct fv_evaluations *ev = env->evaluations;
    if (!ev->root)
        return fv_reply_error(r, 422, "no_data_root", "pairs",
                              "this server has no --data-root, so only inline evaluations "
                              "(pairs as an array of images) are possible");
    static const char *const fields[] = {"images", "pairs", "landmarks"};
    const char *values[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, fields[k]);
        if (!v || cJSON_IsNull(v)) {
            if (k < 2)
                return fv_reply_error(r, 400, "missing_field", fields[k], "%s is required",
                                      fields[k]);
            continue;
        }
        if (!cJSON_IsString(v))
            return fv_reply_error(r, 400, "invalid_field", fields[k],
                                  "%s must be a path relative to the data root", fields[k]);
        values[k] = v->valuestring;
    }
    int status;
    if ((status = resolve_path(ev, "images", values[0], 1, &j->images_dir, r)) ||
        (status = resolve_path(ev, "pairs", values[1], 0, &j->pairs_path, r)) ||
        (values[2] && (status = resolve_path(ev, "landmarks", values[2], 0, &j->landmarks_path, r))))
        return status;
    if (!(j->pairs_name = strdup(values[1])))
        return fv_reply_error(r, 500, "internal", NULL, "out of memory");
    long pca_dim = DEFAULT_FILE_PCA_DIM;
    int got = json_int(root, "pca_dim", 0, fv_pipeline_raw_dim(env->pipeline), &pca_dim, r);
    if (got < 0)
        return -got;
    j->pca_dim = (size_t)pca_dim;
    return 0;
}

static int inline_job(const struct fv_handler_env *env, const cJSON *root, const cJSON *list,
                      struct job *j, struct fv_reply *r)
{
    struct fv_evaluations *ev = env->evaluations;
    int n = cJSON_GetArraySize(list);
    if (n < 2)
        return fv_reply_error(r, 422, "invalid_value", "pairs",
                              "an inline evaluation needs at least 2 pairs");
    if (n > ev->params.max_inline_pairs)
        return fv_reply_error(r, 413, "too_many_pairs", "pairs",
                              "at most %d inline pairs; put larger sets under the data root",
                              ev->params.max_inline_pairs);
    long folds = 2;
    int got = json_int(root, "folds", 2, MAX_FOLDS, &folds, r);
    if (got < 0)
        return -got;
    if (folds > n)
        return fv_reply_error(r, 422, "invalid_value", "folds",
                              "%ld folds need at least as many pairs, got %d", folds, n);
    j->n_pairs = (size_t)n;
    j->n_folds = (size_t)folds;
    j->images = calloc(2 * (size_t)n, sizeof *j->images);
    j->same = calloc((size_t)n, sizeof *j->same);
    j->source_index = calloc(2 * (size_t)n, sizeof *j->source_index);
    long *fold = calloc((size_t)n, sizeof *fold);
    if (!j->images || !j->same || !j->source_index || !fold) {
        free(fold);
        return fv_reply_error(r, 500, "internal", NULL, "out of memory");
    }
    /* Read every pair in request order, then sort by fold (stable). */
    char field[64];
    int status = 0, with_fold = 0, n_same = 0;
    size_t per_fold[MAX_FOLDS] = {0};
    struct blob *blobs = j->images; /* request order for now */
    const cJSON *item = list->child;
    for (int i = 0; i < n; i++, item = item->next) {
        if (!cJSON_IsObject(item)) {
            snprintf(field, sizeof field, "pairs[%d]", i);
            status = fv_reply_error(r, 400, "invalid_field", field,
                                    "%s must be an object {image1, image2, same, fold}", field);
            goto done;
        }
        for (int k = 0; k < 2; k++) {
            snprintf(field, sizeof field, "pairs[%d].image%d", i, k + 1);
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, k ? "image2" : "image1");
            if (!v || cJSON_IsNull(v)) {
                status = fv_reply_error(r, 400, "missing_field", field, "%s is required", field);
                goto done;
            }
            if (!cJSON_IsString(v)) {
                status = fv_reply_error(r, 400, "invalid_field", field,
                                        "%s must be a base64 string", field);
                goto done;
            }
            const char *s = v->valuestring;
            size_t len = strlen(s), off = fv_base64_data_uri_offset(s, len);
            if (off == (size_t)-1) {
                status = fv_reply_error(r, 400, "bad_base64", field,
                                        "%s is a data URI that is not base64", field);
                goto done;
            }
            struct blob *b = &blobs[2 * i + k];
            size_t cap = fv_base64_decoded_max(len - off);
            if (!(b->data = malloc(cap ? cap : 1))) {
                status = fv_reply_error(r, 500, "internal", NULL, "out of memory");
                goto done;
            }
            if (fv_base64_decode(s + off, len - off, b->data, cap, &b->size)) {
                status = fv_reply_error(r, 400, "bad_base64", field, "%s is not valid base64",
                                        field);
                goto done;
            }
        }
        snprintf(field, sizeof field, "pairs[%d].same", i);
        const cJSON *same = cJSON_GetObjectItemCaseSensitive(item, "same");
        if (!cJSON_IsBool(same)) {
            status = fv_reply_error(r, 422, "invalid_value", field,
                                    "%s must be true (same person) or false", field);
            goto done;
        }
        j->same[i] = cJSON_IsTrue(same);
        n_same += j->same[i];
        snprintf(field, sizeof field, "pairs[%d].fold", i);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(item, "fold");
        int has_fold = f && !cJSON_IsNull(f);
        if (i > 0 && has_fold != with_fold) {
            status = fv_reply_error(r, 422, "invalid_value", field,
                                    "give fold for every pair or for none");
            goto done;
        }
        with_fold = has_fold;
        if (has_fold) {
            if (!cJSON_IsNumber(f) || f->valuedouble != floor(f->valuedouble) ||
                f->valuedouble < 0 || f->valuedouble >= (double)folds) {
                status = fv_reply_error(r, 422, "invalid_value", field,
                                        "%s must be an integer in 0..%ld", field, folds - 1);
                goto done;
            }
            fold[i] = (long)f->valuedouble;
        } else {
            /* no folds given: split in request order, as a "FOLDS k" pairs file does */
            fold[i] = (long)((size_t)i * (size_t)folds / (size_t)n);
        }
        per_fold[fold[i]]++;
    }
    if (n % folds != 0) {
        status = fv_reply_error(r, 422, "invalid_value", "pairs",
                                "%d pairs do not split into %ld folds of equal size", n, folds);
        goto done;
    }
    for (long f = 0; f < folds; f++)
        if (per_fold[f] != (size_t)(n / folds)) {
            status = fv_reply_error(r, 422, "invalid_value", "pairs",
                                    "every fold must hold the same number of pairs (%ld); "
                                    "fold %ld has %zu",
                                    n / folds, f, per_fold[f]);
            goto done;
        }
    if (n_same == 0 || n_same == n) {
        status = fv_reply_error(r, 422, "invalid_value", "pairs",
                                "the pairs must include both same-person and different-person "
                                "pairs");
        goto done;
    }
    /* The PCA of a fold is fitted on the other folds' images: 2 per pair. */
    size_t train_images = 2 * ((size_t)n - (size_t)n / (size_t)folds);
    long pca_dim = 0, max_pca = (long)train_images - 1;
    if (max_pca > fv_pipeline_raw_dim(env->pipeline))
        max_pca = fv_pipeline_raw_dim(env->pipeline);
    got = json_int(root, "pca_dim", 0, max_pca, &pca_dim, r);
    if (got < 0) {
        status = -got;
        goto done;
    }
    j->pca_dim = (size_t)pca_dim;

    /* Sort into fold order: a stable counting sort of the pairs. */
    struct blob *sorted = calloc(2 * (size_t)n, sizeof *sorted);
    unsigned char *same = calloc((size_t)n, sizeof *same);
    if (!sorted || !same) {
        free(sorted);
        free(same);
        status = fv_reply_error(r, 500, "internal", NULL, "out of memory");
        goto done;
    }
    size_t at = 0;
    for (long f = 0; f < folds; f++)
        for (int i = 0; i < n; i++)
            if (fold[i] == f) {
                sorted[2 * at] = blobs[2 * i];
                sorted[2 * at + 1] = blobs[2 * i + 1];
                same[at] = j->same[i];
                j->source_index[at] = (size_t)i;
                at++;
            }
    free(j->images);
    free(j->same);
    j->images = sorted;
    j->same = same;
done:
    free(fold);
    return status;
}

void fv_handle_evaluation_new(const struct fv_handler_env *env, const struct fv_request *req,
                              struct fv_reply *r)
{
    struct fv_evaluations *ev = env->evaluations;
    cJSON *root = NULL;
    struct job *j = NULL;
    if (strncasecmp(req->content_type, "application/json", 16) != 0) {
        fv_reply_error(r, 415, "unsupported_media_type", NULL,
                       "evaluations take an application/json body");
        return;
    }
    if (req->body_size == 0) {
        fv_reply_error(r, 400, "bad_json", NULL, "the request body is empty");
        return;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts((const char *)req->body, req->body_size, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - (const char *)req->body) : 0;
        fv_reply_error(r, 400, "bad_json", NULL, "malformed JSON near byte %zu", at);
        return;
    }
    if (!cJSON_IsObject(root)) {
        fv_reply_error(r, 400, "bad_json", NULL, "the JSON body must be an object");
        goto done;
    }
    if (!(j = calloc(1, sizeof *j))) {
        fv_reply_error(r, 500, "internal", NULL, "out of memory");
        goto done;
    }
    const cJSON *pairs = cJSON_GetObjectItemCaseSensitive(root, "pairs");
    if (!pairs || cJSON_IsNull(pairs)) {
        fv_reply_error(r, 400, "missing_field", "pairs",
                       "pairs is required: a path below the data root, or an array of "
                       "{image1, image2, same} objects");
        goto done;
    }
    if (cJSON_IsString(pairs) ? file_job(env, root, j, r)
                              : cJSON_IsArray(pairs)
                                    ? inline_job(env, root, pairs, j, r)
                                    : fv_reply_error(r, 400, "invalid_field", "pairs",
                                                     "pairs must be a path or an array"))
        goto done;

    pthread_mutex_lock(&ev->lock);
    if (atomic_load(&ev->stopping)) {
        pthread_mutex_unlock(&ev->lock);
        fv_reply_error(r, 503, "busy", NULL, "the server is shutting down");
        goto done;
    }
    /* An idle thread takes one more: it is about to start it. */
    if (ev->n_queued >= ev->params.max_queued + !ev->running) {
        int queued = ev->n_queued;
        pthread_mutex_unlock(&ev->lock);
        fv_reply_error(r, 429, "busy", NULL,
                       "%d evaluations are already waiting; retry when one has finished", queued);
        goto done;
    }
    make_id(ev, j->id);
    j->state = JOB_QUEUED;
    j->created = time(NULL);
    j->total = j->pairs_path ? 0 : 2 * j->n_pairs;
    struct job **link = &ev->jobs;
    while (*link)
        link = &(*link)->next;
    *link = j;
    ev->n_queued++;
    pthread_cond_signal(&ev->wake);
    fv_reply_json(r, 202, job_json(j));
    pthread_mutex_unlock(&ev->lock);
    j = NULL;
done:
    job_free(j);
    cJSON_Delete(root);
}

/* ---- GET /v1/evaluations/{id}[/roc.svg] ---- */

void fv_handle_evaluation_get(const struct fv_handler_env *env, const struct fv_request *req,
                              struct fv_reply *r)
{
    struct fv_evaluations *ev = env->evaluations;
    static const char prefix[] = "/v1/evaluations/";
    const char *tail = req->path + sizeof prefix - 1;
    size_t id_len = strcspn(tail, "/");
    const char *rest = tail + id_len;
    int svg = strcmp(rest, "/roc.svg") == 0;
    if (id_len != ID_LEN || (*rest && !svg) || strspn(tail, "0123456789abcdef") < ID_LEN) {
        fv_reply_error(r, 404, "not_found", NULL, "no route %s", req->path);
        return;
    }
    pthread_mutex_lock(&ev->lock);
    struct job *j = ev->jobs;
    while (j && strncmp(j->id, tail, ID_LEN) != 0)
        j = j->next;
    if (!j) {
        pthread_mutex_unlock(&ev->lock);
        fv_reply_error(r, 404, "not_found", NULL,
                       "no evaluation %.*s (unknown, or finished long enough ago to be forgotten)",
                       ID_LEN, tail);
        return;
    }
    if (!svg)
        fv_reply_json(r, 200, job_json(j));
    else if (j->state == JOB_DONE && j->svg)
        fv_reply_text(r, 200, "image/svg+xml", j->svg, strlen(j->svg));
    else
        fv_reply_error(r, 409, "not_done", NULL, "evaluation %s is %s; its ROC exists once done",
                       j->id, state_names[j->state]);
    pthread_mutex_unlock(&ev->lock);
}
