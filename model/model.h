/* model.h - an immutable, runnable network and the per-thread contexts that run it.
 *
 *   struct fv_model *m;
 *   if (fv_model_load("models/mobilefacenet.fvm", &m, &err)) ...
 *   struct fv_context *ctx;
 *   fv_context_new(m, 2, 0, 0, &ctx, &err);          // batch up to 2, model's input size
 *   fv_context_run(ctx, pixels, 2, 112, 112, &err);   // NHWC floats, already normalised
 *   int shape[4];
 *   const float *emb = fv_context_tensor(ctx, fv_model_find_tensor(m, "embeddings"), shape);
 *   fv_context_free(ctx);
 *   fv_model_free(m);
 *
 * A model is read-only after creation and may be shared by any number of
 * threads; each thread runs it through its own context. A context plans all of
 * its memory when it is created, for the largest batch and input size it will
 * be asked to run, so fv_context_run() never allocates.
 */
#ifndef FV_MODEL_H
#define FV_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model/cpu.h"
#include "model/graph.h"
#include "model/status.h"

struct fv_model;
struct fv_context;

/* Takes ownership of graph (freed even on failure): validates it, folds batch
 * norms and freezes it into a model. */
enum fv_status fv_model_from_graph(struct fv_graph *graph, struct fv_model **out,
                                   struct fv_error *err);
/* Reads a model file (see model_file.h); errors name the file and the problem. */
enum fv_status fv_model_load(const char *path, struct fv_model **out, struct fv_error *err);
enum fv_status fv_model_load_memory(const uint8_t *data, size_t size, struct fv_model **out,
                                    struct fv_error *err);
void fv_model_free(struct fv_model *model);

const struct fv_model_meta *fv_model_meta(const struct fv_model *model);
/* The frozen graph, for writers and inspection. Do not modify it. */
struct fv_graph *fv_model_graph(const struct fv_model *model);
/* Tensor index by name, or -1. */
int fv_model_find_tensor(const struct fv_model *model, const char *name);
/* Per-sample shape (h, w, c) of a tensor at the model's nominal input size. */
void fv_model_tensor_shape(const struct fv_model *model, int tensor, int shape[3]);
/* Multiply-adds × 2 for one sample at input size h × w (0, 0 = nominal). */
double fv_model_flops(const struct fv_model *model, int h, int w);

/* Arithmetic of the matrix products. FP32 is the reference; BF16 rounds both
 * operands of the 1×1 convolutions and fully connected layers (even input
 * counts up to FV_GEMM_BF16_MAX_K) to bfloat16 and accumulates in float, at
 * twice the speed on CPUs with AVX-512 BF16. Everything else stays float. */
enum fv_precision { FV_PRECISION_FP32, FV_PRECISION_BF16 };
const char *fv_precision_name(enum fv_precision p); /* "fp32" or "bf16" */
/* Call before creating contexts (a model is otherwise read-only). BF16 fails
 * with FV_ERR_UNSUPPORTED on CPUs without bf16 dot products. */
enum fv_status fv_model_set_precision(struct fv_model *model, enum fv_precision p,
                                      struct fv_error *err);
enum fv_precision fv_model_precision(const struct fv_model *model);

/* The CPU level whose kernels run the model (see cpu.h): the active level
 * ($FV_CPU or the best) when loaded; loading fails with FV_CPU's message when
 * it names a level this CPU lacks. Setting another supported level repacks the
 * weights for its kernels and resets the precision to FP32; call before
 * creating contexts. */
enum fv_status fv_model_set_cpu_level(struct fv_model *model, enum fv_cpu_level level,
                                      struct fv_error *err);
enum fv_cpu_level fv_model_cpu_level(const struct fv_model *model);

/* A context for batches of up to max_batch samples of up to max_h × max_w
 * (0 = the model's nominal size). */
enum fv_status fv_context_new(const struct fv_model *model, int max_batch, int max_h, int max_w,
                              struct fv_context **out, struct fv_error *err);
void fv_context_free(struct fv_context *ctx);
/* Bytes of arena and scratch the context planned. */
size_t fv_context_bytes(const struct fv_context *ctx);

/* Runs the network on batch samples of h × w × input_c floats (NHWC). The input
 * must stay valid until the outputs have been read. */
enum fv_status fv_context_run(struct fv_context *ctx, const float *input, int batch, int h, int w,
                              struct fv_error *err);
/* A tensor of the last run, NULL if it is not kept (only graph outputs are
 * guaranteed to be). shape, when not NULL, receives n, h, w, c. */
const float *fv_context_tensor(const struct fv_context *ctx, int tensor, int shape[4]);

#endif
