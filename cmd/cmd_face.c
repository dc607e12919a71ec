/* cmd_face.c - `facever detect`, `align`, `embed` and `verify`. */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/reply.h"
#include "cmd/cli.h"
#include "pipeline/align.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Parses the common options; positional arguments go to pos (up to max_pos).
 * extra handles command-specific options (returns 1 consumed, 0 unknown, -1 error). */
static int parse_args(const char *cmd, const char *usage, int argc, char **argv,
                      struct fv_cli_pipeline *o, const char **pos, int max_pos, int *n_pos,
                      int (*extra)(int argc, char **argv, int *i, void *data), void *data)
{
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        if (fv_cli_is_help(argv[i])) {
            printf("%s\noptions:\n%s", usage, fv_cli_pipeline_help);
            return 0;
        }
        int r = extra ? extra(argc, argv, &i, data) : 0;
        if (r == 0)
            r = fv_cli_pipeline_option(cmd, o, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "facever %s: unknown or incomplete option '%s'\n%s", cmd, argv[i], usage);
            return 2;
        }
        if (*n_pos >= max_pos) {
            fprintf(stderr, "facever %s: unexpected argument '%s'\n%s", cmd, argv[i], usage);
            return 2;
        }
        pos[(*n_pos)++] = argv[i];
    }
    return -1; /* go on */
}

static void print_face_text(int index, const struct fv_face *f)
{
    printf("face %d: box %.1f %.1f %.1f %.1f  score %.4f\n", index, f->box[0], f->box[1],
           f->box[2], f->box[3], f->score);
    printf("  landmarks");
    for (int k = 0; k < 5; k++)
        printf("  %.1f,%.1f", f->landmarks[k][0], f->landmarks[k][1]);
    printf("\n");
}

/* ---- detect ---- */

struct detect_opts {
    const char *draw;
};

static int detect_extra(int argc, char **argv, int *i, void *data)
{
    struct detect_opts *d = data;
    if (strcmp(argv[*i], "--draw") == 0 && *i + 1 < argc) {
        d->draw = argv[++*i];
        return 1;
    }
    return 0;
}

static const char detect_usage[] =
    "usage: facever detect IMAGE [--json] [--draw OUT.png] [options]\n\n"
    "Finds faces and their five landmarks with MTCNN. --draw writes the image with\n"
    "boxes (green) and landmarks (red) drawn on it.\n";

int fv_cmd_detect(int argc, char **argv)
{
    struct fv_cli_pipeline o;
    struct detect_opts d = {0};
    const char *pos[1];
    int n_pos, rc;
    fv_cli_pipeline_defaults(&o);
    o.policy = FV_FACE_ALL;
    if ((rc = parse_args("detect", detect_usage, argc, argv, &o, pos, 1, &n_pos, detect_extra, &d)) >= 0)
        return rc;
    if (n_pos != 1) {
        fputs(detect_usage, stderr);
        return 2;
    }
    struct fv_error err = {0};
    struct fv_detector *det = NULL;
    struct fv_detector_context *ctx = NULL;
    struct fv_image_source *src = NULL;
    struct fv_image *img = NULL;
    struct fv_face *faces = NULL;
    int n = 0;
    rc = 2;
    double t0 = now_ms();
    if (fv_image_source_load(pos[0], &o.params.limits, &src, &err) ||
        fv_cli_pipeline_find_models(&o, 1, &err) ||
        fv_detector_load(o.models_found, &det, &err) ||
        fv_detector_context_new(det, &ctx, &err))
        goto done;
    const struct fv_image_info *info = fv_image_source_info(src);
    double t1 = now_ms();
    struct fv_face *all = NULL;
    if (fv_detect_source(ctx, src, &o.params.detect, &all, &n, &err)) {
        fv_error_prefix(&err, "%s: ", pos[0]); /* a large JPEG found corrupt only now */
        goto done;
    }
    double t2 = now_ms();
    faces = all;
    if (o.json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "image", pos[0]);
        cJSON_AddNumberToObject(root, "width", info->width);
        cJSON_AddNumberToObject(root, "height", info->height);
        cJSON *arr = cJSON_AddArrayToObject(root, "faces");
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, fv_api_face_json(&faces[i]));
        cJSON_AddNumberToObject(root, "detect_ms", round((t2 - t1) * 10) / 10);
        fv_cli_print_json(root);
    } else {
        printf("%s: %dx%d, %d face%s (%.1f ms)\n", pos[0], info->width, info->height, n,
               n == 1 ? "" : "s", t2 - t1);
        for (int i = 0; i < n; i++)
            print_face_text(i, &faces[i]);
    }
    (void)t0;
    if (d.draw) {
        if (fv_image_load(pos[0], &o.params.limits, &img, &err))
            goto done;
        int thick = img->width > 1000 ? 3 : 1, radius = img->width > 1000 ? 4 : 1;
        for (int i = 0; i < n; i++) {
            fv_image_draw_rect(img, faces[i].box[0], faces[i].box[1], faces[i].box[2],
                               faces[i].box[3], 0, 255, 0, thick);
            for (int k = 0; k < 5; k++)
                fv_image_draw_point(img, faces[i].landmarks[k][0], faces[i].landmarks[k][1],
                                    radius, 255, 0, 0);
        }
        if (fv_image_save(img, d.draw, &err))
            goto done;
    }
    rc = 0;
