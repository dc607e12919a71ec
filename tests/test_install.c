/* test_install.c - `make install` into a temporary prefix, then the installed
 * binary run from a folder with no models in it (verify, embed, serve,
 * --version), `make uninstall`; and a binary with no models anywhere, whose
 * error names every place it looked. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/server_harness.h"

TestSuite(install, .timeout = 300, .fini = harness_kill_servers);

static const char match_a[] = "tests/data/sample1.jpg";
static const char match_b[] = "tests/data/phone/sample1-4032.jpg"; /* sample1, enlarged */

/* Runs a shell command line; its stdout and stderr in *out (free it) when out
 * is given. Returns the exit status, -1 when killed. */
static int sh(const char *line, char **out)
{
    char *full;
    cr_assert_gt(asprintf(&full, "%s 2>&1", line), 0);
    FILE *p = popen(full, "r");
    free(full);
    cr_assert_not_null(p);
    size_t cap = 1 << 16, len = 0, got;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 1024) {
            buf = realloc(buf, cap *= 2);
            cr_assert_not_null(buf);
        }
    }
    buf[len] = '\0';
    int status = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void skip_without_assets(void)
{
    harness_skip_without_assets(match_a);
    harness_skip_without_assets(match_b);
}

/* The make BUILD folder the binary under test came from: ./facever is build's,
 * build-asan/facever is build-asan's. */
static void build_dir(char out[PATH_MAX])
{
    const char *bin = harness_facever_path();
    const char *slash = strrchr(bin, '/');
    size_t n = slash ? (size_t)(slash - bin) : 0;
    snprintf(out, PATH_MAX, "%.*s", (int)n, bin);
    if (!n || strcmp(out, ".") == 0)
        snprintf(out, PATH_MAX, "build");
}

static void make_temp(char out[PATH_MAX])
{
    char tmpl[] = "/tmp/facever-install-XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    cr_assert_not_null(realpath(tmpl, out)); /* as /proc/self/exe will name it */
}

static void remove_tree(const char *dir)
{
    char line[PATH_MAX + 16];
    snprintf(line, sizeof line, "rm -rf '%s'", dir);
    cr_expect_eq(sh(line, NULL), 0);
}

