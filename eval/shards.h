/* shards.h - a long image list embedded as N independent shards, gathered back for one
 * evaluation.
 *
 *   // each of N processes (a Slurm array task, a Kubernetes indexed pod, a loop):
 *   struct fv_shard s = {.index = i, .count = n_shards};
 *   fv_shard_config_init(&s.config, pipe, &features_params, &err);
 *   fv_shard_list_identify(names, n_names, &s.list_count, &s.list_checksum);
 *   fv_shard_range(n_names, i, n_shards, &s.begin, &s.end);
 *   if (!fv_shard_done(dir, &s, why, sizeof why)) {
 *       fv_features_extract(pipe, root, names + s.begin, s.end - s.begin, ...);
 *       fv_shard_write(dir, &s, names + s.begin, features, how, &err);
 *   }
 *   // then one process, with the configuration its own options give:
 *   fv_shards_gather(dir, &config, pair_image_paths, n, features, how, &summary, &err);
 *
 * Files of shard i of N in dir (both numbers zero-padded to 5 digits):
 *   shard-0000i-of-0000N.npy        NumPy float32 (rows, dim), C order: the raw features
 *                                   (crop and mirror concatenated, no PCA, not normalised)
 *   shard-0000i-of-0000N.names.txt  the rows' image names, one per line, same order
 *   shard-0000i-of-0000N.json       metadata, written last: configuration, list checksum,
 *                                   file checksums, the images without a detected face
 * Each file is written to a temporary file in dir, flushed to disk and renamed into place,
 * so a shard whose metadata exists is complete; anything else is redone.
 *
 * Images where MTCNN finds no face are treated as fv_features_extract treats them (the
 * landmarks file, else the centre crop, else "failed" with zero features), and their
 * source is recorded, so the gathered matrix and sources are exactly those of one
 * fv_features_extract call over all the images at the same CPU level (model/cpu.h; each
 * shard records its level, and the merge can tell when they differ).
 */
#ifndef FV_EVAL_SHARDS_H
#define FV_EVAL_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#include "eval/features.h"
#include "model/status.h"
#include "pipeline/pipeline.h"

#define FV_SHARD_MAX_COUNT 99999      /* shard numbers fit the 5-digit file names */
#define FV_SHARD_MAX_NAME 4095        /* bytes of one image name */
#define FV_SHARD_MAX_IMAGES 100000000 /* images in one list */

/* What a feature depends on besides its image. Shards (and an evaluation) whose
 * configurations differ in any field hold features that cannot be mixed. */
struct fv_shard_config {
    uint64_t fingerprint;        /* fv_pipeline_fingerprint: networks, detection, precision */
    char model[FV_NAME_MAX];     /* the embedding model's name */
    char precision[8];           /* the embedding network's arithmetic: fp32 or bf16 */
    int dim;                     /* raw feature length */
    enum fv_face_policy policy;  /* which face of several */
    int center_fallback;         /* centre crop when no face and no landmarks */
    uint64_t landmarks_checksum; /* of the landmarks file's bytes; 0: none */
    uint64_t max_pixels;         /* image limits: which images can be read at all */
    size_t max_bytes;
    struct fv_detect_params detect; /* recorded for the reader; the fingerprint covers it */
};

/* Fills config from an open pipeline and the feature parameters (reads and checksums
 * params->landmarks_path when set). FV_ERR_IO when that file cannot be read. */
enum fv_status fv_shard_config_init(struct fv_shard_config *config,
                                    const struct fv_pipeline *pipe,
                                    const struct fv_features_params *params,
                                    struct fv_error *err);

/* One shard: its number, the list it is a slice of, its rows of that list. */
struct fv_shard {
    struct fv_shard_config config;
    size_t index, count;    /* shard index (0-based) of count */
    size_t list_count;      /* images in the whole list */
    uint64_t list_checksum; /* fv_shard_list_identify */
    size_t begin, end;      /* this shard's rows of the list: [begin, end) */
    const char *cpu_level;  /* recorded for the record only; may be NULL */
    double seconds;         /* time the features took; recorded only */
};

/* Rows [begin, end) of an n-image list for shard index of count: contiguous slices in
 * index order whose sizes differ by at most one, together covering every row once. */
void fv_shard_range(size_t n, size_t index, size_t count, size_t *begin, size_t *end);

