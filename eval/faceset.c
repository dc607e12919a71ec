/* faceset.c - folder-per-identity face images, aligned on the fly or from a cache. */
#include "eval/faceset.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "pipeline/align.h"
#include "pipeline/detect.h"
#include "pipeline/image.h"

struct entry {
    char *identity; /* borrowed from the identities array */
    char *file;     /* owned */
    int label;
};

struct fv_faceset {
    char *dir, *cache_dir;
    int height, width;
    char **identities;
    int n_identities;
    struct entry *entries;
    int n_entries;
    struct fv_detector *detector;
    struct fv_detector_context *detect_ctx;
    struct fv_detect_params detect_params;
    struct fv_image_limits limits;
    float template_points[5][2];
    int fallbacks;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
                   strcasecmp(dot, ".png") == 0);
}

/* Sorted names of the entries of dir that are directories (want_dirs) or image
 * files; *names malloc'd, each name malloc'd. */
static enum fv_status list_dir(const char *dir, int want_dirs, char ***names, int *count,
                               struct fv_error *err)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return fv_error_set(err, errno == ENOENT ? FV_ERR_NOT_FOUND : FV_ERR_IO,
                            "%s: cannot open directory", dir);
    int cap = 0, n = 0;
    char **list = NULL;
    enum fv_status st = FV_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat sb;
        if (stat(path, &sb) != 0)
            continue;
        if (want_dirs ? !S_ISDIR(sb.st_mode) : !(S_ISREG(sb.st_mode) && is_image_name(e->d_name)))
            continue;
        if (n >= FV_FACESET_MAX_IMAGES) {
            st = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: too many entries", dir);
            break;
        }
        if (n == cap) {
            int ncap = cap ? cap * 2 : 64;
            char **p = realloc(list, (size_t)ncap * sizeof *p);
            if (!p) {
                st = fv_error_set(err, FV_ERR_NOMEM, "out of memory listing %s", dir);
                break;
            }
            list = p, cap = ncap;
        }
        if (!(list[n] = strdup(e->d_name))) {
            st = fv_error_set(err, FV_ERR_NOMEM, "out of memory listing %s", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (st) {
        for (int i = 0; i < n; i++)
            free(list[i]);
        free(list);
        return st;
    }
    if (n > 1)
        qsort(list, (size_t)n, sizeof *list, cmp_str);
    *names = list;
    *count = n;
    return FV_OK;
}

void fv_faceset_free(struct fv_faceset *fs)
{
    if (!fs)
        return;
    for (int i = 0; i < fs->n_entries; i++)
        free(fs->entries[i].file);
    for (int i = 0; i < fs->n_identities; i++)
        free(fs->identities[i]);
    free(fs->entries);
    free(fs->identities);
    fv_detector_context_free(fs->detect_ctx);
    fv_detector_free(fs->detector);
    free(fs->dir);
    free(fs->cache_dir);
    free(fs);
}

enum fv_status fv_faceset_open(const char *dir, const char *detector_dir, int height, int width,
                               const char *cache_dir, struct fv_faceset **out,
                               struct fv_error *err)
{
    enum fv_status st;
    *out = NULL;
    if (height < 8 || width < 8 || height > 1024 || width > 1024)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "crop size %dx%d out of range", height, width);
    struct fv_faceset *fs = calloc(1, sizeof *fs);
    if (!fs || !(fs->dir = strdup(dir)) || (cache_dir && !(fs->cache_dir = strdup(cache_dir)))) {
        fv_faceset_free(fs);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    }
    fs->height = height, fs->width = width;
    fv_align_template(height, width, fs->template_points);
    fv_image_default_limits(&fs->limits);
    fv_detect_default_params(&fs->detect_params);
    if ((st = list_dir(dir, 1, &fs->identities, &fs->n_identities, err)))
        goto fail;
    if (fs->n_identities > FV_FACESET_MAX_IDENTITIES) {
        st = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: %d identities", dir, fs->n_identities);
        goto fail;
    }
    int cap = 0;
    for (int id = 0; id < fs->n_identities; id++) {
        char path[4096], **files;
        int n;
        snprintf(path, sizeof path, "%s/%s", dir, fs->identities[id]);
        if ((st = list_dir(path, 0, &files, &n, err)))
            goto fail;
        if (fs->n_entries + n > FV_FACESET_MAX_IMAGES) {
            for (int k = 0; k < n; k++)
                free(files[k]);
            free(files);
            st = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: too many images", dir);
            goto fail;
        }
        if (fs->n_entries + n > cap) {
            int ncap = cap ? cap : 256;
            while (ncap < fs->n_entries + n)
                ncap *= 2;
            struct entry *p = realloc(fs->entries, (size_t)ncap * sizeof *p);
            if (!p) {
                for (int k = 0; k < n; k++)
                    free(files[k]);
                free(files);
                st = fv_error_set(err, FV_ERR_NOMEM, "out of memory scanning %s", dir);
                goto fail;
            }
            fs->entries = p, cap = ncap;
        }
        for (int k = 0; k < n; k++)
            fs->entries[fs->n_entries++] =
                (struct entry){.identity = fs->identities[id], .file = files[k], .label = id};
        free(files);
    }
    if (fs->n_entries == 0) {
        st = fv_error_set(err, FV_ERR_NOT_FOUND, "%s: no images in identity folders", dir);
        goto fail;
    }
    if (detector_dir) {
        if ((st = fv_detector_load(detector_dir, &fs->detector, err)) ||
            (st = fv_detector_context_new(fs->detector, &fs->detect_ctx, err)))
            goto fail;
    }
    *out = fs;
    return FV_OK;
fail:
    fv_faceset_free(fs);
    return st;
}

