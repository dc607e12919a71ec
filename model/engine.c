/* engine.c - frozen models, memory planning and the forward pass. */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define FV_HAVE_MXCSR 1
#endif

#include "model/node.h"
#include "model/kernels.h"
#include "model/model_file.h"
#include "model/ops.h"
#include "model/winograd.h"

struct fv_model {
    struct fv_graph *graph;
    int *alias;      /* tensor -> tensor whose memory it shares (itself unless a reshape) */
    int *keep;       /* 1 for graph outputs: never overwritten during a run */
    char *fuse_prelu; /* node i is a conv/FC whose bias is added by the PReLU at i + 1 */
    char *fuse_add;   /* node i is a conv whose output is added straight into the ADD at i + 1 */
    float **packed;   /* per node: its weights in fv_gemm_pack's layout, or NULL */
    float **wino;     /* per node: its filter for fv_winograd_conv, or NULL */
    uint16_t **packed16; /* per node: bf16 weights for the bf16 GEMM (bf16 precision), or NULL */
    enum fv_precision precision;
    const struct fv_kernels *k; /* the CPU level's kernels, fixed at load */
};

struct fv_context {
    const struct fv_model *model;
    int max_batch, max_h, max_w;
    int batch;
    int (*shapes)[3];        /* per-sample shapes of the current run */
    size_t *offsets;         /* float offset of each tensor root in arena */
    float *arena;
    size_t arena_floats;
    float *scratch;
    size_t scratch_floats;
    const float *input;
    int ran;
};

static void free_packed(struct fv_model *m, const struct fv_graph *g)
{
    for (int i = 0; i < fv_graph_node_count(g); i++) {
        if (m->packed)
            free(m->packed[i]);
        if (m->wino)
            free(m->wino[i]);
        if (m->packed16)
            free(m->packed16[i]);
    }
    free(m->packed);
    free(m->wino);
    free(m->packed16);
    m->packed = m->wino = NULL;
    m->packed16 = NULL;
}

static float *alloc_floats(size_t floats)
{
    return aligned_alloc(64, ((floats + 15) & ~(size_t)15) * sizeof(float));
}

/* Every convolution and FC weight matrix in m->k's packed layout, and the
 * Winograd transforms of the 3×3 ones that can use them; replaces any packing
 * done before (for another level). */
static enum fv_status pack_weights(struct fv_model *m, struct fv_graph *graph,
                                   struct fv_error *err)
{
    const int nn = fv_graph_node_count(graph);
    free_packed(m, graph);
    if (!(m->packed = calloc((size_t)nn, sizeof *m->packed)) ||
        !(m->wino = calloc((size_t)nn, sizeof *m->wino)) ||
        !(m->packed16 = calloc((size_t)nn, sizeof *m->packed16)))
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory creating model");
    for (int i = 0; i < nn; i++) {
        const struct fv_node *n = fv_graph_node(graph, i);
        if (n->op != FV_OP_CONV2D && n->op != FV_OP_FULLY_CONNECTED)
            continue;
        const struct fv_blob *w = fv_graph_blob(graph, n->blobs[0]);
        int rows = w->shape[0], cols = rows > 0 ? (int)(w->count / (size_t)rows) : 0;
        size_t floats = fv_kernels_packed_floats(m->k, rows, cols);
        if (floats == 0)
            continue;
        if (!(m->packed[i] = alloc_floats(floats)))
            return fv_error_set(err, FV_ERR_NOMEM, "out of memory packing '%s'", n->name);
        m->k->pack(rows, cols, w->data, m->packed[i]);
        if (n->op == FV_OP_CONV2D && n->padding == FV_PADDING_VALID && w->rank == 4 &&
            fv_winograd_supported(n->kernel_h, n->kernel_w, n->stride_h, n->stride_w, 0, 0,
                                  w->shape[3])) {
            floats = fv_winograd_packed_floats(m->k, rows, w->shape[3]);
            if (!(m->wino[i] = alloc_floats(floats)) ||
                fv_winograd_pack(m->k, rows, w->shape[3], w->data, m->wino[i]))
                return fv_error_set(err, FV_ERR_NOMEM, "out of memory packing '%s'", n->name);
        }
    }
    return FV_OK;
}

