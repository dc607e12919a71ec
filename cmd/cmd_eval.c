/* cmd_eval.c - `facever eval` (LFW-style k-fold evaluation) and `facever pca fit`. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "eval/features.h"
#include "eval/pairs.h"
#include "eval/pca.h"
#include "eval/protocol.h"
#include "eval/report.h"
#include "eval/shards.h"

/* A one-line progress bar on stderr, drawn only when stderr is a terminal. */
static void progress_bar(void *user, size_t done, size_t total)
{
    (void)user;
    if (done != total && done % 8 != 0)
        return;
    int width = 40, filled = total ? (int)(width * done / total) : width;
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu images", filled,
            "########################################", width - filled, "", done, total);
    if (done == total)
        fputc('\n', stderr);
    fflush(stderr);
}

/* Default cache location: $XDG_CACHE_HOME/facever or ~/.cache/facever. */
static const char *default_cache(char *buf, size_t size, const char *tag)
{
    const char *base = getenv("XDG_CACHE_HOME");
    char dir[3000];
    if (base && *base)
        snprintf(dir, sizeof dir, "%s/facever", base);
    else if ((base = getenv("HOME")) && *base)
        snprintf(dir, sizeof dir, "%s/.cache/facever", base);
    else
        return NULL;
    char parent[3000];
    snprintf(parent, sizeof parent, "%.*s", (int)(strrchr(dir, '/') - dir), dir);
    mkdir(parent, 0755);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return NULL;
    snprintf(buf, size, "%s/features-%s.bin", dir, tag);
    return buf;
}

static const char eval_usage[] =
    "usage: facever eval --images DIR --pairs PAIRS.txt [options]\n"
    "       facever eval --features DIR --pairs PAIRS.txt [options]\n\n"
    "The paper's k-fold verification protocol (LFW View 2): for each fold, PCA and the\n"
    "threshold are fitted on the other folds only; accuracy is measured on the fold.\n"
    "Prints a summary with and without PCA; --report writes JSON, --roc an SVG plot.\n"
    "With --features the features come from the shards `facever embed --shard` wrote\n"
    "instead of from the images: the report is the one --images gives. Every shard must\n"
    "be there, made with this command's model and face options, and hold each image of\n"
    "the pairs file once.\n\n"
    "  --images DIR         root of the images named by the pairs file\n"
    "  --features DIR       or: the shards of a batch embedding (facever embed --shard)\n"
    "  --pairs FILE         pairs file (header 'N P' or 'FOLDS N', then pair lines)\n"
    "  --pattern P          image name pattern (default %s/%s_%04d.jpg)\n"
    "  --pca-dim K          PCA components (default 128)\n"
    "  --no-pca             cosine on the raw features only\n"
    "  --whiten             whiten the PCA projection\n"
    "  --landmarks FILE     fallback landmarks for images where detection fails\n"
    "  --no-center-fallback leave out images with no face and no landmarks\n"
    "  --threads N          workers (default: all cores)\n"
    "  --cache FILE         feature cache (default ~/.cache/facever/features-<pairs>.bin)\n"
    "  --no-cache           always recompute features\n"
    "  --report FILE        JSON report\n"
    "  --roc FILE           ROC curve as SVG\n"
    "  --quiet              no progress bar\n";

