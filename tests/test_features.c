/* test_features.c - eval/features.c: images from files or memory give the same
 * features, the first failure is reported, and a cancel callback stops the
 * workers before their next image, promptly and without leaks (the suite is
 * leak-checked under ASan). Uses models/ and tests/data/sample*.jpg. */
#include <criterion/criterion.h>

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/features.h"
#include "model/model_file.h"
#include "tests/leak_check.h"

LEAK_CHECKED_SUITE(features);

#define N_SAMPLES 6

static struct fv_pipeline *open_pipeline(void)
{
    if (access("models/mobilefacenet.fvm", R_OK) || access("tests/data/sample1.jpg", R_OK))
        cr_skip_test("models/ or tests/data/ missing (make models test-data)");
    openblas_set_num_threads(1);
    struct fv_pipeline_params params;
    struct fv_pipeline *pipe = NULL;
    struct fv_error err = {0};
    fv_pipeline_default_params(&params);
    cr_assert_eq(fv_pipeline_new("models", "models/mobilefacenet.fvm", &params, &pipe, &err),
                 FV_OK, "%s", err.message);
    return pipe;
}

/* paths[i] = "sampleK.jpg", K cycling through the six test photos. */
static const char **sample_paths(size_t n)
{
    static const char *const names[N_SAMPLES] = {"sample1.jpg", "sample2.jpg", "sample3.jpg",
                                                 "sample4.jpg", "sample5.jpg", "sample6.jpg"};
    const char **paths = malloc(n * sizeof *paths);
    for (size_t i = 0; i < n; i++)
        paths[i] = names[i % N_SAMPLES];
    return paths;
}

/* What the callbacks saw. */
struct watch {
    size_t cancel_after; /* the cancel callback says yes once this many images are done */
    atomic_size_t done;
    atomic_int cancel_calls, inside, overlapped;
};

static void on_progress(void *user, size_t done, size_t total)
{
    struct watch *w = user;
    (void)total;
    atomic_store(&w->done, done);
}

