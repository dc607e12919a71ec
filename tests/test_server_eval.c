/* test_server_eval.c - evaluation jobs over HTTP: POST /v1/evaluations, GET
 * /v1/evaluations/{id} and its roc.svg, against the real `facever serve`.
 *
 * As in test_server.c, the binary ($FACEVER, default ./facever) is started with
 * --port 0 and the port read from its "listening on" line. Faces are cut out of
 * tests/data/sample5.jpg (several people) with the server's own /v1/detect
 * boxes: a "same" pair is a face and its rescaled, re-encoded copy, a
 * "different" pair two people of the photo, so every threshold the protocol
 * picks should separate them perfectly.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pipeline/image.h"

#define N_PEOPLE 4

/* ---- a facever server as a child process ---- */

struct server {
    pid_t pid;
    int port;
    char log_path[64];
};

/* Killed by the suite's fini when a failed assertion ends a test early. */
static struct server *running_servers[4];

static void kill_servers(void)
{
    for (int i = 0; i < 4; i++) {
        struct server *s = running_servers[i];
        if (s && s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            unlink(s->log_path);
            s->pid = 0;
        }
        running_servers[i] = NULL;
    }
}
TestSuite(server_eval, .fini = kill_servers);

static const char *facever_path(void)
{
    const char *f = getenv("FACEVER");
    return f && *f ? f : "./facever";
}

static void skip_without_assets(void)
{
    struct stat st;
    if (stat("models/mobilefacenet.fvm", &st) || stat("models/pnet.fvm", &st) ||
        stat("tests/data/sample5.jpg", &st))
        cr_skip_test("models/ or tests/data/ missing (make models test-data)");
    if (stat(facever_path(), &st))
        cr_skip_test("%s not built", facever_path());
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = calloc(1, 1 << 20);
    if (f) {
        size_t n = fread(text, 1, (1 << 20) - 1, f);
        text[n] = 0;
        fclose(f);
    }
    return text;
}

/* `facever serve --port 0 --threads 2 EXTRA...` (NULL-terminated). */
static void server_start(struct server *s, const char *const *extra)
{
    skip_without_assets();
    snprintf(s->log_path, sizeof s->log_path, "/tmp/facever-eval-%d-XXXXXX", (int)getpid());
    int fd = mkstemp(s->log_path);
    cr_assert(fd >= 0);
    const char *argv[24] = {facever_path(), "serve", "--port", "0", "--threads", "2"};
    int argc = 6;
    for (int i = 0; extra && extra[i]; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    s->pid = fork();
    cr_assert(s->pid >= 0);
    if (s->pid == 0) {
        dup2(fd, 2);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd);
    for (int i = 0; i < 4; i++)
        if (!running_servers[i] || running_servers[i]->pid <= 0) {
            running_servers[i] = s;
            break;
        }
    s->port = 0;
    for (double deadline = now_s() + 30; now_s() < deadline && !s->port; usleep(20000)) {
        char *log = read_text(s->log_path);
        const char *line = strstr(log, "listening on http://");
        const char *nl = line ? strchr(line, '\n') : NULL;
        if (nl) {
            const char *colon = nl;
            while (colon > line && *colon != ':')
                colon--;
            s->port = atoi(colon + 1);
        }
        free(log);
        int status;
        if (!s->port && waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            cr_assert_fail("facever serve exited before listening: %s", read_text(s->log_path));
        }
    }
    cr_assert_gt(s->port, 0, "no 'listening on' line from facever serve");
}

/* SIGTERM; the exit status, or -1 when it did not exit by itself within limit_s. */
static int server_stop(struct server *s, double limit_s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int status = 0;
    for (double deadline = now_s() + limit_s; now_s() < deadline; usleep(10000)) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            unlink(s->log_path);
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    return -1;
}

/* ---- HTTP ---- */

struct resp {
    long status;
    char *body;
    size_t size;
    char content_type[128];
    cJSON *json;
};

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
    if (end > 14 && strncasecmp(data, "Content-Type: ", 14) == 0)
        snprintf(r->content_type, sizeof r->content_type, "%.*s", (int)(end - 14), data + 14);
    return len;
}

static void resp_free(struct resp *r)
{
    free(r->body);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}