enum fv_status fv_model_from_graph(struct fv_graph *graph, struct fv_model **out,
                                   struct fv_error *err)
{
    enum fv_status st;
    struct fv_model *m = NULL;
    *out = NULL;
    if (!graph)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "no graph");
    if ((st = fv_graph_validate(graph, err)) != FV_OK)
        goto fail;
    if ((st = fv_graph_fold_batch_norm(graph, err)) != FV_OK)
        goto fail;
    if ((st = fv_graph_validate(graph, err)) != FV_OK)
        goto fail;
    m = calloc(1, sizeof *m);
    int nt = fv_graph_tensor_count(graph);
    if (!m || !(m->alias = malloc((size_t)nt * sizeof *m->alias)) ||
        !(m->keep = calloc((size_t)nt, sizeof *m->keep))) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory creating model");
        goto fail;
    }
    for (int t = 0; t < nt; t++)
        m->alias[t] = t;
    for (int i = 0; i < fv_graph_node_count(graph); i++) {
        const struct fv_node *n = fv_graph_node(graph, i);
        /* A reshape shares its input's memory, except the caller's input buffer. */
        if (n->op == FV_OP_RESHAPE && n->inputs[0] != fv_graph_input(graph))
            m->alias[n->output] = m->alias[n->inputs[0]];
    }
    for (int i = 0; i < fv_graph_output_count(graph); i++)
        m->keep[m->alias[fv_graph_output(graph, i)]] = 1;
    int nn = fv_graph_node_count(graph);
    if (!(m->fuse_prelu = calloc((size_t)nn + 1, 1)) || !(m->fuse_add = calloc((size_t)nn + 1, 1))) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory creating model");
        goto fail;
    }
    for (int i = 0; i + 1 < nn; i++) {
        const struct fv_node *n = fv_graph_node(graph, i), *next = fv_graph_node(graph, i + 1);
        int readers = 0;
        for (int j = 0; j < nn; j++)
            for (int k = 0; k < fv_graph_node(graph, j)->n_inputs; k++)
                readers += fv_graph_node(graph, j)->inputs[k] == n->output;
        m->fuse_prelu[i] = (n->op == FV_OP_CONV2D || n->op == FV_OP_FULLY_CONNECTED ||
                            n->op == FV_OP_DEPTHWISE_CONV2D) &&
                           n->activation == FV_ACT_NONE &&
                           next->op == FV_OP_PRELU && next->inputs[0] == n->output &&
                           readers == 1 && !m->keep[m->alias[n->output]];
        /* A residual connection: add(conv(x), r) is computed as the convolution
         * with r added in its epilogue, saving a pass over memory. */
        m->fuse_add[i] = n->op == FV_OP_CONV2D && n->activation == FV_ACT_NONE &&
                         next->op == FV_OP_ADD && next->n_inputs == 2 &&
                         (next->inputs[0] == n->output) != (next->inputs[1] == n->output) &&
                         readers == 1 && !m->keep[m->alias[n->output]] &&
                         m->alias[next->output] != m->alias[n->inputs[0]];
    }
    enum fv_cpu_level level;
    if ((st = fv_cpu_active(&level, err)) != FV_OK)
        goto fail;
    m->k = fv_kernels_get(level);
    if ((st = pack_weights(m, graph, err)) != FV_OK)
        goto fail;
    m->graph = graph;
    *out = m;
    return FV_OK;
fail:
    if (m) {
        free_packed(m, graph);
        free(m->alias);
        free(m->keep);
        free(m->fuse_prelu);
        free(m->fuse_add);
        free(m);
    }
    fv_graph_free(graph);
    return st;
}

enum fv_status fv_model_load_memory(const uint8_t *data, size_t size, struct fv_model **out,
                                    struct fv_error *err)
{
    struct fv_graph *g = NULL;
    *out = NULL;
    enum fv_status st = fv_model_file_read(data, size, &g, err);
    if (st)
        return st;
    return fv_model_from_graph(g, out, err);
}

enum fv_status fv_model_load(const char *path, struct fv_model **out, struct fv_error *err)
{
    struct fv_graph *g = NULL;
    *out = NULL;
    enum fv_status st = fv_model_file_load(path, &g, err);
    if (st)
        return st;
    st = fv_model_from_graph(g, out, err);
    if (st)
        fv_error_prefix(err, "%s: ", path);
    return st;
}

void fv_model_free(struct fv_model *m)
{
    if (!m)
        return;
    free_packed(m, m->graph);
    fv_graph_free(m->graph);
    free(m->alias);
    free(m->keep);
    free(m->fuse_prelu);
    free(m->fuse_add);
    free(m);
}

