/* test_proxy.c - client addresses behind trusted proxies, per-address connection
 * counting and request ids (api/proxy.h, api/conn_limit.h, api/request_id.h),
 * without a server. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/conn_limit.h"
#include "api/proxy.h"
#include "api/request_id.h"

/* ---- addresses ---- */

static struct fv_address addr(const char *text)
{
    struct fv_address a;
    cr_assert(fv_address_parse(text, strlen(text), &a), "'%s' should parse", text);
    return a;
}

static const char *format(const struct fv_address *a)
{
    static char text[FV_ADDRESS_TEXT_MAX];
    fv_address_format(a, text);
    return text;
}

Test(api_proxy, address_forms)
{
    static const char *const good[][2] = {
        {"192.0.2.1", "192.0.2.1"},
        {"  192.0.2.1\t", "192.0.2.1"},
        {"192.0.2.1:443", "192.0.2.1"},
        {"2001:db8::1", "2001:db8::1"},
        {"[2001:db8::1]", "2001:db8::1"},
        {"[2001:db8::1]:8080", "2001:db8::1"},
        {"::1", "::1"},
        {"::ffff:198.51.100.7", "198.51.100.7"}, /* IPv4-mapped: the IPv4 address */
        {"[::ffff:198.51.100.7]:1", "198.51.100.7"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct fv_address a = addr(good[i][0]);
        cr_assert_str_eq(format(&a), good[i][1], "'%s'", good[i][0]);
    }
    cr_assert_eq(addr("::ffff:198.51.100.7").family, AF_INET);
    static const char *const bad[] = {
        "", "   ", "unknown", "example.com", "example.com:80", "192.0.2", "192.0.2.256",
        "192.0.2.1:", "192.0.2.1:123456", "192.0.2.1:8x", "[2001:db8::1", "[2001:db8::1]x",
        "[192.0.2.1]", "2001:db8::1:", "1.2.3.4/8", "_", "[]", "[]:80", "::1::2",
        "192.0.2.1 192.0.2.2", "0x7f.0.0.1:80", "192.0.2.1:65536",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct fv_address a;
        cr_assert_not(fv_address_parse(bad[i], strlen(bad[i]), &a), "'%s' parsed", bad[i]);
        cr_assert_eq(a.family, 0);
    }
    /* longer than any address, or with bytes no address has */
    char longer[200];
    memset(longer, '1', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    struct fv_address a;
    cr_assert_not(fv_address_parse(longer, strlen(longer), &a));
    cr_assert_not(fv_address_parse("1.2.3.4\x01", 8, &a));
    cr_assert_not(fv_address_parse("\xff\xfe::1", 5, &a));
    /* n bytes of text only: the rest of the buffer is not read */
    cr_assert(fv_address_parse("10.0.0.1XYZ", 8, &a));
    cr_assert_str_eq(format(&a), "10.0.0.1");
    struct fv_address none = {0};
    cr_assert_str_eq(format(&none), "-");
}

Test(api_proxy, sockaddr_forms)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(4242)};
    inet_pton(AF_INET, "203.0.113.5", &in.sin_addr);
    struct fv_address a;
    unsigned port;
    cr_assert(fv_address_from_sockaddr((struct sockaddr *)&in, &a, &port));
    cr_assert_str_eq(format(&a), "203.0.113.5");
    cr_assert_eq(port, 4242);
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(7)};
    inet_pton(AF_INET6, "::ffff:203.0.113.5", &in6.sin6_addr);
    cr_assert(fv_address_from_sockaddr((struct sockaddr *)&in6, &a, &port));
    cr_assert_eq(a.family, AF_INET, "a dual-stack socket's IPv4 peer is an IPv4 address");
    cr_assert(fv_address_equal(&a, &(struct fv_address){0}) == 0);
    struct fv_address b = addr("203.0.113.5");
    cr_assert(fv_address_equal(&a, &b));
    cr_assert_eq(port, 7);
    struct sockaddr other = {.sa_family = AF_UNIX};
    cr_assert_not(fv_address_from_sockaddr(&other, &a, &port));
    cr_assert_not(fv_address_from_sockaddr(NULL, &a, NULL));
}