static struct resp http(const struct server *s, const char *method, const char *path,
                        const char *content_type, const char *body, size_t size)
{
    struct resp r = {0};
    CURL *c = curl_easy_init();
    char url[256], ct[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (content_type) {
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        h = curl_slist_append(h, ct);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (r.body)
        r.json = cJSON_Parse(r.body);
    return r;
}

static struct resp get(const struct server *s, const char *path)
{
    return http(s, "GET", path, NULL, NULL, 0);
}

static struct resp post_text(const struct server *s, const char *text)
{
    return http(s, "POST", "/v1/evaluations", "application/json", text, strlen(text));
}

/* Takes root. */
static struct resp post_json(const struct server *s, cJSON *root)
{
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    struct resp r = post_text(s, text);
    free(text);
    return r;
}

/* Asserts the status and the error shape; returns the error code. */
static const char *error_code(const struct resp *r, long status, const char *field)
{
    cr_assert_eq(r->status, status, "expected %ld, got %ld: %s", status, r->status,
                 r->body ? r->body : "(no body)");
    const cJSON *e = cJSON_GetObjectItem(r->json, "error");
    cr_assert(cJSON_IsObject(e), "no error object in %s", r->body);
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
    const cJSON *code = cJSON_GetObjectItem(e, "code");
    cr_assert(cJSON_IsString(code));
    if (field) {
        const cJSON *f = cJSON_GetObjectItem(e, "field");
        cr_assert(cJSON_IsString(f) && strcmp(f->valuestring, field) == 0,
                  "expected field %s in %s", field, r->body);
    }
    return code->valuestring;
}

/* Posts text and asserts the rejection; frees the reply. */
static void expect_rejected(const struct server *s, const char *text, long status,
                            const char *code, const char *field)
{
    struct resp r = post_text(s, text);
    const char *got = error_code(&r, status, field);
    cr_assert_str_eq(got, code, "for %.200s: %s", text, r.body);
    resp_free(&r);
}

/* The id of an accepted (202) evaluation; frees the reply. */
static void accepted_id(struct resp *r, char *id, size_t cap)
{
    cr_assert_eq(r->status, 202, "expected 202, got %ld: %s", r->status, r->body);
    const cJSON *v = cJSON_GetObjectItem(r->json, "id");
    cr_assert(cJSON_IsString(v), "%s", r->body);
    cr_assert_str_eq(cJSON_GetObjectItem(r->json, "status")->valuestring, "queued");
    const cJSON *links = cJSON_GetObjectItem(r->json, "links");
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(links, "self")));
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(links, "roc")));
    snprintf(id, cap, "%s", v->valuestring);
    resp_free(r);
}

/* Polls the evaluation until it is done or failed; returns its status object. */
static cJSON *wait_finished(const struct server *s, const char *id, double limit_s)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/evaluations/%s", id);
    for (double deadline = now_s() + limit_s; now_s() < deadline; usleep(100000)) {
        struct resp r = get(s, path);
        cr_assert_eq(r.status, 200, "%s", r.body);
        const char *status = cJSON_GetObjectItem(r.json, "status")->valuestring;
        cr_assert(strcmp(status, "queued") == 0 || strcmp(status, "running") == 0 ||
                      strcmp(status, "done") == 0 || strcmp(status, "failed") == 0,
                  "status %s", status);
        if (strcmp(status, "done") == 0 || strcmp(status, "failed") == 0) {
            cJSON *json = r.json;
            r.json = NULL;
            resp_free(&r);
            return json;
        }
        resp_free(&r);
    }
    cr_assert_fail("evaluation %s not finished after %.0f s", id, limit_s);
    return NULL;
}

static const char *status_of(const cJSON *job)
{
    return cJSON_GetObjectItem(job, "status")->valuestring;
}

/* The report's run with this label ("with PCA" / "without PCA"). */
static const cJSON *report_run(const cJSON *job, const char *label)
{
    const cJSON *runs = cJSON_GetObjectItem(cJSON_GetObjectItem(job, "report"), "runs"), *run;
    cJSON_ArrayForEach(run, runs)
    {
        const cJSON *l = cJSON_GetObjectItem(run, "label");
        if (cJSON_IsString(l) && strcmp(l->valuestring, label) == 0)
            return run;
    }
    return NULL;
}

