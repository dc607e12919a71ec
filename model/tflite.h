/* tflite.h - imports a float32 TensorFlow Lite model into a facever graph.
 *
 *   struct fv_graph *g = NULL;
 *   struct fv_error err = {0};
 *   if (fv_tflite_import_file("models/tflite/MobileFaceNet.tflite", &g, &err) != FV_OK)
 *       fprintf(stderr, "facever: %s\n", err.message);
 *   ... fv_graph_meta(g)->embedding, fv_model_from_graph(g, ...) ...
 *   fv_graph_free(g);
 *
 * Reads subgraph 0 of a "TFL3" FlatBuffer, treating every byte as untrusted.
 * The batch dimension is dropped (TFLite [N,H,W,C] becomes (H,W,C), [N,C]
 * becomes (1,1,C)); constant tensors become blobs in graph.h's layouts. The
 * element-wise spellings of PReLU (MTCNN: relu(x) + alpha * -relu(-x);
 * MobileFaceNet: relu(x) + m * (x - |x|)) and of softmax (max, sub, exp, sum,
 * div over the last axis) are recognised and replaced by single PRELU and
 * SOFTMAX nodes; any op left that the graph cannot express is refused with
 * FV_ERR_UNSUPPORTED naming the op and the tensor it produces. The metadata
 * gets the input size and the (x - 127.5) / 128 pixel scaling; the caller
 * sets the name, embedding tensor, template and threshold.
 */
#ifndef FV_TFLITE_H
#define FV_TFLITE_H

#include <stddef.h>
#include <stdint.h>

#include "model/graph.h"
#include "model/status.h"

/* Largest model file fv_tflite_import_file reads. */
#define FV_TFLITE_MAX_FILE_SIZE ((size_t)1 << 30)

/* Imports a TFLite model (subgraph 0) into a new, validated graph; *out is
 * owned by the caller (fv_graph_free). data is only read during the call. On
 * failure *out is NULL and err says why. */
enum fv_status fv_tflite_import(const uint8_t *data, size_t size, struct fv_graph **out,
                                struct fv_error *err);
/* As fv_tflite_import, reading the file at path; messages start with path. */
enum fv_status fv_tflite_import_file(const char *path, struct fv_graph **out,
                                     struct fv_error *err);

#endif
