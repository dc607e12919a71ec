/* tflite.c - TensorFlow Lite (schema version 3) importer (see tflite.h).
 *
 * Three passes over subgraph 0: read and check every tensor and operator into
 * plain arrays; find the multi-op spellings of PReLU and softmax, marking the
 * ops they consist of; then emit graph nodes in the file's execution order.
 * Field ids below are positions in tensorflow/lite/schema/schema.fbs.
 */
#include "model/tflite.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/flatbuf.h"

/* Model */
#define MODEL_VERSION 0
#define MODEL_OPERATOR_CODES 1
#define MODEL_SUBGRAPHS 2
#define MODEL_BUFFERS 4
/* OperatorCode */
#define OPCODE_DEPRECATED_BUILTIN 0
#define OPCODE_CUSTOM 1
#define OPCODE_BUILTIN 3
/* SubGraph */
#define SUBGRAPH_TENSORS 0
#define SUBGRAPH_INPUTS 1
#define SUBGRAPH_OUTPUTS 2
#define SUBGRAPH_OPERATORS 3
/* Tensor */
#define TENSOR_SHAPE 0
#define TENSOR_TYPE 1
#define TENSOR_BUFFER 2
#define TENSOR_NAME 3
#define TENSOR_SHAPE_SIGNATURE 7
/* Buffer */
#define BUFFER_DATA 0
#define BUFFER_OFFSET 1
/* Operator */
#define OPERATOR_OPCODE_INDEX 0
#define OPERATOR_INPUTS 1
#define OPERATOR_OUTPUTS 2
#define OPERATOR_OPTIONS_TYPE 3
#define OPERATOR_OPTIONS 4

enum tensor_type { TYPE_FLOAT32 = 0, TYPE_INT32 = 2 };

enum builtin {
    OP_ADD = 0,
    OP_CONV_2D = 3,
    OP_DEPTHWISE_CONV_2D = 4,
    OP_FULLY_CONNECTED = 9,
    OP_MAX_POOL_2D = 17,
    OP_MUL = 18,
    OP_RELU = 19,
    OP_RESHAPE = 22,
    OP_CUSTOM = 32,
    OP_SUB = 41,
    OP_DIV = 42,
    OP_EXP = 47,
    OP_NEG = 59,
    OP_SUM = 74,
    OP_REDUCE_MAX = 82,
    OP_ABS = 101,
};

/* BuiltinOptions union tags. */
enum options_tag {
    OPT_NONE = 0,
    OPT_CONV_2D = 1,
    OPT_DEPTHWISE_CONV_2D = 2,
    OPT_POOL_2D = 5,
    OPT_FULLY_CONNECTED = 8,
    OPT_ADD = 11,
    OPT_RESHAPE = 17,
    OPT_MUL = 21,
    OPT_REDUCER = 27,
    OPT_SUB = 28,
    OPT_DIV = 29,
};

/* Bounds on what a model may declare before anything is allocated for it. */
#define MAX_TENSORS 65536
#define MAX_OPERATORS 65536
#define MAX_OPERATOR_CODES 4096
#define MAX_OP_INPUTS 8
#define MAX_ELEMENTS ((uint64_t)1 << 28)

static const char *const builtin_names[] = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE", "DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED",
    "HASHTABLE_LOOKUP", "L2_NORMALIZATION", "L2_POOL_2D", "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC", "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU", "RELU_N1_TO_1",
    "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF",
    "TANH", "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE",
    "PAD", "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN", "SUB", "DIV", "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP",
    "TOPK_V2", "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST",
    "PRELU", "MAXIMUM", "ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER",
    "GREATER_EQUAL", "LESS_EQUAL", "SELECT", "SLICE", "SIN", "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG", "SUM", "SQRT",
    "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD", "REDUCE_MAX", "PACK",
    "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN",
    "FLOOR_DIV", "REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE",
    "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS",
    "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND", "COS", "WHERE", "RANK",
    "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND",
};
_Static_assert(sizeof builtin_names / sizeof builtin_names[0] == 117, "builtin name table");

static const char *const type_names[] = {
    "FLOAT32", "FLOAT16", "INT32", "UINT8", "INT64", "STRING", "BOOL", "INT16",
    "COMPLEX64", "INT8", "FLOAT64",
};

static const char *const activation_names[] = {
    "NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT",
};

struct tensor {
    char name[FV_NAME_MAX];
    int type;
    int rank;
    int dims[4];
    uint64_t count;       /* product of dims (1 for a scalar) */
    const uint8_t *data;  /* constant contents in the caller's buffer, or NULL */
    uint32_t bytes;
    int producer;         /* operator index, or -1 */
    int readers;          /* operator inputs reading it, plus 1 if a subgraph output */
    int graph_index;      /* graph tensor, -1 until created */
    int blob_uses;        /* blobs made from it so far (for unique blob names) */
};

enum fused_kind { FUSED_NONE, FUSED_MEMBER, FUSED_PRELU, FUSED_SOFTMAX };

struct op {
    int code;
    const char *custom;      /* custom_code for CUSTOM ops */
    int n_inputs;
    int inputs[MAX_OP_INPUTS];
    int n_outputs;
    int output;              /* first output */
    uint8_t options_tag;
    struct fv_fb_table options;
    enum fused_kind fused;
    int fused_x;             /* FUSED_PRELU / FUSED_SOFTMAX: the pattern's input */
    int fused_slope;         /* FUSED_PRELU: constant tensor holding the slope */
    float slope_scale;       /* FUSED_PRELU: slope = scale * constant */
};

struct importer {
    struct fv_fb fb;
    struct fv_error *err;
    int n_tensors;
    struct tensor *tensors;
    int n_ops;
    struct op *ops;
    int input;
    int n_outputs;
    int outputs[FV_GRAPH_MAX_OUTPUTS];
    int dynamic_input;       /* input H, W unknown: shapes are inferred from 12x12 */
    struct fv_graph *g;
};

static const char *builtin_name(int code, char buf[32])
{
    if (code >= 0 && code < (int)(sizeof builtin_names / sizeof builtin_names[0]))
        return builtin_names[code];
    snprintf(buf, 32, "builtin %d", code);
    return buf;
}

static const char *type_name(int type, char buf[32])
{
    if (type >= 0 && type < (int)(sizeof type_names / sizeof type_names[0]))
        return type_names[type];
    snprintf(buf, 32, "type %d", type);
    return buf;
}

static const char *out_name(const struct importer *im, const struct op *op)
{
    return op->output >= 0 ? im->tensors[op->output].name : "?";
}

/* ---------------------------------------------------------------- reading */

