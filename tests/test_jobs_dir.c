/* test_jobs_dir.c - api/jobs_dir.c: ids, whole-file replace, write-once results,
 * listing order and removal, refusal of anything that is not an id. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/jobs_dir.h"
#include "tests/leak_check.h"

LEAK_CHECKED_SUITE(jobs_dir);

static const char id1[] = "00000000000000000000000000000001";
static const char id2[] = "00000000000000000000000000000002";

/* A fresh folder below a fresh temporary one (so that open's mkdir is exercised). */
static struct fv_jobs_dir *open_fresh(char *root, char *path, size_t cap)
{
    cr_assert_not_null(mkdtemp(root));
    snprintf(path, cap, "%s/jobs", root);
    struct fv_jobs_dir *d = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_jobs_dir_open(path, &d, &err), FV_OK, "%s", err.message);
    return d;
}

static char *get(struct fv_jobs_dir *d, const char *id, enum fv_jobs_file kind)
{
    char *text = NULL;
    size_t len = 0;
    enum fv_status st = fv_jobs_dir_get(d, id, kind, 1 << 20, &text, &len, NULL);
    if (st == FV_ERR_NOT_FOUND)
        return NULL;
    cr_assert_eq(st, FV_OK);
    cr_assert_eq(strlen(text), len);
    return text;
}

/* Names in path, as one sorted, space-separated string. */
static void names_in(const char *path, char *out, size_t cap)
{
    char list[64][256];
    int n = 0;
    DIR *dir = opendir(path);
    cr_assert_not_null(dir);
    struct dirent *e;
    while ((e = readdir(dir)) && n < 64)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            snprintf(list[n++], sizeof list[0], "%.200s", e->d_name);
    closedir(dir);
    qsort(list, (size_t)n, sizeof list[0], (int (*)(const void *, const void *))strcmp);
    out[0] = 0;
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? " " : "", list[i]);
}

static void remove_tree(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    cr_assert_eq(system(cmd), 0);
}

