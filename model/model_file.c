/* model_file.c - reading and writing facever model files (format in model_file.h). */
#include "model/model_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char model_magic[8] = {'F', 'V', 'M', 'O', 'D', 'E', 'L', '\0'};

#define MAX_ITEMS 100000
#define MAX_FILE_BYTES ((size_t)2 << 30)

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static cJSON *int_array(const int *v, int n)
{
    return cJSON_CreateIntArray(v, n);
}

static cJSON *meta_to_json(const struct fv_model_meta *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON *in = cJSON_AddObjectToObject(o, "input");
    cJSON_AddNumberToObject(in, "height", m->input_h);
    cJSON_AddNumberToObject(in, "width", m->input_w);
    cJSON_AddNumberToObject(in, "channels", m->input_c);
    cJSON_AddNumberToObject(o, "pixel_mean", m->pixel_mean);
    cJSON_AddNumberToObject(o, "pixel_scale", m->pixel_scale);
    cJSON_AddBoolToObject(o, "transpose_input", m->transpose_input);
    cJSON_AddStringToObject(o, "embedding", m->embedding);
    cJSON *tpl = cJSON_AddObjectToObject(o, "template");
    cJSON_AddNumberToObject(tpl, "height", m->template_h);
    cJSON_AddNumberToObject(tpl, "width", m->template_w);
    if (isnan(m->threshold))
        cJSON_AddNullToObject(o, "threshold");
    else
        cJSON_AddNumberToObject(o, "threshold", m->threshold);
    return o;
}

enum fv_status fv_model_file_write(struct fv_graph *g, uint8_t **out, size_t *out_size,
                                   struct fv_error *err)
{
    enum fv_status st = FV_OK;
    char *json = NULL;
    uint8_t *buf = NULL;
    cJSON *root = cJSON_CreateObject();
    *out = NULL;
    *out_size = 0;
    if (!root)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory writing model");
    cJSON_AddStringToObject(root, "format", "facever-model");
    cJSON_AddItemToObject(root, "meta", meta_to_json(fv_graph_meta(g)));
    cJSON_AddNumberToObject(root, "input", fv_graph_input(g));
    cJSON *outputs = cJSON_AddArrayToObject(root, "outputs");
    for (int i = 0; i < fv_graph_output_count(g); i++)
        cJSON_AddItemToArray(outputs, cJSON_CreateNumber(fv_graph_output(g, i)));
    cJSON *tensors = cJSON_AddArrayToObject(root, "tensors");
    for (int i = 0; i < fv_graph_tensor_count(g); i++) {
        const struct fv_tensor_info *t = fv_graph_tensor(g, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddItemToObject(o, "shape", int_array((int[]){t->h, t->w, t->c}, 3));
        cJSON_AddItemToArray(tensors, o);
    }
    cJSON *blobs = cJSON_AddArrayToObject(root, "blobs");
    size_t data_size = 0;
    for (int i = 0; i < fv_graph_blob_count(g); i++) {
        const struct fv_blob *b = fv_graph_blob(g, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", b->name);
        cJSON_AddItemToObject(o, "shape", int_array(b->shape, b->rank));
        cJSON_AddNumberToObject(o, "offset", (double)data_size);
        cJSON_AddItemToArray(blobs, o);
        data_size += align64(b->count * sizeof(float));
    }
    cJSON_AddNumberToObject(root, "data_size", (double)data_size);
    cJSON *nodes = cJSON_AddArrayToObject(root, "nodes");
    for (int i = 0; i < fv_graph_node_count(g); i++) {
        const struct fv_node *n = fv_graph_node(g, i);
        cJSON *o = cJSON_CreateObject();
        int nb = 0;
        while (nb < FV_NODE_MAX_BLOBS && n->blobs[nb] >= 0)
            nb++;
        cJSON_AddStringToObject(o, "op", fv_op_name(n->op));
        cJSON_AddStringToObject(o, "name", n->name);
        cJSON_AddItemToObject(o, "inputs", int_array(n->inputs, n->n_inputs));
        cJSON_AddNumberToObject(o, "output", n->output);
        cJSON_AddItemToObject(o, "blobs", int_array(n->blobs, FV_NODE_MAX_BLOBS));
        cJSON_AddItemToObject(o, "kernel", int_array((int[]){n->kernel_h, n->kernel_w}, 2));
        cJSON_AddItemToObject(o, "stride", int_array((int[]){n->stride_h, n->stride_w}, 2));
        cJSON_AddStringToObject(o, "padding", fv_padding_name(n->padding));
        cJSON_AddStringToObject(o, "activation", fv_activation_name(n->activation));
        cJSON_AddNumberToObject(o, "epsilon", n->epsilon);
        cJSON_AddItemToArray(nodes, o);
    }
    json = cJSON_PrintUnformatted(root);
    if (!json) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory writing model header");
        goto fail;
    }
    size_t json_len = strlen(json);
    if (json_len > FV_MODEL_FILE_MAX_HEADER) {
        st = fv_error_set(err, FV_ERR_TOO_LARGE, "model header of %zu bytes is too large", json_len);
        goto fail;
    }
    size_t data_start = align64(16 + json_len);
    size_t total = data_start + data_size;
    buf = calloc(1, total);
    if (!buf) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory writing model (%zu bytes)", total);
        goto fail;
    }
    memcpy(buf, model_magic, 8);
    put_u32(buf + 8, FV_MODEL_FILE_VERSION);
    put_u32(buf + 12, (uint32_t)json_len);
    memcpy(buf + 16, json, json_len);
    size_t offset = data_start;
    for (int i = 0; i < fv_graph_blob_count(g); i++) {
        const struct fv_blob *b = fv_graph_blob(g, i);
        memcpy(buf + offset, b->data, b->count * sizeof(float));
        offset += align64(b->count * sizeof(float));
    }
    *out = buf;
    *out_size = total;
    buf = NULL;
fail:
    free(buf);
    free(json);
    cJSON_Delete(root);
    return st;
}

