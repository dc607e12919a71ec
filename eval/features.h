/* features.h - face features for a list of images, on all cores, with a cache.
 *
 *   struct fv_features_params p = fv_features_default_params();
 *   p.threads = 2; p.cache_path = "lfw.fvfeat";
 *   float *x = malloc(n * fv_pipeline_raw_dim(pipe) * sizeof *x);
 *   enum fv_feature_source *how = malloc(n * sizeof *how);
 *   fv_features_extract(pipe, root, paths, n, &p, x, how, &stats, &err);
 *   // images already in memory (an API request): blobs[i] named names[i]
 *   fv_features_extract_blobs(pipe, blobs, names, n, &p, x, how, &stats, &err);
 *
 * Each image gives the raw (unprojected, unnormalised) embedding of one face:
 * the crop and its mirror image through the network, concatenated. When MTCNN
 * finds no face the image falls back to caller-supplied landmarks (a landmarks
 * file, one line per image: `name/name_0001.jpg x1 y1 ... x5 y5`) or, failing
 * that, to a centre crop that assumes a pre-cropped face such as LFW's.
 */
#ifndef FV_EVAL_FEATURES_H
#define FV_EVAL_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "model/status.h"
#include "pipeline/pipeline.h"

enum fv_feature_source {
    FV_FEATURE_DETECTED,   /* MTCNN found the face */
    FV_FEATURE_LANDMARKS,  /* no detection: the landmarks file's points */
    FV_FEATURE_CENTER,     /* no detection, no landmarks: centre crop */
    FV_FEATURE_FAILED      /* unreadable image: features are zero */
};
const char *fv_feature_source_name(enum fv_feature_source source);

/* Both callbacks run on the worker threads, one call at a time (never two at
 * once), so they need no locking of their own. progress follows each image;
 * cancel is asked before each image, and a nonzero answer stops the run: every
 * worker finishes the image in hand, then the extraction frees what it holds
 * and returns FV_ERR_CANCELLED. */
typedef void (*fv_features_progress)(void *user, size_t done, size_t total);
typedef int (*fv_features_cancel)(void *user);

struct fv_features_params {
    enum fv_face_policy policy;  /* which face when there are several (default center) */
    int threads;                 /* workers (default: online CPUs) */
    const char *landmarks_path;  /* optional fallback landmarks */
    int center_fallback;         /* 1: centre crop when all else fails (default 1) */
    const char *cache_path;      /* optional feature cache file (read and rewritten) */
    fv_features_progress progress;
    void *progress_user;
    fv_features_cancel cancel;   /* optional; see above */
    void *cancel_user;
};
struct fv_features_params fv_features_default_params(void);

struct fv_features_stats {
    size_t computed, cached;
    size_t detected, from_landmarks, from_center, failed;
    double seconds;
    size_t first_failed;                        /* lowest failed index; n when none */
    char first_failure[FV_ERROR_MESSAGE_MAX];   /* why it failed; "" when none */
};

/* Fills features (n × fv_pipeline_raw_dim(pipe)) and how (n) for the images
 * root/paths[i]. Failures to read one image are recorded in how (and the first
 * in stats) and do not stop the run; errors in the landmarks file, a
 * thread/memory failure or params->cancel do (FV_ERR_CANCELLED; features and
 * how are then incomplete and the cache is left as it was). */
enum fv_status fv_features_extract(const struct fv_pipeline *pipe, const char *root,
                                   const char *const *paths, size_t n,
                                   const struct fv_features_params *params, float *features,
                                   enum fv_feature_source *how, struct fv_features_stats *stats,
                                   struct fv_error *err);

/* Encoded image bytes held by the caller. */
struct fv_features_blob {
    const uint8_t *data;
    size_t size;
};

/* fv_features_extract over images already in memory: image i is blobs[i],
 * named names[i] in the landmarks file, the cache and messages. The blobs are
 * borrowed and only read. */
enum fv_status fv_features_extract_blobs(const struct fv_pipeline *pipe,
                                         const struct fv_features_blob *blobs,
                                         const char *const *names, size_t n,
                                         const struct fv_features_params *params,
                                         float *features, enum fv_feature_source *how,
                                         struct fv_features_stats *stats, struct fv_error *err);

/* Landmarks for a centre crop of a w × h image holding one roughly centred face
 * (LFW's layout: the template scaled by min(w, h) / 195 about the image centre). */
void fv_features_center_landmarks(int w, int h, float landmarks[5][2]);

/* 64-bit FNV-1a, for cache keys. */
uint64_t fv_hash64(const void *data, size_t size, uint64_t seed);

#endif
