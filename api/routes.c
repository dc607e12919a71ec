/* routes.c - the route table and route matching. */
#include "api/routes.h"

#include <stdio.h>
#include <string.h>

const struct fv_route fv_routes[] = {
    {"POST", "/v1/verify", 0, FV_ROUTE_BODY | FV_ROUTE_WORKER, fv_handle_verify, FV_API_ON_IMAGES},
    {"POST", "/v1/embed", 0, FV_ROUTE_BODY | FV_ROUTE_WORKER, fv_handle_embed, FV_API_ON_IMAGES},
    {"POST", "/v1/detect", 0, FV_ROUTE_BODY | FV_ROUTE_WORKER, fv_handle_detect, FV_API_ON_IMAGES},
    {"POST", "/v1/align", 0, FV_ROUTE_BODY | FV_ROUTE_WORKER, fv_handle_align, FV_API_ON_IMAGES},
    {"POST", "/v1/evaluations", 0, FV_ROUTE_BODY | FV_ROUTE_WORKER, fv_handle_evaluation_new,
     FV_API_ON_EVAL_NEW},
    {"GET", "/v1/evaluations/{id}", 1, 0, fv_handle_evaluation_get, FV_API_ON_EVAL_ID},
    {"POST", "/v1/evaluations/{id}/cancel", 1, 0, fv_handle_evaluation_cancel, FV_API_ON_EVAL_ID},
    {"GET", "/v1/models", 0, 0, fv_handle_models, 0},
    {"GET", "/healthz", 0, FV_ROUTE_OPEN, fv_handle_healthz, 0},
    {"GET", "/readyz", 0, FV_ROUTE_OPEN, fv_handle_readyz, FV_API_ON_READY},
    {"GET", "/metrics", 0, FV_ROUTE_OPEN, fv_handle_metrics, 0},
    {"GET", "/openapi.json", 0, FV_ROUTE_OPEN, fv_handle_openapi, 0},
    {"GET", "/", 0, FV_ROUTE_OPEN, fv_handle_page, 0},
    {"GET", "/app.js", 0, FV_ROUTE_OPEN, fv_handle_page, 0},
    {"GET", "/app.css", 0, FV_ROUTE_OPEN, fv_handle_page, 0},
};
const int fv_route_count = (int)(sizeof fv_routes / sizeof fv_routes[0]);

static int path_matches(const struct fv_route *r, const char *path)
{
    if (!r->prefix)
        return strcmp(r->path, path) == 0;
    const char *brace = strchr(r->path, '{');
    size_t n = brace ? (size_t)(brace - r->path) : strlen(r->path);
    return strncmp(r->path, path, n) == 0 && path[n] != 0;
}

int fv_route_find(const char *method, const char *path, int *status, char *allow,
                  size_t allow_size)
{
    int known_path = 0;
    size_t used = 0;
    allow[0] = 0;
    for (int i = 0; i < fv_route_count; i++) {
        const struct fv_route *r = &fv_routes[i];
        if (!path_matches(r, path))
            continue;
        known_path = 1;
        if (strcmp(r->method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0))
            return i;
        int n = snprintf(allow + used, allow_size - used, "%s%s", used ? ", " : "", r->method);
        if (n > 0 && (size_t)n < allow_size - used)
            used += (size_t)n;
        if (strcmp(r->method, "GET") == 0) {
            n = snprintf(allow + used, allow_size - used, ", HEAD");
            if (n > 0 && (size_t)n < allow_size - used)
                used += (size_t)n;
        }
    }
    *status = known_path ? 405 : 404;
    return -1;
}

unsigned fv_route_errors(const struct fv_route *r)
{
    unsigned on = FV_API_ON_ANY | r->errors;
    if (!(r->flags & FV_ROUTE_OPEN))
        on |= FV_API_ON_KEYED;
    if (r->flags & FV_ROUTE_BODY)
        on |= FV_API_ON_BODY;
    if (r->flags & FV_ROUTE_WORKER)
        on |= FV_API_ON_WORKER;
    return on;
}
