/* graph.c - building, checking and simplifying network graphs. */
#include "model/graph.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct fv_graph {
    struct fv_model_meta meta;
    struct fv_tensor_info *tensors;
    int n_tensors, cap_tensors;
    struct fv_blob *blobs;
    int n_blobs, cap_blobs;
    struct fv_node *nodes;
    int n_nodes, cap_nodes;
    int input;
    int outputs[FV_GRAPH_MAX_OUTPUTS];
    int n_outputs;
};

static const char *const op_names[] = {
    [FV_OP_CONV2D] = "conv2d",
    [FV_OP_DEPTHWISE_CONV2D] = "depthwise_conv2d",
    [FV_OP_FULLY_CONNECTED] = "fully_connected",
    [FV_OP_MAX_POOL2D] = "max_pool2d",
    [FV_OP_PRELU] = "prelu",
    [FV_OP_RELU] = "relu",
    [FV_OP_ADD] = "add",
    [FV_OP_MUL] = "mul",
    [FV_OP_SOFTMAX] = "softmax",
    [FV_OP_L2_NORM] = "l2_norm",
    [FV_OP_RESHAPE] = "reshape",
    [FV_OP_BATCH_NORM] = "batch_norm",
};
static_assert(sizeof op_names / sizeof op_names[0] == FV_OP_COUNT, "op name table");

static const char *const padding_names[] = {[FV_PADDING_VALID] = "valid", [FV_PADDING_SAME] = "same"};
static_assert(sizeof padding_names / sizeof padding_names[0] == FV_PADDING_COUNT, "padding table");

static const char *const activation_names[] = {
    [FV_ACT_NONE] = "none", [FV_ACT_RELU] = "relu", [FV_ACT_RELU6] = "relu6"};
static_assert(sizeof activation_names / sizeof activation_names[0] == FV_ACT_COUNT,
              "activation table");

const char *fv_op_name(enum fv_op op)
{
    return (unsigned)op < FV_OP_COUNT ? op_names[op] : "unknown";
}
const char *fv_padding_name(enum fv_padding p)
{
    return (unsigned)p < FV_PADDING_COUNT ? padding_names[p] : "unknown";
}
const char *fv_activation_name(enum fv_activation a)
{
    return (unsigned)a < FV_ACT_COUNT ? activation_names[a] : "unknown";
}

static int lookup(const char *const *table, int n, const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(table[i], name) == 0)
            return i;
    return -1;
}
int fv_op_from_name(const char *name) { return lookup(op_names, FV_OP_COUNT, name); }
int fv_padding_from_name(const char *name) { return lookup(padding_names, FV_PADDING_COUNT, name); }
int fv_activation_from_name(const char *name)
{
    return lookup(activation_names, FV_ACT_COUNT, name);
}

struct fv_node fv_node_init(enum fv_op op, const char *name)
{
    struct fv_node n;
    memset(&n, 0, sizeof n);
    n.op = op;
    if (name)
        snprintf(n.name, sizeof n.name, "%s", name);
    n.output = -1;
    for (int i = 0; i < FV_NODE_MAX_INPUTS; i++)
        n.inputs[i] = -1;
    for (int i = 0; i < FV_NODE_MAX_BLOBS; i++)
        n.blobs[i] = -1;
    n.kernel_h = n.kernel_w = 1;
    n.stride_h = n.stride_w = 1;
    n.padding = FV_PADDING_VALID;
    n.activation = FV_ACT_NONE;
    n.epsilon = 0.0f;
    return n;
}

struct fv_graph *fv_graph_new(void)
{
    struct fv_graph *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->input = -1;
    g->meta.pixel_mean = 127.5f;
    g->meta.pixel_scale = 1.0f / 128.0f;
    g->meta.threshold = NAN;
    return g;
}

void fv_graph_free(struct fv_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_blobs; i++)
        free(g->blobs[i].data);
    free(g->blobs);
    free(g->tensors);
    free(g->nodes);
    free(g);
}

static int grow(void **array, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*array, (size_t)ncap * elem);
    if (!p)
        return -1;
    *array = p;
    *cap = ncap;
    return 0;
}

/* Largest per-sample element count of any tensor or blob we accept. */
#define FV_MAX_ELEMENTS (1u << 28)

