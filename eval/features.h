/* features.h - face features for a list of images, on all cores, with a cache.
 *
 *   struct fv_features_params p = fv_features_default_params();
 *   p.threads = 2; p.cache_path = "lfw.fvfeat";
 *   float *x = malloc(n * fv_pipeline_raw_dim(pipe) * sizeof *x);
 *   enum fv_feature_source *how = malloc(n * sizeof *how);
 *   fv_features_extract(pipe, root, paths, n, &p, x, how, &stats, &err);
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

typedef void (*fv_features_progress)(void *user, size_t done, size_t total);

struct fv_features_params {
    enum fv_face_policy policy;  /* which face when there are several (default center) */
    int threads;                 /* workers (default: online CPUs) */
    const char *landmarks_path;  /* optional fallback landmarks */
    int center_fallback;         /* 1: centre crop when all else fails (default 1) */
    const char *cache_path;      /* optional feature cache file (read and rewritten) */
    fv_features_progress progress;
    void *progress_user;
};
struct fv_features_params fv_features_default_params(void);

struct fv_features_stats {
    size_t computed, cached;
    size_t detected, from_landmarks, from_center, failed;
    double seconds;
};

/* Fills features (n × fv_pipeline_raw_dim(pipe)) and how (n) for the images
 * root/paths[i]. Failures to read one image are recorded in how and do not
 * stop the run; errors in the landmarks file or a thread/memory failure do. */
enum fv_status fv_features_extract(const struct fv_pipeline *pipe, const char *root,
                                   const char *const *paths, size_t n,
                                   const struct fv_features_params *params, float *features,
                                   enum fv_feature_source *how, struct fv_features_stats *stats,
                                   struct fv_error *err);

/* Landmarks for a centre crop of a w × h image holding one roughly centred face
 * (LFW's layout: the template scaled by min(w, h) / 195 about the image centre). */
void fv_features_center_landmarks(int w, int h, float landmarks[5][2]);

/* 64-bit FNV-1a, for cache keys. */
uint64_t fv_hash64(const void *data, size_t size, uint64_t seed);

#endif