int fv_faceset_count(const struct fv_faceset *fs) { return fs->n_entries; }
int fv_faceset_classes(const struct fv_faceset *fs) { return fs->n_identities; }
int fv_faceset_label(const struct fv_faceset *fs, int i) { return fs->entries[i].label; }
int fv_faceset_fallbacks(const struct fv_faceset *fs) { return fs->fallbacks; }

const char *fv_faceset_identity(const struct fv_faceset *fs, int i)
{
    return fs->entries[i].identity;
}

const char *fv_faceset_file(const struct fv_faceset *fs, int i) { return fs->entries[i].file; }

/* The crop of img: aligned on the best face, or the resized centre square. */
static enum fv_status align_image(struct fv_faceset *fs, const struct fv_image *img,
                                  struct fv_image **crop, struct fv_error *err)
{
    struct fv_face *faces = NULL;
    int n = 0;
    enum fv_status st = fv_detect(fs->detect_ctx, img, &fs->detect_params, &faces, &n, err);
    if (st)
        return st;
    if (n > 0) {
        float m[2][3];
        st = fv_similarity_estimate((const float(*)[2])faces[0].landmarks,
                                    (const float(*)[2])fs->template_points, 5, m);
        free(faces);
        if (st == FV_OK) {
            *crop = fv_align_warp(img, m, fs->height, fs->width);
            return *crop ? FV_OK : fv_error_set(err, FV_ERR_NOMEM, "out of memory aligning");
        }
    }
    free(faces);
    /* No face: the centre region of the crop's aspect ratio, resized. */
    fs->fallbacks++;
    int ch = img->height, cw = (int)((long)img->height * fs->width / fs->height);
    if (cw > img->width) {
        cw = img->width;
        ch = (int)((long)img->width * fs->height / fs->width);
    }
    struct fv_image *centre = fv_image_crop(img, (img->width - cw) / 2, (img->height - ch) / 2, cw, ch);
    if (!centre)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory cropping");
    st = fv_image_resize(centre, fs->width, fs->height, crop, err);
    fv_image_free(centre);
    return st;
}

enum fv_status fv_faceset_load(struct fv_faceset *fs, int i, int mirror, uint8_t *rgb,
                               struct fv_error *err)
{
    enum fv_status st;
    struct fv_image *img = NULL, *crop = NULL;
    const struct entry *e = &fs->entries[i];
    char path[4096], cached[4096] = "";
    snprintf(path, sizeof path, "%s/%s/%s", fs->dir, e->identity, e->file);
    if (fs->cache_dir) {
        snprintf(cached, sizeof cached, "%s/%s/%s.png", fs->cache_dir, e->identity, e->file);
        if (fv_image_load(cached, &fs->limits, &crop, NULL) == FV_OK &&
            (crop->width != fs->width || crop->height != fs->height)) {
            fv_image_free(crop);
            crop = NULL;
        }
    }
    if (!crop) {
        if ((st = fv_image_load(path, &fs->limits, &img, err)))
            goto done;
        if (img->width == fs->width && img->height == fs->height) {
            crop = img;
            img = NULL;
        } else if (!fs->detect_ctx) {
            st = fv_error_set(err, FV_ERR_UNSUPPORTED,
                              "%s is %dx%d, not an aligned %dx%d crop, and no detector is loaded",
                              path, img->width, img->height, fs->width, fs->height);
            goto done;
        } else {
            if ((st = align_image(fs, img, &crop, err)))
                goto done;
            if (cached[0]) {
                char folder[4096];
                snprintf(folder, sizeof folder, "%s/%s", fs->cache_dir, e->identity);
                mkdir(fs->cache_dir, 0777);
                mkdir(folder, 0777);
                fv_image_save(crop, cached, NULL); /* a cache: failure only costs time */
            }
        }
    }
    for (int y = 0; y < fs->height; y++)
        for (int x = 0; x < fs->width; x++) {
            int sx = mirror ? fs->width - 1 - x : x;
            memcpy(rgb + ((size_t)y * fs->width + x) * 3,
                   crop->rgb + ((size_t)y * fs->width + sx) * 3, 3);
        }
    st = FV_OK;
done:
    fv_image_free(img);
    fv_image_free(crop);
    return st;
}