int fv_graph_add_tensor(struct fv_graph *g, const char *name, int h, int w, int c)
{
    if (!name || strlen(name) >= FV_NAME_MAX || h < 0 || w < 0 || c < 0)
        return FV_ERR_INVALID_ARG;
    if ((uint64_t)h * w * c > FV_MAX_ELEMENTS)
        return FV_ERR_TOO_LARGE;
    if (fv_graph_find_tensor(g, name) >= 0)
        return FV_ERR_INVALID_ARG;
    if (grow((void **)&g->tensors, &g->cap_tensors, g->n_tensors + 1, sizeof *g->tensors))
        return FV_ERR_NOMEM;
    struct fv_tensor_info *t = &g->tensors[g->n_tensors];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->h = h;
    t->w = w;
    t->c = c;
    return g->n_tensors++;
}

int fv_graph_add_blob(struct fv_graph *g, const char *name, const int *shape, int rank,
                      const float *data)
{
    if (!name || strlen(name) >= FV_NAME_MAX || rank < 1 || rank > 4)
        return FV_ERR_INVALID_ARG;
    uint64_t count = 1;
    for (int i = 0; i < rank; i++) {
        if (shape[i] <= 0)
            return FV_ERR_INVALID_ARG;
        count *= (uint64_t)shape[i];
        if (count > FV_MAX_ELEMENTS)
            return FV_ERR_TOO_LARGE;
    }
    if (grow((void **)&g->blobs, &g->cap_blobs, g->n_blobs + 1, sizeof *g->blobs))
        return FV_ERR_NOMEM;
    float *copy = malloc(count * sizeof *copy);
    if (!copy)
        return FV_ERR_NOMEM;
    if (data)
        memcpy(copy, data, count * sizeof *copy);
    else
        memset(copy, 0, count * sizeof *copy);
    struct fv_blob *b = &g->blobs[g->n_blobs];
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->rank = rank;
    for (int i = 0; i < rank; i++)
        b->shape[i] = shape[i];
    b->count = (size_t)count;
    b->data = copy;
    return g->n_blobs++;
}

int fv_graph_add_node(struct fv_graph *g, const struct fv_node *node, struct fv_error *err)
{
    if ((unsigned)node->op >= FV_OP_COUNT)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "node '%s': unknown op %d", node->name,
                            (int)node->op);
    if (node->n_inputs < 1 || node->n_inputs > FV_NODE_MAX_INPUTS)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "node '%s': %d inputs", node->name,
                            node->n_inputs);
    for (int i = 0; i < node->n_inputs; i++)
        if (node->inputs[i] < 0 || node->inputs[i] >= g->n_tensors)
            return fv_error_set(err, FV_ERR_INVALID_ARG, "node '%s': input %d refers to tensor %d",
                                node->name, i, node->inputs[i]);
    if (node->output < 0 || node->output >= g->n_tensors)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "node '%s': output refers to tensor %d",
                            node->name, node->output);
    for (int i = 0; i < FV_NODE_MAX_BLOBS; i++)
        if (node->blobs[i] < -1 || node->blobs[i] >= g->n_blobs)
            return fv_error_set(err, FV_ERR_INVALID_ARG, "node '%s': blob %d refers to blob %d",
                                node->name, i, node->blobs[i]);
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes))
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory adding node '%s'", node->name);
    g->nodes[g->n_nodes] = *node;
    return g->n_nodes++;
}

void fv_graph_set_input(struct fv_graph *g, int tensor) { g->input = tensor; }

enum fv_status fv_graph_add_output(struct fv_graph *g, int tensor)
{
    if (tensor < 0 || tensor >= g->n_tensors || g->n_outputs >= FV_GRAPH_MAX_OUTPUTS)
        return FV_ERR_INVALID_ARG;
    g->outputs[g->n_outputs++] = tensor;
    return FV_OK;
}

struct fv_model_meta *fv_graph_meta(struct fv_graph *g) { return &g->meta; }
int fv_graph_tensor_count(const struct fv_graph *g) { return g->n_tensors; }
int fv_graph_node_count(const struct fv_graph *g) { return g->n_nodes; }
int fv_graph_blob_count(const struct fv_graph *g) { return g->n_blobs; }
struct fv_tensor_info *fv_graph_tensor(struct fv_graph *g, int i)
{
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}
struct fv_node *fv_graph_node(struct fv_graph *g, int i)
{
    return i >= 0 && i < g->n_nodes ? &g->nodes[i] : NULL;
}
struct fv_blob *fv_graph_blob(struct fv_graph *g, int i)
{
    return i >= 0 && i < g->n_blobs ? &g->blobs[i] : NULL;
}
int fv_graph_input(const struct fv_graph *g) { return g->input; }
int fv_graph_output_count(const struct fv_graph *g) { return g->n_outputs; }
int fv_graph_output(const struct fv_graph *g, int i)
{
    return i >= 0 && i < g->n_outputs ? g->outputs[i] : -1;
}

