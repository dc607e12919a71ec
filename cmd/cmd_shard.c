/* cmd_shard.c - `facever embed --shard I/N --out DIR`: one shard of a batch embedding. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "eval/features.h"
#include "eval/pairs.h"
#include "eval/shards.h"
#include "model/cpu.h"

extern char **environ;

const char fv_cmd_embed_shard_usage[] =
    "usage: facever embed (--list FILE | --pairs FILE) --shard I/N|auto --out DIR [options]\n\n"
    "Batch mode: embeds shard I of N of an image list, for one task of a Slurm array or a\n"
    "Kubernetes Indexed Job, into DIR/shard-IIIII-of-NNNNN.{npy,names.txt,json}: the raw\n"
    "features `facever eval` uses (crop and mirror concatenated, no PCA, not normalised)\n"
    "as a NumPy float32 (rows, dim) matrix, the rows' image names, and metadata written\n"
    "last (model fingerprint, options, list checksum, images without a face). A shard\n"
    "already done with the same model, options and list is skipped; a partial one is\n"
    "redone. `facever eval --features DIR --pairs FILE` merges the shards.\n\n"
    "  --list FILE          image paths, one per line (blank lines and # comments skipped)\n"
    "  --pairs FILE         or: the images a pairs file names, in its order\n"
    "  --pattern P          image name pattern for --pairs (default %s/%s_%04d.jpg)\n"
    "  --root DIR           folder the names are relative to (default: as given)\n"
    "  --shard I/N          shard I (0-based) of N: rows [I*n/N, (I+1)*n/N) of the list\n"
    "  --shard auto         I and N from the environment: a Slurm array task\n"
    "                       (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of _COUNT) or a\n"
    "                       Kubernetes Indexed Job (JOB_COMPLETION_INDEX of --shards N,\n"
    "                       else $FACEVER_SHARDS)\n"
    "  --shards N           the shard count for --shard auto (checked against Slurm's)\n"
    "  --out DIR            output folder (created if missing; shared by all shards)\n"
    "  --threads N          workers (default: the CPUs this process may run on)\n"
    "  --landmarks FILE     fallback landmarks for images where detection fails\n"
    "  --no-center-fallback leave out images with no face and no landmarks\n"
    "  --redo               recompute even when the shard is already done\n"
    "Images where MTCNN finds no face get the fallback `facever eval` gives them (the\n"
    "landmarks, else a centre crop) and are listed in the metadata; unreadable ones are\n"
    "recorded as failed, as eval would find them, and the merge refuses them. The\n"
    "face policy defaults to center, as in eval.\n";

/* CPUs this process may use: a Slurm task or a container is often given fewer than the
 * machine has online. */
static int usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n >= 1)
            return n < 256 ? n : 256;
    }
    return fv_features_default_params().threads;
}

/* mkdir -p: the shards of one array start together, so "exists" is success. */
static int make_dirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return -1;
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -1;
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) ? 0 : -1;
}

