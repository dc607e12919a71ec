/* bench.c - `make bench`: speed of the networks and of the face pipeline.
 *
 * Prints medians over repeated runs (these machines are noisy: compare ratios
 * within one run). Needs models/ and tests/data/ (make models test-data).
 */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/cpu.h"
#include "model/gemm.h"
#include "model/model.h"
#include "model/model_file.h"
#include "model/train.h"
#include "pipeline/align.h"
#include "pipeline/pipeline.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(const struct fv_error *err)
{
    fprintf(stderr, "bench: %s\n", err->message);
    exit(1);
}

struct throughput_job {
    const struct fv_model *model;
    int batch, h, w, iterations;
    float *input;
};

static void *throughput_thread(void *arg)
{
    struct throughput_job *job = arg;
    struct fv_context *ctx;
    struct fv_error err = {0};
    if (fv_context_new(job->model, job->batch, job->h, job->w, &ctx, &err))
        die(&err);
    for (int i = 0; i < job->iterations; i++)
        if (fv_context_run(ctx, job->input, job->batch, job->h, job->w, &err))
            die(&err);
    fv_context_free(ctx);
    return NULL;
}

/* Images per second at batch 16 with `threads` contexts running side by side. */
static double throughput(const struct fv_model *m, int h, int w, int threads, float *input)
{
    enum { BATCH = 16, ITER = 4 };
    pthread_t tid[8];
    struct throughput_job job = {m, BATCH, h, w, ITER, input};
    throughput_thread(&job); /* warm up */
    double t0 = now_ms();
    for (int t = 0; t < threads; t++)
        pthread_create(&tid[t], NULL, throughput_thread, &job);
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    return (double)threads * BATCH * ITER / ((now_ms() - t0) / 1e3);
}

static void bench_network(const char *path, int h, int w, enum fv_precision precision)
{
    struct fv_error err = {0};
    struct fv_model *m;
    if (fv_model_load(path, &m, &err) || fv_model_set_precision(m, precision, &err))
        die(&err);
    char name[128];
    snprintf(name, sizeof name, "%s%s", fv_model_meta(m)->name,
             precision == FV_PRECISION_BF16 ? " (bf16)" : "");
    size_t per = (size_t)h * w * 3;
    float *input = malloc(16 * per * sizeof *input);
    for (size_t i = 0; i < 16 * per; i++)
        input[i] = sinf(0.001f * (float)i);
    struct fv_context *ctx;
    if (fv_context_new(m, 1, h, w, &ctx, &err))
        die(&err);
    enum { RUNS = 40 };
    double t[RUNS];
    fv_context_run(ctx, input, 1, h, w, &err);
    for (int i = 0; i < RUNS; i++) {
        double t0 = now_ms();
        fv_context_run(ctx, input, 1, h, w, &err);
        t[i] = now_ms() - t0;
    }
    double med = median(t, RUNS), flops = fv_model_flops(m, h, w);
    double one = throughput(m, h, w, 1, input), two = throughput(m, h, w, 2, input);
    printf("%-20s %4dx%-4d %8.4f %9.2f ms %8.1f %10.1f %10.1f %8.1f\n", name, h, w, flops / 1e9, med, flops / (med / 1e3) / 1e9, one, two, two / one);
    fv_context_free(ctx);
    fv_model_free(m);
    free(input);
}

struct stages {
    double decode, detect, align, embed, total;
};

