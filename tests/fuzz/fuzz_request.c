/* fuzz_request.c - libFuzzer harness for the request bodies of every POST endpoint
 * (/v1/verify, /v1/embed, /v1/detect, /v1/evaluations), JSON and
 * multipart/form-data, through the route handlers themselves: body parsing, field
 * extraction, base64, image decoding and, when an image decodes, the face pipeline.
 *
 * Evaluations are created and at once cancelled: a submission is parsed and
 * checked in full (pairs, inline images, paths below the data root, a scratch
 * folder holding one pairs.txt) and then refused with 503 instead of queued, so
 * no background job makes runs depend on each other.
 *
 * Input: byte 0 picks the route (bits 0-1: verify, embed, detect, evaluations) and the
 * Content-Type (bit 2: multipart/form-data; boundary=fuzzboundary, else
 * application/json); the rest is the body. The server hands handlers a body
 * already capped by max_body, so the harness has no cap of its own beyond
 * libFuzzer's -max_len.
 *
 * The networks are loaded once from $FACEVER_MODELS (default "models"; `make
 * models`). max_pixels is 65 536 instead of the default 40 000 000 (an operator
 * setting, --max-pixels) so that a decoded image costs milliseconds, not
 * seconds, under the sanitizers; everything else is the server's default.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/evaluations.h"
#include "api/metrics.h"
#include "api/routes.h"
#include "api/server.h"
#include "pipeline/pipeline.h"

static struct fv_server_config config;
static struct fv_pipeline *pipe_shared;
static struct fv_pipeline_worker *worker;
static struct fv_metrics *metrics;
static struct fv_evaluations *evaluations;
static const char *route_names[] = {"/v1/verify", "/v1/embed", "/v1/detect", "/v1/evaluations"};
static char data_root[] = "/tmp/facever-fuzz-XXXXXX";

static void remove_data_root(void)
{
    char path[sizeof data_root + 16];
    snprintf(path, sizeof path, "%s/pairs.txt", data_root);
    unlink(path);
    rmdir(data_root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("FACEVER_MODELS");
    if (!dir || !*dir)
        dir = "models";
    char model[4096];
    snprintf(model, sizeof model, "%s/mobilefacenet.fvm", dir);
    struct fv_pipeline_params params;
    fv_pipeline_default_params(&params);
    params.limits.max_pixels = (uint64_t)1 << 16;
    struct fv_error err = {0};
    if (fv_pipeline_new(dir, model, &params, &pipe_shared, &err) ||
        fv_pipeline_worker_new(pipe_shared, &worker, &err)) {
        fprintf(stderr, "fuzz_request: cannot load the networks from %s (make models): %s\n",
                dir, err.message);
        exit(1);
    }
    fv_server_default_config(&config);
    config.pipeline = pipe_shared;
    config.access_log = NULL;
    config.data_root = data_root;
    metrics = fv_metrics_new(route_names, 4);
    if (!metrics || !mkdtemp(data_root))
        exit(1);
    atexit(remove_data_root);
    char path[sizeof data_root + 16];
    snprintf(path, sizeof path, "%s/pairs.txt", data_root);
    FILE *f = fopen(path, "w");
    if (!f)
        exit(1);
    fputs("A 1 2\nA 1 B 1\n", f);
    fclose(f);
    struct fv_evaluations_params ep = fv_evaluations_default_params();
    ep.data_root = data_root;
    if (fv_evaluations_new(pipe_shared, &ep, &evaluations, &err)) {
        fprintf(stderr, "fuzz_request: %s\n", err.message);
        exit(1);
    }
    fv_evaluations_cancel(evaluations);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const fv_route_handler handlers[4] = {fv_handle_verify, fv_handle_embed,
                                                  fv_handle_detect, fv_handle_evaluation_new};
    static const char *const paths[4] = {"/v1/verify", "/v1/embed", "/v1/detect",
                                         "/v1/evaluations"};
    int route = data[0] & 3;
    const char *content_type = (data[0] & 4)
                                   ? "multipart/form-data; boundary=fuzzboundary"
                                   : "application/json";
    /* The body in an exact-size allocation, as the server's request buffer is. */
    size_t body_size = size - 1;
    uint8_t *body = malloc(body_size ? body_size : 1);
    if (!body)
        return 0;
    memcpy(body, data + 1, body_size);

    struct fv_handler_env env = {
        .config = &config, .pipeline = pipe_shared, .worker = worker, .metrics = metrics,
        .evaluations = evaluations};
    struct fv_request req = {"POST", paths[route], content_type, body, body_size};
    struct fv_reply reply = {0};
    handlers[route](&env, &req, &reply);
    /* Every answer is a complete reply: a status and a body. */
    if (reply.status < 200 || reply.status > 599 || !reply.body)
        abort();
    if (reply.status >= 400 && !strstr(reply.body, "\"error\""))
        abort();
    fv_reply_clear(&reply);
    free(body);
    return 0;
}
