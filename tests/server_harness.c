/* server_harness.c - see server_harness.h. */
#include "tests/server_harness.h"

#include "api/base64.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/base64.h"

#include "pipeline/image.h"

/* ---- a facever server as a child process ---- */

/* Servers this test process started, so that a failed assertion (which ends
 * the test early) does not leave one running: the suite's fini kills them.
 * Copies of their pid and log path, not pointers: a test's struct server lives
 * on its stack, which is gone by the time fini runs. */
#define STARTED_MAX 8
static struct {
    pid_t pid;
    char log_path[64];
} started[STARTED_MAX];

static void remember(const struct server *s)
{
    for (int i = 0; i < STARTED_MAX; i++)
        if (started[i].pid <= 0) {
            started[i].pid = s->pid;
            snprintf(started[i].log_path, sizeof started[i].log_path, "%s", s->log_path);
            return;
        }
    cr_assert_fail("more than %d servers at once", STARTED_MAX);
}

static void forget(pid_t pid)
{
    for (int i = 0; i < STARTED_MAX; i++)
        if (started[i].pid == pid)
            started[i].pid = 0;
}

void harness_kill_servers(void)
{
    for (int i = 0; i < STARTED_MAX; i++) {
        if (started[i].pid > 0) {
            kill(started[i].pid, SIGKILL);
            waitpid(started[i].pid, NULL, 0);
            unlink(started[i].log_path);
        }
        started[i].pid = 0;
    }
}

const char *harness_facever_path(void)
{
    const char *f = getenv("FACEVER");
    return f && *f ? f : "./facever";
}

void harness_skip_without_assets(const char *data_file)
{
    struct stat st;
    if (stat("models/mobilefacenet.fvm", &st) || stat("models/pnet.fvm", &st) ||
        stat(data_file, &st))
        cr_skip_test("models/ or tests/data/ missing (make models test-data)");
    if (stat(harness_facever_path(), &st))
        cr_skip_test("%s not built", harness_facever_path());
}

double harness_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

char *harness_read_log(const struct server *s)
{
    FILE *f = fopen(s->log_path, "rb");
    if (!f)
        return strdup("");
    char *text = calloc(1, 1 << 20);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = 0;
    fclose(f);
    return text;
}

/* The port of the URL after `what` in the log ("http://host:PORT..."), -1 when absent. */
static int log_port(const char *log, const char *what)
{
    const char *url = strstr(log, what);
    if (!url)
        return -1;
    const char *end = url + strlen(what);
    if (*end == '[') /* an IPv6 address: skip to its end */
        end = strchr(end, ']');
    end = end ? strchr(end, ':') : NULL;
    return end ? atoi(end + 1) : -1;
}

void harness_server_start(struct server *s, const char *data_file, const char *const *extra)
{
    harness_skip_without_assets(data_file);
    harness_server_start_binary(s, harness_facever_path(), NULL, extra);
}

void harness_server_start_binary(struct server *s, const char *binary, const char *workdir,
                                 const char *const *extra)
{
    snprintf(s->log_path, sizeof s->log_path, "/tmp/facever-test-%d-XXXXXX", (int)getpid());
    int fd = mkstemp(s->log_path);
    cr_assert(fd >= 0);
    const char *argv[40] = {binary, "serve", "--port", "0", "--threads", "2",
                            "--drain-seconds", "0"};
    int argc = 8;
    for (int i = 0; extra && extra[i]; i++) {
        cr_assert_lt(argc, 39, "too many arguments");
        argv[argc++] = extra[i];
    }
    argv[argc] = NULL;
    s->pid = fork();
    cr_assert(s->pid >= 0);
    if (s->pid == 0) {
        dup2(fd, 2);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        if (workdir && chdir(workdir) != 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd);
    remember(s);
    s->port = 0;
    s->admin_port = -1;
    for (double deadline = harness_now_s() + 30; harness_now_s() < deadline && !s->port;
         usleep(20000)) {
        char *log = harness_read_log(s);
        /* the model line comes after the listener lines, so both are complete */
        if (strstr(log, " workers, model ")) {
            s->port = log_port(log, "listening on http://");
            s->admin_port = log_port(log, "admin endpoints on http://");
        }
        free(log);
        int status;
        if (!s->port && waitpid(s->pid, &status, WNOHANG) == s->pid) {
            forget(s->pid);
            s->pid = 0; /* reaped: nothing left for the suite's fini to kill */
            char *text = harness_read_log(s);
            unlink(s->log_path);
            cr_assert_fail("facever serve exited before listening: %s", text);
        }
    }
    cr_assert_gt(s->port, 0, "no 'listening on' line from facever serve");
}

int harness_server_wait(struct server *s, double limit_s)
{
    if (s->pid <= 0)
        return -1;
    int status = 0;
    for (double deadline = harness_now_s() + limit_s; harness_now_s() < deadline;
         usleep(10000)) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            forget(s->pid);
            s->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
    }
    return -2;
}