/* Checks a perfect run: accuracy 1 in every fold, AUC 1, EER 0. */
static void check_perfect_run(const cJSON *run, int n_folds)
{
    cr_assert_not_null(run);
    cr_assert_float_eq(cJSON_GetObjectItem(run, "mean_accuracy")->valuedouble, 1.0, 1e-9);
    cr_assert_float_eq(cJSON_GetObjectItem(run, "auc")->valuedouble, 1.0, 1e-9);
    cr_assert_float_eq(cJSON_GetObjectItem(run, "eer")->valuedouble, 0.0, 1e-9);
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(run, "std_accuracy")));
    cr_assert(cJSON_IsArray(cJSON_GetObjectItem(run, "tar_at_far")));
    cr_assert(cJSON_IsArray(cJSON_GetObjectItem(run, "roc")));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(run, "folds")), n_folds);
}

/* ---- test faces ---- */

struct bytes {
    uint8_t *data;
    size_t size;
};

static struct bytes read_bytes(const char *path)
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

static char *base64(const struct bytes *b)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(b->size / 3 * 4 + 5), *o = out;
    size_t i = 0;
    for (; i + 2 < b->size; i += 3) {
        uint32_t v = (uint32_t)b->data[i] << 16 | (uint32_t)b->data[i + 1] << 8 | b->data[i + 2];
        *o++ = a[v >> 18];
        *o++ = a[v >> 12 & 63];
        *o++ = a[v >> 6 & 63];
        *o++ = a[v & 63];
    }
    if (i < b->size) {
        uint32_t v = (uint32_t)b->data[i] << 16 |
                     (i + 1 < b->size ? (uint32_t)b->data[i + 1] << 8 : 0);
        *o++ = a[v >> 18];
        *o++ = a[v >> 12 & 63];
        *o++ = i + 1 < b->size ? a[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = 0;
    return out;
}

/* The box grown by half its size each side, scaled, encoded as JPEG. */
static struct bytes face_crop(const struct fv_image *img, const float box[4], float scale,
                              int quality)
{
    float w = box[2] - box[0], h = box[3] - box[1];
    struct fv_image *crop =
        fv_image_crop(img, (int)(box[0] - w / 2), (int)(box[1] - h / 2), (int)(w * 2), (int)(h * 2));
    struct fv_image *scaled = NULL;
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

/* face[i]: person i as cut out; copy[i]: the same crop at 70%, JPEG quality 70. */
struct people {
    struct bytes face[N_PEOPLE], copy[N_PEOPLE];
    char *face64[N_PEOPLE], *copy64[N_PEOPLE];
};

static void people_load(const struct server *s, struct people *p)
{
    struct bytes photo = read_bytes("tests/data/sample5.jpg");
    char *photo64 = base64(&photo);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "image", photo64);
    free(photo64);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    struct resp r = http(s, "POST", "/v1/detect", "application/json", text, strlen(text));
    free(text);
    cr_assert_eq(r.status, 200, "%s", r.body);
    const cJSON *faces = cJSON_GetObjectItem(r.json, "faces");
    cr_assert_geq(cJSON_GetArraySize(faces), N_PEOPLE, "sample5.jpg should show %d people",
                  N_PEOPLE);
    struct fv_image *img = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_image_decode(photo.data, photo.size, NULL, &img, &err), FV_OK);
    for (int i = 0; i < N_PEOPLE; i++) {
        const cJSON *box = cJSON_GetObjectItem(cJSON_GetArrayItem(faces, i), "box");
        float b[4];
        for (int k = 0; k < 4; k++)
            b[k] = (float)cJSON_GetArrayItem(box, k)->valuedouble;
        p->face[i] = face_crop(img, b, 1.0f, 95);
        p->copy[i] = face_crop(img, b, 0.7f, 70);
        p->face64[i] = base64(&p->face[i]);
        p->copy64[i] = base64(&p->copy[i]);
    }
    fv_image_free(img);
    free(photo.data);
    resp_free(&r);
}