enum fv_status fv_model_file_save(struct fv_graph *g, const char *path, struct fv_error *err)
{
    uint8_t *buf = NULL;
    size_t size = 0;
    enum fv_status st = fv_model_file_write(g, &buf, &size, err);
    if (st)
        return st;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(buf);
        return fv_error_set(err, FV_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    int ok = fwrite(buf, 1, size, f) == size;
    ok = (fclose(f) == 0) && ok;
    free(buf);
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return fv_error_set(err, FV_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return FV_OK;
}

enum fv_status fv_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *size,
                            struct fv_error *err)
{
    *out = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fv_error_set(err, errno == ENOENT ? FV_ERR_NOT_FOUND : FV_ERR_IO,
                            "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return fv_error_set(err, FV_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max_bytes) {
        fclose(f);
        return fv_error_set(err, FV_ERR_TOO_LARGE, "%s: %lld bytes is over the limit of %zu",
                            path, (long long)sb.st_size, max_bytes);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    if (fread(buf, 1, n, f) != n) {
        fclose(f);
        free(buf);
        return fv_error_set(err, FV_ERR_IO, "%s: read failed", path);
    }
    fclose(f);
    *out = buf;
    *size = n;
    return FV_OK;
}

/* ---- reading ---- */

static enum fv_status get_int(const cJSON *o, const char *key, long min, long max, int *out,
                              const char *what, struct fv_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < min ||
        v->valuedouble > max)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: \"%s\" must be an integer in [%ld, %ld]",
                            what, key, min, max);
    *out = (int)v->valuedouble;
    return FV_OK;
}

static enum fv_status get_string(const cJSON *o, const char *key, char *out, size_t cap,
                                 const char *what, struct fv_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: \"%s\" must be a string of under %zu bytes",
                            what, key, cap);
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return FV_OK;
}

static enum fv_status get_float(const cJSON *o, const char *key, float *out, const char *what,
                                struct fv_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 1e30)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: \"%s\" must be a finite number", what, key);
    *out = (float)v->valuedouble;
    return FV_OK;
}

/* Reads an array of 1..max_len integers in [min, max]. */
static enum fv_status get_int_array(const cJSON *o, const char *key, int min_len, int max_len,
                                    long min, long max, int *out, int *len, const char *what,
                                    struct fv_error *err)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    if (n < min_len || n > max_len)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: \"%s\" must be an array of %d to %d integers",
                            what, key, min_len, max_len);
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a)
    {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
            v->valuedouble < min || v->valuedouble > max)
            return fv_error_set(err, FV_ERR_FORMAT,
                                "%s: \"%s\"[%d] must be an integer in [%ld, %ld]", what, key, i,
                                min, max);
        out[i++] = (int)v->valuedouble;
    }
    *len = n;
    return FV_OK;
}