static uint32_t load_u32_le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static float load_f32_le(const uint8_t *p)
{
    uint32_t u = load_u32_le(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static enum fv_status read_tensor(struct importer *im, const struct fv_fb_vector *buffers,
                                  const struct fv_fb_table *t, int index, struct tensor *out)
{
    struct fv_error *err = im->err;
    struct fv_fb_vector shape, signature, data;
    struct fv_fb_table buffer;
    const char *name;
    uint32_t name_len, buffer_index;
    uint8_t type;
    enum fv_status st;

    memset(out, 0, sizeof *out);
    out->producer = -1;
    out->graph_index = -1;
    if ((st = fv_fb_string(t, TENSOR_NAME, &name, &name_len, err)) != FV_OK)
        return st;
    if (!name || name_len == 0)
        snprintf(out->name, sizeof out->name, "tensor_%d", index);
    else if (name_len >= FV_NAME_MAX || strlen(name) != name_len)
        return fv_error_set(err, FV_ERR_UNSUPPORTED,
                            "tensor %d: name of %u bytes is too long or holds a NUL", index,
                            name_len);
    else
        memcpy(out->name, name, name_len + 1);

    if ((st = fv_fb_u8(t, TENSOR_TYPE, TYPE_FLOAT32, &type, err)) != FV_OK ||
        (st = fv_fb_u32(t, TENSOR_BUFFER, 0, &buffer_index, err)) != FV_OK ||
        (st = fv_fb_vector(t, TENSOR_SHAPE, 4, &shape, err)) != FV_OK ||
        (st = fv_fb_vector(t, TENSOR_SHAPE_SIGNATURE, 4, &signature, err)) != FV_OK)
        return fv_error_prefix(err, "tensor '%s': ", out->name);
    out->type = type;
    if (shape.count > 4)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "tensor '%s' has rank %u; at most 4 is supported",
                            out->name, shape.count);
    out->rank = (int)shape.count;
    out->count = 1;
    for (int i = 0; i < out->rank; i++) {
        int32_t d = fv_fb_vector_i32(&shape, (uint32_t)i);
        /* -1 is allowed only in the model input's height or width (checked later). */
        if (d < 1 && d != -1)
            return fv_error_set(err, FV_ERR_FORMAT, "tensor '%s' has dimension %d = %d",
                                out->name, i, d);
        out->dims[i] = d;
        out->count *= d > 0 ? (uint64_t)d : 1;
        if (out->count > MAX_ELEMENTS)
            return fv_error_set(err, FV_ERR_TOO_LARGE,
                                "tensor '%s' has more than %llu elements", out->name,
                                (unsigned long long)MAX_ELEMENTS);
    }
    if (signature.present && signature.count == shape.count)
        for (int i = 1; i < out->rank; i++)
            if (fv_fb_vector_i32(&signature, (uint32_t)i) < 0)
                out->dims[i] = -1;

    if (buffer_index >= buffers->count)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "tensor '%s' refers to buffer %u of %u", out->name, buffer_index,
                            buffers->count);
    if (buffer_index == 0)
        return FV_OK;
    uint64_t offset;
    if ((st = fv_fb_vector_table(buffers, buffer_index, &buffer, err)) != FV_OK ||
        (st = fv_fb_vector(&buffer, BUFFER_DATA, 1, &data, err)) != FV_OK ||
        (st = fv_fb_u64(&buffer, BUFFER_OFFSET, 0, &offset, err)) != FV_OK)
        return fv_error_prefix(err, "tensor '%s', buffer %u: ", out->name, buffer_index);
    if (offset > 1)
        return fv_error_set(err, FV_ERR_UNSUPPORTED,
                            "tensor '%s': data stored outside the FlatBuffer is not supported",
                            out->name);
    if (data.count == 0)
        return FV_OK;
    if (type == TYPE_FLOAT32 || type == TYPE_INT32) {
        for (int i = 0; i < out->rank; i++)
            if (out->dims[i] < 1)
                return fv_error_set(err, FV_ERR_FORMAT,
                                    "constant tensor '%s' has a dynamic shape", out->name);
        if ((uint64_t)data.count != out->count * 4)
            return fv_error_set(err, FV_ERR_FORMAT,
                                "tensor '%s': buffer %u holds %u bytes, expected %llu for %llu "
                                "elements",
                                out->name, buffer_index, data.count,
                                (unsigned long long)(out->count * 4),
                                (unsigned long long)out->count);
    }
    out->data = fv_fb_vector_bytes(&data);
    out->bytes = data.count;
    return FV_OK;
}

static enum fv_status read_index_list(struct importer *im, const struct fv_fb_vector *v,
                                      int allow_optional, int *out, int max, int *n,
                                      const char *what)
{
    if (v->count > (uint32_t)max)
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED, "%s: %u tensors, at most %d supported",
                            what, v->count, max);
    for (uint32_t i = 0; i < v->count; i++) {
        int32_t t = fv_fb_vector_i32(v, i);
        if (t >= im->n_tensors || t < (allow_optional ? -1 : 0))
            return fv_error_set(im->err, FV_ERR_FORMAT, "%s: tensor index %d out of range",
                                what, t);
        out[i] = t;
    }
    *n = (int)v->count;
    return FV_OK;
}

static enum fv_status read_operator(struct importer *im, const struct fv_fb_vector *codes,
                                    const struct fv_fb_table *t, int index, struct op *op)
{
    struct fv_error *err = im->err;
    struct fv_fb_vector inputs, outputs;
    struct fv_fb_table code;
    uint32_t code_index;
    int8_t deprecated;
    int32_t builtin;
    int out_list[MAX_OP_INPUTS];
    char what[64];
    enum fv_status st;

    memset(op, 0, sizeof *op);
    op->output = -1;
    snprintf(what, sizeof what, "operator %d", index);
    if ((st = fv_fb_u32(t, OPERATOR_OPCODE_INDEX, 0, &code_index, err)) != FV_OK ||
        (st = fv_fb_vector(t, OPERATOR_INPUTS, 4, &inputs, err)) != FV_OK ||
        (st = fv_fb_vector(t, OPERATOR_OUTPUTS, 4, &outputs, err)) != FV_OK ||
        (st = fv_fb_u8(t, OPERATOR_OPTIONS_TYPE, OPT_NONE, &op->options_tag, err)) != FV_OK ||
        (st = fv_fb_table(t, OPERATOR_OPTIONS, &op->options, err)) != FV_OK)
        return fv_error_prefix(err, "%s: ", what);
    if (code_index >= codes->count)
        return fv_error_set(err, FV_ERR_FORMAT, "%s refers to operator code %u of %u", what,
                            code_index, codes->count);
    if ((st = fv_fb_vector_table(codes, code_index, &code, err)) != FV_OK ||
        (st = fv_fb_i8(&code, OPCODE_DEPRECATED_BUILTIN, 0, &deprecated, err)) != FV_OK ||
        (st = fv_fb_i32(&code, OPCODE_BUILTIN, 0, &builtin, err)) != FV_OK ||
        (st = fv_fb_string(&code, OPCODE_CUSTOM, &op->custom, NULL, err)) != FV_OK)
        return fv_error_prefix(err, "operator code %u: ", code_index);
    /* Old writers fill only the int8 field, new ones put 127 there and the
     * real code in the int32 field: the larger of the two is the code. */
    op->code = builtin > deprecated ? builtin : deprecated;
    if (op->code < 0)
        return fv_error_set(err, FV_ERR_FORMAT, "operator code %u is negative (%d)", code_index,
                            op->code);
    if ((st = read_index_list(im, &inputs, 1, op->inputs, MAX_OP_INPUTS, &op->n_inputs, what)) !=
            FV_OK ||
        (st = read_index_list(im, &outputs, 0, out_list, MAX_OP_INPUTS, &op->n_outputs, what)) !=
            FV_OK)
        return st;
    if (op->n_outputs < 1)
        return fv_error_set(err, FV_ERR_FORMAT, "%s has no outputs", what);
    op->output = out_list[0];
    for (int i = 0; i < op->n_outputs; i++) {
        struct tensor *o = &im->tensors[out_list[i]];
        if (o->producer >= 0 || o->data || out_list[i] == im->input)
            return fv_error_set(err, FV_ERR_FORMAT,
                                "%s writes tensor '%s', which is a constant, the input or "
                                "written by operator %d",
                                what, o->name, o->producer);
        o->producer = index;
    }
    for (int i = 0; i < op->n_inputs; i++)
        if (op->inputs[i] >= 0)
            im->tensors[op->inputs[i]].readers++;
    return FV_OK;
}

