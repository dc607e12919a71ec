/* test_contract.c - the API contract: api/openapi.json against the error table
 * (api/errors.c), the route table (api/routes.c) and an OpenAPI 3 validator. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/errors.h"
#include "api/routes.h"
#include "tests/server_harness.h"

static cJSON *load_spec(void)
{
    struct bytes b = harness_read_file("api/openapi.json");
    cJSON *spec = cJSON_ParseWithLength((const char *)b.data, b.size);
    free(b.data);
    cr_assert_not_null(spec, "api/openapi.json is not JSON");
    return spec;
}

/* Follows a local "$ref" ("#/a/b/c") until the node has none. */
static const cJSON *deref(const cJSON *spec, const cJSON *node)
{
    for (int hops = 0; hops < 8 && node; hops++) {
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(node, "$ref");
        if (!cJSON_IsString(ref))
            return node;
        cr_assert(strncmp(ref->valuestring, "#/", 2) == 0, "non-local $ref %s", ref->valuestring);
        char path[256];
        snprintf(path, sizeof path, "%s", ref->valuestring + 2);
        node = spec;
        for (char *save = NULL, *part = strtok_r(path, "/", &save); part && node;
             part = strtok_r(NULL, "/", &save))
            node = cJSON_GetObjectItemCaseSensitive(node, part);
        cr_assert_not_null(node, "dangling $ref %s", ref->valuestring);
    }
    return node;
}

static const cJSON *spec_code_enum(const cJSON *spec)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(spec, "components");
    const char *const steps[] = {"schemas", "Error", "properties", "error", "properties", "code",
                                 "enum"};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        e = cJSON_GetObjectItemCaseSensitive(e, steps[i]);
    cr_assert(cJSON_IsArray(e), "components.schemas.Error...code.enum is missing");
    return e;
}

/* The route that serves a documented path, with {id} filled in. */
static const struct fv_route *route_of(const char *method, const char *templ)
{
    char path[256], upper[8], allow[64];
    const char *brace = strchr(templ, '{');
    if (brace)
        snprintf(path, sizeof path, "%.*s%s%s", (int)(brace - templ), templ,
                 "0123456789abcdef0123456789abcdef", strchr(brace, '}') + 1);
    else
        snprintf(path, sizeof path, "%s", templ);
    size_t k = 0;
    for (; method[k] && k + 1 < sizeof upper; k++)
        upper[k] = (char)(method[k] - 'a' + 'A');
    upper[k] = 0;
    int status;
    int i = fv_route_find(upper, path, &status, allow, sizeof allow);
    cr_assert_geq(i, 0, "%s %s is documented but no route serves it (%d)", upper, templ, status);
    return &fv_routes[i];
}

static int is_operation(const char *key)
{
    return !strcmp(key, "get") || !strcmp(key, "post") || !strcmp(key, "put") ||
           !strcmp(key, "delete") || !strcmp(key, "patch");
}

Test(contract, embedded_spec_is_the_file)
{
    struct bytes b = harness_read_file("api/openapi.json");
    cr_assert_eq(fv_openapi_json_size, b.size, "embedded %lu bytes, the file has %zu",
                 fv_openapi_json_size, b.size);
    cr_assert(memcmp(fv_openapi_json, b.data, b.size) == 0, "the embedded bytes differ");
    cr_assert_eq(fv_openapi_json[fv_openapi_json_size], 0, "no NUL after the document");
    free(b.data);
}

Test(contract, error_table_complete)
{
    for (int c = 0; c < FV_API_CODE_COUNT; c++) {
        const struct fv_api_error *e = fv_api_error_get((enum fv_api_code)c);
        cr_assert(e->code && e->code[0] && e->meaning && e->meaning[0], "row %d is empty", c);
        cr_assert(e->uses[0].on, "%s is never sent", e->code);
        for (int k = 0; k < FV_API_ERROR_USES; k++) {
            if (!e->uses[k].on)
                continue;
            int st = e->uses[k].status;
            cr_assert((st >= 400 && st < 600) || (st == 0 && e->uses[k].on == FV_API_ON_JOB),
                      "%s: status %d (0 only for FV_API_ON_JOB alone)", e->code, st);
        }
        for (int d = 0; d < c; d++)
            cr_assert_str_neq(e->code, fv_api_code_str((enum fv_api_code)d), "%s twice", e->code);
    }
    cr_assert(fv_api_error_allows(FV_API_CODE_BUSY, 429));
    cr_assert(fv_api_error_allows(FV_API_CODE_BUSY, 503));
    cr_assert_not(fv_api_error_allows(FV_API_CODE_BUSY, 500));
}

