/* pipeline.h - from image bytes to faces, embeddings and match scores.
 *
 *   struct fv_pipeline_params p;
 *   fv_pipeline_default_params(&p);
 *   struct fv_pipeline *pipe;
 *   fv_pipeline_new("models", "models/mobilefacenet.fvm", &p, &pipe, &err);
 *   struct fv_pipeline_worker *w;                    // one per thread
 *   fv_pipeline_worker_new(pipe, &w, &err);
 *   struct fv_face_embedding *faces; int n;
 *   fv_pipeline_process(w, img, FV_FACE_LARGEST, &faces, &n, &err);
 *   float score = fv_cosine(faces[0].embedding, other, fv_pipeline_dim(pipe));
 *
 * decode -> MTCNN -> choose faces -> similarity transform onto the template ->
 * (x - mean) * scale -> network on the crop and its mirror image as one batch of
 * 2 -> the two embedding-layer outputs concatenated -> optional projection (PCA)
 * -> L2 normalisation. A pipeline is read-only once made and shared by threads;
 * each thread owns a worker.
 */
#ifndef FV_PIPELINE_H
#define FV_PIPELINE_H

#include "model/model.h"
#include "model/status.h"
#include "pipeline/detect.h"
#include "pipeline/image.h"

enum fv_face_policy {
    FV_FACE_LARGEST, /* the face with the largest box */
    FV_FACE_CENTER,  /* the largest near the image centre (pre-cropped sets such as LFW) */
    FV_FACE_ALL,     /* every face, best score first */
    FV_FACE_POLICY_COUNT
};
const char *fv_face_policy_name(enum fv_face_policy policy);
int fv_face_policy_from_name(const char *name); /* -1 if unknown */

/* The embedding network's arithmetic (see fv_model_set_precision): the
 * detector always runs in float. AUTO is bf16 on CPUs with AVX-512 BF16 and fp32
 * elsewhere. */
enum fv_pipeline_precision { FV_PIPELINE_AUTO, FV_PIPELINE_FP32, FV_PIPELINE_BF16 };
const char *fv_pipeline_precision_name(enum fv_pipeline_precision p); /* auto, fp32, bf16 */
int fv_pipeline_precision_from_name(const char *name);                /* -1 if unknown */

struct fv_pipeline_params {
    struct fv_detect_params detect;
    struct fv_image_limits limits;
    enum fv_pipeline_precision precision;
};
void fv_pipeline_default_params(struct fv_pipeline_params *params);

struct fv_face_embedding {
    struct fv_face face;
    float *embedding; /* fv_pipeline_dim() values, L2-normalised; owned by the array */
};
/* Frees an array returned by the pipeline (NULL is fine). */
void fv_face_embeddings_free(struct fv_face_embedding *faces, int n);

struct fv_pipeline;
struct fv_pipeline_worker;

/* Loads the detector from detector_dir and the embedding network from
 * model_path (a model file whose metadata names its embedding tensor). */
enum fv_status fv_pipeline_new(const char *detector_dir, const char *model_path,
                               const struct fv_pipeline_params *params, struct fv_pipeline **out,
                               struct fv_error *err);
void fv_pipeline_free(struct fv_pipeline *pipe);

/* Installs a linear projection applied to the concatenated embedding before
 * normalisation: y = components · (x − mean), components out_dim × in_dim
 * row-major. Copies the arrays. Call before creating workers. */
enum fv_status fv_pipeline_set_projection(struct fv_pipeline *pipe, const float *mean,
                                          const float *components, int in_dim, int out_dim,
                                          struct fv_error *err);

