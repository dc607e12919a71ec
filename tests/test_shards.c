/* test_shards.c - NumPy files, shard slicing, the shard from the environment, and the
 * merge's refusals, on synthetic features (no models needed). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/npy.h"
#include "eval/shards.h"
#include "model/model_file.h"

/* ---- npy ---- */

/* What numpy.save (1.24) writes for np.zeros((3, 4), '<f4'), up to the data: checked
 * against numpy itself when this test was written. */
static const char npy_3x4_header[] =
    "\x93NUMPY\x01\x00\x76\x00"
    "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"
    "                                                          \n";

Test(npy, header_is_byte_exact_for_a_known_shape)
{
    uint8_t buf[FV_NPY_HEADER_MAX];
    size_t len = fv_npy_header(3, 4, buf, sizeof buf);
    cr_assert_eq(len, 128);
    cr_assert_eq(sizeof npy_3x4_header - 1, 128);
    cr_assert_eq(memcmp(buf, npy_3x4_header, 128), 0, "header: %.*s", (int)len - 10, buf + 10);
    /* Every header ends on a 64-byte boundary with a newline, whatever the digits. */
    size_t shapes[][2] = {{0, 384}, {1, 1}, {1234567, 768}, {(size_t)1 << 40, 65536}};
    for (size_t i = 0; i < 4; i++) {
        len = fv_npy_header(shapes[i][0], shapes[i][1], buf, sizeof buf);
        cr_assert(len > 0 && len % 64 == 0, "shape %zu: length %zu", i, len);
        cr_assert_eq(buf[len - 1], '\n');
        cr_assert_eq((size_t)(buf[8] | buf[9] << 8), len - 10);
    }
    cr_assert_eq(fv_npy_header(3, 4, buf, 100), 0, "a short buffer is refused");
}

static char *temp_path(const char *name)
{
    static char dir[] = "/tmp/facever-npy-XXXXXX";
    static int made;
    if (!made)
        made = mkdtemp(dir) != NULL;
    char *p = malloc(512);
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

Test(npy, write_then_read_gives_the_same_matrix)
{
    float x[5 * 7];
    for (int i = 0; i < 35; i++)
        x[i] = (float)i * 0.25f - 3.0f + (i == 11 ? 1e-30f : 0);
    char *path = temp_path("m.npy");
    FILE *f = fopen(path, "wb");
    struct fv_error err = {0};
    cr_assert_eq(fv_npy_write_f32(f, x, 5, 7, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fclose(f), 0);
    uint8_t *data;
    size_t size;
    cr_assert_eq(fv_read_file(path, 1 << 20, &data, &size, &err), FV_OK);
    cr_assert_eq(size, 128 + 35 * 4);
    /* Little-endian float32 data right after the header: 1.0 at x[16]. */
    cr_assert_eq(memcmp(data + 128 + 16 * 4, "\x00\x00\x80\x3f", 4), 0);
    free(data);
    float *y;
    size_t r, c;
    cr_assert_eq(fv_npy_read_f32(path, 1 << 20, &y, &r, &c, &err), FV_OK, "%s", err.message);
    cr_assert_eq(r, 5);
    cr_assert_eq(c, 7);
    cr_assert_eq(memcmp(x, y, sizeof x), 0);
    free(y);
    /* An empty matrix, as a shard of more shards than images writes. */
    f = fopen(path, "wb");
    cr_assert_eq(fv_npy_write_f32(f, x, 0, 384, &err), FV_OK);
    fclose(f);
    cr_assert_eq(fv_npy_read_f32(path, 1 << 20, &y, &r, &c, &err), FV_OK, "%s", err.message);
    cr_assert(r == 0 && c == 384 && y != NULL);
    free(y);
    unlink(path);
    free(path);
}

/* Parses header text (the dictionary) followed by body bytes of data. */
static enum fv_status parse_with(const char *dict, size_t body, struct fv_error *err)
{
    uint8_t buf[512] = {0};
    size_t len = strlen(dict);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(len + 1);
    buf[9] = 0;
    memcpy(buf + 10, dict, len);
    buf[10 + len] = '\n';
    float *x = NULL;
    size_t r, c;
    enum fv_status st = fv_npy_parse_f32(buf, 11 + len + body, "t.npy", &x, &r, &c, err);
    cr_assert(st == FV_OK || x == NULL);
    free(x);
    return st;
}

Test(npy, reader_refuses_what_it_does_not_hold)
{
    struct fv_error err = {0};
    cr_assert_eq(parse_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, &err),
                 FV_OK, "%s", err.message);
    cr_assert_eq(parse_with("{\"shape\": (2, 3), \"descr\": \"<f4\", \"fortran_order\": False}", 24, &err),
                 FV_OK, "%s", err.message);
    cr_assert_eq(parse_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 48, &err),
                 FV_ERR_UNSUPPORTED);
    cr_assert(strstr(err.message, "t.npy") && strstr(err.message, "<f8"), "%s", err.message);
    cr_assert_eq(parse_with("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24, &err),
                 FV_ERR_UNSUPPORTED);
    cr_assert_eq(parse_with("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, &err),
                 FV_ERR_UNSUPPORTED);
    cr_assert_eq(parse_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", 96, &err),
                 FV_ERR_UNSUPPORTED);
    cr_assert_eq(parse_with("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", 24, &err),
                 FV_ERR_UNSUPPORTED);
    cr_assert_eq(parse_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20, &err),
                 FV_ERR_FORMAT, "truncated data");
    cr_assert(strstr(err.message, "needs 24"), "%s", err.message);
    cr_assert_eq(parse_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28, &err),
                 FV_ERR_FORMAT, "trailing data");
    cr_assert_eq(parse_with("{'descr': '<f4', 'shape': (2, 3), }", 24, &err), FV_ERR_FORMAT);
    cr_assert_eq(parse_with("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", 24, &err),
                 FV_ERR_FORMAT, "repeated key");
    cr_assert_eq(parse_with("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 3)}", 0, &err),
                 FV_ERR_UNSUPPORTED, "an absurd dimension is not a dimension");
    uint8_t bad[16] = "\x93NUMPX\x01\x00\x02\x00{}";
    float *x;
    size_t r, c;
    cr_assert_eq(fv_npy_parse_f32(bad, sizeof bad, "t.npy", &x, &r, &c, &err), FV_ERR_FORMAT);
    cr_assert_null(x);
}