const char *fv_precision_name(enum fv_precision p)
{
    return p == FV_PRECISION_BF16 ? "bf16" : "fp32";
}

/* The bf16 GEMM takes 1×1 stride-1 convolutions and fully connected layers:
 * plain matrix products, where nearly all of a mobile network's arithmetic is. */
static int bf16_candidate(const struct fv_node *n)
{
    return n->op == FV_OP_FULLY_CONNECTED ||
           (n->op == FV_OP_CONV2D && n->kernel_h == 1 && n->kernel_w == 1 && n->stride_h == 1 &&
            n->stride_w == 1);
}

enum fv_status fv_model_set_precision(struct fv_model *m, enum fv_precision p,
                                      struct fv_error *err)
{
    if (p != FV_PRECISION_FP32 && p != FV_PRECISION_BF16)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "unknown precision %d", (int)p);
    if (p == FV_PRECISION_BF16 && !m->k->gemm_bf16)
        return fv_error_set(err, FV_ERR_UNSUPPORTED,
                            "bf16 precision needs the avx512-bf16 CPU level (this model runs "
                            "at %s; the CPU supports: %s)",
                            m->k->name, fv_cpu_supported_names());
    struct fv_graph *g = m->graph;
    for (int i = 0; i < fv_graph_node_count(g); i++) {
        free(m->packed16[i]);
        m->packed16[i] = NULL;
    }
    m->precision = FV_PRECISION_FP32;
    if (p == FV_PRECISION_FP32)
        return FV_OK;
    for (int i = 0; i < fv_graph_node_count(g); i++) {
        const struct fv_node *n = fv_graph_node(g, i);
        if (!bf16_candidate(n))
            continue;
        const struct fv_blob *w = fv_graph_blob(g, n->blobs[0]);
        int rows = w->shape[0], cols = rows > 0 ? (int)(w->count / (size_t)rows) : 0;
        size_t count = fv_gemm_packed_bf16_count(rows, cols);
        if (count == 0)
            continue; /* odd or long rows stay in float */
        if (!(m->packed16[i] = aligned_alloc(64, ((count + 31) & ~(size_t)31) * sizeof(uint16_t)))) {
            fv_model_set_precision(m, FV_PRECISION_FP32, NULL);
            return fv_error_set(err, FV_ERR_NOMEM, "out of memory packing '%s'", n->name);
        }
        fv_gemm_pack_bf16(rows, cols, w->data, m->packed16[i]);
    }
    m->precision = p;
    return FV_OK;
}

enum fv_precision fv_model_precision(const struct fv_model *m) { return m->precision; }

enum fv_status fv_model_set_cpu_level(struct fv_model *m, enum fv_cpu_level level,
                                      struct fv_error *err)
{
    enum fv_status st;
    const struct fv_kernels *k = fv_kernels_get(level);
    if ((st = fv_cpu_check(level, err)) != FV_OK)
        return st;
    if (!k)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "this build has no %s kernels",
                            fv_cpu_level_name(level));
    if (k == m->k)
        return FV_OK;
    m->k = k;
    m->precision = FV_PRECISION_FP32;
    return pack_weights(m, m->graph, err);
}

enum fv_cpu_level fv_model_cpu_level(const struct fv_model *m) { return m->k->level; }

const struct fv_model_meta *fv_model_meta(const struct fv_model *m)
{
    return fv_graph_meta(m->graph);
}

struct fv_graph *fv_model_graph(const struct fv_model *m) { return m->graph; }

int fv_model_find_tensor(const struct fv_model *m, const char *name)
{
    return fv_graph_find_tensor(m->graph, name);
}

void fv_model_tensor_shape(const struct fv_model *m, int tensor, int shape[3])
{
    const struct fv_tensor_info *t = fv_graph_tensor(m->graph, tensor);
    shape[0] = t ? t->h : 0;
    shape[1] = t ? t->w : 0;
    shape[2] = t ? t->c : 0;
}

