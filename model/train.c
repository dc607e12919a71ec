/* train.c - trainable networks on the graph IR: forward with kept activations, backward, SGD. */
#include "model/train.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/backward.h"
#include "model/node.h"
#include "model/kernels.h"
#include "model/model_file.h"
#include "model/ops.h"

/* ---------------------------------------------------------------- PRNG */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void fv_rng_seed(struct fv_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t fv_rng_next(struct fv_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double fv_rng_uniform(struct fv_rng *rng) { return (double)(fv_rng_next(rng) >> 11) * 0x1.0p-53; }

uint32_t fv_rng_below(struct fv_rng *rng, uint32_t n)
{
    /* Lemire's multiply-shift with rejection */
    uint64_t m = (uint64_t)(uint32_t)fv_rng_next(rng) * n;
    if ((uint32_t)m < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while ((uint32_t)m < threshold)
            m = (uint64_t)(uint32_t)fv_rng_next(rng) * n;
    }
    return (uint32_t)(m >> 32);
}

void fv_rng_shuffle(struct fv_rng *rng, int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)fv_rng_below(rng, (uint32_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---------------------------------------------------------------- schedules */

float fv_lr_schedule_at(const struct fv_lr_schedule *s, long step)
{
    switch (s->kind) {
    case FV_SCHEDULE_STEP:
        return s->step_size > 0 ? s->base_lr * powf(s->gamma, (float)(step / s->step_size))
                                : s->base_lr;
    case FV_SCHEDULE_MULTISTEP: {
        int passed = 0;
        for (int i = 0; i < s->n_milestones; i++)
            passed += step >= s->milestones[i];
        return s->base_lr * powf(s->gamma, (float)passed);
    }
    case FV_SCHEDULE_COSINE: {
        if (s->total_steps <= 0)
            return s->base_lr;
        double t = step >= s->total_steps ? 1.0 : (double)step / (double)s->total_steps;
        return (float)(s->base_lr * 0.5 * (1.0 + cos(M_PI * t)));
    }
    case FV_SCHEDULE_CONSTANT:
    case FV_SCHEDULE_COUNT:
        break;
    }
    return s->base_lr;
}

enum fv_status fv_lr_schedule_parse(const char *spec, long steps_per_epoch, long total_steps,
                                    struct fv_lr_schedule *out, struct fv_error *err)
{
    out->step_size = 0;
    out->n_milestones = 0;
    out->total_steps = total_steps;
    if (strcmp(spec, "constant") == 0) {
        out->kind = FV_SCHEDULE_CONSTANT;
        return FV_OK;
    }
    if (strcmp(spec, "cosine") == 0) {
        out->kind = FV_SCHEDULE_COSINE;
        return FV_OK;
    }
    if (strncmp(spec, "step:", 5) != 0)
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "schedule '%s': expected constant, cosine, step:E or step:E1,E2,...",
                            spec);
    const char *p = spec + 5;
    long prev = 0;
    while (*p) {
        char *end;
        long epoch = strtol(p, &end, 10);
        if (end == p || epoch <= prev || epoch > 1000000 || (*end && *end != ',') ||
            out->n_milestones >= FV_SCHEDULE_MAX_MILESTONES)
            return fv_error_set(err, FV_ERR_INVALID_ARG,
                                "schedule '%s': epochs must be ascending positive integers (at "
                                "most %d)", spec, FV_SCHEDULE_MAX_MILESTONES);
        out->milestones[out->n_milestones++] = epoch * steps_per_epoch;
        prev = epoch;
        p = *end ? end + 1 : end;
    }
    if (out->n_milestones == 0)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "schedule '%s': no epochs", spec);
    if (out->n_milestones == 1) {
        out->kind = FV_SCHEDULE_STEP;
        out->step_size = out->milestones[0];
        out->n_milestones = 0;
    } else {
        out->kind = FV_SCHEDULE_MULTISTEP;
    }
    return FV_OK;
}

/* ---------------------------------------------------------------- params */

static const char *const loss_names[] = {
    [FV_LOSS_SOFTMAX] = "softmax", [FV_LOSS_CENTER] = "center", [FV_LOSS_LMCL] = "lmcl"};
_Static_assert(sizeof loss_names / sizeof loss_names[0] == FV_LOSS_KIND_COUNT, "loss names");

const char *fv_loss_kind_name(enum fv_loss_kind k)
{
    return (unsigned)k < FV_LOSS_KIND_COUNT ? loss_names[k] : "unknown";
}

int fv_loss_kind_from_name(const char *name)
{
    for (int i = 0; i < FV_LOSS_KIND_COUNT; i++)
        if (strcmp(loss_names[i], name) == 0)
            return i;
    return -1;
}

void fv_train_default_params(struct fv_train_params *p)
{
    memset(p, 0, sizeof *p);
    p->batch = 128;
    p->loss = FV_LOSS_SOFTMAX;
    p->lambda = 0.003f;
    p->alpha = 0.5f;
    p->s = 30.0f;
    p->m = 0.35f;
    p->momentum = 0.9f;
    p->weight_decay = 5e-4f;
    p->bn_momentum = 0.1f;
    p->schedule.kind = FV_SCHEDULE_CONSTANT;
    p->schedule.base_lr = 0.01f;
    p->schedule.gamma = 0.1f;
    p->seed = 1;
    p->threads = 1;
}

/* ---------------------------------------------------------------- architectures */

struct builder {
    struct fv_graph *g;
    struct fv_rng rng;
    struct fv_error *err;
    enum fv_status st;
};

/* Uniform in ±bound. */
static void fill_uniform(struct fv_rng *rng, float *data, size_t count, float bound)
{
    for (size_t i = 0; i < count; i++)
        data[i] = (float)((2.0 * fv_rng_uniform(rng) - 1.0) * bound);
}

/* Caffe's "xavier" filler, which the paper's released nets use: uniform with
 * variance 1 / fan_in. (He's 2 / fan_in made LeNets++ diverge at the paper's
 * learning rate 0.01.) */
static float xavier_bound(int fan_in) { return sqrtf(3.0f / (float)fan_in); }

static int b_tensor(struct builder *b, const char *name)
{
    if (b->st)
        return -1;
    int t = fv_graph_add_tensor(b->g, name, 0, 0, 0);
    if (t < 0)
        b->st = fv_error_set(b->err, (enum fv_status)t, "cannot add tensor '%s'", name);
    return t;
}

static int b_blob(struct builder *b, const char *node, const char *suffix, const int *shape,
                  int rank, float bound, float fill)
{
    if (b->st)
        return -1;
    char name[FV_NAME_MAX];
    snprintf(name, sizeof name, "%.80s/%s", node, suffix);
    int i = fv_graph_add_blob(b->g, name, shape, rank, NULL);
    if (i < 0) {
        b->st = fv_error_set(b->err, (enum fv_status)i, "cannot add blob '%s'", name);
        return -1;
    }
    struct fv_blob *blob = fv_graph_blob(b->g, i);
    if (bound > 0.0f)
        fill_uniform(&b->rng, blob->data, blob->count, bound);
    else
        for (size_t k = 0; k < blob->count; k++)
            blob->data[k] = fill;
    return i;
}

static int b_node(struct builder *b, struct fv_node *n, int in0, int in1, const char *out_name)
{
    if (b->st)
        return -1;
    n->inputs[0] = in0;
    n->n_inputs = 1;
    if (in1 >= 0) {
        n->inputs[1] = in1;
        n->n_inputs = 2;
    }
    n->output = b_tensor(b, out_name);
    if (b->st)
        return -1;
    int r = fv_graph_add_node(b->g, n, b->err);
    if (r < 0) {
        b->st = (enum fv_status)r;
        return -1;
    }
    return n->output;
}

static int b_conv(struct builder *b, const char *name, int in, int in_c, int out_c, int k,
                  int stride, enum fv_padding pad, float init_scale)
{
    struct fv_node n = fv_node_init(FV_OP_CONV2D, name);
    n.kernel_h = n.kernel_w = k;
    n.stride_h = n.stride_w = stride;
    n.padding = pad;
    n.blobs[0] = b_blob(b, name, "weights", (int[]){out_c, k, k, in_c}, 4,
                        init_scale * xavier_bound(k * k * in_c), 0.0f);
    n.blobs[1] = b_blob(b, name, "bias", (int[]){out_c}, 1, 0.0f, 0.0f);
    return b_node(b, &n, in, -1, name);
}

static int b_prelu(struct builder *b, const char *name, int in, int c)
{
    struct fv_node n = fv_node_init(FV_OP_PRELU, name);
    n.blobs[0] = b_blob(b, name, "slopes", (int[]){c}, 1, 0.0f, 0.25f);
    return b_node(b, &n, in, -1, name);
}

static int b_pool(struct builder *b, const char *name, int in, enum fv_padding pad)
{
    struct fv_node n = fv_node_init(FV_OP_MAX_POOL2D, name);
    n.kernel_h = n.kernel_w = 2;
    n.stride_h = n.stride_w = 2;
    n.padding = pad;
    return b_node(b, &n, in, -1, name);
}

static int b_fc(struct builder *b, const char *name, int in, int in_size, int out, float bound)
{
    struct fv_node n = fv_node_init(FV_OP_FULLY_CONNECTED, name);
    n.blobs[0] = b_blob(b, name, "weights", (int[]){out, in_size}, 2, bound, 0.0f);
    n.blobs[1] = b_blob(b, name, "bias", (int[]){out}, 1, 0.0f, 0.0f);
    return b_node(b, &n, in, -1, name);
}

static int b_add(struct builder *b, const char *name, int x, int y)
{
    struct fv_node n = fv_node_init(FV_OP_ADD, name);
    return b_node(b, &n, x, y, name);
}

/* conv + PReLU; the PReLU output carries the name, the conv output name/conv. */
static int b_conv_prelu(struct builder *b, const char *name, int in, int in_c, int out_c, int k,
                        enum fv_padding pad, float init_scale)
{
    char conv[FV_NAME_MAX];
    snprintf(conv, sizeof conv, "%.80s/conv", name);
    int t = b_conv(b, conv, in, in_c, out_c, k, 1, pad, init_scale);
    return b_prelu(b, name, t, out_c);
}

static void build_lenetpp(struct builder *b)
{
    struct fv_model_meta *meta = fv_graph_meta(b->g);
    int x = b_tensor(b, "input");
    if (b->st)
        return;
    fv_graph_tensor(b->g, x)->h = 28;
    fv_graph_tensor(b->g, x)->w = 28;
    fv_graph_tensor(b->g, x)->c = 1;
    fv_graph_set_input(b->g, x);
    static const int widths[3] = {32, 64, 128};
    int t = x, c = 1;
    char name[FV_NAME_MAX];
    for (int s = 0; s < 3; s++) {
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "conv%d_%d", s + 1, k + 1);
            t = b_conv_prelu(b, name, t, c, widths[s], 5, FV_PADDING_SAME, 1.0f);
            c = widths[s];
        }
        snprintf(name, sizeof name, "pool%d", s + 1);
        t = b_pool(b, name, t, s == 2 ? FV_PADDING_SAME : FV_PADDING_VALID);
    }
    t = b_fc(b, "fc1/fc", t, 4 * 4 * 128, 2, xavier_bound(4 * 4 * 128));
    t = b_prelu(b, "fc1", t, 2);
    if (b->st)
        return;
    fv_graph_add_output(b->g, t);
    snprintf(meta->name, sizeof meta->name, "lenetpp");
    snprintf(meta->embedding, sizeof meta->embedding, "fc1");
    meta->input_h = 28, meta->input_w = 28, meta->input_c = 1;
    meta->pixel_mean = 127.5f;
    meta->pixel_scale = 1.0f / 128.0f;
    meta->template_h = meta->template_w = 0;
}

