/* proxy.c - client addresses, trusted proxy networks, X-Forwarded-For and X-Real-IP. */
#include "api/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* Longer entries are not addresses: "[" + 45 characters of IPv6 + "]:65535". */
#define ENTRY_MAX 64

struct network {
    struct fv_address base; /* bits beyond prefix are zero */
    int prefix;             /* 0..32 or 0..128 */
};

struct fv_proxy_list {
    struct network *networks;
    int n;
};

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* An IPv6 address that is an IPv4-mapped one becomes that IPv4 address. */
static void normalise(struct fv_address *a)
{
    if (a->family == AF_INET6 && memcmp(a->bytes, v4_mapped_prefix, 12) == 0) {
        memmove(a->bytes, a->bytes + 12, 4);
        memset(a->bytes + 4, 0, 12);
        a->family = AF_INET;
    }
}

int fv_address_from_sockaddr(const struct sockaddr *sa, struct fv_address *out, unsigned *port)
{
    memset(out, 0, sizeof *out);
    if (port)
        *port = 0;
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->family = AF_INET;
        memcpy(out->bytes, &in->sin_addr, 4);
        if (port)
            *port = ntohs(in->sin_port);
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        out->family = AF_INET6;
        memcpy(out->bytes, &in6->sin6_addr, 16);
        if (port)
            *port = ntohs(in6->sin6_port);
        normalise(out);
        return 1;
    }
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* A port after an address: 1 to 5 digits, at most 65535. */
static int port_ok(const char *s, size_t n)
{
    if (n < 1 || n > 5)
        return 0;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 65535;
}

int fv_address_parse(const char *text, size_t n, struct fv_address *out)
{
    memset(out, 0, sizeof *out);
    while (n > 0 && is_space(*text))
        text++, n--;
    while (n > 0 && is_space(text[n - 1]))
        n--;
    if (n == 0 || n > ENTRY_MAX)
        return 0;
    char buf[ENTRY_MAX + 1];
    if (text[0] == '[') {
        /* [IPv6] or [IPv6]:port */
        const char *close = memchr(text, ']', n);
        if (!close)
            return 0;
        size_t rest = n - (size_t)(close + 1 - text);
        if (rest > 0 && !(close[1] == ':' && port_ok(close + 2, rest - 1)))
            return 0;
        size_t len = (size_t)(close - text - 1);
        memcpy(buf, text + 1, len);
        buf[len] = 0;
        if (inet_pton(AF_INET6, buf, out->bytes) != 1)
            return 0;
        out->family = AF_INET6;
        normalise(out);
        return 1;
    }
    memcpy(buf, text, n);
    buf[n] = 0;
    if (inet_pton(AF_INET, buf, out->bytes) == 1) {
        out->family = AF_INET;
        return 1;
    }
    if (inet_pton(AF_INET6, buf, out->bytes) == 1) {
        out->family = AF_INET6;
        normalise(out);
        return 1;
    }
    /* IPv4 with a port: one colon, digits after it */
    const char *colon = memchr(text, ':', n);
    size_t after = colon ? n - (size_t)(colon + 1 - text) : 0;
    if (colon && !memchr(colon + 1, ':', after) && port_ok(colon + 1, after)) {
        buf[colon - text] = 0;
        if (inet_pton(AF_INET, buf, out->bytes) == 1) {
            out->family = AF_INET;
            return 1;
        }
    }
    memset(out, 0, sizeof *out);
    return 0;
}

void fv_address_format(const struct fv_address *a, char out[FV_ADDRESS_TEXT_MAX])
{
    if (!a->family || !inet_ntop(a->family, a->bytes, out, FV_ADDRESS_TEXT_MAX))
        strcpy(out, "-");
}

int fv_address_equal(const struct fv_address *a, const struct fv_address *b)
{
    return a->family == b->family &&
           memcmp(a->bytes, b->bytes, a->family == AF_INET ? 4 : 16) == 0;
}

/* ---- lists of networks ---- */

static int in_network(const struct network *net, const struct fv_address *a)
{
    if (net->base.family != a->family)
        return 0;
    int full = net->prefix / 8, bits = net->prefix % 8;
    if (memcmp(net->base.bytes, a->bytes, (size_t)full) != 0)
        return 0;
    if (!bits)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - bits));
    return (a->bytes[full] & mask) == net->base.bytes[full];
}