static enum fv_status read_model(struct importer *im, const uint8_t *data, size_t size)
{
    struct fv_error *err = im->err;
    struct fv_fb_table root, subgraph, t;
    struct fv_fb_vector codes, subgraphs, buffers, tensors, inputs, outputs, operators;
    uint32_t version;
    enum fv_status st;

    if ((st = fv_fb_init(&im->fb, data, size, err)) != FV_OK)
        return st;
    if (!fv_fb_has_identifier(&im->fb, "TFL3")) {
        char shown[5];
        for (int i = 0; i < 4; i++) {
            uint8_t c = data[4 + i];
            shown[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        shown[4] = 0;
        return fv_error_set(err, FV_ERR_FORMAT,
                            "not a TFLite model: file identifier '%s', expected 'TFL3'", shown);
    }
    if ((st = fv_fb_root(&im->fb, &root, err)) != FV_OK ||
        (st = fv_fb_u32(&root, MODEL_VERSION, 0, &version, err)) != FV_OK ||
        (st = fv_fb_vector(&root, MODEL_OPERATOR_CODES, FV_FB_OFFSET_SIZE, &codes, err)) !=
            FV_OK ||
        (st = fv_fb_vector(&root, MODEL_SUBGRAPHS, FV_FB_OFFSET_SIZE, &subgraphs, err)) !=
            FV_OK ||
        (st = fv_fb_vector(&root, MODEL_BUFFERS, FV_FB_OFFSET_SIZE, &buffers, err)) != FV_OK)
        return fv_error_prefix(err, "model: ");
    if (version != 3)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "TFLite schema version %u, expected 3",
                            version);
    if (subgraphs.count < 1)
        return fv_error_set(err, FV_ERR_FORMAT, "model has no subgraphs");
    if (codes.count > MAX_OPERATOR_CODES)
        return fv_error_set(err, FV_ERR_TOO_LARGE, "model has %u operator codes", codes.count);

    if ((st = fv_fb_vector_table(&subgraphs, 0, &subgraph, err)) != FV_OK ||
        (st = fv_fb_vector(&subgraph, SUBGRAPH_TENSORS, FV_FB_OFFSET_SIZE, &tensors, err)) !=
            FV_OK ||
        (st = fv_fb_vector(&subgraph, SUBGRAPH_INPUTS, 4, &inputs, err)) != FV_OK ||
        (st = fv_fb_vector(&subgraph, SUBGRAPH_OUTPUTS, 4, &outputs, err)) != FV_OK ||
        (st = fv_fb_vector(&subgraph, SUBGRAPH_OPERATORS, FV_FB_OFFSET_SIZE, &operators,
                           err)) != FV_OK)
        return fv_error_prefix(err, "subgraph 0: ");
    if (tensors.count > MAX_TENSORS || operators.count > MAX_OPERATORS)
        return fv_error_set(err, FV_ERR_TOO_LARGE, "subgraph 0 has %u tensors and %u operators",
                            tensors.count, operators.count);
    if (tensors.count == 0 || operators.count == 0)
        return fv_error_set(err, FV_ERR_FORMAT, "subgraph 0 has no tensors or no operators");

    im->n_tensors = (int)tensors.count;
    im->tensors = calloc(tensors.count, sizeof *im->tensors);
    im->ops = calloc(operators.count, sizeof *im->ops);
    if (!im->tensors || !im->ops)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory reading %u tensors",
                            tensors.count);
    for (uint32_t i = 0; i < tensors.count; i++) {
        if ((st = fv_fb_vector_table(&tensors, i, &t, err)) != FV_OK)
            return fv_error_prefix(err, "tensor %u: ", i);
        if ((st = read_tensor(im, &buffers, &t, (int)i, &im->tensors[i])) != FV_OK)
            return st;
    }

    int input_list[MAX_OP_INPUTS];
    int n_inputs;
    if ((st = read_index_list(im, &inputs, 0, input_list, MAX_OP_INPUTS, &n_inputs,
                              "subgraph inputs")) != FV_OK)
        return st;
    if (n_inputs != 1)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "model has %d inputs; exactly 1 is supported",
                            n_inputs);
    im->input = input_list[0];
    if ((st = read_index_list(im, &outputs, 0, im->outputs, FV_GRAPH_MAX_OUTPUTS, &im->n_outputs,
                              "subgraph outputs")) != FV_OK)
        return st;
    if (im->n_outputs < 1)
        return fv_error_set(err, FV_ERR_FORMAT, "model has no outputs");
    for (int i = 0; i < im->n_outputs; i++)
        im->tensors[im->outputs[i]].readers++;

    for (uint32_t i = 0; i < operators.count; i++) {
        if ((st = fv_fb_vector_table(&operators, i, &t, err)) != FV_OK)
            return fv_error_prefix(err, "operator %u: ", i);
        if ((st = read_operator(im, &codes, &t, (int)i, &im->ops[i])) != FV_OK)
            return st;
        im->n_ops = (int)i + 1;
    }
    return FV_OK;
}

/* ---------------------------------------------------------------- options */

/* The op's options table, after checking its union tag; a table with every
 * field at its default (present = 0) when the op carries none. */
static enum fv_status get_options(struct importer *im, const struct op *op, int tag,
                                  const char *tag_name, struct fv_fb_table *out)
{
    char buf[32];
    memset(out, 0, sizeof *out);
    if (op->options_tag == OPT_NONE)
        return FV_OK;
    if (op->options_tag != tag)
        return fv_error_set(im->err, FV_ERR_FORMAT,
                            "%s producing tensor '%s' carries options of type %u, expected %s",
                            builtin_name(op->code, buf), out_name(im, op), op->options_tag,
                            tag_name);
    *out = op->options;
    return FV_OK;
}

