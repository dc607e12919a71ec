/* server.c - libmicrohttpd glue: routing, limits, auth, the worker queue, logging. */
#include "api/server.h"

#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/auth.h"
#include "api/evaluations.h"
#include "api/routes.h"

#define PATH_MAX_LEN 512
#define CONTENT_TYPE_MAX 256
/* The body buffer's first size; it doubles as data arrives (see body_reserve). */
#define BODY_BUFFER_INITIAL ((size_t)16 << 10)

struct request {
    struct fv_server *server;
    struct MHD_Connection *connection;
    struct request *next_queued;
    double start_ms;
    char method[16];
    char path[PATH_MAX_LEN];
    char content_type[CONTENT_TYPE_MAX];
    int route; /* index into fv_routes, -1 when none */
    int started, queued_to_worker, answered;
    int reply_ready; /* written by a worker before it resumes the connection */
    uint8_t *body;
    size_t size, cap;
    size_t announced; /* Content-Length, 0 when absent (chunked) or empty */
    struct fv_reply reply;
    int status;        /* what was sent, for the log and metrics */
    int counted;       /* metrics already updated (when the answer was queued) */
    size_t sent_bytes;
};

struct worker {
    struct fv_server *server;
    struct fv_pipeline_worker *pipeline_worker;
    pthread_t thread;
    int thread_started;
};

struct fv_server {
    struct fv_server_config config;
    struct MHD_Daemon *daemon;
    int port;
    struct fv_metrics *metrics;
    const char **route_labels;
    struct fv_evaluations *evaluations;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t work_ready, idle;
    struct request *queue_head, *queue_tail;
    int waiting, busy, stopping;
    long in_flight;

