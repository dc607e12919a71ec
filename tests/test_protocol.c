/* test_protocol.c - k-fold protocol: hand-computed accuracies, fold bookkeeping (no test
 * image is ever fitted on), separable data with PCA, and the reports built from it. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/pairs.h"
#include "eval/protocol.h"
#include "eval/report.h"

static struct fv_pairs *parse(const char *text)
{
    struct fv_pairs *pairs = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_pairs_parse(text, strlen(text), "pairs.txt", NULL, &pairs, &err), FV_OK,
                 "%s", err.message);
    return pairs;
}

/* 3 folds of 2 same + 2 different pairs, every image used once. In 2-D:
 * same pairs (1,0)-(0.8,0.6): cosine 0.8; different pairs (1,0)-(0,1): cosine 0; except
 * the last different pair of fold 3, (1,0)-(2,0): cosine 1, an impostor accepted at any
 * threshold below 1. */
static const char *const small_text = "3\t2\n"
                                      "A0 1 2\nB0 1 2\nC0 1 D0 1\nE0 1 F0 1\n"
                                      "A1 1 2\nB1 1 2\nC1 1 D1 1\nE1 1 F1 1\n"
                                      "A2 1 2\nB2 1 2\nC2 1 D2 1\nE2 1 F2 1\n";

static float *small_features(const struct fv_pairs *pairs)
{
    float *x = calloc(fv_pairs_image_count(pairs) * 2, sizeof *x);
    const struct fv_pair *items = fv_pairs_items(pairs);
    for (size_t p = 0; p < fv_pairs_count(pairs); p++) {
        float *a = x + 2 * items[p].a, *b = x + 2 * items[p].b;
        a[0] = 1;
        if (items[p].same) {
            b[0] = 0.8f;
            b[1] = 0.6f;
        } else if (p == 11) {
            b[0] = 2;
        } else {
            b[1] = 1;
        }
    }
    return x;
}

Test(protocol, hand_computed_without_pca)
{
    struct fv_pairs *pairs = parse(small_text);
    float *x = small_features(pairs);
    struct fv_protocol_result *result = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_protocol_run(x, fv_pairs_image_count(pairs), 2, pairs, NULL, &result, &err),
                 FV_OK, "%s", err.message);
    cr_assert_eq(result->n_runs, 1); /* pca_dim 0: nothing to compare with */
    const struct fv_protocol_run *run = &result->runs[0];
    cr_assert_eq(run->pca_dim, 0);
    /* Folds 1 and 2 train on scores {0.8 x4 same; 0 x3, 1 x1 different}: ascending 0 0 0
     * | 0.8 x4 | 1 -> the best cut is between 0 and 0.8 (7 / 8 right), threshold 0.4.
     * Fold 3 trains on perfectly separable folds 1-2: also 0.4. Test accuracies: 4/4, 4/4,
     * and 3/4 for fold 3 (its impostor scores 1). */
    static const double accuracy[] = {1.0, 1.0, 0.75};
    static const double train_accuracy[] = {7.0 / 8, 7.0 / 8, 1.0};
    for (size_t f = 0; f < 3; f++) {
        cr_assert_float_eq(run->folds[f].accuracy, accuracy[f], 1e-12, "fold %zu", f);
        cr_assert_float_eq(run->folds[f].threshold, 0.4, 1e-6, "fold %zu", f);
        cr_assert_float_eq(run->folds[f].train_accuracy, train_accuracy[f], 1e-12);
        cr_assert_eq(run->folds[f].n_test_pairs, 4);
        cr_assert_eq(run->folds[f].n_train_pairs, 8);
        cr_assert_eq(run->folds[f].n_train_images, 16);
    }
    /* Mean 2.75 / 3 = 11/12. Deviations 1/12, 1/12, -1/6: squares sum 6/144 = 1/24; the
     * sample std divides by 3 - 1: sqrt(1/48) = 0.1443 (population std would be 0.1361). */
    cr_assert_float_eq(run->mean_accuracy, 11.0 / 12.0, 1e-12);
    cr_assert_float_eq(run->std_accuracy, sqrt(1.0 / 48.0), 1e-12);
    /* Pooled scores: 6 same at 0.8, different 5 at 0 and 1 at 1. ROC: (0,0), 1.0 D ->
     * (1/6, 0), 0.8 -> (1/6, 1), 0 -> (1, 1). AUC = 5/6 * 1 = 5/6. FAR - FRR: -5/6 at
     * (1/6,0), +1/6 at (1/6,1): crossing at FAR 1/6, EER 1/6. No point with 0 < FAR <=
     * 1e-2 other than (0,0): TAR@FAR=1e-3 = TAR@FAR=1e-2 = 0. */
    cr_assert_float_eq(run->auc, 5.0 / 6.0, 1e-9);
    cr_assert_float_eq(run->eer, 1.0 / 6.0, 1e-9);
    cr_assert_float_eq(run->far_targets[0], 1e-3, 0);
    cr_assert_float_eq(run->tar_at_far[0], 0.0, 1e-12);
    cr_assert_float_eq(run->tar_at_far[1], 0.0, 1e-12);
    cr_assert_float_eq(run->scores[0], 0.8, 1e-6);
    cr_assert_float_eq(run->scores[11], 1.0, 1e-6);
    fv_protocol_result_free(result);
    free(x);
    fv_pairs_free(pairs);
}