static void build_face(struct builder *b)
{
    struct fv_model_meta *meta = fv_graph_meta(b->g);
    int x = b_tensor(b, "input");
    if (b->st)
        return;
    fv_graph_tensor(b->g, x)->h = 112;
    fv_graph_tensor(b->g, x)->w = 96;
    fv_graph_tensor(b->g, x)->c = 3;
    fv_graph_set_input(b->g, x);
    int t = b_conv_prelu(b, "conv1a", x, 3, 32, 3, FV_PADDING_VALID, 1.0f);
    t = b_conv_prelu(b, "conv1b", t, 32, 64, 3, FV_PADDING_VALID, 1.0f);
    t = b_pool(b, "pool1", t, FV_PADDING_VALID);
    static const int widths[4] = {64, 128, 256, 512}, units[4] = {1, 2, 5, 3};
    char name[FV_NAME_MAX];
    int c = 64;
    for (int s = 0; s < 4; s++) {
        if (s > 0) {
            snprintf(name, sizeof name, "conv%d", s + 1);
            t = b_conv_prelu(b, name, t, c, widths[s], 3, FV_PADDING_VALID, 1.0f);
            c = widths[s];
            snprintf(name, sizeof name, "pool%d", s + 1);
            t = b_pool(b, name, t, FV_PADDING_VALID);
        }
        for (int u = 0; u < units[s]; u++) {
            /* the second conv of a unit starts small, so the sum of many residual
             * branches stays close to the identity at initialisation */
            snprintf(name, sizeof name, "conv%d_%d", s + 2, 2 * u + 1);
            int r = b_conv_prelu(b, name, t, c, c, 3, FV_PADDING_SAME, 1.0f);
            snprintf(name, sizeof name, "conv%d_%d", s + 2, 2 * u + 2);
            r = b_conv_prelu(b, name, r, c, c, 3, FV_PADDING_SAME, 0.1f);
            snprintf(name, sizeof name, "res%d_%d", s + 2, 2 * u + 2);
            t = b_add(b, name, t, r);
        }
    }
    /* 112×96 → VALID convs and pools → 5×4×512 */
    t = b_fc(b, "fc5", t, 5 * 4 * 512, 512, sqrtf(3.0f / (5 * 4 * 512)));
    if (b->st)
        return;
    fv_graph_add_output(b->g, t);
    snprintf(meta->name, sizeof meta->name, "face-centerloss");
    snprintf(meta->embedding, sizeof meta->embedding, "fc5");
    meta->input_h = 112, meta->input_w = 96, meta->input_c = 3;
    meta->pixel_mean = 127.5f;
    meta->pixel_scale = 1.0f / 128.0f;
    meta->template_h = 112, meta->template_w = 96;
}

enum fv_status fv_train_arch_new(const char *arch, uint64_t seed, struct fv_graph **out,
                                 struct fv_error *err)
{
    *out = NULL;
    struct builder b = {.g = fv_graph_new(), .err = err};
    if (!b.g)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory building '%s'", arch);
    fv_rng_seed(&b.rng, seed ^ 0x5eed0f1a7e5ull);
    if (strcmp(arch, "lenetpp") == 0)
        build_lenetpp(&b);
    else if (strcmp(arch, "face") == 0)
        build_face(&b);
    else
        b.st = fv_error_set(err, FV_ERR_INVALID_ARG,
                            "unknown architecture '%s' (lenetpp or face)", arch);
    if (!b.st)
        b.st = fv_graph_validate(b.g, err);
    if (b.st) {
        fv_graph_free(b.g);
        return b.st;
    }
    *out = b.g;
    return FV_OK;
}

