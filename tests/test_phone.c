/* test_phone.c - phone-size photos: detection at a working resolution finds the
 * faces of the photo each was made from, in every format and orientation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model_file.h"
#include "pipeline/pipeline.h"

#define PHONE "tests/data/phone/"

static void need_photos(void)
{
    if (access("models/pnet.fvm", R_OK) != 0 || access("tests/data/sample1.jpg", R_OK) != 0)
        cr_skip_test("models/ or tests/data/ missing: run `make models test-data`");
    if (access(PHONE "geometry.txt", R_OK) != 0)
        cr_skip_test("tests/data/phone/ missing: run `make phone-photos`");
}

static struct fv_pipeline *open_pipeline(int max_side)
{
    struct fv_pipeline_params p;
    struct fv_pipeline *pipe;
    struct fv_error err = {0};
    fv_pipeline_default_params(&p);
    p.detect.max_side = max_side;
    cr_assert_eq(fv_pipeline_new("models", "models/mobilefacenet.fvm", &p, &pipe, &err), FV_OK,
                 "%s", err.message);
    return pipe;
}

/* How a made photo's upright pixels map onto its sample: u = scale (x + 0.5) - 0.5 + offset. */
struct geometry {
    char file[128], sample[64];
    double scale, ox, oy;
};

static int read_geometry(struct geometry *g, int max)
{
    FILE *f = fopen(PHONE "geometry.txt", "r");
    cr_assert(f, "cannot open geometry.txt");
    int n = 0;
    char line[512];
    while (n < max && fgets(line, sizeof line, f))
        if (line[0] != '#' && sscanf(line, "%127s %63s %lf %lf %lf", g[n].file, g[n].sample,
                                     &g[n].scale, &g[n].ox, &g[n].oy) == 5)
            n++;
    fclose(f);
    return n;
}

static int detect_file(struct fv_pipeline_worker *w, const char *path, struct fv_face **faces,
                       struct fv_error *err)
{
    struct fv_image_source *src;
    int n = 0;
    enum fv_status st = fv_image_source_load(path, NULL, &src, err);
    if (st == FV_OK)
        st = fv_pipeline_detect_source(w, src, FV_FACE_ALL, faces, &n, err);
    fv_image_source_free(src);
    return st == FV_OK ? n : -(int)st - 1000;
}

static float box_iou(const float *a, const float *b)
{
    float w = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), h = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    if (w <= 0 || h <= 0)
        return 0;
    float inter = w * h;
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

