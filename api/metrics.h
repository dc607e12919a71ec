/* metrics.h - request counters and latency histograms in Prometheus text format.
 *
 *   static const char *const routes[] = {"/v1/verify", "/healthz"};
 *   struct fv_metrics *m = fv_metrics_new(routes, 2);
 *   fv_metrics_request(m, 0, 200, 0.043);   // route index, -1 for no route
 *   size_t size;
 *   char *text = fv_metrics_render(m, &size);   // caller frees
 *   fv_metrics_free(m);
 *
 * Thread-safe: every update takes one mutex, which costs nothing next to a
 * face pipeline run. Route names are borrowed and must outlive the metrics.
 */
#ifndef FV_METRICS_H
#define FV_METRICS_H

#include <stddef.h>

struct fv_metrics;

/* NULL when out of memory. */
struct fv_metrics *fv_metrics_new(const char *const *route_names, int n_routes);
void fv_metrics_free(struct fv_metrics *m);

/* One finished request: its route (-1 when no route matched), HTTP status and
 * duration in seconds. */
void fv_metrics_request(struct fv_metrics *m, int route, int status, double seconds);
/* Faces the detector reported to a client. */
void fv_metrics_faces(struct fv_metrics *m, long count);
/* Requests being handled: +1 when one starts, -1 when it ends. */
void fv_metrics_in_flight(struct fv_metrics *m, int delta);
/* A request turned away with 429 because every worker was busy and the queue full. */
void fv_metrics_rejected(struct fv_metrics *m);
/* A verify whose two images ran on two workers at once. */
void fv_metrics_verify_split(struct fv_metrics *m);

/* The exposition text (malloc'd, NUL-terminated; caller frees), or NULL when
 * out of memory. */
char *fv_metrics_render(struct fv_metrics *m, size_t *size);

#endif
