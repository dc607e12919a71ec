/* cli.h - the facever subcommands; main.c dispatches argv[1] to one of these.
 *
 * Each takes the arguments after its own name (argv[0] is the subcommand) and
 * returns the process exit status: 0 success, 1 a negative answer where the
 * command has one (verify: different people), 2 an error.
 */
#ifndef FV_CLI_H
#define FV_CLI_H

#include <stdio.h>

#include "cmd/models_path.h"
#include "model/status.h"
#include "pipeline/pipeline.h"

struct cJSON;
struct fv_pca;

int fv_cmd_import_tflite(int argc, char **argv);
int fv_cmd_model_info(int argc, char **argv);
int fv_cmd_detect(int argc, char **argv);
int fv_cmd_align(int argc, char **argv);
int fv_cmd_embed(int argc, char **argv);
/* `facever embed` in batch mode (cmd_shard.c): fv_cmd_embed hands over when it sees
 * --shard, --list or --out. */
int fv_cmd_embed_shard(int argc, char **argv);
extern const char fv_cmd_embed_shard_usage[];
int fv_cmd_verify(int argc, char **argv);
int fv_cmd_serve(int argc, char **argv);
int fv_cmd_eval(int argc, char **argv);
int fv_cmd_pca(int argc, char **argv);
int fv_cmd_train(int argc, char **argv);
int fv_cmd_system_info(int argc, char **argv);
/* `facever version` and `facever --version` (cmd_version.c). */
int fv_cmd_version(int argc, char **argv);

/* Pipeline options every face command accepts. */
struct fv_cli_pipeline {
    const char *models_dir; /* --models, or NULL: fv_models_find searches */
    char models_found[FV_MODELS_PATH_MAX]; /* where fv_cli_pipeline_find_models found them */
    const char *model_path;
    const char *pca_path;
    struct fv_pipeline_params params;
    enum fv_face_policy policy;
    float threshold; /* NAN: the model's */
    int json;
};
extern const char fv_cli_pipeline_help[];
void fv_cli_pipeline_defaults(struct fv_cli_pipeline *o);
/* Consumes argv[*i] (and its value) if it is a pipeline option: returns 1, or 0
 * when it is not one, or -1 after printing an error. */
int fv_cli_pipeline_option(const char *cmd, struct fv_cli_pipeline *o, int argc, char **argv,
                           int *i);
/* Finds the models folder (fv_models_find: --models, $FACEVER_MODELS, beside the
 * executable, ./models) into o->models_found: the detector's networks, and the
 * default embedding model unless detector_only or --model names one. */
enum fv_status fv_cli_pipeline_find_models(struct fv_cli_pipeline *o, int detector_only,
                                           struct fv_error *err);
/* Finds the models, then loads the detector, the embedding model and the PCA file, if any. */
enum fv_status fv_cli_pipeline_open(struct fv_cli_pipeline *o, struct fv_pipeline **pipe,
                                    struct fv_error *err);
/* Installs a fitted PCA (whitening folded in) as the pipeline's projection. */
enum fv_status fv_cli_install_pca(struct fv_pipeline *pipe, const struct fv_pca *pca,
                                  struct fv_error *err);
/* Prints and deletes root. */
void fv_cli_print_json(struct cJSON *root);

/* Prints "facever CMD: message" for err to stderr and returns 2. */
int fv_cli_fail(const char *cmd, const struct fv_error *err);
/* True when arg is -h or --help. */
int fv_cli_is_help(const char *arg);
/* Parses a float / int option value; prints an error naming option on failure. */
int fv_cli_parse_float(const char *cmd, const char *option, const char *value, float *out);
int fv_cli_parse_int(const char *cmd, const char *option, const char *value, long min, long max,
                     long *out);

#endif
