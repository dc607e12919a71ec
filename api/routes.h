/* routes.h - the route table and the handler interface (internal to api/).
 *
 * server.c matches a request against fv_routes[], checks method, auth,
 * Content-Type and body size, then calls the route's handler: directly on the
 * connection's thread for cheap routes, or on a pipeline worker thread (with
 * env->worker set) for routes marked FV_ROUTE_WORKER. Adding a route is one
 * row here plus its handler, e.g.
 *   {"GET", "/v1/evaluations/{id}", 1, 0, fv_handle_evaluation_get, FV_API_ON_EVAL_ID},
 * (prefix match; the last column names the error codes its handler sends,
 * errors.h) and a path in api/openapi.json with those codes' statuses.
 */
#ifndef FV_ROUTES_H
#define FV_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include "api/metrics.h"
#include "api/reply.h"
#include "api/server.h"

struct fv_pipeline;
struct fv_pipeline_worker;
struct fv_evaluations;
struct fv_server;

/* What a handler may use. worker is NULL for routes that do not run the pipeline. */
struct fv_handler_env {
    const struct fv_server_config *config;
    struct fv_pipeline *pipeline;
    struct fv_pipeline_worker *worker;
    struct fv_metrics *metrics;
    struct fv_evaluations *evaluations; /* the evaluation jobs (evaluations.h) */
    struct fv_server *server;           /* for side jobs; NULL: none (run them in place) */
    int draining;                       /* fv_server_drain was called: /readyz says 503 */
};

/* Part of a worker route's work that another pipeline worker may run at the
 * same time, when one is idle (the second image of a verify):
 *
 *   struct fv_side_job job = {run, arg};
 *   int offered = fv_side_job_offer(env, &job);  // 0: nobody idle, or no server
 *   ... the handler's own part ...
 *   if (offered)
 *       fv_side_job_join(env, &job);  // waits for it, or runs it here if not yet taken
 *   else
 *       run(arg, env->worker);
 *
 * run gets the pipeline worker of the thread that runs it. A job is offered
 * only while a worker is idle and no request waits, so it never holds up the
 * queue, and join never waits for a job nobody has started: no deadlock, and
 * at worst the owner runs both parts, as without side jobs. job must stay
 * where it is until join returns; job.ran_elsewhere then says whether another
 * worker ran it. */
struct fv_side_job {
    void (*run)(void *arg, struct fv_pipeline_worker *worker);
    void *arg;
    /* server.c's */
    int state;
    int ran_elsewhere;
    struct fv_side_job *next;
};

int fv_side_job_offer(const struct fv_handler_env *env, struct fv_side_job *job);
void fv_side_job_join(const struct fv_handler_env *env, struct fv_side_job *job);

struct fv_request {
    const char *method;
    const char *path;         /* without the query string */
    const char *content_type; /* "" when absent */
    const uint8_t *body;
    size_t body_size;
};

typedef void (*fv_route_handler)(const struct fv_handler_env *env, const struct fv_request *req,
                                 struct fv_reply *reply);

enum fv_route_flags {
    FV_ROUTE_BODY = 1,   /* takes a JSON or multipart body */
    FV_ROUTE_WORKER = 2, /* runs on a pipeline worker (queued, may get 429) */
    FV_ROUTE_OPEN = 4,   /* no API key needed */
};

struct fv_route {
    const char *method;
    const char *path; /* also the metrics label; with prefix, "{...}" marks the variable tail */
    int prefix;       /* match paths that start with path up to its '{' */
    int flags;
    fv_route_handler handler;
    unsigned errors;  /* enum fv_api_on: the family of error codes the handler sends */
};

extern const struct fv_route fv_routes[];
extern const int fv_route_count;

/* Finds the route for method and path: returns its index, or -1 with *status
 * 404 (no such path) or 405 (path known, method not; allow gets the methods). */
int fv_route_find(const char *method, const char *path, int *status, char *allow,
                  size_t allow_size);

/* Where error codes may come from on route r (enum fv_api_on bits): its own
 * family, plus what the server answers for any route with its flags. */
unsigned fv_route_errors(const struct fv_route *r);

/* The OpenAPI 3.0 document: the bytes of api/openapi.json, embedded at build
 * time (the Makefile turns the file into $(BUILD)/gen/openapi_json.c with xxd),
 * followed by a NUL that fv_openapi_json_size does not count. */
extern const unsigned char fv_openapi_json[];
extern const unsigned long fv_openapi_json_size;

/* The page (api/page/), embedded the same way: api/page/index.html as
 * fv_page_index_html, app.js as fv_page_app_js, app.css as fv_page_app_css. */
extern const unsigned char fv_page_index_html[], fv_page_app_js[], fv_page_app_css[];
extern const unsigned long fv_page_index_html_size, fv_page_app_js_size, fv_page_app_css_size;

void fv_handle_verify(const struct fv_handler_env *env, const struct fv_request *req,
                      struct fv_reply *reply);
void fv_handle_embed(const struct fv_handler_env *env, const struct fv_request *req,
                     struct fv_reply *reply);
void fv_handle_detect(const struct fv_handler_env *env, const struct fv_request *req,
                      struct fv_reply *reply);
/* POST /v1/align: the faces of one image with the aligned crop of each as PNG. */
void fv_handle_align(const struct fv_handler_env *env, const struct fv_request *req,
                     struct fv_reply *reply);
void fv_handle_models(const struct fv_handler_env *env, const struct fv_request *req,
                      struct fv_reply *reply);
void fv_handle_healthz(const struct fv_handler_env *env, const struct fv_request *req,
                       struct fv_reply *reply);
void fv_handle_readyz(const struct fv_handler_env *env, const struct fv_request *req,
                      struct fv_reply *reply);
void fv_handle_metrics(const struct fv_handler_env *env, const struct fv_request *req,
                       struct fv_reply *reply);
/* POST /v1/evaluations; GET /v1/evaluations/{id} and /v1/evaluations/{id}/roc.svg;
 * POST /v1/evaluations/{id}/cancel (evaluations.c). */
void fv_handle_evaluation_new(const struct fv_handler_env *env, const struct fv_request *req,
                              struct fv_reply *reply);
void fv_handle_evaluation_get(const struct fv_handler_env *env, const struct fv_request *req,
                              struct fv_reply *reply);
void fv_handle_evaluation_cancel(const struct fv_handler_env *env, const struct fv_request *req,
                                 struct fv_reply *reply);
/* GET /, /app.js, /app.css (page.c): open, with a strict Content-Security-Policy. */
void fv_handle_page(const struct fv_handler_env *env, const struct fv_request *req,
                    struct fv_reply *reply);
void fv_handle_openapi(const struct fv_handler_env *env, const struct fv_request *req,
                       struct fv_reply *reply);

#endif
