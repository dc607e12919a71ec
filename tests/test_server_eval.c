/* test_server_eval.c - evaluation jobs over HTTP: POST /v1/evaluations, GET
 * /v1/evaluations/{id} and its roc.svg, POST .../cancel, against the real
 * `facever serve`; and replicas sharing a jobs folder (--jobs-dir), started
 * side by side in one test.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
    cr_assert_not_null(
        cJSON_GetObjectItem(cJSON_GetObjectItem(paths, "/v1/evaluations/{id}/cancel"), "post"));
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

/* ---- cancelling, and replicas sharing a jobs folder (--jobs-dir) ---- */

/* inline_body repeated to n_pairs pairs (a multiple of N_EASY): long enough to
 * stop or cancel half way. Split into folds in order. */
static char *long_body_text(const struct people *p, int n_pairs)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *pairs = cJSON_AddArrayToObject(root, "pairs");
    for (int i = 0; i < n_pairs; i++) {
        int a = easy_pairs[i % N_EASY].a, b = easy_pairs[i % N_EASY].b;
        cJSON *pair = cJSON_CreateObject();
        cJSON_AddStringToObject(pair, "image1", p->face64[a]);
        cJSON_AddStringToObject(pair, "image2", a == b ? p->copy64[b] : p->face64[b]);
        cJSON_AddBoolToObject(pair, "same", a == b);
        cJSON_AddItemToArray(pairs, pair);
    }
    cJSON_AddNumberToObject(root, "folds", 2);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* The evaluation's status object, or NULL when the server answers 404. */
static cJSON *get_job(const struct server *s, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/evaluations/%s", id);
    struct resp r = harness_get(s, path);
    if (r.status == 404) {
        cr_assert_str_eq(harness_error_code(&r, 404, NULL), "not_found");
        harness_resp_free(&r);
        return NULL;
    }
    cr_assert_eq(r.status, 200, "%s: %s", path, r.body);
    cJSON *json = r.json;
    r.json = NULL;
    harness_resp_free(&r);
    return json;
}

static double progress_of(const cJSON *job, const char *field)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(job, "progress"), field)->valuedouble;
}

static const char *error_code_of(const cJSON *job)
{
    const cJSON *code = cJSON_GetObjectItem(cJSON_GetObjectItem(job, "error"), "code");
    return cJSON_IsString(code) ? code->valuestring : "";
}

/* Polls s until the job runs and has embedded at least one image. */
static void wait_running(const struct server *s, const char *id, double limit_s)
{
    for (double deadline = harness_now_s() + limit_s; harness_now_s() < deadline; usleep(50000)) {
        cJSON *job = get_job(s, id);
        cr_assert_not_null(job, "evaluation %s unknown", id);
        cr_assert(strcmp(status_of(job), "queued") == 0 || strcmp(status_of(job), "running") == 0,
                  "evaluation %s finished before it could be interrupted: %s", id,
                  status_of(job));
        int going = strcmp(status_of(job), "running") == 0 && progress_of(job, "done") > 0;
        cJSON_Delete(job);
        if (going)
            return;
    }
    cr_assert_fail("evaluation %s not running after %.0f s", id, limit_s);
}

static struct resp cancel_job(const struct server *s, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/evaluations/%s/cancel", id);
    return harness_http(s, "POST", path, NULL, NULL, 0, NULL);
}

static struct resp get_svg(const struct server *s, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/evaluations/%s/roc.svg", id);
    return harness_get(s, path);
}

/* A replica sharing the jobs folder dir; extra options after it (NULL-terminated). */
static void start_replica(struct server *s, const char *dir, const char *const *extra)
{
    const char *argv[16] = {"--jobs-dir", dir};
    int n = 2;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    harness_server_start(s, "tests/data/sample5.jpg", argv);
}

