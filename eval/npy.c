/* npy.c - NumPy .npy float32 matrices: a writer byte-identical to numpy.save, a strict reader. */
#include "eval/npy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_file.h"

static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* numpy aligns the data to 64 bytes and pads the header so that the first dimension can
 * later grow in place to 21 digits (numpy/lib/format.py: ARRAY_ALIGN, GROWTH_AXIS_MAX_DIGITS). */
#define NPY_ALIGN 64
#define NPY_GROWTH_DIGITS 21

size_t fv_npy_header(size_t rows, size_t cols, uint8_t *buf, size_t cap)
{
    char dict[FV_NPY_HEADER_MAX];
    int len = snprintf(dict, sizeof dict,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", rows,
                       cols);
    char digits[32];
    int row_digits = snprintf(digits, sizeof digits, "%zu", rows);
    if (len < 0 || (size_t)len >= sizeof dict)
        return 0;
    for (int i = row_digits; i < NPY_GROWTH_DIGITS && (size_t)len + 1 < sizeof dict; i++)
        dict[len++] = ' ';
    /* As numpy does: the text plus its newline, then spaces up to the next multiple of 64
     * of the whole header; when it already ends on one, a full 64 spaces are added. */
    size_t text = (size_t)len + 1;
    size_t pad = NPY_ALIGN - (10 + text) % NPY_ALIGN;
    size_t total = 10 + text + pad;
    if (total > cap || text + pad > 0xffff)
        return 0;
    memcpy(buf, npy_magic, 6);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (uint8_t)((text + pad) & 0xff);
    buf[9] = (uint8_t)((text + pad) >> 8);
    memcpy(buf + 10, dict, (size_t)len);
    memset(buf + 10 + len, ' ', pad);
    buf[total - 1] = '\n';
    return total;
}

