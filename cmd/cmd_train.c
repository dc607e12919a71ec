/* cmd_train.c - `facever train`: softmax, center loss or LMCL on MNIST or face folders. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "cmd/cli.h"
#include "eval/faceset.h"
#include "eval/feature_plot.h"
#include "eval/mnist.h"
#include "model/model_file.h"
#include "model/train.h"

static const char train_usage[] =
    "usage: facever train --data SPEC --out MODEL [options]\n\n"
    "Trains a network with softmax, softmax + center loss (Wen et al. 2016) or the large\n"
    "margin cosine loss (CosFace) and writes an ordinary facever model file whose\n"
    "embedding is the feature layer.\n\n"
    "data:\n"
    "  --data mnist:DIR        IDX files (scripts/mnist-data.sh puts them in tests/data/mnist)\n"
    "  --data faces:DIR        DIR/identity/*.jpg, aligned on the fly (MTCNN from --models)\n"
    "  --limit N               use only the first N training images\n"
    "  --models DIR            detector models for faces (default: found as the face\n"
    "                          commands find them, see 'facever verify --help')\n"
    "  --cache DIR             keep aligned face crops there (PNG) between epochs and runs;\n"
    "                          without it every epoch detects and aligns every face again\n"
    "  --no-mirror             no random left-right mirroring of faces\n"
    "network:\n"
    "  --arch lenetpp|face     architecture (default: lenetpp for mnist, face for faces)\n"
    "  --init MODEL            fine-tune MODEL's layers up to its embedding, new classifier\n"
    "loss:\n"
    "  --loss softmax|center|lmcl   (default softmax)\n"
    "  --lambda L --alpha A    center loss weight and centre learning rate (0.003, 0.5)\n"
    "  --s S --m M             LMCL scale and cosine margin (30, 0.35)\n"
    "optimisation:\n"
    "  --epochs N              passes over the data (default 10)\n"
    "  --max-steps N           stop after N steps in all (default: epochs' worth)\n"
    "  --batch B               (default 128)\n"
    "  --lr LR                 base learning rate (default 0.01)\n"
    "  --momentum M            (default 0.9)\n"
    "  --weight-decay W        on filters and FC weights (default 0.0005)\n"
    "  --schedule S            constant | step:E | step:E1,E2,... | cosine (default constant)\n"
    "  --seed S                initialisation, data order and mirroring (default 1)\n"
    "  --threads N             split every batch over N threads and sum their gradients\n"
    "                          (default: the number of cores, at most 4); the result is\n"
    "                          the same for the same seed and N, and differs slightly\n"
    "                          (summation order) between thread counts\n"
    "progress and output:\n"
    "  --log-every N           a progress line to stderr every N steps (default 50)\n"
    "  --checkpoint-every N    write OUT.ckpt every N steps (model, momentum, centres, RNG)\n"
    "  --resume CKPT           continue from a checkpoint of the same configuration\n"
    "  --report PREFIX         mnist: evaluate the test set, print accuracy and the ratio of\n"
    "                          intra-class to inter-centre distance, plot 2-D features to\n"
    "                          PREFIX.svg (lmcl: of the features normalised to length 1,\n"
    "                          plotted on the unit circle with the class directions)\n"
    "  --out MODEL             the trained model (.fvm)\n";

struct train_options {
    const char *data, *out, *arch, *init, *resume, *report, *models, *cache, *schedule;
    int limit, mirror;
    long epochs, max_steps, log_every, checkpoint_every;
    struct fv_train_params params;
};

enum source { SOURCE_MNIST, SOURCE_FACES };

struct dataset {
    enum source source;
    struct fv_mnist *mnist, *mnist_test;
    struct fv_faceset *faces;
    int count, classes, h, w, c;
    float mean, scale;
    uint8_t *pixels; /* one sample */
};

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A fresh generator for each epoch's order, so a resumed run can rebuild the
 * order of the epoch it stopped in from the seed and the epoch number alone. */
static void epoch_order(uint64_t seed, long epoch, int *order, int n)
{
    struct fv_rng rng;
    fv_rng_seed(&rng, seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(epoch + 1)));
    for (int i = 0; i < n; i++)
        order[i] = i;
    fv_rng_shuffle(&rng, order, n);
}

/* Whether sample slot i of step `step` is mirrored: a hash, not a stream, so it
 * does not depend on how the run was interrupted. */