int fv_graph_find_tensor(const struct fv_graph *g, const char *name)
{
    for (int i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0)
            return i;
    return -1;
}

/* TensorFlow's output size: VALID ceil((in - k + 1) / s), SAME ceil(in / s). */
static int conv_out_size(int in, int k, int s, enum fv_padding p)
{
    if (p == FV_PADDING_SAME)
        return (in + s - 1) / s;
    return in >= k ? (in - k) / s + 1 : 0;
}

static int blob_is(const struct fv_blob *b, int rank, int d0, int d1, int d2, int d3)
{
    const int d[4] = {d0, d1, d2, d3};
    if (b->rank != rank)
        return 0;
    for (int i = 0; i < rank; i++)
        if (d[i] >= 0 && b->shape[i] != d[i])
            return 0;
    return 1;
}

static enum fv_status check_bias(const struct fv_node *n, const struct fv_blob *blobs, int channels,
                                 struct fv_error *err)
{
    if (n->blobs[1] < 0)
        return FV_OK;
    const struct fv_blob *b = &blobs[n->blobs[1]];
    if (b->count != (size_t)channels)
        return fv_error_set(err, FV_ERR_FORMAT, "node '%s': bias '%s' has %zu values, expected %d",
                            n->name, b->name, b->count, channels);
    return FV_OK;
}