static void people_free(struct people *p)
{
    for (int i = 0; i < N_PEOPLE; i++) {
        free(p->face[i].data);
        free(p->copy[i].data);
        free(p->face64[i]);
        free(p->copy64[i]);
    }
}

/* The 8 easy pairs, 2 folds of 2 same + 2 different. */
static const struct {
    int a, b; /* people; a == b: face vs its copy */
    int fold;
} easy_pairs[] = {
    {0, 0, 0}, {1, 1, 0}, {0, 1, 0}, {2, 3, 0},
    {2, 2, 1}, {3, 3, 1}, {0, 2, 1}, {1, 3, 1},
};
#define N_EASY ((int)(sizeof easy_pairs / sizeof easy_pairs[0]))

static cJSON *inline_body(const struct people *p, int with_folds)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *pairs = cJSON_AddArrayToObject(root, "pairs");
    for (int i = 0; i < N_EASY; i++) {
        int a = easy_pairs[i].a, b = easy_pairs[i].b;
        cJSON *pair = cJSON_CreateObject();
        cJSON_AddStringToObject(pair, "image1", p->face64[a]);
        cJSON_AddStringToObject(pair, "image2", a == b ? p->copy64[b] : p->face64[b]);
        cJSON_AddBoolToObject(pair, "same", a == b);
        if (with_folds)
            cJSON_AddNumberToObject(pair, "fold", easy_pairs[i].fold);
        cJSON_AddItemToArray(pairs, pair);
    }
    cJSON_AddNumberToObject(root, "folds", 2);
    return root;
}

/* ---- a data root in a temporary folder ---- */

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, size, f), size);
    fclose(f);
}

static void make_dir(const char *path)
{
    cr_assert(mkdir(path, 0755) == 0, "mkdir %s", path);
}

/* root/imgs/Pi/Pi_0001.jpg (face) and Pi_0002.jpg (copy), and root/pairs.txt with
 * the easy pairs in "FOLDS 2" form. */
static void write_data_root(const char *root, const struct people *p)
{
    char path[512];
    snprintf(path, sizeof path, "%s/imgs", root);
    make_dir(path);
    for (int i = 0; i < N_PEOPLE; i++) {
        snprintf(path, sizeof path, "%s/imgs/P%d", root, i);
        make_dir(path);
        snprintf(path, sizeof path, "%s/imgs/P%d/P%d_0001.jpg", root, i, i);
        write_file(path, p->face[i].data, p->face[i].size);
        snprintf(path, sizeof path, "%s/imgs/P%d/P%d_0002.jpg", root, i, i);
        write_file(path, p->copy[i].data, p->copy[i].size);
    }
    char text[1024];
    size_t n = (size_t)snprintf(text, sizeof text, "FOLDS 2\n");
    for (int i = 0; i < N_EASY; i++) { /* easy_pairs is already in fold order */
        int a = easy_pairs[i].a, b = easy_pairs[i].b;
        n += (size_t)(a == b ? snprintf(text + n, sizeof text - n, "P%d 1 2\n", a)
                             : snprintf(text + n, sizeof text - n, "P%d 1 P%d 1\n", a, b));
    }
    snprintf(path, sizeof path, "%s/pairs.txt", root);
    write_file(path, text, n);
}

static void remove_tree(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    cr_assert_eq(system(cmd), 0);
}

/* ---- tests ---- */