/* ---- lists of trusted proxies ---- */

static struct fv_proxy_list *list(const char *text)
{
    struct fv_proxy_list *l = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_proxy_list_parse(text, &l, &err), FV_OK, "'%s': %s", text, err.message);
    return l;
}

static int contains(const struct fv_proxy_list *l, const char *text)
{
    struct fv_address a = addr(text);
    return fv_proxy_list_contains(l, &a);
}

Test(api_proxy, networks_match_their_addresses_only)
{
    struct fv_proxy_list *l = list(" 10.0.0.0/8, 192.168.1.128/25,127.0.0.1 ,2001:db8::/32,::1,"
                                   "172.16.0.0/12, 198.51.100.7/32, ::ffff:100.64.0.0/106");
    cr_assert_eq(fv_proxy_list_count(l), 8);
    cr_assert(contains(l, "10.0.0.0"));
    cr_assert(contains(l, "10.255.255.255"));
    cr_assert_not(contains(l, "11.0.0.0"));
    cr_assert_not(contains(l, "9.255.255.255"));
    cr_assert(contains(l, "192.168.1.128"));
    cr_assert(contains(l, "192.168.1.255"));
    cr_assert_not(contains(l, "192.168.1.127"), "outside the /25");
    cr_assert(contains(l, "127.0.0.1"));
    cr_assert_not(contains(l, "127.0.0.2"));
    cr_assert(contains(l, "::ffff:127.0.0.1"), "IPv4-mapped peers match IPv4 entries");
    cr_assert(contains(l, "2001:db8:ffff::1"));
    cr_assert_not(contains(l, "2001:db9::1"));
    cr_assert(contains(l, "::1"));
    cr_assert_not(contains(l, "::2"));
    cr_assert(contains(l, "172.31.255.1"));
    cr_assert_not(contains(l, "172.32.0.1"));
    cr_assert(contains(l, "198.51.100.7"));
    cr_assert_not(contains(l, "198.51.100.8"));
    cr_assert(contains(l, "100.127.1.1"), "::ffff:100.64.0.0/106 is 100.64.0.0/10");
    cr_assert_not(contains(l, "100.128.0.1"));
    fv_proxy_list_free(l);

    l = list("0.0.0.0/0");
    cr_assert(contains(l, "203.0.113.1"));
    cr_assert_not(contains(l, "2001:db8::1"), "an IPv4 network holds no IPv6 address");
    fv_proxy_list_free(l);
    l = list("");
    cr_assert_eq(fv_proxy_list_count(l), 0);
    cr_assert_not(contains(l, "127.0.0.1"));
    fv_proxy_list_free(l);
    cr_assert_not(fv_proxy_list_contains(NULL, &(struct fv_address){0}));
}

Test(api_proxy, bad_lists_are_refused)
{
    static const char *const bad[] = {
        "10.0.0.1/8",   /* bits beyond the prefix: a typo */
        "10.0.0.0/33",  "10.0.0.0/",  "10.0.0.0/-1", "10.0.0.0/8x", "10.0.0.0/0008",
        "::1/129",      "2001:db8::1/32", "127.0.0.1,,::1", "127.0.0.1,", ",127.0.0.1",
        "localhost",    "127.0.0.1 ::1", "::ffff:1.2.3.4/95", "[::1]", "1.2.3.4:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct fv_proxy_list *l = (struct fv_proxy_list *)1;
        struct fv_error err = {0};
        cr_assert_eq(fv_proxy_list_parse(bad[i], &l, &err), FV_ERR_FORMAT, "'%s'", bad[i]);
        cr_assert_null(l);
        cr_assert_neq(err.message[0], 0);
    }
    /* more entries than a list may hold */
    size_t n = (FV_PROXY_LIST_MAX + 1) * 16;
    char *many = malloc(n + 1), *p = many;
    for (int i = 0; i <= FV_PROXY_LIST_MAX; i++)
        p += sprintf(p, "%s10.%d.%d.1", i ? "," : "", i / 250, i % 250);
    struct fv_proxy_list *l;
    struct fv_error err = {0};
    cr_assert_eq(fv_proxy_list_parse(many, &l, &err), FV_ERR_TOO_LARGE);
    free(many);
}