static void bench_image(struct fv_pipeline_worker *w, const struct fv_pipeline *pipe,
                        const uint8_t *jpeg, size_t size, const char *label)
{
    enum { RUNS = 15 };
    double d[RUNS], det[RUNS], al[RUNS], em[RUNS], tot[RUNS];
    struct fv_error err = {0};
    int dim = fv_pipeline_raw_dim(pipe), width = 0, height = 0, faces_found = 0;
    float *raw = malloc((size_t)dim * sizeof *raw);
    for (int r = -1; r < RUNS; r++) {
        double t0 = now_ms();
        struct fv_image_source *img;
        if (fv_image_source_open(jpeg, size, NULL, &img, &err))
            die(&err);
        double t1 = now_ms();
        struct fv_face *faces;
        int n;
        if (fv_pipeline_detect_source(w, img, FV_FACE_LARGEST, &faces, &n, &err))
            die(&err);
        double t2 = now_ms();
        if (n < 1) {
            fprintf(stderr, "bench: no face in %s\n", label);
            exit(1);
        }
        struct fv_image *crop;
        if (fv_pipeline_align_source(pipe, img, (const float(*)[2])faces[0].landmarks, &crop,
                                     &err))
            die(&err);
        fv_image_free(crop);
        double t3 = now_ms();
        if (fv_pipeline_embed_source(w, img, (const float(*)[2])faces[0].landmarks, raw, NULL,
                                     &err))
            die(&err);
        double t4 = now_ms();
        width = fv_image_source_info(img)->width, height = fv_image_source_info(img)->height;
        faces_found = n;
        free(faces);
        fv_image_source_free(img);
        if (r < 0)
            continue;
        d[r] = t1 - t0, det[r] = t2 - t1, al[r] = t3 - t2;
        /* embed_landmarks aligns again: report the forward passes alone */
        em[r] = (t4 - t3) - (t3 - t2);
        tot[r] = (t2 - t0) + (t4 - t3);
    }
    printf("%-22s %4dx%-4d %5d %8.2f %8.2f %8.2f %8.2f %9.2f\n", label, width, height, faces_found,
           median(d, RUNS), median(det, RUNS), median(al, RUNS), median(em, RUNS),
           median(tot, RUNS));
    free(raw);
}

struct verify_job {
    struct fv_pipeline_worker *worker;
    const uint8_t *jpeg;
    size_t size;
    float *embedding;
};

/* Decode, detect, align and embed one image; keeps the first face's embedding. */
static void *verify_one(void *arg)
{
    struct verify_job *job = arg;
    struct fv_error err = {0};
    struct fv_image_source *img;
    struct fv_face_embedding *faces;
    int n;
    if (fv_image_source_open(job->jpeg, job->size, NULL, &img, &err) ||
        fv_pipeline_process_source(job->worker, img, FV_FACE_LARGEST, &faces, &n, &err))
        die(&err);
    job->embedding = faces[0].embedding;
    faces[0].embedding = NULL;
    fv_face_embeddings_free(faces, n);
    fv_image_source_free(img);
    return NULL;
}

/* A 250×250 JPEG of one face cut from a sample photo (an LFW-like image). */
static uint8_t *lfw_like(struct fv_pipeline_worker *w, const char *photo, int face, size_t *size)
{
    struct fv_error err = {0};
    struct fv_image *img, *cut, *small;
    struct fv_face *faces;
    int n;
    uint8_t *jpeg;
    if (fv_image_load(photo, NULL, &img, &err) ||
        fv_pipeline_detect(w, img, FV_FACE_ALL, &faces, &n, &err))
        die(&err);
    if (n <= face) {
        fprintf(stderr, "bench: %s has %d faces\n", photo, n);
        exit(1);
    }
    float bw = faces[face].box[2] - faces[face].box[0];
    float cx = (faces[face].box[0] + faces[face].box[2]) / 2, cy = (faces[face].box[1] + faces[face].box[3]) / 2;
    int side = (int)(bw * 2.2f);
    cut = fv_image_crop(img, (int)(cx - side / 2), (int)(cy - side / 2), side, side);
    if (fv_image_resize(cut, 250, 250, &small, &err) || fv_image_encode_jpeg(small, 90, &jpeg, size, &err))
        die(&err);
    free(faces);
    fv_image_free(img);
    fv_image_free(cut);
    fv_image_free(small);
    return jpeg;
}

/* Verify a against b, medians of 21 runs: both images on one thread, and on two
 * threads as `facever verify` runs it. */