int harness_server_stop(struct server *s, double limit_s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int rc = harness_server_wait(s, limit_s);
    if (rc != -2) {
        unlink(s->log_path);
        return rc;
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    forget(s->pid);
    s->pid = 0;
    return -1;
}

/* ---- HTTP ---- */

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    struct resp *r = user;
    char *b = realloc(r->body, r->size + size * n + 1);
    if (!b)
        return 0;
    memcpy(b + r->size, data, size * n);
    r->body = b;
    r->size += size * n;
    r->body[r->size] = 0;
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
    struct resp *r = user;
    size_t len = size * n, end = len;
    while (end > 0 && (data[end - 1] == '\r' || data[end - 1] == '\n'))
        end--;
    if (end > 7 && strncasecmp(data, "Allow: ", 7) == 0)
        snprintf(r->allow, sizeof r->allow, "%.*s", (int)(end - 7), data + 7);
    if (end > 14 && strncasecmp(data, "Content-Type: ", 14) == 0)
        snprintf(r->content_type, sizeof r->content_type, "%.*s", (int)(end - 14), data + 14);
    if (end > 14 && strncasecmp(data, "X-Request-Id: ", 14) == 0)
        snprintf(r->request_id, sizeof r->request_id, "%.*s", (int)(end - 14), data + 14);
    if (end > 12 && strncasecmp(data, "Connection: ", 12) == 0)
        snprintf(r->connection, sizeof r->connection, "%.*s", (int)(end - 12), data + 12);
    return len;
}

void harness_resp_free(struct resp *r)
{
    free(r->body);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}

/* With FV_CONTRACT_LOG naming a file, appends each JSON answer to it as one line,
 * {"method", "path", "status", "content_type", "body"}: after the suite,
 * scripts/contract-check.sh checks every one against its route's schema in
 * api/openapi.json. One write(2) per line on an O_APPEND descriptor, so lines
 * from concurrent requests and test processes do not interleave. */
static void contract_log(const char *method, const char *path, const struct resp *r)
{
    const char *log = getenv("FV_CONTRACT_LOG");
    if (!log || !log[0] || !r->json || r->status <= 0 ||
        strncasecmp(r->content_type, "application/json", 16) != 0)
        return;
    cJSON *o = cJSON_CreateObject();
    char *line = NULL;
    if (cJSON_AddStringToObject(o, "method", method) && cJSON_AddStringToObject(o, "path", path) &&
        cJSON_AddNumberToObject(o, "status", (double)r->status) &&
        cJSON_AddStringToObject(o, "content_type", r->content_type) &&
        cJSON_AddStringToObject(o, "body", r->body))
        line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    /* Not cr_assert: requests also come from the tests' own threads. A line lost
     * would be a response left unchecked, so the test crashes instead. */
    if (!line) {
        fprintf(stderr, "FV_CONTRACT_LOG: out of memory\n");
        abort();
    }
    size_t n = strlen(line);
    line[n++] = '\n'; /* over the NUL: the line is written by length */
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ssize_t wrote = fd >= 0 ? write(fd, line, n) : -1;
    if (fd >= 0)
        close(fd);
    free(line);
    if (wrote != (ssize_t)n) {
        fprintf(stderr, "FV_CONTRACT_LOG=%s: cannot append\n", log);
        abort();
    }
}

struct resp harness_http(const struct server *s, const char *method, const char *path,
                         const char *content_type, const void *body, size_t size,
                         const char *const *headers)
{
    return harness_http_port(s->port, method, path, content_type, body, size, headers, 0);
}