/* How many names in dir end with suffix (or start with it, for ".tmp-"). */
static int count_files(const char *dir, const char *suffix)
{
    char cmd[600];
    if (suffix[0] == '.' && suffix[1] == 't')
        snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -c '^%s' || true", dir, suffix);
    else
        snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -c '%s$' || true", dir, suffix);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    int n = -1;
    cr_assert_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

static void make_jobs_dir(char *path)
{
    cr_assert_not_null(mkdtemp(path));
}

/* Two replicas, a and b, sharing a fresh jobs folder, and the test faces. */
struct replicas {
    char dir[32];
    struct server a, b;
    struct people p;
};

static void replicas_start(struct replicas *x, const char *const *a_extra,
                           const char *const *b_extra)
{
    snprintf(x->dir, sizeof x->dir, "/tmp/facever-jobs-XXXXXX");
    make_jobs_dir(x->dir);
    start_replica(&x->a, x->dir, a_extra);
    start_replica(&x->b, x->dir, b_extra);
    memset(&x->p, 0, sizeof x->p);
    people_load(&x->a, &x->p);
}

/* Stops both (each must exit 0) and removes the folder. */
static void replicas_stop(struct replicas *x)
{
    people_free(&x->p);
    cr_assert_eq(harness_server_stop(&x->a, 20), 0);
    cr_assert_eq(harness_server_stop(&x->b, 20), 0);
    remove_tree(x->dir);
}

/* A small job posted on owner runs to done, as seen from reader: owner's job
 * thread is free for new work. */
static void expect_new_job_runs(const struct server *owner, const struct server *reader,
                                const struct people *p)
{
    char id[64];
    struct resp r = post_json(owner, inline_body(p, 1));
    accepted_id(&r, id, sizeof id);
    cJSON *job = wait_finished(reader, id, 60);
    cr_assert_str_eq(status_of(job), "done", "%s", cJSON_PrintUnformatted(job));
    cJSON_Delete(job);
}

Test(server_eval, cancel_waiting_and_running_jobs, .timeout = 120)
{
    struct server s;
    harness_server_start(&s, "tests/data/sample5.jpg", NULL);
    struct people p = {0};
    people_load(&s, &p);
    char *text = long_body_text(&p, 200);
    struct resp r = post_text(&s, text);
    char running[64], waiting[64];
    accepted_id(&r, running, sizeof running);
    cJSON *body = inline_body(&p, 1);
    r = post_json(&s, body);
    accepted_id(&r, waiting, sizeof waiting);
    wait_running(&s, running, 60);

    /* A waiting job is finished at once. */
    r = cancel_job(&s, waiting);
    cr_assert_eq(r.status, 202, "%s", r.body);
    harness_resp_free(&r);
    cJSON *job = get_job(&s, waiting);
    cr_assert_str_eq(status_of(job), "failed");
    cr_assert_str_eq(error_code_of(job), "cancelled");
    cJSON_Delete(job);

    /* A running one stops at its next image. */
    r = cancel_job(&s, running);
    cr_assert_eq(r.status, 202, "%s", r.body);
    harness_resp_free(&r);
    double t0 = harness_now_s();
    job = wait_finished(&s, running, 30);
    cr_assert_lt(harness_now_s() - t0, 5.0, "the cancelled job ran on for %.1f s",
                 harness_now_s() - t0);
    cr_assert_str_eq(status_of(job), "failed");
    cr_assert_str_eq(error_code_of(job), "cancelled");
    cr_assert_lt(progress_of(job, "done"), progress_of(job, "total"));
    cJSON_Delete(job);

    r = cancel_job(&s, running);
    cr_assert_str_eq(harness_error_code(&r, 409, NULL), "finished");
    harness_resp_free(&r);
    r = cancel_job(&s, "0123456789abcdef0123456789abcdef");
    cr_assert_str_eq(harness_error_code(&r, 404, NULL), "not_found");
    harness_resp_free(&r);
    r = get_svg(&s, running);
    cr_assert_str_eq(harness_error_code(&r, 409, NULL), "not_done");
    harness_resp_free(&r);

    free(text);
    people_free(&p);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
}

Test(server_eval, replicas_share_results_and_roc, .timeout = 180)
{
    struct replicas x;
    replicas_start(&x, NULL, NULL);
    struct server *a = &x.a, *b = &x.b, single;
    harness_server_start(&single, "tests/data/sample5.jpg", NULL);

    cJSON *body = inline_body(&x.p, 1);
    cJSON_AddNumberToObject(body, "pca_dim", 4);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    char id[64], single_id[64];
    struct resp r = post_text(a, text);
    accepted_id(&r, id, sizeof id);
    cr_assert_eq(strspn(id, "0123456789abcdef"), 32, "id %s", id);
    r = post_text(&single, text);
    accepted_id(&r, single_id, sizeof single_id);
    cr_assert_str_neq(id, single_id);

    /* B never saw the POST, yet knows the job from the start. */
    cJSON *job = get_job(b, id);
    cr_assert_not_null(job);
    cJSON_Delete(job);
    job = wait_finished(b, id, 60);
    cJSON *reference = wait_finished(&single, single_id, 60);
    cr_assert_str_eq(status_of(job), "done", "%s", cJSON_PrintUnformatted(job));
    cr_assert_str_eq(status_of(reference), "done");
    char *got = cJSON_PrintUnformatted(cJSON_GetObjectItem(job, "report"));
    char *want = cJSON_PrintUnformatted(cJSON_GetObjectItem(reference, "report"));
    cr_assert_str_eq(got, want, "the report through the jobs folder differs from one server's");
    cr_assert_eq(progress_of(job, "done"), 2 * N_EASY);
    cr_assert_null(cJSON_GetObjectItem(job, "lease"), "the lease is internal");
    cr_assert_null(cJSON_GetObjectItem(job, "roc_svg"), "the SVG has its own route");
    free(got);
    free(want);
    cJSON_Delete(reference);
    /* The owner answers from the folder too, with the same view. */
    cJSON *from_a = get_job(a, id);
    cr_assert(cJSON_Compare(from_a, job, 1), "A and B disagree about %s", id);
    cJSON_Delete(from_a);
    cJSON_Delete(job);

    struct resp svg = get_svg(b, id), single_svg = get_svg(&single, single_id);
    cr_assert_eq(svg.status, 200, "%s", svg.body);
    cr_assert(strncmp(svg.content_type, "image/svg+xml", 13) == 0, "%s", svg.content_type);
    cr_assert_eq(single_svg.status, 200);
    cr_assert_eq(svg.size, single_svg.size);
    cr_assert_eq(memcmp(svg.body, single_svg.body, svg.size), 0);
    harness_resp_free(&svg);
    harness_resp_free(&single_svg);

    /* The outcome is on disk once: no live record, marker or temporary left. */
    cr_assert_eq(count_files(x.dir, ".final.json"), 1);
    cr_assert_eq(count_files(x.dir, ".live.json"), 0);
    cr_assert_eq(count_files(x.dir, ".tmp-"), 0);

    free(text);
    cr_assert_eq(harness_server_stop(&single, 20), 0);
    replicas_stop(&x);
}

Test(server_eval, replicas_cancel_from_another_replica, .timeout = 180)
{
    struct replicas x;
    replicas_start(&x, NULL, NULL);
    struct server *a = &x.a, *b = &x.b;
    char *text = long_body_text(&x.p, 200);
    char id[64], waiting[64];
    struct resp r = post_text(a, text);
    accepted_id(&r, id, sizeof id);
    cJSON *body = inline_body(&x.p, 1);
    r = post_json(a, body);
    accepted_id(&r, waiting, sizeof waiting);
    wait_running(b, id, 60);

    /* Both cancelled on B; A owns them and must stop them. */
    r = cancel_job(b, waiting);
    cr_assert_eq(r.status, 202, "%s", r.body);
    harness_resp_free(&r);
    r = cancel_job(b, id);
    cr_assert_eq(r.status, 202, "%s", r.body);
    cr_assert_str_eq(status_of(r.json), "running");
    harness_resp_free(&r);
    double t0 = harness_now_s();
    cJSON *job = wait_finished(b, id, 30);
    double took = harness_now_s() - t0;
    cr_assert_lt(took, 5.0, "the cancelled job ran on for %.1f s", took);
    cr_assert_str_eq(status_of(job), "failed");
    /* Only the owner writes "cancelled" (B could only have declared it lost). */
    cr_assert_str_eq(error_code_of(job), "cancelled", "%s", cJSON_PrintUnformatted(job));
    cr_assert_lt(progress_of(job, "done"), progress_of(job, "total"));
    cJSON_Delete(job);
    job = wait_finished(b, waiting, 10);
    cr_assert_str_eq(error_code_of(job), "cancelled");
    cJSON_Delete(job);
    r = cancel_job(a, id);
    cr_assert_str_eq(harness_error_code(&r, 409, NULL), "finished");
    harness_resp_free(&r);
    cr_assert_eq(count_files(x.dir, ".cancel"), 0, "the owner clears the markers it acted on");
    cr_assert_eq(count_files(x.dir, ".live.json"), 0);

    expect_new_job_runs(a, b, &x.p);
    free(text);
    replicas_stop(&x);
}

Test(server_eval, replicas_report_a_stopped_owner_lost, .timeout = 180)
{
    const double lease_s = 3.0;
    const char *const short_lease[] = {"--jobs-lease-ms", "3000", NULL};
    struct replicas x;
    replicas_start(&x, short_lease, NULL);
    struct server *a = &x.a, *b = &x.b;
    char *text = long_body_text(&x.p, 200);
    char id[64];
    struct resp r = post_text(a, text);
    accepted_id(&r, id, sizeof id);
    wait_running(b, id, 60);

    /* A stops dead mid-job (as a hung or frozen process would). */
    cr_assert_eq(kill(a->pid, SIGSTOP), 0);
    double t0 = harness_now_s();
    cJSON *job = NULL;
    for (double deadline = t0 + 3 * lease_s + 5; harness_now_s() < deadline; usleep(100000)) {
        job = get_job(b, id);
        cr_assert_not_null(job);
        if (strcmp(status_of(job), "failed") == 0)
            break;
        cr_assert_str_eq(status_of(job), "running");
        cJSON_Delete(job);
        job = NULL;
    }
    double took = harness_now_s() - t0;
    cr_assert_not_null(job, "B still reports the job running %.1f s after its owner stopped", took);
    cr_assert_str_eq(error_code_of(job), "owner_lost", "%s", cJSON_PrintUnformatted(job));
    /* Within the lease (renewed every lease/4) and a poll or two, not before it ran out. */
    cr_assert_gt(took, 0.5 * lease_s, "declared lost after %.1f s: the lease was not honoured",
                 took);
    cr_assert_lt(took, lease_s + 2.5, "declared lost only after %.1f s", took);
    cr_assert_not_null(
        strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(job, "error"), "message")->valuestring,
               "lease"));

    /* A wakes up: it finds the outcome decided, stops, and changes nothing. */
    cr_assert_eq(kill(a->pid, SIGCONT), 0);
    usleep(1500000);
    cJSON *later = get_job(b, id), *from_a = get_job(a, id);
    cr_assert(cJSON_Compare(later, job, 1), "the outcome changed: %s",
              cJSON_PrintUnformatted(later));
    cr_assert(cJSON_Compare(from_a, job, 1));
    cJSON_Delete(later);
    cJSON_Delete(from_a);
    cJSON_Delete(job);
    /* And it is free for new work. */
    expect_new_job_runs(a, b, &x.p);
    free(text);
    replicas_stop(&x);
}

