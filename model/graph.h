/* graph.h - a network graph under construction: tensors, weight blobs and nodes.
 *
 *   struct fv_graph *g = fv_graph_new();
 *   int x = fv_graph_add_tensor(g, "input", 112, 112, 3);
 *   int w = fv_graph_add_blob(g, "conv1/w", (int[]){16, 3, 3, 3}, 4, weights);
 *   int y = fv_graph_add_tensor(g, "conv1", 0, 0, 0);        // shape inferred
 *   struct fv_node n = fv_node_init(FV_OP_CONV2D, "conv1");
 *   n.inputs[0] = x; n.n_inputs = 1; n.output = y; n.blobs[0] = w; ...
 *   fv_graph_add_node(g, &n, &err);
 *   fv_graph_set_input(g, x); fv_graph_add_output(g, y);
 *   fv_graph_validate(g, &err);    // infers and checks every shape
 *
 * Importers and the model-file reader build graphs; fv_model_from_graph() turns
 * one into an immutable, runnable model. Shapes are per sample (H, W, C): the
 * batch dimension is chosen at run time. A flat vector of C values is (1, 1, C),
 * so flatten/reshape of NHWC data never moves memory.
 */
#ifndef FV_GRAPH_H
#define FV_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "model/status.h"

#define FV_NAME_MAX 96
#define FV_NODE_MAX_INPUTS 2
#define FV_NODE_MAX_BLOBS 4
#define FV_GRAPH_MAX_OUTPUTS 8

enum fv_op {
    FV_OP_CONV2D,           /* blobs: [0] filter O×KH×KW×I, [1] bias O (or -1) */
    FV_OP_DEPTHWISE_CONV2D, /* blobs: [0] filter KH×KW×C (multiplier 1), [1] bias C (or -1) */
    FV_OP_FULLY_CONNECTED,  /* blobs: [0] weights O×I (I = H·W·C of the input), [1] bias O (or -1) */
    FV_OP_MAX_POOL2D,       /* kernel, stride, padding */
    FV_OP_PRELU,            /* blobs: [0] slope per channel (C) or one slope (1) */
    FV_OP_RELU,
    FV_OP_ADD,              /* two inputs of one shape, or one input + blobs[0] (C or 1 values) */
    FV_OP_MUL,              /* as ADD */
    FV_OP_SOFTMAX,          /* over channels */
    FV_OP_L2_NORM,          /* over H·W·C of each sample; epsilon */
    FV_OP_RESHAPE,          /* output shape given on the output tensor; same element count */
    FV_OP_BATCH_NORM,       /* blobs: [0] gamma, [1] beta, [2] mean, [3] variance (C each); epsilon */
    FV_OP_COUNT
};

enum fv_padding { FV_PADDING_VALID, FV_PADDING_SAME, FV_PADDING_COUNT };
enum fv_activation { FV_ACT_NONE, FV_ACT_RELU, FV_ACT_RELU6, FV_ACT_COUNT };

/* Lower-case names used in model files and messages ("conv2d", "same", "relu"). */
const char *fv_op_name(enum fv_op op);
const char *fv_padding_name(enum fv_padding padding);
const char *fv_activation_name(enum fv_activation activation);
/* Reverse look-ups; return -1 for an unknown name. */
int fv_op_from_name(const char *name);
int fv_padding_from_name(const char *name);
int fv_activation_from_name(const char *name);

struct fv_tensor_info {
    char name[FV_NAME_MAX];
    int h, w, c; /* per-sample shape; 0 = not yet inferred */
};

struct fv_blob {
    char name[FV_NAME_MAX];
    int rank;
    int shape[4];
    size_t count;  /* product of shape */
    float *data;   /* owned by the graph */
};