int fv_cmd_embed_shard(int argc, char **argv)
{
    struct fv_cli_pipeline o;
    struct fv_features_params fp = fv_features_default_params();
    struct fv_pairs_params pairs_params = fv_pairs_default_params();
    const char *list_path = NULL, *pairs_path = NULL, *root = NULL, *spec = NULL, *out = NULL;
    long v, shards = 0;
    int redo = 0;
    fv_cli_pipeline_defaults(&o);
    o.policy = FV_FACE_CENTER;
    fp.threads = usable_cpus();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (fv_cli_is_help(a)) {
            printf("%soptions:\n%s", fv_cmd_embed_shard_usage, fv_cli_pipeline_help);
            return 0;
        }
        int r = fv_cli_pipeline_option("embed", &o, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (strcmp(a, "--list") == 0 && val) {
            list_path = val, i++;
        } else if (strcmp(a, "--pairs") == 0 && val) {
            pairs_path = val, i++;
        } else if (strcmp(a, "--pattern") == 0 && val) {
            pairs_params.image_pattern = val, i++;
        } else if (strcmp(a, "--root") == 0 && val) {
            root = val, i++;
        } else if (strcmp(a, "--shard") == 0 && val) {
            spec = val, i++;
        } else if (strcmp(a, "--shards") == 0) {
            if (fv_cli_parse_int("embed", a, val, 1, FV_SHARD_MAX_COUNT, &shards))
                return 2;
            i++;
        } else if (strcmp(a, "--out") == 0 && val) {
            out = val, i++;
        } else if (strcmp(a, "--threads") == 0) {
            if (fv_cli_parse_int("embed", a, val, 1, 256, &v))
                return 2;
            fp.threads = (int)v, i++;
        } else if (strcmp(a, "--landmarks") == 0 && val) {
            fp.landmarks_path = val, i++;
        } else if (strcmp(a, "--no-center-fallback") == 0) {
            fp.center_fallback = 0;
        } else if (strcmp(a, "--redo") == 0) {
            redo = 1;
        } else {
            fprintf(stderr, "facever embed: unknown, incomplete or image-mode option '%s' in "
                    "batch mode\n%s", a, fv_cmd_embed_shard_usage);
            return 2;
        }
    }
    if (!list_path == !pairs_path || !spec || !out) {
        fprintf(stderr, "facever embed: batch mode needs one of --list and --pairs, --shard and "
                "--out\n%s", fv_cmd_embed_shard_usage);
        return 2;
    }
    if (o.pca_path) {
        fprintf(stderr, "facever embed: --pca does not apply to shards: they hold raw features, "
                "and the evaluation fits its own PCA\n");
        return 2;
    }
    fp.policy = o.policy == FV_FACE_ALL ? FV_FACE_CENTER : o.policy;

    struct fv_error err = {0};
    struct fv_shard s = {0};
    const char *source = NULL;
    if (strcmp(spec, "auto") == 0
            ? fv_shard_from_environment(environ, (size_t)shards, &s.index, &s.count, &source, &err)
            : fv_shard_parse(spec, &s.index, &s.count, &err))
        return fv_cli_fail("embed", &err);
    if (strcmp(spec, "auto") != 0 && shards && (size_t)shards != s.count) {
        fprintf(stderr, "facever embed: --shards %ld disagrees with --shard %s\n", shards, spec);
        return 2;
    }

    char **owned = NULL;
    const char **names = NULL;
    size_t n = 0;
    struct fv_pairs *pairs = NULL;
    struct fv_pipeline *pipe = NULL;
    float *features = NULL;
    enum fv_feature_source *how = NULL;
    int rc = 2;
    if (list_path) {
        if (fv_shard_list_load(list_path, &owned, &n, &err))
            goto done;
        names = (const char **)owned;
    } else {
        if (fv_pairs_load(pairs_path, &pairs_params, &pairs, &err))
            goto done;
        n = fv_pairs_image_count(pairs);
        if (!(names = malloc((n ? n : 1) * sizeof *names))) {
            fv_error_set(&err, FV_ERR_NOMEM, "out of memory for %zu names", n);
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            names[i] = fv_pairs_image_path(pairs, i);
    }
    if (fv_shard_list_check(names, n, root != NULL, list_path ? list_path : pairs_path, &err))
        goto done;
    fv_shard_list_identify(names, n, &s.list_count, &s.list_checksum);
    fv_shard_range(n, s.index, s.count, &s.begin, &s.end);
    if (make_dirs(out) != 0) {
        fv_error_set(&err, FV_ERR_IO, "%s: cannot create the output folder: %s", out,
                     strerror(errno));
        goto done;
    }
    if (fv_cli_pipeline_open(&o, &pipe, &err) || fv_shard_config_init(&s.config, pipe, &fp, &err))
        goto done;
    s.cpu_level = fv_cpu_level_name(fv_pipeline_cpu_level(pipe));

    char meta[4200], npy[4200], why[512];
    fv_shard_path(meta, sizeof meta, out, s.index, s.count, ".json");
    fv_shard_path(npy, sizeof npy, out, s.index, s.count, ".npy");
    size_t rows = s.end - s.begin;
    printf("shard %zu/%zu%s%s%s: rows [%zu, %zu) of a list of %zu (%zu images) -> %s\n",
           s.index, s.count, source ? " (" : "", source ? source : "", source ? ")" : "", s.begin,
           s.end, n, rows, npy);
    if (!redo && fv_shard_done(out, &s, why, sizeof why)) {
        printf("shard %zu/%zu: already done: %s matches this model, these options and this "
               "list; skipping (--redo recomputes)\n", s.index, s.count, meta);
        rc = 0;
        goto done;
    }
    if (!redo && access(meta, F_OK) == 0)
        printf("shard %zu/%zu: recomputing: %s: %s\n", s.index, s.count, meta, why);
    fflush(stdout);
    features = malloc((rows ? rows : 1) * (size_t)s.config.dim * sizeof *features);
    how = malloc((rows ? rows : 1) * sizeof *how);
    if (!features || !how) {
        fv_error_set(&err, FV_ERR_NOMEM, "out of memory for %zu images", rows);
        goto done;
    }
    struct fv_features_stats stats;
    if (fv_features_extract(pipe, root, names + s.begin, rows, &fp, features, how, &stats, &err))
        goto done;
    s.seconds = stats.seconds;
    if (fv_shard_write(out, &s, names + s.begin, features, how, &err))
        goto done;
    printf("shard %zu/%zu: %zu images in %.1f s on %d thread%s; faces detected in %zu, "
           "landmarks fallback %zu, centre fallback %zu, failed %zu -> %s\n",
           s.index, s.count, rows, stats.seconds, fp.threads, fp.threads == 1 ? "" : "s",
           stats.detected, stats.from_landmarks, stats.from_center, stats.failed, meta);
    if (stats.failed) {
        /* The shard is complete: what eval makes of a failed image is eval's to say. */
        for (size_t i = 0; i < rows; i++)
            if (how[i] == FV_FEATURE_FAILED) {
                fprintf(stderr, "facever embed: %zu image%s could not be read or embedded "
                        "(first: %s%s%s); recorded in %s, and `facever eval` refuses them\n",
                        stats.failed, stats.failed == 1 ? "" : "s", root ? root : "",
                        root ? "/" : "", names[s.begin + i], meta);
                break;
            }
    }
    rc = 0;
done:
    if (rc)
        fv_cli_fail("embed", &err);
    fv_pipeline_free(pipe);
    fv_pairs_free(pairs);
    if (owned)
        fv_shard_list_free(owned, n);
    else
        free(names);
    free(features);
    free(how);
    return rc;
}
