/* cmd_version.c - `facever version` / `facever --version`: the release, the git
 * revision it was built from, the model files this binary finds with their
 * fingerprints, and the CPU level the networks run at. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "model/cpu.h"
#include "model/model.h"
#include "pipeline/detect.h"
#include "version.h" /* generated: FV_VERSION, FV_GIT_REVISION (Makefile) */

static const char usage[] =
    "usage: facever version [--json] [--models DIR]\n"
    "       facever --version [--json] [--models DIR]\n\n"
    "Prints the facever release, the git revision it was built from, the models\n"
    "folder found (as every command finds it: --models, $FACEVER_MODELS,\n"
    "../share/facever/models beside the executable, ./models), a fingerprint of\n"
    "each model file in it and of the pipeline they make, and the CPU level the\n"
    "networks run at. The exit status is 0 even when no models are found.\n";

#define FNV_OFFSET 14695981039346656037ULL

static int is_model_file(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 4 && strcmp(e->d_name + n - 4, ".fvm") == 0;
}

int fv_cmd_version(int argc, char **argv)
{
    int json = 0;
    struct fv_cli_pipeline o;
    fv_cli_pipeline_defaults(&o);
    o.model_path = NULL; /* the installed default model, whatever $FACEVER_MODEL says */
    o.pca_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (fv_cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--models") == 0 && i + 1 < argc) {
            o.models_dir = argv[++i];
        } else {
            fprintf(stderr, "facever version: unknown or incomplete option '%s'\n%s", argv[i],
                    usage);
            return 2;
        }
    }
    const char *level = fv_cpu_level_name(fv_cpu_active_level());
    const char *forced = getenv("FV_CPU");
    const char *chosen_by = forced && *forced ? "FV_CPU" : "best supported";

    cJSON *root = cJSON_CreateObject(), *models = cJSON_CreateObject();
    cJSON *files = cJSON_CreateArray();
    if (!root || !models || !files) {
        cJSON_Delete(root);
        cJSON_Delete(models);
        cJSON_Delete(files);
        fprintf(stderr, "facever version: out of memory\n");
        return 2;
    }
    cJSON_AddStringToObject(root, "version", FV_VERSION);
    cJSON_AddStringToObject(root, "revision", FV_GIT_REVISION);
    cJSON_AddStringToObject(root, "cpu_level", level);
    cJSON_AddStringToObject(root, "cpu_level_chosen_by", chosen_by);
    cJSON_AddItemToObject(root, "models", models);

    struct fv_error err = {0};
    enum fv_models_place place;
    if (fv_models_find(o.models_dir, fv_models_pipeline_files, o.models_found, &place, &err)) {
        cJSON_Delete(files);
        cJSON_AddStringToObject(models, "error", err.message);
    } else {
        cJSON_AddStringToObject(models, "dir", o.models_found);
        cJSON_AddStringToObject(models, "found_by", fv_models_place_name(place));
        cJSON_AddItemToObject(models, "files", files);
        struct dirent **entries = NULL;
        int n = scandir(o.models_found, &entries, is_model_file, alphasort);
        for (int i = 0; i < n; i++) {
            char path[FV_MODELS_PATH_MAX + 300], hex[17];
            snprintf(path, sizeof path, "%s/%s", o.models_found, entries[i]->d_name);
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "name", entries[i]->d_name);
            struct fv_model *m = NULL;
            struct fv_error e = {0};
            if (fv_model_load(path, &m, &e) == FV_OK) {
                snprintf(hex, sizeof hex, "%016" PRIx64, fv_model_hash(m, FNV_OFFSET));
                cJSON_AddStringToObject(f, "fingerprint", hex);
            } else {
                cJSON_AddStringToObject(f, "error", e.message);
            }
            fv_model_free(m);
            cJSON_AddItemToArray(files, f);
            free(entries[i]);
        }
        free(entries);
        struct fv_pipeline *pipe = NULL;
        o.models_dir = o.models_found; /* the same folder, not a second search */
        if (fv_cli_pipeline_open(&o, &pipe, &err) == FV_OK) {
            char hex[17];
            snprintf(hex, sizeof hex, "%016" PRIx64, fv_pipeline_fingerprint(pipe));
            cJSON_AddStringToObject(models, "pipeline_fingerprint", hex);
        } else {
            cJSON_AddStringToObject(models, "pipeline_error", err.message);
        }
        fv_pipeline_free(pipe);
    }

    if (json) {
        char *s = cJSON_PrintUnformatted(root);
        if (s)
            puts(s);
        free(s);
        cJSON_Delete(root);
        return 0;
    }
    printf("facever %s (git %s)\n", FV_VERSION, FV_GIT_REVISION);
    printf("cpu level: %s (%s)\n", level, chosen_by);
    cJSON *item = cJSON_GetObjectItem(models, "error");
    if (item) {
        printf("models:    none: %s\n", item->valuestring);
    } else {
        printf("models:    %s (%s)\n", cJSON_GetObjectItem(models, "dir")->valuestring,
               cJSON_GetObjectItem(models, "found_by")->valuestring);
        cJSON *f;
        cJSON_ArrayForEach(f, files) {
            cJSON *fp = cJSON_GetObjectItem(f, "fingerprint");
            printf("  %-22s %s\n", cJSON_GetObjectItem(f, "name")->valuestring,
                   fp ? fp->valuestring : cJSON_GetObjectItem(f, "error")->valuestring);
        }
        if ((item = cJSON_GetObjectItem(models, "pipeline_fingerprint")))
            printf("  %-22s %s\n", "pipeline (defaults)", item->valuestring);
        else
            printf("  %-22s %s\n", "pipeline (defaults)",
                   cJSON_GetObjectItem(models, "pipeline_error")->valuestring);
    }
    cJSON_Delete(root);
    return 0;
}
