/* test_pairs.c - pairs file parser: both header styles, no header, patterns, bad files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/pairs.h"

static struct fv_pairs *parse_ok(const char *text, const struct fv_pairs_params *params)
{
    struct fv_pairs *pairs = NULL;
    struct fv_error err = {0};
    enum fv_status st = fv_pairs_parse(text, strlen(text), "pairs.txt", params, &pairs, &err);
    cr_assert_eq(st, FV_OK, "%s", err.message);
    cr_assert_not_null(pairs);
    return pairs;
}

static void expect_pair(const struct fv_pairs *pairs, size_t i, const char *a, const char *b,
                        bool same, size_t fold)
{
    const struct fv_pair *p = &fv_pairs_items(pairs)[i];
    cr_assert_str_eq(fv_pairs_image_path(pairs, p->a), a, "pair %zu", i);
    cr_assert_str_eq(fv_pairs_image_path(pairs, p->b), b, "pair %zu", i);
    cr_assert_eq(p->same, same, "pair %zu", i);
    cr_assert_eq(p->fold, fold, "pair %zu", i);
}

Test(pairs, standard_header)
{
    const char *text = "2\t2\n"
                       "Alice\t1\t2\n"
                       "Bob\t1\t3\n"
                       "Alice\t1\tCarol\t2\n"
                       "Bob\t2\tDave\t1\n"
                       "Eve\t1\t2\n"
                       "Frank\t3\t4\n"
                       "Eve\t1\tFrank\t3\n"
                       "Carol\t2\tGina\t1\n";
    struct fv_pairs *pairs = parse_ok(text, NULL);
    cr_assert_eq(fv_pairs_count(pairs), 8);
    cr_assert_eq(fv_pairs_fold_count(pairs), 2);
    /* First use order: Alice 1, Alice 2, Bob 1, Bob 3, Carol 2, Bob 2, Dave 1, Eve 1, Eve 2,
     * Frank 3, Frank 4, Gina 1 (Alice 1, Carol 2, Eve 1, Frank 3 recur). */
    cr_assert_eq(fv_pairs_image_count(pairs), 12);
    cr_assert_str_eq(fv_pairs_image_path(pairs, 0), "Alice/Alice_0001.jpg");
    cr_assert_str_eq(fv_pairs_image_path(pairs, 5), "Bob/Bob_0002.jpg");
    cr_assert_str_eq(fv_pairs_image_path(pairs, 11), "Gina/Gina_0001.jpg");
    expect_pair(pairs, 0, "Alice/Alice_0001.jpg", "Alice/Alice_0002.jpg", true, 0);
    expect_pair(pairs, 2, "Alice/Alice_0001.jpg", "Carol/Carol_0002.jpg", false, 0);
    expect_pair(pairs, 4, "Eve/Eve_0001.jpg", "Eve/Eve_0002.jpg", true, 1);
    expect_pair(pairs, 7, "Carol/Carol_0002.jpg", "Gina/Gina_0001.jpg", false, 1);
    cr_assert_eq(fv_pairs_items(pairs)[2].a, 0);
    cr_assert_eq(fv_pairs_items(pairs)[7].a, 4);
    fv_pairs_free(pairs);
}

Test(pairs, folds_header_splits_evenly_crlf_and_blank_lines)
{
    const char *text = "FOLDS 2\r\n"
                       "A 1 2\r\n"
                       "\r\n"
                       "A   1  B 1\r\n"
                       "B 1 2\r\n"
                       "C 1 D 10\r\n"
                       "\n\n";
    struct fv_pairs *pairs = parse_ok(text, NULL);
    cr_assert_eq(fv_pairs_count(pairs), 4);
    cr_assert_eq(fv_pairs_fold_count(pairs), 2);
    cr_assert_eq(fv_pairs_image_count(pairs), 6);
    expect_pair(pairs, 0, "A/A_0001.jpg", "A/A_0002.jpg", true, 0);
    expect_pair(pairs, 1, "A/A_0001.jpg", "B/B_0001.jpg", false, 0);
    expect_pair(pairs, 2, "B/B_0001.jpg", "B/B_0002.jpg", true, 1);
    expect_pair(pairs, 3, "C/C_0001.jpg", "D/D_0010.jpg", false, 1);
    fv_pairs_free(pairs);
}

Test(pairs, no_header_is_one_fold)
{
    struct fv_pairs *pairs = parse_ok("A 1 2\nA 2 B 3", NULL); /* no final newline */
    cr_assert_eq(fv_pairs_count(pairs), 2);
    cr_assert_eq(fv_pairs_fold_count(pairs), 1);
    expect_pair(pairs, 1, "A/A_0002.jpg", "B/B_0003.jpg", false, 0);
    fv_pairs_free(pairs);
}

Test(pairs, custom_pattern)
{
    struct fv_pairs_params params = fv_pairs_default_params();
    params.image_pattern = "faces/%s/%%/%s-%d.png";
    struct fv_pairs *pairs = parse_ok("FOLDS 1\nZico 7 12\n", &params);
    expect_pair(pairs, 0, "faces/Zico/%/Zico-7.png", "faces/Zico/%/Zico-12.png", true, 0);
    fv_pairs_free(pairs);
}