enum fv_status fv_train_extract_trunk(struct fv_graph *g, const char *feature,
                                      struct fv_graph **out, struct fv_error *err)
{
    enum fv_status st = FV_OK;
    *out = NULL;
    int feat = fv_graph_find_tensor(g, feature);
    if (feat < 0)
        return fv_error_set(err, FV_ERR_NOT_FOUND, "no tensor '%s' in the graph", feature);
    int nt = fv_graph_tensor_count(g), nn = fv_graph_node_count(g), nb = fv_graph_blob_count(g);
    char *needed = calloc((size_t)nt, 1), *keep = calloc((size_t)nn + 1, 1);
    struct fv_graph *d = fv_graph_new();
    if (!needed || !keep || !d) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory extracting '%s'", feature);
        goto fail;
    }
    needed[feat] = 1;
    for (int i = nn - 1; i >= 0; i--) {
        const struct fv_node *n = fv_graph_node(g, i);
        if (!needed[n->output])
            continue;
        keep[i] = 1;
        for (int k = 0; k < n->n_inputs; k++)
            needed[n->inputs[k]] = 1;
    }
    *fv_graph_meta(d) = *fv_graph_meta(g);
    snprintf(fv_graph_meta(d)->embedding, FV_NAME_MAX, "%s", feature);
    /* Copy every tensor and blob so indices stay valid, then compact. */
    for (int i = 0; i < nt; i++) {
        const struct fv_tensor_info *t = fv_graph_tensor(g, i);
        int r = fv_graph_add_tensor(d, t->name, t->h, t->w, t->c);
        if (r < 0) {
            st = fv_error_set(err, (enum fv_status)r, "cannot copy tensor '%s'", t->name);
            goto fail;
        }
    }
    for (int i = 0; i < nb; i++) {
        const struct fv_blob *b = fv_graph_blob(g, i);
        int r = fv_graph_add_blob(d, b->name, b->shape, b->rank, b->data);
        if (r < 0) {
            st = fv_error_set(err, (enum fv_status)r, "cannot copy blob '%s'", b->name);
            goto fail;
        }
    }
    for (int i = 0; i < nn; i++)
        if (keep[i]) {
            int r = fv_graph_add_node(d, fv_graph_node(g, i), err);
            if (r < 0) {
                st = (enum fv_status)r;
                goto fail;
            }
        }
    fv_graph_set_input(d, fv_graph_input(g));
    if ((st = fv_graph_add_output(d, feat)) != FV_OK ||
        (st = fv_graph_compact(d, err)) != FV_OK || (st = fv_graph_validate(d, err)) != FV_OK)
        goto fail;
    free(needed);
    free(keep);
    *out = d;
    return FV_OK;
fail:
    free(needed);
    free(keep);
    fv_graph_free(d);
    return st;
}

/* ---------------------------------------------------------------- trainer */

/* What the backward pass of one node needs beyond its input and output, kept
 * by each worker for its own samples. */
struct node_state {
    int32_t *argmax;                 /* max pool: shard × output size */
    float *save_mean, *save_inv_std; /* batch norm: c each */
    float *shard_mean, *shard_var;   /* batch norm, several workers: this shard's statistics */
};

/* One thread's share of a step: samples [first, first + n) of the batch. The
 * activations and gradients of every tensor are one array for the whole batch
 * and a worker touches only its slice of each; parameter gradients, pooling
 * indices, batch-norm statistics and scratch are its own, so workers never
 * write the same memory. Worker 0 runs on the caller's thread, and its
 * parameter gradients receive the sum over workers. */
struct train_worker {
    struct fv_trainer *tr;
    int index;
    int first, n;
    float weight;                    /* n / batch: this shard's share of the mean loss */
    float **pgrad;                   /* per blob; NULL when the blob is not trained */
    struct node_state *ns;           /* per node */
    float *scratch;
    float softmax_loss, center_loss; /* means over this shard */
    int correct;
    pthread_t thread;
    int started;
};

enum pool_job { JOB_TRAIN, JOB_REDUCE, JOB_PREDICT };

struct fv_trainer {
    struct fv_graph *g;
    struct fv_train_params p;
    int batch, threads;
    int feature, logits, head; /* tensors and the classifier node */
    int dim;
    int nt, nn, nb;
    size_t *sizes;        /* per-sample floats of each tensor */
    float **act, **grad;  /* per tensor: batch × size (grad NULL for the input) */
    struct fv_conv_shape *shapes; /* per node: conv, depthwise, pool (n set per call) */
    int (*dims)[3];       /* per tensor: per-sample (h, w, c) */
    /* The forward runs on the served engine's kernels (forward.c): convolution
     * and FC weights packed for them, repacked before every batch. */
    const struct fv_kernels *k;
    float **packed;       /* per node: conv/FC weights in k->pack's layout, or NULL */
    float **velocity;     /* per blob; NULL when the blob is not trained */
    char *decay;          /* per blob: weight decay applies */
    size_t *param_offset; /* per trained blob: its first value among all trained values */
    size_t params;        /* trained values in all */
    struct train_worker *workers;
    struct fv_center_loss *center;
    long steps;
    struct fv_rng rng;
    size_t bytes;
    /* The pool: workers 1.. sleep until the generation changes, run `job` on
     * their shard or range, and the last to finish signals `done`. */
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    int pool_ready, stop, pending;
    unsigned generation;
    enum pool_job job;
    const int *labels;    /* JOB_TRAIN */
    int n;                /* samples in the current call */
    float lr;             /* JOB_REDUCE */
    int update;           /* JOB_REDUCE: apply the SGD step, not only sum */
    float *features;      /* JOB_PREDICT, either may be NULL */
    int *predicted;
};

static void *train_alloc(struct fv_trainer *tr, size_t count, size_t elem)
{
    tr->bytes += count * elem;
    return calloc(count ? count : 1, elem);
}

static void pool_stop(struct fv_trainer *tr)
{
    if (!tr->pool_ready)
        return;
    pthread_mutex_lock(&tr->lock);
    tr->stop = 1;
    pthread_cond_broadcast(&tr->start);
    pthread_mutex_unlock(&tr->lock);
    for (int w = 1; w < tr->threads; w++)
        if (tr->workers[w].started)
            pthread_join(tr->workers[w].thread, NULL);
    pthread_mutex_destroy(&tr->lock);
    pthread_cond_destroy(&tr->start);
    pthread_cond_destroy(&tr->done);
    tr->pool_ready = 0;
}

static void worker_free(struct fv_trainer *tr, struct train_worker *w)
{
    for (int i = 0; w->ns && i < tr->nn; i++) {
        free(w->ns[i].argmax);
        free(w->ns[i].save_mean);
        free(w->ns[i].save_inv_std);
        free(w->ns[i].shard_mean);
        free(w->ns[i].shard_var);
    }
    for (int b = 0; w->pgrad && b < tr->nb; b++)
        free(w->pgrad[b]);
    free(w->ns);
    free(w->pgrad);
    free(w->scratch);
}

void fv_trainer_free(struct fv_trainer *tr)
{
    if (!tr)
        return;
    pool_stop(tr);
    for (int t = 0; t < tr->nt; t++) {
        if (tr->act && t != fv_graph_input(tr->g))
            free(tr->act[t]);
        if (tr->grad)
            free(tr->grad[t]);
    }
    for (int w = 0; tr->workers && w < tr->threads; w++)
        worker_free(tr, &tr->workers[w]);
    for (int i = 0; tr->velocity && i < tr->nb; i++)
        free(tr->velocity[i]);
    free(tr->workers);
    free(tr->sizes);
    free(tr->act);
    free(tr->grad);
    free(tr->shapes);
    free(tr->dims);
    for (int i = 0; tr->packed && i < tr->nn; i++)
        free(tr->packed[i]);
    free(tr->packed);
    free(tr->velocity);
    free(tr->decay);
    free(tr->param_offset);
    fv_center_loss_free(tr->center);
    fv_graph_free(tr->g);
    free(tr);
}