    struct worker *workers;
    int n_workers;
    pthread_mutex_t log_lock;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void fv_server_default_config(struct fv_server_config *c)
{
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8080;
    c->threads = 2;
    c->io_threads = 2;
    c->queue = 64;
    c->max_connections = 256;
    c->timeout_s = 30;
    c->request_timeout_s = 60;
    c->max_connections_per_ip = 32;
    c->max_body = (size_t)32 << 20;
    c->max_batch = 16;
    c->shutdown_timeout_s = 30;
    c->threshold = NAN;
    c->policy = FV_FACE_LARGEST;
    c->eval_threads = 1;
    c->eval_queue = 4;
    c->eval_keep = 16;
    c->eval_max_pairs = 200;
    c->jobs_lease_ms = 30000;
    c->access_log = stderr;
}

/* ---- responses ---- */

static enum MHD_Result send_reply(struct request *rq)
{
    struct fv_reply *r = &rq->reply;
    if (!r->status)
        fv_reply_error(r, 500, "internal", NULL, "handler produced no reply");
    /* A copy, so the reply stays intact if libmicrohttpd refuses it for now. */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->size, r->body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "application/json");
    if (r->allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->status == 429)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (r->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ok = MHD_queue_response(rq->connection, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES) {
        rq->answered = 1;
        rq->status = r->status;
        rq->sent_bytes = r->size;
        /* Count the request as soon as its answer is queued: a client that reads the
         * answer and then asks /metrics must see it counted. */
        struct fv_server *s = rq->server;
        if (rq->route >= 0)
            fv_metrics_request(s->metrics, rq->route, rq->status, (now_ms() - rq->start_ms) / 1e3);
        fv_metrics_in_flight(s->metrics, -1);
        rq->counted = 1;
    }
    return ok;
}

/* ---- request lifecycle ---- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *connection)
{
    struct fv_server *s = cls;
    struct request *rq = calloc(1, sizeof *rq);
    if (!rq)
        return NULL;
    rq->server = s;
    rq->connection = connection;
    rq->start_ms = now_ms();
    rq->route = -1;
    size_t n = strcspn(uri, "?");
    if (n >= sizeof rq->path)
        n = sizeof rq->path - 1; /* truncated paths match no route: 404 */
    memcpy(rq->path, uri, n);
    rq->path[n] = 0;
    pthread_mutex_lock(&s->lock);
    s->in_flight++;
    pthread_mutex_unlock(&s->lock);
    fv_metrics_in_flight(s->metrics, +1);
    return rq;
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)connection;
    struct fv_server *s = cls;
    struct request *rq = *con_cls;
    if (!rq)
        return;
    *con_cls = NULL;
    double ms = now_ms() - rq->start_ms;
    if (s->config.access_log) {
        pthread_mutex_lock(&s->log_lock);
        if (rq->answered)
            fprintf(s->config.access_log, "facever: %s %s %d %zu %.1fms%s\n",
                    rq->method[0] ? rq->method : "-", rq->path, rq->status, rq->sent_bytes, ms,
                    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
        else
            fprintf(s->config.access_log, "facever: %s %s - 0 %.1fms (%s)\n",
                    rq->method[0] ? rq->method : "-", rq->path, ms,
                    toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timed out" : "closed");
        fflush(s->config.access_log);
        pthread_mutex_unlock(&s->log_lock);
    }
    if (!rq->counted) {
        if (rq->route >= 0)
            fv_metrics_request(s->metrics, rq->route, 0, ms / 1e3);
        fv_metrics_in_flight(s->metrics, -1);
    }
    fv_reply_clear(&rq->reply);
    free(rq->body);
    free(rq);
    pthread_mutex_lock(&s->lock);
    if (--s->in_flight == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

/* The key from "X-API-Key: K" or "Authorization: Bearer K". */
static int authorised(struct fv_server *s, struct MHD_Connection *c)
{
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
    if (!key) {
        const char *auth =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
            key = auth + 7;
            while (*key == ' ')
                key++;
        }
    }
    return key && fv_api_keys_check(s->config.api_keys, key, strlen(key));
}

static int content_type_ok(const char *ct)
{
    size_t n = strcspn(ct, "; \t");
    return (n == 16 && strncasecmp(ct, "application/json", n) == 0) ||
           (n == 19 && strncasecmp(ct, "multipart/form-data", n) == 0);
}

static void run_handler(struct fv_server *s, struct request *rq,
                        struct fv_pipeline_worker *worker)
{
    struct fv_handler_env env = {&s->config, s->config.pipeline, worker, s->metrics,
                                 s->evaluations};
    struct fv_request req = {rq->method, rq->path, rq->content_type, rq->body, rq->size};
    fv_routes[rq->route].handler(&env, &req, &rq->reply);
}

/* Makes room for n more body bytes (the caller has checked that size + n is
 * within max_body). The buffer starts at 16 KiB and doubles as data arrives, up
 * to the announced Content-Length (or max_body when there is none), as nginx's
 * client_body_buffer_size does: a client that announces a large body and sends
 * little costs little, and the reallocations of a body that does arrive copy
 * less than twice its size in all. Returns 0 when out of memory; the buffer is
 * then unchanged. */
static int body_reserve(struct request *rq, size_t n, size_t max_body)
{
    if (n <= rq->cap - rq->size)
        return 1;
    size_t need = rq->size + n;
    size_t limit = rq->announced >= need ? rq->announced : max_body;
    size_t cap = rq->cap ? rq->cap : BODY_BUFFER_INITIAL;
    if (cap > limit)
        cap = limit;
    while (cap < need)
        cap = cap > limit / 2 ? limit : cap * 2;
    uint8_t *body = realloc(rq->body, cap);
    if (!body)
        return 0;
    rq->body = body;
    rq->cap = cap;
    return 1;
}

/* Hands the request to a worker, or answers 429. Called once the body is in. */
static enum MHD_Result enqueue(struct fv_server *s, struct request *rq)
{
    pthread_mutex_lock(&s->lock);
    int idle_workers = s->n_workers - s->busy;
    if (s->waiting >= s->config.queue + (idle_workers > 0 ? idle_workers : 0)) {
        pthread_mutex_unlock(&s->lock);
        fv_metrics_rejected(s->metrics);
        fv_reply_error(&rq->reply, 429, "busy", NULL,
                       "all %d workers are busy and %d requests are waiting; retry later",
                       s->n_workers, s->waiting);
        return send_reply(rq);
    }
    /* Suspend before a worker can see the request, so its resume cannot come first. */
    MHD_suspend_connection(rq->connection);
    rq->queued_to_worker = 1;
    rq->next_queued = NULL;
    if (s->queue_tail)
        s->queue_tail->next_queued = rq;
    else
        s->queue_head = rq;
    s->queue_tail = rq;
    s->waiting++;
    pthread_cond_signal(&s->work_ready);
    pthread_mutex_unlock(&s->lock);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)url;
    (void)version;
    struct fv_server *s = cls;
    struct request *rq = *con_cls;
    if (!rq)
        return MHD_NO; /* out of memory in on_uri: drop the connection */
    if (rq->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (!rq->started) {
        rq->started = 1;
        snprintf(rq->method, sizeof rq->method, "%s", method);
        int status;
        rq->route = fv_route_find(method, rq->path, &status, rq->reply.allow,
                                  sizeof rq->reply.allow);
        if (rq->route < 0) {
            if (status == 405)
                fv_reply_error(&rq->reply, 405, "method_not_allowed", NULL,
                               "%s is not allowed on %s (allowed: %s)", method, rq->path,
                               rq->reply.allow);
            else
                fv_reply_error(&rq->reply, 404, "not_found", NULL, "no route %s", rq->path);
            return send_reply(rq);
        }
        const struct fv_route *route = &fv_routes[rq->route];
        if (s->config.api_keys && !(route->flags & FV_ROUTE_OPEN) && !authorised(s, c)) {
            fv_reply_error(&rq->reply, 401, "unauthorized", NULL,
                           "a valid API key is required (X-API-Key or Authorization: Bearer)");
            return send_reply(rq);
        }
        if (!(route->flags & FV_ROUTE_BODY)) {
            if (!(route->flags & FV_ROUTE_WORKER)) {
                run_handler(s, rq, NULL);
                return send_reply(rq);
            }
            return MHD_YES;
        }
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!ct || !content_type_ok(ct)) {
            fv_reply_error(&rq->reply, 415, "unsupported_media_type", NULL,
                           "Content-Type must be application/json or multipart/form-data, not %s",
                           ct ? ct : "(none)");
            return send_reply(rq);
        }
        snprintf(rq->content_type, sizeof rq->content_type, "%s", ct);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            errno = 0;
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || end == cl || n > s->config.max_body) {
                fv_reply_error(&rq->reply, 413, "body_too_large", NULL,
                               "request body of %s bytes exceeds the limit of %zu", cl,
                               s->config.max_body);
                return send_reply(rq);
            }
            /* Nothing is reserved yet: the buffer grows as the body arrives. */
            rq->announced = (size_t)n;
        }
        return MHD_YES;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->reply.status)
            return MHD_YES; /* already failed: discard the rest */
        /* The idle timeout resets on every byte; a body trickled in slowly meets
         * this deadline instead. */
        if (now_ms() - rq->start_ms > 1e3 * s->config.request_timeout_s) {
            fv_reply_error(&rq->reply, 408, "request_timeout", NULL,
                           "the request body did not arrive within %u s",
                           s->config.request_timeout_s);
            free(rq->body);
            rq->body = NULL;
            rq->size = rq->cap = 0;
            /* libmicrohttpd may refuse an answer before the body is complete: then
             * the connection is closed, which is what a trickling client earns. */
            return send_reply(rq) == MHD_YES ? MHD_YES : MHD_NO;
        }
        if (n > s->config.max_body - rq->size) {
            fv_reply_error(&rq->reply, 413, "body_too_large", NULL,
                           "request body exceeds the limit of %zu bytes", s->config.max_body);
            free(rq->body);
            rq->body = NULL;
            rq->size = rq->cap = 0;
            /* Answer now if libmicrohttpd lets us (it then closes the connection
             * instead of reading the rest); otherwise after the upload ends. */
            send_reply(rq);
            return MHD_YES;
        }
        if (!body_reserve(rq, n, s->config.max_body)) {
            fv_reply_error(&rq->reply, 503, "busy", NULL, "out of memory for the body");
            free(rq->body);
            rq->body = NULL;
            rq->size = rq->cap = 0;
            return MHD_YES;
        }
        memcpy(rq->body + rq->size, upload_data, n);
        rq->size += n;
        return MHD_YES;
    }

    /* The body is complete (or there was none); or a worker has just resumed us. */
    if (rq->reply.status && !rq->queued_to_worker)
        return send_reply(rq);
    if (rq->reply_ready)
        return send_reply(rq);
    if (rq->queued_to_worker)
        return MHD_YES; /* spurious wake-up */
    return enqueue(s, rq);
}

