/* test_server.c - the API's parsers, and `facever serve` end to end over HTTP.
 *
 * The end-to-end tests start the real binary ($FACEVER, default ./facever) with
 * --port 0, read the port from its "listening on" line and talk HTTP with
 * libcurl, all through tests/server_harness.h. Test images are cut out of
 * tests/data/sample1.jpg with the server's own detector boxes, so nothing
 * outside the repository is needed.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/auth.h"
#include "api/base64.h"
#include "api/multipart.h"
#include "model/cpu.h"
#include "model/gemm.h"
#include "pipeline/image.h"
#include "tests/server_harness.h"

/* ---- parsers ---- */

static int decode_text(const char *text, uint8_t *out, size_t cap, size_t *n)
{
    return fv_base64_decode(text, strlen(text), out, cap, n);
}

Test(api_base64, decodes_valid_text)
{
    uint8_t out[64];
    size_t n;
    cr_assert_eq(decode_text("aGVsbG8gd29ybGQ=", out, sizeof out, &n), FV_OK);
    cr_assert_eq(n, 11);
    cr_assert_arr_eq(out, "hello world", 11);
    cr_assert_eq(decode_text("aGVsbG8gd29ybGQ", out, sizeof out, &n), FV_OK, "padding optional");
    cr_assert_eq(n, 11);
    cr_assert_eq(decode_text("aGVs\r\nbG8g d29y\tbGQ=\n", out, sizeof out, &n), FV_OK);
    cr_assert_eq(n, 11);
    cr_assert_eq(decode_text("", out, sizeof out, &n), FV_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(decode_text("+/+/", out, sizeof out, &n), FV_OK);
    uint8_t std[3];
    memcpy(std, out, 3);
    cr_assert_eq(decode_text("-_-_", out, sizeof out, &n), FV_OK, "URL-safe alphabet");
    cr_assert_arr_eq(out, std, 3);
    cr_assert_eq(decode_text("YQ==", out, sizeof out, &n), FV_OK);
    cr_assert(n == 1 && out[0] == 'a');
    cr_assert_eq(decode_text("YWI=", out, sizeof out, &n), FV_OK);
    cr_assert(n == 2 && out[1] == 'b');
}

Test(api_base64, rejects_malformed_text)
{
    uint8_t out[64];
    size_t n;
    const char *bad[] = {"a",     "YQ=",    "YQ===",   "Y===",  "YQ==YQ==", "aGVs!G8=",
                         "=YQ==", "YR==",   "YWJ=",    "\x80QQ", "ab=c",     "aGVsbG8gd29ybGQ=="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(decode_text(bad[i], out, sizeof out, &n), FV_ERR_FORMAT, "'%s'", bad[i]);
    cr_assert_eq(decode_text("aGVsbG8gd29ybGQ=", out, 10, &n), FV_ERR_TOO_LARGE);
    cr_assert_eq(fv_base64_decoded_max(16), 12);
    cr_assert_eq(fv_base64_decoded_max(15), 12);
}

Test(api_base64, data_uri_prefix)
{
    const char *uri = "data:image/jpeg;base64,AAAA";
    cr_assert_eq(fv_base64_data_uri_offset(uri, strlen(uri)), 23);
    cr_assert_eq(fv_base64_data_uri_offset("AAAA", 4), 0);
    const char *plain = "data:text/plain,hello";
    cr_assert_eq(fv_base64_data_uri_offset(plain, strlen(plain)), (size_t)-1);
    cr_assert_eq(fv_base64_data_uri_offset("data:xyz", 8), (size_t)-1);
}

Test(api_base64, decode_alloc_takes_plain_text_and_data_uris)
{
    uint8_t *bytes = NULL;
    size_t n = 0;
    const char *plain = "aGVsbG8gd29ybGQ=", *uri = "data:image/jpeg;base64,aGVsbG8gd29ybGQ=";
    cr_assert_eq(fv_base64_decode_alloc(plain, strlen(plain), &bytes, &n), FV_OK);
    cr_assert(n == 11 && memcmp(bytes, "hello world", 11) == 0);
    free(bytes);
    cr_assert_eq(fv_base64_decode_alloc(uri, strlen(uri), &bytes, &n), FV_OK);
    cr_assert(n == 11 && memcmp(bytes, "hello world", 11) == 0);
    free(bytes);
    cr_assert_eq(fv_base64_decode_alloc("", 0, &bytes, &n), FV_OK);
    cr_assert_eq(n, 0);
    free(bytes);
    const char *text_uri = "data:text/plain,hello";
    bytes = (uint8_t *)1;
    cr_assert_eq(fv_base64_decode_alloc(text_uri, strlen(text_uri), &bytes, &n),
                 FV_ERR_UNSUPPORTED);
    cr_assert_null(bytes);
    bytes = (uint8_t *)1;
    cr_assert_eq(fv_base64_decode_alloc("aGVs!G8=", 8, &bytes, &n), FV_ERR_FORMAT);
    cr_assert_null(bytes);
    cr_assert_eq(n, 0);
}

/* RFC 4648's test vectors, and every length 0..64 of random bytes through the
 * decoder and back. */
Test(api_base64, encode_matches_rfc_vectors_and_round_trips)
{
    const char *vectors[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
        char *got = fv_base64_encode((const uint8_t *)vectors[i][0], strlen(vectors[i][0]));
        cr_assert_str_eq(got, vectors[i][1]);
        free(got);
    }
    uint8_t data[64];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 167 + 13);
    for (size_t n = 0; n <= sizeof data; n++) {
        char *text = fv_base64_encode(data, n);
        uint8_t *back = NULL;
        size_t m = 0;
        cr_assert_eq(fv_base64_decode_alloc(text, strlen(text), &back, &m), FV_OK);
        cr_assert(m == n && (n == 0 || memcmp(back, data, n) == 0), "length %zu", n);
        free(text);
        free(back);
    }
}

Test(api_multipart, boundary_parameter)
{
    char b[FV_MULTIPART_BOUNDARY_MAX + 1];
    cr_assert_eq(fv_multipart_boundary("multipart/form-data; boundary=abc123", b), FV_OK);
    cr_assert_str_eq(b, "abc123");
    cr_assert_eq(fv_multipart_boundary("Multipart/Form-Data;charset=utf-8; boundary=\"a b:c\"", b),
                 FV_OK);
    cr_assert_str_eq(b, "a b:c");
    cr_assert_eq(fv_multipart_boundary("multipart/form-data", b), FV_ERR_FORMAT);
    cr_assert_eq(fv_multipart_boundary("multipart/form-data; boundary=", b), FV_ERR_FORMAT);
    cr_assert_eq(fv_multipart_boundary("multipart/form-data; boundary=\"abc", b), FV_ERR_FORMAT);
    cr_assert_eq(fv_multipart_boundary("multipart/mixed; boundary=abc", b), FV_ERR_FORMAT);
    cr_assert_eq(fv_multipart_boundary("multipart/form-data; boundary=a<b", b), FV_ERR_FORMAT);
    char longb[200] = "multipart/form-data; boundary=";
    memset(longb + strlen(longb), 'x', 100);
    cr_assert_eq(fv_multipart_boundary(longb, b), FV_ERR_FORMAT);
}

static enum fv_status parse(const char *body, const char *boundary,
                            struct fv_multipart_part *parts, int max, int *n)
{
    struct fv_error err = {0};
    return fv_multipart_parse((const uint8_t *)body, strlen(body), boundary, parts, max, n, &err);
}

Test(api_multipart, parses_parts)
{
    const char *body = "preamble\r\n"
                       "--XyZ\r\n"
                       "Content-Disposition: form-data; name=\"image1\"; filename=\"a;b.jpg\"\r\n"
                       "Content-Type: image/jpeg\r\n"
                       "\r\n"
                       "\xff\xd8--XyZ not a delimiter\r\n\r\n"
                       "--XyZ\r\n"
                       "content-disposition: form-data; name=threshold\r\n"
                       "\r\n"
                       "0.5\r\n"
                       "--XyZ\r\n"
                       "Content-Disposition: form-data; name=\"empty\"\r\n"
                       "\r\n"
                       "\r\n"
                       "--XyZ--\r\nepilogue";
    struct fv_multipart_part parts[4];
    int n;
    cr_assert_eq(parse(body, "XyZ", parts, 4, &n), FV_OK);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(parts[0].name, "image1");
    cr_assert_str_eq(parts[0].content_type, "image/jpeg");
    cr_assert(parts[0].has_filename);
    cr_assert_eq(parts[0].size, strlen("\xff\xd8--XyZ not a delimiter\r\n"));
    cr_assert_str_eq(parts[1].name, "threshold");
    cr_assert_eq(parts[1].size, 3);
    cr_assert_arr_eq(parts[1].data, "0.5", 3);
    cr_assert_eq(parts[2].size, 0);
    cr_assert_eq(fv_multipart_find(parts, n, "threshold"), &parts[1]);
    cr_assert_null(fv_multipart_find(parts, n, "image2"));

    const char *lf = "--b\nContent-Disposition: form-data; name=\"x\"\n\nvalue\n--b--\n";
    cr_assert_eq(parse(lf, "b", parts, 4, &n), FV_OK, "bare LF line breaks");
    cr_assert(n == 1 && parts[0].size == 5);
    cr_assert_eq(parse(body, "XyZ", parts, 2, &n), FV_ERR_TOO_LARGE);
}

Test(api_multipart, rejects_malformed_bodies)
{
    struct fv_multipart_part parts[4];
    int n;
    const char *bad[] = {
        "",
        "no delimiter at all",
        "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nvalue", /* no closing */
        "--b\r\nContent-Type: text/plain\r\n\r\nvalue\r\n--b--",         /* no disposition */
        "--b\r\nContent-Disposition: attachment; name=\"x\"\r\n\r\nv\r\n--b--",
        "--b\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--b--", /* no name */
        "--b\r\nContent-Disposition: form-data; name=\"x\r\n\r\nv\r\n--b--",
        "--b\r\nContent-Disposition: form-data; name=\"x\"\r\nvalue\r\n--b--", /* no blank line */
        "--bxx\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n--b--",
        "--b\r\nbroken header line\r\n\r\nv\r\n--b--",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(parse(bad[i], "b", parts, 4, &n), FV_ERR_FORMAT, "body %zu", i);
}

Test(api_auth, keys_file_format_and_check)
{
    const char *text = "# staff keys\n  alpha-123  \n\nbeta\r\n#gamma\n";
    struct fv_api_keys *keys;
    struct fv_error err = {0};
    cr_assert_eq(fv_api_keys_parse(text, strlen(text), &keys, &err), FV_OK);
    cr_assert_eq(fv_api_keys_count(keys), 2);
    cr_assert(fv_api_keys_check(keys, "alpha-123", 9));
    cr_assert(fv_api_keys_check(keys, "beta", 4));
    cr_assert_not(fv_api_keys_check(keys, "gamma", 5));
    cr_assert_not(fv_api_keys_check(keys, "alpha-12", 8));
    cr_assert_not(fv_api_keys_check(keys, "alpha-1234", 10));
    cr_assert_not(fv_api_keys_check(keys, "", 0));
    fv_api_keys_free(keys);
    cr_assert_eq(fv_api_keys_parse("# only a comment\n", 17, &keys, &err), FV_ERR_FORMAT);
}

/* ---- end to end: servers started with tests/server_harness.h ---- */

TestSuite(server, .fini = harness_kill_servers);

/* ---- multipart bodies ---- */

struct form {
    char *data;
    size_t size;
};

static void form_add(struct form *f, const char *name, const void *data, size_t size,
                     int is_file)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "--fvTestBoundary\r\nContent-Disposition: form-data; name=\"%s\"%s\r\n%s\r\n",
                     name, is_file ? "; filename=\"x.jpg\"" : "",
                     is_file ? "Content-Type: application/octet-stream\r\n" : "");
    f->data = realloc(f->data, f->size + (size_t)n + size + 2);
    memcpy(f->data + f->size, head, (size_t)n);
    memcpy(f->data + f->size + n, data, size);
    memcpy(f->data + f->size + n + size, "\r\n", 2);
    f->size += (size_t)n + size + 2;
}

