/* pca.h - principal component analysis of feature vectors: fit, project, save, load.
 *
 *   struct fv_pca_params params = fv_pca_default_params();
 *   params.k = 128;
 *   struct fv_pca *pca = NULL;
 *   if (fv_pca_fit(train, n_train, d, &params, &pca, &err) != FV_OK) ...
 *   fv_pca_project(pca, features, n, projected);     // projected: n x k floats
 *   fv_pca_save(pca, "lfw.fvpca", &err);
 *   fv_pca_free(pca);
 *
 * Matrices are row-major float32, one sample per row. A fitted PCA is immutable, so
 * one may be shared by many threads calling fv_pca_project.
 */
#ifndef FV_EVAL_PCA_H
#define FV_EVAL_PCA_H

#include <stdbool.h>
#include <stddef.h>

#include "model/status.h"

/* Loader limits: larger files are rejected before anything is allocated. */
#define FV_PCA_MAX_DIM 65536
#define FV_PCA_MAX_FILE_BYTES ((size_t)1 << 30)

struct fv_pca_params {
    size_t k;              /* number of components, 1..min(d, n - 1) */
    bool whiten;           /* divide each projected coordinate by sqrt(eigenvalue + eps) */
    float whiten_epsilon;  /* eps above, in the units of the eigenvalues */
};

struct fv_pca;

/* k = 128, no whitening, eps = 1e-5. */
struct fv_pca_params fv_pca_default_params(void);

/* Fits the mean and the top params->k principal directions of the n x d matrix x
 * (n >= 2). Eigenvalues are those of the sample covariance (divided by n - 1). Each
 * component's sign is chosen so that its largest-magnitude element (the first, on a tie)
 * is positive. On success *out owns a new PCA (free with fv_pca_free). */
enum fv_status fv_pca_fit(const float *x, size_t n, size_t d, const struct fv_pca_params *params,
                          struct fv_pca **out, struct fv_error *err);

void fv_pca_free(struct fv_pca *pca);

/* out (n x k) = (in (n x d) - mean) . components^T, each column then divided by
 * sqrt(eigenvalue + eps) when whitened. in and out must not overlap. Cannot fail. */
void fv_pca_project(const struct fv_pca *pca, const float *in, size_t n, float *out);

size_t fv_pca_input_dim(const struct fv_pca *pca);   /* d */
size_t fv_pca_output_dim(const struct fv_pca *pca);  /* k */
bool fv_pca_whitened(const struct fv_pca *pca);
float fv_pca_whiten_epsilon(const struct fv_pca *pca);
size_t fv_pca_sample_count(const struct fv_pca *pca); /* samples fitted on (0 if unknown) */
/* Arrays owned by pca: mean (d), eigenvalues (k, descending), components (k x d, one
 * unit-length component per row, not scaled by whitening). */
const float *fv_pca_mean(const struct fv_pca *pca);
const float *fv_pca_eigenvalues(const struct fv_pca *pca);
const float *fv_pca_components(const struct fv_pca *pca);
/* Total variance (trace of the covariance) of the fitted data. */
double fv_pca_total_variance(const struct fv_pca *pca);
/* Share of the total variance explained by component i (i < k), and by all k. */
double fv_pca_explained_variance_ratio(const struct fv_pca *pca, size_t i);
double fv_pca_explained_variance_total(const struct fv_pca *pca);

/* Writes pca to path in the FVPCA format (see pca.c). */
enum fv_status fv_pca_save(const struct fv_pca *pca, const char *path, struct fv_error *err);
/* Reads an FVPCA file (untrusted: every field is checked before use). On success *out
 * owns a new PCA; on failure *out is NULL and err names the problem. */
enum fv_status fv_pca_load(const char *path, struct fv_pca **out, struct fv_error *err);
/* As fv_pca_load, from size bytes at buf; buf is not kept. */
enum fv_status fv_pca_load_memory(const void *buf, size_t size, struct fv_pca **out,
                                  struct fv_error *err);

#endif