done:
    if (rc)
        fv_cli_fail("detect", &err);
    free(faces);
    fv_image_free(img);
    fv_image_source_free(src);
    fv_detector_context_free(ctx);
    fv_detector_free(det);
    return rc;
}

/* ---- align ---- */

struct align_opts {
    const char *out;
};

static int align_extra(int argc, char **argv, int *i, void *data)
{
    struct align_opts *a = data;
    if (strcmp(argv[*i], "--out") == 0 && *i + 1 < argc) {
        a->out = argv[++*i];
        return 1;
    }
    return 0;
}

static const char align_usage[] =
    "usage: facever align IMAGE --out CROP.png [options]\n\n"
    "Writes the aligned crop the embedding network sees. With --policy all, one file\n"
    "per face: CROP-0.png, CROP-1.png, ...\n";

int fv_cmd_align(int argc, char **argv)
{
    struct fv_cli_pipeline o;
    struct align_opts a = {0};
    const char *pos[1];
    int n_pos, rc;
    fv_cli_pipeline_defaults(&o);
    if ((rc = parse_args("align", align_usage, argc, argv, &o, pos, 1, &n_pos, align_extra, &a)) >= 0)
        return rc;
    if (n_pos != 1 || !a.out) {
        fputs(align_usage, stderr);
        return 2;
    }
    struct fv_error err = {0};
    struct fv_pipeline *pipe = NULL;
    struct fv_pipeline_worker *w = NULL;
    struct fv_image_source *src = NULL;
    struct fv_face *faces = NULL;
    int n = 0;
    rc = 2;
    if (fv_image_source_load(pos[0], &o.params.limits, &src, &err) ||
        fv_cli_pipeline_open(&o, &pipe, &err) || fv_pipeline_worker_new(pipe, &w, &err) ||
        fv_pipeline_detect_source(w, src, o.policy, &faces, &n, &err)) {
        if (src && !strstr(err.message, pos[0]))
            fv_error_prefix(&err, "%s: ", pos[0]);
        goto done;
    }
    if (n == 0) {
        fv_error_set(&err, FV_ERR_NO_FACE, "%s: no face found", pos[0]);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        struct fv_image *crop = NULL;
        char path[4096];
        if (n == 1 && o.policy != FV_FACE_ALL) {
            snprintf(path, sizeof path, "%s", a.out);
        } else {
            const char *dot = strrchr(a.out, '.');
            int stem = dot ? (int)(dot - a.out) : (int)strlen(a.out);
            snprintf(path, sizeof path, "%.*s-%d%s", stem, a.out, i, dot ? dot : ".png");
        }
        if (fv_pipeline_align_source(pipe, src, (const float(*)[2])faces[i].landmarks, &crop,
                                     &err))
            goto done;
        enum fv_status st = fv_image_save(crop, path, &err);
        fv_image_free(crop);
        if (st)
            goto done;
        printf("%s: face %d (score %.3f) -> %s\n", pos[0], i, faces[i].score, path);
    }
    rc = 0;
done:
    if (rc)
        fv_cli_fail("align", &err);
    free(faces);
    fv_image_source_free(src);
    fv_pipeline_worker_free(w);
    fv_pipeline_free(pipe);
    return rc;
}

/* ---- embed ---- */

struct embed_opts {
    int all_faces;
};

static int embed_extra(int argc, char **argv, int *i, void *data)
{
    (void)argc;
    struct embed_opts *e = data;
    if (strcmp(argv[*i], "--all-faces") == 0) {
        e->all_faces = 1;
        return 1;
    }
    return 0;
}

