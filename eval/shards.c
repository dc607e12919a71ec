/* shards.c - embedding shards: slicing, environment, atomic files, metadata, gathering. */
#include "eval/shards.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/npy.h"
#include "model/hash.h"
#include "model/model_file.h"

#define SHARD_FORMAT "facever-embedding-shard"
#define SHARD_VERSION 1
#define META_MAX_BYTES ((size_t)256 << 20)
#define LANDMARKS_MAX_BYTES ((size_t)256 << 20)

/* ---- checksums: 64-bit FNV-1a (model/hash.h) ---- */

static void hex64(char out[17], uint64_t v)
{
    snprintf(out, 17, "%016llx", (unsigned long long)v);
}

static int parse_hex64(const char *s, uint64_t *v)
{
    if (!s || strlen(s) != 16)
        return 0;
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        x = x << 4 | (uint64_t)d;
    }
    *v = x;
    return 1;
}

/* Checksum of a whole file, read in chunks. */
static enum fv_status hash_file(const char *path, uint64_t *sum, uint64_t *size,
                                struct fv_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fv_error_set(err, errno == ENOENT ? FV_ERR_NOT_FOUND : FV_ERR_IO,
                            "%s: cannot open: %s", path, strerror(errno));
    unsigned char buf[1 << 16];
    uint64_t h = FV_FNV1A_BASIS, total = 0;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        h = fv_fnv1a(h, buf, got);
        total += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return fv_error_set(err, FV_ERR_IO, "%s: read failed", path);
    *sum = h;
    if (size)
        *size = total;
    return FV_OK;
}

/* ---- configuration ---- */

enum fv_status fv_shard_config_init(struct fv_shard_config *c, const struct fv_pipeline *pipe,
                                    const struct fv_features_params *params,
                                    struct fv_error *err)
{
    memset(c, 0, sizeof *c);
    c->fingerprint = fv_pipeline_fingerprint(pipe);
    snprintf(c->model, sizeof c->model, "%s", fv_pipeline_model_meta(pipe)->name);
    snprintf(c->precision, sizeof c->precision, "%s",
             fv_precision_name(fv_pipeline_precision(pipe)));
    c->dim = fv_pipeline_raw_dim(pipe);
    c->policy = params->policy;
    c->center_fallback = params->center_fallback != 0;
    c->max_pixels = fv_pipeline_params(pipe)->limits.max_pixels;
    c->max_bytes = fv_pipeline_params(pipe)->limits.max_bytes;
    c->detect = fv_pipeline_params(pipe)->detect;
    if (params->landmarks_path) {
        uint64_t size;
        enum fv_status st = hash_file(params->landmarks_path, &c->landmarks_checksum, &size, err);
        if (st)
            return st;
        if (size > LANDMARKS_MAX_BYTES)
            return fv_error_set(err, FV_ERR_TOO_LARGE, "%s: over %zu bytes",
                                params->landmarks_path, LANDMARKS_MAX_BYTES);
        if (c->landmarks_checksum == 0) /* 0 means "no file": keep a file distinct */
            c->landmarks_checksum = 1;
    }
    return FV_OK;
}

/* Describes the first field in which a shard's configuration (got) differs from the one
 * expected; 0 when they agree. */
static int config_differs(const struct fv_shard_config *got, const struct fv_shard_config *want,
                          char *what, size_t cap)
{
    if (got->fingerprint != want->fingerprint || strcmp(got->model, want->model) != 0) {
        char a[17], b[17];
        hex64(a, got->fingerprint);
        hex64(b, want->fingerprint);
        snprintf(what, cap,
                 "made with another model or detection setting: fingerprint %s (%s, %s), this "
                 "run's is %s (%s, %s); give the same --models/--model/--precision and "
                 "detection options",
                 a, got->model, got->precision, b, want->model, want->precision);
    } else if (got->dim != want->dim) {
        snprintf(what, cap, "holds %d-dimensional features, this run's are %d", got->dim,
                 want->dim);
    } else if (got->policy != want->policy) {
        snprintf(what, cap, "made with --policy %s, this run uses %s",
                 fv_face_policy_name(got->policy), fv_face_policy_name(want->policy));
    } else if (got->center_fallback != want->center_fallback) {
        snprintf(what, cap, "made %s the centre-crop fallback, this run %s",
                 got->center_fallback ? "with" : "without (--no-center-fallback)",
                 want->center_fallback ? "uses it" : "does not (--no-center-fallback)");
    } else if (got->landmarks_checksum != want->landmarks_checksum) {
        snprintf(what, cap, "made %s, this run %s",
                 got->landmarks_checksum ? "with a landmarks file" : "without a landmarks file",
                 want->landmarks_checksum
                     ? (got->landmarks_checksum ? "with another one (--landmarks)"
                                                : "gives one (--landmarks)")
                     : "gives none");
    } else if (got->max_pixels != want->max_pixels || got->max_bytes != want->max_bytes) {
        snprintf(what, cap, "made with image limits of %llu pixels and %zu bytes, this run's "
                 "are %llu and %zu (--max-pixels)",
                 (unsigned long long)got->max_pixels, got->max_bytes,
                 (unsigned long long)want->max_pixels, want->max_bytes);
    } else {
        return 0;
    }
    return 1;
}

/* ---- slicing and the environment ---- */

void fv_shard_range(size_t n, size_t index, size_t count, size_t *begin, size_t *end)
{
    FV_ASSERT(count > 0 && index < count);
    /* In 64 bits: n (1e8) times count (1e5) overflows a 32-bit size_t. */
    *begin = (size_t)((uint64_t)n * index / count);
    *end = (size_t)((uint64_t)n * (index + 1) / count);
}

/* A decimal number without sign, spaces or leading '+'; 0 when s is not one. */
static int parse_count(const char *s, unsigned long long max, unsigned long long *out)
{
    if (!s || !*s)
        return 0;
    unsigned long long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (unsigned long long)(*p - '0');
        if (v > max)
            return 0;
    }
    *out = v;
    return 1;
}