static void bench_verify(const struct fv_pipeline *pipe, const char *label, const uint8_t *a,
                           size_t size1, const uint8_t *b, size_t size2)
{
    struct fv_error err = {0};
    struct fv_pipeline_worker *w, *w2;
    if (fv_pipeline_worker_new(pipe, &w, &err) || fv_pipeline_worker_new(pipe, &w2, &err))
        die(&err);
    struct verify_job jobs[2] = {{w, a, size1, NULL}, {w2, b, size2, NULL}};
    enum { RUNS = 21 };
    double t_seq[RUNS], t_par[RUNS];
    int dim = fv_pipeline_dim(pipe);
    for (int r = -1; r < RUNS; r++) {
        double t0 = now_ms();
        verify_one(&jobs[0]);
        verify_one(&jobs[1]);
        volatile float score = fv_cosine(jobs[0].embedding, jobs[1].embedding, dim);
        (void)score;
        double t1 = now_ms();
        for (int i = 0; i < 2; i++)
            free(jobs[i].embedding);
        double t2 = now_ms();
        pthread_t tid;
        pthread_create(&tid, NULL, verify_one, &jobs[1]);
        verify_one(&jobs[0]);
        pthread_join(tid, NULL);
        score = fv_cosine(jobs[0].embedding, jobs[1].embedding, dim);
        double t3 = now_ms();
        for (int i = 0; i < 2; i++)
            free(jobs[i].embedding);
        if (r >= 0)
            t_seq[r] = t1 - t0, t_par[r] = t3 - t2;
    }
    const char *prec = fv_precision_name(fv_pipeline_precision(pipe));
    printf("verify %s (%s), one thread:  median %.2f ms\n", label, prec, median(t_seq, RUNS));
    printf("verify %s (%s), two threads: median %.2f ms (as facever verify runs it)\n", label,
           prec, median(t_par, RUNS));
    fv_pipeline_worker_free(w);
    fv_pipeline_worker_free(w2);
}

/* Both images of a pair, one after the other on one thread; milliseconds. */
static double verify_pair_seq(struct verify_job *jobs, int dim)
{
    double t0 = now_ms();
    verify_one(&jobs[0]);
    verify_one(&jobs[1]);
    volatile float score = fv_cosine(jobs[0].embedding, jobs[1].embedding, dim);
    (void)score;
    double t = now_ms() - t0;
    for (int i = 0; i < 2; i++)
        free(jobs[i].embedding);
    return t;
}

/* Verify of two phone photos against verify of two 250×250 JPEGs, one thread,
 * alternating A B A B so that both see the same machine; the ratio is the
 * median of the per-round ratios. */
static void bench_phone_verify(const struct fv_pipeline *pipe, const char *label,
                               const uint8_t *a, size_t size1, const uint8_t *b, size_t size2,
                               const uint8_t *pa, size_t psize1, const uint8_t *pb,
                               size_t psize2)
{
    struct fv_error err = {0};
    struct fv_pipeline_worker *w, *w2;
    if (fv_pipeline_worker_new(pipe, &w, &err) || fv_pipeline_worker_new(pipe, &w2, &err))
        die(&err);
    struct verify_job thumbs[2] = {{w, a, size1, NULL}, {w2, b, size2, NULL}};
    struct verify_job phones[2] = {{w, pa, psize1, NULL}, {w2, pb, psize2, NULL}};
    enum { RUNS = 15 };
    double t_thumb[RUNS], t_phone[RUNS], ratio[RUNS];
    int dim = fv_pipeline_dim(pipe);
    for (int r = -1; r < RUNS; r++) {
        double x = verify_pair_seq(thumbs, dim), y = verify_pair_seq(phones, dim);
        if (r >= 0)
            t_thumb[r] = x, t_phone[r] = y, ratio[r] = y / x;
    }
    printf("%-22s %9.2f %9.2f %7.2fx\n", label, median(t_phone, RUNS), median(t_thumb, RUNS),
           median(ratio, RUNS));
    fv_pipeline_worker_free(w);
    fv_pipeline_worker_free(w2);
}