Test(server_eval, inline_evaluation_runs_to_done, .timeout = 90)
{
    struct server s;
    server_start(&s, NULL);
    struct people p = {0};
    people_load(&s, &p);

    cJSON *body = inline_body(&p, 1);
    cJSON_AddNumberToObject(body, "pca_dim", 4);
    struct resp r = post_json(&s, body);
    char id[64], path[128];
    accepted_id(&r, id, sizeof id);

    /* Until it is done, the ROC is a 409 with the error shape. */
    snprintf(path, sizeof path, "/v1/evaluations/%s", id);
    r = get(&s, path);
    cr_assert_eq(r.status, 200);
    int finished = strcmp(status_of(r.json), "done") == 0;
    resp_free(&r);
    snprintf(path, sizeof path, "/v1/evaluations/%s/roc.svg", id);
    if (!finished) {
        r = get(&s, path);
        if (r.status != 200) /* it may have finished in between */
            cr_assert_str_eq(error_code(&r, 409, NULL), "not_done");
        resp_free(&r);
    }

    cJSON *job = wait_finished(&s, id, 60);
    cr_assert_str_eq(status_of(job), "done", "%s", cJSON_PrintUnformatted(job));
    const cJSON *progress = cJSON_GetObjectItem(job, "progress");
    cr_assert_eq(cJSON_GetObjectItem(progress, "done")->valueint, 2 * N_EASY);
    cr_assert_eq(cJSON_GetObjectItem(progress, "total")->valueint, 2 * N_EASY);
    const cJSON *report = cJSON_GetObjectItem(job, "report");
    cr_assert(cJSON_IsObject(report));
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(report, "title")));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(report, "runs")), 2,
                 "with and without PCA");
    check_perfect_run(report_run(job, "without PCA"), 2);
    const cJSON *pca = report_run(job, "with PCA");
    cr_assert_not_null(pca);
    cr_assert_eq(cJSON_GetObjectItem(pca, "pca_dim")->valueint, 4);
    double acc = cJSON_GetObjectItem(pca, "mean_accuracy")->valuedouble;
    cr_assert(acc >= 0.5 && acc <= 1.0, "accuracy with PCA %g", acc);
    cr_assert_null(cJSON_GetObjectItem(job, "error"));
    cJSON_Delete(job);

    r = get(&s, path);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strncmp(r.content_type, "image/svg+xml", 13) == 0, "%s", r.content_type);
    cr_assert_not_null(strstr(r.body, "<svg"));
    cr_assert_not_null(strstr(r.body, "</svg>"));
    resp_free(&r);

    /* Without folds the pairs split in order; a bad image fails the job, not the POST. */
    body = inline_body(&p, 0);
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(body, "pairs"), 0);
    cJSON_ReplaceItemInObject(first, "image2", cJSON_CreateString("bm90IGFuIGltYWdl"));
    r = post_json(&s, body);
    accepted_id(&r, id, sizeof id);
    job = wait_finished(&s, id, 30);
    cr_assert_str_eq(status_of(job), "failed");
    const cJSON *e = cJSON_GetObjectItem(job, "error");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "code")->valuestring, "bad_image");
    cr_assert_not_null(strstr(cJSON_GetObjectItem(e, "message")->valuestring, "pairs[0].image2"));
    cr_assert_null(cJSON_GetObjectItem(job, "report"));
    cJSON_Delete(job);
    snprintf(path, sizeof path, "/v1/evaluations/%s/roc.svg", id);
    r = get(&s, path);
    cr_assert_str_eq(error_code(&r, 409, NULL), "not_done");
    resp_free(&r);

    people_free(&p);
    cr_assert_eq(server_stop(&s, 20), 0);
}