static struct resp post_form(const struct server *s, const char *path, struct form *f)
{
    const char *end = "--fvTestBoundary--\r\n";
    f->data = realloc(f->data, f->size + strlen(end));
    memcpy(f->data + f->size, end, strlen(end));
    f->size += strlen(end);
    struct resp r = harness_http(s, "POST", path,
                                 "multipart/form-data; boundary=\"fvTestBoundary\"", f->data,
                                 f->size, NULL);
    free(f->data);
    memset(f, 0, sizeof *f);
    return r;
}

static double number(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(o, name);
    cr_assert(cJSON_IsNumber(v), "no number %s", name);
    return v->valuedouble;
}

static int boolean(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(o, name);
    cr_assert(cJSON_IsBool(v), "no boolean %s", name);
    return cJSON_IsTrue(v);
}

static void check_face(const cJSON *face)
{
    cr_assert(cJSON_IsObject(face));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(face, "box")), 4);
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(face, "score")));
    const cJSON *lm = cJSON_GetObjectItem(face, "landmarks");
    const char *names[] = {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"};
    for (int k = 0; k < 5; k++)
        cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(lm, names[k])), 2);
}

/* The value on the sample line of an unlabelled metric, -1 when absent. */
static long metric_value(const char *text, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *line = strstr(text, key);
    return line ? atol(line + strlen(key)) : -1;
}

