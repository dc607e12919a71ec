/* fuzz_pca.c - libFuzzer harness for the FVPCA loader; a loaded PCA is also
 * used (projection of one vector), as fv_cli_install_pca does. */
#include <stdint.h>
#include <stdlib.h>

#include "eval/pca.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fv_pca *pca = NULL;
    struct fv_error err = {0};
    if (fv_pca_load_memory(data, size, &pca, &err) != FV_OK) {
        if (pca)
            abort();
        return 0;
    }
    size_t d = fv_pca_input_dim(pca), k = fv_pca_output_dim(pca);
    if (d == 0 || k == 0 || k > d || d > FV_PCA_MAX_DIM)
        abort();
    float *in = calloc(d, sizeof *in), *out = calloc(k, sizeof *out);
    if (in && out) {
        for (size_t i = 0; i < d; i++)
            in[i] = (float)(i % 7) - 3.0f;
        fv_pca_project(pca, in, 1, out);
        (void)fv_pca_explained_variance_total(pca);
    }
    free(in);
    free(out);
    fv_pca_free(pca);
    return 0;
}
