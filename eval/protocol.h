/* protocol.h - the k-fold verification protocol (LFW View 2, as in the center loss paper)
 * over a precomputed feature matrix.
 *
 *   struct fv_protocol_params params = fv_protocol_default_params();
 *   params.pca_dim = 128;
 *   struct fv_protocol_result *result = NULL;
 *   if (fv_protocol_run(features, fv_pairs_image_count(pairs), d, pairs, &params,
 *                       &result, &err) == FV_OK) {
 *       printf("%.2f%%\n", 100 * result->runs[0].mean_accuracy);   // with PCA
 *       printf("%.2f%%\n", 100 * result->runs[1].mean_accuracy);   // without PCA
 *       fv_protocol_result_free(result);
 *   }
 *
 * For each fold f: the training images are the images of the other folds' pairs that no
 * pair of fold f uses (so an image shared between folds is never fitted on); the PCA and
 * mean are fitted on exactly those rows; every image is projected and L2-normalised and
 * every pair scored by cosine similarity; the threshold maximising accuracy on the other
 * folds' pairs (fv_roc_best_threshold) is applied to fold f's pairs. Without PCA the
 * features are only L2-normalised (no mean is subtracted). The ROC, AUC, EER and TAR@FAR
 * pool all pairs, each scored by the model of the fold in which it is a test pair.
 */
#ifndef FV_EVAL_PROTOCOL_H
#define FV_EVAL_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>

#include "eval/pairs.h"
#include "eval/roc.h"
#include "model/status.h"

#define FV_PROTOCOL_MAX_RUNS 2
#define FV_PROTOCOL_N_FAR 2  /* TAR is reported at FAR = 1e-3 and 1e-2 */

/* Called just before each PCA fit with the exact image indices (ascending) whose feature
 * rows are fitted on; for tests and audits. run indexes result->runs. */
typedef void (*fv_protocol_fit_hook)(void *user, size_t run, size_t fold,
                                     const size_t *train_images, size_t n_train_images);

struct fv_protocol_params {
    size_t pca_dim;            /* components kept; 0 = no PCA */
    bool whiten;               /* whiten the PCA projection */
    float whiten_epsilon;
    bool compare_without_pca;  /* when pca_dim > 0, also run without PCA as runs[1] */
    fv_protocol_fit_hook fit_hook; /* may be NULL */
    void *fit_hook_user;
};

struct fv_protocol_fold {
    double accuracy;            /* on this fold's pairs */
    double threshold;           /* chosen on the other folds' pairs */
    double train_accuracy;      /* that threshold's accuracy on the other folds' pairs */
    size_t n_test_pairs;
    size_t n_train_pairs;
    size_t n_train_images;      /* images of the training folds (PCA fitted on these) */
    size_t *train_images;       /* their indices, ascending; owned by the result */
    double explained_variance;  /* share of variance the PCA keeps; 0 without PCA */
};

struct fv_protocol_run {
    char label[32];             /* "with PCA" or "without PCA" */
    size_t pca_dim;             /* 0: no PCA */
    bool whitened;
    struct fv_protocol_fold *folds;   /* n_folds of them */
    double mean_accuracy;
    double std_accuracy;        /* sample standard deviation over folds (divides by k - 1) */
    float *scores;              /* per pair (pairs order), scored in the pair's own test fold */
    struct fv_roc *roc;         /* over scores */
    double auc;
    double eer, eer_threshold;
    double far_targets[FV_PROTOCOL_N_FAR];     /* 1e-3, 1e-2 */
    double tar_at_far[FV_PROTOCOL_N_FAR];
    double tar_threshold[FV_PROTOCOL_N_FAR];
};

struct fv_protocol_result {
    size_t n_images, feature_dim, n_pairs, n_folds;
    size_t n_runs;
    struct fv_protocol_run runs[FV_PROTOCOL_MAX_RUNS];
};

/* pca_dim = 0, no whitening (eps 1e-5), compare_without_pca = true, no hook. */
struct fv_protocol_params fv_protocol_default_params(void);

/* Runs the protocol on features (n_images x d, row i = fv_pairs_image_path(pairs, i)).
 * runs[0] uses params->pca_dim; runs[1], present when pca_dim > 0 and
 * compare_without_pca, uses no PCA. Needs at least 2 folds and finite features. On success
 * *out owns the result (free with fv_protocol_result_free); on failure *out is NULL. */
enum fv_status fv_protocol_run(const float *features, size_t n_images, size_t d,
                               const struct fv_pairs *pairs,
                               const struct fv_protocol_params *params,
                               struct fv_protocol_result **out, struct fv_error *err);

void fv_protocol_result_free(struct fv_protocol_result *result);

#endif
