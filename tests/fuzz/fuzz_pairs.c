/* fuzz_pairs.c - libFuzzer harness for the LFW pairs-file parser (default limits). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eval/pairs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fv_pairs_params params = fv_pairs_default_params();
    struct fv_pairs *pairs = NULL;
    struct fv_error err = {0};
    if (fv_pairs_parse((const char *)data, size, "fuzz.txt", &params, &pairs, &err) != FV_OK) {
        if (pairs)
            abort(); /* *out must stay NULL on failure */
        return 0;
    }
    size_t n = fv_pairs_count(pairs), images = fv_pairs_image_count(pairs);
    size_t folds = fv_pairs_fold_count(pairs);
    const struct fv_pair *p = fv_pairs_items(pairs);
    for (size_t i = 0; i < n; i++)
        if (p[i].a >= images || p[i].b >= images || p[i].fold >= folds)
            abort();
    size_t total = 0;
    for (size_t i = 0; i < images; i++)
        total += strlen(fv_pairs_image_path(pairs, i));
    (void)total;
    fv_pairs_free(pairs);
    return 0;
}
