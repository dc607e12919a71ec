/* test_server_tier.c - `facever serve` behind a reverse proxy, end to end: trusted
 * proxies and the per-address limit, the admin listener, X-Forwarded-For in the
 * access log, X-Request-Id, the drain on SIGTERM, and verify's two images on two
 * workers. Servers are started with tests/server_harness.h.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/request_id.h"
#include "tests/server_harness.h"

TestSuite(server_tier, .fini = harness_kill_servers);

/* ---- raw connections ---- */

/* Reads one answer's head from sock (up to timeout_s): its status, 0 when the
 * server closed the connection (or nothing came). The head goes into head. */
static int read_head(int sock, double timeout_s, char *head, size_t cap)
{
    struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - (int)timeout_s) * 1e6)};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t got = 0;
    head[0] = 0;
    while (got + 1 < cap && !strstr(head, "\r\n\r\n")) {
        ssize_t n = recv(sock, head + got, cap - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        head[got] = 0;
    }
    return strncmp(head, "HTTP/1.1 ", 9) == 0 ? atoi(head + 9) : 0;
}

/* A connection that has sent all of a GET but its last blank line: the server
 * holds it open, waiting for the rest. */
static int hold(const struct server *s, const char *path)
{
    char head[256];
    snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: x\r\n", path);
    return harness_send_partial(s, head);
}

/* Sends the rest of a held request: its answer's status, 0 when the server had
 * refused the connection. The connection stays open (keep-alive). */
static int finish(int sock)
{
    char head[2048];
    if (send(sock, "\r\n", 2, MSG_NOSIGNAL) != 2)
        return 0;
    return read_head(sock, 5.0, head, sizeof head);
}

/* How many of n connections held from this address the server serves. */
static int served_of(const struct server *s, int n, int *socks)
{
    for (int i = 0; i < n; i++)
        socks[i] = hold(s, "/healthz");
    int served = 0;
    for (int i = 0; i < n; i++)
        served += finish(socks[i]) == 200;
    return served;
}

static void close_all(int *socks, int n)
{
    for (int i = 0; i < n; i++)
        close(socks[i]);
}

/* ---- the log ---- */

/* The access log line of the request with this id (a copy; free it), NULL when absent. */
static char *log_line(const struct server *s, const char *id)
{
    char key[256];
    snprintf(key, sizeof key, " id=%s", id);
    char *log = harness_read_log(s), *line = NULL;
    for (char *at = strstr(log, key); at; at = strstr(at + 1, key)) {
        char end = at[strlen(key)];
        if (end != '\n' && end != ' ')
            continue; /* a longer id */
        char *start = at;
        while (start > log && start[-1] != '\n')
            start--;
        line = strndup(start, (size_t)(strchr(at, '\n') - start));
        break;
    }
    free(log);
    return line;
}

/* GET path with one extra header and an X-Request-Id; asserts status. */
static void get_with(const struct server *s, const char *path, const char *header, const char *id,
                     long status)
{
    char id_header[256];
    snprintf(id_header, sizeof id_header, "X-Request-Id: %s", id);
    const char *headers[] = {id_header, header, NULL};
    struct resp r = harness_http(s, "GET", path, NULL, NULL, 0, headers);
    cr_assert_eq(r.status, status, "%s: %ld %s", id, r.status, r.body ? r.body : "");
    harness_resp_free(&r);
}

/* Asserts that the request with this id was logged as coming from client. */
static void assert_logged_client(const struct server *s, const char *id, const char *client)
{
    char *line = NULL;
    /* the line is written when the request completes, just after the answer */
    for (int i = 0; i < 100 && !(line = log_line(s, id)); i++)
        usleep(10000);
    cr_assert_not_null(line, "no log line for %s", id);
    char want[128];
    snprintf(want, sizeof want, "facever: %s GET ", client);
    cr_assert(strncmp(line, want, strlen(want)) == 0, "%s: '%s', expected client %s", id, line,
              client);
    free(line);
}

/* ---- trusted proxies and the per-address limit ---- */

enum { HELD = 40 };

