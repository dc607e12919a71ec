/* model_file.h - facever's own model file format: read and write graphs.
 *
 *   fv_model_file_save(graph, "out.fvm", &err);
 *   struct fv_graph *g;
 *   fv_model_file_load("out.fvm", &g, &err);
 *
 * Layout (all integers little-endian):
 *   bytes 0-7    magic "FVMODEL\0"
 *   bytes 8-11   u32 format version (FV_MODEL_FILE_VERSION)
 *   bytes 12-15  u32 length L of the JSON header
 *   bytes 16..   the JSON header (UTF-8, L bytes), zero-padded to a multiple of 64
 *   then         the data section: float32 little-endian blobs, each starting at a
 *                multiple of 64 bytes from the start of the data section
 * The JSON header holds "format" ("facever-model"), "data_size" (bytes of the
 * data section: the file must be exactly that long), "meta" (name, input size, pixel normalisation,
 * transpose_input, embedding tensor, template size, threshold), "input",
 * "outputs", "tensors" (name, shape), "blobs" (name, shape, byte offset) and
 * "nodes" (op, name, input/output tensor indices, blob indices, kernel, stride,
 * padding, activation, epsilon). docs/model-format.md describes every field.
 *
 * The reader treats the file as untrusted: every size, count, index and offset
 * is checked before use, and errors name the field that is wrong.
 */
#ifndef FV_MODEL_FILE_H
#define FV_MODEL_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "model/graph.h"
#include "model/status.h"

#define FV_MODEL_FILE_VERSION 1
#define FV_MODEL_FILE_MAX_HEADER (16u << 20)

/* Serialises g into a malloc'd buffer (*out, *size); caller frees. */
enum fv_status fv_model_file_write(struct fv_graph *g, uint8_t **out, size_t *size,
                                   struct fv_error *err);
/* Writes g to path atomically (temporary file + rename). */
enum fv_status fv_model_file_save(struct fv_graph *g, const char *path, struct fv_error *err);
/* Parses a model file image into a new graph (*out, caller frees). The graph is
 * not yet validated: fv_model_from_graph() does that. */
enum fv_status fv_model_file_read(const uint8_t *data, size_t size, struct fv_graph **out,
                                  struct fv_error *err);
/* Reads a whole file; errors are prefixed with the path. */
enum fv_status fv_model_file_load(const char *path, struct fv_graph **out, struct fv_error *err);

/* Reads a whole file into memory, refusing files over max_bytes. */
enum fv_status fv_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *size,
                            struct fv_error *err);

#endif
