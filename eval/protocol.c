/* protocol.c - k-fold PCA + cosine verification protocol with leak-free fold bookkeeping. */
#include "eval/protocol.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "eval/pca.h"

struct fv_protocol_params fv_protocol_default_params(void)
{
    return (struct fv_protocol_params){
        .pca_dim = 0,
        .whiten = false,
        .whiten_epsilon = 1e-5f,
        .compare_without_pca = true,
    };
}

void fv_protocol_result_free(struct fv_protocol_result *result)
{
    if (!result)
        return;
    for (size_t r = 0; r < result->n_runs; r++) {
        struct fv_protocol_run *run = &result->runs[r];
        if (run->folds)
            for (size_t f = 0; f < result->n_folds; f++)
                free(run->folds[f].train_images);
        free(run->folds);
        free(run->scores);
        fv_roc_free(run->roc);
    }
    free(result);
}

/* Scales each of the n rows of x (n x d) to unit length; zero rows stay zero. */
static void normalise_rows(float *x, size_t n, size_t d)
{
    for (size_t i = 0; i < n; i++) {
        float *row = x + i * d;
        double sum = 0.0;
        for (size_t j = 0; j < d; j++)
            sum += (double)row[j] * row[j];
        if (sum > 0.0) {
            float scale = (float)(1.0 / sqrt(sum));
            for (size_t j = 0; j < d; j++)
                row[j] *= scale;
        }
    }
}

static void score_pairs(const float *x, size_t d, const struct fv_pair *items, size_t n_pairs,
                        float *scores)
{
    for (size_t p = 0; p < n_pairs; p++) {
        const float *a = x + items[p].a * d, *b = x + items[p].b * d;
        double dot = 0.0;
        for (size_t j = 0; j < d; j++)
            dot += (double)a[j] * b[j];
        scores[p] = (float)dot;
    }
}

/* Scratch shared by the folds of one call. */
struct work {
    const float *features;
    size_t n_images, d;
    const struct fv_pair *items;
    size_t n_pairs, n_folds;
    const struct fv_protocol_params *params;
    unsigned char *role;   /* per image: 1 = used by the test fold, 2 = by a training fold */
    float *embedded;       /* n_images x (pca_dim or d), normalised */
    float *train_rows;     /* n_images x d */
    float *all_scores;     /* n_pairs, under the current fold's model */
    float *split_scores;   /* n_pairs, training pairs first */
    bool *split_same;
};

/* Fills fold->train_images with the training images of fold f (ascending). */
static enum fv_status collect_training_images(struct work *w, size_t f,
                                              struct fv_protocol_fold *fold)
{
    memset(w->role, 0, w->n_images);
    for (size_t p = 0; p < w->n_pairs; p++) {
        if (w->items[p].fold == f) {
            w->role[w->items[p].a] = 1;
            w->role[w->items[p].b] = 1;
        }
    }
    for (size_t p = 0; p < w->n_pairs; p++) {
        if (w->items[p].fold != f) {
            /* A test-fold image keeps role 1 even if a training pair shares it. */
            if (!w->role[w->items[p].a])
                w->role[w->items[p].a] = 2;
            if (!w->role[w->items[p].b])
                w->role[w->items[p].b] = 2;
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < w->n_images; i++)
        n += w->role[i] == 2;
    fold->train_images = malloc((n ? n : 1) * sizeof *fold->train_images);
    if (!fold->train_images)
        return FV_ERR_NOMEM;
    n = 0;
    for (size_t i = 0; i < w->n_images; i++)
        if (w->role[i] == 2)
            fold->train_images[n++] = i;
    fold->n_train_images = n;
    return FV_OK;
}

static enum fv_status run_fold(struct work *w, struct fv_protocol_run *run, size_t r, size_t f,
                               struct fv_error *err)
{
    struct fv_protocol_fold *fold = &run->folds[f];
    enum fv_status st;
    if (collect_training_images(w, f, fold) != FV_OK)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    size_t dim = run->pca_dim ? run->pca_dim : w->d;
    if (run->pca_dim) {
        /* The PCA sees the gathered rows of exactly fold->train_images, nothing else. */
        for (size_t i = 0; i < fold->n_train_images; i++)
            memcpy(w->train_rows + i * w->d, w->features + fold->train_images[i] * w->d,
                   w->d * sizeof(float));
        if (w->params->fit_hook)
            w->params->fit_hook(w->params->fit_hook_user, r, f, fold->train_images,
                                fold->n_train_images);
        struct fv_pca_params pca_params = {
            .k = run->pca_dim,
            .whiten = w->params->whiten,
            .whiten_epsilon = w->params->whiten_epsilon,
        };
        struct fv_pca *pca = NULL;
        st = fv_pca_fit(w->train_rows, fold->n_train_images, w->d, &pca_params, &pca, err);
        if (st != FV_OK)
            return fv_error_prefix(err, "fold %zu (%zu training images): ", f + 1,
                                   fold->n_train_images);
        fv_pca_project(pca, w->features, w->n_images, w->embedded);
        fold->explained_variance = fv_pca_explained_variance_total(pca);
        fv_pca_free(pca);
        normalise_rows(w->embedded, w->n_images, dim);
    } else if (f == 0) {
        /* Without PCA nothing depends on the fold: normalise once. */
        memcpy(w->embedded, w->features, w->n_images * w->d * sizeof(float));
        normalise_rows(w->embedded, w->n_images, dim);
    }
    score_pairs(w->embedded, dim, w->items, w->n_pairs, w->all_scores);