enum fv_status fv_shard_parse(const char *spec, size_t *index, size_t *count,
                              struct fv_error *err)
{
    const char *slash = spec ? strchr(spec, '/') : NULL;
    char left[32];
    unsigned long long i, n;
    if (!slash || (size_t)(slash - spec) >= sizeof left)
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "--shard needs I/N (shard I of N, 0 <= I < N) or auto, not '%s'",
                            spec ? spec : "");
    memcpy(left, spec, (size_t)(slash - spec));
    left[slash - spec] = '\0';
    if (!parse_count(left, FV_SHARD_MAX_COUNT, &i) ||
        !parse_count(slash + 1, FV_SHARD_MAX_COUNT, &n) || n == 0 || i >= n)
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "--shard needs I/N with 0 <= I < N <= %d, not '%s'",
                            FV_SHARD_MAX_COUNT, spec);
    *index = (size_t)i;
    *count = (size_t)n;
    return FV_OK;
}

static const char *env_get(char *const *envp, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], name, len) == 0 && envp[i][len] == '=')
            return envp[i] + len + 1;
    return NULL;
}

enum fv_status fv_shard_from_environment(char *const *envp, size_t shards, size_t *index,
                                         size_t *count, const char **source,
                                         struct fv_error *err)
{
    const unsigned long long big = 1ULL << 40;
    const char *id = env_get(envp, "SLURM_ARRAY_TASK_ID");
    if (id) {
        const char *cnt = env_get(envp, "SLURM_ARRAY_TASK_COUNT");
        const char *min_s = env_get(envp, "SLURM_ARRAY_TASK_MIN");
        const char *max_s = env_get(envp, "SLURM_ARRAY_TASK_MAX");
        const char *step_s = env_get(envp, "SLURM_ARRAY_TASK_STEP");
        unsigned long long task, n, lo = 0, hi, step = 1;
        *source = "Slurm array";
        if (!parse_count(id, big, &task) || !parse_count(cnt, FV_SHARD_MAX_COUNT, &n) || n == 0)
            return fv_error_set(err, FV_ERR_INVALID_ARG,
                                "--shard auto: SLURM_ARRAY_TASK_ID (%s) and "
                                "SLURM_ARRAY_TASK_COUNT (%s) must be numbers, the count "
                                "1 to %d",
                                id, cnt ? cnt : "unset", FV_SHARD_MAX_COUNT);
        if ((min_s && !parse_count(min_s, big, &lo)) ||
            (step_s && (!parse_count(step_s, big, &step) || step == 0)))
            return fv_error_set(err, FV_ERR_INVALID_ARG,
                                "--shard auto: SLURM_ARRAY_TASK_MIN or _STEP is not a number");
        hi = lo + (n - 1) * step;
        if ((max_s && (!parse_count(max_s, big, &hi) || hi != lo + (n - 1) * step)) ||
            task < lo || task > hi || (task - lo) % step != 0)
            return fv_error_set(err, FV_ERR_INVALID_ARG,
                                "--shard auto: the Slurm array is not an evenly stepped range "
                                "(task %s, count %s, min %s, max %s, step %s); submit it as "
                                "--array=0-%llu",
                                id, cnt, min_s ? min_s : "unset", max_s ? max_s : "unset",
                                step_s ? step_s : "unset", n - 1);
        if (shards && shards != n)
            return fv_error_set(err, FV_ERR_INVALID_ARG,
                                "--shard auto: --shards %zu disagrees with the Slurm array's "
                                "%llu tasks",
                                shards, n);
        *index = (size_t)((task - lo) / step);
        *count = (size_t)n;
        return FV_OK;
    }
    const char *k8s = env_get(envp, "JOB_COMPLETION_INDEX");
    if (k8s) {
        unsigned long long i, n = shards;
        const char *from = env_get(envp, "FACEVER_SHARDS");
        *source = "Kubernetes indexed job";
        if (!shards && !(from && parse_count(from, FV_SHARD_MAX_COUNT, &n)))
            return fv_error_set(err, FV_ERR_INVALID_ARG,
                                "--shard auto: JOB_COMPLETION_INDEX is set but not the number "
                                "of shards: give --shards N or FACEVER_SHARDS=N (the Job's "
                                "completions)");
        if (n == 0 || n > FV_SHARD_MAX_COUNT || !parse_count(k8s, big, &i) || i >= n)
            return fv_error_set(err, FV_ERR_INVALID_ARG,
                                "--shard auto: JOB_COMPLETION_INDEX %s is not an index below "
                                "the %llu shards",
                                k8s, n);
        *index = (size_t)i;
        *count = (size_t)n;
        return FV_OK;
    }
    *source = NULL;
    return fv_error_set(err, FV_ERR_INVALID_ARG,
                        "--shard auto: neither a Slurm array task (SLURM_ARRAY_TASK_ID) nor a "
                        "Kubernetes indexed job (JOB_COMPLETION_INDEX) is in the environment; "
                        "give --shard I/N");
}

/* ---- image lists ---- */

void fv_shard_list_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