/* Phone photos made by `make phone-photos` (tests/data/phone/): per-stage
 * medians, and verify of two of them beside verify of two 250×250 JPEGs in
 * the same run. */
static void bench_phone(struct fv_pipeline_worker *w, const struct fv_pipeline *pipe,
                        const uint8_t *a, size_t size1, const uint8_t *b, size_t size2)
{
    static const char *const photos[][2] = {
        {"tests/data/phone/sample1-4032x3024-o6.jpg", "4032x3024 JPEG (EXIF 6)"},
        {"tests/data/phone/sample1-4032x3024.heic", "4032x3024 HEIC"},
        {"tests/data/phone/sample1-4032x3024.avif", "4032x3024 AVIF"},
        {"tests/data/phone/sample1-4032x3024.webp", "4032x3024 WebP"},
        {"tests/data/phone/sample1-4032x3024.png", "4032x3024 PNG"},
        {"tests/data/phone/sample1-7296x5472-progressive.jpg", "40 MP progressive JPEG"},
    };
    static const char *const pairs[][3] = {
        {"tests/data/phone/sample1-4032x3024-o6.jpg", "tests/data/phone/sample2-4032.jpg",
         "two 4032x3024 JPEGs"},
        {"tests/data/phone/sample1-4032x3024.heic", "tests/data/phone/sample1-4032x3024.heic",
         "two 4032x3024 HEICs"},
        {"tests/data/phone/sample1-4032x3024.webp", "tests/data/phone/sample1-4032x3024.webp",
         "two 4032x3024 WebPs"},
    };
    struct fv_error err = {0};
    uint8_t *data[2];
    size_t size[2];
    if (access(photos[0][0], R_OK) != 0) {
        printf("\n== phone photos: skipped (no %s; make phone-photos makes them)\n", photos[0][0]);
        return;
    }
    printf("\n== phone photos, median ms of 15 runs on one thread (\"decode\" opens the image: "
           "a whole decode, or for a large JPEG\n   its header only; detect then includes "
           "decoding at the working resolution and the finer parts)\n");
    for (size_t i = 0; i < sizeof photos / sizeof photos[0]; i++) {
        if (fv_read_file(photos[i][0], 1 << 26, &data[0], &size[0], &err) != FV_OK) {
            printf("%-22s skipped: %s\n", photos[i][1], err.message);
            continue;
        }
        struct fv_image_source *src;
        if (fv_image_source_open(data[0], size[0], NULL, &src, &err) != FV_OK)
            printf("%-22s skipped: %s\n", photos[i][1], err.message);
        else
            bench_image(w, pipe, data[0], size[0], photos[i][1]);
        fv_image_source_free(src);
        free(data[0]);
    }
    printf("\n== verify two phone photos against verify two 250x250 JPEGs in-process, one "
           "thread, alternating (median ms of 15 rounds, median ratio)\n");
    printf("%-22s %9s %9s %8s\n", "pair", "phones", "250x250", "ratio");
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (fv_read_file(pairs[i][0], 1 << 26, &data[0], &size[0], &err) != FV_OK)
            continue;
        if (fv_read_file(pairs[i][1], 1 << 26, &data[1], &size[1], &err) != FV_OK) {
            free(data[0]);
            continue;
        }
        struct fv_image_source *src;
        if (fv_image_source_open(data[0], size[0], NULL, &src, &err) == FV_OK) {
            fv_image_source_free(src);
            bench_phone_verify(pipe, pairs[i][2], a, size1, b, size2, data[0], size[0], data[1],
                               size[1]);
            if (i == 0) { /* the same with faces of at least 10% of the shorter side */
                struct fv_pipeline_params params = *fv_pipeline_params(pipe);
                struct fv_pipeline *selfie;
                params.detect.min_face_relative = 0.1f;
                if (fv_pipeline_new("models", "models/mobilefacenet.fvm", &params, &selfie, &err))
                    die(&err);
                bench_phone_verify(selfie, "  --min-face 10%", a, size1, b, size2, data[0],
                                   size[0], data[1], size[1]);
                fv_pipeline_free(selfie);
            }
        } else {
            printf("%-22s skipped: %s\n", pairs[i][2], err.message);
        }
        free(data[0]);
        free(data[1]);
    }
}