static int mirror_bit(uint64_t seed, long step, int i)
{
    uint64_t x = seed ^ ((uint64_t)step << 20) ^ (uint64_t)i;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return (int)((x >> 33) & 1);
}

/* Sample i as normalised floats into out; mnist never mirrors. */
static enum fv_status load_sample(struct dataset *d, int i, int mirror, float *out, int *label,
                                  struct fv_error *err)
{
    const size_t n = (size_t)d->h * d->w * d->c;
    const uint8_t *px;
    if (d->source == SOURCE_MNIST) {
        px = d->mnist->images + (size_t)i * n;
        *label = d->mnist->labels[i];
    } else {
        enum fv_status st = fv_faceset_load(d->faces, i, mirror, d->pixels, err);
        if (st)
            return st;
        px = d->pixels;
        *label = fv_faceset_label(d->faces, i);
    }
    for (size_t k = 0; k < n; k++)
        out[k] = ((float)px[k] - d->mean) * d->scale;
    return FV_OK;
}

/* The cores, at most 4, so that a batch of 32 still gives each thread 8 samples
 * (scaling was measured on two cores only). */
static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4 ? 4 : (int)n;
}

static int parse_args(int argc, char **argv, struct train_options *o)
{
    const char *cmd = "train";
    memset(o, 0, sizeof *o);
    fv_train_default_params(&o->params);
    o->schedule = "constant";
    o->mirror = 1;
    o->epochs = 10;
    o->log_every = 50;
    o->params.threads = default_threads();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        float f;
#define STR_OPT(name, field) else if (strcmp(a, name) == 0 && v) { o->field = v; i++; }
#define INT_OPT(name, field, lo, hi)                                              \
    else if (strcmp(a, name) == 0) {                                            \
        if (fv_cli_parse_int(cmd, a, v, lo, hi, &l)) return -1;                 \
        o->field = l; i++;                                                      \
    }
#define FLOAT_OPT(name, field, lo, hi)                                            \
    else if (strcmp(a, name) == 0) {                                            \
        if (fv_cli_parse_float(cmd, a, v, &f)) return -1;                       \
        if (!(f >= (lo) && f <= (hi))) {                                        \
            fprintf(stderr, "facever train: %s must lie in [%g, %g]\n", a, (double)(lo), (double)(hi)); \
            return -1;                                                          \
        }                                                                       \
        o->field = f; i++;                                                      \
    }
        if (fv_cli_is_help(a)) {
            fputs(train_usage, stdout);
            return 1;
        }
        STR_OPT("--data", data) STR_OPT("--out", out) STR_OPT("--arch", arch)
        STR_OPT("--init", init) STR_OPT("--resume", resume) STR_OPT("--report", report)
        STR_OPT("--models", models) STR_OPT("--cache", cache) STR_OPT("--schedule", schedule)
        INT_OPT("--limit", limit, 1, FV_FACESET_MAX_IMAGES)
        INT_OPT("--epochs", epochs, 1, 100000)
        INT_OPT("--max-steps", max_steps, 1, 1000000000L)
        INT_OPT("--batch", params.batch, 1, 4096)
        INT_OPT("--threads", params.threads, 1, FV_TRAIN_MAX_THREADS)
        INT_OPT("--log-every", log_every, 1, 1000000000L)
        INT_OPT("--checkpoint-every", checkpoint_every, 1, 1000000000L)
        FLOAT_OPT("--lambda", params.lambda, 0.0f, 1e6f)
        FLOAT_OPT("--alpha", params.alpha, 0.0f, 1.0f)
        FLOAT_OPT("--s", params.s, 1e-3f, 1e4f)
        FLOAT_OPT("--m", params.m, 0.0f, 2.0f)
        FLOAT_OPT("--lr", params.schedule.base_lr, 0.0f, 100.0f)
        FLOAT_OPT("--momentum", params.momentum, 0.0f, 0.9999f)
        FLOAT_OPT("--weight-decay", params.weight_decay, 0.0f, 1.0f)
        else if (strcmp(a, "--seed") == 0) {
            if (fv_cli_parse_int(cmd, a, v, 0, 0x7fffffffL, &l))
                return -1;
            o->params.seed = (uint64_t)l;
            i++;
        } else if (strcmp(a, "--loss") == 0 && v) {
            int k = fv_loss_kind_from_name(v);
            if (k < 0) {
                fprintf(stderr, "facever train: --loss is softmax, center or lmcl, not '%s'\n", v);
                return -1;
            }
            o->params.loss = (enum fv_loss_kind)k;
            i++;
        } else if (strcmp(a, "--no-mirror") == 0) {
            o->mirror = 0;
        } else {
            fprintf(stderr, "facever train: unknown or incomplete option '%s'\n%s", a, train_usage);
            return -1;
        }
#undef STR_OPT
#undef INT_OPT
#undef FLOAT_OPT
    }
    if (!o->data || !o->out) {
        fputs(train_usage, stderr);
        return -1;
    }
    return 0;
}

