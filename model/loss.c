/* loss.c - softmax cross-entropy, center loss with its centre update, and LMCL (CosFace). */
#include "model/loss.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Norms below this are treated as this, so a zero feature has a finite gradient. */
#define FV_NORM_FLOOR 1e-12

/* Softmax of one row into p (may be z itself; double accumulation); returns −log p[label]. */
static double softmax_row(int classes, const float *z, int label, float *p)
{
    float max = z[0];
    for (int k = 1; k < classes; k++)
        max = z[k] > max ? z[k] : max;
    double sum = 0.0;
    for (int k = 0; k < classes; k++)
        sum += exp((double)z[k] - max);
    double log_sum = log(sum);
    double nll = -((double)z[label] - max - log_sum); /* before p, which may alias z */
    if (p)
        for (int k = 0; k < classes; k++)
            p[k] = (float)exp((double)z[k] - max - log_sum);
    return nll;
}

static int argmax_row(int classes, const float *z)
{
    int best = 0;
    for (int k = 1; k < classes; k++)
        if (z[k] > z[best])
            best = k;
    return best;
}

float fv_loss_softmax_cross_entropy(int n, int classes, const float *logits, const int *labels,
                                    float *dlogits, int *correct)
{
    double loss = 0.0;
    int hits = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        FV_ASSERT(labels[i] >= 0 && labels[i] < classes);
        float *d = dlogits ? dlogits + (size_t)i * classes : NULL;
        hits += argmax_row(classes, z) == labels[i];
        loss += softmax_row(classes, z, labels[i], d);
        if (d) {
            d[labels[i]] -= 1.0f;
            for (int k = 0; k < classes; k++)
                d[k] /= (float)n;
        }
    }
    if (correct)
        *correct = hits;
    return n > 0 ? (float)(loss / n) : 0.0f;
}

struct fv_center_loss {
    int classes, dim;
    float lambda, alpha;
    float *centers; /* classes × dim */
    float *delta;   /* classes × dim: Σ (c_j − x_i) of one batch */
    int *counts;    /* classes: n_j of one batch */
};

enum fv_status fv_center_loss_new(int classes, int dim, float lambda, float alpha,
                                  struct fv_center_loss **out, struct fv_error *err)
{
    *out = NULL;
    if (classes < 1 || dim < 1 || (uint64_t)classes * dim > (1u << 28))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "center loss: %d classes × %d dims", classes,
                            dim);
    if (!(lambda >= 0.0f) || !(alpha >= 0.0f && alpha <= 1.0f))
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "center loss: lambda must be >= 0 and alpha in [0, 1]");
    struct fv_center_loss *cl = calloc(1, sizeof *cl);
    size_t count = (size_t)classes * dim;
    if (!cl || !(cl->centers = calloc(count, sizeof *cl->centers)) ||
        !(cl->delta = malloc(count * sizeof *cl->delta)) ||
        !(cl->counts = malloc((size_t)classes * sizeof *cl->counts))) {
        fv_center_loss_free(cl);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory for center loss");
    }
    cl->classes = classes;
    cl->dim = dim;
    cl->lambda = lambda;
    cl->alpha = alpha;
    *out = cl;
    return FV_OK;
}

void fv_center_loss_free(struct fv_center_loss *cl)
{
    if (!cl)
        return;
    free(cl->centers);
    free(cl->delta);
    free(cl->counts);
    free(cl);
}

float *fv_center_loss_centers(struct fv_center_loss *cl) { return cl->centers; }
int fv_center_loss_classes(const struct fv_center_loss *cl) { return cl->classes; }
int fv_center_loss_dim(const struct fv_center_loss *cl) { return cl->dim; }
float fv_center_loss_lambda(const struct fv_center_loss *cl) { return cl->lambda; }

float fv_center_loss_forward(const struct fv_center_loss *cl, int n, const float *features,
                             const int *labels, float *dfeatures)
{
    double loss = 0.0;
    const int d = cl->dim;
    for (int i = 0; i < n; i++) {
        FV_ASSERT(labels[i] >= 0 && labels[i] < cl->classes);
        const float *x = features + (size_t)i * d, *c = cl->centers + (size_t)labels[i] * d;
        for (int k = 0; k < d; k++) {
            double diff = (double)x[k] - c[k];
            loss += diff * diff;
            if (dfeatures)
                dfeatures[(size_t)i * d + k] += (float)(cl->lambda * diff / n);
        }
    }
    return n > 0 ? (float)(0.5 * loss / n) : 0.0f;
}