/* 12 people in 3 folds; person p's images lie near +-e_(p mod 6) in 16-D (opposite signs
 * for p >= 6), so any two people are orthogonal or opposite and same-person pairs have a
 * cosine near 1. Fold 2's last different pair reuses P0's image 1 from fold 1. */
static const char *const sep_text = "3\t2\n"
                                    "P0 1 2\nP1 1 2\nP2 1 P3 1\nP2 2 P3 2\n"
                                    "P4 1 2\nP5 1 2\nP6 1 P7 1\nP6 2 P0 1\n"
                                    "P8 1 2\nP9 1 2\nP10 1 P11 1\nP10 2 P11 2\n";
enum { SEP_D = 16 };

static float *sep_features(const struct fv_pairs *pairs)
{
    size_t n = fv_pairs_image_count(pairs);
    float *x = malloc(n * SEP_D * sizeof *x);
    uint32_t state = 99;
    for (size_t i = 0; i < n; i++) {
        int person = atoi(fv_pairs_image_path(pairs, i) + 1);
        for (size_t j = 0; j < SEP_D; j++) {
            state = state * 1664525u + 1013904223u;
            float noise = ((float)(state >> 8) / 16777216.0f - 0.5f) * 0.1f;
            float signal = (int)j == person % 6 ? (person < 6 ? 1.0f : -1.0f) : 0.0f;
            x[i * SEP_D + j] = signal + noise;
        }
    }
    return x;
}

struct fit_log {
    size_t calls;
    size_t runs[8], folds[8], counts[8];
    size_t images[8][64];
};

static void record_fit(void *user, size_t run, size_t fold, const size_t *train, size_t n)
{
    struct fit_log *log = user;
    cr_assert_lt(log->calls, 8);
    cr_assert_leq(n, 64);
    log->runs[log->calls] = run;
    log->folds[log->calls] = fold;
    log->counts[log->calls] = n;
    memcpy(log->images[log->calls], train, n * sizeof *train);
    log->calls++;
}

static size_t index_of(const struct fv_pairs *pairs, const char *path)
{
    for (size_t i = 0; i < fv_pairs_image_count(pairs); i++)
        if (strcmp(fv_pairs_image_path(pairs, i), path) == 0)
            return i;
    cr_assert_fail("no image %s", path);
    return 0;
}

