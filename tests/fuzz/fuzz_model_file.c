/* fuzz_model_file.c - libFuzzer harness for the .fvm model file reader: the
 * parse alone (fv_model_file_read) and parse + validate + freeze
 * (fv_model_load_memory), as `facever serve` loads its networks. */
#include <stdint.h>
#include <stdlib.h>

#include "model/model.h"
#include "model/model_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fv_error err = {0};
    struct fv_graph *g = NULL;
    if (fv_model_file_read(data, size, &g, &err) == FV_OK)
        fv_graph_free(g);
    else if (g)
        abort();

    struct fv_model *m = NULL;
    if (fv_model_load_memory(data, size, &m, &err) == FV_OK) {
        const struct fv_model_meta *meta = fv_model_meta(m);
        (void)meta;
        (void)fv_model_find_tensor(m, "embedding");
        fv_model_free(m);
    } else if (m) {
        abort();
    }
    return 0;
}