static const char embed_usage[] =
    "usage: facever embed IMAGE... [--json] [--all-faces] [options]\n"
    "       facever embed (--list FILE | --pairs FILE) --shard I/N|auto --out DIR [options]\n\n"
    "Prints one L2-normalised embedding per image (the largest face), or one per\n"
    "face with --all-faces. Text output: one line per face, the image name, the face\n"
    "index and the values. Batch mode (--shard) is described below the options.\n";

int fv_cmd_embed(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--shard") == 0 || strcmp(argv[i], "--list") == 0 ||
            strcmp(argv[i], "--out") == 0)
            return fv_cmd_embed_shard(argc, argv);
    for (int i = 1; i < argc; i++)
        if (fv_cli_is_help(argv[i])) {
            printf("%s\noptions:\n%s\n%s", embed_usage, fv_cli_pipeline_help,
                   fv_cmd_embed_shard_usage);
            return 0;
        }
    struct fv_cli_pipeline o;
    struct embed_opts e = {0};
    const char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int n_pos, rc;
    fv_cli_pipeline_defaults(&o);
    if (!pos)
        return 2;
    if ((rc = parse_args("embed", embed_usage, argc, argv, &o, pos, argc, &n_pos, embed_extra, &e)) >= 0) {
        free(pos);
        return rc;
    }
    if (n_pos < 1) {
        fputs(embed_usage, stderr);
        free(pos);
        return 2;
    }
    if (e.all_faces)
        o.policy = FV_FACE_ALL;
    struct fv_error err = {0};
    struct fv_pipeline *pipe = NULL;
    struct fv_pipeline_worker *w = NULL;
    cJSON *root = o.json ? cJSON_CreateObject() : NULL, *images = NULL;
    rc = 2;
    if (fv_cli_pipeline_open(&o, &pipe, &err) || fv_pipeline_worker_new(pipe, &w, &err))
        goto done;
    int dim = fv_pipeline_dim(pipe);
    if (root) {
        cJSON_AddStringToObject(root, "model", fv_pipeline_model_meta(pipe)->name);
        cJSON_AddNumberToObject(root, "dim", dim);
        cJSON_AddBoolToObject(root, "pca", fv_pipeline_has_projection(pipe));
        images = cJSON_AddArrayToObject(root, "images");
    }
    rc = 0;
    for (int i = 0; i < n_pos; i++) {
        struct fv_image_source *img = NULL;
        struct fv_face_embedding *faces = NULL;
        int n = 0;
        struct fv_error ierr = {0};
        if (fv_image_source_load(pos[i], &o.params.limits, &img, &ierr) == FV_OK &&
            fv_pipeline_process_source(w, img, o.policy, &faces, &n, &ierr) == FV_OK) {
            cJSON *entry = root ? cJSON_CreateObject() : NULL, *arr = NULL;
            if (entry) {
                cJSON_AddStringToObject(entry, "image", pos[i]);
                arr = cJSON_AddArrayToObject(entry, "faces");
                cJSON_AddItemToArray(images, entry);
            }
            for (int f = 0; f < n; f++) {
                if (arr) {
                    cJSON *fo = fv_api_face_json(&faces[f].face);
                    cJSON *v = cJSON_AddArrayToObject(fo, "embedding");
                    for (int k = 0; k < dim; k++)
                        cJSON_AddItemToArray(v, cJSON_CreateNumber(faces[f].embedding[k]));
                    cJSON_AddItemToArray(arr, fo);
                } else {
                    printf("%s\t%d", pos[i], f);
                    for (int k = 0; k < dim; k++)
                        printf(" %.6f", faces[f].embedding[k]);
                    printf("\n");
                }
            }
        } else {
            if (ierr.status == FV_ERR_NO_FACE)
                fv_error_set(&ierr, FV_ERR_NO_FACE, "no face found");
            fprintf(stderr, "facever embed: %s: %s\n", pos[i], ierr.message);
            if (root) {
                cJSON *entry = cJSON_CreateObject();
                cJSON_AddStringToObject(entry, "image", pos[i]);
                cJSON_AddStringToObject(entry, "error", ierr.message);
                cJSON_AddItemToArray(images, entry);
            }
            rc = 2;
        }
        fv_face_embeddings_free(faces, n);
        fv_image_source_free(img);
    }
done:
    if (root) {
        if (pipe)
            fv_cli_print_json(root);
        else
            cJSON_Delete(root);
    }
    if (!pipe || !w)
        fv_cli_fail("embed", &err);
    fv_pipeline_worker_free(w);
    fv_pipeline_free(pipe);
    free(pos);
    return rc;
}

/* ---- verify ---- */

/* One side of a verification, run on its own thread with its own worker so the
 * two images are processed on two cores at once. */