/* Every code the server can send is in the spec's Error.code enum, and the enum
 * holds nothing the server never sends. */
Test(contract, error_codes_match_spec_enum)
{
    cJSON *spec = load_spec();
    const cJSON *codes = spec_code_enum(spec);
    for (int c = 0; c < FV_API_CODE_COUNT; c++) {
        const char *code = fv_api_code_str((enum fv_api_code)c);
        int found = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, codes) found += cJSON_IsString(v) && !strcmp(v->valuestring, code);
        cr_expect_eq(found, 1, "the server sends %s; the spec's Error.code enum lists it %d times",
                     code, found);
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, codes)
    {
        int known = 0;
        for (int c = 0; c < FV_API_CODE_COUNT && cJSON_IsString(v); c++)
            known |= !strcmp(v->valuestring, fv_api_code_str((enum fv_api_code)c));
        cr_expect(known, "the spec lists %s, which is in no row of api/errors.c",
                  cJSON_IsString(v) ? v->valuestring : "(not a string)");
    }
    cJSON_Delete(spec);
}

/* The error statuses code c goes out with on a route whose fv_route_errors is on. */
static void statuses_sent(unsigned on, int sent[600], int who[600])
{
    for (int c = 0; c < FV_API_CODE_COUNT; c++) {
        const struct fv_api_error *e = fv_api_error_get((enum fv_api_code)c);
        for (int k = 0; k < FV_API_ERROR_USES; k++)
            if ((e->uses[k].on & on) && e->uses[k].status) {
                sent[e->uses[k].status] = 1;
                who[e->uses[k].status] = c;
            }
    }
}

/* Every error status a route's codes go out with is documented, as an Error
 * body, on the path (or one of the paths: GET /v1/evaluations/{id} also serves
 * .../roc.svg) that route serves; and no operation documents an error status
 * that none of its route's codes uses. */
Test(contract, route_error_statuses_documented)
{
    cJSON *spec = load_spec();
    const cJSON *error_schema = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "components"),
                                         "schemas"),
        "Error");
    cr_assert_not_null(error_schema);
    static int documented[64][600];
    memset(documented, 0, sizeof documented);
    cr_assert_leq(fv_route_count, 64);
    const cJSON *path;
    cJSON_ArrayForEach(path, cJSON_GetObjectItemCaseSensitive(spec, "paths"))
    {
        const cJSON *op;
        cJSON_ArrayForEach(op, path)
        {
            if (!is_operation(op->string))
                continue;
            const struct fv_route *route = route_of(op->string, path->string);
            int sent[600] = {0}, who[600] = {0};
            statuses_sent(fv_route_errors(route), sent, who);
            const cJSON *resp;
            cJSON_ArrayForEach(resp, cJSON_GetObjectItemCaseSensitive(op, "responses"))
            {
                int st = atoi(resp->string);
                if (st < 400 || st >= 600)
                    continue;
                cr_expect(sent[st], "%s %s documents %d, which no error code goes out with there",
                          op->string, path->string, st);
                const cJSON *schema = deref(
                    spec, cJSON_GetObjectItemCaseSensitive(
                              cJSON_GetObjectItemCaseSensitive(
                                  cJSON_GetObjectItemCaseSensitive(deref(spec, resp), "content"),
                                  "application/json"),
                              "schema"));
                cr_expect(schema == error_schema, "%s %s: response %d is not the Error schema",
                          op->string, path->string, st);
                documented[route - fv_routes][st] = 1;
            }
        }
    }
    for (int i = 0; i < fv_route_count; i++) {
        int sent[600] = {0}, who[600] = {0};
        statuses_sent(fv_route_errors(&fv_routes[i]), sent, who);
        for (int st = 400; st < 600; st++)
            cr_expect(!sent[st] || documented[i][st],
                      "%s %s: %s goes out with %d, which the spec does not document",
                      fv_routes[i].method, fv_routes[i].path,
                      fv_api_code_str((enum fv_api_code)who[st]), st);
    }
    cJSON_Delete(spec);
}

/* ---- node: tests/contract/check.mjs with the pinned packages ---- */

