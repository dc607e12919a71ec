/* node.c - the ops' forward and backward passes over one node, as one table (see node.h). */
#include "model/node.h"

#include <assert.h>
#include "model/backward.h"

#include <string.h>

#include "model/kernels.h"
#include "model/ops.h"
#include "model/winograd.h"

static const float *blob_data(struct fv_graph *g, int b)
{
    return b >= 0 ? fv_graph_blob(g, b)->data : NULL;
}

static struct fv_conv_shape node_shape(const struct fv_forward_args *a)
{
    const struct fv_node *n = a->node;
    return fv_conv_shape_make(a->batch, a->in[0], a->in[1], a->in[2], n->kernel_h, n->kernel_w,
                              n->stride_h, n->stride_w, n->padding, a->out[2]);
}

size_t fv_forward_scratch(const struct fv_node *node, int batch, const int in[3], int out_c)
{
    if (node->op != FV_OP_CONV2D)
        return 0;
    struct fv_conv_shape s = fv_conv_shape_make(batch, in[0], in[1], in[2], node->kernel_h,
                                                node->kernel_w, node->stride_h, node->stride_w,
                                                node->padding, out_c);
    size_t need = fv_ops_conv2d_scratch(&s);
    if (fv_winograd_supported(s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.pad_top,
                              s.pad_left, s.in_c)) {
        size_t wino = fv_winograd_scratch(in[2], out_c);
        need = wino > need ? wino : need;
    }
    return need;
}

/* ---- forward, per op ---- */

/* The epilogue of a conv/FC/depthwise node: the fused one when given, else its
 * own bias and activation (into *own). */
static const struct fv_gemm_epilogue *node_epilogue(const struct fv_forward_args *a,
                                                    struct fv_gemm_epilogue *own)
{
    *own = (struct fv_gemm_epilogue){.bias = blob_data(a->graph, a->node->blobs[1]),
                                     .act = a->node->activation};
    return a->epilogue ? a->epilogue : own;
}

static size_t out_count(const struct fv_forward_args *a)
{
    return (size_t)a->batch * a->out[0] * a->out[1] * a->out[2];
}

static void forward_conv2d(const struct fv_forward_args *a)
{
    struct fv_gemm_epilogue own;
    const struct fv_gemm_epilogue *e = node_epilogue(a, &own);
    const struct fv_kernels *k = a->kernels;
    const struct fv_conv_shape s = node_shape(a);
    if (a->packed16 && fv_conv_is_pointwise(&s))
        k->gemm_bf16((size_t)s.n * s.out_h * s.out_w, s.out_c, s.in_c, a->x, (size_t)s.in_c,
                     a->packed16, e, a->y);
    else if (a->winograd && fv_winograd_applies(&s))
        fv_winograd_conv(k, &s, a->x, a->winograd, e, a->scratch, a->y);
    else
        fv_ops_conv2d_fused(k, &s, a->x, blob_data(a->graph, a->node->blobs[0]), a->packed, e,
                            a->scratch, a->y);
}

static void forward_fully_connected(const struct fv_forward_args *a)
{
    struct fv_gemm_epilogue own;
    const struct fv_gemm_epilogue *e = node_epilogue(a, &own);
    const struct fv_blob *w = fv_graph_blob(a->graph, a->node->blobs[0]);
    const int in = a->in[0] * a->in[1] * a->in[2];
    if (a->packed16)
        a->kernels->gemm_bf16((size_t)a->batch, w->shape[0], in, a->x, (size_t)in, a->packed16, e,
                              a->y);
    else
        fv_gemm_nt(a->kernels, (size_t)a->batch, w->shape[0], in, a->x, (size_t)in, w->data,
                   a->packed, e, a->y);
}

static void forward_depthwise_conv2d(const struct fv_forward_args *a)
{
    struct fv_gemm_epilogue own;
    const struct fv_gemm_epilogue *e = node_epilogue(a, &own);
    const struct fv_conv_shape s = node_shape(a);
    a->kernels->depthwise(&s, a->x, blob_data(a->graph, a->node->blobs[0]), e->bias, e->slopes,
                          e->n_slopes, a->y);
    fv_ops_activation(out_count(a), e->act, a->y);
}

