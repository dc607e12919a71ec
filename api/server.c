/* server.c - libmicrohttpd glue: routing, limits, auth, the worker queue, logging. */
#include "api/server.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
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
#include "api/conn_limit.h"
#include "api/evaluations.h"
#include "api/proxy.h"
#include "api/request_id.h"
#include "api/routes.h"

#define PATH_MAX_LEN 512
#define CONTENT_TYPE_MAX 256
/* The body buffer's first size; it doubles as data arrives (see body_reserve). */
#define BODY_BUFFER_INITIAL ((size_t)16 << 10)
/* The admin listener: a few monitoring clients, one polling thread. */
#define ADMIN_MAX_CONNECTIONS 64
/* X-Forwarded-For headers read per request (the right-most ones count). */
#define FORWARDED_HEADERS_MAX 16

struct fv_server;

/* One listening daemon: the public one, or the admin one (health, readiness, metrics). */
struct listener {
    struct fv_server *server;
    struct MHD_Daemon *daemon;
    int admin;
    int port;
};

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
    char client[FV_ADDRESS_TEXT_MAX];         /* for the log: the peer, or whom a proxy names */
    char request_id[FV_REQUEST_ID_MAX + 1];   /* X-Request-Id, "-" until the headers are in */
};

struct worker {
    struct fv_server *server;
    struct fv_pipeline_worker *pipeline_worker;
    pthread_t thread;
    int thread_started;
};

struct fv_server {
    struct fv_server_config config;
    struct listener public, admin; /* admin.daemon NULL: no admin listener */
    struct fv_metrics *metrics;
    const char **route_labels;
    struct fv_evaluations *evaluations;
    struct fv_proxy_list *trusted;     /* exempt from the per-address limit; may name clients */
    struct fv_conn_limit *conn_limit;  /* open connections per untrusted address */
    struct fv_request_ids request_ids;
    atomic_int draining;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t work_ready, idle, side_done;
    struct request *queue_head, *queue_tail;
    struct fv_side_job *side_head, *side_tail; /* offered by handlers, not yet taken */
    int waiting, busy, stopping;
    int side_waiting, side_running; /* side jobs offered and not taken; being run */
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
    c->admin_port = -1;
    c->access_log = stderr;
}

/* ---- responses ---- */