static int on_cancel(void *user)
{
    struct watch *w = user;
    /* The contract: one call at a time. Linger a little so overlaps would show. */
    if (atomic_fetch_add(&w->inside, 1) != 0)
        atomic_store(&w->overlapped, 1);
    usleep(200);
    atomic_fetch_add(&w->cancel_calls, 1);
    int cancel = atomic_load(&w->done) >= w->cancel_after;
    atomic_fetch_sub(&w->inside, 1);
    return cancel;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(features, cancel_stops_before_the_next_image, .timeout = 300)
{
    struct fv_pipeline *pipe = open_pipeline();
    const size_t n = 8 * N_SAMPLES;
    const char **paths = sample_paths(n);
    size_t d = (size_t)fv_pipeline_raw_dim(pipe);
    float *x = malloc(n * d * sizeof *x);
    enum fv_feature_source *how = malloc(n * sizeof *how);
    struct watch w = {.cancel_after = 3};
    struct fv_features_params p = fv_features_default_params();
    p.threads = 2;
    p.progress = on_progress;
    p.progress_user = &w;
    p.cancel = on_cancel;
    p.cancel_user = &w;
    struct fv_error err = {0};
    struct fv_features_stats stats;
    double t0 = now_s();
    enum fv_status st = fv_features_extract(pipe, "tests/data", paths, n, &p, x, how, &stats, &err);
    double took = now_s() - t0;
    cr_assert_eq(st, FV_ERR_CANCELLED, "%s", fv_status_str(st));
    cr_assert_eq(err.status, FV_ERR_CANCELLED);
    cr_assert_not_null(strstr(err.message, "cancelled"), "%s", err.message);
    /* The worker that saw the yes stops at once; the other finishes the image in hand. */
    size_t done = atomic_load(&w.done);
    cr_assert_geq(done, w.cancel_after);
    cr_assert_leq(done, w.cancel_after + (size_t)p.threads, "%zu of %zu images after the cancel",
                  done, n);
    cr_assert_eq(atomic_load(&w.overlapped), 0, "the cancel callback ran twice at once");
    cr_assert_geq(atomic_load(&w.cancel_calls), (int)w.cancel_after);
    fprintf(stderr, "[INFO] features: cancelled after %zu of %zu images in %.2f s\n", done, n,
            took);
    free(x);
    free(how);
    free(paths);
    fv_pipeline_free(pipe);
}

Test(features, cancel_before_the_first_image, .timeout = 120)
{
    struct fv_pipeline *pipe = open_pipeline();
    const size_t n = N_SAMPLES;
    const char **paths = sample_paths(n);
    size_t d = (size_t)fv_pipeline_raw_dim(pipe);
    float *x = malloc(n * d * sizeof *x);
    enum fv_feature_source *how = malloc(n * sizeof *how);
    struct watch w = {.cancel_after = 0};
    struct fv_features_params p = fv_features_default_params();
    p.threads = 2;
    p.progress = on_progress;
    p.progress_user = &w;
    p.cancel = on_cancel;
    p.cancel_user = &w;
    /* A cache must not be written from a cancelled run. */
    char cache[] = "/tmp/facever-features-cache-XXXXXX";
    int fd = mkstemp(cache);
    cr_assert_geq(fd, 0);
    close(fd);
    unlink(cache);
    p.cache_path = cache;
    struct fv_error err = {0};
    cr_assert_eq(fv_features_extract(pipe, "tests/data", paths, n, &p, x, how, NULL, &err),
                 FV_ERR_CANCELLED);
    cr_assert_eq(atomic_load(&w.done), 0, "an image was embedded after the cancel");
    cr_assert_neq(access(cache, F_OK), 0, "a cancelled run wrote the feature cache");
    free(x);
    free(how);
    free(paths);
    fv_pipeline_free(pipe);
}

Test(features, blobs_give_the_features_of_files, .timeout = 300)
{
    struct fv_pipeline *pipe = open_pipeline();
    const size_t n = N_SAMPLES;
    const char **paths = sample_paths(n);
    size_t d = (size_t)fv_pipeline_raw_dim(pipe);
    float *from_files = malloc(n * d * sizeof *from_files);
    float *from_blobs = malloc(n * d * sizeof *from_blobs);
    enum fv_feature_source how_files[N_SAMPLES], how_blobs[N_SAMPLES];
    struct fv_features_blob blobs[N_SAMPLES];
    uint8_t *data[N_SAMPLES];
    struct fv_error err = {0};
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "tests/data/%s", paths[i]);
        cr_assert_eq(fv_read_file(path, (size_t)64 << 20, &data[i], &blobs[i].size, &err), FV_OK,
                     "%s", err.message);
        blobs[i].data = data[i];
    }
    struct fv_features_params p = fv_features_default_params();
    p.threads = 2;
    struct fv_features_stats a, b;
    cr_assert_eq(fv_features_extract(pipe, "tests/data", paths, n, &p, from_files, how_files, &a,
                                     &err),
                 FV_OK, "%s", err.message);
    cr_assert_eq(fv_features_extract_blobs(pipe, blobs, paths, n, &p, from_blobs, how_blobs, &b,
                                           &err),
                 FV_OK, "%s", err.message);
    cr_assert_eq(memcmp(how_files, how_blobs, sizeof how_files), 0);
    cr_assert_eq(memcmp(from_files, from_blobs, n * d * sizeof *from_files), 0,
                 "the same bytes from memory and from files gave other features");
    cr_assert_eq(a.failed, 0);
    cr_assert_eq(a.first_failed, n, "no failure is reported as index n");
    cr_assert_str_eq(a.first_failure, "");
    cr_assert_eq(b.detected, a.detected);
    for (size_t i = 0; i < n; i++)
        free(data[i]);
    free(from_files);
    free(from_blobs);
    free(paths);
    fv_pipeline_free(pipe);
}

Test(features, the_first_failure_is_the_lowest_index, .timeout = 300)
{
    struct fv_pipeline *pipe = open_pipeline();
    const size_t n = N_SAMPLES;
    const char **paths = sample_paths(n);
    size_t d = (size_t)fv_pipeline_raw_dim(pipe);
    float *x = malloc(n * d * sizeof *x);
    enum fv_feature_source how[N_SAMPLES];
    struct fv_features_blob blobs[N_SAMPLES];
    uint8_t *data[N_SAMPLES];
    struct fv_error err = {0};
    static const uint8_t junk[] = "not an image at all";
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "tests/data/%s", paths[i]);
        cr_assert_eq(fv_read_file(path, (size_t)64 << 20, &data[i], &blobs[i].size, &err), FV_OK);
        blobs[i].data = data[i];
    }
    /* Two bad ones; with two threads either may fail first in time. */
    blobs[4].data = junk;
    blobs[4].size = sizeof junk;
    blobs[2].data = junk;
    blobs[2].size = 3;
    struct fv_features_params p = fv_features_default_params();
    p.threads = 2;
    struct fv_features_stats stats;
    cr_assert_eq(fv_features_extract_blobs(pipe, blobs, paths, n, &p, x, how, &stats, &err), FV_OK,
                 "an unreadable image is recorded, not fatal: %s", err.message);
    cr_assert_eq(stats.failed, 2);
    cr_assert_eq(how[2], FV_FEATURE_FAILED);
    cr_assert_eq(how[4], FV_FEATURE_FAILED);
    cr_assert_eq(stats.first_failed, 2);
    cr_assert_neq(stats.first_failure[0], 0, "the reason is given");
    for (size_t i = 0; i < n; i++)
        free(data[i]);
    free(x);
    free(paths);
    fv_pipeline_free(pipe);
}
