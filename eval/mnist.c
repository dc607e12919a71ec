/* mnist.c - IDX file reader for MNIST, bounded and checked. */
#include "eval/mnist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_file.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

enum fv_status fv_mnist_parse_images(const uint8_t *data, size_t size, int *count, int *rows,
                                     int *cols, uint8_t **images, struct fv_error *err)
{
    *images = NULL;
    if (size < 16 || be32(data) != 0x00000803)
        return fv_error_set(err, FV_ERR_FORMAT, "not an IDX3 image file (magic 0x00000803)");
    uint32_t n = be32(data + 4), r = be32(data + 8), c = be32(data + 12);
    if (n > FV_MNIST_MAX_COUNT || r < 1 || c < 1 || r > FV_MNIST_MAX_SIDE || c > FV_MNIST_MAX_SIDE)
        return fv_error_set(err, FV_ERR_TOO_LARGE, "IDX3 dimensions %u × %u × %u out of range", n,
                            r, c);
    uint64_t bytes = (uint64_t)n * r * c;
    if (bytes != size - 16)
        return fv_error_set(err, FV_ERR_FORMAT, "IDX3 declares %llu pixel bytes, file has %zu",
                            (unsigned long long)bytes, size - 16);
    if (!(*images = malloc(bytes ? bytes : 1)))
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory for %u images", n);
    memcpy(*images, data + 16, bytes);
    *count = (int)n, *rows = (int)r, *cols = (int)c;
    return FV_OK;
}

enum fv_status fv_mnist_parse_labels(const uint8_t *data, size_t size, int *count,
                                     uint8_t **labels, struct fv_error *err)
{
    *labels = NULL;
    if (size < 8 || be32(data) != 0x00000801)
        return fv_error_set(err, FV_ERR_FORMAT, "not an IDX1 label file (magic 0x00000801)");
    uint32_t n = be32(data + 4);
    if (n > FV_MNIST_MAX_COUNT)
        return fv_error_set(err, FV_ERR_TOO_LARGE, "IDX1 declares %u labels", n);
    if ((uint64_t)n != size - 8)
        return fv_error_set(err, FV_ERR_FORMAT, "IDX1 declares %u labels, file has %zu", n,
                            size - 8);
    for (uint32_t i = 0; i < n; i++)
        if (data[8 + i] > 9)
            return fv_error_set(err, FV_ERR_FORMAT, "label %u is %u, not a digit", i, data[8 + i]);
    if (!(*labels = malloc(n ? n : 1)))
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory for %u labels", n);
    memcpy(*labels, data + 8, n);
    *count = (int)n;
    return FV_OK;
}

void fv_mnist_free(struct fv_mnist *set)
{
    if (!set)
        return;
    free(set->images);
    free(set->labels);
    free(set);
}

enum fv_status fv_mnist_load(const char *dir, const char *split, int limit,
                             struct fv_mnist **out, struct fv_error *err)
{
    enum fv_status st;
    uint8_t *data = NULL;
    size_t size;
    char path[4096];
    int n_images = 0, n_labels = 0;
    *out = NULL;
    struct fv_mnist *set = calloc(1, sizeof *set);
    if (!set)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, split);
    if ((st = fv_read_file(path, (size_t)1 << 30, &data, &size, err)))
        goto fail;
    st = fv_mnist_parse_images(data, size, &n_images, &set->rows, &set->cols, &set->images, err);
    free(data);
    data = NULL;
    if (st) {
        fv_error_prefix(err, "%s: ", path);
        goto fail;
    }
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, split);
    if ((st = fv_read_file(path, 8 + (size_t)FV_MNIST_MAX_COUNT, &data, &size, err)))
        goto fail;
    st = fv_mnist_parse_labels(data, size, &n_labels, &set->labels, err);
    free(data);
    if (st) {
        fv_error_prefix(err, "%s: ", path);
        goto fail;
    }
    if (n_images != n_labels) {
        st = fv_error_set(err, FV_ERR_FORMAT, "%s/%s: %d images but %d labels", dir, split,
                          n_images, n_labels);
        goto fail;
    }
    set->count = limit > 0 && limit < n_images ? limit : n_images;
    *out = set;
    return FV_OK;
fail:
    fv_mnist_free(set);
    return st;
}
