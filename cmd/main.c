/* main.c - the facever command line: dispatches to a subcommand. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "model/cpu.h"

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct subcommand subcommands[] = {
    {"import-tflite", fv_cmd_import_tflite, "convert a TensorFlow Lite file into a facever model"},
    {"model-info", fv_cmd_model_info, "print a model file's metadata and graph"},
    {"detect", fv_cmd_detect, "find faces and landmarks in an image"},
    {"align", fv_cmd_align, "write the aligned face crops a model sees"},
    {"embed", fv_cmd_embed, "print face embeddings"},
    {"verify", fv_cmd_verify, "compare the faces in two images"},
    {"serve", fv_cmd_serve, "run the HTTP JSON API server"},
    {"eval", fv_cmd_eval, "LFW-style k-fold evaluation: accuracy, ROC, AUC, EER"},
    {"pca", fv_cmd_pca, "fit a PCA projection of face features ('pca fit')"},
    {"train", fv_cmd_train, "train or fine-tune a network (softmax, center loss, LMCL)"},
    {"system-info", fv_cmd_system_info, "the CPU, its kernel level ($FV_CPU) and the BLAS"},
    {"version", fv_cmd_version, "release, git revision, models found, CPU level (--version)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: facever COMMAND [ARGS...]\n"
               "       facever --version [--json]\n\n"
               "Face verification after Wen et al. (center loss) and Wang et al. (CosFace).\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(f, "  %-14s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(f, "\nRun 'facever COMMAND --help' for a command's options.\n"
               "Models are looked for in --models DIR, $FACEVER_MODELS,\n"
               "../share/facever/models beside this executable, then ./models.\n");
}

int fv_cli_fail(const char *cmd, const struct fv_error *err)
{
    fprintf(stderr, "facever %s: %s\n", cmd,
            err && err->message[0] ? err->message : fv_status_str(err ? err->status : FV_ERR_INTERNAL));
    return 2;
}

int fv_cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int fv_cli_parse_float(const char *cmd, const char *option, const char *value, float *out)
{
    char *end;
    errno = 0;
    double v = value ? strtod(value, &end) : 0.0;
    if (!value || end == value || *end || errno || !isfinite(v)) {
        fprintf(stderr, "facever %s: %s needs a number, got '%s'\n", cmd, option,
                value ? value : "(nothing)");
        return -1;
    }
    *out = (float)v;
    return 0;
}

int fv_cli_parse_int(const char *cmd, const char *option, const char *value, long min, long max,
                     long *out)
{
    char *end;
    errno = 0;
    long v = value ? strtol(value, &end, 10) : 0;
    if (!value || end == value || *end || errno || v < min || v > max) {
        fprintf(stderr, "facever %s: %s needs an integer in [%ld, %ld], got '%s'\n", cmd, option,
                min, max, value ? value : "(nothing)");
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || fv_cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    /* Each pipeline worker runs its networks on one core; parallelism comes from
     * running several workers (eval, serve). OpenBLAS's own threads only add
     * hand-off latency at these matrix sizes. */
    openblas_set_num_threads(1);
    /* Blocks of a megabyte and more (decoded photos, a JPEG's coefficients)
     * come from mmap and go back to the system when freed, instead of glibc
     * raising that threshold after the first large free and keeping such
     * blocks in its heaps: resident memory then follows what is in use. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    /* A level FV_CPU names but this CPU lacks stops every command here, with
     * the reason, before any kernel could run. */
    enum fv_cpu_level level;
    struct fv_error err = {0};
    if (fv_cpu_active(&level, &err) != FV_OK) {
        fprintf(stderr, "facever: %s\n", err.message);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0)
        return fv_cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "facever: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