enum fv_status fv_shard_list_load(const char *path, char ***out, size_t *n_out,
                                  struct fv_error *err)
{
    *out = NULL;
    *n_out = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return fv_error_set(err, errno == ENOENT ? FV_ERR_NOT_FOUND : FV_ERR_IO,
                            "%s: cannot open: %s", path, strerror(errno));
    char **names = NULL, *line = NULL;
    size_t n = 0, cap = 0, line_cap = 0, number = 0;
    ssize_t len;
    enum fv_status st = FV_OK;
    while ((len = getline(&line, &line_cap, f)) >= 0) {
        number++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        if ((size_t)len > FV_SHARD_MAX_NAME || memchr(line, '\0', (size_t)len)) {
            st = fv_error_set(err, FV_ERR_FORMAT, "%s:%zu: not an image name of at most %d bytes",
                              path, number, FV_SHARD_MAX_NAME);
            goto fail;
        }
        if (n == FV_SHARD_MAX_IMAGES) {
            st = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: more than %d images", path,
                              FV_SHARD_MAX_IMAGES);
            goto fail;
        }
        if (n == cap) {
            size_t c = cap ? cap * 2 : 1024;
            char **p = realloc(names, c * sizeof *p);
            if (!p)
                goto nomem;
            names = p;
            cap = c;
        }
        if (!(names[n] = strdup(line)))
            goto nomem;
        n++;
    }
    if (ferror(f)) {
        st = fv_error_set(err, FV_ERR_IO, "%s: read failed", path);
        goto fail;
    }
    free(line);
    fclose(f);
    *out = names;
    *n_out = n;
    return FV_OK;
nomem:
    st = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory at line %zu", path, number);
fail:
    free(line);
    fclose(f);
    fv_shard_list_free(names, n);
    return st;
}

struct named {
    const char *name;
    size_t index;
};

static int cmp_named(const void *a, const void *b)
{
    const struct named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

enum fv_status fv_shard_list_check(const char *const *names, size_t n, int relative_only,
                                   const char *source, struct fv_error *err)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        if (len == 0 || len > FV_SHARD_MAX_NAME)
            return fv_error_set(err, FV_ERR_FORMAT, "%s: entry %zu: image names must have 1 to "
                                "%d bytes", source, i + 1, FV_SHARD_MAX_NAME);
        for (size_t k = 0; k < len; k++)
            if ((unsigned char)names[i][k] < 0x20 || names[i][k] == 0x7f)
                return fv_error_set(err, FV_ERR_FORMAT,
                                    "%s: entry %zu: control character in the image name",
                                    source, i + 1);
        if (relative_only && names[i][0] == '/')
            return fv_error_set(err, FV_ERR_INVALID_ARG,
                                "%s: entry %zu: '%.200s' is absolute, but names are read "
                                "relative to --root",
                                source, i + 1, names[i]);
    }
    struct named *sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted)
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory checking %zu names", source, n);
    for (size_t i = 0; i < n; i++)
        sorted[i] = (struct named){names[i], i};
    qsort(sorted, n, sizeof *sorted, cmp_named);
    enum fv_status st = FV_OK;
    for (size_t i = 1; i < n && !st; i++)
        if (strcmp(sorted[i - 1].name, sorted[i].name) == 0)
            st = fv_error_set(err, FV_ERR_INVALID_ARG,
                              "%s: image '%.200s' is listed twice (entries %zu and %zu)", source,
                              sorted[i].name, sorted[i - 1].index + 1, sorted[i].index + 1);
    free(sorted);
    return st;
}

void fv_shard_list_identify(const char *const *names, size_t n, size_t *count,
                            uint64_t *checksum)
{
    uint64_t h = FV_FNV1A_BASIS;
    for (size_t i = 0; i < n; i++) {
        h = fv_fnv1a(h, names[i], strlen(names[i]));
        h = fv_fnv1a(h, "\n", 1);
    }
    *count = n;
    *checksum = h;
}

/* ---- files ---- */

void fv_shard_path(char *buf, size_t cap, const char *dir, size_t index, size_t count,
                   const char *suffix)
{
    snprintf(buf, cap, "%s/shard-%05zu-of-%05zu%s", dir, index, count, suffix);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Makes renames in dir durable. */
static enum fv_status sync_dir(const char *dir, struct fv_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return fv_error_set(err, FV_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    /* Some file systems cannot fsync a directory; the renames stand all the same. */
    if (rc != 0 && errno != EINVAL && errno != EROFS)
        return fv_error_set(err, FV_ERR_IO, "%s: fsync failed: %s", dir, strerror(errno));
    return FV_OK;
}

typedef enum fv_status (*file_writer)(FILE *f, const void *data, struct fv_error *err);

/* Writes path through a temporary file beside it: writer, flush, fsync, rename. */
static enum fv_status write_atomic(const char *path, file_writer writer, const void *data,
                                   struct fv_error *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return fv_error_set(err, FV_ERR_IO, "%s: cannot create a temporary file: %s", path,
                            strerror(errno));
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        return fv_error_set(err, FV_ERR_IO, "%s: %s", tmp, strerror(errno));
    }
    enum fv_status st = writer(f, data, err);
    /* mkstemp makes the file private; shards are results to be read by others. */
    if (!st && (fflush(f) != 0 || fchmod(fileno(f), 0644) != 0 || fsync(fileno(f)) != 0))
        st = fv_error_set(err, FV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && !st)
        st = fv_error_set(err, FV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (!st && rename(tmp, path) != 0)
        st = fv_error_set(err, FV_ERR_IO, "%s: cannot rename into place: %s", path,
                          strerror(errno));
    if (st) {
        unlink(tmp);
        if (err && !strstr(err->message, path))
            fv_error_prefix(err, "%s: ", path);
    }
    return st;
}

/* Removes temporary files a killed run of this shard left behind. */
static void remove_stale_temporaries(const char *dir, size_t index, size_t count)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "shard-%05zu-of-%05zu.", index, count);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strstr(e->d_name, ".tmp.")) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
}

struct matrix {
    const float *x;
    size_t rows, cols;
};

static enum fv_status write_matrix(FILE *f, const void *data, struct fv_error *err)
{
    const struct matrix *m = data;
    return fv_npy_write_f32(f, m->x, m->rows, m->cols, err);
}

struct name_lines {
    const char *const *names;
    size_t n;
};