static int longer_side(const char *path)
{
    struct fv_image_source *src;
    struct fv_error err = {0};
    cr_assert_eq(fv_image_source_load(path, NULL, &src, &err), FV_OK, "%s", err.message);
    const struct fv_image_info *info = fv_image_source_info(src);
    int side = info->width > info->height ? info->width : info->height;
    fv_image_source_free(src);
    return side;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Faces scoring at least this are certain enough to be found at every
 * resolution; below it (sample2's near-profile face scores 0.845, a pattern on
 * sample4's clothes 0.988 at some resolutions) MTCNN's decision flips with the
 * pixels, so such faces may come and go. */
#define CONFIDENT 0.99f

static int best_match(const float *box, const struct fv_face *faces, int n, float *overlap)
{
    int best = -1;
    *overlap = 0;
    for (int j = 0; j < n; j++) {
        float o = box_iou(box, faces[j].box);
        if (o > *overlap)
            *overlap = o, best = j;
    }
    return best;
}

/* The faces found in `file` (detected on a copy max_side pixels long, crops
 * read at finer pixels) are those found in its sample searched at the same
 * resolution: each confident face of either has its counterpart in the other
 * (boxes overlapping by 0.7 after scaling), and the landmarks of confident
 * faces agree: median error at most `median_tolerance` of the inter-ocular
 * distance, none beyond 25% (a mirrored, rotated or misplaced face would be far
 * beyond). MTCNN's landmarks move by a few percent of the inter-ocular
 * distance whenever its candidate boxes do, which any change of pixels (scale,
 * JPEG blocks) causes: the exact algorithm at full size on these 2.1x copies
 * is 5-13% off its own result on the sample at worst, and the eight EXIF
 * orientations of one photo (the same picture, different JPEG blocks) give
 * medians of 1.1-3.1% and worst landmarks of 3-10% against the sample. The
 * bounds below sit above that noise; a wrong mapping between the copy, the
 * finer crops and the full image moves every landmark by much more. Returns
 * the median. */
static double expect_same_faces(struct fv_pipeline_worker *w, int max_side, const struct geometry *g,
                              double median_tolerance)
{
    struct fv_error err = {0};
    char path[256], sample[256];
    struct fv_face *big = NULL, *ref = NULL;
    snprintf(path, sizeof path, PHONE "%s", g->file);
    snprintf(sample, sizeof sample, "tests/data/%s", g->sample);
    int nb = detect_file(w, path, &big, &err);
    cr_assert_geq(nb, 0, "%s: %s", g->file, err.message);
    /* The sample at the scale the photo's detection copy has. */
    int big_side = longer_side(path), sample_side = longer_side(sample);
    double copy_scale = max_side > 0 && big_side > max_side ? (double)max_side / big_side : 1.0;
    int sample_max = (int)lround(sample_side * g->scale * copy_scale);
    struct fv_pipeline *ref_pipe = open_pipeline(sample_max >= sample_side ? 0 : sample_max);
    struct fv_pipeline_worker *rw;
    cr_assert_eq(fv_pipeline_worker_new(ref_pipe, &rw, &err), FV_OK);
    int nr = detect_file(rw, sample, &ref, &err);
    fv_pipeline_worker_free(rw);
    fv_pipeline_free(ref_pipe);
    cr_assert_gt(nr, 0, "%s: %s", g->sample, err.message);
    double errors[64 * FV_LANDMARKS];
    int n_errors = 0;
    for (int i = 0; i < nr; i++) {
        float mapped[4], overlap;
        for (int k = 0; k < 4; k++)
            mapped[k] = (float)(g->scale * (ref[i].box[k] + 0.5) - 0.5 + (k % 2 ? g->oy : g->ox));
        int j = best_match(mapped, big, nb, &overlap);
        if (ref[i].score >= CONFIDENT)
            cr_expect_geq(overlap, 0.7f, "%s: face %d of %s (score %.3f) found with overlap %.2f",
                          g->file, i, g->sample, ref[i].score, overlap);
        if (j < 0 || overlap < 0.7f || ref[i].score < CONFIDENT || big[j].score < CONFIDENT)
            continue;
        double dx = ref[i].landmarks[1][0] - ref[i].landmarks[0][0];
        double dy = ref[i].landmarks[1][1] - ref[i].landmarks[0][1];
        double iod = g->scale * sqrt(dx * dx + dy * dy);
        for (int k = 0; k < FV_LANDMARKS && n_errors < 64 * FV_LANDMARKS; k++) {
            double ex = g->scale * (ref[i].landmarks[k][0] + 0.5) - 0.5 + g->ox;
            double ey = g->scale * (ref[i].landmarks[k][1] + 0.5) - 0.5 + g->oy;
            double e = hypot(big[j].landmarks[k][0] - ex, big[j].landmarks[k][1] - ey) / iod;
            errors[n_errors++] = e;
            cr_expect_leq(e, 0.25, "%s: face %d landmark %d is %.1f%% of the inter-ocular "
                          "distance off", g->file, i, k, 100 * e);
        }
    }
    for (int j = 0; j < nb; j++) {
        float unmapped[4], overlap;
        for (int k = 0; k < 4; k++)
            unmapped[k] = (float)((big[j].box[k] + 0.5 - (k % 2 ? g->oy : g->ox)) / g->scale - 0.5);
        best_match(unmapped, ref, nr, &overlap);
        if (big[j].score >= CONFIDENT)
            cr_expect_geq(overlap, 0.7f, "%s: face %d (score %.3f) is not a face of %s", g->file,
                          j, big[j].score, g->sample);
    }
    cr_assert_gt(n_errors, 0);
    qsort(errors, (size_t)n_errors, sizeof *errors, cmp_double);
    double median = errors[n_errors / 2], worst = errors[n_errors - 1];
    cr_expect_leq(median, median_tolerance,
                  "%s: median landmark error %.2f%% of the inter-ocular distance", g->file,
                  100 * median);
    cr_log_info("%s: %d faces (sample: %d), landmark error median %.2f%%, worst %.2f%% of the "
                "inter-ocular distance",
                g->file, nb, nr, 100 * median, 100 * worst);
    free(big);
    free(ref);
    return median;
}

/* Checks every listed photo whose name starts with prefix and ends with
 * suffix; returns the median of their median landmark errors. */
static double check_files(const char *prefix, const char *suffix)
{
    need_photos();
    struct geometry g[64];
    double medians[64];
    int n = read_geometry(g, 64), checked = 0;
    struct fv_pipeline_params defaults;
    fv_pipeline_default_params(&defaults);
    int max_side = defaults.detect.max_side;
    struct fv_pipeline *pipe = open_pipeline(max_side);
    struct fv_pipeline_worker *w;
    struct fv_error err = {0};
    cr_assert_eq(fv_pipeline_worker_new(pipe, &w, &err), FV_OK);
    for (int i = 0; i < n; i++) {
        size_t lf = strlen(g[i].file), ls = strlen(suffix);
        if (strncmp(g[i].file, prefix, strlen(prefix)) != 0 || lf < ls ||
            strcmp(g[i].file + lf - ls, suffix) != 0)
            continue;
        medians[checked++] = expect_same_faces(w, max_side, &g[i], 0.06);
    }
    cr_expect_gt(checked, 0, "no %s*%s photo listed in geometry.txt", prefix, suffix);
    fv_pipeline_worker_free(w);
    fv_pipeline_free(pipe);
    qsort(medians, (size_t)checked, sizeof *medians, cmp_double);
    return checked ? medians[checked / 2] : 0;
}

Test(phone, six_samples_at_4032_find_the_sample_faces, .timeout = 300)
{
    double median = check_files("sample", "-4032.jpg");
    cr_expect_leq(median, 0.04, "median landmark error over the six photos %.2f%%",
                  100 * median);
}

Test(phone, exif_orientation_6_jpeg_finds_the_sample_faces, .timeout = 120)
{
    check_files("sample1-4032x3024-o6", ".jpg");
}

Test(phone, every_orientation_finds_the_sample_faces, .timeout = 300)
{
    check_files("orient/", ".jpg");
}

Test(phone, png_12mp_finds_the_sample_faces, .timeout = 120)
{
    check_files("sample1-4032x3024", ".png");
}

Test(phone, heic_finds_the_sample_faces, .timeout = 120)
{
    check_files("sample1-4032x3024", ".heic");
}

Test(phone, webp_finds_the_sample_faces, .timeout = 120)
{
    check_files("sample1-4032x3024", ".webp");
}

Test(phone, avif_finds_the_sample_faces, .timeout = 120)
{
    if (access(PHONE "sample1-4032x3024.avif", R_OK) != 0)
        cr_skip_test("no AVIF photo: this libheif has no AV1 encoder");
    check_files("sample1-4032x3024", ".avif");
}

Test(phone, progressive_40mp_jpeg_finds_the_sample_faces, .timeout = 300)
{
    check_files("sample1-7296x5472", ".jpg");
}

/* A face cut from the 12-megapixel photo and saved at its own size matches the
 * same face found in the whole photo. */
Test(phone, face_cut_from_a_phone_photo_matches_the_photo, .timeout = 120)
{
    need_photos();
    struct fv_error err = {0};
    struct fv_pipeline *pipe = open_pipeline(1024);
    struct fv_pipeline_worker *w;
    cr_assert_eq(fv_pipeline_worker_new(pipe, &w, &err), FV_OK);
    struct fv_image_source *src;
    cr_assert_eq(fv_image_source_load(PHONE "sample1-4032x3024-o6.jpg", NULL, &src, &err), FV_OK,
                 "%s", err.message);
    struct fv_face_embedding *faces;
    int n;
    cr_assert_eq(fv_pipeline_process_source(w, src, FV_FACE_LARGEST, &faces, &n, &err), FV_OK,
                 "%s", err.message);
    struct fv_image *img;
    cr_assert_eq(fv_image_load(PHONE "sample1-4032x3024-o6.jpg", NULL, &img, &err), FV_OK);
    const float *b = faces[0].face.box;
    float side = 2.2f * (b[2] - b[0]);
    struct fv_image *cut = fv_image_crop(img, (int)((b[0] + b[2] - side) / 2),
                                         (int)((b[1] + b[3] - side) / 2), (int)side, (int)side);
    cr_assert(cut);
    uint8_t *jpeg;
    size_t size;
    cr_assert_eq(fv_image_encode_jpeg(cut, 90, &jpeg, &size, &err), FV_OK);
    struct fv_image_source *small;
    cr_assert_eq(fv_image_source_open(jpeg, size, NULL, &small, &err), FV_OK);
    struct fv_face_embedding *other;
    int no;
    cr_assert_eq(fv_pipeline_process_source(w, small, FV_FACE_LARGEST, &other, &no, &err), FV_OK,
                 "%s", err.message);
    float score = fv_cosine(faces[0].embedding, other[0].embedding, fv_pipeline_dim(pipe));
    cr_expect_gt(score, fv_pipeline_threshold(pipe), "score %.3f", score);
    cr_expect_gt(score, 0.8f, "score only %.3f", score);
    cr_log_info("face cut from the 12 MP photo (%dx%d) against the photo: %.3f", cut->width,
                cut->height, score);
    fv_face_embeddings_free(faces, n);
    fv_face_embeddings_free(other, no);
    fv_image_source_free(small);
    fv_image_source_free(src);
    fv_image_free(cut);
    fv_image_free(img);
    free(jpeg);
    fv_pipeline_worker_free(w);
    fv_pipeline_free(pipe);
}

/* Small images are searched exactly as before: the source path equals fv_detect
 * on the decoded image at full size. */
Test(phone, small_images_are_detected_at_full_size)
{
    if (access("models/pnet.fvm", R_OK) != 0 || access("tests/data/sample1.jpg", R_OK) != 0)
        cr_skip_test("models/ or tests/data/ missing: run `make models test-data`");
    struct fv_error err = {0};
    struct fv_pipeline *pipe = open_pipeline(2000), *full_pipe = open_pipeline(0);
    struct fv_pipeline_worker *w, *full;
    cr_assert_eq(fv_pipeline_worker_new(pipe, &w, &err), FV_OK);
    cr_assert_eq(fv_pipeline_worker_new(full_pipe, &full, &err), FV_OK);
    struct fv_face *a, *b;
    int na = detect_file(w, "tests/data/sample1.jpg", &a, &err);
    int nb = detect_file(full, "tests/data/sample1.jpg", &b, &err);
    cr_assert_eq(na, nb);
    cr_assert(na > 0);
    cr_expect_eq(memcmp(a, b, (size_t)na * sizeof *a), 0, "detections differ");
    free(a);
    free(b);
    fv_pipeline_worker_free(w);
    fv_pipeline_worker_free(full);
    fv_pipeline_free(pipe);
    fv_pipeline_free(full_pipe);
}