/* ---- slicing ---- */

Test(shards, every_image_exactly_once_for_1_to_7_shards)
{
    size_t sizes[] = {0, 1, 2, 5, 6, 7, 13, 100, 2320};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        for (size_t count = 1; count <= 7; count++) {
            unsigned char *seen = calloc(n + 1, 1);
            size_t expect_begin = 0, smallest = (size_t)-1, largest = 0;
            for (size_t i = 0; i < count; i++) {
                size_t b, e;
                fv_shard_range(n, i, count, &b, &e);
                cr_assert_eq(b, expect_begin, "n %zu, shard %zu/%zu starts at %zu", n, i, count, b);
                cr_assert_leq(b, e);
                for (size_t k = b; k < e; k++)
                    seen[k]++;
                expect_begin = e;
                smallest = e - b < smallest ? e - b : smallest;
                largest = e - b > largest ? e - b : largest;
            }
            cr_assert_eq(expect_begin, n, "n %zu, %zu shards end at %zu", n, count, expect_begin);
            for (size_t k = 0; k < n; k++)
                cr_assert_eq(seen[k], 1, "n %zu, %zu shards: image %zu seen %d times", n, count, k,
                             seen[k]);
            cr_assert_leq(largest - smallest, 1, "n %zu, %zu shards: unbalanced", n, count);
            free(seen);
        }
    }
}

Test(shards, shard_argument_is_parsed_strictly)
{
    size_t i, n;
    struct fv_error err = {0};
    cr_assert_eq(fv_shard_parse("3/7", &i, &n, &err), FV_OK);
    cr_assert(i == 3 && n == 7);
    cr_assert_eq(fv_shard_parse("0/1", &i, &n, &err), FV_OK);
    const char *bad[] = {"7/7", "1/0", "-1/3", "1/", "/3", "a/3", "1/3x", " 1/3", "1", "1/100000", ""};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        cr_assert_eq(fv_shard_parse(bad[k], &i, &n, &err), FV_ERR_INVALID_ARG, "'%s'", bad[k]);
}

static enum fv_status from_env(char *const *env, size_t shards, size_t *i, size_t *n,
                               struct fv_error *err)
{
    const char *source = NULL;
    return fv_shard_from_environment(env, shards, i, n, &source, err);
}