/* Shapes of every tensor for an input of h × w; FV_OK or the reason it cannot run. */
static enum fv_status infer_shapes(const struct fv_model *m, int h, int w, int (*shapes)[3],
                                   struct fv_error *err)
{
    struct fv_graph *g = m->graph;
    const struct fv_model_meta *meta = fv_graph_meta(g);
    int input = fv_graph_input(g);
    shapes[input][0] = h;
    shapes[input][1] = w;
    shapes[input][2] = meta->input_c;
    for (int i = 0; i < fv_graph_node_count(g); i++) {
        const struct fv_node *n = fv_graph_node(g, i);
        int in[FV_NODE_MAX_INPUTS][3];
        for (int k = 0; k < n->n_inputs; k++)
            memcpy(in[k], shapes[n->inputs[k]], sizeof in[k]);
        int *out = shapes[n->output];
        if (n->op == FV_OP_RESHAPE) {
            const struct fv_tensor_info *t = fv_graph_tensor(g, n->output);
            if ((long)t->h * t->w * t->c != (long)in[0][0] * in[0][1] * in[0][2])
                return fv_error_set(err, FV_ERR_INVALID_ARG,
                                    "model '%s' cannot run at %dx%d: reshape '%s' needs %d values",
                                    meta->name, h, w, n->name, t->h * t->w * t->c);
            out[0] = t->h, out[1] = t->w, out[2] = t->c;
            continue;
        }
        enum fv_status st =
            fv_node_output_shape(n, fv_graph_blob(g, 0) ? fv_graph_blob(g, 0) : NULL,
                                 (const int(*)[3])in, out, err);
        if (st)
            return fv_error_prefix(err, "model '%s' at %dx%d: ", meta->name, h, w);
    }
    return FV_OK;
}

static size_t tensor_floats(const int shape[3]) { return (size_t)shape[0] * shape[1] * shape[2]; }

double fv_model_flops(const struct fv_model *m, int h, int w)
{
    struct fv_graph *g = m->graph;
    const struct fv_model_meta *meta = fv_graph_meta(g);
    int nt = fv_graph_tensor_count(g);
    int(*shapes)[3] = calloc((size_t)nt, sizeof *shapes);
    double flops = 0.0;
    if (!shapes)
        return 0.0;
    if (infer_shapes(m, h ? h : meta->input_h, w ? w : meta->input_w, shapes, NULL) == FV_OK) {
        for (int i = 0; i < fv_graph_node_count(g); i++) {
            const struct fv_node *n = fv_graph_node(g, i);
            double out = (double)tensor_floats(shapes[n->output]);
            int cin = shapes[n->inputs[0]][2];
            if (n->op == FV_OP_CONV2D)
                flops += 2.0 * out * n->kernel_h * n->kernel_w * cin;
            else if (n->op == FV_OP_DEPTHWISE_CONV2D)
                flops += 2.0 * out * n->kernel_h * n->kernel_w;
            else if (n->op == FV_OP_FULLY_CONNECTED)
                flops += 2.0 * out * (double)tensor_floats(shapes[n->inputs[0]]);
        }
    }
    free(shapes);
    return flops;
}

/* Places every tensor of the arena so that tensors alive at the same time never
 * overlap: greedy first fit in production order over live intervals. */
static enum fv_status plan_memory(struct fv_context *ctx, struct fv_error *err)
{
    const struct fv_model *m = ctx->model;
    struct fv_graph *g = m->graph;
    int nt = fv_graph_tensor_count(g), nn = fv_graph_node_count(g);
    int *born = malloc((size_t)nt * sizeof *born), *dies = malloc((size_t)nt * sizeof *dies);
    size_t *size = calloc((size_t)nt, sizeof *size);
    int *placed = calloc((size_t)nt, sizeof *placed);
    int *order = malloc((size_t)nt * sizeof *order);
    enum fv_status st = FV_OK;
    if (!born || !dies || !size || !placed || !order) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory planning context");
        goto done;
    }
    for (int t = 0; t < nt; t++) {
        born[t] = nn + 1;
        dies[t] = -1;
    }
    for (int i = 0; i < nn; i++) {
        const struct fv_node *n = fv_graph_node(g, i);
        int r = m->alias[n->output];
        if (born[r] > i)
            born[r] = i;
        if (dies[r] < i)
            dies[r] = i;
        for (int k = 0; k < n->n_inputs; k++) {
            int in = m->alias[n->inputs[k]];
            if (dies[in] < i)
                dies[in] = i;
        }
        const size_t floats = (size_t)ctx->max_batch * tensor_floats(ctx->shapes[n->output]);
        if (size[r] < floats)
            size[r] = floats;
    }
    for (int t = 0; t < nt; t++)
        if (m->keep[t])
            dies[t] = nn;
    /* A node fused with the ADD or PReLU after it reads its input while that
     * node's output is being written: keep the input alive through it. */
    for (int i = 0; i + 1 < nn; i++) {
        int in = m->alias[fv_graph_node(g, i)->inputs[0]];
        if ((m->fuse_add[i] || m->fuse_prelu[i]) && dies[in] < i + 1)
            dies[in] = i + 1;
    }
    int count = 0;
    for (int i = 0; i < nn; i++) {
        int r = m->alias[fv_graph_node(g, i)->output];
        if (!placed[r] && r != m->alias[fv_graph_input(g)]) {
            placed[r] = 1;
            order[count++] = r;
        }
    }
    size_t total = 0;
    for (int a = 0; a < count; a++) {
        int t = order[a];
        size_t need = (size[t] + 15) & ~(size_t)15;
        size_t offset = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int b = 0; b < a; b++) {
                int u = order[b];
                size_t usize = (size[u] + 15) & ~(size_t)15;
                if (born[u] > dies[t] || born[t] > dies[u])
                    continue; /* never alive together */
                if (offset < ctx->offsets[u] + usize && ctx->offsets[u] < offset + need) {
                    offset = ctx->offsets[u] + usize;
                    moved = 1;
                }
            }
        }
        ctx->offsets[t] = offset;
        if (total < offset + need)
            total = offset + need;
    }
    ctx->arena_floats = total;