/* Parses "I/N" (0 <= I < N <= FV_SHARD_MAX_COUNT). FV_ERR_INVALID_ARG otherwise. */
enum fv_status fv_shard_parse(const char *spec, size_t *index, size_t *count,
                              struct fv_error *err);

/* The shard of this process from its environment (envp: NAME=VALUE strings, NULL-ended):
 * a Slurm array task (SLURM_ARRAY_TASK_ID, _COUNT, _MIN, _MAX, _STEP: the task's place
 * in the array, which must be an evenly stepped range), or a Kubernetes Indexed Job pod
 * (JOB_COMPLETION_INDEX, with the count from shards, else FACEVER_SHARDS). shards
 * (0: not given) must agree with a Slurm array's size. *source is set to a constant
 * naming the scheduler ("Slurm array", "Kubernetes indexed job"). FV_ERR_INVALID_ARG
 * with a message saying what is missing or inconsistent. */
enum fv_status fv_shard_from_environment(char *const *envp, size_t shards, size_t *index,
                                         size_t *count, const char **source,
                                         struct fv_error *err);

/* Reads an image list (untrusted): one name per line; blank lines, lines starting with
 * '#' and trailing spaces and CRs are ignored. On success *names is a malloc'd array of
 * *n malloc'd strings (free with fv_shard_list_free). */
enum fv_status fv_shard_list_load(const char *path, char ***names, size_t *n,
                                  struct fv_error *err);
void fv_shard_list_free(char **names, size_t n);

/* Checks that names can be stored in a shard (non-empty, at most FV_SHARD_MAX_NAME bytes,
 * no control characters) and that none repeats; source names the list in messages
 * ("list.txt: image 'x' is listed twice (entries 3 and 17)"). With relative_only,
 * absolute names are refused too (they would not resolve under a root folder). */
enum fv_status fv_shard_list_check(const char *const *names, size_t n, int relative_only,
                                   const char *source, struct fv_error *err);

/* The list's size and a checksum of its names in order, the same in every shard. */
void fv_shard_list_identify(const char *const *names, size_t n, size_t *count,
                            uint64_t *checksum);

/* The path of shard index of count's file with this suffix (".npy", ".names.txt",
 * ".json") in dir, into buf. */
void fv_shard_path(char *buf, size_t cap, const char *dir, size_t index, size_t count,
                   const char *suffix);

/* 1 when dir already holds shard complete and identical in configuration, list and
 * slice, with files whose checksums match its metadata; 0 otherwise, with the reason
 * in why ("no metadata yet", "made with another model", ...). */
int fv_shard_done(const char *dir, const struct fv_shard *shard, char *why, size_t why_cap);

/* Writes shard's files to dir (which must exist): names, features ((end - begin) x
 * config.dim) and how are its rows. First removes the shard's old metadata, then
 * writes the matrix, the names and the metadata, each atomically. FV_ERR_IO naming the
 * file when a write fails. */
enum fv_status fv_shard_write(const char *dir, const struct fv_shard *shard,
                              const char *const *names, const float *features,
                              const enum fv_feature_source *how, struct fv_error *err);

struct fv_shards_summary {
    size_t shards;        /* shard count */
    size_t list_count;    /* images in the list they split */
    size_t used;          /* of which the evaluation needed (n) */
    /* The CPU levels the shards were embedded at: the first, and another when they
     * differ ("" otherwise). Levels round differently in the last bits, which the
     * fingerprint does not cover. */
    char cpu_levels[2][16];
};

/* Fills features (n x expect->dim) and how (n) for the images paths[0..n) from the
 * shards in dir. Refuses, naming the file: metadata that is malformed or of another
 * format version, shards of another configuration than expect, of another list or
 * split, missing shard numbers, files whose checksums or shapes disagree with their
 * metadata, an image of paths held by two shards, and images of paths that no shard
 * holds. Images of the list that paths does not name are left alone. */
enum fv_status fv_shards_gather(const char *dir, const struct fv_shard_config *expect,
                                const char *const *paths, size_t n, float *features,
                                enum fv_feature_source *how, struct fv_shards_summary *summary,
                                struct fv_error *err);

/* Parses shard metadata (size bytes at data, untrusted) as the merge does, and discards
 * it; source names it in messages. For fuzzing and tests. */
enum fv_status fv_shard_metadata_check(const uint8_t *data, size_t size, const char *source,
                                       struct fv_error *err);

#endif