enum fv_status fv_node_output_shape(const struct fv_node *n, const struct fv_blob *blobs,
                                    const int in[][3], int out[3], struct fv_error *err)
{
    const int h = in[0][0], w = in[0][1], c = in[0][2];
    const struct fv_blob *b0 = n->blobs[0] >= 0 ? &blobs[n->blobs[0]] : NULL;
    if (h <= 0 || w <= 0 || c <= 0)
        return fv_error_set(err, FV_ERR_FORMAT, "node '%s': input has shape %dx%dx%d", n->name,
                            h, w, c);
    if (n->stride_h < 1 || n->stride_w < 1 || n->kernel_h < 1 || n->kernel_w < 1 ||
        n->stride_h > 64 || n->stride_w > 64 || n->kernel_h > 64 || n->kernel_w > 64)
        return fv_error_set(err, FV_ERR_FORMAT, "node '%s': kernel %dx%d stride %dx%d out of range",
                            n->name, n->kernel_h, n->kernel_w, n->stride_h, n->stride_w);
    if ((unsigned)n->padding >= FV_PADDING_COUNT || (unsigned)n->activation >= FV_ACT_COUNT)
        return fv_error_set(err, FV_ERR_FORMAT, "node '%s': bad padding or activation", n->name);
    switch (n->op) {
    case FV_OP_CONV2D:
        if (!b0 || !blob_is(b0, 4, -1, n->kernel_h, n->kernel_w, c))
            return fv_error_set(err, FV_ERR_FORMAT,
                                "node '%s': conv2d filter must be Ox%dx%dx%d", n->name,
                                n->kernel_h, n->kernel_w, c);
        out[0] = conv_out_size(h, n->kernel_h, n->stride_h, n->padding);
        out[1] = conv_out_size(w, n->kernel_w, n->stride_w, n->padding);
        out[2] = b0->shape[0];
        if (check_bias(n, blobs, out[2], err))
            return err ? err->status : FV_ERR_FORMAT;
        break;
    case FV_OP_DEPTHWISE_CONV2D:
        if (!b0 || !blob_is(b0, 3, n->kernel_h, n->kernel_w, c, 0))
            return fv_error_set(err, FV_ERR_FORMAT,
                                "node '%s': depthwise filter must be %dx%dx%d", n->name,
                                n->kernel_h, n->kernel_w, c);
        out[0] = conv_out_size(h, n->kernel_h, n->stride_h, n->padding);
        out[1] = conv_out_size(w, n->kernel_w, n->stride_w, n->padding);
        out[2] = c;
        if (check_bias(n, blobs, c, err))
            return err ? err->status : FV_ERR_FORMAT;
        break;
    case FV_OP_FULLY_CONNECTED:
        if (!b0 || !blob_is(b0, 2, -1, h * w * c, 0, 0))
            return fv_error_set(err, FV_ERR_FORMAT,
                                "node '%s': fully connected weights must be Ox%d", n->name,
                                h * w * c);
        out[0] = out[1] = 1;
        out[2] = b0->shape[0];
        if (check_bias(n, blobs, out[2], err))
            return err ? err->status : FV_ERR_FORMAT;
        break;
    case FV_OP_MAX_POOL2D:
        out[0] = conv_out_size(h, n->kernel_h, n->stride_h, n->padding);
        out[1] = conv_out_size(w, n->kernel_w, n->stride_w, n->padding);
        out[2] = c;
        break;
    case FV_OP_PRELU:
        if (!b0 || (b0->count != (size_t)c && b0->count != 1))
            return fv_error_set(err, FV_ERR_FORMAT, "node '%s': prelu needs %d slopes", n->name, c);
        out[0] = h, out[1] = w, out[2] = c;
        break;
    case FV_OP_ADD:
    case FV_OP_MUL:
        if (n->n_inputs == 2) {
            if (in[1][0] != h || in[1][1] != w || in[1][2] != c)
                return fv_error_set(err, FV_ERR_FORMAT,
                                    "node '%s': operands %dx%dx%d and %dx%dx%d differ", n->name,
                                    h, w, c, in[1][0], in[1][1], in[1][2]);
        } else if (!b0 || (b0->count != (size_t)c && b0->count != 1)) {
            return fv_error_set(err, FV_ERR_FORMAT, "node '%s': constant operand needs %d values",
                                n->name, c);
        }
        out[0] = h, out[1] = w, out[2] = c;
        break;
    case FV_OP_BATCH_NORM:
        for (int i = 0; i < 4; i++)
            if (n->blobs[i] < 0 || blobs[n->blobs[i]].count != (size_t)c)
                return fv_error_set(err, FV_ERR_FORMAT,
                                    "node '%s': batch norm needs 4 blobs of %d values", n->name, c);
        out[0] = h, out[1] = w, out[2] = c;
        break;
    case FV_OP_RELU:
    case FV_OP_SOFTMAX:
    case FV_OP_L2_NORM:
        out[0] = h, out[1] = w, out[2] = c;
        break;
    case FV_OP_RESHAPE:
        /* The declared output shape is kept; the caller checks the count. */
        out[0] = out[1] = out[2] = 0;
        break;
    case FV_OP_COUNT:
        return fv_error_set(err, FV_ERR_FORMAT, "node '%s': bad op", n->name);
    }
    if (n->op != FV_OP_RESHAPE && (out[0] <= 0 || out[1] <= 0))
        return fv_error_set(err, FV_ERR_FORMAT,
                            "node '%s': input %dx%d is smaller than the %dx%d kernel", n->name, h,
                            w, n->kernel_h, n->kernel_w);
    return FV_OK;
}

enum fv_status fv_graph_validate(struct fv_graph *g, struct fv_error *err)
{
    enum fv_status st = FV_OK;
    char *produced = NULL;
    if (g->input < 0 || g->input >= g->n_tensors)
        return fv_error_set(err, FV_ERR_FORMAT, "graph has no input tensor");
    if (g->n_outputs < 1)
        return fv_error_set(err, FV_ERR_FORMAT, "graph has no outputs");
    struct fv_tensor_info *input = &g->tensors[g->input];
    if (g->meta.input_h <= 0 || g->meta.input_w <= 0 || g->meta.input_c <= 0) {
        g->meta.input_h = input->h;
        g->meta.input_w = input->w;
        g->meta.input_c = input->c;
    }
    if (g->meta.input_h <= 0 || g->meta.input_w <= 0 || g->meta.input_c <= 0 ||
        g->meta.input_h > 16384 || g->meta.input_w > 16384 || g->meta.input_c > 64)
        return fv_error_set(err, FV_ERR_FORMAT, "input size %dx%dx%d is out of range",
                            g->meta.input_h, g->meta.input_w, g->meta.input_c);
    input->h = g->meta.input_h;
    input->w = g->meta.input_w;
    input->c = g->meta.input_c;

