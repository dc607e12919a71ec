/* loss.h - training losses: softmax cross-entropy, center loss (Wen et al. 2016)
 * and the large margin cosine loss (LMCL, CosFace, Wang et al. 2018).
 *
 *   // joint supervision L = L_S + λ L_C
 *   struct fv_center_loss *cl;
 *   fv_center_loss_new(10, 2, 0.003f, 0.5f, &cl, &err);
 *   float ls = fv_loss_softmax_cross_entropy(n, 10, logits, labels, dlogits, &correct);
 *   float lc = fv_center_loss_forward(cl, n, features, labels, dfeatures);  // adds λ ∂L_C/∂x
 *   ... backward, optimiser step ...
 *   fv_center_loss_update(cl, n, features, labels);                         // the centres' own rule
 *
 * Normalisation by the batch size m. The paper writes both terms as sums over
 * the mini-batch: L_S = −Σ_i log p_{y_i}, L_C = ½ Σ_i ‖x_i − c_{y_i}‖². Here BOTH
 * are divided by m, as the authors' Caffe code does (SoftmaxWithLoss normalises
 * by the batch, CenterLossLayer divides by the batch size): the ratio λ weighs
 * is the paper's, and the gradients are the paper's times 1/m, which is only a
 * rescaling of the learning rate. So the functions return
 *   L_S = (1/m) Σ_i −log p_{y_i},   L_C = (1/(2m)) Σ_i ‖x_i − c_{y_i}‖²
 * and add ∂L_S/∂z = (p − onehot)/m and λ ∂L_C/∂x_i = λ (x_i − c_{y_i})/m to the
 * gradients. The centre update is the paper's, independent of m:
 *   Δc_j = Σ_{i: y_i = j} (c_j − x_i) / (1 + n_j),   c_j ← c_j − α Δc_j.
 *
 * Losses write or add gradients into caller-owned arrays and never allocate
 * after creation.
 */
#ifndef FV_LOSS_H
#define FV_LOSS_H

#include <stddef.h>

#include "model/status.h"

/* Mean softmax cross-entropy of n rows of `classes` logits against labels.
 * dlogits (may be NULL) is OVERWRITTEN with (p − onehot)/n. *correct (may be
 * NULL) receives how many rows have their largest logit at the label. Labels
 * must lie in [0, classes) (programmer error otherwise). */
float fv_loss_softmax_cross_entropy(int n, int classes, const float *logits, const int *labels,
                                    float *dlogits, int *correct);

struct fv_center_loss;

/* Centres (classes × dim, starting at zero as in the paper's code), weight λ
 * (lambda) and centre learning rate α (alpha, in [0, 1]). */
enum fv_status fv_center_loss_new(int classes, int dim, float lambda, float alpha,
                                  struct fv_center_loss **out, struct fv_error *err);
void fv_center_loss_free(struct fv_center_loss *cl);
/* L_C = (1/(2n)) Σ ‖x_i − c_{y_i}‖² (without λ); adds λ (x_i − c_{y_i})/n to
 * dfeatures when it is not NULL. */
float fv_center_loss_forward(const struct fv_center_loss *cl, int n, const float *features,
                             const int *labels, float *dfeatures);
/* The paper's centre update from this batch's features (computed before the
 * network's parameters moved). */
void fv_center_loss_update(struct fv_center_loss *cl, int n, const float *features,
                           const int *labels);
/* The classes × dim centres, row-major; writable for checkpoints. */
float *fv_center_loss_centers(struct fv_center_loss *cl);
int fv_center_loss_classes(const struct fv_center_loss *cl);
int fv_center_loss_dim(const struct fv_center_loss *cl);
float fv_center_loss_lambda(const struct fv_center_loss *cl);

/* Floats of scratch fv_loss_lmcl needs. */
size_t fv_loss_lmcl_scratch(int n, int dim, int classes);
/* LMCL: x̂_i = x_i/‖x_i‖, Ŵ_j = W_j/‖W_j‖, cos θ_ij = x̂_i·Ŵ_j, logits s·cos θ_ij
 * and s·(cos θ_{i y_i} − m) at the label, mean softmax cross-entropy over the
 * n rows. Adds the gradient through both normalisations to dfeatures (n × dim)
 * and dweights (classes × dim) when they are not NULL. *correct (may be NULL)
 * counts rows whose largest cosine (without margin) is at the label. */
float fv_loss_lmcl(int n, int dim, int classes, const float *features, const float *weights,
                   const int *labels, float s, float m, float *dfeatures, float *dweights,
                   int *correct, float *scratch);

#endif