Test(server_eval, data_root_evaluation_and_path_checks, .timeout = 90)
{
    char root[] = "/tmp/facever-eval-root-XXXXXX", outside[] = "/tmp/facever-eval-out-XXXXXX";
    cr_assert_not_null(mkdtemp(root));
    cr_assert_not_null(mkdtemp(outside));
    char path[512], target[512];
    /* Something worth stealing outside the root, and links to it from inside. */
    snprintf(path, sizeof path, "%s/pairs.txt", outside);
    write_file(path, "FOLDS 2\nA 1 2\nA 1 B 1\n", 22);
    snprintf(path, sizeof path, "%s/escape", root);
    cr_assert_eq(symlink(outside, path), 0);
    snprintf(target, sizeof target, "%s/pairs.txt", outside);
    snprintf(path, sizeof path, "%s/linked-pairs.txt", root);
    cr_assert_eq(symlink(target, path), 0);

    struct server s;
    const char *const extra[] = {"--data-root", root, NULL};
    server_start(&s, extra);
    struct people p = {0};
    people_load(&s, &p);
    write_data_root(root, &p);

    struct resp r = post_text(&s, "{\"images\": \"imgs\", \"pairs\": \"pairs.txt\", \"pca_dim\": 0}");
    char id[64], no_pca_id[64];
    accepted_id(&r, no_pca_id, sizeof no_pca_id);
    /* The default 128 PCA components cannot be fitted on 8 images: a failed job. */
    r = post_text(&s, "{\"images\": \"imgs/\", \"pairs\": \"./pairs.txt\"}");
    accepted_id(&r, id, sizeof id);

    cJSON *job = wait_finished(&s, no_pca_id, 60);
    cr_assert_str_eq(status_of(job), "done", "%s", cJSON_PrintUnformatted(job));
    const cJSON *report = cJSON_GetObjectItem(job, "report");
    cr_assert_eq(cJSON_GetObjectItem(report, "images")->valueint, 2 * N_PEOPLE);
    cr_assert_eq(cJSON_GetObjectItem(report, "pairs")->valueint, N_EASY);
    cr_assert_not_null(strstr(cJSON_GetObjectItem(report, "title")->valuestring, "pairs.txt"));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(report, "runs")), 1);
    check_perfect_run(report_run(job, "without PCA"), 2);
    cJSON_Delete(job);

    job = wait_finished(&s, id, 60);
    cr_assert_str_eq(status_of(job), "failed");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(job, "error"), "code")->valuestring,
                     "invalid_value");
    cJSON_Delete(job);

    /* A pairs file that does not parse fails the job, naming the line. */
    snprintf(path, sizeof path, "%s/bad-pairs.txt", root);
    write_file(path, "FOLDS 2\nP0 1\n", 13);
    r = post_text(&s, "{\"images\": \"imgs\", \"pairs\": \"bad-pairs.txt\", \"pca_dim\": 0}");
    accepted_id(&r, id, sizeof id);
    job = wait_finished(&s, id, 30);
    cr_assert_str_eq(status_of(job), "failed");
    const cJSON *e = cJSON_GetObjectItem(job, "error");
    cr_assert_str_eq(cJSON_GetObjectItem(e, "code")->valuestring, "bad_pairs");
    cr_assert_not_null(strstr(cJSON_GetObjectItem(e, "message")->valuestring, "bad-pairs.txt"));
    cJSON_Delete(job);

    /* Paths that leave the root. */
    expect_rejected(&s, "{\"images\": \"../x\", \"pairs\": \"pairs.txt\"}", 403, "forbidden_path",
                    "images");
    expect_rejected(&s, "{\"images\": \"imgs/../../x\", \"pairs\": \"pairs.txt\"}", 403,
                    "forbidden_path", "images");
    expect_rejected(&s, "{\"images\": \"imgs\", \"pairs\": \"imgs/..\"}", 403, "forbidden_path",
                    "pairs");
    snprintf(path, sizeof path, "{\"images\": \"imgs\", \"pairs\": \"%s/pairs.txt\"}", root);
    expect_rejected(&s, path, 403, "forbidden_path", "pairs");
    expect_rejected(&s, "{\"images\": \"/tmp\", \"pairs\": \"pairs.txt\"}", 403, "forbidden_path",
                    "images");
    expect_rejected(&s, "{\"images\": \"escape\", \"pairs\": \"pairs.txt\"}", 403,
                    "forbidden_path", "images");
    expect_rejected(&s, "{\"images\": \"imgs\", \"pairs\": \"escape/pairs.txt\"}", 403,
                    "forbidden_path", "pairs");
    expect_rejected(&s, "{\"images\": \"imgs\", \"pairs\": \"linked-pairs.txt\"}", 403,
                    "forbidden_path", "pairs");
    expect_rejected(&s,
                    "{\"images\": \"imgs\", \"pairs\": \"pairs.txt\", \"landmarks\": "
                    "\"escape/pairs.txt\"}",
                    403, "forbidden_path", "landmarks");
    /* Missing or wrong kinds of file. */
    expect_rejected(&s, "{\"images\": \"imgs\", \"pairs\": \"nope.txt\"}", 422, "invalid_value",
                    "pairs");
    expect_rejected(&s, "{\"images\": \"pairs.txt\", \"pairs\": \"pairs.txt\"}", 422,
                    "invalid_value", "images");
    expect_rejected(&s, "{\"images\": \"imgs\", \"pairs\": \"imgs\"}", 422, "invalid_value",
                    "pairs");
    expect_rejected(&s, "{\"images\": \"\", \"pairs\": \"pairs.txt\"}", 422, "invalid_value",
                    "images");
    expect_rejected(&s, "{\"pairs\": \"pairs.txt\"}", 400, "missing_field", "images");
    expect_rejected(&s, "{\"images\": 7, \"pairs\": \"pairs.txt\"}", 400, "invalid_field",
                    "images");
    expect_rejected(&s, "{\"images\": \"imgs\", \"pairs\": \"pairs.txt\", \"pca_dim\": -1}", 422,
                    "invalid_value", "pca_dim");

    /* An image inside the image folder that links outside: the job refuses it. */
    snprintf(path, sizeof path, "%s/imgs/P3/P3_0002.jpg", root);
    cr_assert_eq(unlink(path), 0);
    snprintf(target, sizeof target, "%s/stolen.jpg", outside);
    write_file(target, p.copy[3].data, p.copy[3].size);
    cr_assert_eq(symlink(target, path), 0);
    r = post_text(&s, "{\"images\": \"imgs\", \"pairs\": \"pairs.txt\", \"pca_dim\": 0}");
    accepted_id(&r, id, sizeof id);
    job = wait_finished(&s, id, 60);
    cr_assert_str_eq(status_of(job), "failed");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(job, "error"), "code")->valuestring,
                     "forbidden_path");
    cJSON_Delete(job);

    people_free(&p);
    cr_assert_eq(server_stop(&s, 20), 0);
    remove_tree(root);
    remove_tree(outside);
}