int fv_cmd_eval(int argc, char **argv)
{
    struct fv_cli_pipeline o;
    struct fv_features_params fp = fv_features_default_params();
    struct fv_protocol_params pp = fv_protocol_default_params();
    struct fv_pairs_params pairs_params = fv_pairs_default_params();
    const char *images = NULL, *pairs_path = NULL, *report_path = NULL, *roc_path = NULL;
    const char *cache_path = NULL, *features_dir = NULL;
    int no_cache = 0, quiet = 0;
    long v;
    fv_cli_pipeline_defaults(&o);
    o.policy = FV_FACE_CENTER;
    pp.pca_dim = 128;
    pp.compare_without_pca = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (fv_cli_is_help(a)) {
            printf("%s%s", eval_usage, fv_cli_pipeline_help);
            return 0;
        }
        int r = fv_cli_pipeline_option("eval", &o, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (strcmp(a, "--images") == 0 && val) {
            images = val, i++;
        } else if (strcmp(a, "--features") == 0 && val) {
            features_dir = val, i++;
        } else if (strcmp(a, "--pairs") == 0 && val) {
            pairs_path = val, i++;
        } else if (strcmp(a, "--pattern") == 0 && val) {
            pairs_params.image_pattern = val, i++;
        } else if (strcmp(a, "--pca-dim") == 0) {
            if (fv_cli_parse_int("eval", a, val, 1, 4096, &v))
                return 2;
            pp.pca_dim = (size_t)v, i++;
        } else if (strcmp(a, "--no-pca") == 0) {
            pp.pca_dim = 0;
        } else if (strcmp(a, "--whiten") == 0) {
            pp.whiten = true;
        } else if (strcmp(a, "--landmarks") == 0 && val) {
            fp.landmarks_path = val, i++;
        } else if (strcmp(a, "--no-center-fallback") == 0) {
            fp.center_fallback = 0;
        } else if (strcmp(a, "--threads") == 0) {
            if (fv_cli_parse_int("eval", a, val, 1, 256, &v))
                return 2;
            fp.threads = (int)v, i++;
        } else if (strcmp(a, "--cache") == 0 && val) {
            cache_path = val, i++;
        } else if (strcmp(a, "--no-cache") == 0) {
            no_cache = 1;
        } else if (strcmp(a, "--report") == 0 && val) {
            report_path = val, i++;
        } else if (strcmp(a, "--roc") == 0 && val) {
            roc_path = val, i++;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else {
            fprintf(stderr, "facever eval: unknown or incomplete option '%s'\n%s", a, eval_usage);
            return 2;
        }
    }
    if (!images == !features_dir || !pairs_path) {
        fputs(eval_usage, stderr);
        return 2;
    }
    fp.policy = o.policy == FV_FACE_ALL ? FV_FACE_CENTER : o.policy;
    if (!quiet && isatty(2))
        fp.progress = progress_bar;

    struct fv_error err = {0};
    struct fv_pairs *pairs = NULL;
    struct fv_pipeline *pipe = NULL;
    struct fv_protocol_result *result = NULL;
    struct fv_report_failure *failures = NULL;
    float *features = NULL;
    enum fv_feature_source *how = NULL;
    const char **paths = NULL;
    int rc = 2;
    char cache_buf[4096];
    if (fv_pairs_load(pairs_path, &pairs_params, &pairs, &err))
        goto done;
    /* The pipeline's own PCA file, if given, is not used: the protocol fits its own. */
    o.pca_path = NULL;
    if (fv_cli_pipeline_open(&o, &pipe, &err))
        goto done;
    size_t n = fv_pairs_image_count(pairs), d = (size_t)fv_pipeline_raw_dim(pipe);
    features = malloc(n * d * sizeof *features);
    how = malloc(n * sizeof *how);
    paths = malloc(n * sizeof *paths);
    failures = calloc(n, sizeof *failures);
    if (!features || !how || !paths || !failures) {
        fv_error_set(&err, FV_ERR_NOMEM, "out of memory for %zu images", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        paths[i] = fv_pairs_image_path(pairs, i);
    if (!no_cache && !features_dir) {
        if (!cache_path) {
            char tag[32];
            snprintf(tag, sizeof tag, "%016llx",
                     (unsigned long long)fv_hash64(pairs_path, strlen(pairs_path),
                                                   fv_hash64(images, strlen(images), 0)));
            cache_path = default_cache(cache_buf, sizeof cache_buf, tag);
        }
        fp.cache_path = cache_path;
    }
    struct fv_features_stats stats;
    if (features_dir) {
        /* The shards must hold what fv_features_extract would give here. */
        struct fv_shard_config config;
        struct fv_shards_summary summary;
        if (fv_shard_config_init(&config, pipe, &fp, &err) ||
            fv_shards_gather(features_dir, &config, paths, n, features, how, &summary, &err))
            goto done;
        memset(&stats, 0, sizeof stats);
        for (size_t i = 0; i < n; i++) {
            stats.detected += how[i] == FV_FEATURE_DETECTED;
            stats.from_landmarks += how[i] == FV_FEATURE_LANDMARKS;
            stats.from_center += how[i] == FV_FEATURE_CENTER;
            stats.failed += how[i] == FV_FEATURE_FAILED;
        }
        printf("features: %zu images from %zu shard%s in %s (of a list of %zu); faces detected "
               "in %zu, landmarks fallback %zu, centre fallback %zu, failed %zu\n",
               n, summary.shards, summary.shards == 1 ? "" : "s", features_dir,
               summary.list_count, stats.detected, stats.from_landmarks, stats.from_center,
               stats.failed);
        if (summary.cpu_levels[1][0])
            fprintf(stderr, "facever eval: note: the shards were embedded at CPU levels %s and "
                    "%s (at least), whose kernels round differently: features can differ from "
                    "a single run's in the last bits (FV_CPU=<level> pins one)\n",
                    summary.cpu_levels[0], summary.cpu_levels[1]);
    } else {
        if (fv_features_extract(pipe, images, paths, n, &fp, features, how, &stats, &err))
            goto done;
        printf("features: %zu images (%zu computed, %zu from cache) in %.1f s on %d thread%s; "
               "faces detected in %zu, landmarks fallback %zu, centre fallback %zu, failed %zu\n",
               n, stats.computed, stats.cached, stats.seconds, fp.threads,
               fp.threads == 1 ? "" : "s", stats.detected, stats.from_landmarks,
               stats.from_center, stats.failed);
    }
    size_t n_failures = 0;
    for (size_t i = 0; i < n; i++)
        if (how[i] != FV_FEATURE_DETECTED) {
            failures[n_failures].image = paths[i];
            failures[n_failures].fallback_used = how[i] != FV_FEATURE_FAILED;
            failures[n_failures].fallback =
                how[i] == FV_FEATURE_FAILED ? NULL : fv_feature_source_name(how[i]);
            n_failures++;
        }
    for (size_t i = 0; i < n_failures && i < 20; i++)
        printf("  no face: %s (%s)\n", failures[i].image,
               failures[i].fallback ? failures[i].fallback : "left out");
    if (stats.failed > 0) {
        fv_error_set(&err, FV_ERR_INVALID_ARG,
                     "%zu images could not be read or embedded (first: %s)", stats.failed,
                     failures[0].image);
        for (size_t i = 0; i < n_failures; i++)
            if (!failures[i].fallback_used) {
                fv_error_set(&err, FV_ERR_INVALID_ARG,
                             "%zu images could not be read or embedded (first: %s%s%s)",
                             stats.failed, images ? images : "", images ? "/" : "",
                             failures[i].image);
                break;
            }
        goto done;
    }
    if (fv_protocol_run(features, n, d, pairs, &pp, &result, &err))
        goto done;
    struct fv_report_params rp = fv_report_default_params();
    char title[256];
    snprintf(title, sizeof title, "%s on %s", fv_pipeline_model_meta(pipe)->name, pairs_path);
    rp.title = title;
    if (fv_report_write_summary(stdout, result, failures, n_failures, &rp, &err))
        goto done;
    if (report_path) {
        FILE *f = fopen(report_path, "w");
        if (!f) {
            fv_error_set(&err, FV_ERR_IO, "%s: %s", report_path, strerror(errno));
            goto done;
        }
        enum fv_status st = fv_report_write_json(f, result, failures, n_failures, &rp, &err);
        if (fclose(f) != 0 && !st)
            st = fv_error_set(&err, FV_ERR_IO, "%s: write failed", report_path);
        if (st)
            goto done;
    }
    if (roc_path) {
        FILE *f = fopen(roc_path, "w");
        if (!f) {
            fv_error_set(&err, FV_ERR_IO, "%s: %s", roc_path, strerror(errno));
            goto done;
        }
        enum fv_status st = fv_report_write_svg(f, result, &rp, &err);
        if (fclose(f) != 0 && !st)
            st = fv_error_set(&err, FV_ERR_IO, "%s: write failed", roc_path);
        if (st)
            goto done;
    }
    rc = 0;
done:
    if (rc)
        fv_cli_fail("eval", &err);
    fv_protocol_result_free(result);
    fv_pairs_free(pairs);
    fv_pipeline_free(pipe);
    free(features);
    free(how);
    free(paths);
    free(failures);
    return rc;
}

/* ---- pca fit ---- */

struct image_list {
    char **paths;
    size_t n, cap;
};

static int list_push(struct image_list *l, const char *path)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        char **p = realloc(l->paths, cap * sizeof *p);
        if (!p)
            return -1;
        l->paths = p;
        l->cap = cap;
    }
    if (!(l->paths[l->n] = strdup(path)))
        return -1;
    l->n++;
    return 0;
}

static int has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends every JPEG/PNG below root/rel (relative paths), depth-limited. */
static enum fv_status scan_dir(const char *root, const char *rel, int depth, struct image_list *l,
                               struct fv_error *err)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d)
        return fv_error_set(err, FV_ERR_IO, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    enum fv_status st = FV_OK;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096], full[8192];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat sb;
        if (stat(full, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode) && depth < 8)
            st = scan_dir(root, sub, depth + 1, l, err);
        else if (S_ISREG(sb.st_mode) && has_image_ext(e->d_name) && list_push(l, sub))
            st = fv_error_set(err, FV_ERR_NOMEM, "out of memory listing images");
    }
    closedir(d);
    return st;
}

