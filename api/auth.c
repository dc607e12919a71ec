/* auth.c - API keys and their constant-time check. */
#include "api/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 1024
#define MAX_FILE (1 << 20)

struct fv_api_keys {
    int n;
    size_t lengths[MAX_KEYS];
    char (*keys)[FV_API_KEY_MAX];
};

void fv_api_keys_free(struct fv_api_keys *keys)
{
    if (!keys)
        return;
    free(keys->keys);
    free(keys);
}

int fv_api_keys_count(const struct fv_api_keys *keys)
{
    return keys ? keys->n : 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

enum fv_status fv_api_keys_parse(const char *text, size_t size, struct fv_api_keys **out,
                                 struct fv_error *err)
{
    *out = NULL;
    struct fv_api_keys *k = calloc(1, sizeof *k);
    if (!k || !(k->keys = calloc(MAX_KEYS, sizeof *k->keys))) {
        fv_api_keys_free(k);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory reading API keys");
    }
    const char *p = text, *end = text + size;
    int line = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *s = p, *e = eol ? eol : end;
        p = eol ? eol + 1 : end;
        line++;
        while (s < e && is_space(*s))
            s++;
        while (e > s && is_space(e[-1]))
            e--;
        if (s == e || *s == '#')
            continue;
        size_t n = (size_t)(e - s);
        if (n > FV_API_KEY_MAX) {
            fv_api_keys_free(k);
            return fv_error_set(err, FV_ERR_FORMAT, "line %d: key longer than %d bytes", line,
                                FV_API_KEY_MAX);
        }
        if (k->n == MAX_KEYS) {
            fv_api_keys_free(k);
            return fv_error_set(err, FV_ERR_FORMAT, "more than %d keys", MAX_KEYS);
        }
        memcpy(k->keys[k->n], s, n);
        k->lengths[k->n++] = n;
    }
    if (k->n == 0) {
        fv_api_keys_free(k);
        return fv_error_set(err, FV_ERR_FORMAT, "no API key found");
    }
    *out = k;
    return FV_OK;
}

enum fv_status fv_api_keys_load(const char *path, struct fv_api_keys **out,
                                struct fv_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fv_error_set(err, errno == ENOENT ? FV_ERR_NOT_FOUND : FV_ERR_IO, "%s: %s", path,
                            strerror(errno));
    char *text = malloc(MAX_FILE);
    if (!text) {
        fclose(f);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t n = fread(text, 1, MAX_FILE, f);
    int bad = ferror(f), big = n == MAX_FILE;
    fclose(f);
    enum fv_status st;
    if (bad)
        st = fv_error_set(err, FV_ERR_IO, "%s: read error", path);
    else if (big)
        st = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: larger than %d bytes", path, MAX_FILE);
    else if ((st = fv_api_keys_parse(text, n, out, err)) != FV_OK)
        fv_error_prefix(err, "%s: ", path);
    free(text);
    return st;
}

int fv_api_keys_check(const struct fv_api_keys *keys, const char *key, size_t len)
{
    if (!keys || len == 0 || len > FV_API_KEY_MAX)
        return 0;
    /* Every key is compared over its whole length, without early exit; the
     * presented key is read cyclically so no read goes past its end. */
    unsigned found = 0;
    for (int i = 0; i < keys->n; i++) {
        unsigned diff = keys->lengths[i] != len;
        for (size_t j = 0; j < keys->lengths[i]; j++)
            diff |= (unsigned char)(keys->keys[i][j] ^ key[j % len]);
        found |= diff == 0;
    }
    return (int)found;
}