static enum fv_status write_names(FILE *f, const void *data, struct fv_error *err)
{
    const struct name_lines *l = data;
    for (size_t i = 0; i < l->n; i++)
        if (fputs(l->names[i], f) == EOF || fputc('\n', f) == EOF)
            return fv_error_set(err, FV_ERR_IO, "write failed: %s", strerror(errno));
    return FV_OK;
}

static enum fv_status write_text(FILE *f, const void *data, struct fv_error *err)
{
    const char *text = data;
    size_t len = strlen(text);
    if (fwrite(text, 1, len, f) != len || fputc('\n', f) == EOF)
        return fv_error_set(err, FV_ERR_IO, "write failed: %s", strerror(errno));
    return FV_OK;
}

/* ---- metadata ---- */

struct not_detected {
    size_t row;                    /* within the shard */
    enum fv_feature_source source; /* landmarks, center or failed */
    char *image;
};

struct meta {
    struct fv_shard shard;
    char npy[64], names[64];       /* file names, in the shard's folder */
    char cpu_level[16];            /* "" when not recorded */
    uint64_t npy_sum, names_sum;
    struct not_detected *not_detected;
    size_t n_not_detected;
};

static void meta_free(struct meta *m)
{
    for (size_t i = 0; i < m->n_not_detected; i++)
        free(m->not_detected[i].image);
    free(m->not_detected);
    memset(m, 0, sizeof *m);
}

static cJSON *config_json(const struct fv_shard *s, cJSON *root)
{
    const struct fv_shard_config *c = &s->config;
    char hex[17];
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "name", c->model);
    hex64(hex, c->fingerprint);
    cJSON_AddStringToObject(model, "fingerprint", hex);
    cJSON_AddStringToObject(model, "precision", c->precision);
    if (s->cpu_level)
        cJSON_AddStringToObject(model, "cpu_level", s->cpu_level);
    cJSON *features = cJSON_AddObjectToObject(root, "features");
    cJSON_AddNumberToObject(features, "dim", c->dim);
    cJSON_AddStringToObject(features, "dtype", "<f4");
    cJSON_AddStringToObject(features, "layout",
                            "raw embedding-layer outputs of the aligned crop and of its mirror "
                            "image, concatenated");
    cJSON_AddBoolToObject(features, "flip", 1);
    cJSON_AddBoolToObject(features, "concat", 1);
    cJSON_AddStringToObject(features, "pca", "none");
    cJSON_AddBoolToObject(features, "normalized", 0);
    cJSON *options = cJSON_AddObjectToObject(root, "options");
    cJSON_AddStringToObject(options, "policy", fv_face_policy_name(c->policy));
    cJSON_AddBoolToObject(options, "center_fallback", c->center_fallback);
    if (c->landmarks_checksum) {
        hex64(hex, c->landmarks_checksum);
        cJSON_AddStringToObject(options, "landmarks_checksum", hex);
    } else {
        cJSON_AddNullToObject(options, "landmarks_checksum");
    }
    cJSON_AddNumberToObject(options, "max_pixels", (double)c->max_pixels);
    cJSON_AddNumberToObject(options, "max_bytes", (double)c->max_bytes);
    return options;
}

