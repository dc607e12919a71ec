/* evaluations.c - evaluation jobs: submission checks, the job thread, the status, ROC and
 * cancel routes, and the shared jobs folder through which replicas answer for each other.
 *
 * Jobs across replicas (--jobs-dir DIR)
 * -------------------------------------
 * Replicas behind a proxy share nothing but DIR (a local folder, or NFS between
 * machines): a POST may land on one replica and the GETs and the cancel on
 * others. Without DIR, everything below is skipped and jobs live in this
 * process's memory, as they always did. With it, DIR is the only truth for GET
 * and cancel on every replica, the one that accepted the job included; memory
 * keeps just the inputs of this replica's own waiting and running jobs.
 *
 * - Records (jobs_dir.h): <id>.live.json holds a waiting or running job's view
 *   (the GET body) plus a lease {owner, renewed_ms, lease_ms}; it is replaced
 *   whole (temporary file, fsync, rename). <id>.final.json holds the outcome,
 *   done or failed, plus the ROC SVG; it is created once with link(2), so the
 *   first writer decides the outcome and nothing overwrites it. GET reads the
 *   final record, else the live one.
 * - Ids are 128 random bits in hex, never a counter; the first live record is
 *   created with link(2) too, so a duplicate id is detected and redrawn.
 * - The owner, the replica that accepted the POST, queues and runs the job. Its
 *   watcher thread polls every 250 ms (or lease/4 when shorter) and republishes
 *   the live record: at once when the state changes, at most once a second for
 *   progress, and at least every lease/4 to renew the lease.
 * - An owner that dies leaves a live record whose lease runs out. Whoever notices
 *   (a GET or a cancel on any replica, or the sweep that runs whenever a job
 *   finishes) writes the final record: failed, code "owner_lost". We fail such a
 *   job rather than have another replica claim it: a claim would need the inputs
 *   in DIR (inline pairs are up to --max-body of images), the same data root on
 *   every replica, and a way to fence off an owner that was only paused and wakes
 *   up still running. With the write-once final record, a woken owner finds the
 *   outcome decided (its watcher sees the final record), stops, and cannot change
 *   it. Evaluations are deterministic, so the client just submits again. The
 *   replicas' clocks must agree to well within the lease (30 s by default; NTP).
 * - Cancel (POST /v1/evaluations/{id}/cancel, any replica) creates <id>.cancel.
 *   The owner's watcher sees it within a tick: a waiting job is finished at
 *   once, a running one stops before its next image (the features callback) and
 *   its owner writes the final record, failed with code "cancelled".
 * - Retention (max_finished): a replica that writes a final record lists the
 *   final records oldest first (by mtime, then id: one order for everyone) and
 *   deletes all but the newest max_finished, the live record and marker before
 *   the final one. Two replicas doing this at once never delete one of the
 *   newest max_finished: each deletes only records that its own listing shows to
 *   have max_finished newer ones, and listings only grow but for deletions. The
 *   last replica to list after the last write sees every record, so exactly
 *   max_finished remain.
 * - Shutdown: the running job and the waiting ones end as failed "cancelled",
 *   each with its final record, so no reader has to wait out a lease.
 * - Ids in URLs are checked (32 lowercase hex digits) before any path is formed;
 *   anything else is a 404 that never touches DIR.
 */
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

#include "api/jobs_dir.h"
#include "api/routes.h"
#include "eval/features.h"
#include "eval/pairs.h"
#include "eval/protocol.h"
#include "eval/report.h"

#define ID_BYTES 16
#define ID_LEN (2 * ID_BYTES)
_Static_assert(ID_LEN == FV_JOBS_ID_LEN, "job ids are the jobs folder's ids");
#define REL_PATH_MAX 1024
#define MAX_FOLDS 20
#define DEFAULT_FILE_PCA_DIM 128
/* Jobs folder: the watcher's period, how often progress is republished, the
 * largest record read back, and when a temporary file counts as abandoned. */
#define WATCH_MS 250
#define PROGRESS_MS 1000
#define RECORD_MAX ((size_t)64 << 20)
#define TEMP_AGE_S 3600

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_STATE_COUNT };

static const char *const state_names[] = {"queued", "running", "done", "failed"};
_Static_assert(sizeof state_names / sizeof state_names[0] == JOB_STATE_COUNT, "one name a state");

/* Why a job should stop before it is done (job.cancel). */
enum cancel_reason {
    CANCEL_NONE,
    CANCEL_CLIENT, /* POST .../cancel, here or (through the marker) on another replica */
    CANCEL_LOST,   /* the jobs folder already holds its outcome: owner_lost, decided elsewhere */
};

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
    atomic_int cancel;  /* enum cancel_reason */
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
    enum fv_api_code error_code; /* valid when failed is set */
    int failed;
    char error_message[FV_ERROR_MESSAGE_MAX];

    /* what the watcher last wrote to the jobs folder (watcher only) */
    enum job_state published_state;
    size_t published_done;
    double published_ms;
};

struct fv_evaluations {
    const struct fv_pipeline *pipe;
    struct fv_evaluations_params params;
    char *root; /* realpath of params.data_root, NULL when none */
    size_t root_len;

    pthread_mutex_t lock; /* guards the jobs list and every job's state fields */
    pthread_cond_t wake;
    struct job *jobs; /* with a jobs folder: only this replica's waiting and running ones */
    int n_queued, n_finished, running;
    atomic_int stopping;
    pthread_t thread;
    int thread_started;
    uint64_t serial; /* for ids when the kernel has no randomness to give */

