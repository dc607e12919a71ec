/* pairs.c - LFW-style pairs file parser: folds, pairs and a deduplicated image list. */
#include "eval/pairs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#define MAX_NAME_BYTES 255
#define MAX_PATH_BYTES 4096
#define MAX_FIELDS 5 /* one more than any valid line, to report the real count */

struct fv_pairs {
    struct fv_pair *items;
    size_t n_items, cap_items;
    size_t n_folds;
    char **paths;                /* image relative paths, in order of first use */
    size_t n_paths, cap_paths;
    size_t *table;               /* open-addressing hash: path index + 1, 0 = empty */
    size_t table_size;           /* a power of two, kept at most half full */
};

struct fv_pairs_params fv_pairs_default_params(void)
{
    return (struct fv_pairs_params){
        .image_pattern = "%s/%s_%04d.jpg",
        .max_pairs = 1000000,
        .max_folds = 1000,
        .max_line_bytes = 1024,
        .max_file_bytes = (size_t)256 << 20,
        .max_image_number = 99999,
    };
}

enum fv_status fv_pairs_check_pattern(const char *pattern, struct fv_error *err)
{
    static const char expected[] = "ssd";
    size_t seen = 0;
    if (!pattern)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "image pattern is NULL");
    for (const char *p = pattern; *p; p++) {
        if (*p != '%')
            continue;
        p++;
        if (*p == '%')
            continue;
        char conv;
        if (*p == 's') {
            conv = 's';
        } else {
            if (*p == '0')
                p++;
            for (int digits = 0; *p >= '0' && *p <= '9'; digits++, p++)
                if (digits == 2)
                    return fv_error_set(err, FV_ERR_INVALID_ARG,
                                        "image pattern '%s': width of more than two digits",
                                        pattern);
            if (*p != 'd')
                return fv_error_set(err, FV_ERR_INVALID_ARG,
                                    "image pattern '%s': only %%s, %%s, %%d (with optional 0 "
                                    "flag and width) and %%%% are allowed",
                                    pattern);
            conv = 'd';
        }
        if (seen == 3 || expected[seen] != conv)
            return fv_error_set(err, FV_ERR_INVALID_ARG,
                                "image pattern '%s': expected the conversions %%s, %%s, %%d "
                                "in that order",
                                pattern);
        seen++;
    }
    if (seen != 3)
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "image pattern '%s': expected the conversions %%s, %%s, %%d, found %zu",
                            pattern, seen);
    return FV_OK;
}

void fv_pairs_free(struct fv_pairs *pairs)
{
    if (!pairs)
        return;
    for (size_t i = 0; i < pairs->n_paths; i++)
        free(pairs->paths[i]);
    free(pairs->paths);
    free(pairs->items);
    free(pairs->table);
    free(pairs);
}

size_t fv_pairs_count(const struct fv_pairs *pairs) { return pairs->n_items; }
const struct fv_pair *fv_pairs_items(const struct fv_pairs *pairs) { return pairs->items; }
size_t fv_pairs_fold_count(const struct fv_pairs *pairs) { return pairs->n_folds; }
size_t fv_pairs_image_count(const struct fv_pairs *pairs) { return pairs->n_paths; }

const char *fv_pairs_image_path(const struct fv_pairs *pairs, size_t i)
{
    FV_ASSERT(i < pairs->n_paths);
    return pairs->paths[i];
}

