/* nets.c - facever's side of `make bench-peer`: the imported networks timed the way the
 * peer engines (XNNPACK, ONNX Runtime) are timed, so the figures can be set side by side.
 *
 *   build/tests/peer/nets mobilefacenet onet pnet@250x250
 *   build/tests/peer/nets --models DIR --reference FILE --runs 40 rnet pnet@150x150
 *
 * Nets: mobilefacenet (112x112), onet (48x48), rnet (24x24), pnet@HxW (P-Net at H x W;
 * plain pnet is 250x250). Each is fed the raw network input the peers get, x[i] =
 * (float)sin(0.001 i) over the flat NHWC index, batch 1. The MTCNN nets are not
 * transposed here: the detector transposes the image it feeds them, the network does not.
 *
 * First every named net is checked once on the reference input against the float64
 * reference outputs (default tests/fixtures/tflite-reference-outputs.json), each output
 * within 1e-4 of the reference relative to its largest magnitude, as the test suite
 * checks the importer; on a disagreement nothing is timed and the exit status is 1.
 * Then, per net: the context is made outside the timing, one warm-up call, then RUNS
 * (default 40) timed calls on the calling thread; stdout gets one line per net,
 *
 *   facever mobilefacenet 112x112 median_ms=9.840 min_ms=9.512 runs=40 threads=1 level=avx512 precision=fp32 cpu_pct=100
 *
 * shaped like run.sh's `peer ...` lines; cpu_pct is the thread's CPU time over the wall
 * time of the timed calls (well below 100: the process was preempted). Everything else
 * goes to stderr. Arithmetic is fp32, the reference arithmetic and the peers' own.
 */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/cpu.h"
#include "model/model.h"
#include "model/model_file.h"

/* The CPU level the kernels run at: FV_CPU or the best level (model/cpu.h). */
static const char *cpu_level_name(void)
{
    return fv_cpu_level_name(fv_cpu_active_level());
}

#define REFERENCE_TOLERANCE 1e-4
#define MAX_REFERENCE_BYTES (1 << 22)
#define MAX_SIDE 4096
#define MAX_NETS 32

struct net {
    char label[32];     /* mobilefacenet, onet, rnet, pnet */
    const char *file;   /* under the models folder */
    const char *tflite; /* key of the reference outputs */
    int h, w;           /* timed input size */
};

