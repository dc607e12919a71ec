/* pairs.h - parser for LFW-style verification pairs files.
 *
 *   struct fv_pairs_params params = fv_pairs_default_params();
 *   struct fv_pairs *pairs = NULL;
 *   struct fv_error err = {0};
 *   if (fv_pairs_load("pairs.txt", &params, &pairs, &err) != FV_OK)
 *       fprintf(stderr, "facever: %s\n", err.message);
 *   for (size_t i = 0; i < fv_pairs_image_count(pairs); i++)
 *       extract(fv_pairs_image_path(pairs, i));         // one feature row per image
 *   const struct fv_pair *p = fv_pairs_items(pairs);    // p[i].a, p[i].b index those rows
 *   fv_pairs_free(pairs);
 *
 * Accepted layouts (fields separated by spaces or tabs, blank lines ignored, CRLF ok):
 *   - `N<TAB>P`   the standard LFW View 2 header: N folds, each of P same-person lines
 *                 `name i j` followed by P different-person lines `name1 i name2 j`.
 *                 Every line must be of the kind its position calls for.
 *   - `FOLDS N`   N folds; the pair lines (either kind, any order) are split evenly and
 *                 in file order into N consecutive folds, so their count must be a
 *                 multiple of N.
 *   - no header   a file whose first line is already a pair line is one fold.
 * Names may not contain '/', '\', "..", control characters, or exceed 255 bytes; image
 * numbers are decimal digits only. A same-person line may not repeat an image, and a
 * different-person line may not name one person twice.
 * Images resolve through a printf pattern taking (name, name, number); the default
 * "%s/%s_%04d.jpg" gives "Zico/Zico_0002.jpg". Each distinct image appears once in the
 * image list, in order of first use. Errors are FV_ERR_FORMAT (or FV_ERR_TOO_LARGE) with
 * a message "<source>:<line>: <problem>".
 */
#ifndef FV_EVAL_PAIRS_H
#define FV_EVAL_PAIRS_H

#include <stdbool.h>
#include <stddef.h>

#include "model/status.h"

struct fv_pairs_params {
    const char *image_pattern;  /* printf pattern: %s (name), %s (name), %d (number) */
    size_t max_pairs;           /* more pairs than this is FV_ERR_TOO_LARGE */
    size_t max_folds;           /* header fold counts above this are rejected */
    size_t max_line_bytes;      /* longer lines are rejected (without the newline) */
    size_t max_file_bytes;      /* fv_pairs_load refuses larger files */
    int max_image_number;       /* image numbers must lie in 1..max_image_number */
};

struct fv_pair {
    size_t a, b;   /* indices into the image list */
    bool same;     /* true: same person */
    size_t fold;   /* 0-based fold */
};

struct fv_pairs;

/* Pattern "%s/%s_%04d.jpg", at most 1,000,000 pairs, 1,000 folds, 1,024-byte lines,
 * 256 MiB files, image numbers up to 99,999. */
struct fv_pairs_params fv_pairs_default_params(void);

/* Checks that pattern has exactly the conversions %s, %s, %d in that order (the %d may
 * carry a 0 flag and a width of up to two digits; %% is a literal percent sign).
 * Returns FV_OK or FV_ERR_INVALID_ARG with a message. */
enum fv_status fv_pairs_check_pattern(const char *pattern, struct fv_error *err);

/* Reads and parses the file at path (untrusted). params may be NULL for the defaults.
 * On success *out owns a new pairs list (free with fv_pairs_free); on failure *out is
 * NULL and err says which line is wrong and why. */
enum fv_status fv_pairs_load(const char *path, const struct fv_pairs_params *params,
                             struct fv_pairs **out, struct fv_error *err);

/* As fv_pairs_load, from size bytes at buf (which need not be NUL-terminated);
 * source_name prefixes error messages ("pairs.txt"). For fuzzing and tests. */
enum fv_status fv_pairs_parse(const char *buf, size_t size, const char *source_name,
                              const struct fv_pairs_params *params, struct fv_pairs **out,
                              struct fv_error *err);

void fv_pairs_free(struct fv_pairs *pairs);

size_t fv_pairs_count(const struct fv_pairs *pairs);
/* fv_pairs_count(pairs) entries, owned by pairs. */
const struct fv_pair *fv_pairs_items(const struct fv_pairs *pairs);
size_t fv_pairs_fold_count(const struct fv_pairs *pairs);
size_t fv_pairs_image_count(const struct fv_pairs *pairs);
/* The relative path of image i (i < fv_pairs_image_count), owned by pairs. */
const char *fv_pairs_image_path(const struct fv_pairs *pairs, size_t i);

#endif
