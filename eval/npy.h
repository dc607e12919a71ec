/* npy.h - NumPy .npy files holding one float32 matrix (format version 1.0).
 *
 *   FILE *f = fopen("x.npy", "wb");
 *   fv_npy_write_f32(f, x, rows, cols, &err);   // numpy.load("x.npy"): float32, (rows, cols)
 *   ...
 *   float *y; size_t r, c;
 *   if (fv_npy_read_f32("x.npy", 1 << 30, &y, &r, &c, &err) == FV_OK) { ...; free(y); }
 *
 * The writer emits exactly the bytes numpy.save writes for a C-ordered little-endian
 * float32 array of that shape (numpy >= 1.24: the header is padded to a multiple of 64
 * bytes and leaves room for the first dimension to grow to 21 digits), whatever the
 * byte order of this machine. The reader accepts format versions 1.0 and 2.0 with
 * dtype '<f4', C order and a two-dimensional shape, and treats its input as untrusted:
 * the header is parsed strictly and the data size must match the shape exactly.
 */
#ifndef FV_EVAL_NPY_H
#define FV_EVAL_NPY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model/status.h"

/* The largest header fv_npy_header writes (rows and cols up to 20 digits each). */
#define FV_NPY_HEADER_MAX 192

/* Writes the header (magic, version, length, dictionary, padding) for a rows x cols
 * float32 matrix to buf; returns its length, a multiple of 64, or 0 when cap is too
 * small (FV_NPY_HEADER_MAX always suffices). */
size_t fv_npy_header(size_t rows, size_t cols, uint8_t *buf, size_t cap);

/* Writes header and data (rows x cols, row-major) to out. FV_ERR_IO when a write fails;
 * the caller owns and closes out. */
enum fv_status fv_npy_write_f32(FILE *out, const float *x, size_t rows, size_t cols,
                                struct fv_error *err);

/* Parses size bytes of an .npy file at data; source names it in error messages. On
 * success *x is a malloc'd rows x cols matrix owned by the caller (a valid pointer
 * even when rows * cols is 0); on failure *x is NULL and err says what is wrong. */
enum fv_status fv_npy_parse_f32(const uint8_t *data, size_t size, const char *source,
                                float **x, size_t *rows, size_t *cols, struct fv_error *err);

/* fv_npy_parse_f32 on the file at path, which may be at most max_bytes long. */
enum fv_status fv_npy_read_f32(const char *path, size_t max_bytes, float **x, size_t *rows,
                               size_t *cols, struct fv_error *err);

#endif