    /* With a jobs folder (NULL otherwise). publish serialises this replica's
     * writes of its jobs' records and is held whenever a job leaves the list,
     * so the watcher's snapshot of the list stays valid; take it before lock. */
    struct fv_jobs_dir *dir;
    char owner[128]; /* host:pid, named in lease records */
    pthread_mutex_t publish;
    pthread_cond_t watch_wake; /* CLOCK_MONOTONIC */
    pthread_t watcher;
    int watcher_started;
    atomic_int closing; /* the watcher's stop: later than stopping, so leases live on while
                           requests in flight drain */
    struct job **scratch; /* the watcher's snapshot of the list */
    size_t scratch_cap;
    double beat_ms; /* lease renewal period: lease_ms / 4 */
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
        .jobs_dir = NULL,
        .lease_ms = 30000,
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

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static cJSON *job_json(const struct job *j);
static void evict_dir(struct fv_evaluations *ev);

/* ---- the job thread ---- */

static void job_fail(struct job *j, enum fv_api_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the failure (kept until the job is finished under the lock). */
static void job_fail(struct job *j, enum fv_api_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    j->error_code = code;
    j->failed = 1;
    vsnprintf(j->error_message, sizeof j->error_message, fmt, ap);
    va_end(ap);
}

/* Whether the job should stop: the server is stopping or somebody cancelled it. */
static int job_stopping(const struct fv_evaluations *ev, struct job *j)
{
    return atomic_load(&ev->stopping) || atomic_load(&j->cancel) != CANCEL_NONE;
}

/* Fails a job that job_stopping stopped, saying why. */
static void job_fail_stopped(const struct fv_evaluations *ev, struct job *j)
{
    if (atomic_load(&j->cancel) == CANCEL_CLIENT)
        job_fail(j, FV_API_CODE_CANCELLED, "a client cancelled the evaluation");
    else if (atomic_load(&j->cancel) == CANCEL_LOST)
        job_fail(j, FV_API_CODE_OWNER_LOST,
                 "another replica declared this replica's lease expired");
    else if (atomic_load(&ev->stopping))
        job_fail(j, FV_API_CODE_CANCELLED, "the server shut down during the evaluation");
}

static void set_progress(struct fv_evaluations *ev, struct job *j, size_t done, size_t total)
{
    pthread_mutex_lock(&ev->lock);
    j->done = done;
    j->total = total;
    pthread_mutex_unlock(&ev->lock);
}

/* The callbacks of fv_features_extract for a job. */
struct job_context {
    struct fv_evaluations *ev;
    struct job *job;
};

static void on_features_progress(void *user, size_t done, size_t total)
{
    struct job_context *c = user;
    set_progress(c->ev, c->job, done, total);
}

static int on_features_cancel(void *user)
{
    struct job_context *c = user;
    return job_stopping(c->ev, c->job);
}

/* Whether path (absolute, resolved) lies in the data root. */
static int under_root(const struct fv_evaluations *ev, const char *path)
{
    if (ev->root_len == 1) /* the root is "/" */
        return path[0] == '/';
    return strncmp(path, ev->root, ev->root_len) == 0 &&
           (path[ev->root_len] == '/' || path[ev->root_len] == 0);
}

/* The features of every image of the job: from files below the data root, or
 * from the inline images (names[i] naming image i). 0, or -1 with the job's
 * error set. */
static int job_features(struct fv_evaluations *ev, struct job *j, const char **names,
                        size_t n, float *features, enum fv_feature_source *how)
{
    if (j->pairs_path) {
        /* Each image must resolve inside the root too: a symlink planted among the
         * images could otherwise read any JPEG on the machine. A missing image is
         * left for extraction to report as unreadable. */
        char full[PATH_MAX + REL_PATH_MAX], resolved[PATH_MAX];
        for (size_t i = 0; i < n; i++) {
            snprintf(full, sizeof full, "%s/%s", j->images_dir, names[i]);
            if (realpath(full, resolved) && !under_root(ev, resolved)) {
                job_fail(j, FV_API_CODE_FORBIDDEN_PATH, "image %s leads outside the data root",
                         names[i]);
                return -1;
            }
        }
    }
    struct fv_features_params fp = fv_features_default_params();
    struct job_context context = {ev, j};
    fp.threads = ev->params.threads;
    fp.landmarks_path = j->landmarks_path;
    fp.policy = FV_FACE_CENTER;
    fp.progress = on_features_progress;
    fp.progress_user = &context;
    fp.cancel = on_features_cancel;
    fp.cancel_user = &context;
    struct fv_features_blob *blobs = NULL;
    if (!j->pairs_path) {
        if (!(blobs = malloc(n * sizeof *blobs))) {
            job_fail(j, FV_API_CODE_INTERNAL, "out of memory for %zu images", n);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            blobs[i].data = j->images[i].data;
            blobs[i].size = j->images[i].size;
        }
    }
    struct fv_error err = {0};
    struct fv_features_stats stats;
    enum fv_status st =
        blobs ? fv_features_extract_blobs(ev->pipe, blobs, names, n, &fp, features, how, &stats,
                                          &err)
              : fv_features_extract(ev->pipe, j->images_dir, names, n, &fp, features, how, &stats,
                                    &err);
    free(blobs);
    if (st == FV_ERR_CANCELLED) {
        job_fail_stopped(ev, j);
        return -1;
    }
    if (st) {
        enum fv_api_code code;
        fv_reply_status_of(st, &code);
        job_fail(j, st == FV_ERR_FORMAT || st == FV_ERR_IO ? FV_API_CODE_BAD_LANDMARKS : code, "%s",
                 err.message[0] ? err.message : fv_status_str(st));
        return -1;
    }
    if (stats.failed > 0) {
        job_fail(j, FV_API_CODE_BAD_IMAGE, "%s: %s", names[stats.first_failed],
                 stats.first_failure[0] ? stats.first_failure : "cannot be read or embedded");
        return -1;
    }
    return 0;
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

    if (job_stopping(ev, j)) { /* cancelled while it waited */
        job_fail_stopped(ev, j);
        goto done;
    }
    if (j->pairs_path) {
        struct fv_pairs_params pp = fv_pairs_default_params();
        pp.max_pairs = ev->params.max_file_pairs;
        if ((st = fv_pairs_load(j->pairs_path, &pp, &pairs, &err))) {
            job_fail(j, st == FV_ERR_NOMEM ? FV_API_CODE_INTERNAL : FV_API_CODE_BAD_PAIRS, "%s: %s",
                     j->pairs_name, err.message);
            goto done;
        }
        snprintf(title, sizeof title, "%s on %s", model, j->pairs_name);
    } else {
        size_t size;
        text = inline_pairs_text(j, &size);
        if (!text) {
            job_fail(j, FV_API_CODE_INTERNAL, "out of memory");
            goto done;
        }
        if ((st = fv_pairs_parse(text, size, "inline pairs", NULL, &pairs, &err))) {
            job_fail(j, FV_API_CODE_INTERNAL, "%s", err.message);
            goto done;
        }
        snprintf(title, sizeof title, "%s on %zu inline pairs", model, j->n_pairs);
    }
    size_t n = fv_pairs_image_count(pairs), d = (size_t)fv_pipeline_raw_dim(ev->pipe);
    if (n > SIZE_MAX / sizeof(float) / d) {
        job_fail(j, FV_API_CODE_TOO_LARGE, "%zu images are too many", n);
        goto done;
    }
    features = malloc(n * d * sizeof *features);
    how = malloc(n * sizeof *how);
    paths = malloc(n * sizeof *paths);
    failures = calloc(n, sizeof *failures);
    if (!j->pairs_path)
        names = malloc(n * sizeof *names);
    if (!features || !how || !paths || !failures || (!j->pairs_path && !names)) {
        job_fail(j, FV_API_CODE_INTERNAL, "out of memory for %zu images", n);
        goto done;
    }
    set_progress(ev, j, 0, n);
    for (size_t i = 0; i < n; i++) {
        if (j->pairs_path) {
            paths[i] = fv_pairs_image_path(pairs, i);
        } else {
            snprintf(names[i], sizeof names[i], "pairs[%zu].image%d", j->source_index[i / 2],
                     (int)(i % 2) + 1);
            paths[i] = names[i];
        }
    }
    if (job_features(ev, j, paths, n, features, how))
        goto done;
    size_t n_failures = 0;
    for (size_t i = 0; i < n; i++) {
        if (how[i] == FV_FEATURE_DETECTED)
            continue;
        failures[n_failures].image = paths[i];
        failures[n_failures].fallback_used = 1;
        failures[n_failures].fallback = fv_feature_source_name(how[i]);
        n_failures++;
    }
    if (job_stopping(ev, j)) { /* before the protocol, which is not interruptible */
        job_fail_stopped(ev, j);
        goto done;
    }
    struct fv_protocol_params pp = fv_protocol_default_params();
    pp.pca_dim = j->pca_dim;
    pp.compare_without_pca = true;
    if ((st = fv_protocol_run(features, n, d, pairs, &pp, &result, &err))) {
        job_fail(j, st == FV_ERR_NOMEM ? FV_API_CODE_INTERNAL : FV_API_CODE_INVALID_VALUE, "%s",
                 err.message);
        goto done;
    }
    struct fv_report_params rp = fv_report_default_params();
    rp.title = title;
    char *report = fv_report_json(result, failures, n_failures, &rp, &err);
    char *svg = report ? fv_report_svg(result, &rp, &err) : NULL;
    if (!svg) {
        free(report);
        job_fail(j, FV_API_CODE_INTERNAL, "report: %s", err.message);
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

/* Takes j out of the jobs list. Called with the lock held. */
static void unlink_job(struct fv_evaluations *ev, struct job *j)
{
    for (struct job **link = &ev->jobs; *link; link = &(*link)->next)
        if (*link == j) {
            *link = j->next;
            j->next = NULL;
            return;
        }
}

/* ---- the jobs folder ---- */

/* The record of j for the jobs folder: its GET view, plus the lease while it is
 * unfinished and the ROC SVG once done. Called with the lock held, or on a job
 * no other thread can reach. NULL when out of memory. */
static char *record_text(const struct fv_evaluations *ev, const struct job *j, size_t *len)
{
    cJSON *o = job_json(j);
    int ok = o != NULL;
    if (ok && (j->state == JOB_QUEUED || j->state == JOB_RUNNING)) {
        cJSON *lease = cJSON_AddObjectToObject(o, "lease");
        ok = lease && cJSON_AddStringToObject(lease, "owner", ev->owner) &&
             cJSON_AddNumberToObject(lease, "renewed_ms", floor(wall_ms())) &&
             cJSON_AddNumberToObject(lease, "lease_ms", ev->params.lease_ms);
    } else if (ok && j->state == JOB_DONE && j->svg) {
        ok = cJSON_AddStringToObject(o, "roc_svg", j->svg) != NULL;
    }
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (text)
        *len = strlen(text);
    return text;
}

/* Writes the outcome of j (failed or done, out of the list, in no other
 * thread's hands) as its final record, unless one exists, then frees j. Called
 * with publish held (or with no thread left). 1 when this wrote the record. */
static int finish_in_dir(struct fv_evaluations *ev, struct job *j)
{
    int created = 0;
    if (atomic_load(&j->cancel) != CANCEL_LOST) {
        size_t len = 0;
        char *text = record_text(ev, j, &len);
        if (text && fv_jobs_dir_put_once(ev->dir, j->id, FV_JOBS_FINAL, text, len, &created,
                                         NULL) == FV_OK && created) {
            fv_jobs_dir_delete(ev->dir, j->id, FV_JOBS_LIVE);
            fv_jobs_dir_delete(ev->dir, j->id, FV_JOBS_CANCEL);
        }
        /* Out of memory or a write error: the live record stays, its lease runs
         * out, and readers report the job lost. Nothing better is left to do. */
        free(text);
    }
    job_free(j);
    return created;
}

/* Reads and checks a record: 0 with *out, or a status (FV_ERR_NOT_FOUND when
 * there is none) with err set. */
static enum fv_status read_record(struct fv_evaluations *ev, const char *id,
                                  enum fv_jobs_file kind, cJSON **out, struct fv_error *err)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    enum fv_status st = fv_jobs_dir_get(ev->dir, id, kind, RECORD_MAX, &text, &len, err);
    if (st)
        return st;
    cJSON *o = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(o, "status");
    int known = 0;
    for (int s = 0; cJSON_IsString(status) && s < JOB_STATE_COUNT; s++)
        known |= strcmp(status->valuestring, state_names[s]) == 0;
    if (!cJSON_IsObject(o) || !cJSON_IsString(rid) || strcmp(rid->valuestring, id) != 0 ||
        !known) {
        cJSON_Delete(o);
        return fv_error_set(err, FV_ERR_FORMAT, "the record of evaluation %s is damaged", id);
    }
    *out = o;
    return FV_OK;
}

static int record_has_status(const cJSON *o, enum job_state s)
{
    return strcmp(cJSON_GetObjectItemCaseSensitive(o, "status")->valuestring, state_names[s]) == 0;
}

/* Whether a live record's lease has run out (a missing or damaged lease counts
 * as run out: nobody renews it). */
static int lease_expired(const cJSON *o, double now_ms)
{
    if (!record_has_status(o, JOB_QUEUED) && !record_has_status(o, JOB_RUNNING))
        return 0;
    const cJSON *lease = cJSON_GetObjectItemCaseSensitive(o, "lease");
    const cJSON *renewed = cJSON_GetObjectItemCaseSensitive(lease, "renewed_ms");
    const cJSON *length = cJSON_GetObjectItemCaseSensitive(lease, "lease_ms");
    if (!cJSON_IsNumber(renewed) || !cJSON_IsNumber(length) || !isfinite(renewed->valuedouble) ||
        !isfinite(length->valuedouble))
        return 1;
    return now_ms > renewed->valuedouble + length->valuedouble;
}

static void add_time(cJSON *o, const char *name, time_t t);

/* Turns a live record whose lease ran out into the job's final record: failed,
 * owner_lost (unless a final record exists already; that one stands). Takes o. */
static enum fv_status finish_lost(struct fv_evaluations *ev, const char *id, cJSON *o,
                                  struct fv_error *err)
{
    const cJSON *lease = cJSON_GetObjectItemCaseSensitive(o, "lease");
    const cJSON *owner = cJSON_GetObjectItemCaseSensitive(lease, "owner");
    const cJSON *renewed = cJSON_GetObjectItemCaseSensitive(lease, "renewed_ms");
    char message[FV_ERROR_MESSAGE_MAX];
    double ago_s = cJSON_IsNumber(renewed) ? (wall_ms() - renewed->valuedouble) / 1e3 : NAN;
    snprintf(message, sizeof message,
             "replica %s, which ran this evaluation, stopped renewing its lease %.0f s ago (it "
             "died, hung or lost the jobs folder); submit the evaluation again",
             cJSON_IsString(owner) ? owner->valuestring : "(unknown)", ago_s);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "lease");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "error");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "finished_at");
    cJSON_ReplaceItemInObjectCaseSensitive(o, "status", cJSON_CreateString("failed"));
    add_time(o, "finished_at", time(NULL));
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    char *text = e && cJSON_AddStringToObject(e, "code", fv_api_code_str(FV_API_CODE_OWNER_LOST)) &&
                         cJSON_AddStringToObject(e, "message", message)
                     ? cJSON_PrintUnformatted(o)
                     : NULL;
    cJSON_Delete(o);
    if (!text)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    int created = 0;
    enum fv_status st = fv_jobs_dir_put_once(ev->dir, id, FV_JOBS_FINAL, text, strlen(text),
                                             &created, err);
    free(text);
    if (st == FV_OK && created) {
        fv_jobs_dir_delete(ev->dir, id, FV_JOBS_LIVE);
        fv_jobs_dir_delete(ev->dir, id, FV_JOBS_CANCEL);
    }
    return st;
}

