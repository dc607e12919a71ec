/* test_server_eval.c - evaluation jobs over HTTP: POST /v1/evaluations, GET
 * /v1/evaluations/{id} and its roc.svg, against the real `facever serve`.
 *
 * As in test_server.c, the binary ($FACEVER, default ./facever) is started with
 * --port 0 and the port read from its "listening on" line (tests/server_harness.h).
 * Faces are cut out of tests/data/sample5.jpg (several people) with the
 * server's own /v1/detect boxes: a "same" pair is a face and its rescaled,
 * re-encoded copy, a "different" pair two people of the photo, so every
 * threshold the protocol picks should separate them perfectly.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/image.h"
#include "tests/server_harness.h"

#define N_PEOPLE 4

/* ---- a facever server (tests/server_harness.h) and its evaluations API ---- */

TestSuite(server_eval, .fini = harness_kill_servers);

static struct resp post_text(const struct server *s, const char *text)
{
    return harness_http(s, "POST", "/v1/evaluations", "application/json", text, strlen(text),
                        NULL);
}

/* POSTs root to /v1/evaluations; takes root. */
static struct resp post_json(const struct server *s, cJSON *root)
{
    struct resp r = harness_post_json(s, "/v1/evaluations", root);
    cJSON_Delete(root);
    return r;
}

/* Posts text and asserts the rejection; frees the reply. */
static void expect_rejected(const struct server *s, const char *text, long status,
                            const char *code, const char *field)
{
    struct resp r = post_text(s, text);
    const char *got = harness_error_code(&r, status, field);
    cr_assert_str_eq(got, code, "for %.200s: %s", text, r.body);
    harness_resp_free(&r);
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
    harness_resp_free(r);
}

/* Polls the evaluation until it is done or failed; returns its status object. */
static cJSON *wait_finished(const struct server *s, const char *id, double limit_s)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/evaluations/%s", id);
    for (double deadline = harness_now_s() + limit_s; harness_now_s() < deadline; usleep(100000)) {
        struct resp r = harness_get(s, path);
        cr_assert_eq(r.status, 200, "%s", r.body);
        const char *status = cJSON_GetObjectItem(r.json, "status")->valuestring;
        cr_assert(strcmp(status, "queued") == 0 || strcmp(status, "running") == 0 ||
                      strcmp(status, "done") == 0 || strcmp(status, "failed") == 0,
                  "status %s", status);
        if (strcmp(status, "done") == 0 || strcmp(status, "failed") == 0) {
            cJSON *json = r.json;
            r.json = NULL;
            harness_resp_free(&r);
            return json;
        }
        harness_resp_free(&r);
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

/* face[i]: person i as cut out; copy[i]: the same crop at 70%, JPEG quality 70. */
struct people {
    struct bytes face[N_PEOPLE], copy[N_PEOPLE];
    char *face64[N_PEOPLE], *copy64[N_PEOPLE];
};

static void people_load(const struct server *s, struct people *p)
{
    struct bytes photo = harness_read_file("tests/data/sample5.jpg");
    char *photo64 = harness_base64(&photo);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "image", photo64);
    free(photo64);
    struct resp r = harness_post_json(s, "/v1/detect", body);
    cJSON_Delete(body);
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
        p->face[i] = harness_face_crop(img, b, 1.0f, 95);
        p->copy[i] = harness_face_crop(img, b, 0.7f, 70);
        p->face64[i] = harness_base64(&p->face[i]);
        p->copy64[i] = harness_base64(&p->copy[i]);
    }
    fv_image_free(img);
    free(photo.data);
    harness_resp_free(&r);
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
    harness_server_start(&s, "tests/data/sample5.jpg", NULL);
    struct people p = {0};
    people_load(&s, &p);

    cJSON *body = inline_body(&p, 1);
    cJSON_AddNumberToObject(body, "pca_dim", 4);
    struct resp r = post_json(&s, body);
    char id[64], path[128];
    accepted_id(&r, id, sizeof id);

    /* Until it is done, the ROC is a 409 with the error shape. */
    snprintf(path, sizeof path, "/v1/evaluations/%s", id);
    r = harness_get(&s, path);
    cr_assert_eq(r.status, 200);
    int finished = strcmp(status_of(r.json), "done") == 0;
    harness_resp_free(&r);
    snprintf(path, sizeof path, "/v1/evaluations/%s/roc.svg", id);
    if (!finished) {
        r = harness_get(&s, path);
        if (r.status != 200) /* it may have finished in between */
            cr_assert_str_eq(harness_error_code(&r, 409, NULL), "not_done");
        harness_resp_free(&r);
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

    r = harness_get(&s, path);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strncmp(r.content_type, "image/svg+xml", 13) == 0, "%s", r.content_type);
    cr_assert_not_null(strstr(r.body, "<svg"));
    cr_assert_not_null(strstr(r.body, "</svg>"));
    harness_resp_free(&r);

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
    r = harness_get(&s, path);
    cr_assert_str_eq(harness_error_code(&r, 409, NULL), "not_done");
    harness_resp_free(&r);

    people_free(&p);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
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
    harness_server_start(&s, "tests/data/sample5.jpg", extra);
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
    cr_assert_eq(harness_server_stop(&s, 20), 0);
    remove_tree(root);
    remove_tree(outside);
}

