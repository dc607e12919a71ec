/* test_cli.c - the facever command line, run as a user runs it. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model/model_file.h"
#include "pipeline/pipeline.h"

static const char *facever(void)
{
    const char *f = getenv("FACEVER");
    return f && *f ? f : "./facever";
}

/* Runs `facever ARGS`, capturing stdout (and stderr into *err_out when given). */
static int run(const char *args, char **out, char **err_out)
{
    char cmd[4096], errfile[] = "/tmp/facever-cli-XXXXXX";
    int fd = mkstemp(errfile);
    close(fd);
    snprintf(cmd, sizeof cmd, "%s %s 2>%s", facever(), args, errfile);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 1024)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int status = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    if (err_out) {
        uint8_t *e;
        size_t n;
        fv_read_file(errfile, 1 << 20, &e, &n, NULL);
        *err_out = realloc(e, n + 1);
        (*err_out)[n] = '\0';
    }
    unlink(errfile);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int ready(void)
{
    return access(facever(), X_OK) == 0 && access("models/mobilefacenet.fvm", R_OK) == 0 &&
           access("tests/data/sample1.jpg", R_OK) == 0;
}

static char dir[] = "/tmp/facever-cli-test-XXXXXX";

/* face0.jpg, face0-small.jpg (60%, re-encoded), face1.jpg: crops of sample1.jpg. */
static void make_faces(void)
{
    cr_assert_not_null(mkdtemp(dir));
    struct fv_error err = {0};
    struct fv_pipeline_params p;
    struct fv_pipeline *pipe;
    struct fv_pipeline_worker *w;
    fv_pipeline_default_params(&p);
    cr_assert_eq(fv_pipeline_new("models", "models/mobilefacenet.fvm", &p, &pipe, &err), FV_OK);
    cr_assert_eq(fv_pipeline_worker_new(pipe, &w, &err), FV_OK);
    struct fv_image *img;
    struct fv_face *faces;
    int n;
    cr_assert_eq(fv_image_load("tests/data/sample1.jpg", NULL, &img, &err), FV_OK);
    cr_assert_eq(fv_pipeline_detect(w, img, FV_FACE_ALL, &faces, &n, &err), FV_OK);
    cr_assert_geq(n, 2);
    for (int i = 0; i < 2; i++) {
        float bw = faces[i].box[2] - faces[i].box[0], bh = faces[i].box[3] - faces[i].box[1];
        struct fv_image *cut = fv_image_crop(img, (int)(faces[i].box[0] - bw / 2),
                                             (int)(faces[i].box[1] - bh / 2), (int)(2 * bw), (int)(2 * bh));
        char path[256];
        snprintf(path, sizeof path, "%s/face%d.jpg", dir, i);
        cr_assert_eq(fv_image_save(cut, path, &err), FV_OK);
        if (i == 0) {
            struct fv_image *small;
            cr_assert_eq(fv_image_resize(cut, cut->width * 6 / 10, cut->height * 6 / 10, &small, &err), FV_OK);
            snprintf(path, sizeof path, "%s/face0-small.jpg", dir);
            cr_assert_eq(fv_image_save(small, path, &err), FV_OK);
            fv_image_free(small);
        }
        fv_image_free(cut);
    }
    free(faces);
    fv_image_free(img);
    fv_pipeline_worker_free(w);
    fv_pipeline_free(pipe);
}

static void remove_faces(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_cli: could not remove %s\n", dir);
}

TestSuite(cli, .timeout = 120);

Test(cli, every_command_has_help)
{
    if (access(facever(), X_OK) != 0)
        cr_skip_test("%s not built", facever());
    const char *cmds[] = {"verify", "detect", "align", "embed", "eval", "pca", "import-tflite",
                          "model-info", "serve", "version", "system-info"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char args[64], *out;
        snprintf(args, sizeof args, "%s --help", cmds[i]);
        cr_expect_eq(run(args, &out, NULL), 0, "%s --help failed", cmds[i]);
        cr_expect(strstr(out, "usage") != NULL, "%s --help printed no usage", cmds[i]);
        free(out);
    }
    char *err;
    cr_expect_eq(run("frobnicate", NULL, &err), 2);
    cr_expect(strstr(err, "unknown command 'frobnicate'") != NULL, "%s", err);
    free(err);
}