struct verify_side {
    struct fv_pipeline_worker *worker;
    const struct fv_cli_pipeline *options;
    const char *path;
    struct fv_image_source *img;
    struct fv_face_embedding *faces;
    int n;
    enum fv_status status;
    struct fv_error err;
};

static void *verify_side_run(void *arg)
{
    struct verify_side *v = arg;
    v->status = fv_image_source_load(v->path, &v->options->params.limits, &v->img, &v->err);
    if (v->status == FV_OK)
        v->status = fv_pipeline_process_source(v->worker, v->img, v->options->policy, &v->faces,
                                               &v->n, &v->err);
    if (v->status == FV_ERR_NO_FACE)
        fv_error_set(&v->err, v->status, "%s: no face found", v->path);
    else if (v->status && !strstr(v->err.message, v->path))
        fv_error_prefix(&v->err, "%s: ", v->path);
    return NULL;
}

static const char verify_usage[] =
    "usage: facever verify IMAGE_A IMAGE_B [--threshold T] [--json] [options]\n\n"
    "Compares the faces in two images (the largest face of each, or see --policy).\n"
    "Prints the cosine similarity and the decision; exit status 0 = same person,\n"
    "1 = different people, 2 = error. The default threshold is the model's (see\n"
    "'facever model-info').\n";

int fv_cmd_verify(int argc, char **argv)
{
    struct fv_cli_pipeline o;
    const char *pos[2];
    int n_pos, rc;
    fv_cli_pipeline_defaults(&o);
    if ((rc = parse_args("verify", verify_usage, argc, argv, &o, pos, 2, &n_pos, NULL, NULL)) >= 0)
        return rc;
    if (n_pos != 2) {
        fputs(verify_usage, stderr);
        return 2;
    }
    if (o.policy == FV_FACE_ALL)
        o.policy = FV_FACE_LARGEST;
    struct fv_error err = {0};
    struct fv_pipeline *pipe = NULL;
    struct verify_side side[2];
    memset(side, 0, sizeof side);
    rc = 2;
    if (fv_cli_pipeline_open(&o, &pipe, &err) ||
        fv_pipeline_worker_new(pipe, &side[0].worker, &err) ||
        fv_pipeline_worker_new(pipe, &side[1].worker, &err))
        goto done;
    double t0 = now_ms();
    pthread_t second;
    for (int i = 0; i < 2; i++) {
        side[i].options = &o;
        side[i].path = pos[i];
    }
    int threaded = pthread_create(&second, NULL, verify_side_run, &side[1]) == 0;
    verify_side_run(&side[0]);
    if (threaded)
        pthread_join(second, NULL);
    else
        verify_side_run(&side[1]);
    for (int i = 0; i < 2; i++)
        if (side[i].status) {
            err = side[i].err;
            goto done;
        }
    double t1 = now_ms();
    struct fv_face_embedding *faces[2] = {side[0].faces, side[1].faces};
    float threshold = isnan(o.threshold) ? fv_pipeline_threshold(pipe) : o.threshold;
    float score = fv_cosine(faces[0][0].embedding, faces[1][0].embedding, fv_pipeline_dim(pipe));
    int match = score >= threshold;
    if (o.json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "score", round(score * 1e6) / 1e6);
        cJSON_AddBoolToObject(root, "match", match);
        cJSON_AddNumberToObject(root, "threshold", round(threshold * 1e6) / 1e6);
        cJSON_AddStringToObject(root, "model", fv_pipeline_model_meta(pipe)->name);
        for (int i = 0; i < 2; i++) {
            cJSON *fo = fv_api_face_json(&faces[i][0].face);
            cJSON_AddStringToObject(fo, "image", pos[i]);
            cJSON_AddItemToObject(root, i == 0 ? "face1" : "face2", fo);
        }
        cJSON_AddNumberToObject(root, "ms", round((t1 - t0) * 10) / 10);
        fv_cli_print_json(root);
    } else {
        printf("%s: score %.4f (threshold %.4f) in %.1f ms\n", match ? "same person" : "different people",
               score, threshold, t1 - t0);
        for (int i = 0; i < 2; i++) {
            printf("%s ", pos[i]);
            print_face_text(0, &faces[i][0].face);
        }
    }
    rc = match ? 0 : 1;
done:
    if (rc == 2)
        fv_cli_fail("verify", &err);
    for (int i = 0; i < 2; i++) {
        fv_face_embeddings_free(side[i].faces, side[i].n);
        fv_image_source_free(side[i].img);
        fv_pipeline_worker_free(side[i].worker);
    }
    fv_pipeline_free(pipe);
    return rc;
}