static uint64_t hash_string(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static enum fv_status grow_table(struct fv_pairs *pairs)
{
    size_t size = pairs->table_size ? pairs->table_size * 2 : 1024;
    size_t *table = calloc(size, sizeof *table);
    if (!table)
        return FV_ERR_NOMEM;
    for (size_t i = 0; i < pairs->n_paths; i++) {
        size_t slot = hash_string(pairs->paths[i]) & (size - 1);
        while (table[slot])
            slot = (slot + 1) & (size - 1);
        table[slot] = i + 1;
    }
    free(pairs->table);
    pairs->table = table;
    pairs->table_size = size;
    return FV_OK;
}

/* Index of path in the image list, adding a copy when it is new. */
static enum fv_status intern_path(struct fv_pairs *pairs, const char *path, size_t *index)
{
    if ((pairs->n_paths + 1) * 2 > pairs->table_size && grow_table(pairs) != FV_OK)
        return FV_ERR_NOMEM;
    size_t mask = pairs->table_size - 1;
    size_t slot = hash_string(path) & mask;
    for (; pairs->table[slot]; slot = (slot + 1) & mask) {
        if (strcmp(pairs->paths[pairs->table[slot] - 1], path) == 0) {
            *index = pairs->table[slot] - 1;
            return FV_OK;
        }
    }
    if (pairs->n_paths == pairs->cap_paths) {
        size_t cap = pairs->cap_paths ? pairs->cap_paths * 2 : 256;
        char **paths = realloc(pairs->paths, cap * sizeof *paths);
        if (!paths)
            return FV_ERR_NOMEM;
        pairs->paths = paths;
        pairs->cap_paths = cap;
    }
    char *copy = strdup(path);
    if (!copy)
        return FV_ERR_NOMEM;
    pairs->paths[pairs->n_paths] = copy;
    pairs->table[slot] = pairs->n_paths + 1;
    *index = pairs->n_paths++;
    return FV_OK;
}

struct field {
    const char *start;
    size_t len;
};

struct parser {
    const char *source;
    size_t line_no;
    const struct fv_pairs_params *params;
    struct fv_pairs *pairs;
    struct fv_error *err;
};

static enum fv_status line_error(struct parser *ps, enum fv_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum fv_status line_error(struct parser *ps, enum fv_status status, const char *fmt, ...)
{
    char message[FV_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return fv_error_set(ps->err, status, "%s:%zu: %s", ps->source, ps->line_no, message);
}

/* Parses an unsigned decimal of digits only; false when empty, not digits or > max. */
static bool parse_count(const struct field *f, uint64_t max, uint64_t *value)
{
    uint64_t v = 0;
    if (f->len == 0)
        return false;
    for (size_t i = 0; i < f->len; i++) {
        char c = f->start[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (uint64_t)(c - '0');
        if (v > max)
            return false;
    }
    *value = v;
    return true;
}

static bool is_digits(const struct field *f)
{
    for (size_t i = 0; i < f->len; i++)
        if (f->start[i] < '0' || f->start[i] > '9')
            return false;
    return f->len > 0;
}

static enum fv_status parse_number(struct parser *ps, const struct field *f, int *number)
{
    uint64_t v;
    if (!is_digits(f))
        return line_error(ps, FV_ERR_FORMAT, "image number '%.*s' is not a positive integer",
                          (int)(f->len > 32 ? 32 : f->len), f->start);
    if (!parse_count(f, (uint64_t)ps->params->max_image_number, &v) || v == 0)
        return line_error(ps, FV_ERR_FORMAT, "image number %.*s is out of range 1..%d",
                          (int)(f->len > 32 ? 32 : f->len), f->start,
                          ps->params->max_image_number);
    *number = (int)v;
    return FV_OK;
}

static enum fv_status check_name(struct parser *ps, const struct field *f, char *name)
{
    if (f->len > MAX_NAME_BYTES)
        return line_error(ps, FV_ERR_FORMAT, "name of %zu bytes is longer than %d", f->len,
                          MAX_NAME_BYTES);
    memcpy(name, f->start, f->len);
    name[f->len] = '\0';
    if (strchr(name, '/') || strchr(name, '\\'))
        return line_error(ps, FV_ERR_FORMAT, "name '%s' contains a path separator", name);
    if (strstr(name, ".."))
        return line_error(ps, FV_ERR_FORMAT, "name '%s' contains '..'", name);
    if (strcmp(name, ".") == 0)
        return line_error(ps, FV_ERR_FORMAT, "name '.' is not a person");
    /* Control characters were rejected for the whole line already. */
    return FV_OK;
}

static enum fv_status image_index(struct parser *ps, const char *name, int number,
                                  size_t *index)
{
    char path[MAX_PATH_BYTES];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    int n = snprintf(path, sizeof path, ps->params->image_pattern, name, name, number);
#pragma GCC diagnostic pop
    if (n < 0 || (size_t)n >= sizeof path)
        return line_error(ps, FV_ERR_FORMAT, "image path for '%s' number %d is too long", name,
                          number);
    if (intern_path(ps->pairs, path, index) != FV_OK)
        return line_error(ps, FV_ERR_NOMEM, "out of memory");
    return FV_OK;
}

/* Adds the pair on a 3- or 4-field line; expected_same is -1 (either), 0 or 1. */
static enum fv_status add_pair(struct parser *ps, const struct field *fields, size_t n_fields,
                               int expected_same, size_t fold)
{
    enum fv_status st;
    char name1[MAX_NAME_BYTES + 1], name2[MAX_NAME_BYTES + 1];
    int i, j;
    if (n_fields != 3 && n_fields != 4)
        return line_error(ps, FV_ERR_FORMAT, "expected 3 or 4 fields, got %s%zu",
                          n_fields >= MAX_FIELDS ? "at least " : "", n_fields);
    bool same = n_fields == 3;
    if (expected_same >= 0 && same != (expected_same == 1))
        return line_error(ps, FV_ERR_FORMAT,
                          "expected a %s line (%s) here, got %zu fields",
                          expected_same ? "same-person" : "different-person",
                          expected_same ? "name i j" : "name1 i name2 j", n_fields);
    if (ps->pairs->n_items >= ps->params->max_pairs)
        return line_error(ps, FV_ERR_TOO_LARGE, "more than %zu pairs", ps->params->max_pairs);
    if ((st = check_name(ps, &fields[0], name1)) != FV_OK ||
        (st = parse_number(ps, &fields[1], &i)) != FV_OK)
        return st;
    if (same) {
        if ((st = parse_number(ps, &fields[2], &j)) != FV_OK)
            return st;
        if (i == j)
            return line_error(ps, FV_ERR_FORMAT, "pair compares image %d of '%s' with itself",
                              i, name1);
        strcpy(name2, name1);
    } else {
        if ((st = check_name(ps, &fields[2], name2)) != FV_OK ||
            (st = parse_number(ps, &fields[3], &j)) != FV_OK)
            return st;
        if (strcmp(name1, name2) == 0)
            return line_error(ps, FV_ERR_FORMAT,
                              "different-person line names '%s' twice", name1);
    }
    struct fv_pairs *pairs = ps->pairs;
    if (pairs->n_items == pairs->cap_items) {
        size_t cap = pairs->cap_items ? pairs->cap_items * 2 : 1024;
        struct fv_pair *items = realloc(pairs->items, cap * sizeof *items);
        if (!items)
            return line_error(ps, FV_ERR_NOMEM, "out of memory");
        pairs->items = items;
        pairs->cap_items = cap;
    }
    struct fv_pair pair = {.same = same, .fold = fold};
    if ((st = image_index(ps, name1, i, &pair.a)) != FV_OK ||
        (st = image_index(ps, name2, j, &pair.b)) != FV_OK)
        return st;
    pairs->items[pairs->n_items++] = pair;
    return FV_OK;
}

/* Splits [start, start + len) at spaces and tabs; rejects NUL and control bytes. */
static enum fv_status split_line(struct parser *ps, const char *start, size_t len,
                                 struct field *fields, size_t *n_fields)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)start[i];
        if (c == ' ' || c == '\t') {
            i++;
            continue;
        }
        size_t begin = i;
        for (; i < len; i++) {
            c = (unsigned char)start[i];
            if (c == ' ' || c == '\t')
                break;
            if (c < 0x20 || c == 0x7f)
                return line_error(ps, FV_ERR_FORMAT, "control character 0x%02x in column %zu",
                                  c, i + 1);
        }
        if (n < MAX_FIELDS)
            fields[n] = (struct field){start + begin, i - begin};
        n++;
    }
    *n_fields = n < MAX_FIELDS ? n : MAX_FIELDS;
    return FV_OK;
}

enum header_kind { HEADER_NONE, HEADER_STANDARD, HEADER_FOLDS };

enum fv_status fv_pairs_parse(const char *buf, size_t size, const char *source_name,
                              const struct fv_pairs_params *params, struct fv_pairs **out,
                              struct fv_error *err)
{
    struct fv_pairs_params defaults = fv_pairs_default_params();
    enum fv_status st;
    if (!params)
        params = &defaults;
    *out = NULL;
    if (!source_name)
        source_name = "pairs";
    if ((st = fv_pairs_check_pattern(params->image_pattern, err)) != FV_OK)
        return st;
    if (params->max_pairs == 0 || params->max_folds == 0 || params->max_image_number <= 0)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "pairs limits must be positive");
    if (!buf && size)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "NULL buffer");

    struct fv_pairs *pairs = calloc(1, sizeof *pairs);
    if (!pairs)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    struct parser ps = {.source = source_name, .params = params, .pairs = pairs, .err = err};
    enum header_kind header = HEADER_NONE;
    bool seen_first = false;
    uint64_t n_folds = 1, per_kind = 0, expected_total = 0;
    size_t pos = 0;

    while (pos < size) {
        ps.line_no++;
        const char *line = buf + pos;
        const char *newline = memchr(line, '\n', size - pos);
        size_t len = newline ? (size_t)(newline - line) : size - pos;
        pos += len + (newline ? 1 : 0);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (len > params->max_line_bytes) {
            st = line_error(&ps, FV_ERR_FORMAT, "line is longer than %zu bytes",
                            params->max_line_bytes);
            goto fail;
        }
        if (memchr(line, '\0', len)) {
            st = line_error(&ps, FV_ERR_FORMAT, "NUL byte in line");
            goto fail;
        }
        struct field fields[MAX_FIELDS];
        size_t n_fields = 0;
        if ((st = split_line(&ps, line, len, fields, &n_fields)) != FV_OK)
            goto fail;
        if (n_fields == 0)
            continue;

        if (!seen_first) {
            seen_first = true;
            if (n_fields == 2) {
                bool is_folds = fields[0].len == 5 && memcmp(fields[0].start, "FOLDS", 5) == 0;
                if (!is_folds && !is_digits(&fields[0])) {
                    st = line_error(&ps, FV_ERR_FORMAT,
                                    "header must be 'N<TAB>P' or 'FOLDS N', got '%.*s'",
                                    (int)(len > 64 ? 64 : len), line);
                    goto fail;
                }
                if (!parse_count(is_folds ? &fields[1] : &fields[0], params->max_folds,
                                 &n_folds) || n_folds == 0) {
                    st = line_error(&ps, FV_ERR_FORMAT,
                                    "fold count '%.*s' is not an integer in 1..%zu",
                                    (int)(fields[is_folds].len > 32 ? 32 : fields[is_folds].len),
                                    fields[is_folds].start, params->max_folds);
                    goto fail;
                }
                if (is_folds) {
                    header = HEADER_FOLDS;
                } else {
                    header = HEADER_STANDARD;
                    if (!parse_count(&fields[1], params->max_pairs, &per_kind) ||
                        per_kind == 0) {
                        st = line_error(&ps, FV_ERR_FORMAT,
                                        "pairs per fold '%.*s' is not an integer in 1..%zu",
                                        (int)(fields[1].len > 32 ? 32 : fields[1].len),
                                        fields[1].start, params->max_pairs);
                        goto fail;
                    }
                    expected_total = n_folds * per_kind * 2;
                    if (expected_total > params->max_pairs) {
                        st = line_error(&ps, FV_ERR_TOO_LARGE,
                                        "header promises %llu pairs, more than the limit %zu",
                                        (unsigned long long)expected_total, params->max_pairs);
                        goto fail;
                    }
                }
                continue;
            }
            if (n_fields != 3 && n_fields != 4) {
                st = line_error(&ps, FV_ERR_FORMAT,
                                "expected a header ('N<TAB>P' or 'FOLDS N') or a pair line "
                                "of 3 or 4 fields, got %s%zu fields",
                                n_fields >= MAX_FIELDS ? "at least " : "", n_fields);
                goto fail;
            }
        }

        size_t fold = 0;
        int expected_same = -1;
        if (header == HEADER_STANDARD) {
            size_t index = pairs->n_items;
            if (index >= expected_total) {
                st = line_error(&ps, FV_ERR_FORMAT,
                                "more pair lines than the header's %llu folds x (%llu + %llu)",
                                (unsigned long long)n_folds, (unsigned long long)per_kind,
                                (unsigned long long)per_kind);
                goto fail;
            }
            fold = index / (size_t)(2 * per_kind);
            expected_same = index % (size_t)(2 * per_kind) < per_kind;
        }
        if ((st = add_pair(&ps, fields, n_fields, expected_same, fold)) != FV_OK)
            goto fail;
    }

    /* Errors about the end of the file name the line after the last one. */
    ps.line_no++;
    if (!seen_first) {
        st = line_error(&ps, FV_ERR_FORMAT, "file is empty");
        goto fail;
    }
    if (header == HEADER_STANDARD && pairs->n_items != expected_total) {
        st = line_error(&ps, FV_ERR_FORMAT,
                        "file ends after %zu pair lines; the header promises %llu",
                        pairs->n_items, (unsigned long long)expected_total);
        goto fail;
    }
    if (pairs->n_items == 0) {
        st = line_error(&ps, FV_ERR_FORMAT, "no pair lines");
        goto fail;
    }
    if (header == HEADER_FOLDS) {
        if (pairs->n_items % n_folds != 0) {
            st = line_error(&ps, FV_ERR_FORMAT,
                            "%zu pair lines cannot be split evenly into %llu folds",
                            pairs->n_items, (unsigned long long)n_folds);
            goto fail;
        }
        size_t per_fold = pairs->n_items / (size_t)n_folds;
        for (size_t i = 0; i < pairs->n_items; i++)
            pairs->items[i].fold = i / per_fold;
    }
    pairs->n_folds = (size_t)n_folds;
    *out = pairs;
    return FV_OK;

fail:
    fv_pairs_free(pairs);
    return st;
}

enum fv_status fv_pairs_load(const char *path, const struct fv_pairs_params *params,
                             struct fv_pairs **out, struct fv_error *err)
{
    struct fv_pairs_params defaults = fv_pairs_default_params();
    enum fv_status st;
    char *buf = NULL;
    *out = NULL;
    if (!params)
        params = &defaults;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fv_error_set(err, FV_ERR_IO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, size = 0;
    for (;;) {
        if (size == cap || !buf) {
            if (buf)
                cap *= 2;
            char *grown = realloc(buf, cap);
            if (!grown) {
                st = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
            buf = grown;
        }
        size_t got = fread(buf + size, 1, cap - size, f);
        size += got;
        if (size > params->max_file_bytes) {
            st = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: larger than %zu bytes", path,
                              params->max_file_bytes);
            goto fail;
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        st = fv_error_set(err, FV_ERR_IO, "%s: read error", path);
        goto fail;
    }
    st = fv_pairs_parse(buf, size, path, params, out, err);
fail:
    free(buf);
    fclose(f);
    return st;
}