static int fail(const char *fmt, const char *arg)
{
    fputs("nets: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 0;
}

/* Fills *net from a command-line name; 0 (after saying why) when the name is unknown. */
static int parse_net(const char *name, struct net *net)
{
    static const struct net fixed[] = {
        {"mobilefacenet", "mobilefacenet.fvm", "MobileFaceNet.tflite", 112, 112},
        {"onet", "onet.fvm", "onet.tflite", 48, 48},
        {"rnet", "rnet.fvm", "rnet.tflite", 24, 24},
        {"pnet", "pnet.fvm", "pnet.tflite", 250, 250},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(name, fixed[i].label) == 0) {
            *net = fixed[i];
            return 1;
        }
    int h, w, end = 0;
    if (sscanf(name, "pnet@%dx%d%n", &h, &w, &end) == 2 && name[end] == '\0') {
        if (h < 12 || w < 12 || h > MAX_SIDE || w > MAX_SIDE)
            return fail("%s: P-Net sides must lie in 12..4096", name);
        *net = fixed[3];
        net->h = h, net->w = w;
        return 1;
    }
    return fail("unknown net '%s' (mobilefacenet | onet | rnet | pnet | pnet@HxW)", name);
}

static void fill_reference_input(float *x, size_t count)
{
    for (size_t i = 0; i < count; i++)
        x[i] = (float)sin(0.001 * (double)i);
}

static enum fv_status load_fp32(const char *models, const struct net *net, struct fv_model **out,
                                struct fv_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", models, net->file);
    if (fv_model_load(path, out, err))
        return err->status;
    if (fv_model_set_precision(*out, FV_PRECISION_FP32, err)) {
        fv_model_free(*out);
        *out = NULL;
        return err->status;
    }
    return FV_OK;
}

/* One run at the reference input shape, every reference output compared. Returns 1
 * when all agree; prints the worst relative difference either way. */
static int check_net(const char *models, const struct net *net, const cJSON *reference)
{
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(reference, "models"), net->tflite);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(ref, "input_shape");
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(ref, "outputs");
    int dims[4];
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != 4 || !cJSON_IsObject(outputs))
        return fail("reference outputs: no input_shape and outputs for %s", net->tflite);
    for (int i = 0; i < 4; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || d->valueint < 1 || d->valueint > MAX_SIDE)
            return fail("reference outputs: bad input_shape for %s", net->tflite);
        dims[i] = d->valueint;
    }

    struct fv_error err = {0};
    struct fv_model *m = NULL;
    struct fv_context *ctx = NULL;
    size_t count = (size_t)dims[0] * dims[1] * dims[2] * dims[3];
    float *input = malloc(count * sizeof *input);
    int ok = 0, checked = 0;
    double worst = 0.0;
    if (!input) {
        fail("%s: out of memory", net->label);
        goto done;
    }
    fill_reference_input(input, count);
    if (load_fp32(models, net, &m, &err) || fv_context_new(m, dims[0], dims[1], dims[2], &ctx, &err) ||
        fv_context_run(ctx, input, dims[0], dims[1], dims[2], &err)) {
        fail("%s", err.message);
        goto done;
    }
    if (fv_model_meta(m)->input_c != dims[3]) {
        fail("%s: the model's input channels differ from the reference's", net->label);
        goto done;
    }
    ok = 1;
    const cJSON *out;
    cJSON_ArrayForEach(out, outputs)
    {
        const cJSON *values = cJSON_GetObjectItemCaseSensitive(out, "values");
        int t = fv_model_find_tensor(m, out->string), got_shape[4];
        const float *got = t >= 0 ? fv_context_tensor(ctx, t, got_shape) : NULL;
        if (!got || !cJSON_IsArray(values) ||
            (size_t)cJSON_GetArraySize(values) !=
                (size_t)got_shape[0] * got_shape[1] * got_shape[2] * got_shape[3]) {
            fprintf(stderr, "nets: %s: output '%s' is missing or has another size\n", net->label,
                    out->string);
            ok = 0;
            continue;
        }
        double max_ref = 0.0, max_diff = 0.0;
        size_t i = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, values)
        {
            double r = cJSON_IsNumber(v) ? v->valuedouble : NAN, diff = fabs(r - got[i++]);
            max_diff = diff > max_diff || isnan(diff) ? diff : max_diff;
            max_ref = fabs(r) > max_ref ? fabs(r) : max_ref;
        }
        double rel = max_ref > 0 ? max_diff / max_ref : max_diff;
        if (!(rel <= REFERENCE_TOLERANCE)) {
            fprintf(stderr, "nets: %s: '%s' differs from the reference by %.3g relative\n",
                    net->label, out->string, rel);
            ok = 0;
        }
        worst = rel > worst || isnan(rel) ? rel : worst;
        checked++;
    }
    if (checked == 0)
        ok = fail("%s: no reference outputs checked", net->label);
    fprintf(stderr, "nets: check %s %dx%d: %s worst_rel=%.2g (tolerance %.0e)\n", net->label, dims[1],
            dims[2], ok ? "ok" : "MISMATCH", worst, REFERENCE_TOLERANCE);
