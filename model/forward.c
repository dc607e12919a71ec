/* forward.c - one node's forward pass for the engine and the trainer (see forward.h). */
#include "model/forward.h"

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

void fv_forward_node(const struct fv_forward_args *a)
{
    const struct fv_node *n = a->node;
    struct fv_graph *g = a->graph;
    const struct fv_kernels *k = a->kernels;
    const size_t pixels = (size_t)a->batch * a->out[0] * a->out[1];
    const size_t count = pixels * a->out[2];
    const struct fv_gemm_epilogue own = {.bias = blob_data(g, n->blobs[1]), .act = n->activation};
    const struct fv_gemm_epilogue *e = a->epilogue ? a->epilogue : &own;
    switch (n->op) {
    case FV_OP_CONV2D: {
        const struct fv_conv_shape s = node_shape(a);
        if (a->packed16 && fv_conv_is_pointwise(&s))
            k->gemm_bf16((size_t)s.n * s.out_h * s.out_w, s.out_c, s.in_c, a->x, (size_t)s.in_c,
                         a->packed16, e, a->y);
        else if (a->winograd && fv_winograd_applies(&s))
            fv_winograd_conv(k, &s, a->x, a->winograd, e, a->scratch, a->y);
        else
            fv_ops_conv2d_fused(k, &s, a->x, blob_data(g, n->blobs[0]), a->packed, e, a->scratch,
                                a->y);
        return;
    }
    case FV_OP_FULLY_CONNECTED: {
        const struct fv_blob *w = fv_graph_blob(g, n->blobs[0]);
        const int in = a->in[0] * a->in[1] * a->in[2];
        if (a->packed16)
            k->gemm_bf16((size_t)a->batch, w->shape[0], in, a->x, (size_t)in, a->packed16, e, a->y);
        else
            fv_gemm_nt(k, (size_t)a->batch, w->shape[0], in, a->x, (size_t)in, w->data, a->packed,
                       e, a->y);
        return;
    }
    case FV_OP_DEPTHWISE_CONV2D: {
        const struct fv_conv_shape s = node_shape(a);
        k->depthwise(&s, a->x, blob_data(g, n->blobs[0]), e->bias, e->slopes, e->n_slopes, a->y);
        fv_ops_activation(count, e->act, a->y);
        return;
    }
    case FV_OP_MAX_POOL2D: {
        const struct fv_conv_shape s = node_shape(a);
        k->max_pool(&s, a->x, a->y);
        break;
    }
    case FV_OP_PRELU:
        fv_ops_prelu(pixels, a->out[2], a->x, blob_data(g, n->blobs[0]),
                     (int)fv_graph_blob(g, n->blobs[0])->count, a->y);
        break;
    case FV_OP_RELU:
        if (a->y != a->x)
            memcpy(a->y, a->x, count * sizeof *a->y);
        fv_ops_activation(count, FV_ACT_RELU, a->y);
        return;
    case FV_OP_ADD:
    case FV_OP_MUL: {
        const float *b = a->x2;
        size_t b_count = count;
        if (n->n_inputs != 2) {
            b = blob_data(g, n->blobs[0]);
            b_count = fv_graph_blob(g, n->blobs[0])->count;
        }
        if (n->op == FV_OP_ADD)
            fv_ops_add(count, a->out[2], a->x, b, b_count, n->activation, a->y);
        else
            fv_ops_mul(count, a->out[2], a->x, b, b_count, n->activation, a->y);
        return;
    }
    case FV_OP_SOFTMAX:
        fv_ops_softmax(pixels, a->out[2], a->x, a->y);
        return;
    case FV_OP_L2_NORM:
        fv_ops_l2_norm(a->batch, (size_t)a->out[0] * a->out[1] * a->out[2], n->epsilon, a->x,
                       a->y);
        return;
    case FV_OP_RESHAPE:
        if (a->x != a->y) /* the input tensor itself cannot be aliased */
            memcpy(a->y, a->x, count * sizeof *a->y);
        break;
    case FV_OP_BATCH_NORM:
        fv_ops_batch_norm(pixels, a->out[2], a->x, blob_data(g, n->blobs[0]),
                          blob_data(g, n->blobs[1]), blob_data(g, n->blobs[2]),
                          blob_data(g, n->blobs[3]), n->epsilon, a->y);
        break;
    case FV_OP_COUNT:
        return;
    }
    /* the ops above that take an activation apply it after their own result */
    fv_ops_activation(count, n->activation, a->y);
}