static struct fv_conv_shape node_conv_shape(struct fv_trainer *tr, const struct fv_node *n, int batch)
{
    const struct fv_tensor_info *in = fv_graph_tensor(tr->g, n->inputs[0]);
    const struct fv_tensor_info *out = fv_graph_tensor(tr->g, n->output);
    return fv_conv_shape_make(batch, in->h, in->w, in->c, n->kernel_h, n->kernel_w, n->stride_h,
                              n->stride_w, n->padding, out->c);
}

/* Adds the classifier head: FC feature → logits (LMCL: no bias). */
static enum fv_status add_head(struct fv_trainer *tr, struct fv_error *err)
{
    struct builder b = {.g = tr->g, .err = err};
    fv_rng_seed(&b.rng, tr->p.seed ^ 0xc1a55ull);
    struct fv_node n = fv_node_init(FV_OP_FULLY_CONNECTED, "classifier");
    /* Xavier-uniform, as Caffe's "xavier" filler */
    float bound = sqrtf(6.0f / (float)(tr->dim + tr->p.classes));
    n.blobs[0] = b_blob(&b, "classifier", "weights", (int[]){tr->p.classes, tr->dim}, 2, bound, 0);
    if (tr->p.loss != FV_LOSS_LMCL)
        n.blobs[1] = b_blob(&b, "classifier", "bias", (int[]){tr->p.classes}, 1, 0.0f, 0.0f);
    int t = b_node(&b, &n, tr->feature, -1, "logits");
    if (b.st)
        return b.st;
    tr->logits = t;
    tr->head = fv_graph_node_count(tr->g) - 1;
    return fv_graph_add_output(tr->g, t);
}

/* Whether blob k of node n is trained: everything but batch-norm statistics. */
static int blob_trained(const struct fv_node *n, int k)
{
    return n->blobs[k] >= 0 && !(n->op == FV_OP_BATCH_NORM && k >= 2);
}

/* A worker's own state for shards of up to `capacity` samples. */
static int worker_init(struct fv_trainer *tr, struct train_worker *w, int capacity)
{
    const int several = tr->threads > 1;
    if (!(w->pgrad = train_alloc(tr, (size_t)tr->nb, sizeof *w->pgrad)) ||
        !(w->ns = train_alloc(tr, (size_t)tr->nn, sizeof *w->ns)))
        return 0;
    size_t scratch = fv_loss_lmcl_scratch(capacity, tr->dim, tr->p.classes);
    for (int i = 0; i < tr->nn; i++) {
        const struct fv_node *n = fv_graph_node(tr->g, i);
        struct node_state *s = &w->ns[i];
        if (n->op == FV_OP_CONV2D) {
            struct fv_conv_shape shape = tr->shapes[i];
            shape.n = capacity;
            size_t f = fv_ops_conv2d_scratch(&shape), b = fv_backward_conv2d_scratch(&shape);
            scratch = f > scratch ? f : scratch;
            scratch = b > scratch ? b : scratch;
        }
        if (n->op == FV_OP_MAX_POOL2D &&
            !(s->argmax = train_alloc(tr, tr->sizes[n->output] * capacity, sizeof *s->argmax)))
            return 0;
        if (n->op == FV_OP_BATCH_NORM) {
            size_t c = (size_t)fv_graph_tensor(tr->g, n->output)->c;
            if (!(s->save_mean = train_alloc(tr, c, sizeof(float))) ||
                !(s->save_inv_std = train_alloc(tr, c, sizeof(float))) ||
                (several && (!(s->shard_mean = train_alloc(tr, c, sizeof(float))) ||
                             !(s->shard_var = train_alloc(tr, c, sizeof(float))))))
                return 0;
        }
        for (int k = 0; k < FV_NODE_MAX_BLOBS; k++) {
            int bi = n->blobs[k];
            if (!blob_trained(n, k) || w->pgrad[bi])
                continue;
            if (!(w->pgrad[bi] = train_alloc(tr, fv_graph_blob(tr->g, bi)->count, sizeof(float))))
                return 0;
        }
    }
    return (w->scratch = train_alloc(tr, scratch, sizeof(float))) != NULL;
}

static void *worker_main(void *arg);