/* The job's record as any replica sees it: the final one, else the live one (a
 * live one with an expired lease is made final as owner_lost first). 0 with
 * *out, or FV_ERR_NOT_FOUND, or another status with err set. */
static enum fv_status load_record(struct fv_evaluations *ev, const char *id, cJSON **out,
                                  struct fv_error *err)
{
    *out = NULL;
    /* Twice: a job may finish (and its live record go) between the two reads, or
     * be made final here; the second pass then finds its final record. */
    for (int pass = 0; pass < 2; pass++) {
        cJSON *o = NULL;
        enum fv_status st = read_record(ev, id, FV_JOBS_FINAL, &o, err);
        if (st != FV_ERR_NOT_FOUND) {
            *out = o;
            return st;
        }
        st = read_record(ev, id, FV_JOBS_LIVE, &o, err);
        if (st == FV_ERR_NOT_FOUND)
            continue;
        if (st)
            return st;
        if (!lease_expired(o, wall_ms())) {
            *out = o;
            return FV_OK;
        }
        if ((st = finish_lost(ev, id, o, err)))
            return st;
        evict_dir(ev);
    }
    return fv_error_set(err, FV_ERR_NOT_FOUND, "no evaluation %s", id);
}

/* Retention and clean-up of the jobs folder, safe with other replicas doing the
 * same at the same time (see the top of this file). */