const struct fv_model_meta *fv_pipeline_model_meta(const struct fv_pipeline *pipe);
const struct fv_pipeline_params *fv_pipeline_params(const struct fv_pipeline *pipe);
/* Length of the raw concatenated embedding (2 × the network's embedding size). */
int fv_pipeline_raw_dim(const struct fv_pipeline *pipe);
/* Length of the final embedding (the projection's out_dim when one is set). */
int fv_pipeline_dim(const struct fv_pipeline *pipe);
int fv_pipeline_has_projection(const struct fv_pipeline *pipe);
/* The precision the embedding network runs at (AUTO resolved). */
enum fv_precision fv_pipeline_precision(const struct fv_pipeline *pipe);
/* The CPU level the networks run at (model/cpu.h). */
enum fv_cpu_level fv_pipeline_cpu_level(const struct fv_pipeline *pipe);
/* The model's default threshold, or 0.5 when its metadata has none. */
float fv_pipeline_threshold(const struct fv_pipeline *pipe);

enum fv_status fv_pipeline_worker_new(const struct fv_pipeline *pipe,
                                      struct fv_pipeline_worker **out, struct fv_error *err);
void fv_pipeline_worker_free(struct fv_pipeline_worker *w);

/* Detects faces and keeps those the policy picks; *faces malloc'd (free()). */
enum fv_status fv_pipeline_detect(struct fv_pipeline_worker *w, const struct fv_image *img,
                                  enum fv_face_policy policy, struct fv_face **faces, int *n,
                                  struct fv_error *err);
/* The aligned crop the network sees for these landmarks (caller frees). */
enum fv_status fv_pipeline_align(const struct fv_pipeline *pipe, const struct fv_image *img,
                                 const float landmarks[5][2], struct fv_image **crop,
                                 struct fv_error *err);
/* Embedding of the face with these landmarks (caller-supplied or detected):
 * raw (before projection, fv_pipeline_raw_dim values) when raw is not NULL, and
 * final (fv_pipeline_dim values) when out is not NULL. */
enum fv_status fv_pipeline_embed_landmarks(struct fv_pipeline_worker *w,
                                           const struct fv_image *img,
                                           const float landmarks[5][2], float *raw, float *out,
                                           struct fv_error *err);
/* Detect, choose by policy, embed. No face: FV_ERR_NO_FACE. */
enum fv_status fv_pipeline_process(struct fv_pipeline_worker *w, const struct fv_image *img,
                                   enum fv_face_policy policy, struct fv_face_embedding **faces,
                                   int *n, struct fv_error *err);

/* The same four from an image source (pipeline/image.h): detection on a
 * reduced copy as the detection parameters say, crops read at the resolution
 * they need; coordinates are those of the full-size upright image. The
 * functions above wrap their image in a source and call these. */
enum fv_status fv_pipeline_detect_source(struct fv_pipeline_worker *w,
                                         struct fv_image_source *src, enum fv_face_policy policy,
                                         struct fv_face **faces, int *n, struct fv_error *err);
enum fv_status fv_pipeline_align_source(const struct fv_pipeline *pipe,
                                        struct fv_image_source *src, const float landmarks[5][2],
                                        struct fv_image **crop, struct fv_error *err);
enum fv_status fv_pipeline_embed_source(struct fv_pipeline_worker *w,
                                        struct fv_image_source *src, const float landmarks[5][2],
                                        float *raw, float *out, struct fv_error *err);
enum fv_status fv_pipeline_process_source(struct fv_pipeline_worker *w,
                                          struct fv_image_source *src, enum fv_face_policy policy,
                                          struct fv_face_embedding **faces, int *n,
                                          struct fv_error *err);

/* Applies the projection (if any) and L2 normalisation to a raw embedding. */
void fv_pipeline_finish(const struct fv_pipeline *pipe, const float *raw, float *out);

/* A 64-bit fingerprint of everything that determines raw embeddings: the
 * weights and metadata of all four networks and the detection parameters. */
uint64_t fv_pipeline_fingerprint(const struct fv_pipeline *pipe);

/* Cosine similarity of two vectors (0 when either is zero). */
float fv_cosine(const float *a, const float *b, int dim);

#endif