done:
    free(born);
    free(dies);
    free(size);
    free(placed);
    free(order);
    return st;
}

enum fv_status fv_context_new(const struct fv_model *m, int max_batch, int max_h, int max_w,
                              struct fv_context **out, struct fv_error *err)
{
    enum fv_status st;
    struct fv_graph *g = m->graph;
    const struct fv_model_meta *meta = fv_graph_meta(g);
    int nt = fv_graph_tensor_count(g);
    *out = NULL;
    if (max_h == 0)
        max_h = meta->input_h;
    if (max_w == 0)
        max_w = meta->input_w;
    if (max_batch < 1 || max_batch > 65536 || max_h < 1 || max_w < 1 || max_h > 16384 ||
        max_w > 16384)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "context size %d x %dx%d is out of range",
                            max_batch, max_h, max_w);
    struct fv_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory creating context");
    ctx->model = m;
    ctx->max_batch = max_batch;
    ctx->max_h = max_h;
    ctx->max_w = max_w;
    ctx->shapes = calloc((size_t)nt, sizeof *ctx->shapes);
    ctx->offsets = calloc((size_t)nt, sizeof *ctx->offsets);
    if (!ctx->shapes || !ctx->offsets) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory creating context");
        goto fail;
    }
    if ((st = infer_shapes(m, max_h, max_w, ctx->shapes, err)) != FV_OK)
        goto fail;
    if ((st = plan_memory(ctx, err)) != FV_OK)
        goto fail;
    for (int i = 0; i < fv_graph_node_count(g); i++) {
        const struct fv_node *n = fv_graph_node(g, i);
        size_t need = fv_forward_scratch(n, max_batch, ctx->shapes[n->inputs[0]],
                                         ctx->shapes[n->output][2]);
        if (need > ctx->scratch_floats)
            ctx->scratch_floats = need;
    }
    if ((uint64_t)(ctx->arena_floats + ctx->scratch_floats) * sizeof(float) > ((uint64_t)16 << 30)) {
        st = fv_error_set(err, FV_ERR_TOO_LARGE, "context for %d x %dx%d would need %.1f GiB",
                          max_batch, max_h, max_w,
                          (double)(ctx->arena_floats + ctx->scratch_floats) * 4 / (1 << 30));
        goto fail;
    }
    /* aligned_alloc wants a multiple of the alignment: round up to 16 floats. */
    ctx->arena = aligned_alloc(64, ((ctx->arena_floats + 31) & ~(size_t)15) * sizeof(float));
    ctx->scratch = aligned_alloc(64, ((ctx->scratch_floats + 31) & ~(size_t)15) * sizeof(float));
    if (!ctx->arena || !ctx->scratch) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory allocating %.1f MiB of activations",
                          (double)(ctx->arena_floats + ctx->scratch_floats) * 4 / (1 << 20));
        goto fail;
    }
    *out = ctx;
    return FV_OK;
fail:
    fv_context_free(ctx);
    return st;
}

void fv_context_free(struct fv_context *ctx)
{
    if (!ctx)
        return;
    free(ctx->shapes);
    free(ctx->offsets);
    free(ctx->arena);
    free(ctx->scratch);
    free(ctx);
}