Test(shards, shard_from_slurm_or_kubernetes_environment)
{
    size_t i = 99, n = 99;
    struct fv_error err = {0};
    char *slurm[] = {"PATH=/bin", "SLURM_ARRAY_TASK_ID=2", "SLURM_ARRAY_TASK_COUNT=4",
                     "SLURM_ARRAY_TASK_MIN=0", "SLURM_ARRAY_TASK_MAX=3", NULL};
    cr_assert_eq(from_env(slurm, 0, &i, &n, &err), FV_OK, "%s", err.message);
    cr_assert(i == 2 && n == 4);
    /* --array=1-4: ids from 1. */
    char *from1[] = {"SLURM_ARRAY_TASK_ID=1", "SLURM_ARRAY_TASK_COUNT=4", "SLURM_ARRAY_TASK_MIN=1",
                     "SLURM_ARRAY_TASK_MAX=4", NULL};
    cr_assert_eq(from_env(from1, 4, &i, &n, &err), FV_OK, "%s", err.message);
    cr_assert(i == 0 && n == 4);
    /* --array=10-16:3: 10, 13, 16. */
    char *stepped[] = {"SLURM_ARRAY_TASK_ID=16", "SLURM_ARRAY_TASK_COUNT=3", "SLURM_ARRAY_TASK_MIN=10",
                       "SLURM_ARRAY_TASK_MAX=16", "SLURM_ARRAY_TASK_STEP=3", NULL};
    cr_assert_eq(from_env(stepped, 0, &i, &n, &err), FV_OK, "%s", err.message);
    cr_assert(i == 2 && n == 3);
    /* --array=1,3,7: not a range. */
    char *sparse[] = {"SLURM_ARRAY_TASK_ID=3", "SLURM_ARRAY_TASK_COUNT=3", "SLURM_ARRAY_TASK_MIN=1",
                      "SLURM_ARRAY_TASK_MAX=7", NULL};
    cr_assert_eq(from_env(sparse, 0, &i, &n, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "evenly stepped"), "%s", err.message);
    char *no_count[] = {"SLURM_ARRAY_TASK_ID=3", NULL};
    cr_assert_eq(from_env(no_count, 0, &i, &n, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "SLURM_ARRAY_TASK_COUNT"), "%s", err.message);
    cr_assert_eq(from_env(slurm, 5, &i, &n, &err), FV_ERR_INVALID_ARG, "--shards disagrees");

    char *k8s[] = {"JOB_COMPLETION_INDEX=4", NULL};
    cr_assert_eq(from_env(k8s, 5, &i, &n, &err), FV_OK, "%s", err.message);
    cr_assert(i == 4 && n == 5);
    cr_assert_eq(from_env(k8s, 4, &i, &n, &err), FV_ERR_INVALID_ARG, "index beyond the count");
    cr_assert_eq(from_env(k8s, 0, &i, &n, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "--shards") && strstr(err.message, "FACEVER_SHARDS"), "%s",
              err.message);
    char *k8s_env[] = {"FACEVER_SHARDS=8", "JOB_COMPLETION_INDEX=7", NULL};
    cr_assert_eq(from_env(k8s_env, 0, &i, &n, &err), FV_OK, "%s", err.message);
    cr_assert(i == 7 && n == 8);

    char *none[] = {"HOME=/root", NULL};
    cr_assert_eq(from_env(none, 3, &i, &n, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "SLURM_ARRAY_TASK_ID") && strstr(err.message, "JOB_COMPLETION_INDEX"),
              "%s", err.message);
}

