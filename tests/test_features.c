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

/* A run over n images cycling through the six test photos: their names, room
 * for the features, and what the callbacks saw. */
struct run {
    struct fv_pipeline *pipe;
    size_t n, d;
    const char **paths;
    float *x;
    enum fv_feature_source *how;
    struct fv_features_params params; /* 2 threads, the callbacks below */
    size_t cancel_after; /* the cancel callback says yes once this many images are done */
    atomic_size_t done;
    atomic_int cancel_calls, inside, overlapped;
};

static void on_progress(void *user, size_t done, size_t total)
{
    struct run *run = user;
    (void)total;
    atomic_store(&run->done, done);
}

static int on_cancel(void *user)
{
    struct run *run = user;
    /* The contract: one call at a time. Linger a little so overlaps would show. */
    if (atomic_fetch_add(&run->inside, 1) != 0)
        atomic_store(&run->overlapped, 1);
    usleep(200);
    atomic_fetch_add(&run->cancel_calls, 1);
    int cancel = atomic_load(&run->done) >= run->cancel_after;
    atomic_fetch_sub(&run->inside, 1);
    return cancel;
}

/* cancel_after (size_t)-1: never cancel. */
static void run_open(struct run *run, size_t n, size_t cancel_after)
{
    static const char *const names[N_SAMPLES] = {"sample1.jpg", "sample2.jpg", "sample3.jpg",
                                                 "sample4.jpg", "sample5.jpg", "sample6.jpg"};
    memset(run, 0, sizeof *run);
    run->pipe = open_pipeline();
    run->n = n;
    run->d = (size_t)fv_pipeline_raw_dim(run->pipe);
    run->paths = malloc(n * sizeof *run->paths);
    run->x = malloc(n * run->d * sizeof *run->x);
    run->how = malloc(n * sizeof *run->how);
    for (size_t i = 0; i < n; i++)
        run->paths[i] = names[i % N_SAMPLES];
    run->cancel_after = cancel_after;
    run->params = fv_features_default_params();
    run->params.threads = 2;
    run->params.progress = on_progress;
    run->params.progress_user = run;
    run->params.cancel = on_cancel;
    run->params.cancel_user = run;
}

static void run_close(struct run *run)
{
    free(run->paths);
    free(run->x);
    free(run->how);
    fv_pipeline_free(run->pipe);
}