struct fv_node {
    enum fv_op op;
    char name[FV_NAME_MAX];
    int n_inputs;
    int inputs[FV_NODE_MAX_INPUTS]; /* tensor indices */
    int output;                     /* tensor index */
    int blobs[FV_NODE_MAX_BLOBS];   /* blob indices, -1 when absent */
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    enum fv_padding padding;
    enum fv_activation activation;  /* applied after the op (conv, depthwise, FC, add) */
    float epsilon;                  /* L2_NORM, BATCH_NORM */
};

struct fv_model_meta {
    char name[FV_NAME_MAX];
    char embedding[FV_NAME_MAX]; /* output tensor that holds the embedding ("" if none) */
    int input_h, input_w, input_c;
    float pixel_mean;            /* network input = (pixel - pixel_mean) * pixel_scale */
    float pixel_scale;
    int transpose_input;         /* 1: the net was trained on images with x and y swapped */
    int template_h, template_w;  /* alignment template size; 0 for detectors */
    float threshold;             /* default verification threshold on cosine; NAN if unset */
};

struct fv_graph;

/* A node with every field neutral: no blobs (-1), stride 1, VALID, no activation. */
struct fv_node fv_node_init(enum fv_op op, const char *name);

/* A new empty graph with default metadata; NULL when out of memory. */
struct fv_graph *fv_graph_new(void);
void fv_graph_free(struct fv_graph *g);

/* Adds a tensor; h, w, c of 0 mean "infer". Returns its index, or a negative
 * fv_status (duplicate name, bad shape, out of memory). */
int fv_graph_add_tensor(struct fv_graph *g, const char *name, int h, int w, int c);
/* Adds a blob, copying count = product(shape) floats from data (data may be NULL
 * for zeros). Returns its index or a negative fv_status. */
int fv_graph_add_blob(struct fv_graph *g, const char *name, const int *shape, int rank,
                      const float *data);
/* Copies node in after checking that its indices exist. Returns its index or a
 * negative fv_status, with the reason in err. */
int fv_graph_add_node(struct fv_graph *g, const struct fv_node *node, struct fv_error *err);
void fv_graph_set_input(struct fv_graph *g, int tensor);
enum fv_status fv_graph_add_output(struct fv_graph *g, int tensor);

/* Checks the whole graph: nodes in execution order (each input produced before
 * use, each tensor produced once), blob shapes matching their ops, and every
 * tensor's shape (inferred when 0, compared when given) for the input size in
 * the metadata. Fills in inferred shapes. */
enum fv_status fv_graph_validate(struct fv_graph *g, struct fv_error *err);

/* Output shape of node for the given input shapes (used by validation and by
 * contexts that run at other input sizes). */
enum fv_status fv_node_output_shape(const struct fv_node *node, const struct fv_blob *blobs,
                                    const int in_shapes[][3], int out_shape[3],
                                    struct fv_error *err);

/* Folds every BATCH_NORM that directly follows a CONV2D / DEPTHWISE_CONV2D (whose
 * output has no other reader and no activation) into that convolution's filter
 * and bias. The graph stays equivalent. */
enum fv_status fv_graph_fold_batch_norm(struct fv_graph *g, struct fv_error *err);

struct fv_model_meta *fv_graph_meta(struct fv_graph *g);
int fv_graph_tensor_count(const struct fv_graph *g);
int fv_graph_node_count(const struct fv_graph *g);
int fv_graph_blob_count(const struct fv_graph *g);
struct fv_tensor_info *fv_graph_tensor(struct fv_graph *g, int index);
struct fv_node *fv_graph_node(struct fv_graph *g, int index);
struct fv_blob *fv_graph_blob(struct fv_graph *g, int index);
int fv_graph_input(const struct fv_graph *g);
int fv_graph_output_count(const struct fv_graph *g);
int fv_graph_output(const struct fv_graph *g, int i);
/* Index of the tensor with that name, or -1. */
int fv_graph_find_tensor(const struct fv_graph *g, const char *name);

/* Removes tensors and blobs no node or output refers to, renumbering indices. */
enum fv_status fv_graph_compact(struct fv_graph *g, struct fv_error *err);

#endif