Test(shards, lists_are_checked_for_repeats_and_bad_names)
{
    struct fv_error err = {0};
    const char *ok[] = {"a/a_0001.jpg", "b/b_0001.jpg", "a/a_0002.jpg"};
    cr_assert_eq(fv_shard_list_check(ok, 3, 1, "l.txt", &err), FV_OK, "%s", err.message);
    const char *twice[] = {"x.jpg", "a.jpg", "b.jpg", "a.jpg"};
    cr_assert_eq(fv_shard_list_check(twice, 4, 0, "l.txt", &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "'a.jpg' is listed twice (entries 2 and 4)"), "%s", err.message);
    const char *ctrl[] = {"a\tb.jpg"};
    cr_assert_eq(fv_shard_list_check(ctrl, 1, 0, "l.txt", &err), FV_ERR_FORMAT);
    const char *abs[] = {"/etc/passwd"};
    cr_assert_eq(fv_shard_list_check(abs, 1, 0, "l.txt", &err), FV_OK);
    cr_assert_eq(fv_shard_list_check(abs, 1, 1, "l.txt", &err), FV_ERR_INVALID_ARG);

    char *path = temp_path("list.txt");
    FILE *f = fopen(path, "w");
    fputs("# a comment\r\na/a_0001.jpg\r\n\n  \nb/b_0001.jpg  \nc/c 0001.jpg", f);
    fclose(f);
    char **names;
    size_t n;
    cr_assert_eq(fv_shard_list_load(path, &names, &n, &err), FV_OK, "%s", err.message);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(names[0], "a/a_0001.jpg");
    cr_assert_str_eq(names[1], "b/b_0001.jpg");
    cr_assert_str_eq(names[2], "c/c 0001.jpg");
    size_t count;
    uint64_t a, b;
    fv_shard_list_identify((const char *const *)names, n, &count, &a);
    cr_assert_eq(count, 3);
    fv_shard_list_identify((const char *const *)names, 2, &count, &b);
    cr_assert_neq(a, b);
    fv_shard_list_free(names, n);
    unlink(path);
    free(path);
}

/* ---- writing and gathering ---- */

#define DIM 6

static struct fv_shard_config test_config(void)
{
    struct fv_shard_config c;
    memset(&c, 0, sizeof c);
    c.fingerprint = 0x1234567890abcdefULL;
    snprintf(c.model, sizeof c.model, "testnet");
    snprintf(c.precision, sizeof c.precision, "fp32");
    c.dim = DIM;
    c.policy = FV_FACE_CENTER;
    c.center_fallback = 1;
    c.max_pixels = 40000000;
    c.max_bytes = 20 << 20;
    fv_detect_default_params(&c.detect);
    return c;
}

/* Feature k of image "img/N.jpg": a value unique to both. */
static float value(size_t image, size_t k)
{
    return (float)image * 10.0f + (float)k * 0.5f - 7.0f;
}

struct fixture {
    char dir[64];
    char **names;
    size_t n;
};

static void fixture_make(struct fixture *fx, size_t n)
{
    snprintf(fx->dir, sizeof fx->dir, "/tmp/facever-shards-XXXXXX");
    cr_assert_not_null(mkdtemp(fx->dir));
    fx->n = n;
    fx->names = calloc(n, sizeof *fx->names);
    for (size_t i = 0; i < n; i++) {
        fx->names[i] = malloc(32);
        snprintf(fx->names[i], 32, "img/%zu.jpg", i);
    }
}

static void fixture_free(struct fixture *fx)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    cr_expect_eq(system(cmd), 0);
    fv_shard_list_free(fx->names, fx->n);
}

/* Writes shard index of count of fx's list with config; image 4 had no face (centre
 * crop) and image 5 could not be read. Shard 2 ran on an older CPU than the others. */
static void write_shard(const struct fixture *fx, size_t index, size_t count,
                        const struct fv_shard_config *config)
{
    struct fv_shard s = {.config = *config, .index = index, .count = count,
                         .cpu_level = index == 2 ? "avx2" : "avx512"};
    fv_shard_list_identify((const char *const *)fx->names, fx->n, &s.list_count, &s.list_checksum);
    fv_shard_range(fx->n, index, count, &s.begin, &s.end);
    size_t rows = s.end - s.begin;
    float *x = calloc(rows * DIM + 1, sizeof *x);
    enum fv_feature_source *how = calloc(rows + 1, sizeof *how);
    for (size_t r = 0; r < rows; r++) {
        size_t image = s.begin + r;
        how[r] = image == 4 ? FV_FEATURE_CENTER : image == 5 ? FV_FEATURE_FAILED : FV_FEATURE_DETECTED;
        for (size_t k = 0; k < DIM; k++)
            x[r * DIM + k] = how[r] == FV_FEATURE_FAILED ? 0 : value(image, k);
    }
    struct fv_error err = {0};
    cr_assert_eq(fv_shard_write(fx->dir, &s, (const char *const *)fx->names + s.begin, x, how, &err),
                 FV_OK, "%s", err.message);
    char why[512];
    cr_assert(fv_shard_done(fx->dir, &s, why, sizeof why), "just written, yet: %s", why);
    free(x);
    free(how);
}