static void forward_max_pool2d(const struct fv_forward_args *a)
{
    const struct fv_conv_shape s = node_shape(a);
    a->kernels->max_pool(&s, a->x, a->y);
    fv_ops_activation(out_count(a), a->node->activation, a->y);
}

static void forward_prelu(const struct fv_forward_args *a)
{
    const size_t count = out_count(a);
    fv_ops_prelu(count / a->out[2], a->out[2], a->x, blob_data(a->graph, a->node->blobs[0]),
                 (int)fv_graph_blob(a->graph, a->node->blobs[0])->count, a->y);
    fv_ops_activation(count, a->node->activation, a->y);
}

static void forward_relu(const struct fv_forward_args *a)
{
    if (a->y != a->x)
        memcpy(a->y, a->x, out_count(a) * sizeof *a->y);
    fv_ops_activation(out_count(a), FV_ACT_RELU, a->y);
}

/* ADD and MUL: a second input, or a constant blob (per channel or scalar). */
static void forward_binary(const struct fv_forward_args *a)
{
    const struct fv_node *n = a->node;
    const size_t count = out_count(a);
    const float *b = a->x2;
    size_t b_count = count;
    if (n->n_inputs != 2) {
        b = blob_data(a->graph, n->blobs[0]);
        b_count = fv_graph_blob(a->graph, n->blobs[0])->count;
    }
    if (n->op == FV_OP_ADD)
        fv_ops_add(count, a->out[2], a->x, b, b_count, n->activation, a->y);
    else
        fv_ops_mul(count, a->out[2], a->x, b, b_count, n->activation, a->y);
}

static void forward_softmax(const struct fv_forward_args *a)
{
    fv_ops_softmax(out_count(a) / a->out[2], a->out[2], a->x, a->y);
}

static void forward_l2_norm(const struct fv_forward_args *a)
{
    fv_ops_l2_norm(a->batch, (size_t)a->out[0] * a->out[1] * a->out[2], a->node->epsilon, a->x,
                   a->y);
}

static void forward_reshape(const struct fv_forward_args *a)
{
    if (a->x != a->y) /* the input tensor itself cannot be aliased */
        memcpy(a->y, a->x, out_count(a) * sizeof *a->y);
    fv_ops_activation(out_count(a), a->node->activation, a->y);
}

static void forward_batch_norm(const struct fv_forward_args *a)
{
    const struct fv_node *n = a->node;
    struct fv_graph *g = a->graph;
    fv_ops_batch_norm(out_count(a) / a->out[2], a->out[2], a->x, blob_data(g, n->blobs[0]),
                      blob_data(g, n->blobs[1]), blob_data(g, n->blobs[2]),
                      blob_data(g, n->blobs[3]), n->epsilon, a->y);
    fv_ops_activation(out_count(a), n->activation, a->y);
}

/* ---- backward, per op (after the activation's backward on dy) ---- */

static size_t grad_count(const struct fv_backward_args *a)
{
    return (size_t)a->batch * a->out[0] * a->out[1] * a->out[2];
}

static struct fv_conv_shape grad_shape(const struct fv_backward_args *a)
{
    const struct fv_node *n = a->node;
    return fv_conv_shape_make(a->batch, a->in[0], a->in[1], a->in[2], n->kernel_h, n->kernel_w,
                              n->stride_h, n->stride_w, n->padding, a->out[2]);
}

static void backward_conv2d(const struct fv_backward_args *a)
{
    const struct fv_conv_shape s = grad_shape(a);
    fv_backward_conv2d(&s, a->x, blob_data(a->graph, a->node->blobs[0]), a->dy, a->dx, a->g0,
                       a->g1, a->scratch);
}

static void backward_depthwise_conv2d(const struct fv_backward_args *a)
{
    const struct fv_conv_shape s = grad_shape(a);
    fv_backward_depthwise_conv2d(&s, a->x, blob_data(a->graph, a->node->blobs[0]), a->dy, a->dx,
                                 a->g0, a->g1);
}