    size_t n_train = 0;
    for (size_t p = 0; p < w->n_pairs; p++) {
        if (w->items[p].fold != f) {
            w->split_scores[n_train] = w->all_scores[p];
            w->split_same[n_train++] = w->items[p].same;
        }
    }
    size_t n_test = 0;
    for (size_t p = 0; p < w->n_pairs; p++) {
        if (w->items[p].fold == f) {
            w->split_scores[n_train + n_test] = w->all_scores[p];
            w->split_same[n_train + n_test++] = w->items[p].same;
            run->scores[p] = w->all_scores[p];
        }
    }
    fold->n_train_pairs = n_train;
    fold->n_test_pairs = n_test;
    if (n_train == 0 || n_test == 0)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fold %zu has no %s pairs", f + 1,
                            n_test ? "training" : "test");
    if ((st = fv_roc_best_threshold(w->split_scores, w->split_same, n_train, &fold->threshold,
                                    &fold->train_accuracy, err)) != FV_OK ||
        (st = fv_roc_accuracy(w->split_scores + n_train, w->split_same + n_train, n_test,
                              fold->threshold, &fold->accuracy, err)) != FV_OK)
        return fv_error_prefix(err, "fold %zu: ", f + 1);
    return FV_OK;
}

static enum fv_status run_protocol(struct work *w, struct fv_protocol_run *run, size_t r,
                                   bool *same, struct fv_error *err)
{
    enum fv_status st;
    run->folds = calloc(w->n_folds, sizeof *run->folds);
    run->scores = malloc(w->n_pairs * sizeof *run->scores);
    if (!run->folds || !run->scores)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (size_t f = 0; f < w->n_folds; f++)
        if ((st = run_fold(w, run, r, f, err)) != FV_OK)
            return fv_error_prefix(err, "%s: ", run->label);

    double sum = 0.0;
    for (size_t f = 0; f < w->n_folds; f++)
        sum += run->folds[f].accuracy;
    run->mean_accuracy = sum / (double)w->n_folds;
    double squares = 0.0;
    for (size_t f = 0; f < w->n_folds; f++) {
        double dev = run->folds[f].accuracy - run->mean_accuracy;
        squares += dev * dev;
    }
    run->std_accuracy = sqrt(squares / (double)(w->n_folds - 1));

    for (size_t p = 0; p < w->n_pairs; p++)
        same[p] = w->items[p].same;
    if ((st = fv_roc_compute(run->scores, same, w->n_pairs, &run->roc, err)) != FV_OK)
        return fv_error_prefix(err, "%s: ", run->label);
    run->auc = fv_roc_auc(run->roc);
    run->eer = fv_roc_eer(run->roc, &run->eer_threshold);
    run->far_targets[0] = 1e-3;
    run->far_targets[1] = 1e-2;
    for (size_t i = 0; i < FV_PROTOCOL_N_FAR; i++)
        run->tar_at_far[i] = fv_roc_tar_at_far(run->roc, run->far_targets[i],
                                               &run->tar_threshold[i]);
    return FV_OK;
}