enum fv_status fv_trainer_new(struct fv_graph *trunk, const struct fv_train_params *params,
                              struct fv_trainer **out, struct fv_error *err)
{
    enum fv_status st;
    *out = NULL;
    struct fv_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) {
        fv_graph_free(trunk);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory creating trainer");
    }
    tr->g = trunk;
    tr->p = *params;
    tr->batch = params->batch;
    fv_rng_seed(&tr->rng, params->seed);
    if (params->batch < 1 || params->batch > 65536 || params->classes < 2 ||
        params->classes > 10000000 || (unsigned)params->loss >= FV_LOSS_KIND_COUNT ||
        !(params->schedule.base_lr >= 0.0f) || !(params->momentum >= 0.0f) ||
        !(params->weight_decay >= 0.0f) || !(params->s > 0.0f) || !(params->m >= 0.0f) ||
        params->threads < 1 || params->threads > FV_TRAIN_MAX_THREADS) {
        st = fv_error_set(err, FV_ERR_INVALID_ARG,
                          "training parameters out of range (batch %d, classes %d, threads %d)",
                          params->batch, params->classes, params->threads);
        goto fail;
    }
    /* more threads than samples would only idle */
    tr->threads = params->threads < params->batch ? params->threads : params->batch;
    if ((st = fv_graph_validate(tr->g, err)) != FV_OK)
        goto fail;
    const struct fv_model_meta *meta = fv_graph_meta(tr->g);
    tr->feature = meta->embedding[0] ? fv_graph_find_tensor(tr->g, meta->embedding) : -1;
    if (tr->feature < 0) {
        st = fv_error_set(err, FV_ERR_INVALID_ARG, "the network names no feature tensor");
        goto fail;
    }
    {
        const struct fv_tensor_info *f = fv_graph_tensor(tr->g, tr->feature);
        tr->dim = f->h * f->w * f->c;
    }
    for (int i = 0; i < fv_graph_node_count(tr->g); i++) {
        const struct fv_node *n = fv_graph_node(tr->g, i);
        if (!fv_node_trainable(n->op)) {
            st = fv_error_set(err, FV_ERR_UNSUPPORTED, "node '%s': %s has no backward", n->name,
                              fv_op_name(n->op));
            goto fail;
        }
    }
    if ((st = add_head(tr, err)) != FV_OK || (st = fv_graph_validate(tr->g, err)) != FV_OK)
        goto fail;

    tr->nt = fv_graph_tensor_count(tr->g);
    tr->nn = fv_graph_node_count(tr->g);
    tr->nb = fv_graph_blob_count(tr->g);
    const int input = fv_graph_input(tr->g), B = tr->batch;
    tr->sizes = train_alloc(tr, (size_t)tr->nt, sizeof *tr->sizes);
    tr->act = train_alloc(tr, (size_t)tr->nt, sizeof *tr->act);
    tr->grad = train_alloc(tr, (size_t)tr->nt, sizeof *tr->grad);
    tr->shapes = train_alloc(tr, (size_t)tr->nn, sizeof *tr->shapes);
    tr->dims = train_alloc(tr, (size_t)tr->nt, sizeof *tr->dims);
    tr->packed = train_alloc(tr, (size_t)tr->nn, sizeof *tr->packed);
    tr->k = fv_kernels_active();
    tr->velocity = train_alloc(tr, (size_t)tr->nb, sizeof *tr->velocity);
    tr->decay = train_alloc(tr, (size_t)tr->nb, 1);
    tr->param_offset = train_alloc(tr, (size_t)tr->nb, sizeof *tr->param_offset);
    tr->workers = train_alloc(tr, (size_t)tr->threads, sizeof *tr->workers);
    if (!tr->sizes || !tr->act || !tr->grad || !tr->shapes || !tr->dims || !tr->packed ||
        !tr->velocity || !tr->decay || !tr->param_offset || !tr->workers)
        goto nomem;
    for (int t = 0; t < tr->nt; t++) {
        const struct fv_tensor_info *ti = fv_graph_tensor(tr->g, t);
        tr->sizes[t] = (size_t)ti->h * ti->w * ti->c;
        tr->dims[t][0] = ti->h, tr->dims[t][1] = ti->w, tr->dims[t][2] = ti->c;
        if (t == input)
            continue;
        if (!(tr->act[t] = train_alloc(tr, tr->sizes[t] * B, sizeof(float))) ||
            !(tr->grad[t] = train_alloc(tr, tr->sizes[t] * B, sizeof(float))))
            goto nomem;
    }
    for (int i = 0; i < tr->nn; i++) {
        const struct fv_node *n = fv_graph_node(tr->g, i);
        if (n->op == FV_OP_CONV2D || n->op == FV_OP_DEPTHWISE_CONV2D || n->op == FV_OP_MAX_POOL2D)
            tr->shapes[i] = node_conv_shape(tr, n, B);
        if (n->op == FV_OP_CONV2D || n->op == FV_OP_FULLY_CONNECTED) {
            const struct fv_blob *wb = fv_graph_blob(tr->g, n->blobs[0]);
            size_t floats = fv_kernels_packed_floats(tr->k, wb->shape[0],
                                                     (int)(wb->count / (size_t)wb->shape[0]));
            tr->packed[i] = aligned_alloc(64, ((floats + 15) & ~(size_t)15) * sizeof(float));
            if (!tr->packed[i])
                goto nomem;
            tr->bytes += floats * sizeof(float);
        }
        for (int k = 0; k < FV_NODE_MAX_BLOBS; k++) {
            int bi = n->blobs[k];
            if (!blob_trained(n, k) || tr->velocity[bi])
                continue;
            size_t count = fv_graph_blob(tr->g, bi)->count;
            if (!(tr->velocity[bi] = train_alloc(tr, count, sizeof(float))))
                goto nomem;
            tr->param_offset[bi] = tr->params;
            tr->params += count;
            tr->decay[bi] = k == 0 && (n->op == FV_OP_CONV2D || n->op == FV_OP_DEPTHWISE_CONV2D ||
                                       n->op == FV_OP_FULLY_CONNECTED);
        }
    }
    const int capacity = (B + tr->threads - 1) / tr->threads;
    for (int w = 0; w < tr->threads; w++) {
        tr->workers[w].tr = tr;
        tr->workers[w].index = w;
        if (!worker_init(tr, &tr->workers[w], capacity))
            goto nomem;
    }
    if (params->loss == FV_LOSS_CENTER &&
        (st = fv_center_loss_new(params->classes, tr->dim, params->lambda, params->alpha,
                                 &tr->center, err)) != FV_OK)
        goto fail;
    if (tr->threads > 1) {
        if (pthread_mutex_init(&tr->lock, NULL) != 0)
            goto nomem;
        if (pthread_cond_init(&tr->start, NULL) != 0) {
            pthread_mutex_destroy(&tr->lock);
            goto nomem;
        }
        if (pthread_cond_init(&tr->done, NULL) != 0) {
            pthread_cond_destroy(&tr->start);
            pthread_mutex_destroy(&tr->lock);
            goto nomem;
        }
        tr->pool_ready = 1;
        for (int w = 1; w < tr->threads; w++) {
            if (pthread_create(&tr->workers[w].thread, NULL, worker_main, &tr->workers[w]) != 0) {
                st = fv_error_set(err, FV_ERR_NOMEM, "cannot start training thread %d of %d",
                                  w + 1, tr->threads);
                goto fail;
            }
            tr->workers[w].started = 1;
        }
    }
    *out = tr;
    return FV_OK;
nomem:
    st = fv_error_set(err, FV_ERR_NOMEM, "out of memory for training state (batch %d)", B);
fail:
    fv_trainer_free(tr);
    return st;
}

/* Tensor t's slice for worker w: its first sample onwards. */
static float *slice(const struct fv_trainer *tr, float *const *arrays, int t,
                    const struct train_worker *w)
{
    return arrays[t] ? arrays[t] + tr->sizes[t] * (size_t)w->first : NULL;
}

/* Runs node i forward on worker w's samples; training selects batch statistics
 * and records what the backward pass needs. */
static void forward_node(struct fv_trainer *tr, struct train_worker *w, int i, int training)
{
    const struct fv_node *node = fv_graph_node(tr->g, i);
    struct node_state *s = &w->ns[i];
    struct fv_graph *g = tr->g;
    const int n = w->n;
    const float *x = slice(tr, tr->act, node->inputs[0], w);
    float *y = slice(tr, tr->act, node->output, w);
    const size_t count = tr->sizes[node->output] * n;
    const float *b0 = node->blobs[0] >= 0 ? fv_graph_blob(g, node->blobs[0])->data : NULL;
    const float *b1 = node->blobs[1] >= 0 ? fv_graph_blob(g, node->blobs[1])->data : NULL;
    const int c = fv_graph_tensor(g, node->output)->c;
    struct fv_conv_shape shape = tr->shapes[i];
    shape.n = n;
    if (training && node->op == FV_OP_MAX_POOL2D) {
        /* the served max pool, plus where each maximum came from */
        fv_forward_max_pool2d_argmax(&shape, x, y, s->argmax);
        fv_ops_activation(count, node->activation, y);
        return;
    }
    if (training && node->op == FV_OP_BATCH_NORM) {
        float *mean = fv_graph_blob(g, node->blobs[2])->data;
        float *var = fv_graph_blob(g, node->blobs[3])->data;
        if (tr->threads == 1)
            fv_forward_batch_norm_train(count / c, c, x, b0, b1, node->epsilon,
                                        tr->p.bn_momentum, mean, var, s->save_mean,
                                        s->save_inv_std, y);
        else /* momentum 1: the shard's own mean and variance, merged later */
            fv_forward_batch_norm_train(count / c, c, x, b0, b1, node->epsilon, 1.0f,
                                        s->shard_mean, s->shard_var, s->save_mean,
                                        s->save_inv_std, y);
        fv_ops_activation(count, node->activation, y);
        return;
    }
    /* Everything else is the engine's own forward on the engine's kernels. */
    const struct fv_forward_args a = {
        .kernels = tr->k, .graph = g, .node = node, .batch = n,
        .in = tr->dims[node->inputs[0]], .out = tr->dims[node->output], .x = x,
        .x2 = node->n_inputs == 2 ? slice(tr, tr->act, node->inputs[1], w) : NULL, .y = y,
        .packed = tr->packed[i], .scratch = w->scratch,
    };
    fv_forward_node(&a);
}

/* The conv and FC weights in the kernels' packed layout, as they are now
 * (before every forward: the weights change with every step, and callers may
 * change them through fv_trainer_graph). */
static void pack_weights(struct fv_trainer *tr)
{
    for (int i = 0; i < tr->nn; i++) {
        if (!tr->packed[i])
            continue;
        const struct fv_blob *wb = fv_graph_blob(tr->g, fv_graph_node(tr->g, i)->blobs[0]);
        tr->k->pack(wb->shape[0], (int)(wb->count / (size_t)wb->shape[0]), wb->data,
                    tr->packed[i]);
    }
}