static enum fv_status map_activation(struct importer *im, const struct op *op, int8_t act,
                                     enum fv_activation *out)
{
    char buf[32];
    switch (act) {
    case 0: *out = FV_ACT_NONE; return FV_OK;
    case 1: *out = FV_ACT_RELU; return FV_OK;
    case 3: *out = FV_ACT_RELU6; return FV_OK;
    }
    if (act > 0 && act < (int)(sizeof activation_names / sizeof activation_names[0]))
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "fused activation %s on %s producing tensor '%s' is not supported",
                            activation_names[(int)act], builtin_name(op->code, buf),
                            out_name(im, op));
    return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                        "fused activation %d on %s producing tensor '%s' is not supported", act,
                        builtin_name(op->code, buf), out_name(im, op));
}

static enum fv_status map_padding(struct importer *im, const struct op *op, uint8_t padding,
                                  enum fv_padding *out)
{
    char buf[32];
    if (padding > 1)
        return fv_error_set(im->err, FV_ERR_FORMAT, "%s producing tensor '%s' has padding %u",
                            builtin_name(op->code, buf), out_name(im, op), padding);
    *out = padding == 0 ? FV_PADDING_SAME : FV_PADDING_VALID;
    return FV_OK;
}

/* Fused activation of an element-wise op (field 0 of Add/Sub/Mul/DivOptions);
 * NONE when the op has no options. Returns -1 when the options are malformed. */
static int elementwise_activation(const struct op *op, int tag)
{
    int8_t act = 0;
    if (op->options_tag == OPT_NONE)
        return 0;
    if (op->options_tag != tag || fv_fb_i8(&op->options, 0, 0, &act, NULL) != FV_OK)
        return -1;
    return act;
}

/* keep_dims of a reducer; -1 when the options are missing or malformed. */
static int reducer_keeps_dims(const struct op *op)
{
    uint8_t keep = 0;
    if (op->options_tag != OPT_REDUCER || fv_fb_u8(&op->options, 0, 0, &keep, NULL) != FV_OK)
        return -1;
    return keep != 0;
}

/* ---------------------------------------------------------------- fusion */

/* The not yet fused op that produces tensor t with the given code, or NULL. */
static struct op *producer(struct importer *im, int t, int code)
{
    if (t < 0 || im->tensors[t].producer < 0)
        return NULL;
    struct op *op = &im->ops[im->tensors[t].producer];
    if (op->code != code || op->fused != FUSED_NONE || op->n_outputs != 1)
        return NULL;
    return op;
}

/* t is an intermediate read only by the one op of the pattern. */
static int private_tensor(const struct importer *im, int t, int readers)
{
    return t >= 0 && im->tensors[t].readers == readers && !im->tensors[t].data;
}

static int is_float_constant(const struct importer *im, int t)
{
    return t >= 0 && im->tensors[t].data && im->tensors[t].type == TYPE_FLOAT32;
}

static int last_dim(const struct tensor *t)
{
    return t->rank > 0 ? t->dims[t->rank - 1] : 1;
}

/* A float constant that broadcasts along the channels of x: one value, or C
 * values with every other dimension 1. */
static int per_channel_constant(const struct importer *im, int c, int x)
{
    if (!is_float_constant(im, c))
        return 0;
    const struct tensor *k = &im->tensors[c];
    int channels = last_dim(&im->tensors[x]);
    for (int i = 0; i + 1 < k->rank; i++)
        if (k->dims[i] != 1)
            return 0;
    return k->count == 1 || (channels > 0 && k->count == (uint64_t)channels);
}

static int constant_all_equal(const struct importer *im, int c, float value)
{
    const struct tensor *k = &im->tensors[c];
    for (uint64_t i = 0; i < k->count; i++)
        if (load_f32_le(k->data + 4 * i) != value)
            return 0;
    return 1;
}

/* MUL op with no fused activation, one input tensor (not constant) and one
 * constant broadcasting over it: *operand gets the tensor, *constant the other. */
static int mul_by_constant(const struct importer *im, const struct op *op, int *operand,
                           int *constant)
{
    if (!op || op->n_inputs != 2 || elementwise_activation(op, OPT_MUL) != 0)
        return 0;
    for (int k = 0; k < 2; k++) {
        int c = op->inputs[k], x = op->inputs[1 - k];
        if (x >= 0 && !im->tensors[x].data && per_channel_constant(im, c, x)) {
            *operand = x;
            *constant = c;
            return 1;
        }
    }
    return 0;
}

/* t = -u, spelled NEG(u) or MUL(u, -1). Marks nothing; returns the op. */
static struct op *negation(struct importer *im, int t, int *u)
{
    struct op *op = producer(im, t, OP_NEG);
    if (op && op->n_inputs == 1 && op->inputs[0] >= 0) {
        *u = op->inputs[0];
        return op;
    }
    int constant;
    op = producer(im, t, OP_MUL);
    if (mul_by_constant(im, op, u, &constant) && constant_all_equal(im, constant, -1.0f))
        return op;
    return NULL;
}

/* MTCNN: out = relu(x) + alpha * -relu(-x) at the ADD op. */
static int match_prelu_mtcnn(struct importer *im, struct op *add)
{
    for (int k = 0; k < 2; k++) {
        int a = add->inputs[k], q = add->inputs[1 - k];
        struct op *relu_pos = producer(im, a, OP_RELU);
        struct op *mul = producer(im, q, OP_MUL);
        int x, d, alpha, c, b, x2;
        if (!relu_pos || !mul || relu_pos->n_inputs != 1 || (x = relu_pos->inputs[0]) < 0)
            continue;
        if (!mul_by_constant(im, mul, &d, &alpha) || !per_channel_constant(im, alpha, x))
            continue;
        struct op *neg_outer = negation(im, d, &c);
        if (!neg_outer || neg_outer == mul)
            continue;
        struct op *relu_neg = producer(im, c, OP_RELU);
        if (!relu_neg || relu_neg->n_inputs != 1 || (b = relu_neg->inputs[0]) < 0)
            continue;
        struct op *neg_inner = negation(im, b, &x2);
        if (!neg_inner || x2 != x)
            continue;
        if (!private_tensor(im, a, 1) || !private_tensor(im, q, 1) ||
            !private_tensor(im, d, 1) || !private_tensor(im, c, 1) || !private_tensor(im, b, 1))
            continue;
        relu_pos->fused = mul->fused = neg_outer->fused = FUSED_MEMBER;
        relu_neg->fused = neg_inner->fused = FUSED_MEMBER;
        add->fused = FUSED_PRELU;
        add->fused_x = x;
        add->fused_slope = alpha;
        add->slope_scale = 1.0f;
        return 1;
    }
    return 0;
}