Test(protocol, no_test_fold_image_is_fitted_on)
{
    struct fv_pairs *pairs = parse(sep_text);
    float *x = sep_features(pairs);
    size_t n = fv_pairs_image_count(pairs);
    const struct fv_pair *items = fv_pairs_items(pairs);
    struct fit_log log = {0};
    struct fv_protocol_params params = fv_protocol_default_params();
    params.pca_dim = 8;
    params.fit_hook = record_fit;
    params.fit_hook_user = &log;
    struct fv_protocol_result *result = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_protocol_run(x, n, SEP_D, pairs, &params, &result, &err), FV_OK, "%s",
                 err.message);
    /* One fit per fold, all in the PCA run; the run without PCA fits nothing. */
    cr_assert_eq(log.calls, 3);
    size_t shared = index_of(pairs, "P0/P0_0001.jpg");
    for (size_t c = 0; c < 3; c++) {
        size_t f = log.folds[c];
        cr_assert_eq(log.runs[c], 0);
        cr_assert_eq(f, c);
        bool test_image[64] = {false}, train_image[64] = {false};
        for (size_t p = 0; p < fv_pairs_count(pairs); p++) {
            bool *mark = items[p].fold == f ? test_image : train_image;
            mark[items[p].a] = mark[items[p].b] = true;
        }
        /* Exactly the training folds' images that fold f does not use, ascending. */
        size_t expected = 0;
        for (size_t i = 0; i < n; i++) {
            if (train_image[i] && !test_image[i]) {
                cr_assert_lt(expected, log.counts[c]);
                cr_assert_eq(log.images[c][expected], i, "fold %zu", f);
                expected++;
            }
        }
        cr_assert_eq(log.counts[c], expected);
        for (size_t k = 0; k < log.counts[c]; k++)
            cr_assert(!test_image[log.images[c][k]], "fold %zu fitted on its test image %zu", f,
                      log.images[c][k]);
        /* The result records the same list. */
        const struct fv_protocol_fold *fold = &result->runs[0].folds[f];
        cr_assert_eq(fold->n_train_images, log.counts[c]);
        cr_assert_eq(memcmp(fold->train_images, log.images[c],
                            log.counts[c] * sizeof(size_t)), 0);
        /* The image shared by folds 1 and 2 is fitted on only for fold 3. */
        bool has_shared = false;
        for (size_t k = 0; k < log.counts[c]; k++)
            has_shared |= log.images[c][k] == shared;
        cr_assert_eq(has_shared, f == 2, "fold %zu", f);
    }
    /* 23 images: fold 1 uses 8, fold 2 uses 7 new + P0_0001, fold 3 uses 8; fold 1 trains
     * on the 15 it does not use. */
    cr_assert_eq(n, 23);
    cr_assert_eq(result->runs[0].folds[0].n_train_images, 23 - 8 - 0 - 0 - 0);
    fv_protocol_result_free(result);
    free(x);
    fv_pairs_free(pairs);
}

Test(protocol, fold_model_ignores_test_fold_features)
{
    /* Replacing the features of images only fold 1 uses must leave fold 1's model, hence
     * its threshold and training accuracy, bit for bit unchanged. */
    struct fv_pairs *pairs = parse(sep_text);
    size_t n = fv_pairs_image_count(pairs);
    float *x = sep_features(pairs);
    struct fv_protocol_params params = fv_protocol_default_params();
    params.pca_dim = 8;
    params.whiten = true;
    struct fv_protocol_result *before = NULL, *after = NULL;
    cr_assert_eq(fv_protocol_run(x, n, SEP_D, pairs, &params, &before, NULL), FV_OK);
    const struct fv_pair *items = fv_pairs_items(pairs);
    bool elsewhere[64] = {false};
    for (size_t p = 0; p < fv_pairs_count(pairs); p++)
        if (items[p].fold != 0)
            elsewhere[items[p].a] = elsewhere[items[p].b] = true;
    uint32_t state = 5;
    for (size_t p = 0; p < fv_pairs_count(pairs); p++) {
        if (items[p].fold != 0)
            continue;
        size_t img[2] = {items[p].a, items[p].b};
        for (int s = 0; s < 2; s++)
            if (!elsewhere[img[s]])
                for (size_t j = 0; j < SEP_D; j++) {
                    state = state * 1664525u + 1013904223u;
                    x[img[s] * SEP_D + j] = (float)(state >> 16) / 100.0f;
                }
    }
    cr_assert_eq(fv_protocol_run(x, n, SEP_D, pairs, &params, &after, NULL), FV_OK);
    const struct fv_protocol_fold *f0 = &before->runs[0].folds[0], *g0 = &after->runs[0].folds[0];
    cr_assert_eq(memcmp(&f0->threshold, &g0->threshold, sizeof(double)), 0);
    cr_assert_eq(memcmp(&f0->train_accuracy, &g0->train_accuracy, sizeof(double)), 0);
    cr_assert_eq(memcmp(&f0->explained_variance, &g0->explained_variance, sizeof(double)), 0);
    /* Not vacuous: fold 1's own pair scores did change. */
    cr_assert_neq(before->runs[0].scores[0], after->runs[0].scores[0]);
    fv_protocol_result_free(before);
    fv_protocol_result_free(after);
    free(x);
    fv_pairs_free(pairs);
}