static enum fv_status gather(const struct fixture *fx, const struct fv_shard_config *config,
                             const char **paths, size_t n, float *x,
                             enum fv_feature_source *how, struct fv_error *err)
{
    struct fv_shards_summary summary;
    return fv_shards_gather(fx->dir, config, paths, n, x, how, &summary, err);
}

Test(shards, gathered_features_are_the_written_ones_in_the_pairs_order)
{
    struct fixture fx;
    fixture_make(&fx, 11);
    struct fv_shard_config c = test_config();
    for (size_t i = 0; i < 3; i++)
        write_shard(&fx, i, 3, &c);
    /* The evaluation asks for some of the images, in an order of its own. */
    const char *paths[] = {"img/9.jpg", "img/0.jpg", "img/4.jpg", "img/5.jpg", "img/10.jpg", "img/3.jpg"};
    size_t ids[] = {9, 0, 4, 5, 10, 3};
    float x[6 * DIM];
    enum fv_feature_source how[6];
    struct fv_shards_summary summary;
    struct fv_error err = {0};
    cr_assert_eq(fv_shards_gather(fx.dir, &c, paths, 6, x, how, &summary, &err), FV_OK, "%s",
                 err.message);
    cr_assert(summary.shards == 3 && summary.list_count == 11 && summary.used == 6);
    cr_assert_str_eq(summary.cpu_levels[0], "avx512");
    cr_assert_str_eq(summary.cpu_levels[1], "avx2");
    for (size_t i = 0; i < 6; i++) {
        enum fv_feature_source want = ids[i] == 4   ? FV_FEATURE_CENTER
                                      : ids[i] == 5 ? FV_FEATURE_FAILED
                                                    : FV_FEATURE_DETECTED;
        cr_assert_eq(how[i], want, "%s", paths[i]);
        for (size_t k = 0; k < DIM; k++)
            cr_assert_eq(x[i * DIM + k], want == FV_FEATURE_FAILED ? 0 : value(ids[i], k));
    }
    fixture_free(&fx);
}

Test(shards, merge_refuses_a_missing_shard_naming_it)
{
    struct fixture fx;
    fixture_make(&fx, 11);
    struct fv_shard_config c = test_config();
    write_shard(&fx, 0, 4, &c);
    write_shard(&fx, 2, 4, &c);
    /* Shard 3 was killed after its matrix: data without metadata is not done. */
    write_shard(&fx, 3, 4, &c);
    char path[256];
    snprintf(path, sizeof path, "%s/shard-00003-of-00004.json", fx.dir);
    cr_assert_eq(unlink(path), 0);
    const char *paths[] = {"img/0.jpg"};
    float x[DIM];
    enum fv_feature_source how[1];
    struct fv_error err = {0};
    cr_assert_eq(gather(&fx, &c, paths, 1, x, how, &err), FV_ERR_NOT_FOUND);
    cr_assert(strstr(err.message, "2 of 4 shards missing (1, 3)") &&
                  strstr(err.message, "shard-00001-of-00004.json"),
              "%s", err.message);
    fixture_free(&fx);
}

Test(shards, merge_refuses_another_model_or_options_naming_the_file)
{
    struct fixture fx;
    fixture_make(&fx, 9);
    struct fv_shard_config c = test_config(), other = c;
    other.fingerprint ^= 1;
    write_shard(&fx, 0, 3, &c);
    write_shard(&fx, 1, 3, &other);
    write_shard(&fx, 2, 3, &c);
    const char *paths[] = {"img/0.jpg", "img/8.jpg"};
    float x[2 * DIM];
    enum fv_feature_source how[2];
    struct fv_error err = {0};
    cr_assert_eq(gather(&fx, &c, paths, 2, x, how, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "shard-00001-of-00003.json") && strstr(err.message, "fingerprint"),
              "%s", err.message);

    /* Shards all alike, but not what this evaluation would compute. */
    write_shard(&fx, 1, 3, &c);
    cr_assert_eq(gather(&fx, &c, paths, 2, x, how, &err), FV_OK, "%s", err.message);
    other = c;
    other.center_fallback = 0;
    cr_assert_eq(gather(&fx, &other, paths, 2, x, how, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "shard-00000-of-00003.json") && strstr(err.message, "centre"),
              "%s", err.message);
    other = c;
    other.policy = FV_FACE_LARGEST;
    cr_assert_eq(gather(&fx, &other, paths, 2, x, how, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "--policy center, this run uses largest"), "%s", err.message);
    other = c;
    other.landmarks_checksum = 77;
    cr_assert_eq(gather(&fx, &other, paths, 2, x, how, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "landmarks"), "%s", err.message);
    fixture_free(&fx);
}