/* ---- training ---- */

struct train_job {
    const char *arch;
    int batch, classes, h, w, c, steps;
    double images_per_s;
};

static void *train_thread(void *arg)
{
    struct train_job *job = arg;
    struct fv_error err = {0};
    struct fv_graph *g;
    struct fv_trainer *tr;
    struct fv_train_params p;
    fv_train_default_params(&p);
    p.batch = job->batch;
    p.classes = job->classes;
    p.loss = FV_LOSS_CENTER;
    if (fv_train_arch_new(job->arch, 1, &g, &err) || fv_trainer_new(g, &p, &tr, &err))
        die(&err);
    size_t per = (size_t)job->h * job->w * job->c;
    float *x = malloc((size_t)job->batch * per * sizeof *x);
    int *labels = malloc((size_t)job->batch * sizeof *labels);
    for (size_t i = 0; i < (size_t)job->batch * per; i++)
        x[i] = sinf(0.01f * (float)i);
    for (int i = 0; i < job->batch; i++)
        labels[i] = i % job->classes;
    struct fv_train_stats stats;
    if (fv_trainer_step(tr, x, labels, job->batch, &stats, &err)) /* warm up */
        die(&err);
    double t0 = now_ms();
    for (int i = 0; i < job->steps; i++)
        if (fv_trainer_step(tr, x, labels, job->batch, &stats, &err))
            die(&err);
    job->images_per_s = (double)job->steps * job->batch / ((now_ms() - t0) / 1e3);
    free(x);
    free(labels);
    fv_trainer_free(tr);
    return NULL;
}

static void bench_training(const char *arch, int batch, int classes, int h, int w, int c,
                           int steps)
{
    struct train_job one = {arch, batch, classes, h, w, c, steps, 0};
    train_thread(&one);
    struct train_job two[2] = {one, one};
    pthread_t tid;
    pthread_create(&tid, NULL, train_thread, &two[1]);
    train_thread(&two[0]);
    pthread_join(tid, NULL);
    double both = two[0].images_per_s + two[1].images_per_s;
    printf("%-10s batch %-4d %10.1f %12.1f %8.1f\n", arch, batch, one.images_per_s, both,
           both / one.images_per_s);
}

