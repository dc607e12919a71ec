/* cmd_system.c - `facever system-info`: the CPU, the level the kernels run at,
 * the kernels of that level and the BLAS library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "model/kernels.h"

static const char usage[] =
    "usage: facever system-info [--json]\n\n"
    "Prints this CPU, the levels it supports, the level the networks run at\n"
    "($FV_CPU forces one of the supported levels: generic, avx2, avx512,\n"
    "avx512-bf16, neon), that level's kernels and the BLAS library.\n";

int fv_cmd_system_info(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (fv_cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") != 0) {
            fprintf(stderr, "facever system-info: unknown option '%s'\n%s", argv[i], usage);
            return 2;
        }
        json = 1;
    }
    const struct fv_cpu *cpu = fv_cpu_get();
    struct fv_error err = {0};
    enum fv_cpu_level level;
    if (fv_cpu_active(&level, &err) != FV_OK)
        return fv_cli_fail("system-info", &err);
    const struct fv_kernels *k = fv_kernels_get(level);
    const char *forced = getenv("FV_CPU");
    const char *chosen = forced && *forced ? "FV_CPU" : "best supported";
    if (json) {
        printf("{\"cpu\":\"%s\",\"arch\":\"%s\",\"supported\":\"%s\",\"level\":\"%s\","
               "\"chosen_by\":\"%s\",\"gemm_tile\":\"%s\",\"vector_floats\":%d,"
               "\"bf16\":%s,\"blas\":\"%s\"}\n",
               cpu->model, cpu->arch, fv_cpu_supported_names(), k->name, chosen, k->gemm_tile,
               k->vector_floats, k->gemm_bf16 ? "true" : "false", fv_cpu_blas_name());
        return 0;
    }
    printf("cpu:        %s (%s)\n", cpu->model, cpu->arch);
    printf("supported:  %s\n", fv_cpu_supported_names());
    printf("level:      %s (%s)\n", k->name, chosen);
    printf("kernels:    GEMM %s register tile on %d-float vectors, weights packed in panels of\n"
           "            %d outputs, bias/residual/ReLU/PReLU fused; Winograd F(2x2,3x3) and\n"
           "            F(3x3,3x3); 3x3 depthwise with PReLU; max pooling%s\n",
           k->gemm_tile, k->vector_floats, k->panel,
           k->gemm_bf16 ? "; bf16 GEMM (--precision bf16, the default here)" : "");
    printf("blas:       %s (training, PCA and unpacked products)\n", fv_cpu_blas_name());
    return 0;
}
