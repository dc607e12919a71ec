/* test_server_page.c - end to end: POST /v1/align against `facever align`, the
 * face indices of /v1/verify, and the page (GET /, /app.js, /app.css) with its
 * security headers. */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/base64.h"
#include "pipeline/image.h"
#include "tests/server_harness.h"

TestSuite(page, .fini = harness_kill_servers);

static const char photo_path[] = "tests/data/sample1.jpg";

static double number(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", name);
    return v->valuedouble;
}

/* {"image": base64 of photo} plus "face": face when face >= 0. */
static struct resp post_align(const struct server *s, const struct bytes *photo, int face)
{
    cJSON *body = cJSON_CreateObject();
    char *b64 = harness_base64(photo);
    cJSON_AddStringToObject(body, "image", b64);
    free(b64);
    if (face >= 0)
        cJSON_AddNumberToObject(body, "face", face);
    struct resp r = harness_post_json(s, "/v1/align", body);
    cJSON_Delete(body);
    return r;
}

/* The crop of an align face, decoded. */
static struct fv_image *crop_of(const cJSON *face)
{
    const cJSON *png = cJSON_GetObjectItemCaseSensitive(face, "crop_png");
    cr_assert(cJSON_IsString(png));
    uint8_t *bytes = NULL;
    size_t size = 0;
    cr_assert_eq(fv_base64_decode_alloc(png->valuestring, strlen(png->valuestring), &bytes, &size),
                 FV_OK);
    cr_assert(size > 8 && memcmp(bytes, "\x89PNG\r\n\x1a\n", 8) == 0, "crop_png is not a PNG");
    struct fv_image *img = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_image_decode(bytes, size, NULL, &img, &err), FV_OK, "%s", err.message);
    free(bytes);
    return img;
}

static void assert_same_pixels(const struct fv_image *a, const struct fv_image *b, const char *what)
{
    cr_assert_eq(a->width, b->width, "%s: width %d vs %d", what, a->width, b->width);
    cr_assert_eq(a->height, b->height, "%s: height %d vs %d", what, a->height, b->height);
    cr_assert(memcmp(a->rgb, b->rgb, (size_t)a->width * a->height * 3) == 0,
              "%s: the pixels differ", what);
}

/* Whether `facever align` is a command of this binary. */
static int cli_has_align(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s align --help >/dev/null 2>&1", harness_facever_path());
    return system(cmd) == 0;
}

