/* train.h - training networks on the graph IR: architectures, SGD, LR schedules,
 * checkpoints.
 *
 *   struct fv_train_params p;
 *   fv_train_default_params(&p);
 *   p.classes = 10; p.batch = 128; p.loss = FV_LOSS_CENTER; p.lambda = 0.003f;
 *   struct fv_graph *g;
 *   fv_train_arch_new("lenetpp", p.seed, &g, &err);      // trunk up to the feature layer
 *   struct fv_trainer *tr;
 *   fv_trainer_new(g, &p, &tr, &err);                    // takes g; adds the classifier head
 *   for (...) fv_trainer_step(tr, images, labels, n, &stats, &err);   // NHWC, normalised
 *   fv_trainer_save_model(tr, "lenetpp.fvm", &err);      // an ordinary model file
 *   fv_trainer_free(tr);
 *
 * A trainer holds one graph (the same IR the inference engine runs, so the
 * result is saved with fv_model_file_save and served as is), the gradient and
 * momentum of every parameter blob, and the activations and gradients of every
 * tensor for the largest batch, all allocated by fv_trainer_new: a step never
 * allocates. The graph's metadata names the feature (embedding) tensor; the
 * trainer appends a fully connected classifier "classifier" → "logits" on it.
 * Ops with a backward: conv2d, depthwise_conv2d, fully_connected, max_pool2d,
 * prelu, relu, add, reshape, batch_norm (batch statistics while training,
 * running statistics in fv_trainer_predict and in the saved model).
 *
 * With params.threads = N > 1 every batch is split into N contiguous shards,
 * one per worker thread (the caller's thread is worker 0); each runs forward,
 * loss and backward on its shard with the shared weights and its own parameter
 * gradients, which are then summed in worker order, weighted by each shard's
 * share of the batch, so the result is the gradient of the batch's mean loss.
 * Batch norm normalises each shard by its own statistics (its running
 * statistics still follow the whole batch). Deterministic: the same seed, data
 * order, parameters and thread count give the same weights; thread counts
 * differ only in the order of floating-point sums (and in batch-norm
 * statistics). Keep the BLAS single-threaded (openblas_set_num_threads(1))
 * when N > 1, or its threads compete with the workers for the same cores.
 * A trainer is used from one thread at a time.
 */
#ifndef FV_TRAIN_H
#define FV_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "model/graph.h"
#include "model/loss.h"
#include "model/status.h"

/* xoshiro256** seeded through splitmix64: a small PRNG whose whole state can be
 * checkpointed. */
struct fv_rng {
    uint64_t s[4];
};
void fv_rng_seed(struct fv_rng *rng, uint64_t seed);
uint64_t fv_rng_next(struct fv_rng *rng);
/* Uniform in [0, 1). */
double fv_rng_uniform(struct fv_rng *rng);
/* Uniform integer in [0, n), n > 0 (no modulo bias). */
uint32_t fv_rng_below(struct fv_rng *rng, uint32_t n);
/* Fisher-Yates shuffle of a[0..n). */
void fv_rng_shuffle(struct fv_rng *rng, int *a, int n);

enum fv_schedule {
    FV_SCHEDULE_CONSTANT,
    FV_SCHEDULE_STEP,      /* lr · gamma^floor(step / step_size) */
    FV_SCHEDULE_MULTISTEP, /* lr · gamma^(milestones passed) */
    FV_SCHEDULE_COSINE,    /* lr · ½ (1 + cos(π · step / total_steps)) */
    FV_SCHEDULE_COUNT
};
#define FV_SCHEDULE_MAX_MILESTONES 16

struct fv_lr_schedule {
    enum fv_schedule kind;
    float base_lr;
    float gamma;      /* STEP, MULTISTEP: decay factor (0.1) */
    long step_size;   /* STEP: steps between decays */
    long milestones[FV_SCHEDULE_MAX_MILESTONES]; /* MULTISTEP: ascending steps */
    int n_milestones;
    long total_steps; /* COSINE */
};
/* Learning rate for 0-based step `step`. */
float fv_lr_schedule_at(const struct fv_lr_schedule *s, long step);
/* Parses "constant", "cosine", "step:E" (× gamma every E epochs) or
 * "step:E1,E2,..." (× gamma at each of those epochs) with epochs converted to
 * steps by steps_per_epoch; fills everything but base_lr and gamma. */
enum fv_status fv_lr_schedule_parse(const char *spec, long steps_per_epoch, long total_steps,
                                    struct fv_lr_schedule *out, struct fv_error *err);

enum fv_loss_kind { FV_LOSS_SOFTMAX, FV_LOSS_CENTER, FV_LOSS_LMCL, FV_LOSS_KIND_COUNT };
const char *fv_loss_kind_name(enum fv_loss_kind kind);
int fv_loss_kind_from_name(const char *name); /* -1 if unknown */

struct fv_train_params {
    int batch;             /* largest batch a step gets (128) */
    int classes;           /* identities / digits (required) */
    enum fv_loss_kind loss;
    float lambda, alpha;   /* center loss: weight λ (0.003) and centre rate α (0.5) */
    float s, m;            /* LMCL: scale (30) and cosine margin (0.35) */
    float momentum;        /* SGD momentum (0.9) */
    float weight_decay;    /* on conv / depthwise / FC filters only (5e-4) */
    float bn_momentum;     /* running statistics of batch norms (0.1) */
    struct fv_lr_schedule schedule; /* base_lr 0.01, constant */
    uint64_t seed;         /* classifier initialisation and fv_trainer_rng() (1) */
    int threads;           /* workers, each on a share of every batch (1) */
};
#define FV_TRAIN_MAX_THREADS 64
void fv_train_default_params(struct fv_train_params *p);