static enum fv_status open_data(const struct train_options *o, const struct fv_model_meta *meta,
                                struct dataset *d, struct fv_error *err)
{
    enum fv_status st;
    d->h = meta->input_h, d->w = meta->input_w, d->c = meta->input_c;
    d->mean = meta->pixel_mean, d->scale = meta->pixel_scale;
    if (strncmp(o->data, "mnist:", 6) == 0) {
        d->source = SOURCE_MNIST;
        if ((st = fv_mnist_load(o->data + 6, "train", o->limit, &d->mnist, err)))
            return st;
        if (o->report && (st = fv_mnist_load(o->data + 6, "t10k", 0, &d->mnist_test, err)))
            return st;
        if (d->mnist->rows != d->h || d->mnist->cols != d->w || d->c != 1)
            return fv_error_set(err, FV_ERR_INVALID_ARG,
                                "the network takes %dx%dx%d inputs, MNIST is %dx%dx1", d->h, d->w,
                                d->c, d->mnist->rows, d->mnist->cols);
        d->count = d->mnist->count;
        d->classes = 10;
        return FV_OK;
    }
    if (strncmp(o->data, "faces:", 6) == 0) {
        d->source = SOURCE_FACES;
        if (d->c != 3)
            return fv_error_set(err, FV_ERR_INVALID_ARG, "the network does not take RGB input");
        char models[FV_MODELS_PATH_MAX];
        if ((st = fv_models_find(o->models, fv_models_detector_files, models, NULL, err)) ||
            (st = fv_faceset_open(o->data + 6, models, d->h, d->w, o->cache, &d->faces, err)))
            return st;
        d->count = fv_faceset_count(d->faces);
        if (o->limit && o->limit < d->count)
            d->count = o->limit;
        d->classes = fv_faceset_classes(d->faces);
        if (!(d->pixels = malloc((size_t)d->h * d->w * 3)))
            return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        return FV_OK;
    }
    return fv_error_set(err, FV_ERR_INVALID_ARG, "--data must be mnist:DIR or faces:DIR, not '%s'",
                        o->data);
}

/* The trunk to train: a fresh architecture or the imported model up to its embedding. */
static enum fv_status make_trunk(const struct train_options *o, struct fv_graph **trunk,
                                 struct fv_error *err)
{
    if (!o->init) {
        const char *arch = o->arch ? o->arch
                                   : strncmp(o->data, "mnist:", 6) == 0 ? "lenetpp" : "face";
        return fv_train_arch_new(arch, o->params.seed, trunk, err);
    }
    struct fv_graph *g = NULL;
    enum fv_status st = fv_model_file_load(o->init, &g, err);
    if (st)
        return st;
    if ((st = fv_graph_validate(g, err)) == FV_OK) {
        const char *feature = fv_graph_meta(g)->embedding;
        if (!feature[0])
            st = fv_error_set(err, FV_ERR_INVALID_ARG, "%s names no embedding tensor", o->init);
        else
            st = fv_train_extract_trunk(g, feature, trunk, err);
    }
    fv_graph_free(g);
    return st;
}