Test(shards, merge_refuses_shards_of_another_list_or_split)
{
    struct fixture fx;
    fixture_make(&fx, 9);
    struct fv_shard_config c = test_config();
    write_shard(&fx, 0, 3, &c);
    write_shard(&fx, 2, 3, &c);
    free(fx.names[8]);
    fx.names[8] = strdup("img/other.jpg");
    write_shard(&fx, 1, 3, &c);
    const char *paths[] = {"img/0.jpg"};
    float x[DIM];
    enum fv_feature_source how[1];
    struct fv_error err = {0};
    cr_assert_eq(gather(&fx, &c, paths, 1, x, how, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "shard-00001-of-00003.json") &&
                  strstr(err.message, "another image list"),
              "%s", err.message);
    /* A stale shard of an earlier 2-way split in the same folder. */
    write_shard(&fx, 0, 2, &c);
    cr_assert_eq(gather(&fx, &c, paths, 1, x, how, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "two different splits") && strstr(err.message, "-of-00002.json"),
              "%s", err.message);
    fixture_free(&fx);
}

Test(shards, merge_refuses_duplicated_and_missing_images)
{
    struct fixture fx;
    fixture_make(&fx, 6);
    struct fv_shard_config c = test_config();
    /* A list that names img/1.jpg twice (embed refuses such lists; a hand-made one). */
    free(fx.names[4]);
    fx.names[4] = strdup("img/1.jpg");
    for (size_t i = 0; i < 3; i++)
        write_shard(&fx, i, 3, &c);
    const char *paths[] = {"img/0.jpg", "img/1.jpg"};
    float x[2 * DIM];
    enum fv_feature_source how[2];
    struct fv_error err = {0};
    cr_assert_eq(gather(&fx, &c, paths, 2, x, how, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "'img/1.jpg' is in two shards") &&
                  strstr(err.message, "shard-00000-of-00003.names.txt") &&
                  strstr(err.message, "shard-00002-of-00003.names.txt"),
              "%s", err.message);
    const char *absent[] = {"img/0.jpg", "img/7.jpg", "img/8.jpg"};
    float y[3 * DIM];
    enum fv_feature_source how3[3];
    cr_assert_eq(gather(&fx, &c, absent, 3, y, how3, &err), FV_ERR_NOT_FOUND);
    cr_assert(strstr(err.message, "2 of the 3 images") && strstr(err.message, "'img/7.jpg'"),
              "%s", err.message);
    fixture_free(&fx);
}