Test(server_eval, malformed_requests_and_unknown_ids, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL); /* no --data-root */

    expect_rejected(&s, "{\"pairs\": ", 400, "bad_json", NULL);
    expect_rejected(&s, "[1, 2]", 400, "bad_json", NULL);
    expect_rejected(&s, "{}", 400, "missing_field", "pairs");
    expect_rejected(&s, "{\"pairs\": 3}", 400, "invalid_field", "pairs");
    expect_rejected(&s, "{\"images\": \"lfw/images\", \"pairs\": \"lfw/pairs.txt\"}", 422,
                    "no_data_root", NULL);

    /* Inline bodies: "AAAA" is valid base64 of no image; shape errors come first. */
    const char *pair = "{\"image1\": \"AAAA\", \"image2\": \"AAAA\", \"same\": %s%s}";
    char one_same[128], one_diff[128], text[16384];
    snprintf(one_same, sizeof one_same, pair, "true", "");
    snprintf(one_diff, sizeof one_diff, pair, "false", "");
    snprintf(text, sizeof text, "{\"pairs\": [%s]}", one_same);
    expect_rejected(&s, text, 422, "invalid_value", "pairs");
    size_t n = (size_t)snprintf(text, sizeof text, "{\"pairs\": [");
    for (int i = 0; i < 201; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s%s", i ? "," : "", one_same);
    snprintf(text + n, sizeof text - n, "]}");
    cr_assert_lt(strlen(text), sizeof text - 1);
    expect_rejected(&s, text, 413, "too_many_pairs", "pairs");
    snprintf(text, sizeof text, "{\"pairs\": [%s, 5]}", one_same);
    expect_rejected(&s, text, 400, "invalid_field", "pairs[1]");
    snprintf(text, sizeof text, "{\"pairs\": [%s, {\"image1\": \"AAAA\", \"same\": false}]}",
             one_same);
    expect_rejected(&s, text, 400, "missing_field", "pairs[1].image2");
    snprintf(text, sizeof text,
             "{\"pairs\": [%s, {\"image1\": \"AAAA\", \"image2\": \"A!!A\", \"same\": false}]}",
             one_same);
    expect_rejected(&s, text, 400, "bad_base64", "pairs[1].image2");
    snprintf(text, sizeof text,
             "{\"pairs\": [%s, {\"image1\": \"AAAA\", \"image2\": \"AAAA\", \"same\": 1}]}",
             one_same);
    expect_rejected(&s, text, 422, "invalid_value", "pairs[1].same");
    snprintf(text, sizeof text, "{\"pairs\": [%s, %s], \"folds\": 1}", one_same, one_diff);
    expect_rejected(&s, text, 422, "invalid_value", "folds");
    snprintf(text, sizeof text, "{\"pairs\": [%s, %s, %s], \"folds\": 2}", one_same, one_diff,
             one_diff);
    expect_rejected(&s, text, 422, "invalid_value", "pairs");
    snprintf(text, sizeof text, "{\"pairs\": [%s, %s]}", one_same, one_same);
    expect_rejected(&s, text, 422, "invalid_value", "pairs");
    snprintf(text, sizeof text, "{\"pairs\": [%s, %s], \"pca_dim\": 2}", one_same, one_diff);
    expect_rejected(&s, text, 422, "invalid_value", "pca_dim");
    char with_fold[160];
    snprintf(with_fold, sizeof with_fold, pair, "false", ", \"fold\": 1");
    snprintf(text, sizeof text, "{\"pairs\": [%s, %s]}", one_same, with_fold);
    expect_rejected(&s, text, 422, "invalid_value", "pairs[1].fold");
    snprintf(with_fold, sizeof with_fold, pair, "false", ", \"fold\": 2");
    snprintf(text, sizeof text, "{\"pairs\": [%s, %s]}", with_fold, with_fold);
    expect_rejected(&s, text, 422, "invalid_value", "pairs[0].fold");

    struct resp r = http(&s, "POST", "/v1/evaluations", "multipart/form-data; boundary=x",
                         "--x--\r\n", 7);
    cr_assert_str_eq(error_code(&r, 415, NULL), "unsupported_media_type");
    resp_free(&r);

    /* Unknown or malformed ids. */
    const char *missing[] = {
        "/v1/evaluations/0123456789abcdef0123456789abcdef",
        "/v1/evaluations/0123456789abcdef0123456789abcdef/roc.svg",
        "/v1/evaluations/nope",
        "/v1/evaluations/0123456789abcdef0123456789abcdef/other",
        "/v1/evaluations/../healthz",
    };
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        r = get(&s, missing[i]);
        cr_assert_str_eq(error_code(&r, 404, NULL), "not_found", "%s", missing[i]);
        resp_free(&r);
    }
    r = get(&s, "/v1/evaluations");
    cr_assert_str_eq(error_code(&r, 405, NULL), "method_not_allowed");
    resp_free(&r);

    /* Every documented evaluation path is in /openapi.json. */
    r = get(&s, "/openapi.json");
    const cJSON *paths = cJSON_GetObjectItem(r.json, "paths");
    cr_assert_not_null(cJSON_GetObjectItem(cJSON_GetObjectItem(paths, "/v1/evaluations"), "post"));
    cr_assert_not_null(
        cJSON_GetObjectItem(cJSON_GetObjectItem(paths, "/v1/evaluations/{id}"), "get"));
    cr_assert_not_null(
        cJSON_GetObjectItem(cJSON_GetObjectItem(paths, "/v1/evaluations/{id}/roc.svg"), "get"));
    resp_free(&r);
    cr_assert_eq(server_stop(&s, 20), 0);
}