static void backward_node(struct fv_trainer *tr, struct train_worker *w, int i)
{
    const struct fv_node *node = fv_graph_node(tr->g, i);
    const struct node_state *s = &w->ns[i];
    const int in = node->inputs[0];
    float *const *pgrad = w->pgrad;
    const struct fv_backward_args a = {
        .graph = tr->g, .node = node, .batch = w->n,
        .in = tr->dims[in], .out = tr->dims[node->output],
        .x = slice(tr, tr->act, in, w), .y = slice(tr, tr->act, node->output, w),
        .dy = slice(tr, tr->grad, node->output, w), .dx = slice(tr, tr->grad, in, w),
        .dx2 = node->n_inputs == 2 ? slice(tr, tr->grad, node->inputs[1], w) : NULL,
        .g0 = node->blobs[0] >= 0 ? pgrad[node->blobs[0]] : NULL,
        .g1 = node->blobs[1] >= 0 ? pgrad[node->blobs[1]] : NULL,
        .argmax = s->argmax, .save_mean = s->save_mean, .save_inv_std = s->save_inv_std,
        .scratch = w->scratch,
    };
    fv_backward_node(&a);
}

/* Forward (training mode), loss and backward on worker w's samples; its
 * parameter gradients hold the gradient of its shard's mean loss. */
static void train_shard(struct fv_trainer *tr, struct train_worker *w)
{
    const int lmcl = tr->p.loss == FV_LOSS_LMCL, n = w->n;
    const int *labels = tr->labels + w->first;
    for (int i = 0; i < tr->nn; i++)
        if (!(lmcl && i == tr->head))
            forward_node(tr, w, i, 1);
    for (int t = 0; t < tr->nt; t++)
        if (tr->grad[t])
            memset(slice(tr, tr->grad, t, w), 0, tr->sizes[t] * n * sizeof(float));
    for (int b = 0; b < tr->nb; b++)
        if (w->pgrad[b])
            memset(w->pgrad[b], 0, fv_graph_blob(tr->g, b)->count * sizeof(float));
    const float *features = slice(tr, tr->act, tr->feature, w);
    float *dfeatures = slice(tr, tr->grad, tr->feature, w);
    w->center_loss = 0.0f;
    w->correct = 0;
    if (lmcl) {
        int wb = fv_graph_node(tr->g, tr->head)->blobs[0];
        w->softmax_loss = fv_loss_lmcl(n, tr->dim, tr->p.classes, features,
                                       fv_graph_blob(tr->g, wb)->data, labels, tr->p.s, tr->p.m,
                                       dfeatures, w->pgrad[wb], &w->correct, w->scratch);
    } else {
        w->softmax_loss = fv_loss_softmax_cross_entropy(n, tr->p.classes,
                                                        slice(tr, tr->act, tr->logits, w), labels,
                                                        slice(tr, tr->grad, tr->logits, w),
                                                        &w->correct);
        if (tr->center)
            w->center_loss = fv_center_loss_forward(tr->center, n, features, labels, dfeatures);
    }
    for (int i = tr->nn - 1; i >= 0; i--)
        if (!(lmcl && i == tr->head))
            backward_node(tr, w, i);
}

/* Sums the workers' gradients, each weighted by its share of the batch, into
 * worker 0's over this worker's range of all trained values, and with `update`
 * takes Caffe's SGD step there: v ← μ v + lr (g + wd · w), w ← w − v. Every
 * value is summed in worker order whatever thread does it, so the result
 * depends on the thread count but not on timing. */
static void reduce_range(struct fv_trainer *tr, struct train_worker *self)
{
    const size_t lo = tr->params * (size_t)self->index / (size_t)tr->threads;
    const size_t hi = tr->params * (size_t)(self->index + 1) / (size_t)tr->threads;
    const float lr = tr->lr, mu = tr->p.momentum;
    for (int b = 0; b < tr->nb; b++) {
        if (!tr->velocity[b])
            continue;
        struct fv_blob *blob = fv_graph_blob(tr->g, b);
        const size_t off = tr->param_offset[b];
        if (off >= hi || off + blob->count <= lo)
            continue;
        const size_t k0 = lo > off ? lo - off : 0;
        const size_t k1 = hi < off + blob->count ? hi - off : blob->count;
        float *gr = tr->workers[0].pgrad[b];
        if (tr->threads > 1)
            for (size_t k = k0; k < k1; k++) {
                float sum = 0.0f;
                for (int s = 0; s < tr->threads; s++)
                    if (tr->workers[s].n)
                        sum += tr->workers[s].weight * tr->workers[s].pgrad[b][k];
                gr[k] = sum;
            }
        if (!tr->update)
            continue;
        const float wd = tr->decay[b] ? tr->p.weight_decay : 0.0f;
        float *wt = blob->data, *v = tr->velocity[b];
        for (size_t k = k0; k < k1; k++) {
            v[k] = mu * v[k] + lr * (gr[k] + wd * wt[k]);
            wt[k] -= v[k];
        }
    }
}

/* Inference-mode forward of worker w's samples, with features and predicted
 * classes written to the caller's arrays. */
static void predict_shard(struct fv_trainer *tr, struct train_worker *w)
{
    const int lmcl = tr->p.loss == FV_LOSS_LMCL;
    for (int i = 0; i < tr->nn; i++)
        forward_node(tr, w, i, 0);
    if (tr->features)
        memcpy(tr->features + (size_t)w->first * tr->dim, slice(tr, tr->act, tr->feature, w),
               (size_t)w->n * tr->dim * sizeof(float));
    if (!tr->predicted)
        return;
    const float *z = slice(tr, tr->act, tr->logits, w);
    const struct fv_blob *wb = fv_graph_blob(tr->g, fv_graph_node(tr->g, tr->head)->blobs[0]);
    for (int i = 0; i < w->n; i++) {
        int best = 0;
        double best_v = -INFINITY;
        for (int k = 0; k < tr->p.classes; k++) {
            double v = z[(size_t)i * tr->p.classes + k];
            if (lmcl) { /* by cosine: divide by the class weight's norm */
                const float *row = wb->data + (size_t)k * tr->dim;
                double sq = 0.0;
                for (int d = 0; d < tr->dim; d++)
                    sq += (double)row[d] * row[d];
                v /= sqrt(sq) + 1e-12;
            }
            if (v > best_v) {
                best_v = v;
                best = k;
            }
        }
        tr->predicted[w->first + i] = best;
    }
}

static void run_job(struct fv_trainer *tr, struct train_worker *w)
{
    switch (tr->job) {
    case JOB_TRAIN:
        if (w->n)
            train_shard(tr, w);
        break;
    case JOB_REDUCE:
        reduce_range(tr, w);
        break;
    case JOB_PREDICT:
        if (w->n)
            predict_shard(tr, w);
        break;
    }
}

static void *worker_main(void *arg)
{
    struct train_worker *w = arg;
    struct fv_trainer *tr = w->tr;
    unsigned seen = 0;
    for (;;) {
        pthread_mutex_lock(&tr->lock);
        while (tr->generation == seen && !tr->stop)
            pthread_cond_wait(&tr->start, &tr->lock);
        if (tr->stop) {
            pthread_mutex_unlock(&tr->lock);
            return NULL;
        }
        seen = tr->generation;
        pthread_mutex_unlock(&tr->lock);
        run_job(tr, w);
        pthread_mutex_lock(&tr->lock);
        if (--tr->pending == 0)
            pthread_cond_signal(&tr->done);
        pthread_mutex_unlock(&tr->lock);
    }
}