Test(shards, changed_files_and_reruns_are_detected)
{
    struct fixture fx;
    fixture_make(&fx, 8);
    struct fv_shard_config c = test_config();
    write_shard(&fx, 0, 2, &c);
    write_shard(&fx, 1, 2, &c);
    struct fv_shard s = {.config = c, .index = 1, .count = 2};
    fv_shard_list_identify((const char *const *)fx.names, fx.n, &s.list_count, &s.list_checksum);
    fv_shard_range(fx.n, 1, 2, &s.begin, &s.end);
    char why[512];
    cr_assert(fv_shard_done(fx.dir, &s, why, sizeof why), "%s", why);
    struct fv_shard other = s;
    other.config.fingerprint ^= 2;
    cr_assert_not(fv_shard_done(fx.dir, &other, why, sizeof why));
    cr_assert(strstr(why, "fingerprint"), "%s", why);
    other = s;
    other.list_checksum ^= 1;
    cr_assert_not(fv_shard_done(fx.dir, &other, why, sizeof why));
    cr_assert(strstr(why, "another image list"), "%s", why);

    /* One flipped bit in the matrix: not done, and the merge refuses it. */
    char path[256];
    snprintf(path, sizeof path, "%s/shard-00001-of-00002.npy", fx.dir);
    FILE *f = fopen(path, "r+b");
    fseek(f, 130, SEEK_SET);
    int byte = fgetc(f);
    fseek(f, 130, SEEK_SET);
    fputc(byte ^ 1, f);
    fclose(f);
    cr_assert_not(fv_shard_done(fx.dir, &s, why, sizeof why));
    cr_assert(strstr(why, "checksum"), "%s", why);
    const char *paths[] = {"img/7.jpg"};
    float x[DIM];
    enum fv_feature_source how[1];
    struct fv_error err = {0};
    cr_assert_eq(gather(&fx, &c, paths, 1, x, how, &err), FV_ERR_FORMAT);
    cr_assert(strstr(err.message, "shard-00001-of-00002.npy") && strstr(err.message, "checksum"),
              "%s", err.message);
    /* Rewriting it (a rerun) leaves no temporary files behind. */
    write_shard(&fx, 1, 2, &c);
    cr_assert_eq(gather(&fx, &c, paths, 1, x, how, &err), FV_OK, "%s", err.message);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp", fx.dir);
    FILE *p = popen(cmd, "r");
    int tmp_files = -1;
    cr_assert_eq(fscanf(p, "%d", &tmp_files), 1);
    pclose(p);
    cr_assert_eq(tmp_files, 0);

    /* Metadata that is not JSON (a disk full at the wrong moment, say). */
    snprintf(path, sizeof path, "%s/shard-00000-of-00002.json", fx.dir);
    f = fopen(path, "w");
    fputs("{\"format\": \"facever-embedding-shard\", \"vers", f);
    fclose(f);
    cr_assert_eq(gather(&fx, &c, paths, 1, x, how, &err), FV_ERR_FORMAT);
    cr_assert(strstr(err.message, "shard-00000-of-00002.json"), "%s", err.message);
    fixture_free(&fx);
}

/* Metadata is read from a shared folder anyone in the job could have written to. */
Test(shards, metadata_reader_checks_every_field)
{
    uint8_t *seed;
    size_t size;
    struct fv_error err = {0};
    cr_assert_eq(fv_read_file("tests/fuzz/corpus/shards/metadata.json", 1 << 20, &seed, &size, &err),
                 FV_OK, "%s", err.message);
    char *text = realloc(seed, size + 1);
    text[size] = '\0';
    cr_assert_eq(fv_shard_metadata_check((uint8_t *)text, size, "m.json", &err), FV_OK, "%s",
                 err.message);
    struct {
        const char *from, *to;
        enum fv_status want;
    } cases[] = {
        {"\"version\": 1", "\"version\": 2", FV_ERR_UNSUPPORTED},
        {"\"format\": \"facever-embedding-shard\"", "\"format\": \"other\"", FV_ERR_FORMAT},
        {"\"npy\": \"shard-00000-of-00003.npy\"", "\"npy\": \"../../etc/x.npy\"", FV_ERR_FORMAT},
        {"\"row\": 3", "\"row\": 773", FV_ERR_FORMAT},
        {"\"row\": 3", "\"row\": -1", FV_ERR_FORMAT},
        {"\"row\": 3", "\"row\": 2.5", FV_ERR_FORMAT},
        {"\"source\": \"center\"", "\"source\": \"detected\"", FV_ERR_FORMAT},
        {"\"index\": 0", "\"index\": 3", FV_ERR_FORMAT},
        {"\"end\": 773", "\"end\": 9999", FV_ERR_FORMAT},
        {"\"fingerprint\": \"", "\"fingerprint\": \"x", FV_ERR_FORMAT},
        {"\"policy\": \"center\"", "\"policy\": \"middle\"", FV_ERR_FORMAT},
        {"\"dim\": 384", "\"dim\": \"384\"", FV_ERR_FORMAT},
        {"\"landmarks_checksum\": null", "\"landmarks_checksum\": 5", FV_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *at = strstr(text, cases[i].from);
        cr_assert_not_null(at, "seed lacks %s", cases[i].from);
        char changed[8192];
        snprintf(changed, sizeof changed, "%.*s%s%s", (int)(at - text), text, cases[i].to,
                 at + strlen(cases[i].from));
        cr_assert_eq(fv_shard_metadata_check((uint8_t *)changed, strlen(changed), "m.json", &err),
                     cases[i].want, "%s -> %s: %s", cases[i].from, cases[i].to, err.message);
        cr_assert(strstr(err.message, "m.json"), "%s", err.message);
    }
    free(text);
}
