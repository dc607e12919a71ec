/* metrics.c - counters and histograms rendered as Prometheus text. */
#include "api/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double bucket_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5,   1,    2.5,   5,    10};
#define N_BUCKETS (int)(sizeof bucket_bounds / sizeof bucket_bounds[0])
#define MAX_STATUSES 24 /* distinct statuses counted per route; the rest pool as 0 */

struct status_count {
    int status;
    unsigned long long count;
};

struct route_stats {
    struct status_count statuses[MAX_STATUSES];
    unsigned long long buckets[N_BUCKETS]; /* non-cumulative; rendering sums */
    unsigned long long count;
    double sum;
};

struct fv_metrics {
    pthread_mutex_t lock;
    const char *const *names;
    int n_routes;
    struct route_stats *routes; /* n_routes + 1: the last is "other" */
    unsigned long long faces, rejected, verify_split;
    long in_flight;
};

struct fv_metrics *fv_metrics_new(const char *const *route_names, int n_routes)
{
    struct fv_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->routes = calloc((size_t)n_routes + 1, sizeof *m->routes);
    if (!m->routes) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->names = route_names;
    m->n_routes = n_routes;
    return m;
}

void fv_metrics_free(struct fv_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m->routes);
    free(m);
}

void fv_metrics_request(struct fv_metrics *m, int route, int status, double seconds)
{
    if (route < 0 || route >= m->n_routes)
        route = m->n_routes;
    pthread_mutex_lock(&m->lock);
    struct route_stats *r = &m->routes[route];
    int slot = MAX_STATUSES - 1;
    for (int i = 0; i < MAX_STATUSES; i++) {
        if (r->statuses[i].status == status || r->statuses[i].count == 0) {
            slot = i;
            break;
        }
    }
    if (r->statuses[slot].count && r->statuses[slot].status != status)
        status = 0; /* table full: pooled */
    r->statuses[slot].status = status;
    r->statuses[slot].count++;
    int b = 0;
    while (b < N_BUCKETS && seconds > bucket_bounds[b])
        b++;
    if (b < N_BUCKETS)
        r->buckets[b]++;
    r->count++;
    r->sum += seconds;
    pthread_mutex_unlock(&m->lock);
}

void fv_metrics_faces(struct fv_metrics *m, long count)
{
    pthread_mutex_lock(&m->lock);
    m->faces += (unsigned long long)count;
    pthread_mutex_unlock(&m->lock);
}

void fv_metrics_in_flight(struct fv_metrics *m, int delta)
{
    pthread_mutex_lock(&m->lock);
    m->in_flight += delta;
    pthread_mutex_unlock(&m->lock);
}

void fv_metrics_rejected(struct fv_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->rejected++;
    pthread_mutex_unlock(&m->lock);
}

void fv_metrics_verify_split(struct fv_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->verify_split++;
    pthread_mutex_unlock(&m->lock);
}

/* A growing text buffer; on allocation failure it stops growing and reports it at the end. */
struct text {
    char *s;
    size_t len, cap;
    int failed;
};

__attribute__((format(printf, 2, 3))) static void append(struct text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n + 1;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

char *fv_metrics_render(struct fv_metrics *m, size_t *size)
{
    struct text t = {malloc(4096), 0, 4096, 0};
    if (!t.s)
        return NULL;
    t.s[0] = 0;
    pthread_mutex_lock(&m->lock);
    append(&t, "# HELP facever_requests_total HTTP requests answered, by route and status.\n"
               "# TYPE facever_requests_total counter\n");
    for (int r = 0; r <= m->n_routes; r++) {
        const char *name = r < m->n_routes ? m->names[r] : "other";
        for (int i = 0; i < MAX_STATUSES && m->routes[r].statuses[i].count; i++)
            append(&t, "facever_requests_total{route=\"%s\",status=\"%d\"} %llu\n", name,
                   m->routes[r].statuses[i].status, m->routes[r].statuses[i].count);
    }
    append(&t, "# HELP facever_request_duration_seconds Time from request line to response.\n"
               "# TYPE facever_request_duration_seconds histogram\n");
    for (int r = 0; r <= m->n_routes; r++) {
        const struct route_stats *s = &m->routes[r];
        const char *name = r < m->n_routes ? m->names[r] : "other";
        unsigned long long cumulative = 0;
        for (int b = 0; b < N_BUCKETS; b++) {
            cumulative += s->buckets[b];
            append(&t, "facever_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                   name, bucket_bounds[b], cumulative);
        }
        append(&t, "facever_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
               name, s->count);
        append(&t, "facever_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name, s->sum);
        append(&t, "facever_request_duration_seconds_count{route=\"%s\"} %llu\n", name, s->count);
    }
    append(&t, "# HELP facever_faces_detected_total Faces reported to clients.\n"
               "# TYPE facever_faces_detected_total counter\n"
               "facever_faces_detected_total %llu\n",
           m->faces);
    append(&t, "# HELP facever_in_flight_requests Requests being handled now.\n"
               "# TYPE facever_in_flight_requests gauge\n"
               "facever_in_flight_requests %ld\n",
           m->in_flight);
    append(&t, "# HELP facever_rejected_total Requests refused with 429 (workers busy, queue full).\n"
               "# TYPE facever_rejected_total counter\n"
               "facever_rejected_total %llu\n",
           m->rejected);
    append(&t, "# HELP facever_verify_split_total Verifies whose two images ran on two workers "
               "at once (one was idle).\n"
               "# TYPE facever_verify_split_total counter\n"
               "facever_verify_split_total %llu\n",
           m->verify_split);
    pthread_mutex_unlock(&m->lock);
    if (t.failed) {
        free(t.s);
        return NULL;
    }
    *size = t.len;
    return t.s;
}