enum fv_status fv_protocol_run(const float *features, size_t n_images, size_t d,
                               const struct fv_pairs *pairs,
                               const struct fv_protocol_params *params,
                               struct fv_protocol_result **out, struct fv_error *err)
{
    struct fv_protocol_params defaults = fv_protocol_default_params();
    struct fv_protocol_result *result = NULL;
    struct work w = {0};
    bool *same = NULL;
    enum fv_status st;
    *out = NULL;
    if (!params)
        params = &defaults;
    if (!features || !pairs)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "protocol: NULL features or pairs");
    if (n_images != fv_pairs_image_count(pairs))
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "protocol: %zu feature rows for %zu images in the pairs", n_images,
                            fv_pairs_image_count(pairs));
    if (d == 0 || (uint64_t)n_images * d > (uint64_t)SIZE_MAX / sizeof(float))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "protocol: bad feature dimension %zu", d);
    if (fv_pairs_fold_count(pairs) < 2)
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "protocol: k-fold evaluation needs at least 2 folds, got %zu",
                            fv_pairs_fold_count(pairs));
    if (params->pca_dim > d)
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "protocol: PCA dimension %zu exceeds the feature dimension %zu",
                            params->pca_dim, d);
    for (size_t i = 0; i < n_images * d; i++)
        if (!isfinite(features[i]))
            return fv_error_set(err, FV_ERR_INVALID_ARG,
                                "protocol: feature %zu of image %zu (%s) is not finite", i % d,
                                i / d, fv_pairs_image_path(pairs, i / d));

    w = (struct work){
        .features = features,
        .n_images = n_images,
        .d = d,
        .items = fv_pairs_items(pairs),
        .n_pairs = fv_pairs_count(pairs),
        .n_folds = fv_pairs_fold_count(pairs),
        .params = params,
    };
    result = calloc(1, sizeof *result);
    w.role = malloc(n_images ? n_images : 1);
    w.embedded = malloc(n_images * d * sizeof(float) + 1);
    w.train_rows = malloc(n_images * d * sizeof(float) + 1);
    w.all_scores = malloc(w.n_pairs * sizeof(float));
    w.split_scores = malloc(w.n_pairs * sizeof(float));
    w.split_same = malloc(w.n_pairs * sizeof(bool));
    same = malloc(w.n_pairs * sizeof(bool));
    if (!result || !w.role || !w.embedded || !w.train_rows || !w.all_scores ||
        !w.split_scores || !w.split_same || !same) {
        st = fv_error_set(err, FV_ERR_NOMEM, "protocol: out of memory");
        goto fail;
    }
    result->n_images = n_images;
    result->feature_dim = d;
    result->n_pairs = w.n_pairs;
    result->n_folds = w.n_folds;
    result->n_runs = params->pca_dim > 0 && params->compare_without_pca ? 2 : 1;
    for (size_t r = 0; r < result->n_runs; r++) {
        struct fv_protocol_run *run = &result->runs[r];
        run->pca_dim = r == 0 ? params->pca_dim : 0;
        run->whitened = run->pca_dim && params->whiten;
        snprintf(run->label, sizeof run->label, "%s", run->pca_dim ? "with PCA" : "without PCA");
        if ((st = run_protocol(&w, run, r, same, err)) != FV_OK)
            goto fail;
    }
    *out = result;
    result = NULL;
    st = FV_OK;

fail:
    fv_protocol_result_free(result);
    free(w.role);
    free(w.embedded);
    free(w.train_rows);
    free(w.all_scores);
    free(w.split_scores);
    free(w.split_same);
    free(same);
    return st;
}