Test(pairs, pattern_validation)
{
    static const char *const bad[] = {
        "%s/%s.jpg", "%s/%s_%04d.jpg%n", "%d/%s_%s", "%s/%s_%04ld.jpg", "%s/%s_%100d.jpg",
        "%s/%s_%d_%d.jpg", "%s/%s_%x.jpg", "%s/%s_%-4d.jpg", "%s/%s_%04d%", "%s/%s/%s_%d",
        "%*s/%s_%d", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct fv_error err = {0};
        cr_assert_eq(fv_pairs_check_pattern(bad[i], &err), FV_ERR_INVALID_ARG, "%s", bad[i]);
        cr_assert(strstr(err.message, "image pattern"), "%s", err.message);
    }
    cr_assert_eq(fv_pairs_check_pattern(NULL, NULL), FV_ERR_INVALID_ARG);
    cr_assert_eq(fv_pairs_check_pattern("%s/%s_%04d.jpg", NULL), FV_OK);
    cr_assert_eq(fv_pairs_check_pattern("%s%s%d", NULL), FV_OK);
    cr_assert_eq(fv_pairs_check_pattern("100%%/%s/%s_%4d", NULL), FV_OK);

    struct fv_pairs_params params = fv_pairs_default_params();
    params.image_pattern = "%s/%s_%04d.jpg%s";
    struct fv_pairs *pairs = NULL;
    cr_assert_eq(fv_pairs_parse("A 1 2\n", 6, "p", &params, &pairs, NULL), FV_ERR_INVALID_ARG);
    cr_assert_null(pairs);
}

struct bad_case {
    const char *text;
    size_t size; /* 0: strlen */
    enum fv_status status;
    const char *message; /* expected substring, always starting with "pairs.txt:<line>:" */
};