/* Test-set accuracy, feature spread and (2-D) scatter plot for MNIST. */
static enum fv_status report_mnist(struct fv_trainer *tr, struct dataset *d, const char *prefix,
                                   int batch, struct fv_error *err)
{
    const struct fv_mnist *t = d->mnist_test;
    const int dim = fv_trainer_feature_dim(tr), per = t->rows * t->cols;
    enum fv_status st = FV_OK;
    float *x = malloc((size_t)batch * per * sizeof *x);
    float *features = malloc((size_t)t->count * dim * sizeof *features);
    int *labels = malloc((size_t)t->count * sizeof *labels), *pred = malloc((size_t)batch * sizeof *pred);
    if (!x || !features || !labels || !pred) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory evaluating");
        goto done;
    }
    int correct = 0;
    for (int i0 = 0; i0 < t->count; i0 += batch) {
        int n = t->count - i0 < batch ? t->count - i0 : batch;
        for (int i = 0; i < n; i++) {
            labels[i0 + i] = t->labels[i0 + i];
            for (int k = 0; k < per; k++)
                x[(size_t)i * per + k] = ((float)t->images[(size_t)(i0 + i) * per + k] - d->mean) * d->scale;
        }
        if ((st = fv_trainer_predict(tr, x, n, features + (size_t)i0 * dim, pred, err)))
            goto done;
        for (int i = 0; i < n; i++)
            correct += pred[i] == labels[i0 + i];
    }
    /* A cosine loss sees only directions: measure and plot those. */
    const int cosine = fv_trainer_loss_kind(tr) == FV_LOSS_LMCL;
    if (cosine)
        fv_feature_normalise(features, t->count, dim);
    struct fv_feature_spread sp;
    fv_feature_spread(features, labels, t->count, dim, 10, &sp);
    printf("test_accuracy %.4f\nfeatures %s\nintra_class_distance %.4f\n"
           "inter_centre_distance %.4f\nintra_inter_ratio %.4f\n",
           (double)correct / t->count, cosine ? "normalised" : "raw", sp.intra, sp.inter, sp.ratio);
    if (dim == 2) {
        char path[4096], title[256];
        snprintf(path, sizeof path, "%s.svg", prefix);
        const char *slash = strrchr(prefix, '/');
        snprintf(title, sizeof title, "%s: test accuracy %.2f%%, intra/inter %.3f%s",
                 slash ? slash + 1 : prefix, 100.0 * correct / t->count, sp.ratio,
                 cosine ? " (normalised)" : "");
        if (cosine)
            st = fv_feature_circle_svg(path, features, labels, t->count, dim, 10,
                                       fv_trainer_class_weights(tr), title, err);
        else
            st = fv_feature_scatter_svg(path, features, labels, t->count, dim, 10, title, err);
    }
done:
    free(x), free(features), free(labels), free(pred);
    return st;
}