static void evict_dir(struct fv_evaluations *ev)
{
    struct fv_jobs_entry *list = NULL;
    size_t n = 0;
    double now = wall_ms();
    /* Jobs whose owner died while nobody asked about them. */
    if (fv_jobs_dir_list(ev->dir, FV_JOBS_LIVE, &list, &n, NULL) == FV_OK) {
        for (size_t i = 0; i < n; i++) {
            cJSON *o = NULL;
            if (fv_jobs_dir_has(ev->dir, list[i].id, FV_JOBS_FINAL) ||
                read_record(ev, list[i].id, FV_JOBS_LIVE, &o, NULL) != FV_OK)
                continue;
            if (lease_expired(o, now))
                finish_lost(ev, list[i].id, o, NULL);
            else
                cJSON_Delete(o);
        }
    }
    free(list);
    if (fv_jobs_dir_list(ev->dir, FV_JOBS_FINAL, &list, &n, NULL) == FV_OK) {
        size_t keep = (size_t)ev->params.max_finished;
        for (size_t i = 0; n > keep && i < n - keep; i++)
            fv_jobs_dir_remove(ev->dir, list[i].id);
    }
    free(list);
    fv_jobs_dir_sweep(ev->dir, TEMP_AGE_S);
}

/* One round of the watcher: notice cancel markers and outcomes decided
 * elsewhere, finish cancelled waiting jobs, republish the live records due. */