/* Runs `job` on every worker, worker 0 on this thread, and returns when all are done. */
static void run_parallel(struct fv_trainer *tr, enum pool_job job)
{
    tr->job = job;
    if (tr->threads == 1) {
        run_job(tr, &tr->workers[0]);
        return;
    }
    pthread_mutex_lock(&tr->lock);
    tr->pending = tr->threads - 1;
    tr->generation++;
    pthread_cond_broadcast(&tr->start);
    pthread_mutex_unlock(&tr->lock);
    run_job(tr, &tr->workers[0]);
    pthread_mutex_lock(&tr->lock);
    while (tr->pending)
        pthread_cond_wait(&tr->done, &tr->lock);
    pthread_mutex_unlock(&tr->lock);
}

/* Splits n samples into contiguous shards as even as possible, in worker order. */
static void set_shards(struct fv_trainer *tr, int n)
{
    tr->n = n;
    for (int w = 0; w < tr->threads; w++) {
        struct train_worker *wk = &tr->workers[w];
        wk->first = (int)((long)n * w / tr->threads);
        wk->n = (int)((long)n * (w + 1) / tr->threads) - wk->first;
        wk->weight = (float)wk->n / (float)n;
    }
}

/* With several workers, batch norm normalised each shard by its own statistics
 * (as data-parallel training without synchronised batch norm does); the running
 * statistics still follow the whole batch: its mean and variance are put
 * together exactly from the shards' counts, means and variances. */
static void merge_batch_norm_statistics(struct fv_trainer *tr)
{
    if (tr->threads == 1)
        return;
    const double momentum = tr->p.bn_momentum;
    for (int i = 0; i < tr->nn; i++) {
        const struct fv_node *node = fv_graph_node(tr->g, i);
        if (node->op != FV_OP_BATCH_NORM)
            continue;
        const int c = fv_graph_tensor(tr->g, node->output)->c;
        const double per_sample = (double)(tr->sizes[node->output] / (size_t)c);
        const double total = per_sample * tr->n;
        float *running_mean = fv_graph_blob(tr->g, node->blobs[2])->data;
        float *running_var = fv_graph_blob(tr->g, node->blobs[3])->data;
        for (int k = 0; k < c; k++) {
            double mean = 0.0, sq = 0.0;
            for (int w = 0; w < tr->threads; w++)
                if (tr->workers[w].n)
                    mean += per_sample * tr->workers[w].n * tr->workers[w].ns[i].shard_mean[k];
            mean /= total;
            for (int w = 0; w < tr->threads; w++) {
                const struct train_worker *wk = &tr->workers[w];
                if (!wk->n)
                    continue;
                /* the shard's variance was stored unbiased (× p/(p − 1)) */
                const double p = per_sample * wk->n, d = wk->ns[i].shard_mean[k] - mean;
                const double biased = p > 1 ? wk->ns[i].shard_var[k] * (p - 1) / p : 0.0;
                sq += p * (biased + d * d);
            }
            const double unbiased = total > 1 ? sq / (total - 1) : sq / total;
            running_mean[k] = (float)((1.0 - momentum) * running_mean[k] + momentum * mean);
            running_var[k] = (float)((1.0 - momentum) * running_var[k] + momentum * unbiased);
        }
    }
}

/* Forward (training mode), loss, backward on all workers; the summed gradient
 * is left in worker 0's parameter gradients and the SGD step taken with `update`. */
static float train_batch(struct fv_trainer *tr, const float *images, const int *labels, int n,
                         int update, float lr, struct fv_train_stats *stats)
{
    tr->act[fv_graph_input(tr->g)] = (float *)images;
    tr->labels = labels;
    pack_weights(tr);
    set_shards(tr, n);
    run_parallel(tr, JOB_TRAIN);
    merge_batch_norm_statistics(tr);
    tr->update = update;
    tr->lr = lr;
    if (tr->threads > 1 || update)
        run_parallel(tr, JOB_REDUCE);
    float ls = 0.0f, lc = 0.0f;
    int correct = 0;
    for (int w = 0; w < tr->threads; w++) {
        const struct train_worker *wk = &tr->workers[w];
        if (!wk->n)
            continue;
        ls += wk->weight * wk->softmax_loss;
        lc += wk->weight * wk->center_loss;
        correct += wk->correct;
    }
    float loss = ls + (tr->center ? tr->p.lambda * lc : 0.0f);
    if (stats) {
        stats->loss = loss;
        stats->softmax_loss = ls;
        stats->center_loss = lc;
        stats->correct = correct;
        stats->n = n;
        stats->lr = lr;
    }
    return loss;
}

float fv_trainer_loss_and_gradients(struct fv_trainer *tr, const float *images,
                                    const int *labels, int n)
{
    FV_ASSERT(n >= 1 && n <= tr->batch);
    return train_batch(tr, images, labels, n, 0, 0.0f, NULL);
}

float *fv_trainer_param_grad(struct fv_trainer *tr, int blob)
{
    return blob >= 0 && blob < tr->nb ? tr->workers[0].pgrad[blob] : NULL;
}

enum fv_status fv_trainer_step(struct fv_trainer *tr, const float *images, const int *labels,
                               int n, struct fv_train_stats *stats, struct fv_error *err)
{
    if (n < 1 || n > tr->batch)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "batch of %d (1 to %d)", n, tr->batch);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= tr->p.classes)
            return fv_error_set(err, FV_ERR_INVALID_ARG, "label %d of sample %d is not in [0, %d)",
                                labels[i], i, tr->p.classes);
    train_batch(tr, images, labels, n, 1, fv_lr_schedule_at(&tr->p.schedule, tr->steps), stats);
    /* The centres move by their own rule, from this batch's features (one
     * array for the whole batch, whichever worker computed them). */
    if (tr->center)
        fv_center_loss_update(tr->center, n, tr->act[tr->feature], labels);
    tr->steps++;
    return FV_OK;
}

enum fv_status fv_trainer_predict(struct fv_trainer *tr, const float *images, int n,
                                  float *features, int *predicted, struct fv_error *err)
{
    if (n < 1 || n > tr->batch)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "batch of %d (1 to %d)", n, tr->batch);
    tr->act[fv_graph_input(tr->g)] = (float *)images;
    tr->features = features;
    tr->predicted = predicted;
    pack_weights(tr);
    set_shards(tr, n);
    run_parallel(tr, JOB_PREDICT);
    return FV_OK;
}

struct fv_graph *fv_trainer_graph(struct fv_trainer *tr) { return tr->g; }
int fv_trainer_feature_dim(const struct fv_trainer *tr) { return tr->dim; }
int fv_trainer_classes(const struct fv_trainer *tr) { return tr->p.classes; }
long fv_trainer_steps(const struct fv_trainer *tr) { return tr->steps; }
struct fv_rng *fv_trainer_rng(struct fv_trainer *tr) { return &tr->rng; }
struct fv_center_loss *fv_trainer_center_loss(struct fv_trainer *tr) { return tr->center; }
enum fv_loss_kind fv_trainer_loss_kind(const struct fv_trainer *tr) { return tr->p.loss; }

const float *fv_trainer_class_weights(struct fv_trainer *tr)
{
    return fv_graph_blob(tr->g, fv_graph_node(tr->g, tr->head)->blobs[0])->data;
}
size_t fv_trainer_bytes(const struct fv_trainer *tr) { return tr->bytes; }

/* For LMCL, swaps unit-norm class weights into the classifier while saving:
 * returns the original data to restore, or NULL when nothing was swapped. */