Test(pairs, malformed_files_name_the_line)
{
    static char long_line[2100];
    memset(long_line, 'A', sizeof long_line);
    memcpy(long_line, "FOLDS 1\n", 8);
    memcpy(long_line + sizeof long_line - 6, " 1 2\n", 6); /* includes the NUL */

    const struct bad_case cases[] = {
        {"2\t1\nA\t1\t2\nA\t1\tB\t1\nC\t1\t2\n", 0, FV_ERR_FORMAT,
         "pairs.txt:5: file ends after 3 pair lines; the header promises 4"},
        {"1\t1\nA 1 2\nA 1 B 1\nC 1 2\n", 0, FV_ERR_FORMAT, "pairs.txt:4: more pair lines"},
        {"1\t1\nA 1\nA 1 B 1\n", 0, FV_ERR_FORMAT, "pairs.txt:2: expected 3 or 4 fields, got 2"},
        {"FOLDS 1\nA 1 B 1 x\n", 0, FV_ERR_FORMAT,
         "pairs.txt:2: expected 3 or 4 fields, got at least 5"},
        {"1\t1\nA 1 B 1\nA 1 2\n", 0, FV_ERR_FORMAT,
         "pairs.txt:2: expected a same-person line"},
        {"1\t1\nA 1 2\nA 1 3\n", 0, FV_ERR_FORMAT,
         "pairs.txt:3: expected a different-person line"},
        {"FOLDS 1\nA 0 2\n", 0, FV_ERR_FORMAT, "pairs.txt:2: image number 0 is out of range"},
        {"FOLDS 1\nA 1 99999999999999999999\n", 0, FV_ERR_FORMAT,
         "pairs.txt:2: image number 99999999999999999999 is out of range"},
        {"FOLDS 1\nA 1 100000\n", 0, FV_ERR_FORMAT, "pairs.txt:2: image number 100000 is out"},
        {"FOLDS 1\nA -1 2\n", 0, FV_ERR_FORMAT,
         "pairs.txt:2: image number '-1' is not a positive integer"},
        {"FOLDS 1\nA 1 B x2\n", 0, FV_ERR_FORMAT,
         "pairs.txt:2: image number 'x2' is not a positive integer"},
        {"FOLDS 1\nA 1 2.0\n", 0, FV_ERR_FORMAT, "pairs.txt:2: image number '2.0' is not"},
        {"FOLDS 1\nA 1 B 1\nC/D 1 2\n", 0, FV_ERR_FORMAT,
         "pairs.txt:3: name 'C/D' contains a path separator"},
        {"FOLDS 1\nA 1 ..\\x 1\n", 0, FV_ERR_FORMAT, "pairs.txt:2: name '..\\x' contains"},
        {"FOLDS 1\n.. 1 2\n", 0, FV_ERR_FORMAT, "pairs.txt:2: name '..' contains '..'"},
        {"FOLDS 1\n. 1 2\n", 0, FV_ERR_FORMAT, "pairs.txt:2: name '.' is not a person"},
        {"FOLDS 1\nA\x01 1 2\n", 0, FV_ERR_FORMAT, "pairs.txt:2: control character 0x01"},
        {"FOLDS 1\nA 1 2\rB 1 2\n", 0, FV_ERR_FORMAT, "pairs.txt:2: control character 0x0d"},
        {long_line, 0, FV_ERR_FORMAT, "pairs.txt:2: line is longer than 1024 bytes"},
        {"FOLDS 1\nA 1 2\nB\0 1 2\n", 21, FV_ERR_FORMAT, "pairs.txt:3: NUL byte"},
        {"FOLDS 2\nA 1 2\nB 1 2\nC 1 2\n", 0, FV_ERR_FORMAT,
         "pairs.txt:5: 3 pair lines cannot be split evenly into 2 folds"},
        {"x y\nA 1 2\n", 0, FV_ERR_FORMAT, "pairs.txt:1: header must be"},
        {"0\t5\nA 1 2\n", 0, FV_ERR_FORMAT, "pairs.txt:1: fold count '0'"},
        {"FOLDS many\n", 0, FV_ERR_FORMAT, "pairs.txt:1: fold count 'many'"},
        {"3\t0\n", 0, FV_ERR_FORMAT, "pairs.txt:1: pairs per fold '0'"},
        {"3\n", 0, FV_ERR_FORMAT, "pairs.txt:1: expected a header"},
        {"", 0, FV_ERR_FORMAT, "pairs.txt:1: file is empty"},
        {"\n  \n", 0, FV_ERR_FORMAT, "pairs.txt:3: file is empty"},
        {"FOLDS 2\n", 0, FV_ERR_FORMAT, "pairs.txt:2: no pair lines"},
        {"1000\t1000000\n", 0, FV_ERR_TOO_LARGE, "pairs.txt:1: header promises 2000000000 pairs"},
        {"FOLDS 1\nA 3 3\n", 0, FV_ERR_FORMAT,
         "pairs.txt:2: pair compares image 3 of 'A' with itself"},
        {"FOLDS 1\nA 3 A 4\n", 0, FV_ERR_FORMAT,
         "pairs.txt:2: different-person line names 'A' twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const struct bad_case *c = &cases[i];
        struct fv_pairs *pairs = (struct fv_pairs *)1;
        struct fv_error err = {0};
        size_t size = c->size ? c->size : strlen(c->text);
        enum fv_status st = fv_pairs_parse(c->text, size, "pairs.txt", NULL, &pairs, &err);
        cr_assert_eq(st, c->status, "case %zu: status %d, %s", i, st, err.message);
        cr_assert_null(pairs, "case %zu", i);
        cr_assert(strstr(err.message, c->message), "case %zu: got '%s', want '%s'", i,
                  err.message, c->message);
    }
}

Test(pairs, pair_limit)
{
    struct fv_pairs_params params = fv_pairs_default_params();
    params.max_pairs = 2;
    struct fv_pairs *pairs = NULL;
    struct fv_error err = {0};
    const char *text = "A 1 2\nB 1 2\nC 1 2\n";
    cr_assert_eq(fv_pairs_parse(text, strlen(text), "pairs.txt", &params, &pairs, &err),
                 FV_ERR_TOO_LARGE);
    cr_assert(strstr(err.message, "pairs.txt:3: more than 2 pairs"), "%s", err.message);
    text = "2\t1\nA 1 2\n";
    cr_assert_eq(fv_pairs_parse(text, strlen(text), "pairs.txt", &params, &pairs, &err),
                 FV_ERR_TOO_LARGE);
    cr_assert(strstr(err.message, "pairs.txt:1: header promises 4 pairs"), "%s", err.message);
}

Test(pairs, load_from_file)
{
    char dir[] = "/tmp/fv_pairs_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/pairs.txt", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("2\t1\nA\t1\t2\nA\t1\tB\t1\nC\t1\t2\nC\t2\tD\t1\n", f);
    fclose(f);
    struct fv_pairs *pairs = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_pairs_load(path, NULL, &pairs, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_pairs_count(pairs), 4);
    cr_assert_eq(fv_pairs_fold_count(pairs), 2);
    fv_pairs_free(pairs);

    f = fopen(path, "w");
    fputs("2\t1\nA\t1\t2\n", f);
    fclose(f);
    cr_assert_eq(fv_pairs_load(path, NULL, &pairs, &err), FV_ERR_FORMAT);
    cr_assert(strstr(err.message, path) && strstr(err.message, ":3: file ends"), "%s",
              err.message);
    unlink(path);
    cr_assert_eq(fv_pairs_load(path, NULL, &pairs, &err), FV_ERR_IO);
    cr_assert_null(pairs);
    rmdir(dir);
    fv_pairs_free(NULL);
}

/* Optional: the development subset, when it sits beside the checkout. */
Test(pairs, lfw_dev_if_present)
{
    const char *path = getenv("FACEVER_LFW_DEV_PAIRS");
    if (!path)
        path = "../shared/lfw-dev/pairs.txt";
    if (access(path, R_OK) != 0)
        cr_skip_test("%s not present", path);
    struct fv_pairs *pairs = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_pairs_load(path, NULL, &pairs, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_pairs_fold_count(pairs), 3);
    cr_assert_eq(fv_pairs_count(pairs), 1800);
    cr_assert_eq(fv_pairs_image_count(pairs), 2320);
    fv_pairs_free(pairs);
}