Test(protocol, separable_with_and_without_pca)
{
    struct fv_pairs *pairs = parse(sep_text);
    float *x = sep_features(pairs);
    struct fv_protocol_params params = fv_protocol_default_params();
    params.pca_dim = 8;
    struct fv_protocol_result *result = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_protocol_run(x, fv_pairs_image_count(pairs), SEP_D, pairs, &params, &result,
                                 &err),
                 FV_OK, "%s", err.message);
    cr_assert_eq(result->n_runs, 2);
    cr_assert_str_eq(result->runs[0].label, "with PCA");
    cr_assert_str_eq(result->runs[1].label, "without PCA");
    cr_assert_eq(result->runs[0].pca_dim, 8);
    cr_assert_eq(result->runs[1].pca_dim, 0);
    for (size_t r = 0; r < 2; r++) {
        const struct fv_protocol_run *run = &result->runs[r];
        for (size_t f = 0; f < 3; f++) {
            cr_assert_float_eq(run->folds[f].accuracy, 1.0, 1e-12, "run %zu fold %zu", r, f);
            cr_assert_gt(run->folds[f].threshold, 0.1);
            cr_assert_lt(run->folds[f].threshold, 0.95);
        }
        cr_assert_float_eq(run->mean_accuracy, 1.0, 1e-12);
        cr_assert_float_eq(run->std_accuracy, 0.0, 1e-12);
        cr_assert_float_eq(run->auc, 1.0, 1e-12);
        cr_assert_float_eq(run->eer, 0.0, 1e-12);
        cr_assert_float_eq(run->tar_at_far[0], 1.0, 1e-12);
        cr_assert_float_eq(run->tar_at_far[1], 1.0, 1e-12);
    }
    cr_assert_gt(result->runs[0].folds[0].explained_variance, 0.9);
    cr_assert_float_eq(result->runs[1].folds[0].explained_variance, 0.0, 0);
    fv_protocol_result_free(result);
    free(x);
    fv_pairs_free(pairs);
}

Test(protocol, rejects_bad_input)
{
    struct fv_pairs *pairs = parse(small_text);
    size_t n = fv_pairs_image_count(pairs);
    float *x = small_features(pairs);
    struct fv_protocol_result *result = NULL;
    struct fv_error err = {0};
    struct fv_protocol_params params = fv_protocol_default_params();
    cr_assert_eq(fv_protocol_run(x, n - 1, 2, pairs, NULL, &result, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "23 feature rows for 24 images"), "%s", err.message);
    params.pca_dim = 3;
    cr_assert_eq(fv_protocol_run(x, n, 2, pairs, &params, &result, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "PCA dimension 3 exceeds"), "%s", err.message);
    x[5] = INFINITY;
    cr_assert_eq(fv_protocol_run(x, n, 2, pairs, NULL, &result, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "feature 1 of image 2 (B0/B0_0001.jpg)"), "%s", err.message);
    cr_assert_null(result);
    free(x);
    fv_pairs_free(pairs);

    /* k larger than a fold's training images allow (16 images: k <= 15). */
    pairs = parse(sep_text);
    x = sep_features(pairs);
    params.pca_dim = 16;
    cr_assert_eq(fv_protocol_run(x, fv_pairs_image_count(pairs), SEP_D, pairs, &params, &result,
                                 &err),
                 FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "with PCA: fold 1 (15 training images): PCA: k = 16"), "%s",
              err.message);
    free(x);
    fv_pairs_free(pairs);

    pairs = parse("A 1 2\nB 1 C 1\n");
    float one[8] = {1, 0, 0, 1, 1, 1, 0, 1};
    cr_assert_eq(fv_protocol_run(one, 4, 2, pairs, NULL, &result, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "at least 2 folds"), "%s", err.message);
    fv_pairs_free(pairs);
    fv_protocol_result_free(NULL);
}