Test(server_eval, full_queue_gives_429_and_shutdown_cancels, .timeout = 90)
{
    struct server s;
    server_start(&s, NULL);
    struct people p = {0};
    people_load(&s, &p);
    /* One job runs, four (the default queue) wait, the rest are refused. */
    char *text = NULL;
    {
        cJSON *body = inline_body(&p, 1);
        text = cJSON_PrintUnformatted(body);
        cJSON_Delete(body);
    }
    int accepted = 0, refused = 0;
    for (int i = 0; i < 7; i++) {
        struct resp r = post_text(&s, text);
        if (r.status == 202)
            accepted++;
        else if (r.status == 429 && strcmp(error_code(&r, 429, NULL), "busy") == 0)
            refused++;
        else
            cr_assert_fail("unexpected %ld: %s", r.status, r.body);
        resp_free(&r);
    }
    free(text);
    cr_assert_eq(accepted, 5, "accepted %d, refused %d", accepted, refused);
    cr_assert_eq(refused, 2);
    /* SIGTERM with evaluations running and waiting: a prompt, clean exit. */
    double t0 = now_s();
    cr_assert_eq(server_stop(&s, 15), 0);
    cr_assert_lt(now_s() - t0, 10.0, "shutdown took %.1f s", now_s() - t0);
    people_free(&p);
}
