/* server_harness.h - end-to-end plumbing shared by the tests that talk to a real
 * `facever serve` over HTTP (test_server.c, test_server_eval.c).
 *
 * Use, inside a Criterion test:
 *
 *     TestSuite(my_suite, .fini = harness_kill_servers);   // once per suite
 *
 *     struct server s;
 *     harness_server_start(&s, "tests/data/sample1.jpg", NULL);  // skips without assets
 *     struct resp r = harness_get(&s, "/healthz");
 *     cr_assert_eq(r.status, 200);
 *     harness_resp_free(&r);
 *     cr_assert_eq(harness_server_stop(&s, 20), 0);
 *
 * The binary is $FACEVER (default ./facever), started with --port 0 and
 * --drain-seconds 0 (a test that wants a drain passes its own); the port is
 * read from its "listening on" stderr line (the admin port from "admin
 * endpoints on"), and stderr goes to a log file (harness_read_log). Helpers
 * that check things fail the test with cr_assert.
 */
#ifndef FACEVER_TESTS_SERVER_HARNESS_H
#define FACEVER_TESTS_SERVER_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

struct fv_image;

/* ---- a facever server as a child process ---- */

struct server {
    pid_t pid;
    int port;
    int admin_port; /* -1 without --admin-port */
    char log_path[64];
};

/* $FACEVER, or ./facever. */
const char *harness_facever_path(void);

/* Skips the test when models/, data_file (a test photo) or the binary is missing. */
void harness_skip_without_assets(const char *data_file);

/* Monotonic clock, seconds. */
double harness_now_s(void);
/* A raw loopback TCP connection to the server that has already sent `head` (a
 * request cut short on purpose, for slow-client tests); the caller closes it. */
int harness_send_partial(const struct server *s, const char *head);

/* Starts `facever serve --port 0 --threads 2 --drain-seconds 0 EXTRA...` (extra
 * NULL-terminated or NULL; later flags win) and waits for its ports; skips the
 * test without models/, data_file or the binary. The server is remembered for
 * harness_kill_servers. */
void harness_server_start(struct server *s, const char *data_file, const char *const *extra);

/* The same for another binary (absolute path), started in workdir (NULL: this
 * process's folder), with no check for assets: for tests of an installed copy. */
void harness_server_start_binary(struct server *s, const char *binary, const char *workdir,
                                 const char *const *extra);

/* SIGTERM and wait; the exit status, or -1 when it did not exit by itself within
 * limit_s (it is then killed). Removes the log. */
int harness_server_stop(struct server *s, double limit_s);

/* Waits up to limit_s for the server to exit after a signal the test sent: its
 * exit status (-1 when killed by a signal), or -2 when it is still running (it
 * is then left for harness_kill_servers). Keeps the log (harness_read_log). */
int harness_server_wait(struct server *s, double limit_s);

/* Kills every server this process started that is still running; for a suite's
 * .fini, so that a failed assertion does not leave one behind. */
void harness_kill_servers(void);

/* The server's stderr so far (at most 1 MiB; "" when there is none). Free it. */
char *harness_read_log(const struct server *s);

/* ---- HTTP ---- */

struct resp {
    long status; /* 0 when the request failed */
    char *body;
    size_t size;
    char allow[128];
    char content_type[128];
    char request_id[160];  /* the X-Request-Id header, "" when absent */
    char connection[32];   /* the Connection header, "" when absent */
    double seconds;
    cJSON *json; /* body parsed, NULL when it is not JSON */
};

/* One request. content_type NULL: no Content-Type header. body NULL: no body.
 * headers: extra header lines, NULL-terminated, or NULL. */
struct resp harness_http(const struct server *s, const char *method, const char *path,
                         const char *content_type, const void *body, size_t size,
                         const char *const *headers);
struct resp harness_get(const struct server *s, const char *path);
/* The same on another port of the server's machine (its admin port), with a
 * timeout in seconds (0: 60). */
struct resp harness_http_port(int port, const char *method, const char *path,
                              const char *content_type, const void *body, size_t size,
                              const char *const *headers, double timeout_s);
/* POSTs root as application/json; root stays the caller's. */
struct resp harness_post_json(const struct server *s, const char *path, const cJSON *root);
void harness_resp_free(struct resp *r);

/* Asserts the status and the error shape ({"error": {"code", "message", "field"}},
 * field checked unless NULL); returns the error code. */
const char *harness_error_code(const struct resp *r, long status, const char *field);

/* ---- test images ---- */

struct bytes {
    uint8_t *data;
    size_t size;
};

/* The whole file (asserts it can be read). Free .data. */
struct bytes harness_read_file(const char *path);

/* Standard base64 with padding. Free it. */
char *harness_base64(const struct bytes *b);

/* The face box (x1, y1, x2, y2) grown by half its size each side, cropped out of
 * img, scaled by scale and encoded as JPEG at quality. Free .data. */
struct bytes harness_face_crop(const struct fv_image *img, const float box[4], float scale,
                               int quality);

/* Faces of tests/data/sample1.jpg as the server's /v1/detect sees them. */
struct samples {
    struct bytes photo;   /* sample1.jpg as stored */
    struct bytes face_a;  /* first face, 2x its box */
    struct bytes face_a2; /* the same crop, rescaled to 70% and re-encoded at quality 70 */
    struct bytes face_b;  /* another person */
    struct bytes blank;   /* grey, no face */
    float box_a[4];
    int n_faces;
};
void harness_samples_load(const struct server *s, struct samples *t);
void harness_samples_free(struct samples *t);

/* {"image1": base64 of a, "image2": a data URI of b}. cJSON_Delete it. */
cJSON *harness_verify_body(const struct bytes *a, const struct bytes *b);

#endif