/* ---- the client behind the proxies ---- */

static const char *client_of(const struct fv_proxy_list *l, const char *peer,
                             const char *const *forwarded, int n, const char *real_ip,
                             int *from_header)
{
    struct fv_address p = addr(peer), c;
    *from_header = fv_proxy_client_address(l, &p, forwarded, n, real_ip, &c);
    return format(&c);
}

Test(api_proxy, client_from_forwarded_headers)
{
    struct fv_proxy_list *l = list("127.0.0.1, 10.0.0.0/8, 2001:db8::/64");
    int h;
    const char *one[] = {"203.0.113.7"};
    cr_assert_str_eq(client_of(l, "127.0.0.1", one, 1, NULL, &h), "203.0.113.7");
    cr_assert(h);
    /* an untrusted peer: its headers are ignored */
    cr_assert_str_eq(client_of(l, "198.51.100.1", one, 1, "192.0.2.9", &h), "198.51.100.1");
    cr_assert_not(h);
    cr_assert_str_eq(client_of(NULL, "127.0.0.1", one, 1, NULL, &h), "127.0.0.1");
    /* right to left, trusted hops skipped; what the client wrote on the left is not read */
    const char *chain[] = {"1.1.1.1, 203.0.113.7, 10.1.2.3, 10.0.0.9"};
    cr_assert_str_eq(client_of(l, "127.0.0.1", chain, 1, NULL, &h), "203.0.113.7");
    /* several headers count as one list, in order */
    const char *split[] = {"1.1.1.1, 203.0.113.7", "10.1.2.3", " 10.0.0.9 "};
    cr_assert_str_eq(client_of(l, "127.0.0.1", split, 3, NULL, &h), "203.0.113.7");
    /* every hop trusted: the left-most */
    const char *inner[] = {"10.0.0.5, 127.0.0.1"};
    cr_assert_str_eq(client_of(l, "127.0.0.1", inner, 1, NULL, &h), "10.0.0.5");
    cr_assert(h);
    /* IPv6 and ports, as some proxies write them */
    const char *v6[] = {"[2001:db8:1::5]:443, 2001:db8::77"};
    cr_assert_str_eq(client_of(l, "2001:db8::1", v6, 1, NULL, &h), "2001:db8:1::5");
    const char *v4port[] = {"203.0.113.8:55000"};
    cr_assert_str_eq(client_of(l, "127.0.0.1", v4port, 1, NULL, &h), "203.0.113.8");
    /* empty entries are skipped */
    const char *gaps[] = {" , 203.0.113.7,, ,", ""};
    cr_assert_str_eq(client_of(l, "127.0.0.1", gaps, 2, NULL, &h), "203.0.113.7");
    /* garbage ends the walk: the last address reached (a trusted hop, or the peer) */
    const char *garbage[] = {"203.0.113.7, not-an-address, 10.0.0.9"};
    cr_assert_str_eq(client_of(l, "127.0.0.1", garbage, 1, NULL, &h), "10.0.0.9");
    const char *garbage_last[] = {"203.0.113.7, <script>"};
    cr_assert_str_eq(client_of(l, "127.0.0.1", garbage_last, 1, NULL, &h), "127.0.0.1");
    cr_assert_not(h);
    /* X-Real-IP: from a trusted peer, only when there is no X-Forwarded-For */
    cr_assert_str_eq(client_of(l, "127.0.0.1", NULL, 0, "192.0.2.9", &h), "192.0.2.9");
    cr_assert(h);
    cr_assert_str_eq(client_of(l, "127.0.0.1", one, 1, "192.0.2.9", &h), "203.0.113.7");
    cr_assert_str_eq(client_of(l, "127.0.0.1", NULL, 0, "junk", &h), "127.0.0.1");
    cr_assert_not(h);
    cr_assert_str_eq(client_of(l, "127.0.0.1", NULL, 0, NULL, &h), "127.0.0.1");
    fv_proxy_list_free(l);
}