int main(int argc, char **argv)
{
    openblas_set_num_threads(1);
    struct fv_error err = {0};
    if (argc == 3 && strcmp(argv[1], "--train-only") == 0) {
        /* for scripts/bench-gemm-share.sh: a few training steps to profile */
        struct train_job job = {argv[2], strcmp(argv[2], "face") == 0 ? 32 : 128, 10,
                                strcmp(argv[2], "face") == 0 ? 112 : 28,
                                strcmp(argv[2], "face") == 0 ? 96 : 28,
                                strcmp(argv[2], "face") == 0 ? 3 : 1,
                                strcmp(argv[2], "face") == 0 ? 3 : 20, 0};
        train_thread(&job);
        printf("%s: %.1f images/s\n", argv[2], job.images_per_s);
        return 0;
    }
    {
        const struct fv_cpu *cpu = fv_cpu_get();
        enum fv_cpu_level level;
        if (fv_cpu_active(&level, &err) != FV_OK)
            die(&err);
        printf("== CPU %s (%s); supported levels: %s; running at: %s%s\n\n", cpu->model, cpu->arch,
               fv_cpu_supported_names(), fv_cpu_level_name(level),
               getenv("FV_CPU") ? " (FV_CPU)" : "");
    }
    printf("== networks (median of 40 runs at batch 1 on one thread; images/s at batch 16)\n");
    printf("%-20s %-9s %8s %12s %8s %10s %10s %8s\n", "network", "input", "GFLOP", "batch 1",
           "GFLOP/s", "1 thread", "2 threads", "speedup");
    bench_network("models/mobilefacenet.fvm", 112, 112, FV_PRECISION_FP32);
    if (fv_cpu_active_level() == FV_CPU_AVX512_BF16)
        bench_network("models/mobilefacenet.fvm", 112, 112, FV_PRECISION_BF16);
    bench_network("models/pnet.fvm", 150, 150, FV_PRECISION_FP32);
    bench_network("models/rnet.fvm", 24, 24, FV_PRECISION_FP32);
    bench_network("models/onet.fvm", 48, 48, FV_PRECISION_FP32);

    struct fv_pipeline_params params;
    struct fv_pipeline *pipe;
    struct fv_pipeline_worker *w;
    fv_pipeline_default_params(&params);
    if (fv_pipeline_new("models", "models/mobilefacenet.fvm", &params, &pipe, &err) ||
        fv_pipeline_worker_new(pipe, &w, &err))
        die(&err);
    printf("\n== pipeline stages, median ms of 15 runs on one thread (embed = crop + mirror)\n");
    printf("%-22s %-9s %5s %8s %8s %8s %8s %9s\n", "image", "size", "faces", "decode", "detect",
           "align", "embed", "total");
    size_t size1, size2, photo_size;
    uint8_t *a = lfw_like(w, "tests/data/sample1.jpg", 0, &size1);
    uint8_t *b = lfw_like(w, "tests/data/sample1.jpg", 1, &size2);
    uint8_t *photo;
    if (fv_read_file("tests/data/sample1.jpg", 1 << 26, &photo, &photo_size, &err))
        die(&err);
    /* A real LFW image when the development subset is beside the checkout. */
    uint8_t *lfw = NULL;
    size_t lfw_size = 0;
    if (fv_read_file("../shared/lfw-dev/images/Aaron_Sorkin/Aaron_Sorkin_0001.jpg", 1 << 20, &lfw,
                     &lfw_size, NULL) == FV_OK)
        bench_image(w, pipe, lfw, lfw_size, "LFW Aaron_Sorkin_0001");
    free(lfw);
    bench_image(w, pipe, a, size1, "250x250 face (JPEG)");
    bench_image(w, pipe, photo, photo_size, "sample1.jpg");

    printf("\n== verify two 250x250 JPEGs in-process (decode, detect, align, embed both, cosine)\n");
    bench_verify(pipe, "two 250x250 JPEGs", a, size1, b, size2);
    if (fv_pipeline_precision(pipe) != FV_PRECISION_FP32) {
        /* the reference arithmetic, for comparison */
        struct fv_pipeline *ref;
        params.precision = FV_PIPELINE_FP32;
        if (fv_pipeline_new("models", "models/mobilefacenet.fvm", &params, &ref, &err))
            die(&err);
        bench_verify(ref, "two 250x250 JPEGs", a, size1, b, size2);
        fv_pipeline_free(ref);
    }
    bench_phone(w, pipe, a, size1, b, size2);
    if (argc == 2 && strcmp(argv[1], "--inference") == 0) /* networks and pipeline only */
        return 0;
    printf("\n== training (softmax + center loss, SGD), images/s: one trainer; two trainers on "
           "two threads\n");
    printf("%-10s %-10s %10s %12s %8s\n", "network", "", "1 thread", "2 threads", "speedup");
    bench_training("lenetpp", 128, 10, 28, 28, 1, 10);
    bench_training("face", 32, 100, 112, 96, 3, 2);
    free(a);
    free(b);
    free(photo);
    fv_pipeline_worker_free(w);
    fv_pipeline_free(pipe);
    return 0;
}
