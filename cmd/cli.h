/* cli.h - the facever subcommands; main.c dispatches argv[1] to one of these.
 *
 * Each takes the arguments after its own name (argv[0] is the subcommand) and
 * returns the process exit status: 0 success, 1 a negative answer where the
 * command has one (verify: different people), 2 an error.
 */
#ifndef FV_CLI_H
#define FV_CLI_H

#include <stdio.h>

#include "model/status.h"

int fv_cmd_import_tflite(int argc, char **argv);
int fv_cmd_model_info(int argc, char **argv);

/* Prints "facever CMD: message" for err to stderr and returns 2. */
int fv_cli_fail(const char *cmd, const struct fv_error *err);
/* True when arg is -h or --help. */
int fv_cli_is_help(const char *arg);
/* Parses a float / int option value; prints an error naming option on failure. */
int fv_cli_parse_float(const char *cmd, const char *option, const char *value, float *out);
int fv_cli_parse_int(const char *cmd, const char *option, const char *value, long min, long max,
                     long *out);

#endif