static char *meta_text(const struct fv_shard *s, const char *npy, uint64_t npy_sum,
                       const char *names, uint64_t names_sum, const char *const *rows,
                       const enum fv_feature_source *how)
{
    char hex[17];
    size_t n = s->end - s->begin, counts[FV_FEATURE_FAILED + 1] = {0};
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", SHARD_FORMAT);
    cJSON_AddNumberToObject(root, "version", SHARD_VERSION);
    cJSON *shard = cJSON_AddObjectToObject(root, "shard");
    cJSON_AddNumberToObject(shard, "index", (double)s->index);
    cJSON_AddNumberToObject(shard, "count", (double)s->count);
    cJSON_AddNumberToObject(shard, "begin", (double)s->begin);
    cJSON_AddNumberToObject(shard, "end", (double)s->end);
    cJSON_AddNumberToObject(shard, "images", (double)n);
    cJSON *list = cJSON_AddObjectToObject(root, "list");
    cJSON_AddNumberToObject(list, "images", (double)s->list_count);
    hex64(hex, s->list_checksum);
    cJSON_AddStringToObject(list, "checksum", hex);
    cJSON_AddStringToObject(list, "checksum_kind", "fnv1a64 of each name followed by a newline");
    cJSON *files = cJSON_AddObjectToObject(root, "files");
    cJSON_AddStringToObject(files, "npy", npy);
    hex64(hex, npy_sum);
    cJSON_AddStringToObject(files, "npy_checksum", hex);
    cJSON_AddStringToObject(files, "names", names);
    hex64(hex, names_sum);
    cJSON_AddStringToObject(files, "names_checksum", hex);
    cJSON_AddStringToObject(files, "checksum_kind", "fnv1a64 of the file's bytes");
    cJSON *options = config_json(s, root);
    const struct fv_detect_params *detect = &s->config.detect;
    {
        cJSON *d = cJSON_AddObjectToObject(options, "detect");
        /* Floats as people typed them (0.709, not 0.708999991416931). */
        cJSON_AddNumberToObject(d, "min_face", round(detect->min_face * 1e6) / 1e6);
        cJSON_AddNumberToObject(d, "min_face_relative",
                                round(detect->min_face_relative * 1e6) / 1e6);
        cJSON_AddNumberToObject(d, "max_side", detect->max_side);
        cJSON_AddNumberToObject(d, "factor", round(detect->factor * 1e6) / 1e6);
        cJSON *t = cJSON_AddArrayToObject(d, "thresholds");
        for (int k = 0; k < 3; k++)
            cJSON_AddItemToArray(t, cJSON_CreateNumber(round(detect->thresholds[k] * 1e6) / 1e6));
        cJSON_AddNumberToObject(d, "max_faces", detect->max_faces);
    }
    for (size_t i = 0; i < n; i++)
        counts[how[i] <= FV_FEATURE_FAILED ? how[i] : FV_FEATURE_FAILED]++;
    cJSON *sources = cJSON_AddObjectToObject(root, "sources");
    for (int k = 0; k <= FV_FEATURE_FAILED; k++)
        cJSON_AddNumberToObject(sources, fv_feature_source_name((enum fv_feature_source)k),
                                (double)counts[k]);
    /* The rows whose face MTCNN did not find, and what stands in their row: the merge
     * reports them exactly as a single-process evaluation would. */
    cJSON *nd = cJSON_AddArrayToObject(root, "not_detected");
    for (size_t i = 0; i < n; i++)
        if (how[i] != FV_FEATURE_DETECTED) {
            cJSON *item = cJSON_CreateObject();
            cJSON_AddNumberToObject(item, "row", (double)i);
            cJSON_AddStringToObject(item, "image", rows[i]);
            cJSON_AddStringToObject(item, "source", fv_feature_source_name(how[i]));
            cJSON_AddItemToArray(nd, item);
        }
    if (s->seconds > 0)
        cJSON_AddNumberToObject(root, "seconds", round(s->seconds * 100) / 100);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

static const cJSON *member(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* A count (a non-negative integer-valued number up to limit). */
static int get_size(const cJSON *obj, const char *name, double limit, size_t *out)
{
    const cJSON *v = member(obj, name);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > limit ||
        v->valuedouble != floor(v->valuedouble))
        return 0;
    *out = (size_t)v->valuedouble;
    return 1;
}

static const char *get_string(const cJSON *obj, const char *name)
{
    const cJSON *v = member(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int copy_string(const cJSON *obj, const char *name, char *out, size_t cap)
{
    const char *s = get_string(obj, name);
    if (!s || strlen(s) >= cap)
        return 0;
    memcpy(out, s, strlen(s) + 1);
    return 1;
}

static int source_from_name(const char *name, enum fv_feature_source *out)
{
    for (int k = 0; k <= FV_FEATURE_FAILED; k++)
        if (name && strcmp(name, fv_feature_source_name((enum fv_feature_source)k)) == 0) {
            *out = (enum fv_feature_source)k;
            return 1;
        }
    return 0;
}

/* A file name the metadata gives: plain, in the shard's own folder. */
static int plain_file_name(const char *s)
{
    return s[0] && s[0] != '.' && !strchr(s, '/');
}

/* Parses and checks metadata (untrusted) of size bytes at data; path names it. */
static enum fv_status meta_parse(const uint8_t *data, size_t size, const char *path,
                                 struct meta *m, struct fv_error *err)
{
    enum fv_status st;
    memset(m, 0, sizeof *m);
    cJSON *root = cJSON_ParseWithLength((const char *)data, size);
    if (!root)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: not JSON (a damaged shard: run its embed "
                            "again)", path);
    const char *format = get_string(root, "format");
    const cJSON *version = member(root, "version");
    const cJSON *shard = member(root, "shard"), *list = member(root, "list");
    const cJSON *files = member(root, "files"), *model = member(root, "model");
    const cJSON *features = member(root, "features"), *options = member(root, "options");
    const cJSON *nd = member(root, "not_detected");
    struct fv_shard *s = &m->shard;
    struct fv_shard_config *c = &s->config;
    size_t dim = 0, policy_n;
    const char *policy, *landmarks;
    if (!format || strcmp(format, SHARD_FORMAT) != 0) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s: not facever shard metadata", path);
        goto fail;
    }
    if (!cJSON_IsNumber(version) || version->valuedouble != SHARD_VERSION) {
        st = fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: shard format version %g, this facever "
                          "reads version %d",
                          path, cJSON_IsNumber(version) ? version->valuedouble : -1, SHARD_VERSION);
        goto fail;
    }
    if (!get_size(shard, "index", FV_SHARD_MAX_COUNT, &s->index) ||
        !get_size(shard, "count", FV_SHARD_MAX_COUNT, &s->count) ||
        !get_size(shard, "begin", FV_SHARD_MAX_IMAGES, &s->begin) ||
        !get_size(shard, "end", FV_SHARD_MAX_IMAGES, &s->end) ||
        !get_size(list, "images", FV_SHARD_MAX_IMAGES, &s->list_count) ||
        !parse_hex64(get_string(list, "checksum"), &s->list_checksum) ||
        !copy_string(files, "npy", m->npy, sizeof m->npy) ||
        !copy_string(files, "names", m->names, sizeof m->names) ||
        !parse_hex64(get_string(files, "npy_checksum"), &m->npy_sum) ||
        !parse_hex64(get_string(files, "names_checksum"), &m->names_sum) ||
        !copy_string(model, "name", c->model, sizeof c->model) ||
        !parse_hex64(get_string(model, "fingerprint"), &c->fingerprint) ||
        !copy_string(model, "precision", c->precision, sizeof c->precision) ||
        !get_size(features, "dim", 1 << 20, &dim) || dim == 0 ||
        !(policy = get_string(options, "policy")) ||
        !cJSON_IsBool(member(options, "center_fallback")) ||
        !get_size(options, "max_pixels", 9007199254740992.0, &policy_n) ||
        !get_size(options, "max_bytes", 9007199254740992.0, &c->max_bytes) || !cJSON_IsArray(nd)) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s: shard metadata lacks a field or has one of "
                          "the wrong type", path);
        goto fail;
    }
    c->max_pixels = policy_n;
    c->dim = (int)dim;
    c->center_fallback = cJSON_IsTrue(member(options, "center_fallback"));
    int p = fv_face_policy_from_name(policy);
    landmarks = get_string(options, "landmarks_checksum");
    if (p < 0 || s->count == 0 || s->index >= s->count || s->begin > s->end ||
        s->end > s->list_count || !plain_file_name(m->npy) || !plain_file_name(m->names) ||
        (landmarks ? !parse_hex64(landmarks, &c->landmarks_checksum)
                   : !cJSON_IsNull(member(options, "landmarks_checksum")))) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s: shard metadata has a value out of range", path);
        goto fail;
    }
    c->policy = (enum fv_face_policy)p;
    if (!copy_string(model, "cpu_level", m->cpu_level, sizeof m->cpu_level))
        m->cpu_level[0] = '\0';
    size_t n_nd = (size_t)cJSON_GetArraySize(nd);
    if (n_nd > s->end - s->begin) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s: more images without a face than rows", path);
        goto fail;
    }
    m->not_detected = calloc(n_nd ? n_nd : 1, sizeof *m->not_detected);
    if (!m->not_detected) {
        st = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, nd)
    {
        struct not_detected *e = &m->not_detected[m->n_not_detected];
        const char *image = get_string(item, "image");
        if (!get_size(item, "row", FV_SHARD_MAX_IMAGES, &e->row) ||
            e->row >= s->end - s->begin || !image ||
            !source_from_name(get_string(item, "source"), &e->source) ||
            e->source == FV_FEATURE_DETECTED) {
            st = fv_error_set(err, FV_ERR_FORMAT, "%s: not_detected entry %zu is malformed", path,
                              m->n_not_detected + 1);
            goto fail;
        }
        if (!(e->image = strdup(image))) {
            st = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        m->n_not_detected++;
    }
    cJSON_Delete(root);
    return FV_OK;
fail:
    cJSON_Delete(root);
    meta_free(m);
    return st;
}