Test(report, json_summary_svg)
{
    struct fv_pairs *pairs = parse(sep_text);
    float *x = sep_features(pairs);
    struct fv_protocol_params params = fv_protocol_default_params();
    params.pca_dim = 8;
    struct fv_protocol_result *result = NULL;
    cr_assert_eq(fv_protocol_run(x, fv_pairs_image_count(pairs), SEP_D, pairs, &params, &result,
                                 NULL),
                 FV_OK);
    struct fv_report_failure failures[] = {{"P3/P3_0002.jpg", true, "landmarks"},
                                           {"P9/P9_0001.jpg", false, NULL}};
    struct fv_report_params rp = fv_report_default_params();
    rp.title = "Synthetic <check> & \"quotes\"";
    rp.max_roc_points = 3;
    struct fv_error err = {0};

    char *json = fv_report_json(result, failures, 2, &rp, &err);
    cr_assert_not_null(json, "%s", err.message);
    cJSON *root = cJSON_Parse(json);
    cr_assert_not_null(root);
    cr_assert_str_eq(cJSON_GetObjectItem(root, "title")->valuestring, rp.title);
    cr_assert_eq(cJSON_GetObjectItem(root, "folds")->valueint, 3);
    cJSON *runs = cJSON_GetObjectItem(root, "runs");
    cr_assert_eq(cJSON_GetArraySize(runs), 2);
    cJSON *run0 = cJSON_GetArrayItem(runs, 0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(run0, "folds")), 3);
    cr_assert_float_eq(cJSON_GetObjectItem(run0, "mean_accuracy")->valuedouble, 1.0, 1e-12);
    cJSON *roc = cJSON_GetObjectItem(run0, "roc");
    /* The ROC has more than 3 points; subsampling keeps 3, including both ends. */
    cr_assert_gt(fv_roc_point_count(result->runs[0].roc), 3);
    cr_assert_eq(cJSON_GetArraySize(roc), 3);
    cr_assert_float_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(roc, 0), "far")->valuedouble, 0, 0);
    cr_assert_float_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(roc, 2), "far")->valuedouble, 1, 0);
    cJSON *tar = cJSON_GetArrayItem(cJSON_GetObjectItem(run0, "tar_at_far"), 1);
    cr_assert_float_eq(cJSON_GetObjectItem(tar, "far")->valuedouble, 1e-2, 1e-15);
    cJSON *fails = cJSON_GetObjectItem(root, "detection_failures");
    cr_assert_eq(cJSON_GetArraySize(fails), 2);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(fails, 1), "image")->valuestring,
                     "P9/P9_0001.jpg");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(fails, 1), "fallback_used")));
    cJSON_Delete(root);
    free(json);

    char *summary = fv_report_summary(result, failures, 2, &rp, &err);
    cr_assert_not_null(summary, "%s", err.message);
    cr_assert(strstr(summary, "with PCA (k=8)") && strstr(summary, "without PCA"), "%s", summary);
    cr_assert(strstr(summary, "100.00% +- 0.00"), "%s", summary);
    cr_assert(strstr(summary, "detection failures: 2 (1 embedded with a fallback, 1 left out)"),
              "%s", summary);
    free(summary);

    char *svg = fv_report_svg(result, &rp, &err);
    cr_assert_not_null(svg, "%s", err.message);
    cr_assert_eq(strncmp(svg, "<?xml", 5), 0);
    cr_assert(strstr(svg, "Synthetic &lt;check&gt; &amp; &quot;quotes&quot;"));
    cr_assert_null(strstr(svg, "<check>"));
    cr_assert(strstr(svg, "False accept rate") && strstr(svg, "True accept rate"));
    cr_assert(strstr(svg, "TAR 100.00% @ FAR"));
    cr_assert_eq(strcmp(svg + strlen(svg) - 7, "</svg>\n"), 0);
    free(svg);

    rp.max_roc_points = 1;
    cr_assert_null(fv_report_json(result, NULL, 0, &rp, &err));
    cr_assert_eq(err.status, FV_ERR_INVALID_ARG);
    fv_protocol_result_free(result);
    free(x);
    fv_pairs_free(pairs);
}