static enum fv_status read_meta(const cJSON *o, struct fv_model_meta *m, struct fv_error *err)
{
    enum fv_status st;
    const char *w = "meta";
    if (!cJSON_IsObject(o))
        return fv_error_set(err, FV_ERR_FORMAT, "header: \"meta\" must be an object");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "input");
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(o, "template");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(o, "transpose_input");
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(o, "threshold");
    if (!cJSON_IsObject(in) || !cJSON_IsObject(tpl) || !cJSON_IsBool(tr))
        return fv_error_set(err, FV_ERR_FORMAT,
                            "meta: needs \"input\" and \"template\" objects and a boolean "
                            "\"transpose_input\"");
    if ((st = get_string(o, "name", m->name, sizeof m->name, w, err)) ||
        (st = get_string(o, "embedding", m->embedding, sizeof m->embedding, w, err)) ||
        (st = get_int(in, "height", 1, 16384, &m->input_h, "meta.input", err)) ||
        (st = get_int(in, "width", 1, 16384, &m->input_w, "meta.input", err)) ||
        (st = get_int(in, "channels", 1, 64, &m->input_c, "meta.input", err)) ||
        (st = get_int(tpl, "height", 0, 16384, &m->template_h, "meta.template", err)) ||
        (st = get_int(tpl, "width", 0, 16384, &m->template_w, "meta.template", err)) ||
        (st = get_float(o, "pixel_mean", &m->pixel_mean, w, err)) ||
        (st = get_float(o, "pixel_scale", &m->pixel_scale, w, err)))
        return st;
    m->transpose_input = cJSON_IsTrue(tr);
    if (cJSON_IsNull(th) || !th)
        m->threshold = NAN;
    else if ((st = get_float(o, "threshold", &m->threshold, w, err)))
        return st;
    else if (m->threshold < -1.0f || m->threshold > 1.0f)
        return fv_error_set(err, FV_ERR_FORMAT, "meta: \"threshold\" must be in [-1, 1]");
    return FV_OK;
}

static const cJSON *get_array(const cJSON *root, const char *key, int *n, struct fv_error *err)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
    *n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    if (*n < 0 || *n > MAX_ITEMS) {
        fv_error_set(err, FV_ERR_FORMAT, "header: \"%s\" must be an array of at most %d items",
                     key, MAX_ITEMS);
        return NULL;
    }
    return a;
}

static enum fv_status read_node(const cJSON *o, int index, int n_tensors, int n_blobs,
                                struct fv_node *n, struct fv_error *err)
{
    enum fv_status st;
    char what[64], name[32];
    int len;
    snprintf(what, sizeof what, "node %d", index);
    if (!cJSON_IsObject(o))
        return fv_error_set(err, FV_ERR_FORMAT, "%s: must be an object", what);
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
    int op_index = cJSON_IsString(op) ? fv_op_from_name(op->valuestring) : -1;
    if (op_index < 0)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: unknown op %s%s%s", what,
                            cJSON_IsString(op) ? "'" : "",
                            cJSON_IsString(op) ? op->valuestring : "(missing)",
                            cJSON_IsString(op) ? "'" : "");
    *n = fv_node_init((enum fv_op)op_index, NULL);
    int kernel[2], stride[2];
    if ((st = get_string(o, "name", n->name, sizeof n->name, what, err)) ||
        (st = get_int_array(o, "inputs", 1, FV_NODE_MAX_INPUTS, 0, n_tensors - 1, n->inputs,
                            &n->n_inputs, what, err)) ||
        (st = get_int(o, "output", 0, n_tensors - 1, &n->output, what, err)) ||
        (st = get_int_array(o, "blobs", FV_NODE_MAX_BLOBS, FV_NODE_MAX_BLOBS, -1, n_blobs - 1,
                            n->blobs, &len, what, err)) ||
        (st = get_int_array(o, "kernel", 2, 2, 1, 64, kernel, &len, what, err)) ||
        (st = get_int_array(o, "stride", 2, 2, 1, 64, stride, &len, what, err)) ||
        (st = get_float(o, "epsilon", &n->epsilon, what, err)))
        return st;
    n->kernel_h = kernel[0], n->kernel_w = kernel[1];
    n->stride_h = stride[0], n->stride_w = stride[1];
    if ((st = get_string(o, "padding", name, sizeof name, what, err)))
        return st;
    int p = fv_padding_from_name(name);
    if ((st = get_string(o, "activation", name, sizeof name, what, err)))
        return st;
    int a = fv_activation_from_name(name);
    if (p < 0 || a < 0)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: unknown padding or activation", what);
    if (n->epsilon < 0)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: negative epsilon", what);
    n->padding = (enum fv_padding)p;
    n->activation = (enum fv_activation)a;
    return FV_OK;
}