static void watch_once(struct fv_evaluations *ev)
{
    int finished = 0;
    pthread_mutex_lock(&ev->publish);
    pthread_mutex_lock(&ev->lock);
    size_t n = 0;
    for (struct job *j = ev->jobs; j && n < ev->scratch_cap; j = j->next)
        ev->scratch[n++] = j;
    pthread_mutex_unlock(&ev->lock);
    /* File checks outside the lock: jobs leave the list only under publish. */
    for (size_t i = 0; i < n; i++) {
        struct job *j = ev->scratch[i];
        if (fv_jobs_dir_has(ev->dir, j->id, FV_JOBS_FINAL))
            atomic_store(&j->cancel, CANCEL_LOST);
        else if (atomic_load(&j->cancel) == CANCEL_NONE &&
                 fv_jobs_dir_has(ev->dir, j->id, FV_JOBS_CANCEL))
            atomic_store(&j->cancel, CANCEL_CLIENT);
    }
    double now = monotonic_ms();
    for (size_t i = 0; i < n; i++) {
        struct job *j = ev->scratch[i];
        char *text = NULL;
        size_t len = 0;
        pthread_mutex_lock(&ev->lock);
        if (j->state == JOB_QUEUED && atomic_load(&j->cancel) != CANCEL_NONE) {
            /* Cancelled while waiting: finished here, the job thread never sees it. */
            unlink_job(ev, j);
            ev->n_queued--;
            j->state = JOB_FAILED;
            j->finished = time(NULL);
            job_fail_stopped(ev, j);
            pthread_mutex_unlock(&ev->lock);
            finished |= finish_in_dir(ev, j);
            continue;
        }
        int due = j->state != j->published_state || now - j->published_ms >= ev->beat_ms ||
                  (j->done != j->published_done && now - j->published_ms >= PROGRESS_MS);
        if (due && atomic_load(&j->cancel) != CANCEL_LOST) {
            text = record_text(ev, j, &len);
            j->published_state = j->state;
            j->published_done = j->done;
            j->published_ms = now;
        }
        pthread_mutex_unlock(&ev->lock);
        /* A failed write is retried at the next renewal; if the folder stays
         * unwritable, the lease runs out and readers report the job lost. */
        if (text)
            fv_jobs_dir_put(ev->dir, j->id, FV_JOBS_LIVE, text, len, NULL);
        free(text);
    }
    pthread_mutex_unlock(&ev->publish);
    if (finished)
        evict_dir(ev);
}

static void *watch_thread(void *arg)
{
    struct fv_evaluations *ev = arg;
    double period = ev->beat_ms < WATCH_MS ? ev->beat_ms : WATCH_MS;
    pthread_mutex_lock(&ev->lock);
    while (!atomic_load(&ev->closing)) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        long long ns = (long long)until.tv_nsec + (long long)(period * 1e6);
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&ev->watch_wake, &ev->lock, &until);
        if (atomic_load(&ev->closing))
            break;
        pthread_mutex_unlock(&ev->lock);
        watch_once(ev);
        pthread_mutex_lock(&ev->lock);
    }
    pthread_mutex_unlock(&ev->lock);
    return NULL;
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
        if (ev->dir)
            pthread_cond_signal(&ev->watch_wake); /* publish "running" now */
        pthread_mutex_unlock(&ev->lock);

        run_job(ev, j);

        if (ev->dir) {
            /* The folder keeps the outcome; memory forgets the job. */
            pthread_mutex_lock(&ev->publish);
            pthread_mutex_lock(&ev->lock);
            j->state = j->report ? JOB_DONE : JOB_FAILED;
            j->finished = time(NULL);
            ev->running = 0;
            unlink_job(ev, j);
            pthread_mutex_unlock(&ev->lock);
            int finished = finish_in_dir(ev, j);
            pthread_mutex_unlock(&ev->publish);
            if (finished)
                evict_dir(ev);
            pthread_mutex_lock(&ev->lock);
            continue;
        }
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

/* Opens the jobs folder and starts the watcher. */
static enum fv_status start_jobs_dir(struct fv_evaluations *ev, const char *path,
                                     struct fv_error *err)
{
    enum fv_status st = fv_jobs_dir_open(path, &ev->dir, err);
    if (st)
        return st;
    char host[64] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "unknown-host");
    snprintf(ev->owner, sizeof ev->owner, "%s:%d", host, (int)getpid());
    ev->beat_ms = ev->params.lease_ms / 4.0;
    ev->scratch_cap = (size_t)ev->params.max_queued + 2;
    if (!(ev->scratch = calloc(ev->scratch_cap, sizeof *ev->scratch)))
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    if (pthread_create(&ev->watcher, NULL, watch_thread, ev))
        return fv_error_set(err, FV_ERR_NOMEM, "cannot start the evaluation watcher thread");
    ev->watcher_started = 1;
    evict_dir(ev); /* what replicas that are gone left behind */
    return FV_OK;
}