void fv_center_loss_update(struct fv_center_loss *cl, int n, const float *features,
                           const int *labels)
{
    const int d = cl->dim;
    memset(cl->delta, 0, (size_t)cl->classes * d * sizeof *cl->delta);
    memset(cl->counts, 0, (size_t)cl->classes * sizeof *cl->counts);
    for (int i = 0; i < n; i++) {
        int j = labels[i];
        FV_ASSERT(j >= 0 && j < cl->classes);
        cl->counts[j]++;
        for (int k = 0; k < d; k++)
            cl->delta[(size_t)j * d + k] += cl->centers[(size_t)j * d + k] - features[(size_t)i * d + k];
    }
    for (int j = 0; j < cl->classes; j++) {
        if (!cl->counts[j])
            continue;
        float scale = cl->alpha / (1.0f + (float)cl->counts[j]);
        for (int k = 0; k < d; k++)
            cl->centers[(size_t)j * d + k] -= scale * cl->delta[(size_t)j * d + k];
    }
}

size_t fv_loss_lmcl_scratch(int n, int dim, int classes)
{
    /* x̂ (n × dim), Ŵ (classes × dim), cosines / gradients (n × classes),
     * norms of x and W, and the two normalised-space gradients */
    return (size_t)n * dim * 2 + (size_t)classes * dim * 2 + (size_t)n * classes + n + classes;
}

/* Rows of a divided by their norms into out; norms[i] = max(‖a_i‖, floor). */
static void normalise_rows(int rows, int dim, const float *a, float *out, float *norms)
{
    for (int r = 0; r < rows; r++) {
        double sum = 0.0;
        for (int k = 0; k < dim; k++)
            sum += (double)a[(size_t)r * dim + k] * a[(size_t)r * dim + k];
        double norm = sqrt(sum);
        if (norm < FV_NORM_FLOOR)
            norm = FV_NORM_FLOOR;
        norms[r] = (float)norm;
        for (int k = 0; k < dim; k++)
            out[(size_t)r * dim + k] = (float)(a[(size_t)r * dim + k] / norm);
    }
}

/* Gradient through v̂ = v/‖v‖: dv += (dv̂ − v̂ (v̂·dv̂)) / ‖v‖, row by row. */
static void normalise_rows_backward(int rows, int dim, const float *unit, const float *norms,
                                    const float *dunit, float *dv)
{
    for (int r = 0; r < rows; r++) {
        const float *u = unit + (size_t)r * dim, *du = dunit + (size_t)r * dim;
        double dot = 0.0;
        for (int k = 0; k < dim; k++)
            dot += (double)u[k] * du[k];
        for (int k = 0; k < dim; k++)
            dv[(size_t)r * dim + k] += (float)((du[k] - u[k] * dot) / norms[r]);
    }
}

float fv_loss_lmcl(int n, int dim, int classes, const float *features, const float *weights,
                   const int *labels, float s, float m, float *dfeatures, float *dweights,
                   int *correct, float *scratch)
{
    float *xn = scratch, *wn = xn + (size_t)n * dim, *cosines = wn + (size_t)classes * dim;
    float *dxn = cosines + (size_t)n * classes, *dwn = dxn + (size_t)n * dim;
    float *xnorm = dwn + (size_t)classes * dim, *wnorm = xnorm + n;
    if (n <= 0)
        return 0.0f;
    normalise_rows(n, dim, features, xn, xnorm);
    normalise_rows(classes, dim, weights, wn, wnorm);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, classes, dim, 1.0f, xn, dim, wn, dim,
                0.0f, cosines, classes);
    int hits = 0;
    for (int i = 0; i < n; i++)
        hits += argmax_row(classes, cosines + (size_t)i * classes) == labels[i];
    if (correct)
        *correct = hits;
    /* logits s·cos θ − s·m at the label, in place; then dL/dlogit in place */
    for (int i = 0; i < n; i++) {
        FV_ASSERT(labels[i] >= 0 && labels[i] < classes);
        float *z = cosines + (size_t)i * classes;
        for (int k = 0; k < classes; k++)
            z[k] *= s;
        z[labels[i]] -= s * m;
    }
    float loss = fv_loss_softmax_cross_entropy(n, classes, cosines, labels, cosines, NULL);
    if (!dfeatures && !dweights)
        return loss;
    /* ∂L/∂cos θ = s · ∂L/∂logit (the margin is a constant shift) */
    for (size_t i = 0; i < (size_t)n * classes; i++)
        cosines[i] *= s;
    if (dfeatures) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, dim, classes, 1.0f, cosines,
                    classes, wn, dim, 0.0f, dxn, dim);
        normalise_rows_backward(n, dim, xn, xnorm, dxn, dfeatures);
    }
    if (dweights) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, classes, dim, n, 1.0f, cosines,
                    classes, xn, dim, 0.0f, dwn, dim);
        normalise_rows_backward(classes, dim, wn, wnorm, dwn, dweights);
    }
    return loss;
}