static void store_le32(uint8_t *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static float load_le32(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

enum fv_status fv_npy_write_f32(FILE *out, const float *x, size_t rows, size_t cols,
                                struct fv_error *err)
{
    uint8_t header[FV_NPY_HEADER_MAX];
    size_t hlen = fv_npy_header(rows, cols, header, sizeof header);
    if (hlen == 0 || (cols && rows > SIZE_MAX / 4 / cols))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "npy: shape (%zu, %zu) too large", rows, cols);
    if (fwrite(header, 1, hlen, out) != hlen)
        return fv_error_set(err, FV_ERR_IO, "npy: write failed: %s", strerror(errno));
    /* Through a small buffer so the bytes are little-endian on any machine. */
    uint8_t buf[4096];
    size_t total = rows * cols, done = 0;
    while (done < total) {
        size_t m = total - done < sizeof buf / 4 ? total - done : sizeof buf / 4;
        for (size_t i = 0; i < m; i++)
            store_le32(buf + 4 * i, x[done + i]);
        if (fwrite(buf, 4, m, out) != m)
            return fv_error_set(err, FV_ERR_IO, "npy: write failed: %s", strerror(errno));
        done += m;
    }
    return FV_OK;
}

/* ---- reader: a Python dict literal of exactly the three keys numpy writes ---- */

struct cursor {
    const char *p, *end;
};

static void skip_space(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static int take(struct cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string (no escapes; numpy's keys and '<f4' need none) into out. */
static int take_string(struct cursor *c, char *out, size_t cap)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return 0;
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || n + 1 >= cap)
            return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return 0;
    c->p++;
    out[n] = '\0';
    return 1;
}

static int take_word(struct cursor *c, const char *word)
{
    skip_space(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, word, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* A non-negative decimal integer below 2^53 (any real shape is far below). */
static int take_dim(struct cursor *c, size_t *out)
{
    skip_space(c);
    uint64_t v = 0;
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        v = v * 10 + (uint64_t)(*c->p++ - '0');
        if (v > ((uint64_t)1 << 53))
            return 0;
    }
    if (c->p == start || (sizeof(size_t) < 8 && v > SIZE_MAX))
        return 0;
    *out = (size_t)v;
    return 1;
}

static enum fv_status parse_dict(struct cursor *c, const char *source, size_t *rows,
                                 size_t *cols, struct fv_error *err)
{
    int have_descr = 0, have_order = 0, have_shape = 0;
    if (!take(c, '{'))
        return fv_error_set(err, FV_ERR_FORMAT, "%s: npy header is not a dictionary", source);
    while (!take(c, '}')) {
        char key[32], value[32];
        if (!take_string(c, key, sizeof key) || !take(c, ':'))
            return fv_error_set(err, FV_ERR_FORMAT, "%s: malformed npy header", source);
        if (strcmp(key, "descr") == 0 && !have_descr) {
            if (!take_string(c, value, sizeof value))
                return fv_error_set(err, FV_ERR_FORMAT, "%s: malformed npy descr", source);
            if (strcmp(value, "<f4") != 0)
                return fv_error_set(err, FV_ERR_UNSUPPORTED,
                                    "%s: npy dtype '%s', expected little-endian float32 '<f4'",
                                    source, value);
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_order) {
            if (take_word(c, "True"))
                return fv_error_set(err, FV_ERR_UNSUPPORTED,
                                    "%s: npy array in Fortran order, expected C order", source);
            if (!take_word(c, "False"))
                return fv_error_set(err, FV_ERR_FORMAT, "%s: malformed npy fortran_order", source);
            have_order = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            if (!take(c, '(') || !take_dim(c, rows) || !take(c, ',') || !take_dim(c, cols))
                return fv_error_set(err, FV_ERR_UNSUPPORTED,
                                    "%s: npy shape is not two-dimensional", source);
            take(c, ',');
            if (!take(c, ')'))
                return fv_error_set(err, FV_ERR_UNSUPPORTED,
                                    "%s: npy shape is not two-dimensional", source);
            have_shape = 1;
        } else {
            return fv_error_set(err, FV_ERR_FORMAT, "%s: unexpected or repeated npy key '%s'",
                                source, key);
        }
        if (!take(c, ',')) {
            if (!take(c, '}'))
                return fv_error_set(err, FV_ERR_FORMAT, "%s: malformed npy header", source);
            break;
        }
    }
    if (!have_descr || !have_order || !have_shape)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "%s: npy header lacks descr, fortran_order or shape", source);
    skip_space(c);
    if (c->p != c->end)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: text after the npy header dictionary", source);
    return FV_OK;
}

enum fv_status fv_npy_parse_f32(const uint8_t *data, size_t size, const char *source,
                                float **x, size_t *rows, size_t *cols, struct fv_error *err)
{
    *x = NULL;
    if (size < 10 || memcmp(data, npy_magic, 6) != 0)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: not a NumPy .npy file", source);
    size_t start, hlen;
    if (data[6] == 1 && data[7] == 0) {
        hlen = (size_t)data[8] | (size_t)data[9] << 8;
        start = 10;
    } else if (data[6] == 2 && data[7] == 0 && size >= 12) {
        hlen = (size_t)data[8] | (size_t)data[9] << 8 | (size_t)data[10] << 16 |
               (size_t)data[11] << 24;
        start = 12;
    } else {
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: npy format version %u.%u", source,
                            data[6], data[7]);
    }
    if (hlen > size - start || hlen == 0 || hlen > 65536 || data[start + hlen - 1] != '\n')
        return fv_error_set(err, FV_ERR_FORMAT, "%s: truncated or malformed npy header", source);
    struct cursor c = {(const char *)data + start, (const char *)data + start + hlen - 1};
    for (const char *p = c.p; p < c.end; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            return fv_error_set(err, FV_ERR_FORMAT, "%s: npy header is not printable text", source);
    size_t r = 0, k = 0;
    enum fv_status st = parse_dict(&c, source, &r, &k, err);
    if (st)
        return st;
    size_t body = size - start - hlen;
    if ((k && r > SIZE_MAX / 4 / k) || r * k * 4 != body)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "%s: npy data is %zu bytes, shape (%zu, %zu) needs %zu", source, body,
                            r, k, (k && r > SIZE_MAX / 4 / k) ? (size_t)0 : r * k * 4);
    float *out = malloc(body ? body : 1);
    if (!out)
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory for (%zu, %zu)", source, r, k);
    const uint8_t *p = data + start + hlen;
    for (size_t i = 0; i < r * k; i++)
        out[i] = load_le32(p + 4 * i);
    *x = out;
    *rows = r;
    *cols = k;
    return FV_OK;
}

enum fv_status fv_npy_read_f32(const char *path, size_t max_bytes, float **x, size_t *rows,
                               size_t *cols, struct fv_error *err)
{
    uint8_t *data = NULL;
    size_t size = 0;
    *x = NULL;
    enum fv_status st = fv_read_file(path, max_bytes, &data, &size, err);
    if (st)
        return st;
    st = fv_npy_parse_f32(data, size, path, x, rows, cols, err);
    free(data);
    return st;
}