done:
    fv_context_free(ctx);
    fv_model_free(m);
    free(input);
    return ok;
}

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Times one net and prints its result line; 0 (after saying why) on failure. */
static int time_net(const char *models, const struct net *net, int runs)
{
    struct fv_error err = {0};
    struct fv_model *m = NULL;
    struct fv_context *ctx = NULL;
    double *t = malloc((size_t)runs * sizeof *t);
    float *input = NULL;
    int ok = 0;
    if (!t || load_fp32(models, net, &m, &err) || fv_context_new(m, 1, net->h, net->w, &ctx, &err)) {
        fail("%s", t ? err.message : "out of memory");
        goto done;
    }
    size_t count = (size_t)net->h * net->w * fv_model_meta(m)->input_c;
    if (!(input = malloc(count * sizeof *input))) {
        fail("%s: out of memory", net->label);
        goto done;
    }
    fill_reference_input(input, count);
    if (fv_context_run(ctx, input, 1, net->h, net->w, &err)) { /* warm-up */
        fail("%s", err.message);
        goto done;
    }
    double cpu0 = thread_cpu_ms(), wall0 = wall_ms();
    for (int i = 0; i < runs; i++) {
        double t0 = wall_ms();
        if (fv_context_run(ctx, input, 1, net->h, net->w, &err)) {
            fail("%s", err.message);
            goto done;
        }
        t[i] = wall_ms() - t0;
    }
    double wall = wall_ms() - wall0, cpu = thread_cpu_ms() - cpu0;
    qsort(t, (size_t)runs, sizeof *t, by_value);
    double median = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    printf("facever %s %dx%d median_ms=%.3f min_ms=%.3f runs=%d threads=1 level=%s precision=%s "
           "cpu_pct=%.0f\n",
           net->label, net->h, net->w, median, t[0], runs, cpu_level_name(),
           fv_precision_name(fv_model_precision(m)), 100.0 * cpu / wall);
    fflush(stdout);
    ok = 1;
done:
    fv_context_free(ctx);
    fv_model_free(m);
    free(input);
    free(t);
    return ok;
}

static int usage(void)
{
    fprintf(stderr, "usage: nets [--models DIR] [--reference FILE] [--runs N>=40] "
                    "mobilefacenet|onet|rnet|pnet|pnet@HxW ...\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *models = "models", *reference_path = "tests/fixtures/tflite-reference-outputs.json";
    int runs = 40, n = 0;
    struct net nets[MAX_NETS];
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--models") == 0)
            models = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--reference") == 0)
            reference_path = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--runs") == 0) {
            char *end;
            long r = strtol(argv[++i], &end, 10);
            if (*end || r < 40 || r > 100000)
                return usage();
            runs = (int)r;
        } else if (argv[i][0] == '-' || n == MAX_NETS)
            return usage();
        else if (!parse_net(argv[i], &nets[n++]))
            return 2;
    }
    if (n == 0)
        return usage();
    /* A bad FV_CPU is the caller's mistake: say so once, before any model is loaded. */
    enum fv_cpu_level level;
    struct fv_error level_err = {0};
    if (fv_cpu_active(&level, &level_err)) {
        fail("%s", level_err.message);
        return 2;
    }
    /* One thread, as the peers run: BLAS must not start workers of its own. */
    openblas_set_num_threads(1);

    uint8_t *data = NULL;
    size_t size = 0;
    struct fv_error err = {0};
    if (fv_read_file(reference_path, MAX_REFERENCE_BYTES, &data, &size, &err)) {
        fail("%s", err.message);
        return 1;
    }
    cJSON *reference = cJSON_ParseWithLength((const char *)data, size);
    free(data);
    if (!reference) {
        fail("%s: not JSON", reference_path);
        return 1;
    }
    int ok = 1;
    for (int i = 0; i < n; i++) {
        int seen = 0; /* one check per network file, whatever sizes it is timed at */
        for (int j = 0; j < i; j++)
            seen |= strcmp(nets[j].file, nets[i].file) == 0;
        if (!seen)
            ok &= check_net(models, &nets[i], reference);
    }
    cJSON_Delete(reference);
    if (!ok) {
        fprintf(stderr, "nets: a check failed (above); nothing timed\n");
        return 1;
    }
    fprintf(stderr, "nets: level %s, fp32, batch 1, one thread, 1 warm-up + median of %d\n",
            cpu_level_name(), runs);
    for (int i = 0; i < n; i++)
        if (!time_net(models, &nets[i], runs))
            return 1;
    return 0;
}