static enum fv_status meta_load(const char *path, struct meta *m, struct fv_error *err)
{
    uint8_t *data = NULL;
    size_t size = 0;
    memset(m, 0, sizeof *m);
    enum fv_status st = fv_read_file(path, META_MAX_BYTES, &data, &size, err);
    if (st)
        return st;
    st = meta_parse(data, size, path, m, err);
    free(data);
    return st;
}

enum fv_status fv_shard_metadata_check(const uint8_t *data, size_t size, const char *source,
                                       struct fv_error *err)
{
    struct meta m;
    enum fv_status st = meta_parse(data, size, source, &m, err);
    if (!st)
        meta_free(&m);
    return st;
}

/* The shard's two data files, read and checked against its metadata: names (one per
 * row, the buffer they point into in *text) and the matrix. */
static enum fv_status shard_data_load(const char *dir, const struct meta *m, char **text,
                                      char ***names, float **x, struct fv_error *err)
{
    char path[4200];
    uint8_t *data = NULL;
    size_t size = 0, rows = m->shard.end - m->shard.begin, r = 0, k = 0;
    enum fv_status st;
    *text = NULL;
    *names = NULL;
    *x = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, m->names);
    size_t names_max = rows * (FV_SHARD_MAX_NAME + 1);
    if ((st = fv_read_file(path, names_max, &data, &size, err)))
        return st;
    if (fv_fnv1a(FV_FNV1A_BASIS, data, size) != m->names_sum) {
        free(data);
        return fv_error_set(err, FV_ERR_FORMAT, "%s: checksum differs from its metadata's "
                            "(changed or damaged since it was written)", path);
    }
    char **list = malloc((rows ? rows : 1) * sizeof *list);
    char *t = realloc(data, size + 1);
    if (!list || !t) {
        free(list);
        if (t)
            free(t);
        else
            free(data);
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
    }
    t[size] = '\0';
    size_t count = 0;
    for (char *p = t; *p;) {
        char *nl = strchr(p, '\n');
        if (!nl || count == rows)
            break;
        *nl = '\0';
        list[count++] = p;
        p = nl + 1;
    }
    if (count != rows || (size && t[size - 1] != '\0')) {
        free(list);
        free(t);
        return fv_error_set(err, FV_ERR_FORMAT, "%s: expected %zu names, one per line", path,
                            rows);
    }
    snprintf(path, sizeof path, "%s/%s", dir, m->npy);
    size_t npy_max = 65536 + 12 + rows * (size_t)m->shard.config.dim * 4;
    if ((st = fv_read_file(path, npy_max, &data, &size, err))) {
        free(list);
        free(t);
        return st;
    }
    if (fv_fnv1a(FV_FNV1A_BASIS, data, size) != m->npy_sum) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s: checksum differs from its metadata's "
                          "(changed or damaged since it was written)", path);
    } else if (!(st = fv_npy_parse_f32(data, size, path, x, &r, &k, err)) &&
               (r != rows || k != (size_t)m->shard.config.dim)) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s: shape (%zu, %zu), its metadata says (%zu, %d)",
                          path, r, k, rows, m->shard.config.dim);
    }
    free(data);
    if (st) {
        free(*x);
        *x = NULL;
        free(list);
        free(t);
        return st;
    }
    *text = t;
    *names = list;
    return FV_OK;
}

/* Whether the metadata's shard is the one described: same configuration, list and rows. */
static int same_shard(const struct fv_shard *got, const struct fv_shard *want, char *why,
                      size_t cap)
{
    char what[400];
    if (config_differs(&got->config, &want->config, what, sizeof what)) {
        snprintf(why, cap, "%s", what);
        return 0;
    }
    if (got->list_count != want->list_count || got->list_checksum != want->list_checksum) {
        snprintf(why, cap, "made from another image list (%zu images, checksum %016llx; "
                 "expected %zu, %016llx)", got->list_count, (unsigned long long)got->list_checksum,
                 want->list_count, (unsigned long long)want->list_checksum);
        return 0;
    }
    if (got->index != want->index || got->count != want->count || got->begin != want->begin ||
        got->end != want->end) {
        snprintf(why, cap, "holds rows %zu..%zu as shard %zu/%zu, expected %zu..%zu",
                 got->begin, got->end, got->index, got->count, want->begin, want->end);
        return 0;
    }
    return 1;
}