enum fv_status fv_evaluations_new(const struct fv_pipeline *pipe,
                                  const struct fv_evaluations_params *params,
                                  struct fv_evaluations **out, struct fv_error *err)
{
    *out = NULL;
    if (!pipe || params->threads < 1 || params->threads > 256 || params->max_queued < 0 ||
        params->max_finished < 1 || params->max_inline_pairs < 2 || params->max_file_pairs < 2 ||
        params->lease_ms < 1000 || params->lease_ms > 86400000)
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "evaluations: threads must be 1..256, the queue >= 0, kept jobs "
                            ">= 1, pair limits >= 2 and the lease 1000..86400000 ms");
    struct fv_evaluations *ev = calloc(1, sizeof *ev);
    if (!ev)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    ev->pipe = pipe;
    ev->params = *params;
    ev->params.data_root = NULL; /* borrowed strings: only resolved copies are kept */
    ev->params.jobs_dir = NULL;
    pthread_mutex_init(&ev->lock, NULL);
    pthread_cond_init(&ev->wake, NULL);
    pthread_mutex_init(&ev->publish, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&ev->watch_wake, &monotonic);
    pthread_condattr_destroy(&monotonic);
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
    if (params->jobs_dir && *params->jobs_dir &&
        (st = start_jobs_dir(ev, params->jobs_dir, err)))
        goto fail;
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
    pthread_mutex_lock(&ev->lock);
    atomic_store(&ev->closing, 1);
    pthread_cond_broadcast(&ev->watch_wake);
    pthread_mutex_unlock(&ev->lock);
    if (ev->watcher_started)
        pthread_join(ev->watcher, NULL);
    int finished = 0;
    while (ev->jobs) {
        struct job *j = ev->jobs;
        ev->jobs = j->next;
        if (ev->dir) { /* still waiting: tell the other replicas it never will run */
            j->state = JOB_FAILED;
            j->finished = time(NULL);
            if (atomic_load(&j->cancel) != CANCEL_NONE)
                job_fail_stopped(ev, j);
            else
                job_fail(j, FV_API_CODE_CANCELLED,
                         "the server shut down before the evaluation started");
            finished |= finish_in_dir(ev, j);
        } else {
            job_free(j);
        }
    }
    if (finished)
        evict_dir(ev);
    fv_jobs_dir_free(ev->dir);
    free(ev->scratch);
    free(ev->root);
    pthread_mutex_destroy(&ev->lock);
    pthread_cond_destroy(&ev->wake);
    pthread_mutex_destroy(&ev->publish);
    pthread_cond_destroy(&ev->watch_wake);
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
        cJSON_AddStringToObject(e, "code",
                                fv_api_code_str(j->failed ? j->error_code : FV_API_CODE_INTERNAL));
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
        /* No entropy yet (early boot): unique, if guessable; the host name keeps
         * replicas on other machines apart. */
        struct timespec ts;
        char host[64] = "";
        gethostname(host, sizeof host - 1);
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t a = fv_hash64(&ts, sizeof ts, ++ev->serial);
        a = fv_hash64(host, strlen(host), a);
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
        return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, field,
                              "%s must be a path of 1..%d bytes", field, REL_PATH_MAX);
    if (rel[0] == '/')
        return fv_reply_error(r, 403, FV_API_CODE_FORBIDDEN_PATH, field,
                              "%s must be relative to the data root, not absolute", field);
    for (const char *c = rel; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return fv_reply_error(r, 403, FV_API_CODE_FORBIDDEN_PATH, field,
                                  "%s may not contain '..' components", field);
        c += n;
        while (*c == '/')
            c++;
    }
    for (const char *c = rel; *c; c++)
        if ((unsigned char)*c < 0x20)
            return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, field,
                                  "%s contains control characters", field);
    char *full = malloc(ev->root_len + len + 2);
    if (!full)
        return fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
    sprintf(full, "%s/%s", ev->root, rel);
    char *resolved = realpath(full, NULL);
    int e = errno;
    free(full);
    if (!resolved)
        return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, field,
                              "%s: %s under the data root", rel,
                              e == ENOENT || e == ENOTDIR ? "no such file or folder" : strerror(e));
    if (!under_root(ev, resolved)) {
        free(resolved);
        return fv_reply_error(r, 403, FV_API_CODE_FORBIDDEN_PATH, field,
                              "%s leads outside the data root", field);
    }
    struct stat sb;
    if (stat(resolved, &sb) || (want_dir ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode))) {
        free(resolved);
        return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, field, "%s must be a %s", field,
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
        return -fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, name,
                               "%s must be an integer in %ld..%ld", name, lo, hi);
    *out = (long)v->valuedouble;
    return 1;
}