Test(server_eval, replicas_keep_the_newest_finished_jobs, .timeout = 180)
{
    const char *const keep2[] = {"--eval-keep", "2", NULL};
    struct replicas x;
    replicas_start(&x, keep2, keep2);
    struct server *a = &x.a, *b = &x.b;
    cJSON *body = inline_body(&x.p, 1);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    enum { N = 6 };
    char ids[N][64];
    for (int i = 0; i < N; i++) {
        struct resp r = post_text(i % 2 ? b : a, text);
        accepted_id(&r, ids[i], sizeof ids[i]);
    }
    /* Wait until every job is finished or already forgotten. */
    int kept = 0;
    for (double deadline = harness_now_s() + 120;; usleep(200000)) {
        cr_assert_lt(harness_now_s(), deadline, "the jobs did not finish");
        int pending = 0;
        kept = 0;
        for (int i = 0; i < N; i++) {
            cJSON *job = get_job(i % 2 ? a : b, ids[i]);
            if (!job)
                continue;
            if (strcmp(status_of(job), "done") == 0)
                kept++;
            else
                pending++;
            cJSON_Delete(job);
        }
        if (!pending)
            break;
    }
    cr_assert_eq(kept, 2, "%d finished jobs kept across two replicas with --eval-keep 2", kept);
    cr_assert_eq(count_files(x.dir, ".final.json"), 2);
    cr_assert_eq(count_files(x.dir, ".live.json"), 0);
    cr_assert_eq(count_files(x.dir, ".tmp-"), 0);
    /* Both replicas agree which. */
    for (int i = 0; i < N; i++) {
        cJSON *x = get_job(a, ids[i]), *y = get_job(b, ids[i]);
        cr_assert((x == NULL) == (y == NULL), "%s: A and B disagree", ids[i]);
        cJSON_Delete(x);
        cJSON_Delete(y);
    }
    free(text);
    replicas_stop(&x);
}