struct resp harness_http_port(int port, const char *method, const char *path,
                              const char *content_type, const void *body, size_t size,
                              const char *const *headers, double timeout_s)
{
    struct resp r = {0};
    CURL *c = curl_easy_init();
    char url[256], ct[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (content_type) {
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        h = curl_slist_append(h, ct);
    }
    for (int i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_s > 0 ? (long)(timeout_s * 1e3) : 60000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    }
    double t0 = harness_now_s();
    CURLcode rc = curl_easy_perform(c);
    r.seconds = harness_now_s() - t0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (r.body)
        r.json = cJSON_Parse(r.body);
    contract_log(method, path, &r);
    return r;
}

struct resp harness_get(const struct server *s, const char *path)
{
    return harness_http(s, "GET", path, NULL, NULL, 0, NULL);
}

struct resp harness_post_json(const struct server *s, const char *path, const cJSON *root)
{
    char *text = cJSON_PrintUnformatted(root);
    struct resp r = harness_http(s, "POST", path, "application/json", text, strlen(text), NULL);
    free(text);
    return r;
}

const char *harness_error_code(const struct resp *r, long status, const char *field)
{
    cr_assert_eq(r->status, status, "expected %ld, got %ld: %s", status, r->status,
                 r->body ? r->body : "(no body)");
    const cJSON *e = cJSON_GetObjectItem(r->json, "error");
    cr_assert(cJSON_IsObject(e), "no error object in %s", r->body);
    const cJSON *code = cJSON_GetObjectItem(e, "code");
    cr_assert(cJSON_IsString(code));
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
    if (field) {
        const cJSON *f = cJSON_GetObjectItem(e, "field");
        cr_assert(cJSON_IsString(f) && strcmp(f->valuestring, field) == 0,
                  "expected field %s in %s", field, r->body);
    }
    return code->valuestring;
}

/* ---- test images ---- */

struct bytes harness_read_file(const char *path)
{
    struct bytes b = {0};
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    b.size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    b.data = malloc(b.size);
    cr_assert_eq(fread(b.data, 1, b.size, f), b.size);
    fclose(f);
    return b;
}

char *harness_base64(const struct bytes *b)
{
    char *out = fv_base64_encode(b->data, b->size);
    cr_assert_not_null(out);
    return out;
}

struct bytes harness_face_crop(const struct fv_image *img, const float box[4], float scale,
                               int quality)
{
    float w = box[2] - box[0], h = box[3] - box[1];
    int x = (int)(box[0] - w / 2), y = (int)(box[1] - h / 2);
    struct fv_image *crop = fv_image_crop(img, x, y, (int)(w * 2), (int)(h * 2)), *scaled = NULL;
    cr_assert_not_null(crop);
    struct fv_error err = {0};
    cr_assert_eq(fv_image_resize(crop, (int)(crop->width * scale), (int)(crop->height * scale),
                                 &scaled, &err), FV_OK);
    struct bytes b = {0};
    cr_assert_eq(fv_image_encode_jpeg(scaled, quality, &b.data, &b.size, &err), FV_OK);
    fv_image_free(crop);
    fv_image_free(scaled);
    return b;
}

void harness_samples_load(const struct server *s, struct samples *t)
{
    t->photo = harness_read_file("tests/data/sample1.jpg");
    cJSON *body = cJSON_CreateObject();
    char *b64 = harness_base64(&t->photo);
    cJSON_AddStringToObject(body, "image", b64);
    free(b64);
    struct resp r = harness_post_json(s, "/v1/detect", body);
    cJSON_Delete(body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(cJSON_GetObjectItem(r.json, "width")->valueint, 1920);
    const cJSON *faces = cJSON_GetObjectItem(r.json, "faces");
    t->n_faces = cJSON_GetArraySize(faces);
    cr_assert_geq(t->n_faces, 2, "sample1.jpg should show several people");
    float boxes[2][4];
    for (int i = 0; i < 2; i++) {
        const cJSON *box = cJSON_GetObjectItem(cJSON_GetArrayItem(faces, i), "box");
        cr_assert_eq(cJSON_GetArraySize(box), 4);
        for (int k = 0; k < 4; k++)
            boxes[i][k] = (float)cJSON_GetArrayItem(box, k)->valuedouble;
    }
    memcpy(t->box_a, boxes[0], sizeof t->box_a);
    harness_resp_free(&r);
    struct fv_image *img = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_image_decode(t->photo.data, t->photo.size, NULL, &img, &err), FV_OK);
    t->face_a = harness_face_crop(img, boxes[0], 1.0f, 95);
    t->face_a2 = harness_face_crop(img, boxes[0], 0.7f, 70);
    t->face_b = harness_face_crop(img, boxes[1], 1.0f, 95);
    fv_image_free(img);
    struct fv_image *grey = fv_image_new(160, 160);
    memset(grey->rgb, 128, (size_t)160 * 160 * 3);
    cr_assert_eq(fv_image_encode_png(grey, &t->blank.data, &t->blank.size, &err), FV_OK);
    fv_image_free(grey);
}

void harness_samples_free(struct samples *t)
{
    free(t->photo.data);
    free(t->face_a.data);
    free(t->face_a2.data);
    free(t->face_b.data);
    free(t->blank.data);
}

cJSON *harness_verify_body(const struct bytes *a, const struct bytes *b)
{
    cJSON *root = cJSON_CreateObject();
    char *s1 = harness_base64(a), *s2 = harness_base64(b);
    cJSON_AddStringToObject(root, "image1", s1);
    /* image2 as a data URI, which clients built on browsers send */
    char *uri = malloc(strlen(s2) + 32);
    sprintf(uri, "data:image/jpeg;base64,%s", s2);
    cJSON_AddStringToObject(root, "image2", uri);
    free(s1);
    free(s2);
    free(uri);
    return root;
}

int harness_send_partial(const struct server *s, const char *head)
{
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(sock, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(sock, (struct sockaddr *)&addr, sizeof addr), 0);
    cr_assert_eq(send(sock, head, strlen(head), 0), (ssize_t)strlen(head));
    return sock;
}
