/* server.h - the HTTP JSON API: libmicrohttpd in front, pipeline workers behind.
 *
 *   struct fv_server_config c;
 *   fv_server_default_config(&c);
 *   c.pipeline = pipe;                 // loaded by the caller, shared read-only
 *   c.port = 0;                        // any free port
 *   struct fv_server *s;
 *   if (fv_server_start(&c, &s, &err)) ...
 *   printf("port %d\n", fv_server_port(s));
 *   ... wait for a signal ...
 *   fv_server_drain(s);                // /readyz 503, keep-alive answers say close
 *   ... a few seconds for the balancer to notice ...
 *   fv_server_stop(s);                 // graceful: in-flight requests finish
 *
 * libmicrohttpd's thread pool reads requests and answers cheap routes itself;
 * requests that run the face pipeline go into a bounded queue served by
 * `threads` worker threads, each owning its own fv_pipeline_worker (their
 * connections are suspended meanwhile, so the pool stays responsive). A
 * request that finds every worker busy and the queue full gets 429.
 * Routes: POST /v1/verify, /v1/embed, /v1/detect, /v1/evaluations,
 * /v1/evaluations/{id}/cancel; GET
 * /v1/evaluations/{id}, /v1/evaluations/{id}/roc.svg, /v1/models, /healthz,
 * /readyz, /metrics, /openapi.json (see api/openapi.json for the schemas).
 * Evaluations run as jobs on a thread of their own (see evaluations.h); with
 * jobs_dir, replicas sharing that folder answer for each other's jobs.
 *
 * Behind a reverse proxy: connections from trusted_proxies are exempt from
 * max_connections_per_ip (counted here, in the accept policy, see
 * conn_limit.h), and their X-Forwarded-For / X-Real-IP name the client in the
 * access log (proxy.h). With admin_port, a second listener serves only
 * /healthz, /readyz and /metrics, outside the public connection limits, so a
 * balancer can still probe a server whose public listener is full. Every
 * answer carries X-Request-Id: the request's own when sane, else a new one.
 */
#ifndef FV_SERVER_H
#define FV_SERVER_H

#include <stddef.h>
#include <stdio.h>

#include "model/status.h"
#include "pipeline/pipeline.h"

struct fv_api_keys;

struct fv_server_config {
    const char *host;             /* address to bind (numeric or a name); "127.0.0.1" */
    int port;                     /* 8080; 0 picks a free port (see fv_server_port) */
    int threads;                  /* pipeline workers; 2 */
    int io_threads;               /* libmicrohttpd pool threads; 2 */
    int queue;                    /* requests that may wait for a busy worker; 64 */
    unsigned max_connections;     /* open connections at once; 256 */
    unsigned timeout_s;           /* an idle or stalled connection is closed after this; 30 */
    unsigned request_timeout_s;   /* a body still arriving after this gets 408; 60 */
    unsigned max_connections_per_ip; /* open connections from one address; 32; trusted
                                        proxies are exempt */
    const char *trusted_proxies;  /* "ADDR[/BITS],..." (IPv4, IPv6): peers exempt from the
                                     per-address limit whose X-Forwarded-For / X-Real-IP are
                                     believed; NULL or "": none */
    int admin_port;               /* listener for /healthz, /readyz, /metrics only (at most 64
                                     connections, no per-address limit); -1: none (default),
                                     0: any free port (see fv_server_admin_port) */
    const char *admin_host;       /* the admin listener's address; NULL: host */
    size_t max_body;              /* request body cap in bytes; 32 MiB */
    int max_batch;                /* images in one /v1/embed or /v1/detect batch; 16 */
    unsigned shutdown_timeout_s;  /* fv_server_stop waits this long for in-flight requests; 30 */
    float threshold;              /* default verification threshold; NAN: the model's */
    enum fv_face_policy policy;   /* default face policy; FV_FACE_LARGEST */
    const char *data_root;        /* folder evaluations may read pairs and images from; NULL */
    int eval_threads;             /* feature threads of the running evaluation; 1 */
    int eval_queue;               /* evaluations that may wait behind the running one; 4 */
    int eval_keep;                /* finished evaluations kept for GET (oldest evicted); 16 */
    int eval_max_pairs;           /* pairs in one inline evaluation; 200 */
    const char *jobs_dir;         /* evaluation records shared by replicas; NULL: in memory */
    int jobs_lease_ms;            /* with jobs_dir: an owner silent this long has lost its jobs;
                                     30000 */
    struct fv_pipeline *pipeline; /* borrowed, required; must outlive the server */
    const struct fv_api_keys *api_keys; /* borrowed; NULL: no authentication */
    FILE *access_log;             /* one line per request; stderr; NULL: none */
};

void fv_server_default_config(struct fv_server_config *config);

struct fv_server;

/* Validates the config, creates the workers, binds and starts serving. The
 * config is copied (its pointers are borrowed). FV_ERR_INVALID_ARG for bad
 * values, FV_ERR_IO when the address cannot be bound. */
enum fv_status fv_server_start(const struct fv_server_config *config, struct fv_server **out,
                               struct fv_error *err);

/* The port the server listens on (the real one when config.port was 0). */
int fv_server_port(const struct fv_server *server);

/* The admin listener's port, -1 when there is none. */
int fv_server_admin_port(const struct fv_server *server);

/* Starts draining: /readyz answers 503 ("draining") from now on, and every
 * answer carries Connection: close, while everything else is served as
 * before. Thread-safe; the server keeps accepting until fv_server_stop. */
void fv_server_drain(struct fv_server *server);

/* Requests being handled now (read, queued, running or being answered). */
long fv_server_in_flight(struct fv_server *server);

/* Stops accepting connections (both listeners), waits up to shutdown_timeout_s
 * for requests in flight to be answered, then stops the daemons and the
 * workers and frees the server. NULL is fine. */
void fv_server_stop(struct fv_server *server);

#endif