/* Builds a freshly initialised trunk (input → feature) for a named architecture:
 *   "lenetpp"  Wen et al.'s LeNets++ for 28×28×1: (conv 5×5 SAME + PReLU) ×2 at 32,
 *              64 and 128 channels, each pair followed by 2×2/2 max pooling (the last
 *              one SAME, 7 → 4, as Caffe's ceil mode), FC to 2-D + PReLU: "fc1".
 *   "face"     Wen et al.'s released face net for 112×96×3: conv1a 32 / conv1b 64
 *              (3×3 VALID) + PReLU, then pool, residual units of two 3×3 SAME
 *              conv + PReLU (1, 2, 5, 3 of them at 64, 128, 256, 512 channels), each
 *              stage opened by a 3×3 VALID conv + PReLU and closed by 2×2/2 max pooling
 *              (pooling, not strided convs, as in the released prototxt), FC 5·4·512 →
 *              512: "fc5". Template 112×96.
 * Weights: He-uniform for PReLU(0.25), biases 0, slopes 0.25; deterministic in seed. */
enum fv_status fv_train_arch_new(const char *arch, uint64_t seed, struct fv_graph **out,
                                 struct fv_error *err);

/* Copies the part of g that computes tensor `feature` (its nodes, tensors and
 * blobs, input and metadata) into a new graph whose one output is `feature`
 * and whose metadata names it as the embedding; for fine-tuning imported models. */
enum fv_status fv_train_extract_trunk(struct fv_graph *g, const char *feature,
                                      struct fv_graph **out, struct fv_error *err);

struct fv_trainer;

struct fv_train_stats {
    float loss;         /* total: L_S + λ L_C, or LMCL */
    float softmax_loss; /* L_S (or LMCL) */
    float center_loss;  /* L_C without λ; 0 unless center loss */
    int correct;        /* samples classified right in this batch (before the update) */
    int n;
    float lr;
};

/* Takes ownership of trunk (freed on failure too). Its metadata must name the
 * feature tensor (meta.embedding); every node must have a backward. */
enum fv_status fv_trainer_new(struct fv_graph *trunk, const struct fv_train_params *params,
                              struct fv_trainer **out, struct fv_error *err);
void fv_trainer_free(struct fv_trainer *tr);

/* One SGD step on n ≤ batch samples (NHWC floats at the graph's input size,
 * already normalised; labels in [0, classes)): forward in training mode,
 * loss, backward, parameter update, centre update. */
enum fv_status fv_trainer_step(struct fv_trainer *tr, const float *images, const int *labels,
                               int n, struct fv_train_stats *stats, struct fv_error *err);
/* Inference-mode forward of n ≤ batch samples: features (n × fv_trainer_feature_dim)
 * and the predicted classes, either may be NULL. */
enum fv_status fv_trainer_predict(struct fv_trainer *tr, const float *images, int n,
                                  float *features, int *predicted, struct fv_error *err);

/* Forward and backward without the update, leaving every gradient in place;
 * returns the loss. For gradient checks. */
float fv_trainer_loss_and_gradients(struct fv_trainer *tr, const float *images,
                                    const int *labels, int n);
/* Parameter blob i's values and accumulated gradient (NULL for blobs that are
 * not trained, such as batch-norm statistics). */
float *fv_trainer_param_grad(struct fv_trainer *tr, int blob);

struct fv_graph *fv_trainer_graph(struct fv_trainer *tr);
int fv_trainer_feature_dim(const struct fv_trainer *tr);
int fv_trainer_classes(const struct fv_trainer *tr);
long fv_trainer_steps(const struct fv_trainer *tr);
struct fv_rng *fv_trainer_rng(struct fv_trainer *tr);
enum fv_loss_kind fv_trainer_loss_kind(const struct fv_trainer *tr);
/* The classifier's weights, classes × feature dim (for LMCL, the class directions). */
const float *fv_trainer_class_weights(struct fv_trainer *tr);
/* NULL unless the loss is center loss. */
struct fv_center_loss *fv_trainer_center_loss(struct fv_trainer *tr);
/* Bytes of activations, gradients and optimiser state allocated. */
size_t fv_trainer_bytes(const struct fv_trainer *tr);

/* Writes the network as an ordinary model file: trunk + classifier ("logits",
 * for LMCL with unit-norm class weights so argmax is the nearest class by cosine),
 * outputs the feature tensor and the logits, metadata as set on the graph. */
enum fv_status fv_trainer_save_model(struct fv_trainer *tr, const char *path,
                                     struct fv_error *err);
/* A checkpoint: the model file image, the step count, the momentum of every
 * parameter, the centres and the RNG state (see train.c for the layout).
 * Loading needs a trainer built the same way (architecture, classes, loss);
 * blobs are matched by name and size. */
enum fv_status fv_trainer_save_checkpoint(struct fv_trainer *tr, const char *path,
                                          struct fv_error *err);
enum fv_status fv_trainer_load_checkpoint(struct fv_trainer *tr, const char *path,
                                          struct fv_error *err);

#endif