Test(page, align_crops_are_what_the_cli_writes, .timeout = 90)
{
    struct server s;
    harness_server_start(&s, photo_path, NULL);
    struct resp r = harness_get(&s, "/v1/models");
    cr_assert_eq(r.status, 200);
    const cJSON *input =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "models"), 0), "input");
    int in_w = (int)number(input, "width"), in_h = (int)number(input, "height");
    harness_resp_free(&r);

    struct bytes photo = harness_read_file(photo_path);
    r = post_align(&s, &photo, -1);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(cJSON_GetObjectItem(r.json, "policy")->valuestring, "all");
    cr_assert_eq(number(cJSON_GetObjectItem(r.json, "input"), "width"), in_w);
    cr_assert_eq(number(cJSON_GetObjectItem(r.json, "input"), "height"), in_h);
    const cJSON *faces = cJSON_GetObjectItem(r.json, "faces");
    int n = cJSON_GetArraySize(faces);
    cr_assert_geq(n, 2, "sample1.jpg has several faces");

    char dir[] = "/tmp/fv-align-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    int cli = cli_has_align();
    if (cli) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s align %s --policy all --out %s/crop.png >/dev/null",
                 harness_facever_path(), photo_path, dir);
        cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    } else {
        cr_log_warn("facever align is missing: crops checked for size only");
    }
    for (int i = 0; i < n; i++) {
        const cJSON *f = cJSON_GetArrayItem(faces, i);
        cr_assert_eq(number(f, "index"), i);
        cr_assert(cJSON_IsArray(cJSON_GetObjectItem(f, "box")));
        cr_assert(cJSON_IsObject(cJSON_GetObjectItem(f, "landmarks")));
        struct fv_image *crop = crop_of(f);
        cr_assert_eq(crop->width, in_w);
        cr_assert_eq(crop->height, in_h);
        cr_assert_eq(number(f, "crop_width"), in_w);
        cr_assert_eq(number(f, "crop_height"), in_h);
        if (cli) {
            char path[128], what[64];
            snprintf(path, sizeof path, "%s/crop-%d.png", dir, i);
            struct fv_image *want = NULL;
            struct fv_error err = {0};
            cr_assert_eq(fv_image_load(path, NULL, &want, &err), FV_OK, "%s", err.message);
            snprintf(what, sizeof what, "face %d", i);
            assert_same_pixels(crop, want, what);
            fv_image_free(want);
            unlink(path);
        }
        fv_image_free(crop);
    }
    rmdir(dir);

    /* face picks one, with the same crop and index */
    struct resp one = post_align(&s, &photo, n - 1);
    cr_assert_eq(one.status, 200, "%s", one.body);
    const cJSON *only = cJSON_GetObjectItem(one.json, "faces");
    cr_assert_eq(cJSON_GetArraySize(only), 1);
    cr_assert_eq(number(cJSON_GetArrayItem(only, 0), "index"), n - 1);
    struct fv_image *a = crop_of(cJSON_GetArrayItem(only, 0));
    struct fv_image *b = crop_of(cJSON_GetArrayItem(faces, n - 1));
    assert_same_pixels(a, b, "face n-1 alone");
    fv_image_free(a);
    fv_image_free(b);
    harness_resp_free(&one);

    /* past the last face */
    one = post_align(&s, &photo, n);
    cr_assert_str_eq(harness_error_code(&one, 422, "face"), "invalid_value");
    harness_resp_free(&one);
    harness_resp_free(&r);
    free(photo.data);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(page, align_without_a_face_is_no_face, .timeout = 60)
{
    struct server s;
    harness_server_start(&s, photo_path, NULL);
    struct samples t = {0};
    harness_samples_load(&s, &t);
    struct resp r = post_align(&s, &t.blank, -1);
    cr_assert_str_eq(harness_error_code(&r, 422, "image"), "no_face");
    harness_resp_free(&r);
    /* the code verify answers with for the same photo */
    cJSON *body = harness_verify_body(&t.face_a, &t.blank);
    r = harness_post_json(&s, "/v1/verify", body);
    cJSON_Delete(body);
    cr_assert_str_eq(harness_error_code(&r, 422, "image2"), "no_face");
    harness_resp_free(&r);
    /* and no image at all */
    r = harness_http(&s, "POST", "/v1/align", "application/json", "{}", 2, NULL);
    cr_assert_str_eq(harness_error_code(&r, 400, "image"), "missing_field");
    harness_resp_free(&r);
    harness_samples_free(&t);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

/* POST /v1/verify of sample1.jpg against itself with face1 and face2 (-1: left out). */
static struct resp verify_faces(const struct server *s, const struct bytes *photo, int face1,
                                int face2)
{
    cJSON *body = harness_verify_body(photo, photo);
    if (face1 >= 0)
        cJSON_AddNumberToObject(body, "face1", face1);
    if (face2 >= 0)
        cJSON_AddNumberToObject(body, "face2", face2);
    struct resp r = harness_post_json(s, "/v1/verify", body);
    cJSON_Delete(body);
    return r;
}

static void assert_box_of(const struct resp *r, const char *which, const cJSON *face)
{
    const cJSON *got = cJSON_GetObjectItem(cJSON_GetObjectItem(r->json, which), "box");
    const cJSON *want = cJSON_GetObjectItem(face, "box");
    cr_assert(cJSON_Compare(got, want, 1), "%s is not the face asked for", which);
}

Test(page, verify_compares_the_faces_asked_for, .timeout = 90)
{
    struct server s;
    harness_server_start(&s, photo_path, NULL);
    struct bytes photo = harness_read_file(photo_path);
    struct resp d = post_align(&s, &photo, -1);
    cr_assert_eq(d.status, 200);
    const cJSON *faces = cJSON_GetObjectItem(d.json, "faces");
    int n = cJSON_GetArraySize(faces);
    cr_assert_geq(n, 2);

    /* the same face on both sides: a match, whatever the policy would choose */
    for (int i = 0; i < n; i++) {
        struct resp r = verify_faces(&s, &photo, i, i);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert_gt(number(r.json, "score"), 0.99, "face %d against itself", i);
        assert_box_of(&r, "face1", cJSON_GetArrayItem(faces, i));
        assert_box_of(&r, "face2", cJSON_GetArrayItem(faces, i));
        cr_assert_null(cJSON_GetObjectItem(r.json, "matches"), "one face asked for, one scored");
        harness_resp_free(&r);
    }
    /* two different people: not a match; and the order does not matter */
    struct resp ab = verify_faces(&s, &photo, 0, 1), ba = verify_faces(&s, &photo, 1, 0);
    cr_assert_eq(ab.status, 200);
    cr_assert_eq(ba.status, 200);
    cr_assert_lt(number(ab.json, "score"), number(ab.json, "threshold"));
    cr_assert_float_eq(number(ab.json, "score"), number(ba.json, "score"), 1e-5);
    harness_resp_free(&ab);
    harness_resp_free(&ba);
    /* face2 alone: image1 by policy, image2's face fixed instead of searched */
    struct resp only2 = verify_faces(&s, &photo, -1, 1);
    cr_assert_eq(only2.status, 200);
    assert_box_of(&only2, "face2", cJSON_GetArrayItem(faces, 1));
    harness_resp_free(&only2);

    struct resp bad = verify_faces(&s, &photo, 0, n);
    cr_assert_str_eq(harness_error_code(&bad, 422, "face2"), "invalid_value");
    harness_resp_free(&bad);
    bad = verify_faces(&s, &photo, -1, -1);
    cr_assert_eq(bad.status, 200);
    harness_resp_free(&bad);
    cJSON *body = harness_verify_body(&photo, &photo);
    cJSON_AddStringToObject(body, "face1", "first");
    bad = harness_post_json(&s, "/v1/verify", body);
    cJSON_Delete(body);
    cr_assert_str_eq(harness_error_code(&bad, 422, "face1"), "invalid_value");
    harness_resp_free(&bad);
    /* a face index for a side given as an embedding */
    body = cJSON_CreateObject();
    char *b64 = harness_base64(&photo);
    cJSON_AddStringToObject(body, "image1", b64);
    free(b64);
    struct resp m = harness_get(&s, "/v1/models");
    int dim = (int)number(cJSON_GetArrayItem(cJSON_GetObjectItem(m.json, "models"), 0),
                          "embedding_dim");
    harness_resp_free(&m);
    cJSON *e = cJSON_AddArrayToObject(body, "embedding2");
    for (int i = 0; i < dim; i++)
        cJSON_AddItemToArray(e, cJSON_CreateNumber(i == 0));
    cJSON_AddNumberToObject(body, "face2", 0);
    bad = harness_post_json(&s, "/v1/verify", body);
    cJSON_Delete(body);
    cr_assert_str_eq(harness_error_code(&bad, 400, "face2"), "invalid_field");
    harness_resp_free(&bad);

    harness_resp_free(&d);
    free(photo.data);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

/* ---- the page ---- */

struct headers {
    char text[4096];
    size_t used;
};

static size_t keep_header(char *line, size_t size, size_t count, void *arg)
{
    struct headers *h = arg;
    size_t n = size * count;
    if (h->used + n < sizeof h->text) {
        memcpy(h->text + h->used, line, n);
        h->used += n;
        h->text[h->used] = 0;
    }
    return n;
}

static size_t keep_body(char *data, size_t size, size_t count, void *arg)
{
    struct bytes *b = arg;
    size_t n = size * count;
    uint8_t *grown = realloc(b->data, b->size + n + 1);
    cr_assert_not_null(grown);
    memcpy(grown + b->size, data, n);
    b->data = grown;
    b->size += n;
    b->data[b->size] = 0;
    return n;
}

/* The value of header name (case-insensitive) in h, copied to out; 0 when absent. */
static int header_value(const struct headers *h, const char *name, char *out, size_t cap)
{
    size_t len = strlen(name);
    for (const char *line = h->text; line && *line; line = strstr(line, "\r\n")) {
        if (line[0] == '\r')
            line += 2;
        if (strncasecmp(line, name, len) == 0 && line[len] == ':') {
            const char *v = line + len + 1;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r\n");
            snprintf(out, cap, "%.*s", (int)n, v);
            return 1;
        }
    }
    return 0;
}

static long get_with_headers(const struct server *s, const char *path, struct headers *h,
                             struct bytes *body)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, keep_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

Test(page, page_is_served_open_with_a_strict_policy, .timeout = 60)
{
    char keys_path[] = "/tmp/fv-page-keys-XXXXXX";
    int fd = mkstemp(keys_path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "page-key\n", 9), 9);
    close(fd);
    const char *const extra[] = {"--api-keys", keys_path, NULL};
    struct server s;
    harness_server_start(&s, photo_path, extra);
    static const struct {
        const char *path, *file, *type;
    } files[] = {
        {"/", "api/page/index.html", "text/html"},
        {"/app.js", "api/page/app.js", "text/javascript"},
        {"/app.css", "api/page/app.css", "text/css"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct headers h = {{0}, 0};
        struct bytes body = {0};
        cr_assert_eq(get_with_headers(&s, files[i].path, &h, &body), 200,
                     "%s needs no key", files[i].path);
        char v[512];
        cr_assert(header_value(&h, "Content-Type", v, sizeof v));
        cr_assert_eq(strncmp(v, files[i].type, strlen(files[i].type)), 0, "%s: %s", files[i].path, v);
        cr_assert(header_value(&h, "Content-Security-Policy", v, sizeof v), "%s", files[i].path);
        cr_assert_str_eq(v, "default-src 'none'; script-src 'self'; style-src 'self'; "
                            "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
                            "form-action 'none'; frame-ancestors 'none'");
        cr_assert(header_value(&h, "X-Content-Type-Options", v, sizeof v));
        cr_assert_str_eq(v, "nosniff");
        cr_assert(header_value(&h, "Cache-Control", v, sizeof v));
        cr_assert_str_eq(v, "no-cache");
        struct bytes file = harness_read_file(files[i].file);
        cr_assert_eq(body.size, file.size, "%s is not %s as built", files[i].path, files[i].file);
        cr_assert(memcmp(body.data, file.data, file.size) == 0);
        free(file.data);
        free(body.data);
    }
    /* No inline script or style for the policy to block: every script has a src. */
    struct bytes html = harness_read_file("api/page/index.html");
    char *text = malloc(html.size + 1);
    memcpy(text, html.data, html.size);
    text[html.size] = 0;
    for (const char *p = text; (p = strstr(p, "<script")); p++)
        cr_assert(strstr(p, ">") > strstr(p, " src="), "an inline <script>");
    cr_assert_null(strstr(text, "<style"));
    cr_assert_null(strstr(text, " style="));
    cr_assert_null(strstr(text, " onclick="));
    free(text);
    free(html.data);
    /* The page's calls still need the key; the script keeps it in memory only. */
    struct resp r = harness_http(&s, "POST", "/v1/align", "application/json", "{}", 2, NULL);
    cr_assert_str_eq(harness_error_code(&r, 401, NULL), "unauthorized");
    harness_resp_free(&r);
    struct bytes js = harness_read_file("api/page/app.js");
    char *script = malloc(js.size + 1);
    memcpy(script, js.data, js.size);
    script[js.size] = 0;
    cr_assert_null(strstr(script, "localStorage"));
    cr_assert_null(strstr(script, "sessionStorage"));
    cr_assert_null(strstr(script, "document.cookie"));
    cr_assert_not_null(strstr(script, "X-API-Key"));
    free(script);
    free(js.data);
    /* HEAD works as for every GET route, and other methods are 405 */
    r = harness_http(&s, "POST", "/", "application/json", "{}", 2, NULL);
    cr_assert_eq(r.status, 405);
    harness_resp_free(&r);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
    unlink(keys_path);
}

/* ---- the same as multipart/form-data, as the page sends it ---- */

struct form {
    char boundary[40];
    uint8_t *data;
    size_t size;
};

static void form_add(struct form *f, const char *name, const void *data, size_t size)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "--%s\r\nContent-Disposition: form-data; name=\"%s\"%s\r\n\r\n", f->boundary,
                     name, size > 64 ? "; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg" : "");
    f->data = realloc(f->data, f->size + (size_t)n + size + 2);
    cr_assert_not_null(f->data);
    memcpy(f->data + f->size, head, (size_t)n);
    memcpy(f->data + f->size + n, data, size);
    memcpy(f->data + f->size + n + size, "\r\n", 2);
    f->size += (size_t)n + size + 2;
}