Test(server_eval, malformed_requests_and_unknown_ids, .timeout = 60)
{
    struct server s;
    harness_server_start(&s, "tests/data/sample5.jpg", NULL); /* no --data-root */

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

    struct resp r = harness_http(&s, "POST", "/v1/evaluations", "multipart/form-data; boundary=x",
                                 "--x--\r\n", 7, NULL);
    cr_assert_str_eq(harness_error_code(&r, 415, NULL), "unsupported_media_type");
    harness_resp_free(&r);

    /* Unknown or malformed ids. */
    const char *missing[] = {
        "/v1/evaluations/0123456789abcdef0123456789abcdef",
        "/v1/evaluations/0123456789abcdef0123456789abcdef/roc.svg",
        "/v1/evaluations/nope",
        "/v1/evaluations/0123456789abcdef0123456789abcdef/other",
        "/v1/evaluations/../healthz",
    };
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        r = harness_get(&s, missing[i]);
        cr_assert_str_eq(harness_error_code(&r, 404, NULL), "not_found", "%s", missing[i]);
        harness_resp_free(&r);
    }
    r = harness_get(&s, "/v1/evaluations");
    cr_assert_str_eq(harness_error_code(&r, 405, NULL), "method_not_allowed");
    harness_resp_free(&r);

    /* Every documented evaluation path is in /openapi.json. */
    r = harness_get(&s, "/openapi.json");
    const cJSON *paths = cJSON_GetObjectItem(r.json, "paths");
    cr_assert_not_null(cJSON_GetObjectItem(cJSON_GetObjectItem(paths, "/v1/evaluations"), "post"));
    cr_assert_not_null(
        cJSON_GetObjectItem(cJSON_GetObjectItem(paths, "/v1/evaluations/{id}"), "get"));
    cr_assert_not_null(
        cJSON_GetObjectItem(cJSON_GetObjectItem(paths, "/v1/evaluations/{id}/roc.svg"), "get"));
    harness_resp_free(&r);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(server_eval, full_queue_gives_429_and_shutdown_cancels, .timeout = 90)
{
    struct server s;
    harness_server_start(&s, "tests/data/sample5.jpg", NULL);
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
        else if (r.status == 429 && strcmp(harness_error_code(&r, 429, NULL), "busy") == 0)
            refused++;
        else
            cr_assert_fail("unexpected %ld: %s", r.status, r.body);
        harness_resp_free(&r);
    }
    free(text);
    cr_assert_eq(accepted, 5, "accepted %d, refused %d", accepted, refused);
    cr_assert_eq(refused, 2);
    /* SIGTERM with evaluations running and waiting: a prompt, clean exit. */
    double t0 = harness_now_s();
    cr_assert_eq(harness_server_stop(&s, 15), 0);
    cr_assert_lt(harness_now_s() - t0, 10.0, "shutdown took %.1f s", harness_now_s() - t0);
    people_free(&p);
}
