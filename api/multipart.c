/* multipart.c - a bounded, copy-free multipart/form-data parser. */
#include "api/multipart.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* RFC 2046 bchars: DIGIT / ALPHA / "'" / "(" / ")" / "+" / "_" / "," / "-" /
 * "." / "/" / ":" / "=" / "?" and space (not last). */
static int boundary_char(unsigned char c)
{
    return isalnum(c) || (c && strchr("'()+_,-./:=? ", c) != NULL);
}

/* Case-insensitive prefix test on a bounded string. */
static int has_prefix(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && strncasecmp(s, prefix, k) == 0;
}

/* Parses a header parameter value starting at *p (token or quoted string) into
 * out (capacity cap including NUL). Returns 0 or -1 when malformed or too long. */
static int param_value(const char **p, const char *end, char *out, size_t cap)
{
    const char *s = *p;
    size_t n = 0;
    if (s < end && *s == '"') {
        s++;
        while (s < end && *s != '"') {
            if (*s == '\\' && s + 1 < end)
                s++;
            if (n + 1 >= cap)
                return -1;
            out[n++] = *s++;
        }
        if (s >= end)
            return -1;
        s++; /* closing quote */
    } else {
        while (s < end && *s != ';' && *s != ' ' && *s != '\t') {
            if (n + 1 >= cap)
                return -1;
            out[n++] = *s++;
        }
    }
    out[n] = 0;
    *p = s;
    return 0;
}

/* Finds parameter `name` in a header value's "; a=b; c=d" list. 1 found, 0 not
 * found, -1 malformed. */
static int find_param(const char *value, const char *end, const char *name, char *out,
                      size_t cap)
{
    size_t name_len = strlen(name);
    const char *p = value;
    int found = 0;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        if (!semi)
            return found;
        p = semi + 1;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if ((size_t)(end - p) > name_len && strncasecmp(p, name, name_len) == 0 &&
            p[name_len] == '=') {
            p += name_len + 1;
            if (param_value(&p, end, out, cap))
                return -1;
            found = 1; /* keep the first; go on only to skip quoted text correctly */
            return found;
        }
        /* Skip this parameter, honouring quotes so a ';' inside one is not a separator. */
        while (p < end && *p != ';') {
            if (*p == '"') {
                p++;
                while (p < end && *p != '"') {
                    if (*p == '\\' && p + 1 < end)
                        p++;
                    p++;
                }
                if (p >= end)
                    return -1;
            }
            p++;
        }
    }
    return found;
}

enum fv_status fv_multipart_boundary(const char *content_type,
                                     char boundary[FV_MULTIPART_BOUNDARY_MAX + 1])
{
    if (!content_type)
        return FV_ERR_FORMAT;
    size_t len = strlen(content_type);
    if (!has_prefix(content_type, len, "multipart/form-data"))
        return FV_ERR_FORMAT;
    const char *rest = content_type + strlen("multipart/form-data");
    if (*rest && *rest != ';' && *rest != ' ' && *rest != '\t')
        return FV_ERR_FORMAT;
    if (find_param(rest, content_type + len, "boundary", boundary,
                   FV_MULTIPART_BOUNDARY_MAX + 1) != 1)
        return FV_ERR_FORMAT;
    size_t n = strlen(boundary);
    if (n == 0 || boundary[n - 1] == ' ')
        return FV_ERR_FORMAT;
    for (size_t i = 0; i < n; i++)
        if (!boundary_char((unsigned char)boundary[i]))
            return FV_ERR_FORMAT;
    return FV_OK;
}

/* First occurrence of needle in [hay, hay + n), or NULL. */
static const uint8_t *find_bytes(const uint8_t *hay, size_t n, const uint8_t *needle, size_t k)
{
    if (k == 0 || n < k)
        return NULL;
    const uint8_t *end = hay + n - k + 1;
    while (hay < end) {
        const uint8_t *p = memchr(hay, needle[0], (size_t)(end - hay));
        if (!p)
            return NULL;
        if (memcmp(p, needle, k) == 0)
            return p;
        hay = p + 1;
    }
    return NULL;
}

/* Length of the line break at p (CRLF 2, LF 1) or 0. */
static size_t line_break(const uint8_t *p, const uint8_t *end)
{
    if (p < end && *p == '\n')
        return 1;
    if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
        return 2;
    return 0;
}

