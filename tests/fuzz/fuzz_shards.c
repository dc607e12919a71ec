/* fuzz_shards.c - libFuzzer harness for what `facever eval --features` reads from a
 * shard folder: the .npy matrix and the JSON metadata. Each input goes to both. */
#include <stdint.h>
#include <stdlib.h>

#include "eval/npy.h"
#include "eval/shards.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fv_error err = {0};
    float *x = NULL;
    size_t rows = 0, cols = 0;
    if (fv_npy_parse_f32(data, size, "fuzz.npy", &x, &rows, &cols, &err) == FV_OK) {
        /* The shape must account for the data exactly; touch every value. */
        if (!x || (cols && rows > size / 4 / cols))
            abort();
        volatile float sum = 0;
        for (size_t i = 0; i < rows * cols; i++)
            sum += x[i];
        (void)sum;
    } else if (x) {
        abort();
    }
    free(x);
    (void)fv_shard_metadata_check(data, size, "fuzz.json", &err);
    return 0;
}