    produced = calloc((size_t)g->n_tensors, 1);
    if (!produced)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory validating graph");
    produced[g->input] = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        struct fv_node *n = &g->nodes[i];
        int in[FV_NODE_MAX_INPUTS][3] = {{0}};
        int out[3];
        if ((unsigned)n->op >= FV_OP_COUNT || n->n_inputs < 1 ||
            n->n_inputs > FV_NODE_MAX_INPUTS || n->output < 0 || n->output >= g->n_tensors) {
            st = fv_error_set(err, FV_ERR_FORMAT, "node %d ('%s') is malformed", i, n->name);
            goto fail;
        }
        int want_inputs = (n->op == FV_OP_ADD || n->op == FV_OP_MUL) && n->blobs[0] < 0 ? 2 : 1;
        if (n->n_inputs != want_inputs) {
            st = fv_error_set(err, FV_ERR_FORMAT, "node '%s' (%s) has %d inputs, expected %d",
                              n->name, fv_op_name(n->op), n->n_inputs, want_inputs);
            goto fail;
        }
        for (int k = 0; k < FV_NODE_MAX_BLOBS; k++)
            if (n->blobs[k] < -1 || n->blobs[k] >= g->n_blobs) {
                st = fv_error_set(err, FV_ERR_FORMAT, "node '%s' refers to missing blob %d",
                                  n->name, n->blobs[k]);
                goto fail;
            }
        for (int k = 0; k < n->n_inputs; k++) {
            int t = n->inputs[k];
            if (t < 0 || t >= g->n_tensors || !produced[t]) {
                st = fv_error_set(err, FV_ERR_FORMAT,
                                  "node '%s' reads tensor %d before it is computed", n->name, t);
                goto fail;
            }
            in[k][0] = g->tensors[t].h;
            in[k][1] = g->tensors[t].w;
            in[k][2] = g->tensors[t].c;
        }
        if (produced[n->output]) {
            st = fv_error_set(err, FV_ERR_FORMAT, "tensor '%s' is written twice",
                              g->tensors[n->output].name);
            goto fail;
        }
        st = fv_node_output_shape(n, g->blobs, (const int(*)[3])in, out, err);
        if (st)
            goto fail;
        struct fv_tensor_info *t = &g->tensors[n->output];
        if (n->op == FV_OP_RESHAPE) {
            if ((uint64_t)t->h * t->w * t->c != (uint64_t)in[0][0] * in[0][1] * in[0][2]) {
                st = fv_error_set(err, FV_ERR_FORMAT,
                                  "reshape '%s': %dx%dx%d does not hold the %d values of its input",
                                  n->name, t->h, t->w, t->c, in[0][0] * in[0][1] * in[0][2]);
                goto fail;
            }
        } else if (t->h == 0 && t->w == 0 && t->c == 0) {
            t->h = out[0], t->w = out[1], t->c = out[2];
        } else if (t->h != out[0] || t->w != out[1] || t->c != out[2]) {
            st = fv_error_set(err, FV_ERR_FORMAT,
                              "tensor '%s' is declared %dx%dx%d but node '%s' computes %dx%dx%d",
                              t->name, t->h, t->w, t->c, n->name, out[0], out[1], out[2]);
            goto fail;
        }
        if ((uint64_t)t->h * t->w * t->c > FV_MAX_ELEMENTS) {
            st = fv_error_set(err, FV_ERR_TOO_LARGE, "tensor '%s' is too large", t->name);
            goto fail;
        }
        produced[n->output] = 1;
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (!produced[g->outputs[i]]) {
            st = fv_error_set(err, FV_ERR_FORMAT, "output '%s' is never computed",
                              g->tensors[g->outputs[i]].name);
            goto fail;
        }
    if (g->meta.embedding[0] && fv_graph_find_tensor(g, g->meta.embedding) < 0) {
        st = fv_error_set(err, FV_ERR_FORMAT, "embedding tensor '%s' does not exist",
                          g->meta.embedding);
        goto fail;
    }
fail:
    free(produced);
    return st;
}

/* Number of nodes reading tensor t, plus one if t is a graph output. */
static int reader_count(const struct fv_graph *g, int t)
{
    int count = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            count += g->nodes[i].inputs[k] == t;
    for (int i = 0; i < g->n_outputs; i++)
        count += g->outputs[i] == t;
    return count;
}