static void backward_fully_connected(const struct fv_backward_args *a)
{
    fv_backward_fully_connected(a->batch, a->in[0] * a->in[1] * a->in[2],
                                a->out[0] * a->out[1] * a->out[2], a->x,
                                blob_data(a->graph, a->node->blobs[0]), a->dy, a->dx, a->g0,
                                a->g1);
}

static void backward_max_pool2d(const struct fv_backward_args *a)
{
    const struct fv_conv_shape s = grad_shape(a);
    if (a->dx)
        fv_backward_max_pool2d(&s, a->argmax, a->dy, a->dx);
}

static void backward_prelu(const struct fv_backward_args *a)
{
    const int c = a->out[2];
    fv_backward_prelu(grad_count(a) / c, c, a->x, blob_data(a->graph, a->node->blobs[0]),
                      (int)fv_graph_blob(a->graph, a->node->blobs[0])->count, a->dy, a->dx,
                      a->g0);
}

static void backward_relu(const struct fv_backward_args *a)
{
    if (a->dx)
        fv_backward_relu(grad_count(a), a->y, a->dy, a->dx);
}

static void backward_add(const struct fv_backward_args *a)
{
    const size_t count = grad_count(a);
    if (a->node->n_inputs == 2)
        fv_backward_add(count, a->out[2], count, a->dy, a->dx, a->dx2);
    else
        fv_backward_add(count, a->out[2], fv_graph_blob(a->graph, a->node->blobs[0])->count,
                        a->dy, a->dx, a->g0);
}

static void backward_reshape(const struct fv_backward_args *a)
{
    if (a->dx)
        fv_backward_reshape(grad_count(a), a->dy, a->dx);
}

static void backward_batch_norm(const struct fv_backward_args *a)
{
    const int c = a->out[2];
    fv_backward_batch_norm(grad_count(a) / c, c, a->x, blob_data(a->graph, a->node->blobs[0]),
                           a->save_mean, a->save_inv_std, a->dy, a->dx, a->g0, a->g1);
}

/* ---- the table ---- */

struct op_impl {
    void (*forward)(const struct fv_forward_args *a);
    void (*backward)(const struct fv_backward_args *a); /* NULL: not trainable */
};

static const struct op_impl ops[] = {
    [FV_OP_CONV2D] = {forward_conv2d, backward_conv2d},
    [FV_OP_DEPTHWISE_CONV2D] = {forward_depthwise_conv2d, backward_depthwise_conv2d},
    [FV_OP_FULLY_CONNECTED] = {forward_fully_connected, backward_fully_connected},
    [FV_OP_MAX_POOL2D] = {forward_max_pool2d, backward_max_pool2d},
    [FV_OP_PRELU] = {forward_prelu, backward_prelu},
    [FV_OP_RELU] = {forward_relu, backward_relu},
    [FV_OP_ADD] = {forward_binary, backward_add},
    [FV_OP_MUL] = {forward_binary, NULL},
    [FV_OP_SOFTMAX] = {forward_softmax, NULL},
    [FV_OP_L2_NORM] = {forward_l2_norm, NULL},
    [FV_OP_RESHAPE] = {forward_reshape, backward_reshape},
    [FV_OP_BATCH_NORM] = {forward_batch_norm, backward_batch_norm},
};
static_assert(sizeof ops / sizeof ops[0] == FV_OP_COUNT, "one row per op in node.c");

void fv_forward_node(const struct fv_forward_args *a)
{
    if ((unsigned)a->node->op < FV_OP_COUNT && ops[a->node->op].forward)
        ops[a->node->op].forward(a);
}

int fv_node_trainable(enum fv_op op)
{
    return (unsigned)op < FV_OP_COUNT && ops[op].backward != NULL;
}

void fv_backward_node(const struct fv_backward_args *a)
{
    fv_backward_activation(grad_count(a), a->node->activation, a->y, a->dy);
    if (fv_node_trainable(a->node->op))
        ops[a->node->op].backward(a);
}