int fv_cmd_train(int argc, char **argv)
{
    struct train_options o;
    struct fv_error err = {0};
    struct dataset d = {0};
    struct fv_graph *trunk = NULL;
    struct fv_trainer *tr = NULL;
    float *x = NULL;
    int *labels = NULL, *order = NULL, rc = 2;
    char ckpt[4096];
    int r = parse_args(argc, argv, &o);
    if (r)
        return r > 0 ? 0 : 2;
    /* The trainer's threads are the parallelism: OpenBLAS threads of its own
     * would compete with them for the same cores (and busy-wait between calls). */
    openblas_set_num_threads(1);
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", o.out);
    if (make_trunk(&o, &trunk, &err) || open_data(&o, fv_graph_meta(trunk), &d, &err))
        goto fail;
    if (o.report && d.source != SOURCE_MNIST) {
        fv_error_set(&err, FV_ERR_INVALID_ARG, "--report is for mnist data");
        goto fail;
    }
    const int B = o.params.batch;
    const long steps_per_epoch = (d.count + B - 1) / B;
    const long total = o.max_steps ? o.max_steps : o.epochs * steps_per_epoch;
    o.params.classes = d.classes;
    if (fv_lr_schedule_parse(o.schedule, steps_per_epoch, total, &o.params.schedule, &err))
        goto fail;
    struct fv_model_meta *meta = fv_graph_meta(trunk);
    if (o.init) {
        char name[FV_NAME_MAX];
        snprintf(name, sizeof name, "%.60s-finetuned", meta->name);
        memcpy(meta->name, name, sizeof name);
    }
    if (fv_trainer_new(trunk, &o.params, &tr, &err)) {
        trunk = NULL;
        goto fail;
    }
    trunk = NULL;
    if (o.resume && fv_trainer_load_checkpoint(tr, o.resume, &err))
        goto fail;
    const size_t per = (size_t)d.h * d.w * d.c;
    x = malloc((size_t)B * per * sizeof *x);
    labels = malloc((size_t)B * sizeof *labels);
    order = malloc((size_t)d.count * sizeof *order);
    if (!x || !labels || !order) {
        fv_error_set(&err, FV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    fprintf(stderr,
            "train: %s, %d images of %d classes, %s loss, batch %d, %ld steps (%ld per epoch), "
            "%d thread%s, %.0f MB of training state\n",
            fv_graph_meta(fv_trainer_graph(tr))->name, d.count, d.classes,
            fv_loss_kind_name(o.params.loss), B, total, steps_per_epoch, o.params.threads,
            o.params.threads == 1 ? "" : "s", fv_trainer_bytes(tr) / 1e6);
    if (d.source == SOURCE_FACES && !o.cache && total > steps_per_epoch)
        fprintf(stderr, "train: no --cache: faces are detected and aligned again every epoch\n");
    long step = fv_trainer_steps(tr), epoch = -1;
    double t_window = now_seconds(), t_start = t_window, data_time = 0.0;
    long window_images = 0, images_all = 0;
    double sum_loss = 0, sum_ls = 0, sum_lc = 0;
    long sum_correct = 0, sum_n = 0;
    while (step < total) {
        long e = step / steps_per_epoch, in_epoch = step % steps_per_epoch;
        if (e != epoch) {
            epoch_order(o.params.seed, e, order, d.count);
            epoch = e;
        }
        int n = 0;
        double t0 = now_seconds();
        for (long k = in_epoch * B; k < (in_epoch + 1) * B && k < d.count; k++) {
            int mirror = d.source == SOURCE_FACES && o.mirror && mirror_bit(o.params.seed, step, n);
            if (load_sample(&d, order[k], mirror, x + (size_t)n * per, &labels[n], &err)) {
                fprintf(stderr, "train: skipping image %d: %s\n", order[k], err.message);
                continue;
            }
            n++;
        }
        data_time += now_seconds() - t0;
        struct fv_train_stats st;
        if (n > 0) {
            if (fv_trainer_step(tr, x, labels, n, &st, &err))
                goto fail;
            if (!isfinite(st.loss)) {
                fv_error_set(&err, FV_ERR_INVALID_ARG,
                             "the loss diverged at step %ld (lower --lr or --lambda)", step);
                goto fail;
            }
            sum_loss += st.loss * n, sum_ls += st.softmax_loss * n, sum_lc += st.center_loss * n;
            sum_correct += st.correct, sum_n += n;
            window_images += n, images_all += n;
        }
        step++;
        if (step % o.log_every == 0 || step == total) {
            double t = now_seconds();
            fprintf(stderr,
                    "epoch %ld step %ld/%ld loss %.4f %s %.4f center %.4f acc %.4f lr %.3g "
                    "%.1f images/s\n",
                    epoch + 1, step, total, sum_loss / (sum_n ? sum_n : 1),
                    o.params.loss == FV_LOSS_LMCL ? "lmcl" : "softmax", sum_ls / (sum_n ? sum_n : 1),
                    sum_lc / (sum_n ? sum_n : 1), (double)sum_correct / (sum_n ? sum_n : 1),
                    (double)fv_lr_schedule_at(&o.params.schedule, step - 1),
                    window_images / (t - t_window));
            t_window = t;
            window_images = 0;
            sum_loss = sum_ls = sum_lc = 0;
            sum_correct = sum_n = 0;
        }
        if (o.checkpoint_every && step % o.checkpoint_every == 0 && step < total &&
            fv_trainer_save_checkpoint(tr, ckpt, &err))
            goto fail;
    }
    double elapsed = now_seconds() - t_start;
    if (images_all)
        fprintf(stderr, "train: %ld images in %.1f s: %.1f images/s (%.1f%% of the time loading)\n",
                images_all, elapsed, images_all / elapsed, 100.0 * data_time / elapsed);
    if (d.faces && fv_faceset_fallbacks(d.faces))
        fprintf(stderr, "train: %d images had no detectable face and were centre-cropped\n",
                fv_faceset_fallbacks(d.faces));
    if (fv_trainer_save_model(tr, o.out, &err))
        goto fail;
    if (o.checkpoint_every && fv_trainer_save_checkpoint(tr, ckpt, &err))
        goto fail;
    if (o.report && report_mnist(tr, &d, o.report, B, &err))
        goto fail;
    fprintf(stderr, "train: wrote %s\n", o.out);
    rc = 0;
fail:
    if (rc)
        rc = fv_cli_fail("train", &err);
    fv_graph_free(trunk);
    fv_trainer_free(tr);
    fv_mnist_free(d.mnist);
    fv_mnist_free(d.mnist_test);
    fv_faceset_free(d.faces);
    free(d.pixels);
    free(x), free(labels), free(order);
    return rc;
}