Test(api_proxy, hostile_forwarded_headers)
{
    struct fv_proxy_list *l = list("127.0.0.1");
    int h;
    /* 64 KiB of commas, of one long token, of random bytes, of many valid entries */
    size_t n = 64 << 10;
    char *text = malloc(n + 1);
    memset(text, ',', n);
    text[n] = 0;
    const char *v[] = {text};
    cr_assert_str_eq(client_of(l, "127.0.0.1", v, 1, NULL, &h), "127.0.0.1");
    memset(text, '9', n);
    cr_assert_str_eq(client_of(l, "127.0.0.1", v, 1, NULL, &h), "127.0.0.1");
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        text[i] = (char)(1 + (x >> 16) % 255); /* no NUL */
    }
    client_of(l, "127.0.0.1", v, 1, NULL, &h); /* anything, as long as nothing breaks */
    char *p = text;
    for (int i = 0; i < 3000; i++)
        p += sprintf(p, "%s127.0.0.1", i ? "," : "");
    strcpy(p, ", 203.0.113.99");
    cr_assert_str_eq(client_of(l, "127.0.0.1", v, 1, NULL, &h), "203.0.113.99");
    free(text);
    fv_proxy_list_free(l);
}

/* ---- per-address connection counting ---- */

Test(api_conn_limit, counts_open_connections_per_address)
{
    struct fv_conn_limit *l = fv_conn_limit_new(3, 16);
    cr_assert_not_null(l);
    struct fv_address a = addr("192.0.2.1"), b = addr("2001:db8::1");
    void *slots[3];
    for (unsigned i = 0; i < 3; i++) {
        cr_assert(fv_conn_limit_admit(l, &a, 1000 + i, 0.0));
        slots[i] = fv_conn_limit_started(l, &a, 1000 + i);
        cr_assert_not_null(slots[i]);
    }
    cr_assert_eq(fv_conn_limit_open(l, &a), 3);
    cr_assert_not(fv_conn_limit_admit(l, &a, 2000, 0.0), "a fourth from the same address");
    cr_assert(fv_conn_limit_admit(l, &b, 2000, 0.0), "another address has its own count");
    fv_conn_limit_closed(l, fv_conn_limit_started(l, &b, 2000));
    cr_assert_eq(fv_conn_limit_open(l, &b), 0);
    fv_conn_limit_closed(l, slots[1]);
    cr_assert_eq(fv_conn_limit_open(l, &a), 2);
    cr_assert(fv_conn_limit_admit(l, &a, 2001, 0.0), "room again once one closed");
    cr_assert_not(fv_conn_limit_admit(l, &a, 2002, 0.0), "the reservation holds the place");
    slots[1] = fv_conn_limit_started(l, &a, 2001);
    for (int i = 0; i < 3; i++)
        fv_conn_limit_closed(l, slots[i]);
    cr_assert_eq(fv_conn_limit_open(l, &a), 0);
    fv_conn_limit_closed(l, NULL);
    fv_conn_limit_free(l);
    fv_conn_limit_free(NULL);
    cr_assert_null(fv_conn_limit_new(0, 16));
}

Test(api_conn_limit, reservations_that_never_start_lapse)
{
    /* libmicrohttpd may drop a connection its accept policy let in without
     * telling: the place it reserved must not stay taken. */
    struct fv_conn_limit *l = fv_conn_limit_new(2, 16);
    struct fv_address a = addr("192.0.2.1");
    cr_assert(fv_conn_limit_admit(l, &a, 1, 10.0));
    cr_assert(fv_conn_limit_admit(l, &a, 2, 10.0));
    cr_assert_not(fv_conn_limit_admit(l, &a, 3, 10.5));
    cr_assert(fv_conn_limit_admit(l, &a, 3, 10.0 + FV_CONN_LIMIT_RESERVE_S + 0.1));
    /* a new reservation from a port still reserved replaces the old one */
    cr_assert(fv_conn_limit_admit(l, &a, 3, 20.0));
    cr_assert(fv_conn_limit_admit(l, &a, 3, 20.1));
    cr_assert(fv_conn_limit_admit(l, &a, 4, 20.1));
    cr_assert_not(fv_conn_limit_admit(l, &a, 5, 20.1));
    /* a connection that starts after its reservation lapsed is still counted */
    void *late = fv_conn_limit_started(l, &a, 9);
    cr_assert_eq(fv_conn_limit_open(l, &a), 1);
    fv_conn_limit_closed(l, late);
    fv_conn_limit_free(l);
}