/* One "ADDR[/BITS]" entry of n bytes (trimmed). */
static enum fv_status parse_network(const char *text, size_t n, struct network *net,
                                    struct fv_error *err)
{
    const char *slash = memchr(text, '/', n);
    size_t addr_len = slash ? (size_t)(slash - text) : n;
    char buf[ENTRY_MAX + 1];
    if (addr_len == 0 || addr_len > ENTRY_MAX)
        goto bad;
    memcpy(buf, text, addr_len);
    buf[addr_len] = 0;
    memset(net, 0, sizeof *net);
    int max_bits, mapped = 0;
    if (inet_pton(AF_INET, buf, net->base.bytes) == 1) {
        net->base.family = AF_INET;
        max_bits = 32;
    } else if (inet_pton(AF_INET6, buf, net->base.bytes) == 1) {
        net->base.family = AF_INET6;
        max_bits = 128;
        mapped = memcmp(net->base.bytes, v4_mapped_prefix, 12) == 0;
    } else {
        goto bad;
    }
    int prefix = max_bits;
    if (slash) {
        const char *bits = slash + 1;
        size_t bits_len = n - addr_len - 1;
        if (bits_len < 1 || bits_len > 3)
            goto bad;
        prefix = 0;
        for (size_t i = 0; i < bits_len; i++) {
            if (bits[i] < '0' || bits[i] > '9')
                goto bad;
            prefix = prefix * 10 + (bits[i] - '0');
        }
        if (prefix > max_bits)
            goto bad;
    }
    if (mapped) {
        /* ::ffff:a.b.c.d/n is the IPv4 network a.b.c.d/(n - 96), as peers are compared */
        if (prefix < 96)
            goto bad;
        normalise(&net->base);
        prefix -= 96;
    }
    net->prefix = prefix;
    /* No bits beyond the prefix: 10.0.0.1/8 is a typo for 10.0.0.0/8 or 10.0.0.1. */
    int bytes = net->base.family == AF_INET ? 4 : 16;
    for (int bit = net->prefix; bit < 8 * bytes; bit++)
        if (net->base.bytes[bit / 8] & (0x80 >> (bit % 8)))
            return fv_error_set(err, FV_ERR_FORMAT,
                                "trusted proxy '%.*s' has address bits set beyond its /%.*s "
                                "prefix",
                                (int)n, text, (int)(n - addr_len - 1), slash + 1);
    return FV_OK;
bad:
    return fv_error_set(err, FV_ERR_FORMAT,
                        "trusted proxy '%.*s' is not an IPv4 or IPv6 address or network "
                        "(ADDR or ADDR/BITS)",
                        (int)(n > 80 ? 80 : n), text);
}

enum fv_status fv_proxy_list_parse(const char *text, struct fv_proxy_list **out,
                                   struct fv_error *err)
{
    *out = NULL;
    struct fv_proxy_list *list = calloc(1, sizeof *list);
    if (!list)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    enum fv_status st = FV_OK;
    const char *p = text ? text : "";
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p) {
        int cap = 1;
        for (const char *q = p; *q; q++)
            cap += *q == ',';
        if (cap > FV_PROXY_LIST_MAX) {
            st = fv_error_set(err, FV_ERR_TOO_LARGE, "more than %d trusted proxies",
                              FV_PROXY_LIST_MAX);
            goto fail;
        }
        list->networks = calloc((size_t)cap, sizeof *list->networks);
        if (!list->networks) {
            st = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (;;) {
            size_t n = strcspn(p, ",");
            const char *s = p;
            size_t len = n;
            while (len > 0 && is_space(*s))
                s++, len--;
            while (len > 0 && is_space(s[len - 1]))
                len--;
            if (len == 0) {
                st = fv_error_set(err, FV_ERR_FORMAT, "empty entry in the trusted proxies");
                goto fail;
            }
            if ((st = parse_network(s, len, &list->networks[list->n], err)))
                goto fail;
            list->n++;
            if (!p[n])
                break;
            p += n + 1;
        }
    }
    *out = list;
    return FV_OK;
fail:
    fv_proxy_list_free(list);
    return st;
}

void fv_proxy_list_free(struct fv_proxy_list *list)
{
    if (!list)
        return;
    free(list->networks);
    free(list);
}

int fv_proxy_list_count(const struct fv_proxy_list *list)
{
    return list ? list->n : 0;
}

int fv_proxy_list_contains(const struct fv_proxy_list *list, const struct fv_address *a)
{
    if (!list || !a->family)
        return 0;
    for (int i = 0; i < list->n; i++)
        if (in_network(&list->networks[i], a))
            return 1;
    return 0;
}

/* ---- the client behind the proxies ---- */

int fv_proxy_client_address(const struct fv_proxy_list *trusted, const struct fv_address *peer,
                            const char *const *forwarded, int n, const char *real_ip,
                            struct fv_address *client)
{
    *client = *peer;
    if (!fv_proxy_list_contains(trusted, peer))
        return 0;
    int from_header = 0;
    for (int h = n - 1; h >= 0; h--) {
        const char *v = forwarded[h] ? forwarded[h] : "";
        size_t end = strlen(v);
        /* entries right to left: [start, end) between commas */
        for (;;) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            size_t len = end - start;
            const char *e = v + start;
            while (len > 0 && is_space(*e))
                e++, len--;
            if (len > 0) {
                struct fv_address a;
                if (!fv_address_parse(e, len, &a))
                    return from_header; /* nothing left of it can be believed */
                *client = a;
                from_header = 1;
                if (!fv_proxy_list_contains(trusted, &a))
                    return 1;
            }
            if (start == 0)
                break;
            end = start - 1;
        }
    }
    if (n == 0 && real_ip) {
        struct fv_address a;
        if (fv_address_parse(real_ip, strlen(real_ip), &a)) {
            *client = a;
            return 1;
        }
    }
    return from_header;
}