size_t fv_context_bytes(const struct fv_context *ctx)
{
    return (ctx->arena_floats + ctx->scratch_floats) * sizeof(float);
}

static const float *tensor_data(const struct fv_context *ctx, int t)
{
    int r = ctx->model->alias[t];
    if (r == ctx->model->alias[fv_graph_input(ctx->model->graph)])
        return ctx->input;
    return ctx->arena + ctx->offsets[r];
}

static float *tensor_out(struct fv_context *ctx, int t)
{
    return ctx->arena + ctx->offsets[ctx->model->alias[t]];
}

static const float *blob_data(struct fv_graph *g, int b)
{
    return b >= 0 ? fv_graph_blob(g, b)->data : NULL;
}

enum fv_status fv_context_run(struct fv_context *ctx, const float *input, int batch, int h, int w,
                              struct fv_error *err)
{
    const struct fv_model *m = ctx->model;
    struct fv_graph *g = m->graph;
    ctx->ran = 0;
    if (batch < 1 || batch > ctx->max_batch || h < 1 || w < 1 || h > ctx->max_h ||
        w > ctx->max_w)
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "input %d x %dx%d does not fit the context (%d x %dx%d)", batch, h,
                            w, ctx->max_batch, ctx->max_h, ctx->max_w);
    enum fv_status st = infer_shapes(m, h, w, ctx->shapes, err);
    if (st)
        return st;
    ctx->input = input;
    ctx->batch = batch;
#ifdef FV_HAVE_MXCSR
    /* Flush denormals to zero for the run: tiny activations times PReLU slopes
     * otherwise fall into microcode assists that cost 10-100x per operation. */
    unsigned int saved_mxcsr = _mm_getcsr();
    _mm_setcsr(saved_mxcsr | 0x8040);
#endif
    for (int i = 0; i < fv_graph_node_count(g); i++) {
        const struct fv_node *n = fv_graph_node(g, i);
        if (n->op >= FV_OP_COUNT) {
#ifdef FV_HAVE_MXCSR
            _mm_setcsr(saved_mxcsr);
#endif
            return fv_error_set(err, FV_ERR_INTERNAL, "bad op in node '%s'", n->name);
        }
        struct fv_forward_args a = {
            .kernels = m->k, .graph = g, .node = n, .batch = batch,
            .in = ctx->shapes[n->inputs[0]], .out = ctx->shapes[n->output],
            .x = tensor_data(ctx, n->inputs[0]),
            .x2 = n->n_inputs == 2 ? tensor_data(ctx, n->inputs[1]) : NULL,
            .y = tensor_out(ctx, n->output), .packed = m->packed[i], .winograd = m->wino[i],
            .packed16 = m->packed16[i], .scratch = ctx->scratch,
        };
        struct fv_gemm_epilogue fused = {.bias = blob_data(g, n->blobs[1])};
        if (m->fuse_add[i]) {
            /* conv(x) + r in one pass: r enters the GEMM's epilogue. */
            const struct fv_node *add = fv_graph_node(g, i + 1);
            int other = add->inputs[0] == n->output ? add->inputs[1] : add->inputs[0];
            fused.residual = tensor_data(ctx, other);
            fused.act = add->activation;
            a.epilogue = &fused;
            a.y = tensor_out(ctx, add->output);
            i++;
        } else if (m->fuse_prelu[i]) {
            /* conv/FC/depthwise with the PReLU after it applied as the output is
             * written, into the PReLU's output; the PReLU node is consumed here. */
            const struct fv_node *pr = fv_graph_node(g, i + 1);
            fused.slopes = blob_data(g, pr->blobs[0]);
            fused.n_slopes = (int)fv_graph_blob(g, pr->blobs[0])->count;
            a.epilogue = &fused;
            a.y = tensor_out(ctx, pr->output);
            i++;
        }
        fv_forward_node(&a);
    }
#ifdef FV_HAVE_MXCSR
    _mm_setcsr(saved_mxcsr);
#endif
    ctx->ran = 1;
    return FV_OK;
}

const float *fv_context_tensor(const struct fv_context *ctx, int tensor, int shape[4])
{
    struct fv_graph *g = ctx->model->graph;
    if (!ctx->ran || tensor < 0 || tensor >= fv_graph_tensor_count(g))
        return NULL;
    if (shape) {
        shape[0] = ctx->batch;
        memcpy(shape + 1, ctx->shapes[tensor], 3 * sizeof *shape);
    }
    return tensor_data(ctx, tensor);
}