static void expect_mode(const char *prefix, const char *file, mode_t mode)
{
    char path[2 * PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", prefix, file);
    cr_assert_eq(stat(path, &st), 0, "%s not installed", file);
    cr_expect_eq(st.st_mode & 07777, mode, "%s: mode %o, wanted %o", file,
                 (unsigned)(st.st_mode & 07777), (unsigned)mode);
}

static void unset_model_settings(void)
{
    unsetenv("FACEVER_MODELS");
    unsetenv("FACEVER_MODEL");
    unsetenv("FACEVER_PCA");
}

Test(install, installed_binary_runs_from_any_folder)
{
    skip_without_assets();
    unset_model_settings();
    char root[PATH_MAX], tmp[PATH_MAX], prefix[PATH_MAX + 8], work[PATH_MAX + 8], build[PATH_MAX];
    char line[8 * PATH_MAX], *out;
    cr_assert_not_null(getcwd(root, sizeof root));
    make_temp(tmp);
    build_dir(build);
    snprintf(prefix, sizeof prefix, "%s/usr", tmp);
    snprintf(work, sizeof work, "%s/work", tmp);
    cr_assert_eq(mkdir(work, 0755), 0);

    snprintf(line, sizeof line, "make -s --no-print-directory install PREFIX='%s' BUILD='%s'",
             prefix, build);
    cr_assert_eq(sh(line, &out), 0, "make install failed:\n%s", out);
    free(out);
    expect_mode(prefix, "bin/facever", 0755);
    const char *const models[] = {"pnet.fvm", "rnet.fvm", "onet.fvm", "mobilefacenet.fvm"};
    for (size_t i = 0; i < 4; i++) {
        char file[64];
        snprintf(file, sizeof file, "share/facever/models/%s", models[i]);
        expect_mode(prefix, file, 0644);
    }
    expect_mode(prefix, "share/doc/facever/README.md", 0644);
    expect_mode(prefix, "share/doc/facever/SECURITY.md", 0644);
    expect_mode(prefix, "share/doc/facever/docs/model-format.md", 0644);
    expect_mode(prefix, "share/facever/deploy/nginx/facever.conf", 0644);
    expect_mode(prefix, "share/facever/deploy/slurm/submit.sh", 0755);
    expect_mode(prefix, "share/facever/deploy/systemd/facever.env", 0644);
    expect_mode(prefix, "lib/systemd/system/facever.service", 0644);

    /* The unit starts the installed binary, and systemd accepts it. */
    snprintf(line, sizeof line, "grep -x 'ExecStart=%s/bin/facever serve --host ${FACEVER_HOST} "
             "--port ${FACEVER_PORT}' '%s/lib/systemd/system/facever.service'", prefix, prefix);
    cr_expect_eq(sh(line, NULL), 0, "the unit's ExecStart does not name %s/bin/facever", prefix);
    if (sh("command -v systemd-analyze", NULL) != 0) {
        fprintf(stderr, "test_install: systemd-analyze not found; the unit is not verified\n");
    } else {
        snprintf(line, sizeof line, "systemd-analyze verify '%s/lib/systemd/system/facever.service'",
                 prefix);
        cr_expect_eq(sh(line, &out), 0, "systemd-analyze verify:\n%s", out);
        free(out);
    }

    /* From a folder without models/, nothing told where they are. */
    snprintf(line, sizeof line, "cd '%s' && '%s/bin/facever' verify '%s/%s' '%s/%s' --json", work,
             prefix, root, match_a, root, match_b);
    cr_assert_eq(sh(line, &out), 0, "installed verify did not match:\n%s", out);
    cr_expect(strstr(out, "\"match\":\ttrue") != NULL, "%s", out);
    free(out);
    snprintf(line, sizeof line, "cd '%s' && '%s/bin/facever' embed '%s/%s' --json", work, prefix,
             root, match_a);
    cr_assert_eq(sh(line, &out), 0, "installed embed failed:\n%s", out);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "not JSON: %s", out);
    cr_expect_eq(cJSON_GetObjectItem(j, "dim")->valueint, 384);
    cJSON_Delete(j);
    free(out);

    /* --version lists the models under the prefix, each with a fingerprint. */
    snprintf(line, sizeof line, "cd '%s' && '%s/bin/facever' --version --json", work, prefix);
    cr_assert_eq(sh(line, &out), 0, "%s", out);
    j = cJSON_Parse(out);
    cr_assert_not_null(j, "not JSON: %s", out);
    cr_expect_str_neq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "version")), "");
    cr_expect_str_neq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "revision")), "");
    cr_expect_not_null(cJSON_GetStringValue(cJSON_GetObjectItem(j, "cpu_level")));
    cJSON *m = cJSON_GetObjectItem(j, "models");
    char want_dir[PATH_MAX + 64];
    snprintf(want_dir, sizeof want_dir, "%s/share/facever/models", prefix);
    const char *dir = cJSON_GetStringValue(cJSON_GetObjectItem(m, "dir"));
    cr_assert_not_null(dir, "no models found: %s", out);
    cr_expect_str_eq(dir, want_dir);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(m, "found_by")),
                     "beside the executable");
    cJSON *files = cJSON_GetObjectItem(m, "files");
    cr_expect_eq(cJSON_GetArraySize(files), 4, "%s", out);
    cJSON *f;
    cJSON_ArrayForEach(f, files) {
        const char *fp = cJSON_GetStringValue(cJSON_GetObjectItem(f, "fingerprint"));
        cr_expect(fp && strlen(fp) == 16 && strspn(fp, "0123456789abcdef") == 16,
                  "%s: fingerprint %s", cJSON_GetStringValue(cJSON_GetObjectItem(f, "name")),
                  fp ? fp : "(none)");
    }
    cr_expect_not_null(cJSON_GetStringValue(cJSON_GetObjectItem(m, "pipeline_fingerprint")));
    cJSON_Delete(j);
    free(out);

    /* The server, started the same way, answers health checks and a verification. */
    char binary[PATH_MAX + 32];
    snprintf(binary, sizeof binary, "%s/bin/facever", prefix);
    struct server s;
    harness_server_start_binary(&s, binary, work, NULL);
    struct resp r = harness_get(&s, "/healthz");
    cr_expect_eq(r.status, 200);
    harness_resp_free(&r);
    struct bytes a = harness_read_file(match_a), b = harness_read_file(match_b);
    cJSON *body = harness_verify_body(&a, &b);
    r = harness_post_json(&s, "/v1/verify", body);
    cr_expect_eq(r.status, 200, "%s", r.body ? r.body : "");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "match")), "%s", r.body ? r.body : "");
    harness_resp_free(&r);
    cJSON_Delete(body);
    free(a.data);
    free(b.data);
    cr_expect_eq(harness_server_stop(&s, 20), 0);

    snprintf(line, sizeof line, "make -s --no-print-directory uninstall PREFIX='%s' BUILD='%s'",
             prefix, build);
    cr_expect_eq(sh(line, &out), 0, "make uninstall failed:\n%s", out);
    free(out);
    cr_expect_neq(access(binary, F_OK), 0, "uninstall left bin/facever");
    snprintf(line, sizeof line, "%s/share/facever", prefix);
    cr_expect_neq(access(line, F_OK), 0, "uninstall left share/facever");
    snprintf(line, sizeof line, "%s/lib/systemd/system/facever.service", prefix);
    cr_expect_neq(access(line, F_OK), 0, "uninstall left the unit");

    /* Staged (DESTDIR): the files under the stage, the unit naming the final path. */
    char stage[PATH_MAX + 16];
    snprintf(stage, sizeof stage, "%s/stage", tmp);
    snprintf(line, sizeof line,
             "make -s --no-print-directory install DESTDIR='%s' PREFIX=/usr BUILD='%s' && "
             "grep -qx 'ExecStart=/usr/bin/facever serve --host ${FACEVER_HOST} --port "
             "${FACEVER_PORT}' '%s/usr/lib/systemd/system/facever.service' && "
             "test -x '%s/usr/bin/facever' && test -r '%s/usr/share/facever/models/pnet.fvm'",
             stage, build, stage, stage, stage);
    cr_expect_eq(sh(line, &out), 0, "staged install:\n%s", out);
    free(out);
    snprintf(line, sizeof line,
             "make -s --no-print-directory uninstall DESTDIR='%s' PREFIX=/usr BUILD='%s' && "
             "! test -e '%s/usr/bin/facever' && ! test -e '%s/usr/share/facever'",
             stage, build, stage, stage);
    cr_expect_eq(sh(line, &out), 0, "staged uninstall:\n%s", out);
    free(out);
    remove_tree(tmp);
}