/* The folder scripts/npm-pinned.sh installed the packages into, or NULL
 * (the test is skipped, saying why). */
static const char *contract_node(void)
{
    const char *dir = getenv("FV_CONTRACT_NODE");
    if (!dir || !dir[0])
        dir = "build/contract";
    if (system("command -v node >/dev/null 2>&1") != 0) {
        cr_skip_test("node is not installed (make deps): api/openapi.json not validated");
        return NULL;
    }
    char stamp[512];
    snprintf(stamp, sizeof stamp, "%s/.stamp", dir);
    if (access(stamp, R_OK) != 0) {
        cr_skip_test("%s is missing: run sh scripts/npm-pinned.sh tests/contract %s contract "
                     "(make test does)",
                     stamp, dir);
        return NULL;
    }
    return dir;
}

/* Runs check.mjs with args; returns its exit status. */
static int run_check(const char *dir, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "FV_CONTRACT_NODE='%s' node tests/contract/check.mjs %s", dir, args);
    int rc = system(cmd);
    cr_assert(rc != -1 && WIFEXITED(rc), "%s did not run", cmd);
    return WEXITSTATUS(rc);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fputs(text, f) >= 0 && fclose(f) == 0, 1, "cannot write %s", path);
}

Test(contract, spec_is_valid_openapi, .timeout = 60)
{
    const char *dir = contract_node();
    if (dir)
        cr_assert_eq(run_check(dir, "spec api/openapi.json"), 0,
                     "api/openapi.json fails the OpenAPI 3 validator (see above)");
}

/* The validator and the response check can fail: a response without its
 * required description, and answers that do not match their schemas. */
Test(contract, checks_reject_mismatches, .timeout = 60)
{
    const char *dir = contract_node();
    if (!dir)
        return;
    cJSON *spec = load_spec();
    cJSON *ok = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "paths"),
                                                 "/healthz"),
                "get"),
            "responses"),
        "200");
    cr_assert_not_null(ok);
    cJSON_DeleteItemFromObjectCaseSensitive(ok, "description");
    char *text = cJSON_Print(spec);
    cJSON_Delete(spec);
    char broken[] = "/tmp/fv-contract-XXXXXX";
    int fd = mkstemp(broken);
    cr_assert_geq(fd, 0);
    close(fd);
    write_file(broken, text);
    free(text);
    char args[256];
    snprintf(args, sizeof args, "spec %s >/dev/null 2>&1", broken);
    cr_expect_eq(run_check(dir, args), 1, "a response without a description passed");

    static const char *const good =
        "{\"method\":\"GET\",\"path\":\"/healthz\",\"status\":200,"
        "\"content_type\":\"application/json\",\"body\":\"{\\\"status\\\":\\\"ok\\\"}\"}\n"
        "{\"method\":\"GET\",\"path\":\"/v1/evaluations/0123456789abcdef0123456789abcdef\","
        "\"status\":404,\"content_type\":\"application/json\",\"body\":"
        "\"{\\\"error\\\":{\\\"code\\\":\\\"not_found\\\",\\\"message\\\":\\\"m\\\"}}\"}\n";
    static const char *const bad[] = {
        /* a body of the wrong type */
        "{\"method\":\"GET\",\"path\":\"/healthz\",\"status\":200,"
        "\"content_type\":\"application/json\",\"body\":\"{\\\"status\\\":5}\"}\n",
        /* an error code the spec does not list */
        "{\"method\":\"GET\",\"path\":\"/nowhere\",\"status\":404,"
        "\"content_type\":\"application/json\",\"body\":"
        "\"{\\\"error\\\":{\\\"code\\\":\\\"no_such_code\\\",\\\"message\\\":\\\"m\\\"}}\"}\n",
        /* a status not documented for the route */
        "{\"method\":\"GET\",\"path\":\"/healthz\",\"status\":418,"
        "\"content_type\":\"application/json\",\"body\":\"{}\"}\n",
    };
    write_file(broken, good);
    snprintf(args, sizeof args, "responses api/openapi.json %s >/dev/null", broken);
    cr_expect_eq(run_check(dir, args), 0, "good answers were rejected");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(broken, bad[i]);
        snprintf(args, sizeof args, "responses api/openapi.json %s >/dev/null 2>&1", broken);
        cr_expect_eq(run_check(dir, args), 1, "passed: %s", bad[i]);
    }
    unlink(broken);
}