struct churn {
    struct fv_conn_limit *limit;
    int thread;
    int admitted;
};

static void *churn_main(void *arg)
{
    struct churn *c = arg;
    char text[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(text, sizeof text, "10.0.%d.%d", i % 7, c->thread);
        struct fv_address a = addr(text);
        unsigned port = (unsigned)(c->thread * 20000 + i);
        if (!fv_conn_limit_admit(c->limit, &a, port, 0.0))
            continue;
        c->admitted++;
        fv_conn_limit_closed(c->limit, fv_conn_limit_started(c->limit, &a, port));
    }
    return NULL;
}

Test(api_conn_limit, threads_leave_nothing_behind)
{
    struct fv_conn_limit *l = fv_conn_limit_new(1, 4);
    enum { THREADS = 4 };
    struct churn c[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        c[i] = (struct churn){l, i, 0};
        pthread_create(&t[i], NULL, churn_main, &c[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(c[i].admitted, 20000, "thread %d's own addresses were never full", i);
    }
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < 7; k++) {
            char text[32];
            snprintf(text, sizeof text, "10.0.%d.%d", k, i);
            struct fv_address a = addr(text);
            cr_assert_eq(fv_conn_limit_open(l, &a), 0);
            cr_assert(fv_conn_limit_admit(l, &a, 1, 0.0));
        }
    fv_conn_limit_free(l);
}

/* ---- request ids ---- */

Test(api_request_id, given_ids_are_checked)
{
    cr_assert(fv_request_id_valid("abc-123"));
    cr_assert(fv_request_id_valid("!~"));
    char max[FV_REQUEST_ID_MAX + 2];
    memset(max, 'x', sizeof max);
    max[FV_REQUEST_ID_MAX] = 0;
    cr_assert(fv_request_id_valid(max));
    max[FV_REQUEST_ID_MAX] = 'x';
    max[FV_REQUEST_ID_MAX + 1] = 0;
    cr_assert_not(fv_request_id_valid(max), "129 characters");
    static const char *const bad[] = {"", "a b", "tab\there", "new\nline", "\x7f", "caf\xc3\xa9",
                                      "\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(fv_request_id_valid(bad[i]), "'%s'", bad[i]);
    cr_assert_not(fv_request_id_valid(NULL));

    struct fv_request_ids ids;
    fv_request_ids_init(&ids);
    char out[FV_REQUEST_ID_MAX + 1];
    fv_request_id_take(&ids, "client-chosen_42", out);
    cr_assert_str_eq(out, "client-chosen_42");
    fv_request_id_take(&ids, "has space", out);
    cr_assert_str_neq(out, "has space");
    cr_assert(fv_request_id_valid(out));
}

Test(api_request_id, new_ids_are_unique)
{
    struct fv_request_ids ids, other;
    fv_request_ids_init(&ids);
    fv_request_ids_init(&other);
    char a[FV_REQUEST_ID_MAX + 1], b[FV_REQUEST_ID_MAX + 1];
    fv_request_id_take(&ids, NULL, a);
    cr_assert(fv_request_id_valid(a));
    cr_assert_eq(strlen(a), 33);
    for (int i = 0; i < 1000; i++) {
        fv_request_id_take(&ids, NULL, b);
        cr_assert_str_neq(a, b);
    }
    fv_request_id_take(&other, NULL, b);
    cr_assert_str_neq(a, b, "another server draws another prefix");
}