Test(server_tier, trusted_proxy_is_exempt_from_the_per_address_limit, .timeout = 60)
{
    const char *const extra[] = {"--max-connections-per-ip", "4", "--trusted-proxies",
                                 "127.0.0.1", NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    int socks[HELD];
    int served = served_of(&s, HELD, socks);
    cr_assert_eq(served, HELD, "%d of %d connections from a trusted proxy served", served, HELD);
    /* and while they are all open, the proxy's health checks get through */
    struct resp r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 200);
    harness_resp_free(&r);
    close_all(socks, HELD);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(server_tier, untrusted_address_is_limited, .timeout = 60)
{
    /* a list that does not hold the peer changes nothing for it */
    const char *const extra[] = {"--max-connections-per-ip", "4", "--trusted-proxies",
                                 "10.0.0.0/8, ::1", NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    int socks[HELD];
    int served = served_of(&s, HELD, socks);
    cr_assert_eq(served, 4, "%d of %d connections from one untrusted address served", served,
                 HELD);
    close_all(socks, HELD);
    /* the refused ones held no place, and the closed ones give theirs back */
    int again = 0;
    for (double deadline = harness_now_s() + 5; harness_now_s() < deadline; usleep(100000)) {
        again = served_of(&s, 4, socks);
        close_all(socks, 4);
        if (again == 4)
            break;
    }
    cr_assert_eq(again, 4, "places were not given back: %d of 4 served", again);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(server_tier, bad_trusted_proxies_are_refused_at_start)
{
    harness_skip_without_assets("tests/data/sample1.jpg");
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s serve --port 0 --trusted-proxies '10.0.0.1/8' 2>&1 | grep -q 'bits set'",
             harness_facever_path());
    cr_assert_eq(system(cmd), 0, "a network with host bits set is refused, naming the problem");
    snprintf(cmd, sizeof cmd, "%s serve --port 0 --trusted-proxies 'proxy.local' >/dev/null 2>&1",
             harness_facever_path());
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %d", status);
    /* the environment variable is read like the flag */
    snprintf(cmd, sizeof cmd,
             "FACEVER_TRUSTED_PROXIES='127.0.0.1,,::1' %s serve --port 0 2>&1 | grep -q 'empty'",
             harness_facever_path());
    cr_assert_eq(system(cmd), 0, "$FACEVER_TRUSTED_PROXIES is checked too");
}

/* ---- the admin listener ---- */

Test(server_tier, admin_port_answers_while_the_public_listener_is_full, .timeout = 60)
{
    enum { MAX = 4 };
    const char *const extra[] = {"--max-connections", "4", "--admin-port", "0", NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    cr_assert_gt(s.admin_port, 0, "no admin port in the log");
    cr_assert_neq(s.admin_port, s.port);
    int socks[MAX];
    cr_assert_eq(served_of(&s, MAX, socks), MAX);
    /* the public listener is at its limit: a new client gets nothing */
    struct resp r = harness_http_port(s.port, "GET", "/healthz", NULL, NULL, 0, NULL, 1.5);
    cr_assert_eq(r.status, 0, "public listener answered %ld beyond --max-connections", r.status);
    harness_resp_free(&r);
    /* the admin one answers health, readiness and metrics, and nothing else */
    static const char *const open[] = {"/healthz", "/readyz", "/metrics"};
    for (int i = 0; i < 3; i++) {
        r = harness_http_port(s.admin_port, "GET", open[i], NULL, NULL, 0, NULL, 5);
        cr_assert_eq(r.status, 200, "admin %s: %ld", open[i], r.status);
        cr_assert_lt(r.seconds, 1.0);
        cr_assert_neq(r.request_id[0], 0, "admin answers carry X-Request-Id too");
        if (i == 2)
            cr_assert_not_null(strstr(r.body, "facever_requests_total{route=\"/healthz\""));
        harness_resp_free(&r);
    }
    r = harness_http_port(s.admin_port, "GET", "/v1/models", NULL, NULL, 0, NULL, 5);
    cr_assert_str_eq(harness_error_code(&r, 404, NULL), "not_found");
    harness_resp_free(&r);
    r = harness_http_port(s.admin_port, "POST", "/v1/verify", "application/json", "{}", 2, NULL,
                          5);
    cr_assert_eq(r.status, 404);
    harness_resp_free(&r);
    close_all(socks, MAX);
    for (double deadline = harness_now_s() + 5; harness_now_s() < deadline; usleep(50000)) {
        r = harness_http_port(s.port, "GET", "/healthz", NULL, NULL, 0, NULL, 1);
        long status = r.status;
        harness_resp_free(&r);
        if (status == 200)
            break;
    }
    r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 200, "the public listener serves again once connections closed");
    harness_resp_free(&r);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

/* ---- X-Forwarded-For, X-Real-IP and X-Request-Id ---- */

Test(server_tier, forwarded_for_from_a_trusted_proxy_names_the_client, .timeout = 60)
{
    const char *const extra[] = {"--trusted-proxies", "127.0.0.1,10.0.0.0/8", NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    get_with(&s, "/healthz", "X-Forwarded-For: 198.51.100.23", "xff-one", 200);
    assert_logged_client(&s, "xff-one", "198.51.100.23");
    /* right-most address that is not a trusted proxy; the left part is the client's to forge */
    get_with(&s, "/healthz", "X-Forwarded-For: 6.6.6.6, 203.0.113.9, 10.1.1.1", "xff-chain", 200);
    assert_logged_client(&s, "xff-chain", "203.0.113.9");
    get_with(&s, "/healthz", "X-Forwarded-For: [2001:db8::5]:443", "xff-v6", 200);
    assert_logged_client(&s, "xff-v6", "2001:db8::5");
    get_with(&s, "/healthz", "X-Real-IP: 192.0.2.44", "real-ip", 200);
    assert_logged_client(&s, "real-ip", "192.0.2.44");
    /* an entry that is not an address: nothing left of it is believed */
    get_with(&s, "/healthz", "X-Forwarded-For: 203.0.113.7, <script>alert(1)</script>", "xff-bad",
             200);
    assert_logged_client(&s, "xff-bad", "127.0.0.1");
    /* errors are logged with the client too */
    get_with(&s, "/nothing", "X-Forwarded-For: 198.51.100.24", "xff-404", 404);
    assert_logged_client(&s, "xff-404", "198.51.100.24");
    /* twenty X-Forwarded-For headers: the last one is the nearest hop */
    const char *many[24];
    char lines[20][64];
    for (int i = 0; i < 20; i++) {
        snprintf(lines[i], sizeof lines[i], "X-Forwarded-For: 192.0.2.%d", i + 1);
        many[i] = lines[i];
    }
    many[20] = "X-Request-Id: xff-many";
    many[21] = NULL;
    struct resp r = harness_http(&s, "GET", "/healthz", NULL, NULL, 0, many);
    cr_assert_eq(r.status, 200);
    harness_resp_free(&r);
    assert_logged_client(&s, "xff-many", "192.0.2.20");

    /* hostile headers: 16 KiB of junk, binary bytes; answered or refused, never a crash */
    size_t n = 16 << 10;
    char *junk = malloc(n + 64);
    strcpy(junk, "X-Forwarded-For: ");
    uint32_t x = 7;
    for (size_t i = strlen(junk); i < n; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (char)(0x21 + (x >> 16) % 94); /* printable, commas among them */
    }
    junk[n] = 0;
    get_with(&s, "/healthz", junk, "xff-junk", 200);
    assert_logged_client(&s, "xff-junk", "127.0.0.1");
    memset(junk + 17, ',', n - 17);
    get_with(&s, "/healthz", junk, "xff-commas", 200);
    assert_logged_client(&s, "xff-commas", "127.0.0.1");
    free(junk);
    int sock = harness_send_partial(&s, "GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                        "X-Forwarded-For: \x01\xff\x7f,,,[::1]::::, 999.1.1.1\r\n"
                                        "X-Real-IP: \xc3\xa9\r\n"
                                        "X-Request-Id: \x01\x02\r\nConnection: close\r\n\r\n");
    char head[2048];
    int status = read_head(sock, 5, head, sizeof head);
    cr_assert(status == 200 || status == 400 || status == 0, "binary headers: %d", status);
    close(sock);
    r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 200, "the server survives hostile headers");
    harness_resp_free(&r);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(server_tier, forwarded_for_from_an_untrusted_peer_is_ignored, .timeout = 30)
{
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", NULL);
    get_with(&s, "/healthz", "X-Forwarded-For: 198.51.100.23", "untrusted-xff", 200);
    assert_logged_client(&s, "untrusted-xff", "127.0.0.1");
    get_with(&s, "/healthz", "X-Real-IP: 198.51.100.23", "untrusted-real", 200);
    assert_logged_client(&s, "untrusted-real", "127.0.0.1");
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(server_tier, request_ids_are_echoed_generated_and_logged, .timeout = 30)
{
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", NULL);
    /* absent: a new one each time, in the answer and the log */
    struct resp a = harness_get(&s, "/healthz"), b = harness_get(&s, "/healthz");
    cr_assert(fv_request_id_valid(a.request_id), "'%s'", a.request_id);
    cr_assert(fv_request_id_valid(b.request_id));
    cr_assert_str_neq(a.request_id, b.request_id);
    char *line = log_line(&s, a.request_id);
    for (int i = 0; i < 100 && !line; i++, usleep(10000))
        line = log_line(&s, a.request_id);
    cr_assert_not_null(line, "generated id %s not logged", a.request_id);
    cr_assert_not_null(strstr(line, "GET /healthz 200 "), "%s", line);
    free(line);
    harness_resp_free(&a);
    harness_resp_free(&b);
    /* sane: echoed and logged, on every kind of answer */
    struct {
        const char *method, *path, *body;
        long status;
    } cases[] = {
        {"GET", "/healthz", NULL, 200},
        {"GET", "/nowhere", NULL, 404},
        {"GET", "/v1/verify", NULL, 405},
        {"POST", "/v1/verify", "{\"image1\": ", 400},
        {"POST", "/v1/verify", "{\"image1\": \"AAAA\"}", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char id[64], header[96];
        snprintf(id, sizeof id, "trace-%zu_AZ.az~!", i);
        snprintf(header, sizeof header, "X-Request-Id: %s", id);
        const char *headers[] = {header, NULL};
        struct resp r = harness_http(&s, cases[i].method, cases[i].path,
                                     cases[i].body ? "application/json" : NULL, cases[i].body,
                                     cases[i].body ? strlen(cases[i].body) : 0, headers);
        cr_assert_eq(r.status, cases[i].status, "%s %s: %ld", cases[i].method, cases[i].path,
                     r.status);
        cr_assert_str_eq(r.request_id, id, "%s %s", cases[i].method, cases[i].path);
        harness_resp_free(&r);
        line = NULL;
        for (int k = 0; k < 100 && !(line = log_line(&s, id)); k++)
            usleep(10000);
        cr_assert_not_null(line, "%s not logged", id);
        free(line);
    }
    /* not sane: replaced */
    char longer[FV_REQUEST_ID_MAX + 40] = "X-Request-Id: ";
    memset(longer + strlen(longer), 'q', FV_REQUEST_ID_MAX + 1);
    const char *const insane[] = {"X-Request-Id: has space", longer};
    for (int i = 0; i < 2; i++) {
        const char *headers[] = {insane[i], NULL};
        struct resp r = harness_http(&s, "GET", "/healthz", NULL, NULL, 0, headers);
        cr_assert_eq(r.status, 200);
        cr_assert(fv_request_id_valid(r.request_id));
        cr_assert_eq(strchr(r.request_id, 'q'), NULL, "%s", r.request_id);
        cr_assert_null(strstr(r.request_id, "has"));
        harness_resp_free(&r);
    }
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

/* ---- drain on SIGTERM ---- */

struct load {
    const struct server *s;
    const char *body;
    double until_s; /* keep sending until then, or until the server refuses */
    int ok, refused, other;
    long other_status;
};

static void *load_main(void *arg)
{
    struct load *l = arg;
    while (harness_now_s() < l->until_s) {
        struct resp r = harness_http(l->s, "POST", "/v1/verify", "application/json", l->body,
                                     strlen(l->body), NULL);
        long status = r.status;
        harness_resp_free(&r);
        if (status == 200) {
            l->ok++;
        } else if (status == 0) {
            l->refused++;
            break; /* the listener has closed */
        } else {
            l->other++;
            l->other_status = status;
        }
    }
    return NULL;
}

/* The number after `what` in the log, -1 when absent. */
static long log_number_after(const struct server *s, const char *what)
{
    char *log = harness_read_log(s);
    const char *at = strstr(log, what);
    long n = at ? atol(at + strlen(what)) : -1;
    free(log);
    return n;
}

Test(server_tier, sigterm_drains_then_stops, .timeout = 90)
{
    enum { DRAIN = 3, CLIENTS = 4 };
    const char *const extra[] = {"--drain-seconds", "3", NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    struct samples t = {0};
    harness_samples_load(&s, &t);
    cJSON *body = harness_verify_body(&t.face_a, &t.face_a2);
    char *text = cJSON_PrintUnformatted(body);
    struct resp r = harness_http(&s, "POST", "/v1/verify", "application/json", text, strlen(text),
                                 NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_neq(r.connection, "close", "keep-alive before the drain");
    harness_resp_free(&r);
    /* a keep-alive connection opened before the drain */
    int sock = hold(&s, "/healthz");
    cr_assert_eq(finish(sock), 200);

    double t0 = harness_now_s();
    kill(s.pid, SIGTERM);
    r = harness_get(&s, "/readyz");
    for (int i = 0; i < 50 && r.status == 200; i++) {
        harness_resp_free(&r);
        usleep(20000);
        r = harness_get(&s, "/readyz");
    }
    cr_assert_str_eq(harness_error_code(&r, 503, NULL), "draining");
    cr_assert_lt(harness_now_s() - t0, 1.0, "/readyz turned 503 only after %.2f s",
                 harness_now_s() - t0);
    cr_assert_str_eq(r.connection, "close");
    harness_resp_free(&r);
    r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 200, "alive while draining");
    cr_assert_str_eq(r.connection, "close");
    harness_resp_free(&r);
    r = harness_http(&s, "POST", "/v1/verify", "application/json", text, strlen(text), NULL);
    cr_assert_eq(r.status, 200, "verify served while draining: %ld", r.status);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "match")));
    cr_assert_str_eq(r.connection, "close");
    harness_resp_free(&r);
    /* the old keep-alive connection: its next answer says close, and it is closed */
    char head[2048];
    cr_assert_eq(send(sock, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35, MSG_NOSIGNAL), 35);
    cr_assert_eq(read_head(sock, 5, head, sizeof head), 200);
    cr_assert_not_null(strcasestr(head, "\r\nConnection: close\r\n"), "%s", head);
    char byte;
    struct timeval tv = {5, 0};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t more;
    while ((more = recv(sock, &byte, 1, 0)) > 0)
        ; /* the body */
    cr_assert_eq(more, 0, "the server closes it (errno %d)", errno);
    close(sock);

    /* clients keep sending across the end of the drain: whatever got in is answered */
    struct load loads[CLIENTS];
    pthread_t threads[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        loads[i] = (struct load){&s, text, t0 + DRAIN + 5, 0, 0, 0, 0};
        pthread_create(&threads[i], NULL, load_main, &loads[i]);
    }
    int status = harness_server_wait(&s, DRAIN + 30 - (harness_now_s() - t0));
    double exited = harness_now_s() - t0;
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(threads[i], NULL);
    cr_assert_neq(status, -2, "facever serve did not exit after its drain");
    cr_assert_eq(status, 0, "exit status %d", status);
    cr_assert_geq(exited, DRAIN - 0.2, "exited %.2f s after SIGTERM, drain is %d s", exited,
                  DRAIN);
    cr_assert_lt(exited, DRAIN + 10.0, "exited %.2f s after SIGTERM", exited);
    int ok = 0;
    for (int i = 0; i < CLIENTS; i++) {
        cr_assert_eq(loads[i].other, 0, "client %d got %ld", i, loads[i].other_status);
        ok += loads[i].ok;
    }
    cr_assert_gt(ok, 0);
    long in_flight = log_number_after(&s, "closing the listener, finishing ");
    cr_assert_geq(in_flight, 1, "verifies were in flight when the listener closed: %ld",
                  in_flight);
    cr_log_info("drain: %d verifies answered, %ld in flight at the end, exit after %.2f s", ok,
                in_flight, exited);
    char *log = harness_read_log(&s);
    cr_assert_not_null(strstr(log, "SIGTERM received, draining for 3 s"), "%s", log);
    cr_assert_not_null(strstr(log, "drain over after 3 s"), "%s", log);
    cr_assert_not_null(strstr(log, "facever: stopped"), "%s", log);
    cr_assert_lt(strstr(log, "drain over") - log, strstr(log, "closing the listener") - log);
    free(log);
    unlink(s.log_path);
    free(text);
    cJSON_Delete(body);
    harness_samples_free(&t);
}

Test(server_tier, second_signal_ends_the_drain, .timeout = 60)
{
    const char *const extra[] = {"--drain-seconds", "60", NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    kill(s.pid, SIGTERM);
    struct resp r = harness_get(&s, "/readyz");
    for (int i = 0; i < 50 && r.status == 200; i++) {
        harness_resp_free(&r);
        usleep(20000);
        r = harness_get(&s, "/readyz");
    }
    cr_assert_eq(r.status, 503);
    harness_resp_free(&r);
    double t0 = harness_now_s();
    kill(s.pid, SIGINT);
    int status = harness_server_wait(&s, 20);
    cr_assert_neq(status, -2, "still draining after a second signal");
    cr_assert_eq(status, 0, "exit status %d", status);
    cr_assert_lt(harness_now_s() - t0, 5.0);
    char *log = harness_read_log(&s);
    cr_assert_not_null(strstr(log, "SIGINT received again, ending the drain early"), "%s", log);
    free(log);
    unlink(s.log_path);
}

/* ---- verify on two workers ---- */

/* /v1/verify of body: its answer without the timings. */
static cJSON *verify_answer(const struct server *s, const char *body)
{
    struct resp r = harness_http(s, "POST", "/v1/verify", "application/json", body, strlen(body),
                                 NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cJSON *json = r.json;
    r.json = NULL;
    harness_resp_free(&r);
    cJSON_DeleteItemFromObject(json, "timings_ms");
    return json;
}

static long split_count(const struct server *s)
{
    struct resp r = harness_get(s, "/metrics");
    cr_assert_eq(r.status, 200);
    const char *at = strstr(r.body, "\nfacever_verify_split_total ");
    cr_assert_not_null(at, "no facever_verify_split_total in /metrics");
    long n = atol(at + strlen("\nfacever_verify_split_total "));
    harness_resp_free(&r);
    return n;
}

Test(server_tier, verify_on_two_workers_gives_the_same_answers, .timeout = 120)
{
    enum { BODIES = 3, ROUNDS = 2 };
    const char *const one_worker[] = {"--threads", "1", NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", one_worker);
    struct samples t = {0};
    harness_samples_load(&s, &t);
    const struct bytes *pairs[BODIES][2] = {
        {&t.face_a, &t.face_a2}, /* the same person */
        {&t.face_a2, &t.face_b}, /* two people */
        {&t.face_a2, &t.photo},  /* a face against the group photo: every face scored */
    };
    char *bodies[BODIES];
    cJSON *expected[BODIES];
    for (int i = 0; i < BODIES; i++) {
        cJSON *b = harness_verify_body(pairs[i][0], pairs[i][1]);
        cJSON_AddTrueToObject(b, "return_embeddings");
        bodies[i] = cJSON_PrintUnformatted(b);
        cJSON_Delete(b);
        expected[i] = verify_answer(&s, bodies[i]);
    }
    cr_assert_eq(split_count(&s), 0, "one worker never splits");
    cr_assert_eq(harness_server_stop(&s, 20), 0);

    harness_server_start(&s, "tests/data/sample1.jpg", NULL); /* two workers */
    for (int round = 0; round < ROUNDS; round++)
        for (int i = 0; i < BODIES; i++) {
            cJSON *got = verify_answer(&s, bodies[i]);
            char *a = cJSON_PrintUnformatted(expected[i]), *b = cJSON_PrintUnformatted(got);
            cr_assert(cJSON_Compare(expected[i], got, 1),
                      "pair %d differs on two workers:\n%s\n%s", i, a, b);
            free(a);
            free(b);
            cJSON_Delete(got);
        }
    long split = split_count(&s);
    cr_log_info("%ld of %d verifies ran their two images on two workers", split,
                BODIES * ROUNDS);
    cr_assert_geq(split, BODIES * ROUNDS / 2,
                  "with a worker idle, image2 should run on it: %ld of %d split", split,
                  BODIES * ROUNDS);
    cr_assert_leq(split, BODIES * ROUNDS);

    /* one image and one embedding: nothing to split */
    cJSON *with_embedding = cJSON_Parse(bodies[0]);
    cJSON_DeleteItemFromObject(with_embedding, "image1");
    cJSON_AddItemToObject(with_embedding, "embedding1",
                          cJSON_Duplicate(cJSON_GetObjectItem(expected[0], "embedding1"), 1));
    char *text = cJSON_PrintUnformatted(with_embedding);
    cJSON *got = verify_answer(&s, text);
    cr_assert_float_eq(cJSON_GetObjectItem(got, "score")->valuedouble,
                       cJSON_GetObjectItem(expected[0], "score")->valuedouble, 2e-6);
    cr_assert_eq(split_count(&s), split);
    cJSON_Delete(got);
    free(text);
    cJSON_Delete(with_embedding);
    /* errors come out as before: image1's first, then image2's */
    cJSON *bad = harness_verify_body(&t.blank, &t.blank);
    text = cJSON_PrintUnformatted(bad);
    struct resp r = harness_http(&s, "POST", "/v1/verify", "application/json", text,
                                 strlen(text), NULL);
    cr_assert_str_eq(harness_error_code(&r, 422, "image1"), "no_face");
    harness_resp_free(&r);
    free(text);
    cJSON_Delete(bad);
    bad = harness_verify_body(&t.face_a, &t.blank);
    text = cJSON_PrintUnformatted(bad);
    r = harness_http(&s, "POST", "/v1/verify", "application/json", text, strlen(text), NULL);
    cr_assert_str_eq(harness_error_code(&r, 422, "image2"), "no_face");
    harness_resp_free(&r);
    free(text);
    cJSON_Delete(bad);

    for (int i = 0; i < BODIES; i++) {
        free(bodies[i]);
        cJSON_Delete(expected[i]);
    }
    harness_samples_free(&t);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

struct call {
    const struct server *s;
    const char *body;
    long status;
};

static void *call_main(void *arg)
{
    struct call *c = arg;
    struct resp r = harness_http(c->s, "POST", "/v1/verify", "application/json", c->body,
                                 strlen(c->body), NULL);
    c->status = r.status;
    harness_resp_free(&r);
    return NULL;
}

Test(server_tier, split_verify_takes_no_place_from_the_next_request, .timeout = 120)
{
    /* Two workers and no queue: two verifies at once both get a worker, as they
     * did before verifies split; the second must not be turned away (429)
     * because the first one's image2 is on the other worker. */
    enum { ROUNDS = 8 };
    const char *const extra[] = {"--queue", "0", NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    struct samples t = {0};
    harness_samples_load(&s, &t);
    cJSON *body = harness_verify_body(&t.face_a2, &t.photo);
    char *text = cJSON_PrintUnformatted(body);
    int rejected = 0;
    for (int i = 0; i < ROUNDS; i++) {
        struct call first = {&s, text, 0}, second = {&s, text, 0};
        pthread_t a, b;
        pthread_create(&a, NULL, call_main, &first);
        usleep(15000); /* the first is being served, its image2 on the other worker */
        pthread_create(&b, NULL, call_main, &second);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        cr_assert_eq(first.status, 200, "round %d: %ld", i, first.status);
        rejected += second.status == 429;
        cr_assert(second.status == 200 || second.status == 429);
    }
    cr_assert_eq(rejected, 0, "%d of %d second verifies turned away", rejected, ROUNDS);
    cr_assert_gt(split_count(&s), 0);
    free(text);
    cJSON_Delete(body);
    harness_samples_free(&t);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}