int fv_shard_done(const char *dir, const struct fv_shard *shard, char *why, size_t cap)
{
    char path[4200];
    struct meta m;
    struct fv_error err = {0};
    fv_shard_path(path, sizeof path, dir, shard->index, shard->count, ".json");
    if (access(path, F_OK) != 0) {
        snprintf(why, cap, "not done yet");
        return 0;
    }
    if (meta_load(path, &m, &err)) {
        snprintf(why, cap, "%s", err.message);
        return 0;
    }
    int done = same_shard(&m.shard, shard, why, cap);
    if (done) {
        char *text = NULL, **names = NULL;
        float *x = NULL;
        if (shard_data_load(dir, &m, &text, &names, &x, &err)) {
            snprintf(why, cap, "%s", err.message);
            done = 0;
        }
        free(text);
        free(names);
        free(x);
    }
    meta_free(&m);
    return done;
}

enum fv_status fv_shard_write(const char *dir, const struct fv_shard *s,
                              const char *const *names, const float *features,
                              const enum fv_feature_source *how, struct fv_error *err)
{
    char npy[4200], names_path[4200], meta[4200];
    size_t rows = s->end - s->begin;
    uint64_t npy_sum, names_sum = FV_FNV1A_BASIS;
    enum fv_status st;
    fv_shard_path(npy, sizeof npy, dir, s->index, s->count, ".npy");
    fv_shard_path(names_path, sizeof names_path, dir, s->index, s->count, ".names.txt");
    fv_shard_path(meta, sizeof meta, dir, s->index, s->count, ".json");
    /* Old metadata goes first, and durably: a crash part-way must not leave it marking
     * new data files that do not match it as done. */
    if (unlink(meta) != 0 && errno != ENOENT)
        return fv_error_set(err, FV_ERR_IO, "%s: cannot remove: %s", meta, strerror(errno));
    if ((st = sync_dir(dir, err)))
        return st;
    remove_stale_temporaries(dir, s->index, s->count);
    struct matrix mx = {features, rows, (size_t)s->config.dim};
    struct name_lines nl = {names, rows};
    /* The data files' renames reach the disk before the metadata can: a crash leaves
     * metadata only beside the files it describes. */
    if ((st = write_atomic(npy, write_matrix, &mx, err)) ||
        (st = hash_file(npy, &npy_sum, NULL, err)) ||
        (st = write_atomic(names_path, write_names, &nl, err)) || (st = sync_dir(dir, err)))
        return st;
    for (size_t i = 0; i < rows; i++) {
        names_sum = fv_fnv1a(names_sum, names[i], strlen(names[i]));
        names_sum = fv_fnv1a(names_sum, "\n", 1);
    }
    char *text = meta_text(s, base_name(npy), npy_sum, base_name(names_path), names_sum,
                           names, how);
    if (!text)
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", meta);
    st = write_atomic(meta, write_text, text, err);
    free(text);
    if (!st)
        st = sync_dir(dir, err);
    return st;
}

/* ---- gathering ---- */

/* Open addressing over the evaluation's image names: name -> its row. */
struct name_index {
    size_t cap;
    size_t *slots; /* row + 1; 0: empty */
    const char *const *names;
};

static size_t name_slot(const struct name_index *t, const char *name)
{
    size_t i = (size_t)fv_fnv1a(FV_FNV1A_BASIS, name, strlen(name)) & (t->cap - 1);
    while (t->slots[i] && strcmp(t->names[t->slots[i] - 1], name) != 0)
        i = (i + 1) & (t->cap - 1);
    return i;
}

static int name_index_init(struct name_index *t, const char *const *names, size_t n)
{
    t->cap = 16;
    while (t->cap < 2 * n + 1)
        t->cap *= 2;
    t->names = names;
    if (!(t->slots = calloc(t->cap, sizeof *t->slots)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        size_t slot = name_slot(t, names[i]);
        if (!t->slots[slot])
            t->slots[slot] = i + 1;
    }
    return 0;
}

/* The row of name, or SIZE_MAX when the evaluation does not use it. */
static size_t name_find(const struct name_index *t, const char *name)
{
    size_t slot = name_slot(t, name);
    return t->slots[slot] ? t->slots[slot] - 1 : SIZE_MAX;
}

/* "shard-IIIII-of-NNNNN.json" exactly. */
static int shard_meta_name(const char *name, size_t *index, size_t *count)
{
    unsigned long long i, n;
    char a[6], b[6];
    if (strlen(name) != 25 || strncmp(name, "shard-", 6) != 0 ||
        strncmp(name + 11, "-of-", 4) != 0 || strcmp(name + 20, ".json") != 0)
        return 0;
    memcpy(a, name + 6, 5);
    a[5] = '\0';
    memcpy(b, name + 15, 5);
    b[5] = '\0';
    if (!parse_count(a, FV_SHARD_MAX_COUNT, &i) || !parse_count(b, FV_SHARD_MAX_COUNT, &n) ||
        n == 0 || i >= n)
        return 0;
    *index = (size_t)i;
    *count = (size_t)n;
    return 1;
}

/* Finds the split in dir: every shard metadata file must be of the same count, and every
 * index of it present. */
static enum fv_status find_split(const char *dir, size_t *count_out, struct fv_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return fv_error_set(err, errno == ENOENT ? FV_ERR_NOT_FOUND : FV_ERR_IO,
                            "%s: cannot open: %s", dir, strerror(errno));
    size_t count = 0, index, n, first_index = 0;
    unsigned char *seen = NULL;
    enum fv_status st = FV_OK;
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        if (!shard_meta_name(e->d_name, &index, &n))
            continue;
        if (count == 0) {
            count = n;
            first_index = index;
            if (!(seen = calloc(n, 1)))
                st = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        } else if (n != count) {
            st = fv_error_set(err, FV_ERR_INVALID_ARG,
                              "%s: shards of two different splits: %s/shard-%05zu-of-%05zu.json "
                              "and %s/%s; remove the stale ones",
                              dir, dir, first_index, count, dir, e->d_name);
        }
        if (!st)
            seen[index] = 1;
    }
    closedir(d);
    if (!st && count == 0)
        st = fv_error_set(err, FV_ERR_NOT_FOUND,
                          "%s: no shard metadata (shard-*-of-*.json) in it; run `facever embed "
                          "--shard I/N --out %s` first",
                          dir, dir);
    if (!st) {
        size_t missing = 0, first = 0;
        char list[200] = "";
        for (size_t i = 0; i < count; i++)
            if (!seen[i]) {
                if (missing++ == 0)
                    first = i;
                size_t len = strlen(list);
                if (len < sizeof list - 24)
                    snprintf(list + len, sizeof list - len, "%s%zu", len ? ", " : "", i);
                else if (len < sizeof list - 4)
                    snprintf(list + len, sizeof list - len, ", ...");
            }
        if (missing)
            st = fv_error_set(err, FV_ERR_NOT_FOUND,
                              "%s: %zu of %zu shards missing (%s): no %s/shard-%05zu-of-%05zu.json "
                              "(not run, failed or still running)",
                              dir, missing, count, list, dir, first, count);
    }
    free(seen);
    if (!st)
        *count_out = count;
    return st;
}

