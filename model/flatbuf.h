/* flatbuf.h - a minimal, bounds-checked, read-only FlatBuffers accessor.
 *
 *   struct fv_fb fb;
 *   struct fv_fb_table root, sub;
 *   struct fv_fb_vector v;
 *   uint32_t version;
 *   if (fv_fb_init(&fb, data, size, &err) != FV_OK ||
 *       fv_fb_root(&fb, &root, &err) != FV_OK ||
 *       fv_fb_u32(&root, 0, 0, &version, &err) != FV_OK ||
 *       fv_fb_vector(&root, 2, FV_FB_OFFSET_SIZE, &v, &err) != FV_OK)
 *       return err.status;
 *   for (uint32_t i = 0; i < v.count; i++)
 *       if (fv_fb_vector_table(&v, i, &sub, &err) != FV_OK) ...
 *
 * The buffer is untrusted. Every offset, length and alignment is checked
 * against the buffer size (in 64-bit arithmetic) before anything is read, and
 * a failure is reported as FV_ERR_FORMAT (FV_ERR_TOO_LARGE for the depth limit)
 * with the position in the message. Nothing is copied or allocated: tables,
 * vectors and strings point into the caller's buffer, which must outlive them.
 * Fields are numbered from 0 in schema order (a union takes two ids: its type
 * byte, then its value). Absent fields read as their schema default; absent
 * tables, vectors and strings come back with present = 0 / NULL.
 */
#ifndef FV_FLATBUF_H
#define FV_FLATBUF_H

#include <stddef.h>
#include <stdint.h>

#include "model/status.h"

/* FlatBuffers addresses 32-bit offsets: larger buffers are not valid. */
#define FV_FB_MAX_SIZE ((uint64_t)INT32_MAX)
/* Tables reached from the root through more links than this are refused. */
#define FV_FB_MAX_DEPTH 32
/* Size of one element of a vector of tables or strings. */
#define FV_FB_OFFSET_SIZE 4

struct fv_fb {
    const uint8_t *data;
    uint32_t size;
};

struct fv_fb_table {
    const struct fv_fb *fb;
    int present;           /* 0: the field that should hold this table is absent */
    int depth;             /* links followed from the root (root = 0) */
    uint32_t pos;          /* start of the table (its vtable offset) */
    uint32_t vtable;       /* start of its vtable */
    uint16_t vtable_size;  /* bytes, header included */
    uint16_t inline_size;  /* bytes of the table's inline part */
};

struct fv_fb_vector {
    const struct fv_fb *fb;
    int present;
    int depth;             /* depth of the table that holds it */
    uint32_t pos;          /* first element */
    uint32_t count;
    uint32_t elem_size;
};

/* Wraps data (not copied; must outlive every accessor). Fails on buffers
 * shorter than a root offset plus identifier, or larger than FV_FB_MAX_SIZE. */
enum fv_status fv_fb_init(struct fv_fb *fb, const uint8_t *data, size_t size,
                          struct fv_error *err);
/* 1 if the 4-byte file identifier after the root offset equals ident. */
int fv_fb_has_identifier(const struct fv_fb *fb, const char ident[4]);
/* The root table, checked. */
enum fv_status fv_fb_root(const struct fv_fb *fb, struct fv_fb_table *root,
                          struct fv_error *err);

/* 1 if field id is stored in the table (non-zero vtable entry). */
int fv_fb_has_field(const struct fv_fb_table *t, int id);

/* Scalar fields: *out = the stored value, or def when the field is absent. */
enum fv_status fv_fb_u8(const struct fv_fb_table *t, int id, uint8_t def, uint8_t *out,
                        struct fv_error *err);
enum fv_status fv_fb_i8(const struct fv_fb_table *t, int id, int8_t def, int8_t *out,
                        struct fv_error *err);
enum fv_status fv_fb_i32(const struct fv_fb_table *t, int id, int32_t def, int32_t *out,
                         struct fv_error *err);
enum fv_status fv_fb_u32(const struct fv_fb_table *t, int id, uint32_t def, uint32_t *out,
                         struct fv_error *err);
enum fv_status fv_fb_u64(const struct fv_fb_table *t, int id, uint64_t def, uint64_t *out,
                         struct fv_error *err);
enum fv_status fv_fb_f32(const struct fv_fb_table *t, int id, float def, float *out,
                         struct fv_error *err);

/* Sub-table in field id (out->present = 0 when absent). */
enum fv_status fv_fb_table(const struct fv_fb_table *t, int id, struct fv_fb_table *out,
                           struct fv_error *err);
/* NUL-terminated string in field id: *out points into the buffer, or is NULL
 * when absent; *len (may be NULL) gets its length. */
enum fv_status fv_fb_string(const struct fv_fb_table *t, int id, const char **out,
                            uint32_t *len, struct fv_error *err);
/* Vector in field id whose elements are elem_size bytes (1, 2, 4 or 8; use
 * FV_FB_OFFSET_SIZE for tables and strings). Absent: present = 0, count = 0. */
enum fv_status fv_fb_vector(const struct fv_fb_table *t, int id, uint32_t elem_size,
                            struct fv_fb_vector *out, struct fv_error *err);

/* Elements of a checked vector; i must be < count and elem_size must match
 * (programmer errors, asserted). Values are read as little-endian. */
uint8_t fv_fb_vector_u8(const struct fv_fb_vector *v, uint32_t i);
int32_t fv_fb_vector_i32(const struct fv_fb_vector *v, uint32_t i);
float fv_fb_vector_f32(const struct fv_fb_vector *v, uint32_t i);
/* The raw bytes of the vector (count * elem_size of them). */
const uint8_t *fv_fb_vector_bytes(const struct fv_fb_vector *v);
/* Table that element i of a vector of tables refers to, checked. */
enum fv_status fv_fb_vector_table(const struct fv_fb_vector *v, uint32_t i,
                                  struct fv_fb_table *out, struct fv_error *err);

#endif
