/* mnist.h - the MNIST digits in LeCun's IDX files (train / t10k images and labels).
 *
 *   struct fv_mnist *train;
 *   if (fv_mnist_load("tests/data/mnist", "train", 0, &train, &err)) ...
 *   for (int i = 0; i < train->count; i++)
 *       use(train->images + (size_t)i * 28 * 28, train->labels[i]);
 *   fv_mnist_free(train);
 *
 * Files are untrusted: the magic numbers (0x00000803 images, 0x00000801 labels),
 * the dimensions against the file size and the label values are checked, and
 * sizes are bounded before anything is allocated.
 */
#ifndef FV_MNIST_H
#define FV_MNIST_H

#include <stddef.h>
#include <stdint.h>

#include "model/status.h"

#define FV_MNIST_MAX_COUNT 1000000
#define FV_MNIST_MAX_SIDE 256

/* A read-only data set once loaded. */
struct fv_mnist {
    int count;         /* samples */
    int rows, cols;    /* 28 × 28 */
    uint8_t *images;   /* count × rows × cols grey levels, row-major */
    uint8_t *labels;   /* count digits 0..9 */
};

/* Parses an IDX3 image file image (rows × cols u8 per sample); *images is malloc'd. */
enum fv_status fv_mnist_parse_images(const uint8_t *data, size_t size, int *count, int *rows,
                                     int *cols, uint8_t **images, struct fv_error *err);
/* Parses an IDX1 label file image; labels above 9 are rejected; *labels malloc'd. */
enum fv_status fv_mnist_parse_labels(const uint8_t *data, size_t size, int *count,
                                     uint8_t **labels, struct fv_error *err);

/* Loads DIR/{split}-images-idx3-ubyte and DIR/{split}-labels-idx1-ubyte, split
 * "train" or "t10k"; keeps the first `limit` samples when limit > 0. */
enum fv_status fv_mnist_load(const char *dir, const char *split, int limit,
                             struct fv_mnist **out, struct fv_error *err);
void fv_mnist_free(struct fv_mnist *set);

#endif