/* ---- workers ---- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct fv_server *s = w->server;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->queue_head && !s->stopping)
            pthread_cond_wait(&s->work_ready, &s->lock);
        struct request *rq = s->queue_head;
        if (!rq) {
            pthread_mutex_unlock(&s->lock);
            break; /* stopping, and the queue is drained */
        }
        s->queue_head = rq->next_queued;
        if (!s->queue_head)
            s->queue_tail = NULL;
        s->waiting--;
        s->busy++;
        pthread_mutex_unlock(&s->lock);

        run_handler(s, rq, w->pipeline_worker);
        rq->reply_ready = 1;

        pthread_mutex_lock(&s->lock);
        s->busy--;
        pthread_mutex_unlock(&s->lock);
        MHD_resume_connection(rq->connection);
    }
    return NULL;
}

static void stop_workers(struct fv_server *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_broadcast(&s->work_ready);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->n_workers; i++)
        if (s->workers[i].thread_started)
            pthread_join(s->workers[i].thread, NULL);
}

/* ---- start / stop ---- */

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct fv_server *s = cls;
    if (!s->config.access_log)
        return;
    pthread_mutex_lock(&s->log_lock);
    fputs("facever: libmicrohttpd: ", s->config.access_log);
    vfprintf(s->config.access_log, fmt, ap);
    fflush(s->config.access_log);
    pthread_mutex_unlock(&s->log_lock);
}

