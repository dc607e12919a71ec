/* flatbuf.c - bounds-checked read-only FlatBuffers access (see flatbuf.h). */
#include "model/flatbuf.h"

#include <string.h>

/* Little-endian loads that never make an unaligned access through a pointer. */
static uint16_t load_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t load_u64(const uint8_t *p)
{
    return (uint64_t)load_u32(p) | ((uint64_t)load_u32(p + 4) << 32);
}

/* Checks that [pos, pos + len) lies inside the buffer and pos is a multiple of
 * align. pos and len are 64-bit so that no sum of two 32-bit values wraps. */
static enum fv_status check_range(const struct fv_fb *fb, uint64_t pos, uint64_t len,
                                  uint32_t align, const char *what, struct fv_error *err)
{
    if (pos > fb->size || len > fb->size - pos)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "malformed FlatBuffer: %s at offset %llu (%llu bytes) runs past "
                            "the end of the %u-byte buffer",
                            what, (unsigned long long)pos, (unsigned long long)len, fb->size);
    if (align > 1 && pos % align != 0)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "malformed FlatBuffer: %s at offset %llu is not %u-byte aligned",
                            what, (unsigned long long)pos, align);
    return FV_OK;
}

enum fv_status fv_fb_init(struct fv_fb *fb, const uint8_t *data, size_t size,
                          struct fv_error *err)
{
    FV_ASSERT(fb);
    memset(fb, 0, sizeof *fb);
    if (!data || size == 0)
        return fv_error_set(err, FV_ERR_FORMAT, "malformed FlatBuffer: empty buffer");
    if (size < 8)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "malformed FlatBuffer: %zu bytes is too short for a root offset "
                            "and file identifier",
                            size);
    if ((uint64_t)size > FV_FB_MAX_SIZE)
        return fv_error_set(err, FV_ERR_TOO_LARGE,
                            "FlatBuffer of %zu bytes exceeds the format's limit of %llu", size,
                            (unsigned long long)FV_FB_MAX_SIZE);
    fb->data = data;
    fb->size = (uint32_t)size;
    return FV_OK;
}

int fv_fb_has_identifier(const struct fv_fb *fb, const char ident[4])
{
    return fb && fb->data && fb->size >= 8 && memcmp(fb->data + 4, ident, 4) == 0;
}

static enum fv_status table_at(const struct fv_fb *fb, uint64_t pos, int depth,
                               struct fv_fb_table *out, struct fv_error *err)
{
    memset(out, 0, sizeof *out);
    if (depth > FV_FB_MAX_DEPTH)
        return fv_error_set(err, FV_ERR_TOO_LARGE,
                            "malformed FlatBuffer: tables nested deeper than %d",
                            FV_FB_MAX_DEPTH);
    enum fv_status st = check_range(fb, pos, 4, 4, "table", err);
    if (st != FV_OK)
        return st;
    int32_t back = (int32_t)load_u32(fb->data + pos);
    int64_t vtable = (int64_t)pos - (int64_t)back;
    if (vtable < 0)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "malformed FlatBuffer: vtable of the table at offset %llu lies "
                            "before the start of the buffer",
                            (unsigned long long)pos);
    st = check_range(fb, (uint64_t)vtable, 4, 2, "vtable", err);
    if (st != FV_OK)
        return st;
    uint16_t vtable_size = load_u16(fb->data + vtable);
    uint16_t inline_size = load_u16(fb->data + vtable + 2);
    if (vtable_size < 4 || vtable_size % 2 != 0)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "malformed FlatBuffer: vtable at offset %lld has bad size %u",
                            (long long)vtable, vtable_size);
    st = check_range(fb, (uint64_t)vtable, vtable_size, 2, "vtable", err);
    if (st != FV_OK)
        return st;
    if (inline_size < 4)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "malformed FlatBuffer: table at offset %llu has bad size %u",
                            (unsigned long long)pos, inline_size);
    st = check_range(fb, pos, inline_size, 4, "table", err);
    if (st != FV_OK)
        return st;
    out->fb = fb;
    out->present = 1;
    out->depth = depth;
    out->pos = (uint32_t)pos;
    out->vtable = (uint32_t)vtable;
    out->vtable_size = vtable_size;
    out->inline_size = inline_size;
    return FV_OK;
}