/* ---- end to end ---- */

Test(server, endpoints_happy_paths, .timeout = 60)
{
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", NULL);
    struct samples t = {0};
    harness_samples_load(&s, &t);

    struct resp r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(cJSON_GetObjectItem(r.json, "status")->valuestring, "ok");
    harness_resp_free(&r);
    r = harness_get(&s, "/readyz");
    cr_assert_eq(r.status, 200);
    harness_resp_free(&r);
    r = harness_get(&s, "/v1/models");
    cr_assert_eq(r.status, 200);
    const cJSON *model = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "models"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(model, "name")->valuestring, "mobilefacenet");
    int dim = (int)number(model, "embedding_dim");
    cr_assert_gt(dim, 0);
    cr_assert_eq(number(cJSON_GetObjectItem(model, "input"), "width"), 112);
    double model_threshold = number(model, "threshold");
    cr_assert_not(boolean(model, "pca"));
    const cJSON *precision = cJSON_GetObjectItem(model, "precision");
    cr_assert(cJSON_IsString(precision));
    cr_expect_str_eq(precision->valuestring,
                     fv_cpu_active_level() == FV_CPU_AVX512_BF16 ? "bf16" : "fp32");
    const cJSON *level = cJSON_GetObjectItem(model, "cpu_level");
    cr_assert(cJSON_IsString(level));
    cr_expect_str_eq(level->valuestring, fv_cpu_level_name(fv_cpu_active_level()));
    harness_resp_free(&r);

    /* same face, rescaled and re-encoded: a match (JSON, data URI on image2) */
    cJSON *body = harness_verify_body(&t.face_a, &t.face_a2);
    cJSON_AddTrueToObject(body, "return_embeddings");
    r = harness_post_json(&s, "/v1/verify", body);
    cJSON_Delete(body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(boolean(r.json, "match"), "%s", r.body);
    cr_assert_gt(number(r.json, "score"), 0.8);
    cr_assert_float_eq(number(r.json, "threshold"), model_threshold, 1e-6);
    check_face(cJSON_GetObjectItem(r.json, "face1"));
    check_face(cJSON_GetObjectItem(r.json, "face2"));
    cr_assert_null(cJSON_GetObjectItem(r.json, "matches"), "one face in image2");
    cr_assert_str_eq(cJSON_GetObjectItem(r.json, "model")->valuestring, "mobilefacenet");
    const cJSON *timings = cJSON_GetObjectItem(r.json, "timings_ms");
    number(timings, "decode");
    number(timings, "image1");
    number(timings, "image2");
    cr_assert_gt(number(timings, "total"), 0);
    cJSON *embedding1 = cJSON_DetachItemFromObject(r.json, "embedding1");
    cr_assert_eq(cJSON_GetArraySize(embedding1), dim);
    harness_resp_free(&r);

    /* two different people: no match (multipart, explicit threshold and policy) */
    struct form f = {0};
    form_add(&f, "image1", t.face_a.data, t.face_a.size, 1);
    form_add(&f, "image2", t.face_b.data, t.face_b.size, 1);
    form_add(&f, "threshold", "0.42", 4, 0);
    form_add(&f, "policy", "center", 6, 0);
    r = post_form(&s, "/v1/verify", &f);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_not(boolean(r.json, "match"), "%s", r.body);
    cr_assert_lt(number(r.json, "score"), 0.42);
    harness_resp_free(&r);

    /* a face against the group photo: every face scored, the right one is face2 */
    body = harness_verify_body(&t.face_a2, &t.photo);
    r = harness_post_json(&s, "/v1/verify", body);
    cJSON_Delete(body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(boolean(r.json, "match"));
    const cJSON *matches = cJSON_GetObjectItem(r.json, "matches");
    cr_assert_eq(cJSON_GetArraySize(matches), t.n_faces);
    int n_match = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, matches)
    {
        check_face(cJSON_GetObjectItem(m, "face"));
        n_match += boolean(m, "match");
        cr_assert_leq(number(m, "score"), number(r.json, "score") + 1e-6);
    }
    cr_assert_eq(n_match, 1, "only the same person matches: %s", r.body);
    const cJSON *box2 = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "face2"), "box");
    cr_assert_float_eq(cJSON_GetArrayItem(box2, 0)->valuedouble, t.box_a[0], 2.0);
    cr_assert_float_eq(cJSON_GetArrayItem(box2, 1)->valuedouble, t.box_a[1], 2.0);
    harness_resp_free(&r);

    /* an embedding instead of image1 */
    body = harness_verify_body(&t.face_b, &t.face_a2);
    cJSON_DeleteItemFromObject(body, "image1");
    cJSON_AddItemToObject(body, "embedding1", embedding1);
    r = harness_post_json(&s, "/v1/verify", body);
    cJSON_Delete(body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(boolean(r.json, "match"));
    cr_assert_null(cJSON_GetObjectItem(r.json, "face1"));
    harness_resp_free(&r);

    /* embed: one image (JSON) */
    body = cJSON_CreateObject();
    char *b64 = harness_base64(&t.face_b);
    cJSON_AddStringToObject(body, "image", b64);
    r = harness_post_json(&s, "/v1/embed", body);
    cJSON_Delete(body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(number(r.json, "dim"), dim);
    cr_assert_not(boolean(r.json, "pca"));
    const cJSON *faces = cJSON_GetObjectItem(r.json, "faces");
    cr_assert_eq(cJSON_GetArraySize(faces), 1);
    const cJSON *emb = cJSON_GetObjectItem(cJSON_GetArrayItem(faces, 0), "embedding");
    cr_assert_eq(cJSON_GetArraySize(emb), dim);
    double norm = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, emb) norm += x->valuedouble * x->valuedouble;
    cr_assert_float_eq(norm, 1.0, 1e-3);
    harness_resp_free(&r);

    /* embed: a batch with a bad image in it (per-image error), policy all */
    body = cJSON_CreateObject();
    cJSON *images = cJSON_AddArrayToObject(body, "images");
    cJSON_AddItemToArray(images, cJSON_CreateString(b64));
    cJSON_AddItemToArray(images, cJSON_CreateString("R0lGODlhAQABAAAAACw="));
    cJSON_AddStringToObject(body, "policy", "all");
    r = harness_post_json(&s, "/v1/embed", body);
    cJSON_Delete(body);
    free(b64);
    cr_assert_eq(r.status, 200, "%s", r.body);
    const cJSON *results = cJSON_GetObjectItem(r.json, "results");
    cr_assert_eq(cJSON_GetArraySize(results), 2);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 0), "faces")), 1);
    cr_assert_not_null(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 1), "error"));
    harness_resp_free(&r);

    /* embed and detect: multipart */
    f = (struct form){0};
    form_add(&f, "image", t.face_a.data, t.face_a.size, 1);
    r = post_form(&s, "/v1/embed", &f);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "faces")), 1);
    harness_resp_free(&r);
    f = (struct form){0};
    form_add(&f, "image", t.blank.data, t.blank.size, 1);
    r = post_form(&s, "/v1/detect", &f);
    cr_assert_eq(r.status, 200, "no face is an empty list for detect: %s", r.body);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "faces")), 0);
    cr_assert_eq(number(r.json, "width"), 160);
    harness_resp_free(&r);

    /* the access log has one line per request */
    char *log = harness_read_log(&s);
    cr_assert_not_null(strstr(log, "POST /v1/verify 200 "), "%s", log);
    cr_assert_not_null(strstr(log, "GET /healthz 200 15 "), "%s", log);
    free(log);

    /* metrics reflect what happened */
    r = harness_get(&s, "/metrics");
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.content_type, "text/plain"));
    cr_assert_not_null(strstr(r.body, "facever_requests_total{route=\"/v1/verify\",status=\"200\"} 4"),
                       "%s", r.body);
    cr_assert_not_null(strstr(r.body, "facever_request_duration_seconds_bucket{route=\"/v1/verify\",le=\"+Inf\"} 4"));
    cr_assert_not_null(strstr(r.body, "facever_request_duration_seconds_count{route=\"/v1/embed\"} 3"));
    cr_assert_not_null(strstr(r.body, "facever_in_flight_requests 1"), "the metrics request itself");
    cr_assert_not_null(strstr(r.body, "facever_rejected_total 0"));
    cr_assert_geq(metric_value(r.body, "facever_faces_detected_total"), 2 * t.n_faces + 8);
    harness_resp_free(&r);

    harness_samples_free(&t);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(server, openapi_lists_every_route, .timeout = 30)
{
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", NULL);
    struct resp r = harness_get(&s, "/openapi.json");
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(r.json, "not JSON");
    cr_assert_str_eq(cJSON_GetObjectItem(r.json, "openapi")->valuestring, "3.0.3");
    /* The document served is api/openapi.json byte for byte (embedded at build time). */
    struct bytes file = harness_read_file("api/openapi.json");
    cr_assert_eq(r.size, file.size, "served %zu bytes, api/openapi.json has %zu", r.size,
                 file.size);
    cr_assert(memcmp(r.body, file.data, file.size) == 0, "served bytes differ from the file");
    free(file.data);
    const cJSON *paths = cJSON_GetObjectItem(r.json, "paths");
    static const char *const routes[][2] = {
        {"post", "/v1/verify"}, {"post", "/v1/embed"}, {"post", "/v1/detect"},
        {"get", "/v1/models"},  {"get", "/healthz"},   {"get", "/readyz"},
        {"get", "/metrics"},    {"get", "/openapi.json"},
        {"post", "/v1/align"},  {"get", "/"},          {"get", "/app.js"},
        {"get", "/app.css"},
        {"post", "/v1/evaluations"},
        {"get", "/v1/evaluations/{id}"},
        {"get", "/v1/evaluations/{id}/roc.svg"},
        {"post", "/v1/evaluations/{id}/cancel"},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const cJSON *op = cJSON_GetObjectItem(cJSON_GetObjectItem(paths, routes[i][1]), routes[i][0]);
        cr_assert(cJSON_IsObject(op), "%s %s missing", routes[i][0], routes[i][1]);
        cr_assert_not_null(cJSON_GetObjectItem(op, "responses"));
        /* and the server really answers it: never 405, and a 404 only for an unknown
         * id in a templated path, not for want of a route */
        char path[256];
        const char *brace = strchr(routes[i][1], '{');
        if (brace)
            snprintf(path, sizeof path, "%.*s%s%s", (int)(brace - routes[i][1]), routes[i][1],
                     "0123456789abcdef0123456789abcdef", strchr(brace, '}') + 1);
        else
            snprintf(path, sizeof path, "%s", routes[i][1]);
        struct resp probe =
            harness_http(&s, routes[i][0][0] == 'p' ? "POST" : "GET", path,
                         routes[i][0][0] == 'p' ? "application/json" : NULL, "{}", 2, NULL);
        cr_assert(probe.status != 405, "%s answered 405", path);
        if (probe.status == 404) {
            const cJSON *e = cJSON_GetObjectItem(probe.json, "error");
            const cJSON *msg = cJSON_GetObjectItem(e, "message");
            cr_assert(brace && cJSON_IsString(msg) && strncmp(msg->valuestring, "no route", 8) != 0,
                      "%s has no route", path);
        }
        harness_resp_free(&probe);
    }
    cr_assert_eq(cJSON_GetArraySize(paths), sizeof routes / sizeof routes[0],
                 "documented paths the server does not answer");
    cr_assert_not_null(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "components"), "schemas"), "VerifyResponse"));
    harness_resp_free(&r);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(server, every_error_status, .timeout = 60)
{
    const char *const extra[] = {"--max-body", "2000000", "--max-pixels", "1000000", NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    struct samples t = {0};
    t.photo = harness_read_file("tests/data/sample1.jpg");
    struct resp r;

    r = harness_http(&s, "POST", "/v1/verify", "application/json", "{\"image1\": ", 11, NULL);
    cr_assert_str_eq(harness_error_code(&r, 400, NULL), "bad_json");
    harness_resp_free(&r);
    r = harness_http(&s, "POST", "/v1/verify", "application/json", "[1,2]", 5, NULL);
    cr_assert_str_eq(harness_error_code(&r, 400, NULL), "bad_json");
    harness_resp_free(&r);
    const char *bad64 = "{\"image1\": \"not base64!\", \"image2\": \"AAAA\"}";
    r = harness_http(&s, "POST", "/v1/verify", "application/json", bad64, strlen(bad64), NULL);
    cr_assert_str_eq(harness_error_code(&r, 400, "image1"), "bad_base64");
    harness_resp_free(&r);
    const char *missing = "{\"image1\": \"AAAA\"}";
    r = harness_http(&s, "POST", "/v1/verify", "application/json", missing, strlen(missing), NULL);
    cr_assert_str_eq(harness_error_code(&r, 400, "image2"), "missing_field");
    harness_resp_free(&r);
    /* a truncated JPEG */
    struct bytes head = {t.photo.data, 3000};
    char *head64 = harness_base64(&head);
    cJSON *truncated = cJSON_CreateObject();
    cJSON_AddStringToObject(truncated, "image1", head64);
    cJSON_AddStringToObject(truncated, "image2", head64);
    free(head64);
    r = harness_post_json(&s, "/v1/verify", truncated);
    cJSON_Delete(truncated);
    cr_assert_str_eq(harness_error_code(&r, 400, "image1"), "bad_image");
    harness_resp_free(&r);
    const char *form = "--zz\r\nContent-Disposition: form-data; name=\"image1\"\r\n\r\nabc";
    r = harness_http(&s, "POST", "/v1/verify", "multipart/form-data; boundary=zz", form,
                     strlen(form), NULL);
    cr_assert_str_eq(harness_error_code(&r, 400, NULL), "bad_multipart");
    harness_resp_free(&r);
    r = harness_http(&s, "POST", "/v1/verify", "multipart/form-data", form, strlen(form), NULL);
    cr_assert_str_eq(harness_error_code(&r, 400, NULL), "bad_multipart");
    harness_resp_free(&r);

    r = harness_get(&s, "/v2/nothing");
    cr_assert_str_eq(harness_error_code(&r, 404, NULL), "not_found");
    harness_resp_free(&r);
    r = harness_get(&s, "/v1/verify");
    cr_assert_str_eq(harness_error_code(&r, 405, NULL), "method_not_allowed");
    cr_assert_str_eq(r.allow, "POST");
    harness_resp_free(&r);
    r = harness_http(&s, "POST", "/healthz", "application/json", "{}", 2, NULL);
    cr_assert_str_eq(harness_error_code(&r, 405, NULL), "method_not_allowed");
    cr_assert_not_null(strstr(r.allow, "GET"));
    harness_resp_free(&r);

    /* 413: body over the cap answered before the upload is read */
    size_t big = 20u << 20;
    char *huge = malloc(big);
    memset(huge, 'A', big);
    r = harness_http(&s, "POST", "/v1/embed", "application/json", huge, big, NULL);
    cr_assert_str_eq(harness_error_code(&r, 413, NULL), "body_too_large");
    cr_assert_lt(r.seconds, 2.0, "413 took %.2f s", r.seconds);
    harness_resp_free(&r);
    /* ... and while streaming when there is no Content-Length */
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    r = harness_http(&s, "POST", "/v1/embed", "application/json", huge, big, chunked);
    cr_assert_str_eq(harness_error_code(&r, 413, NULL), "body_too_large");
    harness_resp_free(&r);
    free(huge);
    /* 413: image over the pixel cap (sample1 has 2.4 M pixels, the cap is 1 M) */
    struct form f = {0};
    form_add(&f, "image", t.photo.data, t.photo.size, 1);
    r = post_form(&s, "/v1/detect", &f);
    cr_assert_str_eq(harness_error_code(&r, 413, "image"), "image_too_large");
    harness_resp_free(&r);

    /* 415: Content-Type and image format */
    r = harness_http(&s, "POST", "/v1/verify", "text/plain", "hello", 5, NULL);
    cr_assert_str_eq(harness_error_code(&r, 415, NULL), "unsupported_media_type");
    harness_resp_free(&r);
    r = harness_http(&s, "POST", "/v1/verify", NULL, "hello", 5, NULL);
    cr_assert_eq(r.status, 415);
    harness_resp_free(&r);
    const char *gif = "{\"image\": \"R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7\"}";
    r = harness_http(&s, "POST", "/v1/embed", "application/json", gif, strlen(gif), NULL);
    cr_assert_str_eq(harness_error_code(&r, 415, "image"), "unsupported_image");
    const cJSON *said = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "error"), "message");
    cr_expect(cJSON_IsString(said) && strstr(said->valuestring, fv_image_formats()),
              "the 415 names the formats read: %s", cJSON_IsString(said) ? said->valuestring : "");
    harness_resp_free(&r);

    /* 422: no face, bad option values, wrong embedding */
    struct fv_image *grey = fv_image_new(120, 120);
    memset(grey->rgb, 200, (size_t)120 * 120 * 3);
    struct fv_error err = {0};
    cr_assert_eq(fv_image_encode_jpeg(grey, 90, &t.blank.data, &t.blank.size, &err), FV_OK);
    fv_image_free(grey);
    cJSON *body = harness_verify_body(&t.blank, &t.blank);
    r = harness_post_json(&s, "/v1/verify", body);
    cr_assert_str_eq(harness_error_code(&r, 422, "image1"), "no_face");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "error"), "message")->valuestring,
                     "no face found in image1");
    harness_resp_free(&r);
    cJSON_AddNumberToObject(body, "threshold", 7);
    r = harness_post_json(&s, "/v1/verify", body);
    cr_assert_str_eq(harness_error_code(&r, 422, "threshold"), "invalid_value");
    harness_resp_free(&r);
    cJSON_DeleteItemFromObject(body, "threshold");
    cJSON_AddStringToObject(body, "policy", "foo");
    r = harness_post_json(&s, "/v1/verify", body);
    cr_assert_str_eq(harness_error_code(&r, 422, "policy"), "invalid_value");
    harness_resp_free(&r);
    cJSON_DeleteItemFromObject(body, "policy");
    cJSON_DeleteItemFromObject(body, "image1");
    double wrong[3] = {0.1, 0.2, 0.3};
    cJSON_AddItemToObject(body, "embedding1", cJSON_CreateDoubleArray(wrong, 3));
    r = harness_post_json(&s, "/v1/verify", body);
    cr_assert_str_eq(harness_error_code(&r, 422, "embedding1"), "invalid_value");
    harness_resp_free(&r);
    cJSON_Delete(body);
    body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "image", "AAAA");
    cJSON_AddStringToObject(body, "policy", "everyone");
    r = harness_post_json(&s, "/v1/embed", body);
    cr_assert_str_eq(harness_error_code(&r, 422, "policy"), "invalid_value");
    harness_resp_free(&r);
    cJSON_Delete(body);

    /* after all of that the server still serves */
    r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 200);
    harness_resp_free(&r);
    r = harness_get(&s, "/metrics");
    cr_assert_null(strstr(r.body, "status=\"500\""), "no 500 for bad input: %s", r.body);
    harness_resp_free(&r);
    harness_samples_free(&t);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(server, api_keys, .timeout = 30)
{
    char keys_path[] = "/tmp/facever-keys-XXXXXX";
    int fd = mkstemp(keys_path);
    cr_assert(fd >= 0);
    const char *keys = "# test keys\nsecret-one\nsecret-two\n";
    cr_assert_eq(write(fd, keys, strlen(keys)), (ssize_t)strlen(keys));
    close(fd);
    const char *const extra[] = {"--api-keys", keys_path, NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    struct resp r = harness_get(&s, "/v1/models");
    cr_assert_str_eq(harness_error_code(&r, 401, NULL), "unauthorized");
    harness_resp_free(&r);
    const char *wrong[] = {"X-API-Key: secret-three", NULL};
    r = harness_http(&s, "GET", "/v1/models", NULL, NULL, 0, wrong);
    cr_assert_eq(r.status, 401);
    harness_resp_free(&r);
    r = harness_http(&s, "POST", "/v1/verify", "application/json", "{}", 2, wrong);
    cr_assert_eq(r.status, 401);
    harness_resp_free(&r);
    const char *right[] = {"X-API-Key: secret-two", NULL};
    r = harness_http(&s, "GET", "/v1/models", NULL, NULL, 0, right);
    cr_assert_eq(r.status, 200);
    harness_resp_free(&r);
    const char *bearer[] = {"Authorization: Bearer secret-one", NULL};
    r = harness_http(&s, "GET", "/v1/models", NULL, NULL, 0, bearer);
    cr_assert_eq(r.status, 200);
    harness_resp_free(&r);
    r = harness_http(&s, "POST", "/v1/verify", "application/json", "{}", 2, bearer);
    cr_assert_eq(r.status, 400, "authorised, then the body is checked");
    harness_resp_free(&r);
    const char *open[] = {"/healthz", "/readyz", "/metrics", "/openapi.json"};
    for (int i = 0; i < 4; i++) {
        r = harness_get(&s, open[i]);
        cr_assert_eq(r.status, 200, "%s should not need a key", open[i]);
        harness_resp_free(&r);
    }
    cr_assert_eq(harness_server_stop(&s, 20), 0);
    unlink(keys_path);

    /* without keys configured, no header is needed */
    harness_server_start(&s, "tests/data/sample1.jpg", NULL);
    r = harness_get(&s, "/v1/models");
    cr_assert_eq(r.status, 200);
    harness_resp_free(&r);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(server, slow_client_times_out, .timeout = 30)
{
    const char *const extra[] = {"--timeout", "1", NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    int sock = harness_send_partial(&s, "POST /v1/verify HTTP/1.1\r\nHost: x\r\n"
                                        "Content-Type: application/json\r\n"
                                        "Content-Length: 1000\r\n\r\n{\"image1\": \"");
    double t0 = harness_now_s();
    /* others are served while it stalls */
    struct resp r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 200);
    cr_assert_lt(r.seconds, 0.5);
    harness_resp_free(&r);
    struct timeval tv = {5, 0};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    ssize_t n = recv(sock, buf, sizeof buf, 0);
    double waited = harness_now_s() - t0;
    cr_assert(n <= 0, "the stalled connection got an answer instead of being closed");
    cr_assert_lt(waited, 4.0, "closed after %.2f s, timeout is 1 s", waited);
    close(sock);
    r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 200);
    harness_resp_free(&r);
    char *log = harness_read_log(&s);
    cr_assert_not_null(strstr(log, "POST /v1/verify - 0 "), "%s", log);
    free(log);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(server, trickled_body_gets_408, .timeout = 30)
{
    /* One byte every 0.3 s never trips the 5 s idle timeout; the 2 s request deadline
     * ends the request (408 if libmicrohttpd can answer mid-body, else the connection
     * is closed) and the server keeps serving. */
    const char *const extra[] = {"--timeout", "5", "--request-timeout", "2", NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    int sock = harness_send_partial(&s, "POST /v1/verify HTTP/1.1\r\nHost: x\r\n"
                                        "Content-Type: application/json\r\n"
                                        "Content-Length: 1000\r\n\r\n{");
    double t0 = harness_now_s();
    char buf[2048];
    ssize_t got = 0;
    struct timeval tv = {0, 300000};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (harness_now_s() - t0 < 8.0) {
        if (send(sock, "a", 1, MSG_NOSIGNAL) != 1)
            break;
        ssize_t n = recv(sock, buf + got, sizeof buf - 1 - (size_t)got, 0);
        if (n > 0) {
            got += n;
            break;
        }
        if (n == 0)
            break;
    }
    buf[got] = '\0';
    double waited = harness_now_s() - t0;
    if (got > 0) {
        cr_assert(strstr(buf, " 408 ") != NULL, "not a 408: '%s'", buf);
        cr_assert(strstr(buf, "\"request_timeout\"") != NULL, "%s", buf);
    }
    cr_assert_lt(waited, 5.0, "still open after %.1f s (deadline 2 s)", waited);
    close(sock);
    struct resp r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 200);
    harness_resp_free(&r);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

/* ---- concurrency ---- */

struct call {
    const struct server *s;
    const char *path;
    char *body;
    struct resp r;
    int expect_match;
};

static void *call_main(void *arg)
{
    struct call *c = arg;
    c->r = harness_http(c->s, "POST", c->path, "application/json", c->body, strlen(c->body), NULL);
    return NULL;
}

Test(server, concurrent_requests, .timeout = 60)
{
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", NULL);
    struct samples t = {0};
    harness_samples_load(&s, &t);
    enum { N = 32 };
    struct call calls[N];
    pthread_t threads[N];
    cJSON *same = harness_verify_body(&t.face_a, &t.face_a2), *different = harness_verify_body(&t.face_a2, &t.face_b);
    char *same_text = cJSON_PrintUnformatted(same), *different_text = cJSON_PrintUnformatted(different);
    double t0 = harness_now_s();
    for (int i = 0; i < N; i++) {
        calls[i] = (struct call){&s, "/v1/verify", i % 2 ? different_text : same_text, {0}, i % 2 == 0};
        cr_assert_eq(pthread_create(&threads[i], NULL, call_main, &calls[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(threads[i], NULL);
    double elapsed = harness_now_s() - t0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(calls[i].r.status, 200, "request %d: %ld %s", i, calls[i].r.status,
                     calls[i].r.body ? calls[i].r.body : "");
        cr_assert_eq(boolean(calls[i].r.json, "match"), calls[i].expect_match, "request %d", i);
        harness_resp_free(&calls[i].r);
    }
    cr_log_info("32 concurrent verifies of two face crops: %.2f s on 2 workers", elapsed);
    free(same_text);
    free(different_text);
    cJSON_Delete(same);
    cJSON_Delete(different);
    harness_samples_free(&t);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

/* Polls /metrics until the in-flight gauge reaches want (counting the poll itself). */
static void wait_in_flight(const struct server *s, int want)
{
    double deadline = harness_now_s() + 10;
    while (harness_now_s() < deadline) {
        struct resp r = harness_get(s, "/metrics");
        long n = r.body ? metric_value(r.body, "facever_in_flight_requests") : 0;
        harness_resp_free(&r);
        if (n >= want)
            return;
        usleep(10000);
    }
    cr_assert_fail("requests never got in flight");
}

static char *detect_body(const struct bytes *photo)
{
    cJSON *root = cJSON_CreateObject();
    char *b64 = harness_base64(photo);
    cJSON_AddStringToObject(root, "image", b64);
    free(b64);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

Test(server, busy_workers_and_full_queue_give_429, .timeout = 30)
{
    const char *const extra[] = {"--threads", "1", "--queue", "0", NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    /* A 12-megapixel photo: sample1.jpg itself is detected in under the 50 ms
     * below on an idle machine, and the second request then finds the worker free. */
    struct bytes photo = harness_read_file("tests/data/phone/sample1-4032.jpg");
    struct call slow = {&s, "/v1/detect", detect_body(&photo), {0}, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, call_main, &slow);
    wait_in_flight(&s, 2);
    usleep(50000); /* the worker has taken it */
    struct resp r = harness_http(&s, "POST", "/v1/detect", "application/json", slow.body,
                                 strlen(slow.body), NULL);
    cr_assert_str_eq(harness_error_code(&r, 429, NULL), "busy");
    harness_resp_free(&r);
    r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 200, "cheap routes stay available while workers are busy");
    harness_resp_free(&r);
    pthread_join(thread, NULL);
    cr_assert_eq(slow.r.status, 200);
    harness_resp_free(&slow.r);
    r = harness_get(&s, "/metrics");
    cr_assert_not_null(strstr(r.body, "facever_rejected_total 1"), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "route=\"/v1/detect\",status=\"429\"} 1"));
    harness_resp_free(&r);
    free(slow.body);
    free(photo.data);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(server, sigterm_lets_requests_in_flight_finish, .timeout = 60)
{
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", NULL);
    struct bytes photo = harness_read_file("tests/data/sample1.jpg");
    enum { N = 8 }; /* on two workers: the last finishes a few detections after SIGTERM */
    struct call calls[N];
    pthread_t threads[N];
    char *body = detect_body(&photo);
    for (int i = 0; i < N; i++) {
        calls[i] = (struct call){&s, "/v1/detect", body, {0}, 0};
        pthread_create(&threads[i], NULL, call_main, &calls[i]);
    }
    wait_in_flight(&s, N + 1);
    double t_signal = harness_now_s();
    kill(s.pid, SIGTERM);
    for (int i = 0; i < N; i++)
        pthread_join(threads[i], NULL);
    double finished = harness_now_s();
    for (int i = 0; i < N; i++) {
        cr_assert_eq(calls[i].r.status, 200, "request %d: %ld", i, calls[i].r.status);
        cr_assert_geq(cJSON_GetArraySize(cJSON_GetObjectItem(calls[i].r.json, "faces")), 2);
        harness_resp_free(&calls[i].r);
    }
    cr_assert_gt(finished - t_signal, 0.1, "the requests were still running at SIGTERM");
    int status = harness_server_wait(&s, 20);
    cr_assert_neq(status, -2, "facever serve did not exit after SIGTERM");
    cr_assert_eq(status, 0, "exit status %d", status);
    /* and no longer accepts */
    struct resp r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 0);
    harness_resp_free(&r);
    char *log = harness_read_log(&s);
    cr_assert_not_null(strstr(log, "SIGTERM received"), "%s", log);
    free(log);
    unlink(s.log_path);
    free(body);
    free(photo.data);
}

/* ---- request bodies ---- */

/* POSTs body as JSON over a raw connection, `piece` bytes at a time with a pause
 * after each so that the server reads them one by one: announced with
 * Content-Length, or (chunked) as one Transfer-Encoding chunk per piece. Reads
 * the answer until the server closes the connection. */
static struct resp post_in_pieces(const struct server *s, const char *path, const char *body,
                                  size_t size, size_t piece, int chunked)
{
    char head[512], length[64];
    if (chunked)
        snprintf(length, sizeof length, "Transfer-Encoding: chunked");
    else
        snprintf(length, sizeof length, "Content-Length: %zu", size);
    snprintf(head, sizeof head,
             "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
             "Content-Type: application/json\r\n%s\r\n\r\n",
             path, length);
    double t0 = harness_now_s();
    int sock = harness_send_partial(s, head);
    char *frame = malloc(piece + 32);
    cr_assert_not_null(frame);
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece, framed = 0;
        if (chunked)
            framed = (size_t)sprintf(frame, "%zx\r\n", n);
        memcpy(frame + framed, body + off, n);
        framed += n;
        if (chunked)
            framed += (size_t)sprintf(frame + framed, "\r\n");
        cr_assert_eq(send(sock, frame, framed, MSG_NOSIGNAL), (ssize_t)framed);
        usleep(500);
    }
    if (chunked)
        cr_assert_eq(send(sock, "0\r\n\r\n", 5, MSG_NOSIGNAL), 5);
    free(frame);

    struct timeval tv = {30, 0};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t got = 0, cap = 1 << 16;
    char *answer = malloc(cap);
    ssize_t n;
    while ((n = recv(sock, answer + got, cap - 1 - got, 0)) > 0) {
        got += (size_t)n;
        if (got + 1 == cap)
            answer = realloc(answer, cap *= 2);
    }
    close(sock);
    answer[got] = 0;
    struct resp r = {0};
    r.seconds = harness_now_s() - t0;
    const char *blank = strstr(answer, "\r\n\r\n");
    if (strncmp(answer, "HTTP/1.1 ", 9) == 0 && blank) {
        r.status = atol(answer + 9);
        r.body = strdup(blank + 4);
        r.size = strlen(r.body);
        r.json = cJSON_Parse(r.body);
    }
    free(answer);
    return r;
}

Test(server, body_in_small_pieces_arrives_intact, .timeout = 60)
{
    /* The body buffer starts small and grows as the pieces come: the answer must
     * be the one the whole body sent at once gets. */
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", NULL);
    struct samples t = {0};
    harness_samples_load(&s, &t);
    cJSON *same = harness_verify_body(&t.face_a, &t.face_a2);
    char *text = cJSON_PrintUnformatted(same);
    size_t size = strlen(text);
    cr_assert_gt(size, 4 * 16384, "a %zu-byte body does not outgrow the first buffer", size);
    struct resp whole = harness_http(&s, "POST", "/v1/verify", "application/json", text, size,
                                     NULL);
    cr_assert_eq(whole.status, 200, "%s", whole.body);
    for (int chunked = 0; chunked < 2; chunked++) {
        struct resp r = post_in_pieces(&s, "/v1/verify", text, size, 997, chunked);
        cr_assert_eq(r.status, 200, "%s: %ld %s", chunked ? "chunked" : "Content-Length",
                     r.status, r.body ? r.body : "(no answer)");
        cr_assert(boolean(r.json, "match"), "%s", r.body);
        cr_assert_float_eq(number(r.json, "score"), number(whole.json, "score"), 1e-6);
        cr_log_info("%zu bytes in 997-byte pieces (%s): %.2f s", size,
                    chunked ? "chunked" : "Content-Length", r.seconds);
        harness_resp_free(&r);
    }
    harness_resp_free(&whole);
    free(text);
    cJSON_Delete(same);
    harness_samples_free(&t);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

/* VmRSS and VmData of a process from /proc/PID/status, in KiB. */
static void process_memory_kib(pid_t pid, long *rss, long *data)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    *rss = *data = -1;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "VmRSS: %ld kB", rss);
        sscanf(line, "VmData: %ld kB", data);
    }
    fclose(f);
    cr_assert(*rss >= 0 && *data >= 0, "no VmRSS or VmData in %s", path);
}

Test(server, announced_body_is_not_reserved, .timeout = 30)
{
    /* Clients announce bodies just under --max-body, send a few bytes and stall.
     * The server must not set --max-body aside for each: its resident memory must
     * not jump, and neither may its private writable memory (VmData). Pages that
     * are allocated but never written are not resident, so VmRSS alone would not
     * show a reservation made up front; VmData (the commit a strict-overcommit
     * kernel refuses) does. */
    enum { CLIENTS = 4 };
    const long max_body = 64L << 20;
    char max_body_text[32], head[512];
    snprintf(max_body_text, sizeof max_body_text, "%ld", max_body);
    const char *const extra[] = {"--max-body", max_body_text, NULL};
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", extra);
    struct resp r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 200);
    harness_resp_free(&r);
    long rss0, data0, rss1, data1;
    process_memory_kib(s.pid, &rss0, &data0);

    snprintf(head, sizeof head,
             "POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %ld\r\n\r\n{\"image1\": \"", max_body - 1);
    int socks[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        socks[i] = harness_send_partial(&s, head);
    wait_in_flight(&s, CLIENTS + 1);
    usleep(200000); /* their first bytes have been read */
    process_memory_kib(s.pid, &rss1, &data1);
    cr_log_info("%d clients announcing %ld bytes each: VmRSS %+ld KiB, VmData %+ld KiB", CLIENTS,
                max_body - 1, rss1 - rss0, data1 - data0);
    cr_assert_lt(rss1 - rss0, max_body / 1024 / 4, "VmRSS grew from %ld to %ld KiB", rss0, rss1);
    cr_assert_lt(data1 - data0, max_body / 1024 / 2, "VmData grew from %ld to %ld KiB", data0,
                 data1);

    for (int i = 0; i < CLIENTS; i++)
        close(socks[i]);
    r = harness_get(&s, "/healthz");
    cr_assert_eq(r.status, 200);
    harness_resp_free(&r);
    const char *missing = "{\"image1\": \"AAAA\"}";
    r = harness_http(&s, "POST", "/v1/verify", "application/json", missing, strlen(missing), NULL);
    cr_assert_str_eq(harness_error_code(&r, 400, "image2"), "missing_field");
    harness_resp_free(&r);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

/* Phone photos through the API: a 12-megapixel JPEG with EXIF orientation 6 is
 * verified against another (decoded in parts at DCT scales), and one cut off
 * after its header, which only the decoding of those parts finds truncated,
 * gets 400 bad_image naming its field, not a 500; the server keeps serving. */
Test(server, phone_photos_and_a_truncated_one, .timeout = 60)
{
    if (access("tests/data/phone/sample1-4032x3024-o6.jpg", R_OK) != 0)
        cr_skip_test("tests/data/phone/ missing: run `make phone-photos`");
    struct server s;
    harness_server_start(&s, "tests/data/sample1.jpg", NULL);
    struct bytes a = harness_read_file("tests/data/phone/sample1-4032x3024-o6.jpg");
    struct bytes b = harness_read_file("tests/data/phone/sample1-4032.jpg");
    cJSON *body = harness_verify_body(&a, &b);
    struct resp r = harness_post_json(&s, "/v1/verify", body);
    cJSON_Delete(body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cJSON *json = cJSON_Parse(r.body);
    cr_assert_not_null(json);
    /* the same picture, one stored rotated: the same face */
    cr_expect_gt(number(json, "score"), 0.9, "%s", r.body);
    cJSON_Delete(json);
    harness_resp_free(&r);

    struct bytes cut = {a.data, a.size * 6 / 10};
    char *text = detect_body(&cut);
    r = harness_http(&s, "POST", "/v1/detect", "application/json", text, strlen(text), NULL);
    free(text);
    cr_assert_str_eq(harness_error_code(&r, 400, "image"), "bad_image");
    cr_expect(strstr(r.body, "truncated") != NULL, "%s", r.body);
    harness_resp_free(&r);
    body = harness_verify_body(&cut, &b);
    r = harness_post_json(&s, "/v1/verify", body);
    cJSON_Delete(body);
    cr_assert_str_eq(harness_error_code(&r, 400, "image1"), "bad_image");
    harness_resp_free(&r);

    r = harness_get(&s, "/healthz");
    cr_expect_eq(r.status, 200);
    harness_resp_free(&r);
    free(a.data);
    free(b.data);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}