static int file_job(const struct fv_handler_env *env, const cJSON *root, struct job *j,
                    struct fv_reply *r)
{
    struct fv_evaluations *ev = env->evaluations;
    if (!ev->root)
        return fv_reply_error(r, 422, FV_API_CODE_NO_DATA_ROOT, "pairs",
                              "this server has no --data-root, so only inline evaluations "
                              "(pairs as an array of images) are possible");
    static const char *const fields[] = {"images", "pairs", "landmarks"};
    const char *values[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, fields[k]);
        if (!v || cJSON_IsNull(v)) {
            if (k < 2)
                return fv_reply_error(r, 400, FV_API_CODE_MISSING_FIELD, fields[k],
                                      "%s is required", fields[k]);
            continue;
        }
        if (!cJSON_IsString(v))
            return fv_reply_error(r, 400, FV_API_CODE_INVALID_FIELD, fields[k],
                                  "%s must be a path relative to the data root", fields[k]);
        values[k] = v->valuestring;
    }
    int status;
    if ((status = resolve_path(ev, "images", values[0], 1, &j->images_dir, r)) ||
        (status = resolve_path(ev, "pairs", values[1], 0, &j->pairs_path, r)) ||
        (values[2] && (status = resolve_path(ev, "landmarks", values[2], 0, &j->landmarks_path, r))))
        return status;
    if (!(j->pairs_name = strdup(values[1])))
        return fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
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
        return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, "pairs",
                              "an inline evaluation needs at least 2 pairs");
    if (n > ev->params.max_inline_pairs)
        return fv_reply_error(r, 413, FV_API_CODE_TOO_MANY_PAIRS, "pairs",
                              "at most %d inline pairs; put larger sets under the data root",
                              ev->params.max_inline_pairs);
    long folds = 2;
    int got = json_int(root, "folds", 2, MAX_FOLDS, &folds, r);
    if (got < 0)
        return -got;
    if (folds > n)
        return fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, "folds",
                              "%ld folds need at least as many pairs, got %d", folds, n);
    j->n_pairs = (size_t)n;
    j->n_folds = (size_t)folds;
    j->images = calloc(2 * (size_t)n, sizeof *j->images);
    j->same = calloc((size_t)n, sizeof *j->same);
    j->source_index = calloc(2 * (size_t)n, sizeof *j->source_index);
    long *fold = calloc((size_t)n, sizeof *fold);
    if (!j->images || !j->same || !j->source_index || !fold) {
        free(fold);
        return fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
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
            status = fv_reply_error(r, 400, FV_API_CODE_INVALID_FIELD, field,
                                    "%s must be an object {image1, image2, same, fold}", field);
            goto done;
        }
        for (int k = 0; k < 2; k++) {
            snprintf(field, sizeof field, "pairs[%d].image%d", i, k + 1);
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, k ? "image2" : "image1");
            if (!v || cJSON_IsNull(v)) {
                status = fv_reply_error(r, 400, FV_API_CODE_MISSING_FIELD, field, "%s is required",
                                        field);
                goto done;
            }
            struct blob *b = &blobs[2 * i + k];
            if ((status = fv_api_image_from_json(v, field, &b->data, &b->size, r)))
                goto done;
        }
        snprintf(field, sizeof field, "pairs[%d].same", i);
        const cJSON *same = cJSON_GetObjectItemCaseSensitive(item, "same");
        if (!cJSON_IsBool(same)) {
            status = fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, field,
                                    "%s must be true (same person) or false", field);
            goto done;
        }
        j->same[i] = cJSON_IsTrue(same);
        n_same += j->same[i];
        snprintf(field, sizeof field, "pairs[%d].fold", i);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(item, "fold");
        int has_fold = f && !cJSON_IsNull(f);
        if (i > 0 && has_fold != with_fold) {
            status = fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, field,
                                    "give fold for every pair or for none");
            goto done;
        }
        with_fold = has_fold;
        if (has_fold) {
            if (!cJSON_IsNumber(f) || f->valuedouble != floor(f->valuedouble) ||
                f->valuedouble < 0 || f->valuedouble >= (double)folds) {
                status = fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, field,
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
        status = fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, "pairs",
                                "%d pairs do not split into %ld folds of equal size", n, folds);
        goto done;
    }
    for (long f = 0; f < folds; f++)
        if (per_fold[f] != (size_t)(n / folds)) {
            status = fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, "pairs",
                                    "every fold must hold the same number of pairs (%ld); "
                                    "fold %ld has %zu",
                                    n / folds, f, per_fold[f]);
            goto done;
        }
    if (n_same == 0 || n_same == n) {
        status = fv_reply_error(r, 422, FV_API_CODE_INVALID_VALUE, "pairs",
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
        status = fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
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

/* Creates the first live record of a new job in the jobs folder under a fresh
 * id (drawn again in the unheard-of case that it exists). 0, or the HTTP
 * status with the reply filled in. */
static int create_record(struct fv_evaluations *ev, struct job *j, struct fv_reply *r)
{
    struct fv_error err = {0};
    for (int attempt = 0; attempt < 4; attempt++) {
        pthread_mutex_lock(&ev->lock); /* make_id's fallback counter */
        make_id(ev, j->id);
        pthread_mutex_unlock(&ev->lock);
        size_t len = 0;
        char *text = record_text(ev, j, &len);
        if (!text)
            return fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
        int created = 0;
        enum fv_status st =
            fv_jobs_dir_put_once(ev->dir, j->id, FV_JOBS_LIVE, text, len, &created, &err);
        free(text);
        if (st)
            return fv_reply_error(r, 503, FV_API_CODE_JOBS_DIR_UNAVAILABLE, NULL,
                                  "cannot record the evaluation: %s", err.message);
        if (created && !fv_jobs_dir_has(ev->dir, j->id, FV_JOBS_FINAL)) {
            j->published_state = j->state;
            j->published_ms = monotonic_ms();
            return 0;
        }
        if (created) /* the id of a finished job whose live record had gone */
            fv_jobs_dir_delete(ev->dir, j->id, FV_JOBS_LIVE);
    }
    return fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "no unused evaluation id");
}

void fv_handle_evaluation_new(const struct fv_handler_env *env, const struct fv_request *req,
                              struct fv_reply *r)
{
    struct fv_evaluations *ev = env->evaluations;
    cJSON *root = NULL;
    struct job *j = NULL;
    if (strncasecmp(req->content_type, "application/json", 16) != 0) {
        fv_reply_error(r, 415, FV_API_CODE_UNSUPPORTED_MEDIA_TYPE, NULL,
                       "evaluations take an application/json body");
        return;
    }
    if (req->body_size == 0) {
        fv_reply_error(r, 400, FV_API_CODE_BAD_JSON, NULL, "the request body is empty");
        return;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts((const char *)req->body, req->body_size, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - (const char *)req->body) : 0;
        fv_reply_error(r, 400, FV_API_CODE_BAD_JSON, NULL, "malformed JSON near byte %zu", at);
        return;
    }
    if (!cJSON_IsObject(root)) {
        fv_reply_error(r, 400, FV_API_CODE_BAD_JSON, NULL, "the JSON body must be an object");
        goto done;
    }
    if (!(j = calloc(1, sizeof *j))) {
        fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
        goto done;
    }
    const cJSON *pairs = cJSON_GetObjectItemCaseSensitive(root, "pairs");
    if (!pairs || cJSON_IsNull(pairs)) {
        fv_reply_error(r, 400, FV_API_CODE_MISSING_FIELD, "pairs",
                       "pairs is required: a path below the data root, or an array of "
                       "{image1, image2, same} objects");
        goto done;
    }
    if (cJSON_IsString(pairs)  ? file_job(env, root, j, r)
        : cJSON_IsArray(pairs) ? inline_job(env, root, pairs, j, r)
                               : fv_reply_error(r, 400, FV_API_CODE_INVALID_FIELD, "pairs",
                                                "pairs must be a path or an array"))
        goto done;

    pthread_mutex_lock(&ev->lock);
    if (atomic_load(&ev->stopping)) {
        pthread_mutex_unlock(&ev->lock);
        fv_reply_error(r, 503, FV_API_CODE_BUSY, NULL, "the server is shutting down");
        goto done;
    }
    /* An idle thread takes one more: it is about to start it. */
    if (ev->n_queued >= ev->params.max_queued + !ev->running) {
        int queued = ev->n_queued;
        pthread_mutex_unlock(&ev->lock);
        fv_reply_error(r, 429, FV_API_CODE_BUSY, NULL,
                       "%d evaluations are already waiting; retry when one has finished", queued);
        goto done;
    }
    j->state = JOB_QUEUED;
    j->created = time(NULL);
    j->total = j->pairs_path ? 0 : 2 * j->n_pairs;
    ev->n_queued++; /* the place is held while the record is written */
    if (ev->dir) {
        pthread_mutex_unlock(&ev->lock);
        int status = create_record(ev, j, r);
        pthread_mutex_lock(&ev->lock);
        if (status) {
            ev->n_queued--;
            pthread_mutex_unlock(&ev->lock);
            goto done;
        }
    } else {
        make_id(ev, j->id);
    }
    struct job **link = &ev->jobs;
    while (*link)
        link = &(*link)->next;
    *link = j;
    pthread_cond_signal(&ev->wake);
    fv_reply_json(r, 202, job_json(j));
    pthread_mutex_unlock(&ev->lock);
    j = NULL;
done:
    job_free(j);
    cJSON_Delete(root);
}

/* ---- GET /v1/evaluations/{id}[/roc.svg], POST /v1/evaluations/{id}/cancel ---- */

/* The id in path /v1/evaluations/{id}<suffix>: 0 with id filled, or -1 (a 404
 * in the reply) for anything else. Nothing reaches the jobs folder unchecked. */
static int path_id(const struct fv_request *req, const char *suffix, char id[ID_LEN + 1],
                   struct fv_reply *r)
{
    static const char prefix[] = "/v1/evaluations/";
    const char *tail = req->path + sizeof prefix - 1;
    size_t id_len = strcspn(tail, "/");
    if (strncmp(req->path, prefix, sizeof prefix - 1) != 0 || !fv_jobs_id_valid(tail, id_len) ||
        strcmp(tail + id_len, suffix) != 0) {
        fv_reply_error(r, 404, FV_API_CODE_NOT_FOUND, NULL, "no route %s", req->path);
        return -1;
    }
    memcpy(id, tail, ID_LEN);
    id[ID_LEN] = 0;
    return 0;
}

static void reply_unknown(struct fv_reply *r, const char *id)
{
    fv_reply_error(r, 404, FV_API_CODE_NOT_FOUND, NULL,
                   "no evaluation %s (unknown, or finished long enough ago to be forgotten)", id);
}

static void reply_not_done(struct fv_reply *r, const char *id, const char *state)
{
    fv_reply_error(r, 409, FV_API_CODE_NOT_DONE, NULL,
                   "evaluation %s is %s; its ROC exists once done", id, state);
}

/* Loads the record of id from the jobs folder: 0, or -1 with the reply filled in. */
static int dir_record(struct fv_evaluations *ev, const char *id, cJSON **out, struct fv_reply *r)
{
    struct fv_error err = {0};
    enum fv_status st = load_record(ev, id, out, &err);
    if (st == FV_ERR_NOT_FOUND) {
        reply_unknown(r, id);
        return -1;
    }
    if (st) {
        fv_reply_error(r, 500, FV_API_CODE_JOBS_DIR_UNAVAILABLE, NULL, "%s", err.message);
        return -1;
    }
    return 0;
}

/* Replies with a record as GET shows it (without the lease and the SVG); takes o. */
static void reply_record(struct fv_reply *r, int status, cJSON *o)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, "lease");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "roc_svg");
    fv_reply_json(r, status, o);
}