/* Parses one part's header block [h, h_end): fills name, content type, filename flag. */
static enum fv_status parse_part_headers(const char *h, const char *h_end,
                                         struct fv_multipart_part *part, struct fv_error *err)
{
    int have_disposition = 0;
    while (h < h_end) {
        const char *eol = memchr(h, '\n', (size_t)(h_end - h));
        const char *line_end = eol ? eol : h_end;
        const char *next = eol ? eol + 1 : h_end;
        if (line_end > h && line_end[-1] == '\r')
            line_end--;
        const char *colon = memchr(h, ':', (size_t)(line_end - h));
        if (!colon)
            return fv_error_set(err, FV_ERR_FORMAT, "multipart part header without ':'");
        size_t name_len = (size_t)(colon - h);
        const char *v = colon + 1;
        while (v < line_end && (*v == ' ' || *v == '\t'))
            v++;
        if (name_len == 19 && strncasecmp(h, "Content-Disposition", 19) == 0) {
            if (!has_prefix(v, (size_t)(line_end - v), "form-data"))
                return fv_error_set(err, FV_ERR_FORMAT, "multipart part is not form-data");
            int r = find_param(v, line_end, "name", part->name, sizeof part->name);
            if (r != 1 || !part->name[0])
                return fv_error_set(err, FV_ERR_FORMAT,
                                    "multipart part without a valid name parameter");
            char filename[256];
            r = find_param(v, line_end, "filename", filename, sizeof filename);
            if (r < 0)
                return fv_error_set(err, FV_ERR_FORMAT, "multipart part has a malformed filename");
            part->has_filename = r == 1;
            have_disposition = 1;
        } else if (name_len == 12 && strncasecmp(h, "Content-Type", 12) == 0) {
            size_t n = (size_t)(line_end - v);
            if (n >= sizeof part->content_type)
                return fv_error_set(err, FV_ERR_FORMAT, "multipart part Content-Type too long");
            memcpy(part->content_type, v, n);
            part->content_type[n] = 0;
        }
        h = next;
    }
    if (!have_disposition)
        return fv_error_set(err, FV_ERR_FORMAT, "multipart part without Content-Disposition");
    return FV_OK;
}

enum fv_status fv_multipart_parse(const uint8_t *body, size_t size, const char *boundary,
                                  struct fv_multipart_part *parts, int max_parts, int *n_parts,
                                  struct fv_error *err)
{
    *n_parts = 0;
    size_t blen = strlen(boundary);
    if (blen == 0 || blen > FV_MULTIPART_BOUNDARY_MAX)
        return fv_error_set(err, FV_ERR_FORMAT, "bad multipart boundary");
    /* delimiter = line break + "--" + boundary; the first may start the body. */
    uint8_t delim[FV_MULTIPART_BOUNDARY_MAX + 4];
    delim[0] = '-';
    delim[1] = '-';
    memcpy(delim + 2, boundary, blen);
    size_t dlen = blen + 2;
    const uint8_t *end = body + size;
    const uint8_t *p;
    if (size >= dlen && memcmp(body, delim, dlen) == 0) {
        p = body;
    } else {
        /* A preamble is allowed; the delimiter then follows a line break. */
        p = find_bytes(body, size, delim, dlen);
        while (p && !(p > body && p[-1] == '\n'))
            p = find_bytes(p + 1, (size_t)(end - p - 1), delim, dlen);
        if (!p)
            return fv_error_set(err, FV_ERR_FORMAT, "multipart body has no opening boundary");
    }
    p += dlen;
    for (;;) {
        /* After a delimiter: "--" closes, otherwise optional whitespace and a line break. */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return FV_OK;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        size_t lb = line_break(p, end);
        if (!lb)
            return fv_error_set(err, FV_ERR_FORMAT, "multipart boundary not followed by a line break");
        p += lb;
        /* Headers end at an empty line. */
        const uint8_t *h = p, *h_end = NULL, *data = NULL;
        while (p < end) {
            if ((size_t)(p - h) > FV_MULTIPART_HEADERS_MAX)
                return fv_error_set(err, FV_ERR_FORMAT, "multipart part headers too long");
            size_t k = line_break(p, end);
            if (k) {
                h_end = p;
                data = p + k;
                break;
            }
            const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
            if (!eol)
                break;
            p = eol + 1;
        }
        if (!data)
            return fv_error_set(err, FV_ERR_FORMAT, "multipart part headers do not end");
        if (*n_parts >= max_parts)
            return fv_error_set(err, FV_ERR_TOO_LARGE, "more than %d multipart parts", max_parts);
        struct fv_multipart_part *part = &parts[*n_parts];
        memset(part, 0, sizeof *part);
        enum fv_status st = parse_part_headers((const char *)h, (const char *)h_end, part, err);
        if (st)
            return st;
        /* The data runs to the next line break + delimiter. */
        const uint8_t *q = data, *next = NULL;
        while ((q = find_bytes(q, (size_t)(end - q), delim, dlen)) != NULL) {
            if (q > data && q[-1] == '\n') {
                next = q;
                break;
            }
            q++;
        }
        if (!next)
            return fv_error_set(err, FV_ERR_FORMAT, "multipart body has no closing boundary");
        const uint8_t *data_end = next - 1;
        if (data_end > data && data_end[-1] == '\r')
            data_end--;
        part->data = data;
        part->size = (size_t)(data_end - data);
        (*n_parts)++;
        p = next + dlen;
    }
}

const struct fv_multipart_part *fv_multipart_find(const struct fv_multipart_part *parts, int n,
                                                  const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(parts[i].name, name) == 0)
            return &parts[i];
    return NULL;
}
