/* fuzz_tflite.c - libFuzzer harness for the TFLite FlatBuffer importer; an imported
 * graph is also frozen into a model, as `facever import` does next. */
#include <stdint.h>
#include <stdlib.h>

#include "model/model.h"
#include "model/tflite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fv_graph *g = NULL;
    struct fv_error err = {0};
    if (fv_tflite_import(data, size, &g, &err) != FV_OK) {
        if (g)
            abort();
        return 0;
    }
    struct fv_model *m = NULL;
    if (fv_model_from_graph(g, &m, &err) == FV_OK) /* takes g, even on failure */
        fv_model_free(m);
    return 0;
}
