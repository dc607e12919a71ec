/* forward.h - the forward pass of one graph node, shared by the engine (model.h)
 * and the trainer (train.h), so that a network computes the same values while
 * it is trained and when it is served.
 *
 *   struct fv_forward_args a = {.kernels = k, .graph = g, .node = n, .batch = 2,
 *                               .in = shapes[n->inputs[0]], .out = shapes[n->output],
 *                               .x = x, .y = y, .packed = packed, .scratch = scratch};
 *   fv_forward_node(&a);
 *
 * Convolutions and fully connected layers run on the kernels' packed GEMM when
 * packed holds the node's weights in k->pack's layout (and on Winograd when
 * winograd holds its transformed filter), else on im2col + BLAS; depthwise
 * convolutions and pooling on the kernels' own. The epilogue (bias, residual,
 * activation, PReLU) is applied as the output is stored.
 */
#ifndef FV_FORWARD_H
#define FV_FORWARD_H

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

#endif