/* A done record as a replica would write it, for the id `id`. */
static void plant_record(const char *path, const char *id)
{
    char text[512];
    int n = snprintf(text, sizeof text,
                     "{\"id\":\"%s\",\"status\":\"done\",\"progress\":{\"done\":2,\"total\":2},"
                     "\"links\":{},\"report\":{\"title\":\"planted\"},\"roc_svg\":\"<svg/>\"}",
                     id);
    write_file(path, text, (size_t)n);
}

/* The status of a request sent byte for byte as given (libcurl would tidy "../"
 * away before the server saw it). */
static int raw_status(const struct server *s, const char *method, const char *path)
{
    char head[600], reply[256] = "";
    snprintf(head, sizeof head,
             "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
             method, path);
    int sock = harness_send_partial(s, head);
    size_t got = 0;
    ssize_t n;
    while (got < sizeof reply - 1 && (n = recv(sock, reply + got, sizeof reply - 1 - got, 0)) > 0)
        got += (size_t)n;
    close(sock);
    int status = 0;
    cr_assert_eq(sscanf(reply, "HTTP/1.1 %d", &status), 1, "no status line for %s", path);
    return status;
}

Test(server_eval, replicas_refuse_hostile_ids_before_the_folder, .timeout = 90)
{
    char root[] = "/tmp/facever-jobs-XXXXXX", dir[600], path[900];
    make_jobs_dir(root);
    snprintf(dir, sizeof dir, "%s/jobs", root);
    make_dir(dir);
    static const char valid[] = "0123456789abcdef0123456789abcdef";
    static const char upper[] = "0123456789ABCDEF0123456789ABCDEF";
    static const char longer[] = "0123456789abcdef0123456789abcdef0";
    /* Records a server would serve if it ever formed a path from these ids. */
    snprintf(path, sizeof path, "%s/%s.final.json", dir, valid);
    plant_record(path, valid);
    snprintf(path, sizeof path, "%s/%s.final.json", dir, upper);
    plant_record(path, upper);
    snprintf(path, sizeof path, "%s/%s.final.json", dir, longer);
    plant_record(path, longer);
    snprintf(path, sizeof path, "%s/%s.final.json", root, valid); /* outside the folder */
    plant_record(path, "../" "0123456789abcdef0123456789abcdef");
    struct server s;
    start_replica(&s, dir, NULL);

    /* The control: a well-formed id reads its record. */
    cJSON *job = get_job(&s, valid);
    cr_assert_not_null(job);
    cr_assert_str_eq(status_of(job), "done");
    cJSON_Delete(job);
    struct resp r = get_svg(&s, valid);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "<svg/>");
    harness_resp_free(&r);

    char many[200];
    memset(many, 'a', sizeof many - 1);
    many[sizeof many - 1] = 0;
    const char *hostile[] = {
        upper,
        longer,
        "..%2F0123456789abcdef0123456789abcdef",
        "%2e%2e%2f0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcde%2e",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "0123456789abcdef0123456789abcdeg",
        many,
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        const char *suffixes[] = {"", "/roc.svg"};
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "/v1/evaluations/%s%s", hostile[i], suffixes[k]);
            r = harness_get(&s, path);
            cr_assert_str_eq(harness_error_code(&r, 404, NULL), "not_found", "GET %s: %s", path,
                             r.body);
            harness_resp_free(&r);
        }
        snprintf(path, sizeof path, "/v1/evaluations/%s/cancel", hostile[i]);
        r = harness_http(&s, "POST", path, NULL, NULL, 0, NULL);
        cr_assert_str_eq(harness_error_code(&r, 404, NULL), "not_found", "POST %s: %s", path,
                         r.body);
        harness_resp_free(&r);
    }
    /* Literal dot segments, straight to the server. */
    const char *dotted[] = {
        "/v1/evaluations/../0123456789abcdef0123456789abcdef",
        "/v1/evaluations/../0123456789abcdef0123456789abcdef/roc.svg",
        "/v1/evaluations/0123456789abcdef0123456789abcdef/../../x",
        "/v1/evaluations/./0123456789abcdef0123456789abcdef",
    };
    for (size_t i = 0; i < sizeof dotted / sizeof dotted[0]; i++) {
        cr_assert_eq(raw_status(&s, "GET", dotted[i]), 404, "GET %s", dotted[i]);
        snprintf(path, sizeof path, "%s/cancel", dotted[i]);
        cr_assert_eq(raw_status(&s, "POST", path), 404, "POST %s", path);
    }
    cr_assert_eq(count_files(dir, ".cancel"), 0, "a cancel marker was written for a hostile id");
    cr_assert_eq(count_files(root, ".cancel"), 0);
    cr_assert_eq(harness_server_stop(&s, 20), 0);
    remove_tree(root);
}