/* MobileFaceNet: out = relu(x) + m * (x - |x|) = prelu(x, 2m) at the ADD op. */
static int match_prelu_mobilefacenet(struct importer *im, struct op *add)
{
    for (int k = 0; k < 2; k++) {
        int a = add->inputs[k], q = add->inputs[1 - k];
        struct op *relu = producer(im, a, OP_RELU);
        struct op *mul = producer(im, q, OP_MUL);
        int x, s, m;
        if (!relu || !mul || relu->n_inputs != 1 || (x = relu->inputs[0]) < 0)
            continue;
        if (!mul_by_constant(im, mul, &s, &m) || !per_channel_constant(im, m, x))
            continue;
        struct op *sub = producer(im, s, OP_SUB);
        if (!sub || sub->n_inputs != 2 || sub->inputs[0] != x ||
            elementwise_activation(sub, OPT_SUB) != 0)
            continue;
        int b = sub->inputs[1];
        struct op *abs = producer(im, b, OP_ABS);
        if (!abs || abs->n_inputs != 1 || abs->inputs[0] != x)
            continue;
        if (!private_tensor(im, a, 1) || !private_tensor(im, q, 1) ||
            !private_tensor(im, s, 1) || !private_tensor(im, b, 1))
            continue;
        relu->fused = mul->fused = sub->fused = abs->fused = FUSED_MEMBER;
        add->fused = FUSED_PRELU;
        add->fused_x = x;
        add->fused_slope = m;
        add->slope_scale = 2.0f;
        return 1;
    }
    return 0;
}

/* The reduction axis tensor names the last axis of a tensor of that rank. */
static int is_last_axis(const struct importer *im, int axis, int rank)
{
    if (axis < 0)
        return 0;
    const struct tensor *t = &im->tensors[axis];
    if (!t->data || t->type != TYPE_INT32 || t->count != 1 || t->rank > 1)
        return 0;
    int32_t value = (int32_t)load_u32_le(t->data);
    return value == rank - 1 || value == -1;
}

/* Softmax over the last axis: e = exp(x - max(x)); out = e / sum(e), at DIV. */
static int match_softmax(struct importer *im, struct op *div)
{
    if (div->n_inputs != 2 || elementwise_activation(div, OPT_DIV) != 0)
        return 0;
    int e = div->inputs[0], z = div->inputs[1];
    struct op *exp = producer(im, e, OP_EXP);
    struct op *sum = producer(im, z, OP_SUM);
    if (!exp || !sum || exp->n_inputs != 1 || sum->n_inputs != 2 || sum->inputs[0] != e)
        return 0;
    int s = exp->inputs[0];
    struct op *sub = producer(im, s, OP_SUB);
    if (!sub || sub->n_inputs != 2 || elementwise_activation(sub, OPT_SUB) != 0)
        return 0;
    int x = sub->inputs[0], m = sub->inputs[1];
    struct op *max = producer(im, m, OP_REDUCE_MAX);
    if (x < 0 || !max || max->n_inputs != 2 || max->inputs[0] != x)
        return 0;
    int rank = im->tensors[x].rank;
    if ((rank != 2 && rank != 4) || !is_last_axis(im, max->inputs[1], rank) ||
        !is_last_axis(im, sum->inputs[1], rank) || reducer_keeps_dims(max) != 1 ||
        reducer_keeps_dims(sum) != 1)
        return 0;
    if (!private_tensor(im, e, 2) || !private_tensor(im, z, 1) || !private_tensor(im, s, 1) ||
        !private_tensor(im, m, 1))
        return 0;
    exp->fused = sum->fused = sub->fused = max->fused = FUSED_MEMBER;
    div->fused = FUSED_SOFTMAX;
    div->fused_x = x;
    return 1;
}

static void find_patterns(struct importer *im)
{
    for (int i = 0; i < im->n_ops; i++) {
        struct op *op = &im->ops[i];
        if (op->fused != FUSED_NONE || op->n_outputs != 1)
            continue;
        if (op->code == OP_ADD && op->n_inputs == 2 && elementwise_activation(op, OPT_ADD) == 0)
            (void)(match_prelu_mtcnn(im, op) || match_prelu_mobilefacenet(im, op));
        else if (op->code == OP_DIV)
            (void)match_softmax(im, op);
    }
}

/* ---------------------------------------------------------------- emitting */

/* Per-sample (H, W, C) of a TFLite activation shape. */
static enum fv_status sample_shape(struct importer *im, const struct tensor *t, int shape[3])
{
    if (t->rank == 4) {
        shape[0] = t->dims[1], shape[1] = t->dims[2], shape[2] = t->dims[3];
    } else if (t->rank == 2) {
        shape[0] = shape[1] = 1, shape[2] = t->dims[1];
    } else {
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "tensor '%s' has rank %d; activations must be [N,H,W,C] or [N,C]",
                            t->name, t->rank);
    }
    return FV_OK;
}

static enum fv_status check_float(struct importer *im, const struct tensor *t)
{
    char buf[32];
    if (t->type != TYPE_FLOAT32)
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "tensor '%s' has type %s; only FLOAT32 is supported", t->name,
                            type_name(t->type, buf));
    return FV_OK;
}

/* The graph tensor for TFLite tensor index, created on first use. Its shape
 * is the file's, batch dropped, so that validation compares every inferred
 * shape with it; with a dynamic input only the input and RESHAPE outputs
 * (need_shape) get one and the rest is inferred. */
static enum fv_status graph_tensor(struct importer *im, int index, int need_shape, int *out)
{
    struct tensor *t = &im->tensors[index];
    int shape[3] = {0, 0, 0};
    enum fv_status st;
    if (t->graph_index >= 0) {
        *out = t->graph_index;
        return FV_OK;
    }
    if ((st = check_float(im, t)) != FV_OK)
        return st;
    if (t->data)
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "constant tensor '%s' is used where an activation is expected",
                            t->name);
    if ((st = sample_shape(im, t, shape)) != FV_OK)
        return st;
    if (index == im->input) {
        if (im->dynamic_input)
            shape[0] = shape[1] = 12;
    } else if (im->dynamic_input && !need_shape) {
        shape[0] = shape[1] = shape[2] = 0;
    } else if (shape[0] < 1 || shape[1] < 1 || shape[2] < 1) {
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED, "tensor '%s' has a dynamic shape",
                            t->name);
    }
    int g = fv_graph_add_tensor(im->g, t->name, shape[0], shape[1], shape[2]);
    if (g < 0)
        return fv_error_set(im->err, (enum fv_status)g,
                            "cannot add tensor '%s' (%dx%dx%d) to the graph: %s", t->name,
                            shape[0], shape[1], shape[2], fv_status_str((enum fv_status)g));
    t->graph_index = g;
    *out = g;
    return FV_OK;
}

enum blob_layout {
    LAYOUT_AS_IS,       /* TFLite shape */
    LAYOUT_DEPTHWISE,   /* [1,KH,KW,C] -> [KH,KW,C] */
    LAYOUT_VECTOR,      /* flattened to [count] */
};