static void free_server(struct fv_server *s)
{
    if (!s)
        return;
    fv_evaluations_free(s->evaluations);
    for (int i = 0; i < s->n_workers; i++)
        fv_pipeline_worker_free(s->workers[i].pipeline_worker);
    free(s->workers);
    fv_metrics_free(s->metrics);
    free(s->route_labels);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->log_lock);
    pthread_cond_destroy(&s->work_ready);
    pthread_cond_destroy(&s->idle);
    free(s);
}

static enum fv_status check_config(const struct fv_server_config *c, struct fv_error *err)
{
    if (!c->pipeline)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "no pipeline given to the server");
    if (!c->host || !*c->host)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "no host to bind");
    if (c->port < 0 || c->port > 65535)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "port %d out of range", c->port);
    if (c->threads < 1 || c->threads > 1024)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "threads must be 1..1024");
    if (c->io_threads < 1 || c->io_threads > 256)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "io threads must be 1..256");
    if (c->queue < 0 || c->queue > 100000)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "queue must be 0..100000");
    if (c->max_body < 1024)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "max body must be at least 1024 bytes");
    if (c->max_batch < 1 || c->max_batch > 1024)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "max batch must be 1..1024");
    if (c->max_connections < 1 || c->timeout_s < 1 || c->request_timeout_s < 1 ||
        c->max_connections_per_ip < 1)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "connection limit and timeout must be positive");
    if (!isnan(c->threshold) && !(c->threshold >= -1 && c->threshold <= 1))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "threshold must be between -1 and 1");
    if (c->eval_threads < 1 || c->eval_threads > 256 || c->eval_queue < 0 ||
        c->eval_queue > 1000 || c->eval_keep < 1 || c->eval_keep > 100000 ||
        c->eval_max_pairs < 2 || c->eval_max_pairs > 100000)
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "evaluation threads must be 1..256, queue 0..1000, kept jobs "
                            "1..100000, inline pairs 2..100000");
    if (c->policy == FV_FACE_ALL || (int)c->policy < 0 || c->policy >= FV_FACE_POLICY_COUNT)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "default policy must be largest or center");
    return FV_OK;
}