enum fv_status fv_graph_fold_batch_norm(struct fv_graph *g, struct fv_error *err)
{
    for (int i = 1; i < g->n_nodes; i++) {
        struct fv_node *bn = &g->nodes[i];
        if (bn->op != FV_OP_BATCH_NORM)
            continue;
        int producer = -1;
        for (int k = 0; k < i; k++)
            if (g->nodes[k].output == bn->inputs[0])
                producer = k;
        if (producer < 0)
            continue;
        struct fv_node *conv = &g->nodes[producer];
        if ((conv->op != FV_OP_CONV2D && conv->op != FV_OP_DEPTHWISE_CONV2D) ||
            conv->activation != FV_ACT_NONE || reader_count(g, conv->output) != 1)
            continue;
        struct fv_blob *filter = &g->blobs[conv->blobs[0]];
        int channels = conv->op == FV_OP_CONV2D ? filter->shape[0] : filter->shape[2];
        if (conv->blobs[1] < 0) {
            char name[FV_NAME_MAX];
            snprintf(name, sizeof name, "%.80s/bias", conv->name);
            int b = fv_graph_add_blob(g, name, (int[]){channels}, 1, NULL);
            if (b < 0)
                return fv_error_set(err, (enum fv_status)b, "cannot add bias for '%s'", conv->name);
            /* the blob array may have moved */
            conv = &g->nodes[producer];
            bn = &g->nodes[i];
            filter = &g->blobs[conv->blobs[0]];
            conv->blobs[1] = b;
        }
        const float *gamma = g->blobs[bn->blobs[0]].data, *beta = g->blobs[bn->blobs[1]].data;
        const float *mean = g->blobs[bn->blobs[2]].data, *var = g->blobs[bn->blobs[3]].data;
        float *bias = g->blobs[conv->blobs[1]].data;
        size_t per_out = filter->count / (size_t)channels;
        for (int o = 0; o < channels; o++) {
            float scale = gamma[o] / sqrtf(var[o] + bn->epsilon);
            if (conv->op == FV_OP_CONV2D) {
                for (size_t k = 0; k < per_out; k++)
                    filter->data[(size_t)o * per_out + k] *= scale;
            } else {
                for (size_t k = 0; k < per_out; k++)
                    filter->data[k * (size_t)channels + o] *= scale;
            }
            bias[o] = (bias[o] - mean[o]) * scale + beta[o];
        }
        conv->output = bn->output;
        memmove(bn, bn + 1, (size_t)(g->n_nodes - i - 1) * sizeof *bn);
        g->n_nodes--;
        i--;
    }
    return fv_graph_compact(g, err);
}

enum fv_status fv_graph_compact(struct fv_graph *g, struct fv_error *err)
{
    int *tmap = malloc(((size_t)g->n_tensors + 1) * sizeof *tmap);
    int *bmap = malloc(((size_t)g->n_blobs + 1) * sizeof *bmap);
    if (!tmap || !bmap) {
        free(tmap);
        free(bmap);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory compacting graph");
    }
    for (int i = 0; i < g->n_tensors; i++)
        tmap[i] = 0;
    for (int i = 0; i < g->n_blobs; i++)
        bmap[i] = 0;
    if (g->input >= 0)
        tmap[g->input] = 1;
    for (int i = 0; i < g->n_outputs; i++)
        tmap[g->outputs[i]] = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        const struct fv_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0)
                tmap[n->inputs[k]] = 1;
        if (n->output >= 0)
            tmap[n->output] = 1;
        for (int k = 0; k < FV_NODE_MAX_BLOBS; k++)
            if (n->blobs[k] >= 0)
                bmap[n->blobs[k]] = 1;
    }
    int nt = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        if (tmap[i]) {
            g->tensors[nt] = g->tensors[i];
            tmap[i] = nt++;
        } else {
            tmap[i] = -1;
        }
    }
    int nb = 0;
    for (int i = 0; i < g->n_blobs; i++) {
        if (bmap[i]) {
            g->blobs[nb] = g->blobs[i];
            bmap[i] = nb++;
        } else {
            free(g->blobs[i].data);
            bmap[i] = -1;
        }
    }
    g->n_tensors = nt;
    g->n_blobs = nb;
    if (g->input >= 0)
        g->input = tmap[g->input];
    for (int i = 0; i < g->n_outputs; i++)
        g->outputs[i] = tmap[g->outputs[i]];
    for (int i = 0; i < g->n_nodes; i++) {
        struct fv_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0)
                n->inputs[k] = tmap[n->inputs[k]];
        if (n->output >= 0)
            n->output = tmap[n->output];
        for (int k = 0; k < FV_NODE_MAX_BLOBS; k++)
            if (n->blobs[k] >= 0)
                n->blobs[k] = bmap[n->blobs[k]];
    }
    free(tmap);
    free(bmap);
    return FV_OK;
}