Test(cli, verify_exit_status_like_cmp)
{
    if (!ready())
        cr_skip_test("facever, models/ or tests/data/ missing");
    make_faces();
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "verify %s/face0.jpg %s/face0-small.jpg --json", dir, dir);
    cr_expect_eq(run(args, &out, &err), 0, "same face not matched: %s %s", out, err);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "not JSON: %s", out);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(j, "match")));
    cr_expect_gt(cJSON_GetObjectItem(j, "score")->valuedouble, 0.8);
    cr_expect_float_eq(cJSON_GetObjectItem(j, "threshold")->valuedouble, 0.42, 1e-6);
    cr_expect_not_null(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "face1"), "landmarks"));
    double score = cJSON_GetObjectItem(j, "score")->valuedouble;
    cJSON_Delete(j);
    free(out);
    free(err);
    /* The reference arithmetic on request: the same decision, a score within bf16's
     * rounding of the default one. */
    snprintf(args, sizeof args, "verify %s/face0.jpg %s/face0-small.jpg --json --precision fp32",
             dir, dir);
    cr_expect_eq(run(args, &out, NULL), 0, "%s", out);
    j = cJSON_Parse(out);
    cr_assert_not_null(j, "not JSON: %s", out);
    cr_expect_float_eq(cJSON_GetObjectItem(j, "score")->valuedouble, score, 2e-3);
    cJSON_Delete(j);
    free(out);
    snprintf(args, sizeof args, "verify %s/face0.jpg %s/face1.jpg --precision fp16", dir, dir);
    cr_expect_eq(run(args, NULL, &err), 2);
    cr_expect(strstr(err, "--precision must be auto, fp32 or bf16") != NULL, "%s", err);
    free(err);

    snprintf(args, sizeof args, "verify %s/face0.jpg %s/face1.jpg", dir, dir);
    cr_expect_eq(run(args, &out, NULL), 1, "different people matched: %s", out);
    cr_expect(strstr(out, "different people") != NULL, "%s", out);
    free(out);
    /* A threshold below any cosine turns the same pair into a match. */
    snprintf(args, sizeof args, "verify %s/face0.jpg %s/face1.jpg --threshold -1", dir, dir);
    cr_expect_eq(run(args, NULL, NULL), 0);

    snprintf(args, sizeof args, "verify %s/face0.jpg %s/missing.jpg", dir, dir);
    cr_expect_eq(run(args, NULL, &err), 2);
    cr_expect(strstr(err, "missing.jpg") != NULL, "%s", err);
    free(err);
    snprintf(args, sizeof args, "verify %s/face0.jpg README.md", dir);
    cr_expect_eq(run(args, NULL, &err), 2);
    cr_expect(strstr(err, "README.md: unsupported image format") != NULL, "%s", err);
    free(err);
    snprintf(args, sizeof args, "verify %s/face0.jpg %s/face1.jpg --threshold 7", dir, dir);
    cr_expect_eq(run(args, NULL, &err), 2);
    free(err);
    remove_faces();
}

Test(cli, detect_draw_align_embed)
{
    if (!ready())
        cr_skip_test("facever, models/ or tests/data/ missing");
    make_faces();
    char args[1024], *out;
    cr_expect_eq(run("detect tests/data/sample4.jpg --min-face 40 --json", &out, NULL), 0);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "faces")), 4);
    cr_expect_eq(cJSON_GetObjectItem(j, "width")->valueint, 1920);
    cJSON_Delete(j);
    free(out);

    snprintf(args, sizeof args, "detect tests/data/sample1.jpg --draw %s/drawn.png", dir);
    cr_expect_eq(run(args, &out, NULL), 0);
    cr_expect(strstr(out, "3 faces") != NULL, "%s", out);
    free(out);
    struct fv_image *img;
    char path[512];
    snprintf(path, sizeof path, "%s/drawn.png", dir);
    cr_assert_eq(fv_image_load(path, NULL, &img, NULL), FV_OK);
    cr_expect_eq(img->width, 1920);
    fv_image_free(img);

    snprintf(args, sizeof args, "align %s/face0.jpg --out %s/crop.png", dir, dir);
    cr_expect_eq(run(args, NULL, NULL), 0);
    snprintf(path, sizeof path, "%s/crop.png", dir);
    cr_assert_eq(fv_image_load(path, NULL, &img, NULL), FV_OK);
    cr_expect_eq(img->width, 112);
    cr_expect_eq(img->height, 112);
    fv_image_free(img);

    snprintf(args, sizeof args, "embed %s/face0.jpg %s/face1.jpg --json", dir, dir);
    cr_expect_eq(run(args, &out, NULL), 0);
    j = cJSON_Parse(out);
    cr_assert_not_null(j);
    cr_expect_eq(cJSON_GetObjectItem(j, "dim")->valueint, 384);
    cJSON *images = cJSON_GetObjectItem(j, "images");
    cr_expect_eq(cJSON_GetArraySize(images), 2);
    cJSON *emb = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(images, 0), "faces"), 0), "embedding");
    cr_expect_eq(cJSON_GetArraySize(emb), 384);
    cJSON_Delete(j);
    free(out);
    cr_expect_eq(run("embed tests/data/sample4.jpg --all-faces", &out, NULL), 0);
    int lines = 0;
    for (char *p = out; *p; p++)
        lines += *p == '\n';
    cr_expect_geq(lines, 4, "--all-faces printed %d lines", lines);
    free(out);
    remove_faces();
}