enum fv_status fv_server_start(const struct fv_server_config *config, struct fv_server **out,
                               struct fv_error *err)
{
    *out = NULL;
    enum fv_status st = check_config(config, err);
    if (st)
        return st;
    struct fv_server *s = calloc(1, sizeof *s);
    if (!s)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory starting the server");
    s->config = *config;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->log_lock, NULL);
    pthread_cond_init(&s->work_ready, NULL);
    pthread_cond_init(&s->idle, NULL);
    struct addrinfo *ai = NULL;

    s->route_labels = calloc((size_t)fv_route_count, sizeof *s->route_labels);
    if (!s->route_labels) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory starting the server");
        goto fail;
    }
    for (int i = 0; i < fv_route_count; i++)
        s->route_labels[i] = fv_routes[i].path;
    s->metrics = fv_metrics_new(s->route_labels, fv_route_count);
    s->workers = calloc((size_t)config->threads, sizeof *s->workers);
    if (!s->metrics || !s->workers) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory starting the server");
        goto fail;
    }
    for (s->n_workers = 0; s->n_workers < config->threads; s->n_workers++) {
        struct worker *w = &s->workers[s->n_workers];
        w->server = s;
        if ((st = fv_pipeline_worker_new(config->pipeline, &w->pipeline_worker, err)))
            goto fail;
    }
    struct fv_evaluations_params ep = fv_evaluations_default_params();
    ep.data_root = config->data_root;
    ep.threads = config->eval_threads;
    ep.max_queued = config->eval_queue;
    ep.max_finished = config->eval_keep;
    ep.max_inline_pairs = config->eval_max_pairs;
    ep.jobs_dir = config->jobs_dir;
    ep.lease_ms = config->jobs_lease_ms;
    if ((st = fv_evaluations_new(config->pipeline, &ep, &s->evaluations, err)))
        goto fail;

    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", config->port);
    int gai = getaddrinfo(config->host, port, &hints, &ai);
    if (gai) {
        st = fv_error_set(err, FV_ERR_INVALID_ARG, "cannot resolve host %s: %s", config->host,
                          gai_strerror(gai));
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)config->port, NULL, NULL, on_request, s,
        /* first, so that every message goes through it */
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_SOCK_ADDR,
        ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)config->io_threads,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, config->max_connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, config->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        config->max_connections, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        st = fv_error_set(err, FV_ERR_IO, "cannot listen on %s port %d", config->host,
                          config->port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info && info->port ? info->port : config->port;
    freeaddrinfo(ai);
    ai = NULL;

    for (int i = 0; i < s->n_workers; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i])) {
            st = fv_error_set(err, FV_ERR_NOMEM, "cannot start worker threads");
            stop_workers(s);
            MHD_stop_daemon(s->daemon);
            goto fail;
        }
        s->workers[i].thread_started = 1;
    }
    *out = s;
    return FV_OK;
fail:
    if (ai)
        freeaddrinfo(ai);
    free_server(s);
    return st;
}

int fv_server_port(const struct fv_server *s)
{
    return s->port;
}

void fv_server_stop(struct fv_server *s)
{
    if (!s)
        return;
    MHD_socket listen_fd = MHD_quiesce_daemon(s->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    /* A running evaluation stops at its next image; the thread is joined in free_server. */
    fv_evaluations_cancel(s->evaluations);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += s->config.shutdown_timeout_s;
    pthread_mutex_lock(&s->lock);
    while (s->in_flight > 0)
        if (pthread_cond_timedwait(&s->idle, &s->lock, &deadline) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&s->lock);
    /* Workers drain the queue before they exit, resuming every suspended connection. */
    stop_workers(s);
    MHD_stop_daemon(s->daemon);
    free_server(s);
}