enum fv_status fv_shards_gather(const char *dir, const struct fv_shard_config *expect,
                                const char *const *paths, size_t n, float *features,
                                enum fv_feature_source *how, struct fv_shards_summary *summary,
                                struct fv_error *err)
{
    size_t count = 0, d = (size_t)expect->dim, used = 0;
    struct name_index index = {0};
    uint32_t *owner = NULL; /* shard + 1 that gave each row; 0: none yet */
    struct meta first = {0}, m = {0};
    char path[4200], why[400];
    enum fv_status st = find_split(dir, &count, err);
    if (st)
        return st;
    if (summary)
        memset(summary, 0, sizeof *summary);
    if (name_index_init(&index, paths, n) || !(owner = calloc(n ? n : 1, sizeof *owner))) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory gathering %zu images", n);
        goto done;
    }
    for (size_t s = 0; s < count && !st; s++) {
        fv_shard_path(path, sizeof path, dir, s, count, ".json");
        if ((st = meta_load(path, &m, err)))
            break;
        struct fv_shard want = m.shard;
        want.config = *expect;
        want.index = s;
        want.count = count;
        if (s > 0) {
            want.list_count = first.shard.list_count;
            want.list_checksum = first.shard.list_checksum;
        }
        fv_shard_range(want.list_count, s, count, &want.begin, &want.end);
        if (!same_shard(&m.shard, &want, why, sizeof why)) {
            if (s > 0 && strstr(why, "image list"))
                st = fv_error_set(err, FV_ERR_INVALID_ARG,
                                  "%s: %s, unlike %s/shard-00000-of-%05zu.json", path, why, dir,
                                  count);
            else
                st = fv_error_set(err, FV_ERR_INVALID_ARG, "%s: %s", path, why);
            break;
        }
        if (summary && m.cpu_level[0]) {
            if (!summary->cpu_levels[0][0])
                snprintf(summary->cpu_levels[0], sizeof summary->cpu_levels[0], "%s", m.cpu_level);
            else if (strcmp(summary->cpu_levels[0], m.cpu_level) != 0)
                snprintf(summary->cpu_levels[1], sizeof summary->cpu_levels[1], "%s", m.cpu_level);
        }
        char *text = NULL, **names = NULL;
        float *x = NULL;
        if ((st = shard_data_load(dir, &m, &text, &names, &x, err)))
            break;
        size_t rows = m.shard.end - m.shard.begin;
        for (size_t r = 0; r < rows && !st; r++) {
            size_t i = name_find(&index, names[r]);
            if (i == SIZE_MAX)
                continue;
            if (owner[i]) {
                char other[4200];
                fv_shard_path(other, sizeof other, dir, owner[i] - 1, count, ".names.txt");
                st = fv_error_set(err, FV_ERR_INVALID_ARG, "image '%.300s' is in two shards: "
                                  "%s and %s/%s",
                                  names[r], other, dir, m.names);
                break;
            }
            owner[i] = (uint32_t)s + 1;
            memcpy(features + i * d, x + r * d, d * sizeof *features);
            how[i] = FV_FEATURE_DETECTED;
            used++;
        }
        for (size_t k = 0; k < m.n_not_detected && !st; k++) {
            const struct not_detected *e = &m.not_detected[k];
            if (strcmp(e->image, names[e->row]) != 0) {
                st = fv_error_set(err, FV_ERR_FORMAT, "%s: not_detected entry %zu names '%.200s', "
                                  "but row %zu is '%.200s'",
                                  path, k + 1, e->image, e->row, names[e->row]);
                break;
            }
            size_t i = name_find(&index, e->image);
            if (i != SIZE_MAX)
                how[i] = e->source;
        }
        free(text);
        free(names);
        free(x);
        if (s == 0)
            first = m;
        else
            meta_free(&m);
        memset(&m, 0, sizeof m);
    }
    if (!st && used < n) {
        size_t missing = 0, at = 0;
        for (size_t i = 0; i < n; i++)
            if (!owner[i] && missing++ == 0)
                at = i;
        st = fv_error_set(err, FV_ERR_NOT_FOUND,
                          "%s: %zu of the %zu images to evaluate are in no shard (first: "
                          "'%.300s'); the shards split a list of %zu images that lacks them",
                          dir, missing, n, paths[at], first.shard.list_count);
    }
    if (!st && summary) {
        summary->shards = count;
        summary->list_count = first.shard.list_count;
        summary->used = used;
    }
done:
    meta_free(&first);
    meta_free(&m);
    free(index.slots);
    free(owner);
    return st;
}