Test(cli, import_and_model_info_errors)
{
    if (access(facever(), X_OK) != 0)
        cr_skip_test("%s not built", facever());
    char *err, *out;
    cr_expect_eq(run("import-tflite README.md /tmp/x.fvm", NULL, &err), 2);
    cr_expect(strstr(err, "README.md") != NULL, "%s", err);
    free(err);
    cr_expect_eq(run("model-info README.md", NULL, &err), 2);
    cr_expect(strstr(err, "bad magic") != NULL, "%s", err);
    free(err);
    if (access("models/mobilefacenet.fvm", R_OK) == 0) {
        cr_expect_eq(run("model-info models/mobilefacenet.fvm", &out, NULL), 0);
        cr_expect(strstr(out, "embedding   embeddings") != NULL, "%s", out);
        free(out);
    }
}

/* FV_CPU forces each level this CPU supports (system-info and /v1/models say
 * which runs), every level verifies the same pair to the same score within
 * float rounding, and a level the CPU lacks or an unknown one is refused by
 * every command with the reason, exit status 2, before anything runs. */
Test(cli, cpu_levels_forced_and_refused)
{
    if (!ready())
        cr_skip_test("facever, models/ or tests/data/ missing");
    make_faces();
    char args[1024], *out, *err;
    double first = 0.0;
    int levels = 0;
    for (int l = 0; l < FV_CPU_LEVEL_COUNT; l++) {
        const char *name = fv_cpu_level_name((enum fv_cpu_level)l);
        setenv("FV_CPU", name, 1);
        int status = run("system-info --json", &out, &err);
        if (!fv_cpu_supports((enum fv_cpu_level)l)) {
            cr_expect_eq(status, 2, "FV_CPU=%s on a CPU without it: %s", name, out);
            cr_expect(strstr(err, "cannot run level") != NULL && strstr(err, name) != NULL,
                      "FV_CPU=%s: %s", name, err);
            cr_expect(strstr(err, "supported here: generic") != NULL, "%s", err);
            free(out);
            free(err);
            /* every command, not only system-info */
            snprintf(args, sizeof args, "verify %s/face0.jpg %s/face1.jpg", dir, dir);
            cr_expect_eq(run(args, NULL, &err), 2);
            cr_expect(strstr(err, "cannot run level") != NULL, "%s", err);
            free(err);
            continue;
        }
        cr_expect_eq(status, 0, "FV_CPU=%s: %s", name, err);
        cJSON *j = cJSON_Parse(out);
        cr_assert_not_null(j, "not JSON: %s", out);
        cr_expect_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, name);
        cr_expect_str_eq(cJSON_GetObjectItem(j, "chosen_by")->valuestring, "FV_CPU");
        cJSON_Delete(j);
        free(out);
        free(err);
        snprintf(args, sizeof args, "verify %s/face0.jpg %s/face0-small.jpg --json --precision fp32",
                 dir, dir);
        cr_expect_eq(run(args, &out, NULL), 0, "FV_CPU=%s: %s", name, out);
        j = cJSON_Parse(out);
        cr_assert_not_null(j, "not JSON: %s", out);
        double score = cJSON_GetObjectItem(j, "score")->valuedouble;
        if (levels++ == 0)
            first = score;
        cr_expect_float_eq(score, first, 1e-4, "FV_CPU=%s: score %.6f, generic %.6f", name, score,
                           first);
        cJSON_Delete(j);
        free(out);
    }
    cr_expect_geq(levels, 1);
    setenv("FV_CPU", "sse9", 1);
    cr_expect_eq(run("system-info", NULL, &err), 2);
    cr_expect(strstr(err, "FV_CPU=sse9: unknown CPU level 'sse9'") != NULL, "%s", err);
    free(err);
    unsetenv("FV_CPU");
    cr_expect_eq(run("system-info", &out, NULL), 0);
    cr_expect(strstr(out, "(best supported)") != NULL, "%s", out);
    free(out);
}

