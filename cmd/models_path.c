/* models_path.c - the search for the model files (--models, $FACEVER_MODELS,
 * beside the executable, ./models). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/models_path.h"

const char *const fv_models_detector_files[] = {"pnet.fvm", "rnet.fvm", "onet.fvm", NULL};
const char *const fv_models_pipeline_files[] = {"pnet.fvm", "rnet.fvm", "onet.fvm",
                                                "mobilefacenet.fvm", NULL};

static const char *const place_names[] = {
    [FV_MODELS_PLACE_OPTION] = "--models",
    [FV_MODELS_PLACE_ENVIRONMENT] = "$FACEVER_MODELS",
    [FV_MODELS_PLACE_EXECUTABLE] = "beside the executable",
    [FV_MODELS_PLACE_WORKING_DIR] = "./models",
};
_Static_assert(sizeof place_names / sizeof place_names[0] == FV_MODELS_PLACE_COUNT,
               "a name for every place");

const char *fv_models_place_name(enum fv_models_place place)
{
    return place >= 0 && place < FV_MODELS_PLACE_COUNT ? place_names[place] : "?";
}

/* ../share/facever/models beside the executable, as an absolute path. 0, or -1
 * with the reason in why. */
static int executable_share(char out[FV_MODELS_PATH_MAX], char *why, size_t why_size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(why, why_size, "/proc/self/exe: %s", strerror(errno));
        return -1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    /* bin/.. rather than the parent's name: the prefix may itself be a symlink. */
    char *up = strrchr(exe, '/');
    if (up && strcmp(up + 1, "bin") == 0)
        *(up == exe ? up + 1 : up) = '\0';
    else
        strncat(exe, "/..", sizeof exe - strlen(exe) - 1);
    if (snprintf(out, FV_MODELS_PATH_MAX, "%s/share/facever/models", exe) >= FV_MODELS_PATH_MAX) {
        snprintf(why, why_size, "path too long");
        return -1;
    }
    return 0;
}

/* 0 when dir holds every file, else -1 with the first reason in why. */
static int holds_files(const char *dir, const char *const *files, char *why, size_t why_size)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(why, why_size, "%s", errno == ENOENT ? "no such folder" : strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, why_size, "not a folder");
        return -1;
    }
    for (const char *const *f = files; *f; f++) {
        char path[FV_MODELS_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", dir, *f);
        if (access(path, R_OK) != 0) {
            snprintf(why, why_size, errno == ENOENT ? "no %s" : "%s: %s", *f, strerror(errno));
            return -1;
        }
    }
    return 0;
}

enum fv_status fv_models_find(const char *explicit_dir, const char *const *files,
                              char dir[FV_MODELS_PATH_MAX], enum fv_models_place *place,
                              struct fv_error *err)
{
    char looked[FV_ERROR_MESSAGE_MAX] = "";
    size_t used = 0;
    const char *env = getenv("FACEVER_MODELS");
    for (int p = 0; p < FV_MODELS_PLACE_COUNT; p++) {
        char why[256] = "";
        int ok = 0;
        switch ((enum fv_models_place)p) {
        case FV_MODELS_PLACE_OPTION:
            if (!explicit_dir || !*explicit_dir)
                continue;
            snprintf(dir, FV_MODELS_PATH_MAX, "%s", explicit_dir);
            ok = holds_files(dir, files, why, sizeof why) == 0;
            break;
        case FV_MODELS_PLACE_ENVIRONMENT:
            if (!env || !*env) {
                snprintf(dir, FV_MODELS_PATH_MAX, "(not set)");
                break;
            }
            snprintf(dir, FV_MODELS_PATH_MAX, "%s", env);
            ok = holds_files(dir, files, why, sizeof why) == 0;
            break;
        case FV_MODELS_PLACE_EXECUTABLE:
            if (executable_share(dir, why, sizeof why) == 0)
                ok = holds_files(dir, files, why, sizeof why) == 0;
            else
                snprintf(dir, FV_MODELS_PATH_MAX, "?");
            break;
        case FV_MODELS_PLACE_WORKING_DIR:
            snprintf(dir, FV_MODELS_PATH_MAX, "models");
            ok = holds_files(dir, files, why, sizeof why) == 0;
            break;
        case FV_MODELS_PLACE_COUNT:
            break;
        }
        if (ok) {
            if (place)
                *place = (enum fv_models_place)p;
            return FV_OK;
        }
        /* ./models is named with the folder it was looked for in. */
        char cwd[FV_MODELS_PATH_MAX - 3] = "";
        if (p == FV_MODELS_PLACE_WORKING_DIR && getcwd(cwd, sizeof cwd))
            snprintf(dir, FV_MODELS_PATH_MAX, "in %s", cwd);
        if (used < sizeof looked) {
            int n = snprintf(looked + used, sizeof looked - used, "%s%s %s%s%s%s",
                             used ? "; " : "", place_names[p], dir, why[0] ? " (" : "", why,
                             why[0] ? ")" : "");
            used += n > 0 ? (size_t)n : 0;
        }
    }
    dir[0] = '\0';
    return fv_error_set(err, FV_ERR_NOT_FOUND, "model files (%s%s) not found; looked in: %s",
                        files[0], files[1] ? ", ..." : "", looked);
}