/* A blob holding scale * the constant tensor index, in the given layout. */
static enum fv_status make_blob(struct importer *im, int index, enum blob_layout layout,
                                float scale, int *out)
{
    struct tensor *t = &im->tensors[index];
    float *values = NULL;
    int shape[4], rank = 0;
    char name[FV_NAME_MAX];
    enum fv_status st;

    if ((st = check_float(im, t)) != FV_OK)
        return st;
    if (!t->data)
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "tensor '%s' is used as weights but holds no constant data",
                            t->name);
    switch (layout) {
    case LAYOUT_AS_IS:
        rank = t->rank;
        for (int i = 0; i < rank; i++)
            shape[i] = t->dims[i];
        if (rank == 0)
            shape[rank++] = 1;
        break;
    case LAYOUT_DEPTHWISE:
        rank = 3;
        for (int i = 0; i < 3; i++)
            shape[i] = t->dims[i + 1];
        break;
    case LAYOUT_VECTOR:
        rank = 1;
        shape[0] = (int)t->count;
        break;
    }
    if (t->blob_uses == 0)
        snprintf(name, sizeof name, "%s", t->name);
    else
        snprintf(name, sizeof name, "%.80s#%d", t->name, t->blob_uses + 1);
    values = malloc(t->count * sizeof *values);
    if (!values)
        return fv_error_set(im->err, FV_ERR_NOMEM, "out of memory reading tensor '%s'", t->name);
    for (uint64_t i = 0; i < t->count; i++) {
        values[i] = scale * load_f32_le(t->data + 4 * i);
        if (!isfinite(values[i])) {
            st = fv_error_set(im->err, FV_ERR_FORMAT,
                              "tensor '%s' holds a non-finite value at element %llu", t->name,
                              (unsigned long long)i);
            goto fail;
        }
    }
    int b = fv_graph_add_blob(im->g, name, shape, rank, values);
    if (b < 0) {
        st = fv_error_set(im->err, (enum fv_status)b, "cannot add blob '%s': %s", name,
                          fv_status_str((enum fv_status)b));
        goto fail;
    }
    t->blob_uses++;
    *out = b;
    st = FV_OK;
fail:
    free(values);
    return st;
}

/* Weights (input 1) and optional bias (input 2) of a conv, depthwise or FC op. */
static enum fv_status weight_blobs(struct importer *im, const struct op *op, int rank,
                                   enum blob_layout layout, struct fv_node *node)
{
    char buf[32];
    enum fv_status st;
    if (op->n_inputs < 2 || op->n_inputs > 3 || op->inputs[0] < 0 || op->inputs[1] < 0)
        return fv_error_set(im->err, FV_ERR_FORMAT,
                            "%s producing tensor '%s' needs an input, weights and a bias",
                            builtin_name(op->code, buf), out_name(im, op));
    const struct tensor *w = &im->tensors[op->inputs[1]];
    if (w->rank != rank)
        return fv_error_set(im->err, FV_ERR_FORMAT,
                            "%s producing tensor '%s': weights '%s' have rank %d, expected %d",
                            builtin_name(op->code, buf), out_name(im, op), w->name, w->rank,
                            rank);
    if ((st = make_blob(im, op->inputs[1], layout, 1.0f, &node->blobs[0])) != FV_OK)
        return st;
    if (op->n_inputs == 3 && op->inputs[2] >= 0) {
        const struct tensor *b = &im->tensors[op->inputs[2]];
        if (b->rank != 1 || b->dims[0] != w->dims[layout == LAYOUT_DEPTHWISE ? 3 : 0])
            return fv_error_set(im->err, FV_ERR_FORMAT,
                                "%s producing tensor '%s': bias '%s' does not match weights '%s'",
                                builtin_name(op->code, buf), out_name(im, op), b->name,
                                w->name);
        if ((st = make_blob(im, op->inputs[2], LAYOUT_VECTOR, 1.0f, &node->blobs[1])) != FV_OK)
            return st;
    }
    return FV_OK;
}

static enum fv_status check_dilation(struct importer *im, const struct op *op,
                                     const struct fv_fb_table *options, int w_id, int h_id)
{
    char buf[32];
    int32_t dw, dh;
    enum fv_status st;
    if ((st = fv_fb_i32(options, w_id, 1, &dw, im->err)) != FV_OK ||
        (st = fv_fb_i32(options, h_id, 1, &dh, im->err)) != FV_OK)
        return st;
    if (dw != 1 || dh != 1)
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "%s producing tensor '%s' has dilation %dx%d; only 1 is supported",
                            builtin_name(op->code, buf), out_name(im, op), dh, dw);
    return FV_OK;
}

static enum fv_status read_window(struct importer *im, const struct op *op,
                                  const struct fv_fb_table *options, struct fv_node *node)
{
    char buf[32];
    uint8_t padding;
    int32_t stride_w, stride_h;
    enum fv_status st;
    if ((st = fv_fb_u8(options, 0, 0, &padding, im->err)) != FV_OK ||
        (st = fv_fb_i32(options, 1, 0, &stride_w, im->err)) != FV_OK ||
        (st = fv_fb_i32(options, 2, 0, &stride_h, im->err)) != FV_OK ||
        (st = map_padding(im, op, padding, &node->padding)) != FV_OK)
        return st;
    if (stride_w < 1 || stride_h < 1 || stride_w > 64 || stride_h > 64)
        return fv_error_set(im->err, FV_ERR_FORMAT,
                            "%s producing tensor '%s' has stride %dx%d",
                            builtin_name(op->code, buf), out_name(im, op), stride_h, stride_w);
    node->stride_h = stride_h;
    node->stride_w = stride_w;
    return FV_OK;
}

static enum fv_status emit_conv(struct importer *im, const struct op *op, struct fv_node *node)
{
    struct fv_fb_table options;
    int8_t act;
    enum fv_status st;
    if ((st = get_options(im, op, OPT_CONV_2D, "Conv2DOptions", &options)) != FV_OK ||
        (st = read_window(im, op, &options, node)) != FV_OK ||
        (st = fv_fb_i8(&options, 3, 0, &act, im->err)) != FV_OK ||
        (st = map_activation(im, op, act, &node->activation)) != FV_OK ||
        (st = check_dilation(im, op, &options, 4, 5)) != FV_OK ||
        (st = weight_blobs(im, op, 4, LAYOUT_AS_IS, node)) != FV_OK)
        return st;
    const struct tensor *w = &im->tensors[op->inputs[1]];
    node->kernel_h = w->dims[1];
    node->kernel_w = w->dims[2];
    return FV_OK;
}

