/* jobs_dir.h - a folder of job records shared by server replicas: each record
 * replaced whole (readers never see half a file), results written once, markers.
 *
 *   struct fv_jobs_dir *d;
 *   if (fv_jobs_dir_open("/srv/facever-jobs", &d, &err)) ...
 *   int created;
 *   fv_jobs_dir_put_once(d, id, FV_JOBS_LIVE, text, len, &created, &err); // a new id
 *   fv_jobs_dir_put(d, id, FV_JOBS_LIVE, text, len, &err);    // progress, heartbeat
 *   fv_jobs_dir_put_once(d, id, FV_JOBS_FINAL, text, len, &created, &err);
 *   if (!created) ... // somebody else finished the job first: theirs stands
 *   char *text; size_t len;
 *   if (fv_jobs_dir_get(d, id, FV_JOBS_FINAL, max, &text, &len, &err) == FV_ERR_NOT_FOUND) ...
 *   fv_jobs_dir_free(d);
 *
 * Files, for id = 32 lowercase hex digits (checked by every call before a path
 * is formed): <id>.live.json, replaced by rename(2); <id>.final.json, created
 * by link(2), which fails when the name exists, so the first writer wins and a
 * result never changes; <id>.cancel, an empty marker. Every file is written as
 * .tmp-<random> in the folder, fsync'd, then renamed or linked into place, and
 * the folder is fsync'd: a crash leaves the old record, the new one or a stray
 * temporary (fv_jobs_dir_sweep removes old ones), never a torn record. Works on
 * local file systems and NFS (rename and link are atomic there); the folder
 * must support hard links, which fv_jobs_dir_open checks.
 */
#ifndef FV_JOBS_DIR_H
#define FV_JOBS_DIR_H

#include <stddef.h>
#include <time.h>

#include "model/status.h"

#define FV_JOBS_ID_LEN 32

enum fv_jobs_file {
    FV_JOBS_LIVE,   /* a job's state while it waits or runs */
    FV_JOBS_FINAL,  /* its outcome, written once */
    FV_JOBS_CANCEL, /* a request to stop it */
    FV_JOBS_FILE_COUNT
};

/* Whether s[0..len) is an id: exactly FV_JOBS_ID_LEN lowercase hex digits. */
int fv_jobs_id_valid(const char *s, size_t len);

struct fv_jobs_dir;

/* Opens the folder at path, creating it (one level, mode 0750) when missing, and
 * checks that files can be written and hard-linked there. */
enum fv_status fv_jobs_dir_open(const char *path, struct fv_jobs_dir **out, struct fv_error *err);

/* Closes the folder; NULL is fine. */
void fv_jobs_dir_free(struct fv_jobs_dir *d);

/* Replaces the record (created when missing) with len bytes of text. */
enum fv_status fv_jobs_dir_put(struct fv_jobs_dir *d, const char *id, enum fv_jobs_file kind,
                               const char *text, size_t len, struct fv_error *err);

/* Creates the record unless it exists: *created 1, or 0 (and nothing written)
 * when another writer got there first. */
enum fv_status fv_jobs_dir_put_once(struct fv_jobs_dir *d, const char *id, enum fv_jobs_file kind,
                                    const char *text, size_t len, int *created,
                                    struct fv_error *err);

/* Reads the record into *text (malloc'd, NUL-terminated; the caller frees it).
 * FV_ERR_NOT_FOUND when there is none, FV_ERR_TOO_LARGE beyond max bytes. */
enum fv_status fv_jobs_dir_get(struct fv_jobs_dir *d, const char *id, enum fv_jobs_file kind,
                               size_t max, char **text, size_t *len, struct fv_error *err);

/* Whether the record exists. */
int fv_jobs_dir_has(struct fv_jobs_dir *d, const char *id, enum fv_jobs_file kind);

struct fv_jobs_entry {
    char id[FV_JOBS_ID_LEN + 1];
    struct timespec mtime; /* when the record was written (the file server's clock) */
};

/* The records of one kind, oldest first (by mtime, then id: the same order on
 * every replica). *out is malloc'd (NULL when there are none); free it. */
enum fv_status fv_jobs_dir_list(struct fv_jobs_dir *d, enum fv_jobs_file kind,
                                struct fv_jobs_entry **out, size_t *n, struct fv_error *err);

/* Deletes one file of the job, if it is there. */
void fv_jobs_dir_delete(struct fv_jobs_dir *d, const char *id, enum fv_jobs_file kind);

/* Deletes every file of the job: the live record and the marker first, the
 * final record last, so that no reader finds a live record whose final one has
 * gone (and takes the job for an unfinished one). Missing files are fine. */
void fv_jobs_dir_remove(struct fv_jobs_dir *d, const char *id);

/* Deletes temporaries older than age_s seconds: what a writer that died left. */
void fv_jobs_dir_sweep(struct fv_jobs_dir *d, double age_s);

#endif