/* ---- batch embedding: shards merged give the single-process report ---- */

static char *read_text(const char *path)
{
    uint8_t *data;
    size_t size;
    cr_assert_eq(fv_read_file(path, 1 << 24, &data, &size, NULL), FV_OK, "cannot read %s", path);
    char *text = realloc(data, size + 1);
    text[size] = '\0';
    return text;
}

/* stdout of eval without its first line ("features: ..."), which says where the
 * features came from and how long they took. */
static const char *after_features_line(const char *out)
{
    cr_assert(strncmp(out, "features: ", 10) == 0, "%s", out);
    const char *nl = strchr(out, '\n');
    cr_assert_not_null(nl);
    return nl + 1;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* An LFW-style folder: person pN holds tests/data/sampleN.jpg as pN_0001.jpg and a 70%
 * copy as pN_0002.jpg; nf/nf_0001.jpg is a flat grey picture without a face. */
static void make_photo_set(const char *root)
{
    struct fv_error err = {0};
    char path[512];
    for (int p = 1; p <= 6; p++) {
        struct fv_image *img, *small;
        snprintf(path, sizeof path, "tests/data/sample%d.jpg", p);
        cr_assert_eq(fv_image_load(path, NULL, &img, &err), FV_OK, "%s", err.message);
        cr_assert_eq(fv_image_resize(img, img->width * 7 / 10, img->height * 7 / 10, &small, &err), FV_OK);
        snprintf(path, sizeof path, "%s/p%d", root, p);
        cr_assert_eq(mkdir(path, 0755), 0);
        snprintf(path, sizeof path, "%s/p%d/p%d_0001.jpg", root, p, p);
        cr_assert_eq(fv_image_save(img, path, &err), FV_OK, "%s", err.message);
        snprintf(path, sizeof path, "%s/p%d/p%d_0002.jpg", root, p, p);
        cr_assert_eq(fv_image_save(small, path, &err), FV_OK, "%s", err.message);
        fv_image_free(img);
        fv_image_free(small);
    }
    struct fv_image *grey = fv_image_new(250, 250);
    memset(grey->rgb, 128, 250 * 250 * 3);
    snprintf(path, sizeof path, "%s/nf", root);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/nf/nf_0001.jpg", root);
    cr_assert_eq(fv_image_save(grey, path, &err), FV_OK, "%s", err.message);
    fv_image_free(grey);
}

TestSuite(batch_cli, .timeout = 300);

Test(batch_cli, three_shards_give_the_single_process_report)
{
    if (!ready())
        cr_skip_test("facever, models/ or tests/data/ missing");
    char root[] = "/tmp/facever-batch-XXXXXX";
    cr_assert_not_null(mkdtemp(root));
    char images[128], pairs[128], shards[128], single[128], merged[128], args[4096];
    snprintf(images, sizeof images, "%s/images", root);
    cr_assert_eq(mkdir(images, 0755), 0);
    make_photo_set(images);
    snprintf(pairs, sizeof pairs, "%s/pairs.txt", root);
    /* Two folds with disjoint images, so each fold's PCA has images to fit on. */
    write_text(pairs, "FOLDS 2\n"
                      "p1 1 2\np2 1 2\np3 1 2\np1 1 p2 2\np3 2 nf 1\n"
                      "p4 1 2\np5 1 2\np6 1 2\np4 1 p5 2\np6 2 p5 1\n");
    snprintf(shards, sizeof shards, "%s/shards", root);
    snprintf(single, sizeof single, "%s/single.json", root);
    snprintf(merged, sizeof merged, "%s/merged.json", root);
    const char *protocol = "--pca-dim 3 --threads 1 --quiet";

    char *out_single, *out, *err;
    snprintf(args, sizeof args, "eval --images %s --pairs %s %s --no-cache --report %s", images,
             pairs, protocol, single);
    cr_assert_eq(run(args, &out_single, &err), 0, "%s%s", out_single, err);
    free(err);
    cr_assert(strstr(out_single, "no face: nf/nf_0001.jpg (center)"), "%s", out_single);

    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "embed --pairs %s --root %s --shard %d/3 --out %s --threads 1",
                 pairs, images, i, shards);
        cr_assert_eq(run(args, &out, &err), 0, "shard %d: %s%s", i, out, err);
        cr_assert(strstr(out, "faces detected in"), "%s", out);
        free(out);
        free(err);
    }
    /* A finished shard is not computed again. */
    snprintf(args, sizeof args, "embed --pairs %s --root %s --shard 1/3 --out %s", pairs, images,
             shards);
    cr_assert_eq(run(args, &out, NULL), 0);
    cr_assert(strstr(out, "already done") && !strstr(out, "faces detected in"), "%s", out);
    free(out);

    snprintf(args, sizeof args, "eval --features %s --pairs %s %s --report %s", shards, pairs,
             protocol, merged);
    cr_assert_eq(run(args, &out, &err), 0, "%s%s", out, err);
    cr_assert(strstr(out, "from 3 shards"), "%s", out);
    cr_assert_str_eq(after_features_line(out), after_features_line(out_single));
    char *a = read_text(single), *b = read_text(merged);
    cr_assert_str_eq(a, b, "the merged JSON report differs from the single-process one");
    cr_assert(strstr(a, "\"images\":\t13") || strstr(a, "\"images\": 13"), "%.300s", a);
    free(a);
    free(b);
    free(out);
    free(err);

    /* Other face options than the shards were made with: refused, naming a shard. */
    snprintf(args, sizeof args, "eval --features %s --pairs %s %s --no-center-fallback", shards,
             pairs, protocol);
    cr_assert_eq(run(args, NULL, &err), 2);
    cr_assert(strstr(err, "shard-00000-of-00003.json") && strstr(err, "centre"), "%s", err);
    free(err);

    /* A shard lost: refused; the same shard recomputed from a Slurm array task's
     * environment: whole again. */
    snprintf(args, sizeof args, "%s/shard-00002-of-00003.json", shards);
    cr_assert_eq(unlink(args), 0);
    snprintf(args, sizeof args, "eval --features %s --pairs %s %s", shards, pairs, protocol);
    cr_assert_eq(run(args, NULL, &err), 2);
    cr_assert(strstr(err, "1 of 3 shards missing (2)"), "%s", err);
    free(err);
    setenv("SLURM_ARRAY_TASK_ID", "7", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "5", 1);
    snprintf(args, sizeof args, "embed --pairs %s --root %s --shard auto --out %s --threads 1",
             pairs, images, shards);
    int rc = run(args, &out, &err);
    unsetenv("SLURM_ARRAY_TASK_ID");
    unsetenv("SLURM_ARRAY_TASK_COUNT");
    unsetenv("SLURM_ARRAY_TASK_MIN");
    cr_assert_eq(rc, 0, "%s%s", out, err);
    cr_assert(strstr(out, "shard 2/3 (Slurm array)"), "%s", out);
    free(out);
    free(err);
    snprintf(args, sizeof args, "eval --features %s --pairs %s %s --report %s", shards, pairs,
             protocol, merged);
    cr_assert_eq(run(args, &out, NULL), 0, "%s", out);
    a = read_text(single);
    b = read_text(merged);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    free(out);
    free(out_single);

    /* An unreadable image: single-process eval refuses the run, and so does the merge. */
    snprintf(args, sizeof args, "%s/p1/p1_0002.jpg", images);
    write_text(args, "not a picture");
    snprintf(args, sizeof args, "eval --images %s --pairs %s %s --no-cache", images, pairs, protocol);
    cr_assert_eq(run(args, NULL, &err), 2);
    cr_assert(strstr(err, "1 images could not be read or embedded"), "%s", err);
    free(err);
    snprintf(args, sizeof args, "embed --pairs %s --root %s --shard 0/1 --out %s/one --threads 1",
             pairs, images, root);
    cr_assert_eq(run(args, NULL, &err), 0, "%s", err);
    cr_assert(strstr(err, "1 image could not be read"), "%s", err);
    free(err);
    snprintf(args, sizeof args, "eval --features %s/one --pairs %s %s", root, pairs, protocol);
    cr_assert_eq(run(args, NULL, &err), 2);
    cr_assert(strstr(err, "1 images could not be read or embedded (first: p1/p1_0002.jpg)"), "%s",
              err);
    free(err);

    snprintf(args, sizeof args, "rm -rf %s", root);
    cr_expect_eq(system(args), 0);
}