Test(install, no_models_anywhere_names_every_place)
{
    skip_without_assets();
    unset_model_settings();
    char root[PATH_MAX], tmp[PATH_MAX], line[16 * PATH_MAX], *out;
    cr_assert_not_null(getcwd(root, sizeof root));
    make_temp(tmp);
    /* The binary alone in TMP/bin, an empty $FACEVER_MODELS, run from TMP. */
    snprintf(line, sizeof line, "mkdir '%s/bin' '%s/empty' && cp '%s' '%s/bin/facever'", tmp, tmp,
             harness_facever_path(), tmp);
    cr_assert_eq(sh(line, NULL), 0);
    char want_option[PATH_MAX + 64], want_env[PATH_MAX + 64], want_exe[PATH_MAX + 64],
        want_cwd[PATH_MAX + 64];
    snprintf(want_option, sizeof want_option, "--models %s/nowhere (no such folder)", tmp);
    snprintf(want_env, sizeof want_env, "$FACEVER_MODELS %s/empty (no pnet.fvm)", tmp);
    snprintf(want_exe, sizeof want_exe,
             "beside the executable %s/share/facever/models (no such folder)", tmp);
    snprintf(want_cwd, sizeof want_cwd, "./models in %s (no such folder)", tmp);

    /* Every face command goes through the same search. */
    const char *const commands[] = {"verify %s %s", "detect %s", "align %s --out crop.png", "embed %s",
                                    "serve --port 0 --drain-seconds 0"};
    char a[PATH_MAX + 64], b[PATH_MAX + 64];
    snprintf(a, sizeof a, "'%s/%s'", root, match_a);
    snprintf(b, sizeof b, "'%s/%s'", root, match_b);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char args[4 * PATH_MAX];
        snprintf(args, sizeof args, commands[i], a, b);
        snprintf(line, sizeof line,
                 "cd '%s' && FACEVER_MODELS='%s/empty' bin/facever %s --models '%s/nowhere'", tmp,
                 tmp, args, tmp);
        cr_expect_eq(sh(line, &out), 2, "%s: %s", commands[i], out);
        cr_expect(strstr(out, "not found; looked in: ") != NULL, "%s: %s", commands[i], out);
        cr_expect(strstr(out, want_option) != NULL, "%s: no '%s' in: %s", commands[i],
                  want_option, out);
        cr_expect(strstr(out, want_env) != NULL, "%s: no '%s' in: %s", commands[i], want_env, out);
        cr_expect(strstr(out, want_exe) != NULL, "%s: no '%s' in: %s", commands[i], want_exe, out);
        cr_expect(strstr(out, want_cwd) != NULL, "%s: no '%s' in: %s", commands[i], want_cwd, out);
        free(out);
    }
    /* Without the variable it is named as not set; --version still answers. */
    snprintf(line, sizeof line, "cd '%s' && bin/facever --version", tmp);
    cr_expect_eq(sh(line, &out), 0, "%s", out);
    cr_expect(strstr(out, "$FACEVER_MODELS (not set)") != NULL, "%s", out);
    cr_expect(strstr(out, want_exe) != NULL, "%s", out);
    free(out);
    /* The first place that has the files wins, even after places that do not. */
    snprintf(line, sizeof line,
             "cd '%s' && FACEVER_MODELS='%s/models' bin/facever --version --json "
             "--models '%s/empty'", tmp, root, tmp);
    cr_expect_eq(sh(line, &out), 0, "%s", out);
    cr_expect(strstr(out, "\"found_by\":\"$FACEVER_MODELS\"") != NULL, "%s", out);
    free(out);
    remove_tree(tmp);
}