enum fv_status fv_fb_root(const struct fv_fb *fb, struct fv_fb_table *root,
                          struct fv_error *err)
{
    FV_ASSERT(fb && root);
    memset(root, 0, sizeof *root);
    if (!fb->data || fb->size < 8)
        return fv_error_set(err, FV_ERR_FORMAT, "malformed FlatBuffer: empty buffer");
    uint32_t offset = load_u32(fb->data);
    if (offset < 4)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "malformed FlatBuffer: root offset %u points into itself", offset);
    enum fv_status st = table_at(fb, offset, 0, root, err);
    if (st != FV_OK)
        return fv_error_prefix(err, "root table: ");
    return FV_OK;
}

/* Vtable entry of field id: 0 when absent. */
static uint16_t field_offset(const struct fv_fb_table *t, int id)
{
    FV_ASSERT(id >= 0 && id < 0x7ffe);
    if (!t || !t->present)
        return 0;
    uint32_t entry = 4 + 2 * (uint32_t)id;
    if (entry + 2 > t->vtable_size)
        return 0;
    return load_u16(t->fb->data + t->vtable + entry);
}

int fv_fb_has_field(const struct fv_fb_table *t, int id)
{
    return field_offset(t, id) != 0;
}

/* Position of field id's inline value of the given size: 0 if absent. The
 * value must lie inside the table's inline part and be aligned to its size. */
static enum fv_status field_pos(const struct fv_fb_table *t, int id, uint32_t size,
                                uint32_t *pos, struct fv_error *err)
{
    *pos = 0;
    uint16_t off = field_offset(t, id);
    if (off == 0)
        return FV_OK;
    if ((uint32_t)off + size > t->inline_size)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "malformed FlatBuffer: field %d of the table at offset %u lies "
                            "outside the table's %u bytes",
                            id, t->pos, t->inline_size);
    uint64_t p = (uint64_t)t->pos + off;
    enum fv_status st = check_range(t->fb, p, size, size, "field", err);
    if (st != FV_OK)
        return st;
    *pos = (uint32_t)p;
    return FV_OK;
}

enum fv_status fv_fb_u8(const struct fv_fb_table *t, int id, uint8_t def, uint8_t *out,
                        struct fv_error *err)
{
    uint32_t pos;
    enum fv_status st = field_pos(t, id, 1, &pos, err);
    *out = st == FV_OK && pos ? t->fb->data[pos] : def;
    return st;
}

enum fv_status fv_fb_i8(const struct fv_fb_table *t, int id, int8_t def, int8_t *out,
                        struct fv_error *err)
{
    uint8_t u;
    enum fv_status st = fv_fb_u8(t, id, (uint8_t)def, &u, err);
    *out = (int8_t)u;
    return st;
}

enum fv_status fv_fb_u32(const struct fv_fb_table *t, int id, uint32_t def, uint32_t *out,
                         struct fv_error *err)
{
    uint32_t pos;
    enum fv_status st = field_pos(t, id, 4, &pos, err);
    *out = st == FV_OK && pos ? load_u32(t->fb->data + pos) : def;
    return st;
}

enum fv_status fv_fb_i32(const struct fv_fb_table *t, int id, int32_t def, int32_t *out,
                         struct fv_error *err)
{
    uint32_t u;
    enum fv_status st = fv_fb_u32(t, id, (uint32_t)def, &u, err);
    *out = (int32_t)u;
    return st;
}

enum fv_status fv_fb_u64(const struct fv_fb_table *t, int id, uint64_t def, uint64_t *out,
                         struct fv_error *err)
{
    uint32_t pos;
    enum fv_status st = field_pos(t, id, 8, &pos, err);
    *out = st == FV_OK && pos ? load_u64(t->fb->data + pos) : def;
    return st;
}

enum fv_status fv_fb_f32(const struct fv_fb_table *t, int id, float def, float *out,
                         struct fv_error *err)
{
    uint32_t u;
    memcpy(&u, &def, sizeof u);
    enum fv_status st = fv_fb_u32(t, id, u, &u, err);
    memcpy(out, &u, sizeof *out);
    return st;
}