static enum MHD_Result send_reply(struct request *rq)
{
    struct fv_reply *r = &rq->reply;
    if (!r->status)
        fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "handler produced no reply");
    /* A copy, so the reply stays intact if libmicrohttpd refuses it for now. */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->size, r->body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "application/json");
    if (r->allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    for (const char *const *h = r->headers; h && h[0] && h[1]; h += 2)
        MHD_add_response_header(resp, h[0], h[1]);
    if (r->status == 429)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (r->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    MHD_add_response_header(resp, "X-Request-Id", rq->request_id);
    /* While draining, keep-alive clients are told to reconnect, which a balancer
     * sends elsewhere once /readyz has said 503. */
    if (atomic_load(&rq->server->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
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

/* The connection's peer address. */
static void peer_address(struct MHD_Connection *c, struct fv_address *peer)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    fv_address_from_sockaddr(ci ? ci->client_addr : NULL, peer, NULL);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *connection)
{
    const struct listener *l = cls;
    struct fv_server *s = l->server;
    struct request *rq = calloc(1, sizeof *rq);
    if (!rq)
        return NULL;
    rq->server = s;
    rq->connection = connection;
    rq->start_ms = now_ms();
    rq->route = -1;
    struct fv_address peer;
    peer_address(connection, &peer);
    fv_address_format(&peer, rq->client);
    strcpy(rq->request_id, "-");
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
    const struct listener *l = cls;
    struct fv_server *s = l->server;
    struct request *rq = *con_cls;
    if (!rq)
        return;
    *con_cls = NULL;
    double ms = now_ms() - rq->start_ms;
    if (s->config.access_log) {
        pthread_mutex_lock(&s->log_lock);
        if (rq->answered)
            fprintf(s->config.access_log, "facever: %s %s %s %d %zu %.1fms id=%s%s\n",
                    rq->client, rq->method[0] ? rq->method : "-", rq->path, rq->status,
                    rq->sent_bytes, ms, rq->request_id,
                    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
        else
            fprintf(s->config.access_log, "facever: %s %s %s - 0 %.1fms id=%s (%s)\n",
                    rq->client, rq->method[0] ? rq->method : "-", rq->path, ms, rq->request_id,
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
    struct fv_handler_env env = {.config = &s->config,
                                 .pipeline = s->config.pipeline,
                                 .worker = worker,
                                 .metrics = s->metrics,
                                 .evaluations = s->evaluations,
                                 .server = s,
                                 .draining = atomic_load(&s->draining)};
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
    /* A worker on a side job is back within one image, and its request was
     * counted when it came: the bound is what it was without side jobs. */
    int idle_workers = s->n_workers - (s->busy - s->side_running);
    if (s->waiting >= s->config.queue + (idle_workers > 0 ? idle_workers : 0)) {
        pthread_mutex_unlock(&s->lock);
        fv_metrics_rejected(s->metrics);
        fv_reply_error(&rq->reply, 429, FV_API_CODE_BUSY, NULL,
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

/* X-Forwarded-For values in the order they came, the last FORWARDED_HEADERS_MAX kept. */
struct forwarded {
    const char *values[FORWARDED_HEADERS_MAX];
    int n;
};

static enum MHD_Result collect_forwarded(void *cls, enum MHD_ValueKind kind, const char *key,
                                         const char *value)
{
    (void)kind;
    struct forwarded *f = cls;
    if (!key || strcasecmp(key, "X-Forwarded-For") != 0)
        return MHD_YES;
    if (f->n == FORWARDED_HEADERS_MAX) {
        memmove(f->values, f->values + 1, (FORWARDED_HEADERS_MAX - 1) * sizeof *f->values);
        f->n--;
    }
    f->values[f->n++] = value ? value : "";
    return MHD_YES;
}

/* The request's client address (X-Forwarded-For or X-Real-IP when the peer is a
 * trusted proxy, else the peer) and its request id, once its headers are in. */
static void identify(struct fv_server *s, struct MHD_Connection *c, struct request *rq)
{
    fv_request_id_take(&s->request_ids,
                       MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id"),
                       rq->request_id);
    if (!fv_proxy_list_count(s->trusted))
        return; /* the peer, already in rq->client */
    struct fv_address peer, client;
    peer_address(c, &peer);
    if (!fv_proxy_list_contains(s->trusted, &peer))
        return;
    struct forwarded f = {{0}, 0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_forwarded, &f);
    const char *real_ip = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Real-IP");
    fv_proxy_client_address(s->trusted, &peer, f.values, f.n, real_ip, &client);
    fv_address_format(&client, rq->client);
}

/* The routes the admin listener serves. */
static int admin_route(int route)
{
    fv_route_handler h = fv_routes[route].handler;
    return h == fv_handle_healthz || h == fv_handle_readyz || h == fv_handle_metrics;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)url;
    (void)version;
    const struct listener *l = cls;
    struct fv_server *s = l->server;
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
        identify(s, c, rq);
        int status;
        rq->route = fv_route_find(method, rq->path, &status, rq->reply.allow,
                                  sizeof rq->reply.allow);
        if (rq->route >= 0 && l->admin && !admin_route(rq->route)) {
            rq->route = -1;
            status = 404;
        }
        if (rq->route < 0) {
            if (status == 405)
                fv_reply_error(&rq->reply, 405, FV_API_CODE_METHOD_NOT_ALLOWED, NULL,
                               "%s is not allowed on %s (allowed: %s)", method, rq->path,
                               rq->reply.allow);
            else
                fv_reply_error(&rq->reply, 404, FV_API_CODE_NOT_FOUND, NULL, "no route %s%s",
                               rq->path,
                               l->admin ? " on the admin port (/healthz, /readyz, /metrics)" : "");
            return send_reply(rq);
        }
        const struct fv_route *route = &fv_routes[rq->route];
        if (s->config.api_keys && !(route->flags & FV_ROUTE_OPEN) && !authorised(s, c)) {
            fv_reply_error(&rq->reply, 401, FV_API_CODE_UNAUTHORIZED, NULL,
                           "a valid API key is required (X-API-Key or Authorization: Bearer)");
            return send_reply(rq);
        }
        /* Answered once the request is complete (the next call): an answer
         * queued before that makes libmicrohttpd close the connection, and
         * health checks want keep-alive. */
        if (!(route->flags & FV_ROUTE_BODY))
            return MHD_YES;
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!ct || !content_type_ok(ct)) {
            fv_reply_error(&rq->reply, 415, FV_API_CODE_UNSUPPORTED_MEDIA_TYPE, NULL,
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
                fv_reply_error(&rq->reply, 413, FV_API_CODE_BODY_TOO_LARGE, NULL,
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
        if (rq->reply.status || !(fv_routes[rq->route].flags & FV_ROUTE_BODY))
            return MHD_YES; /* already failed, or a route that takes no body: discard */
        /* The idle timeout resets on every byte; a body trickled in slowly meets
         * this deadline instead. */
        if (now_ms() - rq->start_ms > 1e3 * s->config.request_timeout_s) {
            fv_reply_error(&rq->reply, 408, FV_API_CODE_REQUEST_TIMEOUT, NULL,
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
            fv_reply_error(&rq->reply, 413, FV_API_CODE_BODY_TOO_LARGE, NULL,
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
            fv_reply_error(&rq->reply, 503, FV_API_CODE_BUSY, NULL, "out of memory for the body");
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
    if (!(fv_routes[rq->route].flags & FV_ROUTE_WORKER)) {
        run_handler(s, rq, NULL);
        return send_reply(rq);
    }
    return enqueue(s, rq);
}

/* ---- workers ---- */

enum { SIDE_QUEUED = 1, SIDE_RUNNING, SIDE_DONE };

int fv_side_job_offer(const struct fv_handler_env *env, struct fv_side_job *job)
{
    struct fv_server *s = env->server;
    job->state = 0;
    job->ran_elsewhere = 0;
    job->next = NULL;
    if (!s)
        return 0;
    pthread_mutex_lock(&s->lock);
    /* Only to a worker that is idle now: waiting requests come first, and a
     * job nobody takes would only be run by its owner later. */
    int idle = s->n_workers - s->busy - s->side_waiting;
    if (idle <= 0 || s->waiting > 0 || s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    job->state = SIDE_QUEUED;
    if (s->side_tail)
        s->side_tail->next = job;
    else
        s->side_head = job;
    s->side_tail = job;
    s->side_waiting++;
    pthread_cond_broadcast(&s->work_ready);
    pthread_mutex_unlock(&s->lock);
    return 1;
}

void fv_side_job_join(const struct fv_handler_env *env, struct fv_side_job *job)
{
    struct fv_server *s = env->server;
    pthread_mutex_lock(&s->lock);
    if (job->state == SIDE_QUEUED) {
        /* Not taken (the idle worker found a request first): run it here. */
        struct fv_side_job **p = &s->side_head, *prev = NULL;
        while (*p != job)
            prev = *p, p = &(*p)->next;
        *p = job->next;
        if (s->side_tail == job)
            s->side_tail = prev;
        s->side_waiting--;
        job->state = SIDE_DONE;
        pthread_mutex_unlock(&s->lock);
        job->run(job->arg, env->worker);
        return;
    }
    while (job->state != SIDE_DONE)
        pthread_cond_wait(&s->side_done, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct fv_server *s = w->server;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->side_head && !s->queue_head && !s->stopping)
            pthread_cond_wait(&s->work_ready, &s->lock);
        /* A side job first: its request is already being served. */
        struct fv_side_job *job = s->side_head;
        if (job) {
            s->side_head = job->next;
            if (!s->side_head)
                s->side_tail = NULL;
            s->side_waiting--;
            s->side_running++;
            s->busy++;
            job->state = SIDE_RUNNING;
            pthread_mutex_unlock(&s->lock);

            job->run(job->arg, w->pipeline_worker);

            pthread_mutex_lock(&s->lock);
            job->ran_elsewhere = 1;
            job->state = SIDE_DONE;
            s->side_running--;
            s->busy--;
            pthread_cond_broadcast(&s->side_done);
            pthread_mutex_unlock(&s->lock);
            continue;
        }
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

/* libmicrohttpd's accept policy on the public listener (any pool thread): a
 * trusted proxy may always connect; anyone else while under
 * max_connections_per_ip. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
    (void)len;
    struct fv_server *s = cls;
    struct fv_address peer;
    unsigned port;
    if (!fv_address_from_sockaddr(addr, &peer, &port) ||
        fv_proxy_list_contains(s->trusted, &peer))
        return MHD_YES;
    return fv_conn_limit_admit(s->conn_limit, &peer, port, now_ms() / 1e3) ? MHD_YES : MHD_NO;
}

/* Connections the accept policy let in, counted once they start and until they close. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct fv_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = NULL;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        struct fv_address peer;
        unsigned port;
        if (ci && fv_address_from_sockaddr(ci->client_addr, &peer, &port) &&
            !fv_proxy_list_contains(s->trusted, &peer))
            *socket_context = fv_conn_limit_started(s->conn_limit, &peer, port);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        fv_conn_limit_closed(s->conn_limit, *socket_context);
        *socket_context = NULL;
    }
}

/* Binds host:port and starts l's daemon: the public one (a pool of io_threads,
 * connections counted per address) or the admin one (one thread). */
static enum fv_status start_listener(struct fv_server *s, struct listener *l, const char *host,
                                     int port, struct fv_error *err)
{
    const struct fv_server_config *c = &s->config;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    int gai = getaddrinfo(host, port_text, &hints, &ai);
    if (gai)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "cannot resolve host %s: %s", host,
                            gai_strerror(gai));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    l->server = s;
    if (l->admin)
        l->daemon = MHD_start_daemon(
            flags, (uint16_t)port, NULL, NULL, on_request, l,
            /* first, so that every message goes through it */
            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
            MHD_OPTION_CONNECTION_TIMEOUT, c->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)ADMIN_MAX_CONNECTIONS, MHD_OPTION_URI_LOG_CALLBACK, on_uri, l,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, l, MHD_OPTION_END);
    else
        l->daemon = MHD_start_daemon(
            flags | MHD_ALLOW_SUSPEND_RESUME, (uint16_t)port, accept_policy, s, on_request, l,
            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->io_threads,
            MHD_OPTION_CONNECTION_TIMEOUT, c->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
            c->max_connections, MHD_OPTION_URI_LOG_CALLBACK, on_uri, l,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, l, MHD_OPTION_NOTIFY_CONNECTION,
            on_connection, s, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!l->daemon)
        return fv_error_set(err, FV_ERR_IO, "cannot listen on %s port %d%s", host, port,
                            l->admin ? " (admin)" : "");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_BIND_PORT);
    l->port = info && info->port ? info->port : port;
    return FV_OK;
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
    fv_conn_limit_free(s->conn_limit);
    fv_proxy_list_free(s->trusted);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->log_lock);
    pthread_cond_destroy(&s->work_ready);
    pthread_cond_destroy(&s->idle);
    pthread_cond_destroy(&s->side_done);
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
    if (c->admin_port < -1 || c->admin_port > 65535)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "admin port %d out of range", c->admin_port);
    if (c->admin_port >= 0 && c->admin_port == c->port && c->port != 0 &&
        (!c->admin_host || strcmp(c->admin_host, c->host) == 0))
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "the admin port must differ from the port (both %d)", c->port);
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
    pthread_cond_init(&s->side_done, NULL);
    atomic_init(&s->draining, 0);
    fv_request_ids_init(&s->request_ids);
    s->public.server = s->admin.server = s;
    s->admin.admin = 1;
    s->admin.port = -1;

    if ((st = fv_proxy_list_parse(config->trusted_proxies, &s->trusted, err))) {
        if (st != FV_ERR_NOMEM) {
            fv_error_prefix(err, "trusted proxies: ");
            st = FV_ERR_INVALID_ARG;
            if (err)
                err->status = st;
        }
        goto fail;
    }
    s->conn_limit = fv_conn_limit_new(config->max_connections_per_ip, config->max_connections);
    s->route_labels = calloc((size_t)fv_route_count, sizeof *s->route_labels);
    if (!s->conn_limit || !s->route_labels) {
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

    if ((st = start_listener(s, &s->public, config->host, config->port, err)))
        goto fail;
    if (config->admin_port >= 0 &&
        (st = start_listener(s, &s->admin, config->admin_host ? config->admin_host : config->host,
                             config->admin_port, err))) {
        MHD_stop_daemon(s->public.daemon);
        goto fail;
    }

    for (int i = 0; i < s->n_workers; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i])) {
            st = fv_error_set(err, FV_ERR_NOMEM, "cannot start worker threads");
            stop_workers(s);
            if (s->admin.daemon)
                MHD_stop_daemon(s->admin.daemon);
            MHD_stop_daemon(s->public.daemon);
            goto fail;
        }
        s->workers[i].thread_started = 1;
    }
    *out = s;
    return FV_OK;
fail:
    free_server(s);
    return st;
}

int fv_server_port(const struct fv_server *s)
{
    return s->public.port;
}

int fv_server_admin_port(const struct fv_server *s)
{
    return s->admin.daemon ? s->admin.port : -1;
}

void fv_server_drain(struct fv_server *s)
{
    atomic_store(&s->draining, 1);
}

long fv_server_in_flight(struct fv_server *s)
{
    pthread_mutex_lock(&s->lock);
    long n = s->in_flight;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* Closes l's listening socket; its connections stay. */
static void quiesce(struct listener *l)
{
    if (!l->daemon)
        return;
    MHD_socket listen_fd = MHD_quiesce_daemon(l->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
}

void fv_server_stop(struct fv_server *s)
{
    if (!s)
        return;
    quiesce(&s->public);
    quiesce(&s->admin);
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
    if (s->admin.daemon)
        MHD_stop_daemon(s->admin.daemon);
    MHD_stop_daemon(s->public.daemon);
    free_server(s);
}
