/* conn_limit.h - open connections per client address, counted by the server
 * itself (not by libmicrohttpd) so that trusted proxies can be left out.
 *
 *   struct fv_conn_limit *l = fv_conn_limit_new(32, 256);
 *   // accept policy, any thread: may this peer open one more connection?
 *   if (!fv_conn_limit_admit(l, &peer, port, now_s)) refuse();
 *   // once the connection has really started:
 *   void *slot = fv_conn_limit_started(l, &peer, port);
 *   // when it closes:
 *   fv_conn_limit_closed(l, slot);
 *   fv_conn_limit_free(l);
 *
 * libmicrohttpd asks the accept policy before it knows whether it can keep the
 * connection, and may still drop it afterwards (its global limit, out of
 * memory) without telling. So admit reserves a place under the peer's address
 * and port, started turns that reservation into an open connection, and a
 * reservation that no connection claims within FV_CONN_LIMIT_RESERVE_S lapses:
 * the count stays exact for connections that start, and one that never did
 * cannot hold a place for good. Thread-safe (one mutex).
 */
#ifndef FV_CONN_LIMIT_H
#define FV_CONN_LIMIT_H

#include "api/proxy.h"

#define FV_CONN_LIMIT_RESERVE_S 2.0

struct fv_conn_limit;

/* per_address: open connections (with reservations) one address may have, at
 * least 1; addresses: about how many distinct addresses to expect (sizes the
 * table). NULL when out of memory. */
struct fv_conn_limit *fv_conn_limit_new(unsigned per_address, unsigned addresses);
void fv_conn_limit_free(struct fv_conn_limit *l);

/* 1 and a reservation for (a, port) when a has fewer than per_address open
 * connections and reservations; 0 when it is at its limit (or out of memory).
 * now_s: a monotonic clock in seconds, against which reservations lapse. */
int fv_conn_limit_admit(struct fv_conn_limit *l, const struct fv_address *a, unsigned port,
                        double now_s);

/* The connection from (a, port) has started: its reservation (if it is still
 * there) becomes an open connection. Returns the slot to give to
 * fv_conn_limit_closed; NULL when out of memory (the connection is then not
 * counted, and closing NULL does nothing). */
void *fv_conn_limit_started(struct fv_conn_limit *l, const struct fv_address *a, unsigned port);

/* The connection that slot stands for has closed. NULL is fine. */
void fv_conn_limit_closed(struct fv_conn_limit *l, void *slot);

/* Open connections from a (reservations not counted). */
unsigned fv_conn_limit_open(struct fv_conn_limit *l, const struct fv_address *a);

#endif