static void get_from_dir(struct fv_evaluations *ev, const char *id, int svg, struct fv_reply *r)
{
    cJSON *o = NULL;
    if (dir_record(ev, id, &o, r))
        return;
    if (!svg) {
        reply_record(r, 200, o);
        return;
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "roc_svg");
    if (record_has_status(o, JOB_DONE) && cJSON_IsString(text))
        fv_reply_text(r, 200, "image/svg+xml", text->valuestring, strlen(text->valuestring));
    else
        reply_not_done(r, id, cJSON_GetObjectItemCaseSensitive(o, "status")->valuestring);
    cJSON_Delete(o);
}

void fv_handle_evaluation_get(const struct fv_handler_env *env, const struct fv_request *req,
                              struct fv_reply *r)
{
    struct fv_evaluations *ev = env->evaluations;
    char id[ID_LEN + 1];
    int svg = strlen(req->path) > 8 && strcmp(req->path + strlen(req->path) - 8, "/roc.svg") == 0;
    if (path_id(req, svg ? "/roc.svg" : "", id, r))
        return;
    if (ev->dir) {
        get_from_dir(ev, id, svg, r);
        return;
    }
    pthread_mutex_lock(&ev->lock);
    struct job *j = ev->jobs;
    while (j && strcmp(j->id, id) != 0)
        j = j->next;
    if (!j)
        reply_unknown(r, id);
    else if (!svg)
        fv_reply_json(r, 200, job_json(j));
    else if (j->state == JOB_DONE && j->svg)
        fv_reply_text(r, 200, "image/svg+xml", j->svg, strlen(j->svg));
    else
        reply_not_done(r, id, state_names[j->state]);
    pthread_mutex_unlock(&ev->lock);
}

static void reply_finished(struct fv_reply *r, const char *id, const char *state)
{
    fv_reply_error(r, 409, FV_API_CODE_FINISHED, NULL, "evaluation %s is already %s", id, state);
}

void fv_handle_evaluation_cancel(const struct fv_handler_env *env, const struct fv_request *req,
                                 struct fv_reply *r)
{
    struct fv_evaluations *ev = env->evaluations;
    char id[ID_LEN + 1];
    if (path_id(req, "/cancel", id, r))
        return;
    if (ev->dir) {
        /* The owner (perhaps this replica) polls for the marker and stops the job. */
        cJSON *o = NULL;
        if (dir_record(ev, id, &o, r))
            return;
        if (!record_has_status(o, JOB_QUEUED) && !record_has_status(o, JOB_RUNNING)) {
            reply_finished(r, id, cJSON_GetObjectItemCaseSensitive(o, "status")->valuestring);
            cJSON_Delete(o);
            return;
        }
        struct fv_error err = {0};
        int created;
        if (fv_jobs_dir_put_once(ev->dir, id, FV_JOBS_CANCEL, "", 0, &created, &err)) {
            cJSON_Delete(o);
            fv_reply_error(r, 500, FV_API_CODE_JOBS_DIR_UNAVAILABLE, NULL, "%s", err.message);
            return;
        }
        pthread_mutex_lock(&ev->lock);
        pthread_cond_signal(&ev->watch_wake); /* when this replica owns it: act now */
        pthread_mutex_unlock(&ev->lock);
        reply_record(r, 202, o);
        return;
    }
    int finished = 0;
    pthread_mutex_lock(&ev->lock);
    struct job *j = ev->jobs;
    while (j && strcmp(j->id, id) != 0)
        j = j->next;
    if (!j) {
        reply_unknown(r, id);
    } else if (j->state == JOB_DONE || j->state == JOB_FAILED) {
        reply_finished(r, id, state_names[j->state]);
    } else {
        atomic_store(&j->cancel, CANCEL_CLIENT);
        if (j->state == JOB_QUEUED) { /* the job thread will pass it by */
            j->state = JOB_FAILED;
            j->finished = time(NULL);
            job_fail_stopped(ev, j);
            job_free_inputs(j);
            ev->n_queued--;
            ev->n_finished++;
            finished = 1;
        }
        fv_reply_json(r, 202, job_json(j));
    }
    if (finished)
        evict_finished(ev);
    pthread_mutex_unlock(&ev->lock);
}