/* The run's images read into memory; free each data[i]. */
static void read_blobs(const struct run *run, struct fv_features_blob *blobs, uint8_t **data)
{
    struct fv_error err = {0};
    for (size_t i = 0; i < run->n; i++) {
        char path[64];
        snprintf(path, sizeof path, "tests/data/%s", run->paths[i]);
        cr_assert_eq(fv_read_file(path, (size_t)64 << 20, &data[i], &blobs[i].size, &err), FV_OK,
                     "%s", err.message);
        blobs[i].data = data[i];
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(features, cancel_stops_before_the_next_image, .timeout = 300)
{
    struct run run;
    run_open(&run, 8 * N_SAMPLES, 3);
    struct fv_error err = {0};
    struct fv_features_stats stats;
    double t0 = now_s();
    enum fv_status st = fv_features_extract(run.pipe, "tests/data", run.paths, run.n, &run.params,
                                            run.x, run.how, &stats, &err);
    double took = now_s() - t0;
    cr_assert_eq(st, FV_ERR_CANCELLED, "%s", fv_status_str(st));
    cr_assert_eq(err.status, FV_ERR_CANCELLED);
    cr_assert_not_null(strstr(err.message, "cancelled"), "%s", err.message);
    /* The worker that saw the yes stops at once; the other finishes the image in hand. */
    size_t done = atomic_load(&run.done);
    cr_assert_geq(done, run.cancel_after);
    cr_assert_leq(done, run.cancel_after + (size_t)run.params.threads,
                  "%zu of %zu images after the cancel", done, run.n);
    cr_assert_eq(atomic_load(&run.overlapped), 0, "the cancel callback ran twice at once");
    fprintf(stderr, "[INFO] features: cancelled after %zu of %zu images in %.2f s\n", done, run.n,
            took);
    run_close(&run);
}

Test(features, cancel_before_the_first_image, .timeout = 120)
{
    struct run run;
    run_open(&run, N_SAMPLES, 0);
    /* A cache must not be written from a cancelled run. */
    char cache[] = "/tmp/facever-features-cache-XXXXXX";
    int fd = mkstemp(cache);
    cr_assert_geq(fd, 0);
    close(fd);
    unlink(cache);
    run.params.cache_path = cache;
    struct fv_error err = {0};
    cr_assert_eq(fv_features_extract(run.pipe, "tests/data", run.paths, run.n, &run.params, run.x,
                                     run.how, NULL, &err),
                 FV_ERR_CANCELLED);
    cr_assert_eq(atomic_load(&run.done), 0, "an image was embedded after the cancel");
    cr_assert_geq(atomic_load(&run.cancel_calls), 1);
    cr_assert_neq(access(cache, F_OK), 0, "a cancelled run wrote the feature cache");
    run_close(&run);
}

Test(features, blobs_give_the_features_of_files, .timeout = 300)
{
    struct run run;
    run_open(&run, N_SAMPLES, (size_t)-1);
    float *from_blobs = malloc(run.n * run.d * sizeof *from_blobs);
    enum fv_feature_source how_blobs[N_SAMPLES];
    struct fv_features_blob blobs[N_SAMPLES];
    uint8_t *data[N_SAMPLES];
    read_blobs(&run, blobs, data);
    struct fv_error err = {0};
    struct fv_features_stats a, b;
    cr_assert_eq(fv_features_extract(run.pipe, "tests/data", run.paths, run.n, &run.params, run.x,
                                     run.how, &a, &err),
                 FV_OK, "%s", err.message);
    cr_assert_eq(fv_features_extract_blobs(run.pipe, blobs, run.paths, run.n, &run.params,
                                           from_blobs, how_blobs, &b, &err),
                 FV_OK, "%s", err.message);
    cr_assert_eq(memcmp(run.how, how_blobs, sizeof how_blobs), 0);
    cr_assert_eq(memcmp(run.x, from_blobs, run.n * run.d * sizeof *from_blobs), 0,
                 "the same bytes from memory and from files gave other features");
    cr_assert_eq(a.failed, 0);
    cr_assert_eq(a.first_failed, run.n, "no failure is reported as index n");
    cr_assert_str_eq(a.first_failure, "");
    cr_assert_eq(b.detected, a.detected);
    for (size_t i = 0; i < run.n; i++)
        free(data[i]);
    free(from_blobs);
    run_close(&run);
}

Test(features, the_first_failure_is_the_lowest_index, .timeout = 300)
{
    struct run run;
    run_open(&run, N_SAMPLES, (size_t)-1);
    struct fv_features_blob blobs[N_SAMPLES];
    uint8_t *data[N_SAMPLES];
    read_blobs(&run, blobs, data);
    /* Two bad ones; with two threads either may fail first in time. */
    static const uint8_t junk[] = "not an image at all";
    blobs[4].data = junk;
    blobs[4].size = sizeof junk;
    blobs[2].data = junk;
    blobs[2].size = 3;
    struct fv_error err = {0};
    struct fv_features_stats stats;
    cr_assert_eq(fv_features_extract_blobs(run.pipe, blobs, run.paths, run.n, &run.params, run.x,
                                           run.how, &stats, &err),
                 FV_OK, "an unreadable image is recorded, not fatal: %s", err.message);
    cr_assert_eq(stats.failed, 2);
    cr_assert_eq(run.how[2], FV_FEATURE_FAILED);
    cr_assert_eq(run.how[4], FV_FEATURE_FAILED);
    cr_assert_eq(stats.first_failed, 2);
    cr_assert_neq(stats.first_failure[0], 0, "the reason is given");
    for (size_t i = 0; i < run.n; i++)
        free(data[i]);
    run_close(&run);
}