static enum fv_status emit_depthwise(struct importer *im, const struct op *op,
                                     struct fv_node *node)
{
    struct fv_fb_table options;
    int8_t act;
    int32_t multiplier;
    enum fv_status st;
    if ((st = get_options(im, op, OPT_DEPTHWISE_CONV_2D, "DepthwiseConv2DOptions", &options)) !=
            FV_OK ||
        (st = read_window(im, op, &options, node)) != FV_OK ||
        (st = fv_fb_i32(&options, 3, 0, &multiplier, im->err)) != FV_OK ||
        (st = fv_fb_i8(&options, 4, 0, &act, im->err)) != FV_OK ||
        (st = map_activation(im, op, act, &node->activation)) != FV_OK ||
        (st = check_dilation(im, op, &options, 5, 6)) != FV_OK)
        return st;
    if (multiplier != 1)
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "DEPTHWISE_CONV_2D producing tensor '%s' has depth multiplier %d; "
                            "only 1 is supported",
                            out_name(im, op), multiplier);
    if (op->n_inputs >= 2 && op->inputs[1] >= 0) {
        const struct tensor *w = &im->tensors[op->inputs[1]];
        if (w->rank == 4 && w->dims[0] != 1)
            return fv_error_set(im->err, FV_ERR_FORMAT,
                                "DEPTHWISE_CONV_2D producing tensor '%s': filter '%s' must be "
                                "[1,KH,KW,C]",
                                out_name(im, op), w->name);
    }
    if ((st = weight_blobs(im, op, 4, LAYOUT_DEPTHWISE, node)) != FV_OK)
        return st;
    const struct tensor *w = &im->tensors[op->inputs[1]];
    node->kernel_h = w->dims[1];
    node->kernel_w = w->dims[2];
    return FV_OK;
}

static enum fv_status emit_fully_connected(struct importer *im, const struct op *op,
                                           struct fv_node *node)
{
    struct fv_fb_table options;
    int8_t act;
    uint8_t weights_format, keep_num_dims;
    enum fv_status st;
    if ((st = get_options(im, op, OPT_FULLY_CONNECTED, "FullyConnectedOptions", &options)) !=
            FV_OK ||
        (st = fv_fb_i8(&options, 0, 0, &act, im->err)) != FV_OK ||
        (st = fv_fb_u8(&options, 1, 0, &weights_format, im->err)) != FV_OK ||
        (st = fv_fb_u8(&options, 2, 0, &keep_num_dims, im->err)) != FV_OK ||
        (st = map_activation(im, op, act, &node->activation)) != FV_OK)
        return st;
    if (weights_format != 0 || keep_num_dims != 0)
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "FULLY_CONNECTED producing tensor '%s': weights format %u / "
                            "keep_num_dims %u is not supported",
                            out_name(im, op), weights_format, keep_num_dims);
    return weight_blobs(im, op, 2, LAYOUT_AS_IS, node);
}

static enum fv_status emit_max_pool(struct importer *im, const struct op *op,
                                    struct fv_node *node)
{
    struct fv_fb_table options;
    int32_t filter_w, filter_h;
    int8_t act;
    enum fv_activation activation;
    enum fv_status st;
    if ((st = get_options(im, op, OPT_POOL_2D, "Pool2DOptions", &options)) != FV_OK ||
        (st = read_window(im, op, &options, node)) != FV_OK ||
        (st = fv_fb_i32(&options, 3, 0, &filter_w, im->err)) != FV_OK ||
        (st = fv_fb_i32(&options, 4, 0, &filter_h, im->err)) != FV_OK ||
        (st = fv_fb_i8(&options, 5, 0, &act, im->err)) != FV_OK ||
        (st = map_activation(im, op, act, &activation)) != FV_OK)
        return st;
    if (activation != FV_ACT_NONE)
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "MAX_POOL_2D producing tensor '%s' has a fused activation",
                            out_name(im, op));
    if (filter_w < 1 || filter_h < 1 || filter_w > 64 || filter_h > 64)
        return fv_error_set(im->err, FV_ERR_FORMAT,
                            "MAX_POOL_2D producing tensor '%s' has a %dx%d window",
                            out_name(im, op), filter_h, filter_w);
    node->kernel_h = filter_h;
    node->kernel_w = filter_w;
    if (op->n_inputs != 1)
        return fv_error_set(im->err, FV_ERR_FORMAT, "MAX_POOL_2D producing tensor '%s' has %d inputs",
                            out_name(im, op), op->n_inputs);
    return FV_OK;
}

/* ADD or MUL of two activations, or of an activation and a per-channel constant. */
static enum fv_status emit_binary(struct importer *im, const struct op *op, struct fv_node *node)
{
    char buf[32];
    enum fv_status st;
    int tag = op->code == OP_ADD ? OPT_ADD : OPT_MUL;
    struct fv_fb_table options;
    int8_t act;
    if ((st = get_options(im, op, tag, op->code == OP_ADD ? "AddOptions" : "MulOptions",
                          &options)) != FV_OK ||
        (st = fv_fb_i8(&options, 0, 0, &act, im->err)) != FV_OK ||
        (st = map_activation(im, op, act, &node->activation)) != FV_OK)
        return st;
    if (op->code == OP_MUL && node->activation != FV_ACT_NONE)
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "MUL producing tensor '%s' has a fused activation", out_name(im, op));
    if (op->n_inputs != 2 || op->inputs[0] < 0 || op->inputs[1] < 0)
        return fv_error_set(im->err, FV_ERR_FORMAT, "%s producing tensor '%s' needs 2 inputs",
                            builtin_name(op->code, buf), out_name(im, op));
    int a = op->inputs[0], b = op->inputs[1];
    if (!im->tensors[a].data && !im->tensors[b].data) {
        node->n_inputs = 2;
        return FV_OK;
    }
    int x = im->tensors[a].data ? b : a, c = im->tensors[a].data ? a : b;
    if (im->tensors[x].data || !per_channel_constant(im, c, x))
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "%s producing tensor '%s': constant operand '%s' is not one value or "
                            "one per channel",
                            builtin_name(op->code, buf), out_name(im, op), im->tensors[c].name);
    node->inputs[0] = x; /* TFLite index; mapped by the caller */
    node->n_inputs = 1;
    return make_blob(im, c, LAYOUT_VECTOR, 1.0f, &node->blobs[0]);
}

static enum fv_status emit_reshape(struct importer *im, const struct op *op)
{
    if (op->n_inputs < 1 || op->n_inputs > 2 || op->inputs[0] < 0)
        return fv_error_set(im->err, FV_ERR_FORMAT, "RESHAPE producing tensor '%s' has %d inputs",
                            out_name(im, op), op->n_inputs);
    const struct tensor *in = &im->tensors[op->inputs[0]];
    const struct tensor *out = &im->tensors[op->output];
    if (in->rank < 1 || out->rank < 1 || in->dims[0] != out->dims[0] || in->count != out->count)
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "RESHAPE producing tensor '%s' changes the batch size or element "
                            "count",
                            out_name(im, op));
    return FV_OK;
}

/* Translates op (not a pattern member) into one graph node. */
static enum fv_status emit_op(struct importer *im, struct op *op)
{
    char buf[32];
    enum fv_status st;
    struct fv_node node = fv_node_init(FV_OP_RELU, out_name(im, op));
    node.n_inputs = 1;
    node.inputs[0] = op->n_inputs > 0 ? op->inputs[0] : -1;

