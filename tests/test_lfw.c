/* test_lfw.c - the paper's protocol on the development subset of LFW, when present.
 *
 * ../shared/lfw-dev (3 folds × 600 pairs, 2,320 images) sits beside the checkout on
 * development machines and in CI; the test skips with a message elsewhere. The
 * default model with MTCNN alignment must reach 99.0% mean accuracy.
 */
#include <cblas.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>

#include "eval/features.h"
#include "eval/pairs.h"
#include "eval/protocol.h"

#define LFW_DEV "../shared/lfw-dev"

Test(lfw_dev, protocol_accuracy_at_least_99, .timeout = 900)
{
    if (access(LFW_DEV "/pairs.txt", R_OK) != 0)
        cr_skip_test(LFW_DEV " is absent: skipping the LFW accuracy check");
    if (access("models/mobilefacenet.fvm", R_OK) != 0)
        cr_skip_test("models/ missing: run `make models`");
    openblas_set_num_threads(1); /* as facever does: parallelism comes from workers */
    struct fv_error err = {0};
    struct fv_pairs_params pp = fv_pairs_default_params();
    struct fv_pairs *pairs;
    cr_assert_eq(fv_pairs_load(LFW_DEV "/pairs.txt", &pp, &pairs, &err), FV_OK, "%s", err.message);
    struct fv_pipeline_params params;
    struct fv_pipeline *pipe;
    fv_pipeline_default_params(&params);
    cr_assert_eq(fv_pipeline_new("models", "models/mobilefacenet.fvm", &params, &pipe, &err), FV_OK,
                 "%s", err.message);
    size_t n = fv_pairs_image_count(pairs), d = (size_t)fv_pipeline_raw_dim(pipe);
    float *x = malloc(n * d * sizeof *x);
    enum fv_feature_source *how = malloc(n * sizeof *how);
    const char **paths = malloc(n * sizeof *paths);
    for (size_t i = 0; i < n; i++)
        paths[i] = fv_pairs_image_path(pairs, i);
    struct fv_features_params fp = fv_features_default_params();
    struct fv_features_stats stats;
    cr_assert_eq(fv_features_extract(pipe, LFW_DEV "/images", paths, n, &fp, x, how, &stats, &err),
                 FV_OK, "%s", err.message);
    cr_expect_eq(n, 2320);
    cr_expect_eq(stats.failed, 0);
    cr_expect_geq((double)stats.detected / n, 0.995, "faces detected in only %zu of %zu", stats.detected, n);

    struct fv_protocol_params prot = fv_protocol_default_params();
    prot.pca_dim = 128;
    prot.compare_without_pca = true;
    struct fv_protocol_result *r;
    cr_assert_eq(fv_protocol_run(x, n, d, pairs, &prot, &r, &err), FV_OK, "%s", err.message);
    fprintf(stderr, "[INFO] lfw-dev: %zu/%zu faces detected in %.1f s; accuracy %.2f%% +- %.2f with PCA-128, "
                "%.2f%% +- %.2f without; AUC %.5f, EER %.2f%%, TAR@FAR=1e-3 %.2f%%\n",
                stats.detected, n, stats.seconds, 100 * r->runs[0].mean_accuracy,
                100 * r->runs[0].std_accuracy, 100 * r->runs[1].mean_accuracy,
                100 * r->runs[1].std_accuracy, r->runs[0].auc, 100 * r->runs[0].eer,
                100 * r->runs[0].tar_at_far[0]);
    cr_expect_geq(r->runs[0].mean_accuracy, 0.990);
    cr_expect_geq(r->runs[1].mean_accuracy, 0.990);
    cr_expect_geq(r->runs[0].auc, 0.995);
    fv_protocol_result_free(r);
    free(paths);
    free(how);
    free(x);
    fv_pipeline_free(pipe);
    fv_pairs_free(pairs);
}