static struct resp form_post(const struct server *s, const char *path, struct form *f)
{
    char tail[64], type[96];
    int n = snprintf(tail, sizeof tail, "--%s--\r\n", f->boundary);
    f->data = realloc(f->data, f->size + (size_t)n);
    cr_assert_not_null(f->data);
    memcpy(f->data + f->size, tail, (size_t)n);
    f->size += (size_t)n;
    snprintf(type, sizeof type, "multipart/form-data; boundary=%s", f->boundary);
    struct resp r = harness_http(s, "POST", path, type, f->data, f->size, NULL);
    free(f->data);
    f->data = NULL;
    f->size = 0;
    return r;
}

Test(page, face_indices_as_multipart, .timeout = 60)
{
    struct server s;
    harness_server_start(&s, photo_path, NULL);
    struct bytes photo = harness_read_file(photo_path);
    struct form f = {"fv-page-test-boundary", NULL, 0};
    form_add(&f, "image", photo.data, photo.size);
    form_add(&f, "face", "2", 1);
    struct resp a = form_post(&s, "/v1/align", &f);
    cr_assert_eq(a.status, 200, "%s", a.body);
    const cJSON *faces = cJSON_GetObjectItem(a.json, "faces");
    cr_assert_eq(cJSON_GetArraySize(faces), 1);
    cr_assert_eq(number(cJSON_GetArrayItem(faces, 0), "index"), 2);

    form_add(&f, "image1", photo.data, photo.size);
    form_add(&f, "image2", photo.data, photo.size);
    form_add(&f, "face1", "2", 1);
    form_add(&f, "face2", "2", 1);
    struct resp v = form_post(&s, "/v1/verify", &f);
    cr_assert_eq(v.status, 200, "%s", v.body);
    cr_assert_gt(number(v.json, "score"), 0.99);
    assert_box_of(&v, "face1", cJSON_GetArrayItem(faces, 0));
    harness_resp_free(&v);

    static const char *const bad[] = {"-1", "1.5", "x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        form_add(&f, "image1", photo.data, photo.size);
        form_add(&f, "image2", photo.data, photo.size);
        form_add(&f, "face1", bad[i], strlen(bad[i]));
        v = form_post(&s, "/v1/verify", &f);
        cr_assert_str_eq(harness_error_code(&v, 422, "face1"), "invalid_value", "face1='%s'", bad[i]);
        harness_resp_free(&v);
    }
    harness_resp_free(&a);
    free(photo.data);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}
