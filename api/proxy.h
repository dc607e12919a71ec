/* proxy.h - client addresses, trusted reverse proxies and the client behind them.
 *
 *   struct fv_proxy_list *trusted;
 *   if (fv_proxy_list_parse("127.0.0.1, 10.0.0.0/8, ::1", &trusted, &err)) ...
 *   struct fv_address peer, client;
 *   fv_address_from_sockaddr(sa, &peer);
 *   if (fv_proxy_list_contains(trusted, &peer)) ...    // exempt from per-address limits
 *   const char *forwarded[] = {"203.0.113.7, 10.0.0.5"};
 *   fv_proxy_client_address(trusted, &peer, forwarded, 1, NULL, &client);
 *   char text[FV_ADDRESS_TEXT_MAX];
 *   fv_address_format(&client, text);                   // "203.0.113.7"
 *   fv_proxy_list_free(trusted);
 *
 * Addresses are compared as IPv4 or IPv6 bytes; an IPv4-mapped IPv6 address
 * (::ffff:192.0.2.1, what a dual-stack socket reports for an IPv4 peer) is
 * taken as the IPv4 address, so "192.0.2.1" in a list matches it.
 */
#ifndef FV_PROXY_H
#define FV_PROXY_H

#include <stdint.h>
#include <sys/socket.h>

#include "model/status.h"

#define FV_ADDRESS_TEXT_MAX 46 /* INET6_ADDRSTRLEN */
#define FV_PROXY_LIST_MAX 1024 /* entries in one list */

struct fv_address {
    int family;        /* AF_INET or AF_INET6; 0 when unknown */
    uint8_t bytes[16]; /* network order; 4 used for AF_INET */
};

/* The address of sa (port dropped), IPv4-mapped IPv6 made IPv4. 0 when sa is
 * not an IPv4 or IPv6 address (out then has family 0), else 1. Its port, in
 * host order, into *port when port is not NULL. */
int fv_address_from_sockaddr(const struct sockaddr *sa, struct fv_address *out, unsigned *port);

/* One address written by a client or a proxy: "192.0.2.1", "2001:db8::1", and,
 * as some proxies append them, with a port: "192.0.2.1:443", "[2001:db8::1]",
 * "[2001:db8::1]:443"; n bytes of text, surrounding spaces and tabs ignored.
 * 1 when it is one, 0 when not (anything else, e.g. "unknown" or a name). */
int fv_address_parse(const char *text, size_t n, struct fv_address *out);

/* The usual text form ("192.0.2.1", "2001:db8::1"); "-" when family is 0. */
void fv_address_format(const struct fv_address *a, char out[FV_ADDRESS_TEXT_MAX]);

int fv_address_equal(const struct fv_address *a, const struct fv_address *b);

struct fv_proxy_list;

/* "ADDR[/BITS], ..." (IPv4 or IPv6, BITS 0..32 or 0..128, no bits set beyond
 * them). An empty text gives an empty list. FV_ERR_FORMAT naming the entry
 * that is not an address or a network, FV_ERR_TOO_LARGE beyond
 * FV_PROXY_LIST_MAX entries. */
enum fv_status fv_proxy_list_parse(const char *text, struct fv_proxy_list **out,
                                   struct fv_error *err);
void fv_proxy_list_free(struct fv_proxy_list *list);
int fv_proxy_list_count(const struct fv_proxy_list *list);

/* 1 when a is in one of the list's networks. NULL list: 0. */
int fv_proxy_list_contains(const struct fv_proxy_list *list, const struct fv_address *a);

/* The client a request comes from. When the peer (the connection's other end)
 * is not trusted, the peer, and the headers are ignored. When it is, the
 * X-Forwarded-For values (forwarded[0..n), in the order the headers came; each
 * a comma-separated list) are read from the right: trusted proxies are
 * skipped, and the first address that is not one is the client. An entry
 * that is not an address ends the walk (what lies left of it cannot be
 * believed), as does reaching the left end; the client is then the last
 * address reached (a trusted proxy, or the peer). Empty entries are skipped.
 * Without any X-Forwarded-For value, a valid X-Real-IP (real_ip, or NULL) from
 * a trusted peer is the client. Returns 1 when the client came from a header,
 * 0 when it is the peer. */
int fv_proxy_client_address(const struct fv_proxy_list *trusted, const struct fv_address *peer,
                            const char *const *forwarded, int n, const char *real_ip,
                            struct fv_address *client);

#endif