    if (op->fused == FUSED_PRELU) {
        node.op = FV_OP_PRELU;
        node.inputs[0] = op->fused_x;
        st = make_blob(im, op->fused_slope, LAYOUT_VECTOR, op->slope_scale, &node.blobs[0]);
    } else if (op->fused == FUSED_SOFTMAX) {
        node.op = FV_OP_SOFTMAX;
        node.inputs[0] = op->fused_x;
        st = FV_OK;
    } else {
        if (op->n_outputs != 1 && op->code != OP_CUSTOM)
            return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                                "%s producing tensor '%s' has %d outputs",
                                builtin_name(op->code, buf), out_name(im, op), op->n_outputs);
        switch (op->code) {
        case OP_CONV_2D:
            node.op = FV_OP_CONV2D;
            st = emit_conv(im, op, &node);
            break;
        case OP_DEPTHWISE_CONV_2D:
            node.op = FV_OP_DEPTHWISE_CONV2D;
            st = emit_depthwise(im, op, &node);
            break;
        case OP_FULLY_CONNECTED:
            node.op = FV_OP_FULLY_CONNECTED;
            st = emit_fully_connected(im, op, &node);
            break;
        case OP_MAX_POOL_2D:
            node.op = FV_OP_MAX_POOL2D;
            st = emit_max_pool(im, op, &node);
            break;
        case OP_ADD:
        case OP_MUL:
            node.op = op->code == OP_ADD ? FV_OP_ADD : FV_OP_MUL;
            st = emit_binary(im, op, &node);
            break;
        case OP_RELU:
            node.op = FV_OP_RELU;
            st = op->n_inputs == 1 ? FV_OK
                                   : fv_error_set(im->err, FV_ERR_FORMAT,
                                                  "RELU producing tensor '%s' has %d inputs",
                                                  out_name(im, op), op->n_inputs);
            break;
        case OP_RESHAPE:
            node.op = FV_OP_RESHAPE;
            st = emit_reshape(im, op);
            break;
        case OP_CUSTOM:
            return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                                "unsupported TFLite custom op '%s' producing tensor '%s'",
                                op->custom ? op->custom : "?", out_name(im, op));
        default:
            return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                                "unsupported TFLite op %s producing tensor '%s'",
                                builtin_name(op->code, buf), out_name(im, op));
        }
    }
    if (st != FV_OK)
        return st;
    if (node.inputs[0] < 0)
        return fv_error_set(im->err, FV_ERR_FORMAT, "%s producing tensor '%s' has no input",
                            builtin_name(op->code, buf), out_name(im, op));
    for (int i = 0; i < node.n_inputs; i++)
        if ((st = graph_tensor(im, i == 0 ? node.inputs[0] : op->inputs[1], 0,
                               &node.inputs[i])) != FV_OK)
            return st;
    if ((st = graph_tensor(im, op->output, node.op == FV_OP_RESHAPE, &node.output)) != FV_OK)
        return st;
    int n = fv_graph_add_node(im->g, &node, im->err);
    return n < 0 ? (enum fv_status)n : FV_OK;
}

static enum fv_status build_graph(struct importer *im)
{
    enum fv_status st;
    struct tensor *input = &im->tensors[im->input];
    int index;

    if ((st = check_float(im, input)) != FV_OK)
        return st;
    if (input->rank != 4 || input->data || input->dims[3] < 1)
        return fv_error_set(im->err, FV_ERR_UNSUPPORTED,
                            "input tensor '%s' must be a [N,H,W,C] activation", input->name);
    /* A fully convolutional net exported without a fixed size: use the
     * smallest window it was trained on (12x12 for MTCNN's P-Net). */
    im->dynamic_input = input->dims[1] < 1 || input->dims[2] < 1 ||
                        (input->dims[1] == 1 && input->dims[2] == 1);
    if ((st = graph_tensor(im, im->input, 1, &index)) != FV_OK)
        return st;
    fv_graph_set_input(im->g, index);
    struct fv_model_meta *meta = fv_graph_meta(im->g);
    meta->input_h = im->dynamic_input ? 12 : input->dims[1];
    meta->input_w = im->dynamic_input ? 12 : input->dims[2];
    meta->input_c = input->dims[3];
    meta->pixel_mean = 127.5f;
    meta->pixel_scale = 0.0078125f;
    meta->transpose_input = 0;
    meta->embedding[0] = '\0';

    find_patterns(im);
    for (int i = 0; i < im->n_ops; i++)
        if (im->ops[i].fused != FUSED_MEMBER && (st = emit_op(im, &im->ops[i])) != FV_OK)
            return st;

    for (int i = 0; i < im->n_outputs; i++) {
        struct tensor *t = &im->tensors[im->outputs[i]];
        if (t->graph_index < 0)
            return fv_error_set(im->err, FV_ERR_FORMAT, "output '%s' is not computed by any op",
                                t->name);
        if ((st = fv_graph_add_output(im->g, t->graph_index)) != FV_OK)
            return fv_error_set(im->err, st, "cannot add output '%s'", t->name);
    }
    if ((st = fv_graph_compact(im->g, im->err)) != FV_OK ||
        (st = fv_graph_validate(im->g, im->err)) != FV_OK)
        return st;
    return FV_OK;
}

enum fv_status fv_tflite_import(const uint8_t *data, size_t size, struct fv_graph **out,
                                struct fv_error *err)
{
    struct importer im;
    enum fv_status st;

    FV_ASSERT(out);
    *out = NULL;
    memset(&im, 0, sizeof im);
    im.err = err;
    im.input = -1;
    if ((st = read_model(&im, data, size)) != FV_OK)
        goto fail;
    im.g = fv_graph_new();
    if (!im.g) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory creating the graph");
        goto fail;
    }
    if ((st = build_graph(&im)) != FV_OK)
        goto fail;
    *out = im.g;
    im.g = NULL;
fail:
    fv_graph_free(im.g);
    free(im.tensors);
    free(im.ops);
    return st;
}

enum fv_status fv_tflite_import_file(const char *path, struct fv_graph **out,
                                     struct fv_error *err)
{
    uint8_t *data = NULL;
    enum fv_status st;
    FILE *f = NULL;
    long size;

    FV_ASSERT(out && path);
    *out = NULL;
    f = fopen(path, "rb");
    if (!f) {
        st = fv_error_set(err, FV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = fv_error_set(err, FV_ERR_IO, "%s: cannot determine the size", path);
        goto fail;
    }
    if ((uint64_t)size > FV_TFLITE_MAX_FILE_SIZE) {
        st = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: %ld bytes exceeds the limit of %zu", path,
                          size, FV_TFLITE_MAX_FILE_SIZE);
        goto fail;
    }
    data = malloc(size > 0 ? (size_t)size : 1);
    if (!data) {
        st = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory for %ld bytes", path, size);
        goto fail;
    }
    if (fread(data, 1, (size_t)size, f) != (size_t)size) {
        st = fv_error_set(err, FV_ERR_IO, "%s: read failed", path);
        goto fail;
    }
    if ((st = fv_tflite_import(data, (size_t)size, out, err)) != FV_OK)
        fv_error_prefix(err, "%s: ", path);
fail:
    if (f)
        fclose(f);
    free(data);
    return st;
}