/* Follows the forward offset stored at pos (a field or a vector element). */
static enum fv_status follow(const struct fv_fb *fb, uint32_t pos, uint64_t *target,
                             struct fv_error *err)
{
    uint32_t rel = load_u32(fb->data + pos);
    if (rel == 0)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "malformed FlatBuffer: zero offset at offset %u", pos);
    *target = (uint64_t)pos + rel;
    return check_range(fb, *target, 4, 4, "offset target", err);
}

enum fv_status fv_fb_table(const struct fv_fb_table *t, int id, struct fv_fb_table *out,
                           struct fv_error *err)
{
    memset(out, 0, sizeof *out);
    uint32_t pos;
    uint64_t target;
    enum fv_status st = field_pos(t, id, 4, &pos, err);
    if (st != FV_OK || pos == 0)
        return st;
    st = follow(t->fb, pos, &target, err);
    if (st != FV_OK)
        return st;
    return table_at(t->fb, target, t->depth + 1, out, err);
}

enum fv_status fv_fb_string(const struct fv_fb_table *t, int id, const char **out,
                            uint32_t *len, struct fv_error *err)
{
    *out = NULL;
    if (len)
        *len = 0;
    uint32_t pos;
    uint64_t target;
    enum fv_status st = field_pos(t, id, 4, &pos, err);
    if (st != FV_OK || pos == 0)
        return st;
    st = follow(t->fb, pos, &target, err);
    if (st != FV_OK)
        return st;
    uint32_t n = load_u32(t->fb->data + target);
    /* n bytes plus the terminating NUL */
    st = check_range(t->fb, target + 4, (uint64_t)n + 1, 1, "string", err);
    if (st != FV_OK)
        return st;
    if (t->fb->data[target + 4 + n] != 0)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "malformed FlatBuffer: string at offset %llu is not terminated",
                            (unsigned long long)target);
    *out = (const char *)t->fb->data + target + 4;
    if (len)
        *len = n;
    return FV_OK;
}

enum fv_status fv_fb_vector(const struct fv_fb_table *t, int id, uint32_t elem_size,
                            struct fv_fb_vector *out, struct fv_error *err)
{
    FV_ASSERT(elem_size == 1 || elem_size == 2 || elem_size == 4 || elem_size == 8);
    memset(out, 0, sizeof *out);
    out->elem_size = elem_size;
    uint32_t pos;
    uint64_t target;
    enum fv_status st = field_pos(t, id, 4, &pos, err);
    if (st != FV_OK || pos == 0)
        return st;
    st = follow(t->fb, pos, &target, err);
    if (st != FV_OK)
        return st;
    uint32_t count = load_u32(t->fb->data + target);
    st = check_range(t->fb, target + 4, (uint64_t)count * elem_size, elem_size, "vector", err);
    if (st != FV_OK)
        return st;
    out->fb = t->fb;
    out->present = 1;
    out->depth = t->depth;
    out->pos = (uint32_t)(target + 4);
    out->count = count;
    return FV_OK;
}

static const uint8_t *element(const struct fv_fb_vector *v, uint32_t i, uint32_t size)
{
    FV_ASSERT(v && v->present && i < v->count && v->elem_size == size);
    return v->fb->data + v->pos + (uint64_t)i * size;
}

uint8_t fv_fb_vector_u8(const struct fv_fb_vector *v, uint32_t i)
{
    return *element(v, i, 1);
}

int32_t fv_fb_vector_i32(const struct fv_fb_vector *v, uint32_t i)
{
    return (int32_t)load_u32(element(v, i, 4));
}

float fv_fb_vector_f32(const struct fv_fb_vector *v, uint32_t i)
{
    uint32_t u = load_u32(element(v, i, 4));
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

const uint8_t *fv_fb_vector_bytes(const struct fv_fb_vector *v)
{
    FV_ASSERT(v);
    return v->present ? v->fb->data + v->pos : NULL;
}

enum fv_status fv_fb_vector_table(const struct fv_fb_vector *v, uint32_t i,
                                  struct fv_fb_table *out, struct fv_error *err)
{
    memset(out, 0, sizeof *out);
    uint32_t pos = (uint32_t)(element(v, i, FV_FB_OFFSET_SIZE) - v->fb->data);
    uint64_t target;
    enum fv_status st = follow(v->fb, pos, &target, err);
    if (st != FV_OK)
        return st;
    return table_at(v->fb, target, v->depth + 1, out, err);
}