Test(jobs_dir, ids_are_32_lowercase_hex_digits)
{
    cr_assert(fv_jobs_id_valid(id1, strlen(id1)));
    cr_assert(fv_jobs_id_valid("0123456789abcdef0123456789abcdef", 32));
    const char *bad[] = {"0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde",
                         "0123456789abcdef0123456789abcdef0", "../23456789abcdef0123456789abcdef",
                         "0123456789abcdef0123456789abcde/", "0123456789abcdef0123456789abcdeg",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(fv_jobs_id_valid(bad[i], strlen(bad[i])), "%s", bad[i]);
    /* The length is the caller's: a valid prefix of a longer string is no id. */
    cr_assert_not(fv_jobs_id_valid("0123456789abcdef0123456789abcdef0", 33));
}

Test(jobs_dir, put_replaces_and_put_once_keeps_the_first)
{
    char root[] = "/tmp/facever-jobs-test-XXXXXX", path[256], names[1024];
    struct fv_jobs_dir *d = open_fresh(root, path, sizeof path);
    struct fv_error err = {0};
    int created = -1;
    cr_assert_null(get(d, id1, FV_JOBS_LIVE));
    cr_assert_not(fv_jobs_dir_has(d, id1, FV_JOBS_LIVE));
    cr_assert_eq(fv_jobs_dir_put_once(d, id1, FV_JOBS_LIVE, "queued", 6, &created, &err), FV_OK);
    cr_assert_eq(created, 1);
    cr_assert(fv_jobs_dir_has(d, id1, FV_JOBS_LIVE));
    cr_assert_eq(fv_jobs_dir_put(d, id1, FV_JOBS_LIVE, "running", 7, &err), FV_OK);
    char *text = get(d, id1, FV_JOBS_LIVE);
    cr_assert_str_eq(text, "running");
    free(text);

    cr_assert_eq(fv_jobs_dir_put_once(d, id1, FV_JOBS_FINAL, "done", 4, &created, &err), FV_OK);
    cr_assert_eq(created, 1);
    cr_assert_eq(fv_jobs_dir_put_once(d, id1, FV_JOBS_FINAL, "failed", 6, &created, &err), FV_OK);
    cr_assert_eq(created, 0, "a second outcome was accepted");
    text = get(d, id1, FV_JOBS_FINAL);
    cr_assert_str_eq(text, "done", "the first outcome was overwritten");
    free(text);
    cr_assert_eq(fv_jobs_dir_put_once(d, id1, FV_JOBS_CANCEL, "", 0, &created, &err), FV_OK);
    text = get(d, id1, FV_JOBS_CANCEL);
    cr_assert_str_eq(text, "");
    free(text);

    /* Exactly the three records, no temporary left behind. */
    names_in(path, names, sizeof names);
    cr_assert_str_eq(names, "00000000000000000000000000000001.cancel "
                            "00000000000000000000000000000001.final.json "
                            "00000000000000000000000000000001.live.json");
    char *big = NULL;
    size_t len;
    cr_assert_eq(fv_jobs_dir_get(d, id1, FV_JOBS_LIVE, 3, &big, &len, NULL), FV_ERR_TOO_LARGE);
    cr_assert_null(big);

    fv_jobs_dir_remove(d, id1);
    names_in(path, names, sizeof names);
    cr_assert_str_eq(names, "");
    fv_jobs_dir_remove(d, id1); /* nothing left: fine */
    fv_jobs_dir_free(d);
    remove_tree(root);
}

Test(jobs_dir, refuses_names_that_are_not_ids)
{
    char root[] = "/tmp/facever-jobs-test-XXXXXX", path[256], names[1024];
    struct fv_jobs_dir *d = open_fresh(root, path, sizeof path);
    /* A record just outside, where "../<id>" would lead. */
    char outside[300];
    snprintf(outside, sizeof outside, "%s/%s.live.json", root, id1);
    FILE *f = fopen(outside, "w");
    cr_assert_not_null(f);
    fputs("secret", f);
    fclose(f);
    const char *bad[] = {"../00000000000000000000000000000001", "0000000000000000000000000000000A",
                         "/etc/passwd", "", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int created = 1;
        char *text = (char *)"untouched";
        size_t len;
        cr_assert_eq(fv_jobs_dir_put(d, bad[i], FV_JOBS_LIVE, "x", 1, NULL), FV_ERR_INVALID_ARG);
        cr_assert_eq(fv_jobs_dir_put_once(d, bad[i], FV_JOBS_FINAL, "x", 1, &created, NULL),
                     FV_ERR_INVALID_ARG);
        cr_assert_eq(created, 0);
        cr_assert_eq(fv_jobs_dir_get(d, bad[i], FV_JOBS_LIVE, 1 << 20, &text, &len, NULL),
                     FV_ERR_INVALID_ARG);
        cr_assert_null(text);
        cr_assert_not(fv_jobs_dir_has(d, bad[i], FV_JOBS_LIVE));
        fv_jobs_dir_remove(d, bad[i]);
    }
    cr_assert_eq(access(outside, F_OK), 0, "a file outside the folder was removed");
    names_in(path, names, sizeof names);
    cr_assert_str_eq(names, "", "something was written for a name that is no id");
    fv_jobs_dir_free(d);
    remove_tree(root);
}

Test(jobs_dir, lists_one_kind_oldest_first_and_sweeps_temporaries)
{
    char root[] = "/tmp/facever-jobs-test-XXXXXX", path[256], other[1200];
    struct fv_jobs_dir *d = open_fresh(root, path, sizeof path);
    int created;
    cr_assert_eq(fv_jobs_dir_put_once(d, id2, FV_JOBS_FINAL, "b", 1, &created, NULL), FV_OK);
    cr_assert_eq(fv_jobs_dir_put_once(d, id1, FV_JOBS_FINAL, "a", 1, &created, NULL), FV_OK);
    cr_assert_eq(fv_jobs_dir_put(d, id1, FV_JOBS_LIVE, "l", 1, NULL), FV_OK);
    /* id2 is older than id1 by its mtime, whatever the names say. */
    snprintf(other, sizeof other, "touch -d '2000-01-01' '%s/%s.final.json'", path, id2);
    cr_assert_eq(system(other), 0);
    /* Strangers: not listed, and a stale temporary swept. */
    snprintf(other, sizeof other,
             "touch '%s/0000000000000000000000000000000X.final.json' '%s/notes.txt' && "
             "touch -d '2000-01-01' '%s/.tmp-old' && touch '%s/.tmp-new'",
             path, path, path, path);
    cr_assert_eq(system(other), 0);
    struct fv_jobs_entry *list = NULL;
    size_t n = 0;
    cr_assert_eq(fv_jobs_dir_list(d, FV_JOBS_FINAL, &list, &n, NULL), FV_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(list[0].id, id2);
    cr_assert_str_eq(list[1].id, id1);
    free(list);
    cr_assert_eq(fv_jobs_dir_list(d, FV_JOBS_LIVE, &list, &n, NULL), FV_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(list[0].id, id1);
    free(list);
    cr_assert_eq(fv_jobs_dir_list(d, FV_JOBS_CANCEL, &list, &n, NULL), FV_OK);
    cr_assert_eq(n, 0);
    cr_assert_null(list);

    fv_jobs_dir_sweep(d, 3600);
    snprintf(other, sizeof other, "%s/.tmp-old", path);
    cr_assert_neq(access(other, F_OK), 0, "an abandoned temporary was kept");
    snprintf(other, sizeof other, "%s/.tmp-new", path);
    cr_assert_eq(access(other, F_OK), 0, "a temporary being written was removed");
    fv_jobs_dir_free(d);
    remove_tree(root);
}

Test(jobs_dir, open_refuses_what_is_not_a_folder)
{
    char root[] = "/tmp/facever-jobs-test-XXXXXX", path[300];
    cr_assert_not_null(mkdtemp(root));
    snprintf(path, sizeof path, "%s/file", root);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    struct fv_jobs_dir *d = (struct fv_jobs_dir *)1;
    struct fv_error err = {0};
    cr_assert_neq(fv_jobs_dir_open(path, &d, &err), FV_OK);
    cr_assert_null(d);
    cr_assert_not_null(strstr(err.message, path), "%s", err.message);
    snprintf(path, sizeof path, "%s/no/such/parent", root);
    cr_assert_eq(fv_jobs_dir_open(path, &d, &err), FV_ERR_IO);
    cr_assert_eq(fv_jobs_dir_open("", &d, &err), FV_ERR_INVALID_ARG);
    fv_jobs_dir_free(NULL);
    remove_tree(root);
}