static enum fv_status read_list(const char *path, struct image_list *l, struct fv_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fv_error_set(err, FV_ERR_IO, "%s: %s", path, strerror(errno));
    char line[4096];
    size_t number = 0;
    while (fgets(line, sizeof line, f)) {
        number++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            fclose(f);
            return fv_error_set(err, FV_ERR_FORMAT, "%s:%zu: line too long", path, number);
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        if (list_push(l, line)) {
            fclose(f);
            return fv_error_set(err, FV_ERR_NOMEM, "out of memory reading %s", path);
        }
    }
    fclose(f);
    return FV_OK;
}

static const char pca_usage[] =
    "usage: facever pca fit (--images DIR | --list FILE) --dim K --out FILE [options]\n\n"
    "Fits a PCA projection of face features (crop + mirror, concatenated) on a set of\n"
    "face images, for 'facever serve --pca' and the other face commands.\n\n"
    "  --images DIR   every .jpg/.jpeg/.png below DIR\n"
    "  --list FILE    image paths, one per line\n"
    "  --dim K        components to keep\n"
    "  --whiten       divide each component by its standard deviation\n"
    "  --threads N    workers (default: all cores)\n";

int fv_cmd_pca(int argc, char **argv)
{
    struct fv_cli_pipeline o;
    struct fv_features_params fp = fv_features_default_params();
    struct fv_pca_params pca_params = fv_pca_default_params();
    const char *dir = NULL, *list = NULL, *out = NULL;
    long v;
    fv_cli_pipeline_defaults(&o);
    if (argc < 2 || fv_cli_is_help(argv[1]) || strcmp(argv[1], "fit") != 0) {
        FILE *f = argc >= 2 && fv_cli_is_help(argv[1]) ? stdout : stderr;
        fprintf(f, "%s%s", pca_usage, fv_cli_pipeline_help);
        return f == stdout ? 0 : 2;
    }
    pca_params.k = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (fv_cli_is_help(a)) {
            printf("%s%s", pca_usage, fv_cli_pipeline_help);
            return 0;
        }
        int r = fv_cli_pipeline_option("pca", &o, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (strcmp(a, "--images") == 0 && val) {
            dir = val, i++;
        } else if (strcmp(a, "--list") == 0 && val) {
            list = val, i++;
        } else if (strcmp(a, "--out") == 0 && val) {
            out = val, i++;
        } else if (strcmp(a, "--dim") == 0) {
            if (fv_cli_parse_int("pca", a, val, 1, 4096, &v))
                return 2;
            pca_params.k = (size_t)v, i++;
        } else if (strcmp(a, "--whiten") == 0) {
            pca_params.whiten = true;
        } else if (strcmp(a, "--threads") == 0) {
            if (fv_cli_parse_int("pca", a, val, 1, 256, &v))
                return 2;
            fp.threads = (int)v, i++;
        } else {
            fprintf(stderr, "facever pca: unknown or incomplete option '%s'\n%s", a, pca_usage);
            return 2;
        }
    }
    if ((!dir == !list) || !out || pca_params.k == 0) {
        fputs(pca_usage, stderr);
        return 2;
    }
    fp.policy = o.policy == FV_FACE_ALL ? FV_FACE_LARGEST : o.policy;
    fp.center_fallback = 0;
    if (isatty(2))
        fp.progress = progress_bar;
    struct fv_error err = {0};
    struct image_list images = {0};
    struct fv_pipeline *pipe = NULL;
    struct fv_pca *pca = NULL;
    float *features = NULL, *kept = NULL;
    enum fv_feature_source *how = NULL;
    int rc = 2;
    o.pca_path = NULL;
    if ((dir ? scan_dir(dir, "", 0, &images, &err) : read_list(list, &images, &err)))
        goto done;
    if (dir)
        qsort(images.paths, images.n, sizeof *images.paths, cmp_str);
    if (images.n == 0) {
        fv_error_set(&err, FV_ERR_INVALID_ARG, "no images found in %s", dir ? dir : list);
        goto done;
    }
    if (fv_cli_pipeline_open(&o, &pipe, &err))
        goto done;
    size_t d = (size_t)fv_pipeline_raw_dim(pipe);
    features = malloc(images.n * d * sizeof *features);
    how = malloc(images.n * sizeof *how);
    if (!features || !how) {
        fv_error_set(&err, FV_ERR_NOMEM, "out of memory for %zu images", images.n);
        goto done;
    }
    struct fv_features_stats stats;
    if (fv_features_extract(pipe, dir, (const char *const *)images.paths, images.n, &fp, features,
                            how, &stats, &err))
        goto done;
    size_t n = 0;
    for (size_t i = 0; i < images.n; i++)
        if (how[i] == FV_FEATURE_DETECTED)
            memmove(features + n++ * d, features + i * d, d * sizeof *features);
    if (n <= pca_params.k) {
        fv_error_set(&err, FV_ERR_INVALID_ARG,
                     "%zu images with a face is too few to fit %zu components (need more than "
                     "the dimension)", n, pca_params.k);
        goto done;
    }
    if (fv_pca_fit(features, n, d, &pca_params, &pca, &err) || fv_pca_save(pca, out, &err))
        goto done;
    printf("%s: %zu components of %zu-dimensional features from %zu faces (%zu images without "
           "a face skipped), %.2f%% of the variance%s\n",
           out, pca_params.k, d, n, images.n - n, 100.0 * fv_pca_explained_variance_total(pca),
           pca_params.whiten ? ", whitened" : "");
    rc = 0;
done:
    if (rc)
        fv_cli_fail("pca", &err);
    for (size_t i = 0; i < images.n; i++)
        free(images.paths[i]);
    free(images.paths);
    free(features);
    free(kept);
    free(how);
    fv_pca_free(pca);
    fv_pipeline_free(pipe);
    return rc;
}