enum fv_status fv_model_file_read(const uint8_t *data, size_t size, struct fv_graph **out,
                                  struct fv_error *err)
{
    enum fv_status st = FV_OK;
    cJSON *root = NULL;
    struct fv_graph *g = NULL;
    *out = NULL;
    if (size < 16)
        return fv_error_set(err, FV_ERR_FORMAT, "file of %zu bytes is too short for a model", size);
    if (memcmp(data, model_magic, 8) != 0)
        return fv_error_set(err, FV_ERR_FORMAT, "not a facever model file (bad magic)");
    uint32_t version = get_u32(data + 8);
    if (version != FV_MODEL_FILE_VERSION)
        return fv_error_set(err, FV_ERR_UNSUPPORTED,
                            "model file version %u is not supported (expected %d)", version,
                            FV_MODEL_FILE_VERSION);
    uint32_t header_len = get_u32(data + 12);
    if (header_len > FV_MODEL_FILE_MAX_HEADER || (uint64_t)16 + header_len > size)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "header length %u runs past the end of the %zu-byte file", header_len,
                            size);
    size_t data_start = align64(16 + (size_t)header_len);
    size_t data_size = data_start <= size ? size - data_start : 0;
    root = cJSON_ParseWithLength((const char *)data + 16, header_len);
    if (!cJSON_IsObject(root)) {
        st = fv_error_set(err, FV_ERR_FORMAT, "header is not a JSON object");
        goto fail;
    }
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(format) || strcmp(format->valuestring, "facever-model") != 0) {
        st = fv_error_set(err, FV_ERR_FORMAT, "header: \"format\" must be \"facever-model\"");
        goto fail;
    }
    const cJSON *declared = cJSON_GetObjectItemCaseSensitive(root, "data_size");
    if (!cJSON_IsNumber(declared) || declared->valuedouble != (double)data_size ||
        data_start > size) {
        st = fv_error_set(err, FV_ERR_FORMAT,
                          "file is %zu bytes but its header declares %.0f bytes of data after "
                          "byte %zu (truncated or padded file)",
                          size, cJSON_IsNumber(declared) ? declared->valuedouble : -1.0,
                          data_start);
        goto fail;
    }
    g = fv_graph_new();
    if (!g) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory reading model");
        goto fail;
    }
    if ((st = read_meta(cJSON_GetObjectItemCaseSensitive(root, "meta"), fv_graph_meta(g), err)))
        goto fail;

    int n_tensors, n_blobs, n_nodes, n_outputs;
    const cJSON *tensors = get_array(root, "tensors", &n_tensors, err);
    const cJSON *blobs = tensors ? get_array(root, "blobs", &n_blobs, err) : NULL;
    const cJSON *nodes = blobs ? get_array(root, "nodes", &n_nodes, err) : NULL;
    const cJSON *outputs = nodes ? get_array(root, "outputs", &n_outputs, err) : NULL;
    if (!outputs) {
        st = FV_ERR_FORMAT;
        goto fail;
    }
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, tensors)
    {
        char what[48], name[FV_NAME_MAX];
        int shape[3], len;
        snprintf(what, sizeof what, "tensor %d", i);
        if (!cJSON_IsObject(item)) {
            st = fv_error_set(err, FV_ERR_FORMAT, "%s: must be an object", what);
            goto fail;
        }
        if ((st = get_string(item, "name", name, sizeof name, what, err)) ||
            (st = get_int_array(item, "shape", 3, 3, 0, 1 << 20, shape, &len, what, err)))
            goto fail;
        int t = fv_graph_add_tensor(g, name, shape[0], shape[1], shape[2]);
        if (t < 0) {
            st = fv_error_set(err, FV_ERR_FORMAT, "%s ('%s'): duplicate name or bad shape", what,
                              name);
            goto fail;
        }
        i++;
    }
    i = 0;
    cJSON_ArrayForEach(item, blobs)
    {
        char what[48], name[FV_NAME_MAX];
        int shape[4], rank;
        snprintf(what, sizeof what, "blob %d", i);
        if (!cJSON_IsObject(item)) {
            st = fv_error_set(err, FV_ERR_FORMAT, "%s: must be an object", what);
            goto fail;
        }
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "offset");
        if ((st = get_string(item, "name", name, sizeof name, what, err)) ||
            (st = get_int_array(item, "shape", 1, 4, 1, 1 << 28, shape, &rank, what, err)))
            goto fail;
        if (!cJSON_IsNumber(off) || off->valuedouble < 0 ||
            off->valuedouble != floor(off->valuedouble) || off->valuedouble > (double)size) {
            st = fv_error_set(err, FV_ERR_FORMAT, "%s ('%s'): bad offset", what, name);
            goto fail;
        }
        uint64_t offset = (uint64_t)off->valuedouble;
        uint64_t count = 1;
        for (int k = 0; k < rank && count <= ((uint64_t)1 << 40); k++)
            count *= (uint64_t)shape[k];
        if (offset % 4 != 0 || count > ((uint64_t)1 << 28) ||
            offset + count * 4 > (uint64_t)data_size) {
            st = fv_error_set(err, FV_ERR_FORMAT,
                              "%s ('%s'): %llu floats at offset %llu run past the end of the "
                              "data section (%zu bytes)",
                              what, name, (unsigned long long)count, (unsigned long long)offset,
                              data_size);
            goto fail;
        }
        const float *src = (const float *)(const void *)(data + data_start + offset);
        if (fv_graph_add_blob(g, name, shape, rank, NULL) < 0) {
            st = fv_error_set(err, FV_ERR_NOMEM, "%s ('%s'): out of memory", what, name);
            goto fail;
        }
        float *dst = fv_graph_blob(g, i)->data;
        memcpy(dst, src, (size_t)count * sizeof *dst); /* unaligned-safe copy */
        for (uint64_t k = 0; k < count; k++)
            if (!isfinite(dst[k])) {
                st = fv_error_set(err, FV_ERR_FORMAT, "%s ('%s'): value %llu is not finite",
                                  what, name, (unsigned long long)k);
                goto fail;
            }
        i++;
    }
    i = 0;
    cJSON_ArrayForEach(item, nodes)
    {
        struct fv_node n;
        if ((st = read_node(item, i, n_tensors, n_blobs, &n, err)))
            goto fail;
        if (fv_graph_add_node(g, &n, err) < 0) {
            st = err ? err->status : FV_ERR_FORMAT;
            goto fail;
        }
        i++;
    }
    int input;
    if ((st = get_int(root, "input", 0, n_tensors - 1, &input, "header", err)))
        goto fail;
    fv_graph_set_input(g, input);
    if (n_outputs < 1 || n_outputs > FV_GRAPH_MAX_OUTPUTS) {
        st = fv_error_set(err, FV_ERR_FORMAT, "header: 1 to %d outputs required",
                          FV_GRAPH_MAX_OUTPUTS);
        goto fail;
    }
    cJSON_ArrayForEach(item, outputs)
    {
        if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble >= n_tensors ||
            item->valuedouble != floor(item->valuedouble)) {
            st = fv_error_set(err, FV_ERR_FORMAT, "header: output index out of range");
            goto fail;
        }
        fv_graph_add_output(g, (int)item->valuedouble);
    }
    cJSON_Delete(root);
    *out = g;
    return FV_OK;
fail:
    cJSON_Delete(root);
    fv_graph_free(g);
    return st;
}

enum fv_status fv_model_file_load(const char *path, struct fv_graph **out, struct fv_error *err)
{
    uint8_t *data = NULL;
    size_t size = 0;
    *out = NULL;
    enum fv_status st = fv_read_file(path, MAX_FILE_BYTES, &data, &size, err);
    if (st)
        return st;
    st = fv_model_file_read(data, size, out, err);
    free(data);
    if (st)
        fv_error_prefix(err, "%s: ", path);
    return st;
}
