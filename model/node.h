/* node.h - the table of ops: each op's forward and backward pass over one graph
 * node, in one place. The engine (model.h) runs the forwards, the trainer
 * (train.h) the same forwards and the backwards, so a network computes the
 * same values while it is trained and when it is served. An op's output shape
 * is fv_node_output_shape (graph.h); a new op adds its row here.
 *
 *   struct fv_forward_args a = {.kernels = k, .graph = g, .node = n, .batch = 2,
 *                               .in = shapes[n->inputs[0]], .out = shapes[n->output],
 *                               .x = x, .y = y, .packed = packed, .scratch = scratch};
 *   fv_forward_node(&a);
 *   if (fv_node_trainable(n->op)) fv_backward_node(&(struct fv_backward_args){...});
 *
 * Convolutions and fully connected layers run on the kernels' packed GEMM when
 * packed holds the node's weights in k->pack's layout (and on Winograd when
 * winograd holds its transformed filter), else on im2col + BLAS; depthwise
 * convolutions and pooling on the kernels' own. The epilogue (bias, residual,
 * activation, PReLU) is applied as the output is stored.
 */
#ifndef FV_NODE_H
#define FV_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "model/gemm.h"
#include "model/graph.h"

struct fv_kernels;

struct fv_forward_args {
    const struct fv_kernels *kernels;
    struct fv_graph *graph;
    const struct fv_node *node;
    int batch;
    const int *in, *out;     /* per-sample (h, w, c) of input 0 and of the output */
    const float *x;          /* input 0 */
    const float *x2;         /* input 1 of a two-input ADD/MUL, else NULL */
    float *y;                /* the output; for a fused epilogue, the fused node's */
    const float *packed;     /* conv/FC weights in kernels->pack's layout, or NULL */
    const float *winograd;   /* conv filter for fv_winograd_conv, or NULL */
    const uint16_t *packed16; /* 1×1 conv/FC weights for kernels->gemm_bf16 (bf16), or NULL */
    float *scratch;          /* fv_forward_scratch floats */
    /* Conv/FC/depthwise only: the epilogue to apply instead of the node's own
     * (bias + activation), for a PReLU or residual ADD fused after it. */
    const struct fv_gemm_epilogue *epilogue;
};

/* Floats of scratch fv_forward_node needs for node at batch and input shape
 * in (0 for most ops). */
size_t fv_forward_scratch(const struct fv_node *node, int batch, const int in[3], int out_c);

void fv_forward_node(const struct fv_forward_args *a);

/* What one node's backward pass reads and writes, for batch samples. */
struct fv_backward_args {
    struct fv_graph *graph;
    const struct fv_node *node;
    int batch;
    const int *in, *out;           /* per-sample (h, w, c) of input 0 and of the output */
    const float *x, *y;            /* input 0 and output of the forward pass */
    float *dy;                     /* the output's gradient; the activation's backward is
                                    * applied to it in place */
    float *dx, *dx2;               /* += or = gradients of inputs 0 and 1, NULL when unneeded */
    float *g0, *g1;                /* gradients of blobs 0 and 1 (NULL when not trained) */
    const int32_t *argmax;         /* max pool: where each maximum came from */
    const float *save_mean, *save_inv_std; /* batch norm: the batch's statistics */
    float *scratch;                /* fv_backward_conv2d_scratch floats (backward.h) */
};

/* 1 when the op has a backward pass (the trainer refuses graphs with others). */
int fv_node_trainable(enum fv_op op);
void fv_backward_node(const struct fv_backward_args *a);

#endif
