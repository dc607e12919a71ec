/* evaluations.h - LFW-style k-fold evaluations run as background jobs for the HTTP API.
 *
 *   struct fv_evaluations_params p = fv_evaluations_default_params();
 *   p.data_root = "/srv/facever-data";         // NULL: inline evaluations only
 *   p.jobs_dir = "/srv/facever-jobs";          // optional: shared by every replica
 *   struct fv_evaluations *ev;
 *   if (fv_evaluations_new(pipe, &p, &ev, &err)) ...   // starts the job thread
 *   ... the routes POST /v1/evaluations, GET /v1/evaluations/{id}[/roc.svg] and
 *       POST /v1/evaluations/{id}/cancel (fv_handle_evaluation_* in routes.h)
 *       reach it through fv_handler_env.evaluations ...
 *   fv_evaluations_cancel(ev);                 // optional: stop early, refuse new jobs
 *   fv_evaluations_free(ev);                   // cancels, joins the thread, frees
 *
 * One thread runs one evaluation at a time, oldest first; at most max_queued
 * more may wait (a POST beyond that gets 429). A job either names a pairs file
 * and an image folder below data_root (paths relative to it; absolute paths,
 * ".." and symlinks that leave the root are refused) or carries its pairs
 * inline as base64 images. Features come from fv_features_extract (files) or
 * fv_features_extract_blobs (inline) on `threads` threads of their own, so the
 * request workers are never borrowed; the default of 1 leaves the other cores
 * to live traffic. The protocol, report JSON and ROC SVG are those of
 * `facever eval`. The newest max_finished finished jobs are kept; older ones
 * are forgotten (their ids then answer 404). A client may cancel a waiting or
 * running job (it ends failed, code "cancelled").
 *
 * With jobs_dir, every job's state lives in files there, so replicas sharing the
 * folder answer for each other's jobs; the replica that took the POST runs the
 * job and renews a lease on it. How and why: the top of evaluations.c.
 */
#ifndef FV_EVALUATIONS_H
#define FV_EVALUATIONS_H

#include <stddef.h>

#include "model/status.h"
#include "pipeline/pipeline.h"

struct fv_evaluations_params {
    const char *data_root;  /* folder file evaluations may read; NULL: none (422 for them) */
    int threads;            /* feature threads per job; 1 */
    int max_queued;         /* jobs that may wait behind the running one; 4 */
    int max_finished;       /* finished jobs kept for GET; 16 */
    int max_inline_pairs;   /* pairs in one inline evaluation; 200 */
    size_t max_file_pairs;  /* pairs in one pairs file; 20000 */
    const char *jobs_dir;   /* folder shared by replicas for job records; NULL: memory only */
    int lease_ms;           /* with jobs_dir: a job whose owner has not renewed its lease for
                               this long is reported failed (owner_lost); 30000 */
};

struct fv_evaluations_params fv_evaluations_default_params(void);

struct fv_evaluations;

/* Resolves data_root (it must be an existing folder: FV_ERR_INVALID_ARG otherwise)
 * and starts the job thread. pipe is borrowed and must outlive the result. */
enum fv_status fv_evaluations_new(const struct fv_pipeline *pipe,
                                  const struct fv_evaluations_params *params,
                                  struct fv_evaluations **out, struct fv_error *err);

/* Asks the running job to stop at its next image (or chunk of images) and makes
 * new submissions fail with 503. Returns at once; NULL is fine. */
void fv_evaluations_cancel(struct fv_evaluations *ev);

/* Cancels, joins the job thread and frees every job. NULL is fine. */
void fv_evaluations_free(struct fv_evaluations *ev);

#endif