static float *swap_in_unit_weights(struct fv_trainer *tr, float **unit)
{
    *unit = NULL;
    if (tr->p.loss != FV_LOSS_LMCL)
        return NULL;
    struct fv_blob *w = fv_graph_blob(tr->g, fv_graph_node(tr->g, tr->head)->blobs[0]);
    float *u = malloc(w->count * sizeof *u);
    if (!u)
        return NULL;
    for (int k = 0; k < tr->p.classes; k++) {
        const float *row = w->data + (size_t)k * tr->dim;
        double sq = 0.0;
        for (int d = 0; d < tr->dim; d++)
            sq += (double)row[d] * row[d];
        double norm = sqrt(sq) + 1e-12;
        for (int d = 0; d < tr->dim; d++)
            u[(size_t)k * tr->dim + d] = (float)(row[d] / norm);
    }
    float *orig = w->data;
    w->data = u;
    *unit = u;
    return orig;
}

static void swap_back(struct fv_trainer *tr, float *orig, float *unit)
{
    if (!orig)
        return;
    fv_graph_blob(tr->g, fv_graph_node(tr->g, tr->head)->blobs[0])->data = orig;
    free(unit);
}

enum fv_status fv_trainer_save_model(struct fv_trainer *tr, const char *path,
                                     struct fv_error *err)
{
    float *unit;
    float *orig = swap_in_unit_weights(tr, &unit);
    if (tr->p.loss == FV_LOSS_LMCL && !orig)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory saving '%s'", path);
    enum fv_status st = fv_model_file_save(tr->g, path, err);
    swap_back(tr, orig, unit);
    return st;
}

/* Checkpoint layout (little-endian hosts; native floats):
 *   "FVCKPT\0\0", u32 version 1, u32 loss kind, u64 steps, u64 rng[4],
 *   u64 model file size, the model file image (fv_model_file_write),
 *   u32 blob count, per blob: u64 count (0 when not trained), then count floats of momentum,
 *   u32 centre classes, u32 centre dim, classes × dim floats (0, 0 without center loss). */
#define FV_CKPT_MAGIC "FVCKPT\0\0"
#define FV_CKPT_VERSION 1u

static int write_all(FILE *f, const void *p, size_t bytes)
{
    return bytes == 0 || fwrite(p, 1, bytes, f) == bytes;
}
static int read_all(FILE *f, void *p, size_t bytes) { return fread(p, 1, bytes, f) == bytes; }

enum fv_status fv_trainer_save_checkpoint(struct fv_trainer *tr, const char *path,
                                          struct fv_error *err)
{
    uint8_t *image = NULL;
    size_t size = 0;
    enum fv_status st = fv_model_file_write(tr->g, &image, &size, err);
    if (st)
        return st;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(image);
        return fv_error_set(err, FV_ERR_INVALID_ARG, "checkpoint path too long");
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(image);
        return fv_error_set(err, FV_ERR_IO, "%s: cannot create", tmp);
    }
    uint32_t version = FV_CKPT_VERSION, loss = (uint32_t)tr->p.loss, nb = (uint32_t)tr->nb;
    uint64_t steps = (uint64_t)tr->steps, msize = size;
    int ok = write_all(f, FV_CKPT_MAGIC, 8) && write_all(f, &version, 4) && write_all(f, &loss, 4) &&
             write_all(f, &steps, 8) && write_all(f, tr->rng.s, sizeof tr->rng.s) &&
             write_all(f, &msize, 8) && write_all(f, image, size) && write_all(f, &nb, 4);
    for (int b = 0; ok && b < tr->nb; b++) {
        uint64_t count = tr->velocity[b] ? fv_graph_blob(tr->g, b)->count : 0;
        ok = write_all(f, &count, 8) && write_all(f, tr->velocity[b], count * sizeof(float));
    }
    uint32_t cc = tr->center ? (uint32_t)fv_center_loss_classes(tr->center) : 0;
    uint32_t cd = tr->center ? (uint32_t)fv_center_loss_dim(tr->center) : 0;
    ok = ok && write_all(f, &cc, 4) && write_all(f, &cd, 4);
    if (ok && tr->center)
        ok = write_all(f, fv_center_loss_centers(tr->center), (size_t)cc * cd * sizeof(float));
    free(image);
    if (fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return fv_error_set(err, FV_ERR_IO, "%s: cannot write checkpoint", path);
    }
    return FV_OK;
}

enum fv_status fv_trainer_load_checkpoint(struct fv_trainer *tr, const char *path,
                                          struct fv_error *err)
{
    enum fv_status st = FV_OK;
    uint8_t *image = NULL;
    struct fv_graph *saved = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fv_error_set(err, FV_ERR_IO, "%s: cannot open", path);
    char magic[8];
    uint32_t version, loss, nb, cc, cd;
    uint64_t steps, msize, rng[4];
    if (!read_all(f, magic, 8) || memcmp(magic, FV_CKPT_MAGIC, 8) || !read_all(f, &version, 4) ||
        version != FV_CKPT_VERSION || !read_all(f, &loss, 4) || !read_all(f, &steps, 8) ||
        !read_all(f, rng, sizeof rng) || !read_all(f, &msize, 8)) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s: not a facever checkpoint (version %u)", path,
                          FV_CKPT_VERSION);
        goto fail;
    }
    if (loss != (uint32_t)tr->p.loss || steps > (1ull << 48) || msize > (1ull << 34)) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s: checkpoint of another loss or corrupt", path);
        goto fail;
    }
    if (!(image = malloc(msize ? msize : 1)) || !read_all(f, image, msize)) {
        st = fv_error_set(err, image ? FV_ERR_FORMAT : FV_ERR_NOMEM, "%s: truncated model", path);
        goto fail;
    }
    if ((st = fv_model_file_read(image, msize, &saved, err)) != FV_OK) {
        fv_error_prefix(err, "%s: ", path);
        goto fail;
    }
    if (fv_graph_blob_count(saved) != tr->nb || !read_all(f, &nb, 4) || nb != (uint32_t)tr->nb) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s: checkpoint of a different network", path);
        goto fail;
    }
    for (int b = 0; b < tr->nb; b++) {
        const struct fv_blob *mine = fv_graph_blob(tr->g, b), *theirs = fv_graph_blob(saved, b);
        if (strcmp(mine->name, theirs->name) || mine->count != theirs->count) {
            st = fv_error_set(err, FV_ERR_FORMAT, "%s: blob %d is '%s' (%zu), expected '%s' (%zu)",
                              path, b, theirs->name, theirs->count, mine->name, mine->count);
            goto fail;
        }
    }
    /* The weights are committed only after everything else was read; a failure
     * past this point may leave momentum or centres partly overwritten, so a
     * caller discards the trainer then. */
    for (int b = 0; b < tr->nb; b++) {
        uint64_t count;
        uint64_t want = tr->velocity[b] ? fv_graph_blob(tr->g, b)->count : 0;
        if (!read_all(f, &count, 8) || count != want ||
            (count && !read_all(f, tr->velocity[b], count * sizeof(float)))) {
            st = fv_error_set(err, FV_ERR_FORMAT, "%s: momentum of blob %d is corrupt", path, b);
            goto fail;
        }
    }
    uint32_t want_c = tr->center ? (uint32_t)fv_center_loss_classes(tr->center) : 0;
    uint32_t want_d = tr->center ? (uint32_t)fv_center_loss_dim(tr->center) : 0;
    if (!read_all(f, &cc, 4) || !read_all(f, &cd, 4) || cc != want_c || cd != want_d ||
        (tr->center &&
         !read_all(f, fv_center_loss_centers(tr->center), (size_t)cc * cd * sizeof(float)))) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s: centres missing or of another size", path);
        goto fail;
    }
    for (int b = 0; b < tr->nb; b++)
        memcpy(fv_graph_blob(tr->g, b)->data, fv_graph_blob(saved, b)->data,
               fv_graph_blob(tr->g, b)->count * sizeof(float));
    tr->steps = (long)steps;
    memcpy(tr->rng.s, rng, sizeof rng);
fail:
    free(image);
    fv_graph_free(saved);
    fclose(f);
    return st;
}
