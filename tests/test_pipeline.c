/* test_pipeline.c - alignment, NMS, detection on real photos, verification. */
#include <cjson/cJSON.h>
#include <cblas.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/cpu.h"
#include "model/gemm.h"
#include "model/model_file.h"
#include "pipeline/align.h"
#include "pipeline/detect.h"
#include "pipeline/pipeline.h"

Test(align, similarity_recovers_known_transform)
{
    /* dst = s R(θ) src + t with s = 1.7, θ = 20°, t = (5, -3): the estimate must give
     * back exactly those parameters from the five template points. */
    float src[5][2], dst[5][2], m[2][3];
    fv_align_template(112, 96, src);
    double s = 1.7, th = 20.0 * M_PI / 180.0, tx = 5.0, ty = -3.0;
    for (int i = 0; i < 5; i++) {
        dst[i][0] = (float)(s * (cos(th) * src[i][0] - sin(th) * src[i][1]) + tx);
        dst[i][1] = (float)(s * (sin(th) * src[i][0] + cos(th) * src[i][1]) + ty);
    }
    cr_assert_eq(fv_similarity_estimate((const float(*)[2])src, (const float(*)[2])dst, 5, m), FV_OK);
    cr_expect_float_eq(m[0][0], s * cos(th), 1e-4);
    cr_expect_float_eq(m[0][1], -s * sin(th), 1e-4);
    cr_expect_float_eq(m[1][0], s * sin(th), 1e-4);
    cr_expect_float_eq(m[1][1], s * cos(th), 1e-4);
    cr_expect_float_eq(m[0][2], tx, 1e-3);
    cr_expect_float_eq(m[1][2], ty, 1e-3);
}

Test(align, similarity_never_reflects_and_is_least_squares)
{
    /* Mirror-image targets: the best similarity has a positive determinant (no
     * reflection). Points (±1, 0), (0, ±1) mapped to x -> -x: the least-squares
     * rotation+scale with a > 0 or b ≠ 0 cannot fit; a = sum(p.q)/sum|p|^2 =
     * (-1 -1 +1 +1)/4 = 0 and b = 0: the transform collapses to the centroid. */
    float src[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
    float dst[4][2] = {{-1, 0}, {1, 0}, {0, 1}, {0, -1}};
    float m[2][3];
    cr_assert_eq(fv_similarity_estimate((const float(*)[2])src, (const float(*)[2])dst, 4, m), FV_OK);
    cr_expect(m[0][0] * m[1][1] - m[0][1] * m[1][0] >= 0.0f);
    cr_expect_float_eq(m[0][0], 0.0f, 1e-6);
    cr_expect_float_eq(m[1][0], 0.0f, 1e-6);
    /* Degenerate input is refused. */
    float same[3][2] = {{1, 1}, {1, 1}, {1, 1}};
    cr_expect_eq(fv_similarity_estimate((const float(*)[2])same, (const float(*)[2])dst, 3, m),
                 FV_ERR_INVALID_ARG);
}

Test(align, template_112x112_is_112x96_shifted_by_8)
{
    float a[5][2], b[5][2];
    fv_align_template(112, 96, a);
    fv_align_template(112, 112, b);
    cr_expect_float_eq(a[0][0], 30.2946f, 1e-5);
    cr_expect_float_eq(a[4][1], 92.2041f, 1e-5);
    for (int i = 0; i < 5; i++) {
        cr_expect_float_eq(b[i][0], a[i][0] + 8.0f, 1e-5);
        cr_expect_float_eq(b[i][1], a[i][1], 1e-5);
    }
}

Test(align, warp_with_identity_copies_and_mirror_flips)
{
    struct fv_image *img = fv_image_new(4, 3);
    for (int i = 0; i < 4 * 3 * 3; i++)
        img->rgb[i] = (uint8_t)(i * 7);
    float id[2][3] = {{1, 0, 0}, {0, 1, 0}};
    struct fv_image *w = fv_align_warp(img, id, 3, 4);
    cr_assert_not_null(w);
    cr_expect_eq(memcmp(w->rgb, img->rgb, 36), 0);
    /* dst = src - 0.5: output pixel 1 samples x = 1.5, halfway between pixels 1 and 2. */
    float half[2][3] = {{1, 0, -0.5f}, {0, 1, 0}};
    struct fv_image *h = fv_align_warp(img, half, 3, 4);
    cr_expect_eq(h->rgb[3], (uint8_t)((img->rgb[3] + img->rgb[6] + 1) / 2));
    struct fv_image *m = fv_image_mirror(img);
    cr_expect_eq(memcmp(m->rgb, img->rgb + 9, 3), 0);
    fv_image_free(img);
    fv_image_free(w);
    fv_image_free(h);
    fv_image_free(m);
}

Test(nms, union_and_min_by_hand)
{
    /* A = [0,0,9,9] (area 100), B = [1,1,10,10] (100; overlap with A 9×9 = 81, IoU =
     * 81/119 = 0.68), C far away, D = [0,0,4,4] inside A (25; overlap/min = 1). */
    float boxes[4][4] = {{0, 0, 9, 9}, {1, 1, 10, 10}, {20, 20, 29, 29}, {0, 0, 4, 4}};
    float scores[4] = {0.9f, 0.8f, 0.7f, 0.6f};
    size_t keep[4];
    size_t n = fv_nms((const float(*)[4])boxes, scores, 4, 0.5f, 0, keep);
    /* Union: D's IoU with A is 25/100 = 0.25, kept. */
    cr_assert_eq(n, 3);
    cr_expect_eq(keep[0], 0);
    cr_expect_eq(keep[1], 2);
    cr_expect_eq(keep[2], 3);
    n = fv_nms((const float(*)[4])boxes, scores, 4, 0.7f, 0, keep);
    cr_expect_eq(n, 4);
    n = fv_nms((const float(*)[4])boxes, scores, 4, 0.7f, 1, keep);
    /* Min: B overlaps A by 81/100 = 0.81 > 0.7, D by 25/25 = 1: both go. */
    cr_assert_eq(n, 2);
    cr_expect_eq(keep[0], 0);
    cr_expect_eq(keep[1], 2);
}

/* ---- real photos ---- */

static int have_models(void)
{
    return access("models/pnet.fvm", R_OK) == 0 && access("models/mobilefacenet.fvm", R_OK) == 0 &&
           access("tests/data/sample1.jpg", R_OK) == 0;
}

static float iou(const float *a, const float *b)
{
    float w = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), h = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    if (w <= 0 || h <= 0)
        return 0;
    float inter = w * h;
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

Test(detect, sample_photos_match_independent_mtcnn, .timeout = 120)
{
    if (!have_models())
        cr_skip_test("models/ or tests/data/ missing: run `make models test-data`");
    uint8_t *json;
    size_t size;
    struct fv_error err = {0};
    cr_assert_eq(fv_read_file("tests/fixtures/mtcnn-sample-photos.json", 1 << 20, &json, &size, &err), FV_OK);
    cJSON *root = cJSON_ParseWithLength((char *)json, size);
    free(json);
    struct fv_detector *det;
    struct fv_detector_context *ctx;
    cr_assert_eq(fv_detector_load("models", &det, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_detector_context_new(det, &ctx, &err), FV_OK, "%s", err.message);
    struct fv_detect_params p;
    fv_detect_default_params(&p);
    p.min_face = 40; /* the reference's setting */
    p.max_side = 0;  /* at full size, as the reference ran */
    cJSON *photo;
    int faces_checked = 0, close = 0;
    cJSON_ArrayForEach(photo, cJSON_GetObjectItem(root, "faces"))
    {
        char path[256];
        snprintf(path, sizeof path, "tests/data/%s", photo->string);
        struct fv_image *img;
        struct fv_face *faces;
        int n;
        cr_assert_eq(fv_image_load(path, NULL, &img, &err), FV_OK, "%s", err.message);
        cr_assert_eq(fv_detect(ctx, img, &p, &faces, &n, &err), FV_OK, "%s", err.message);
        int n_ref = cJSON_GetArraySize(photo);
        /* Same faces; one extra near-threshold face is allowed (sample2's woman looking
         * down scores 0.80 here and just under 0.7 in the reference). */
        cr_expect(n >= n_ref && n <= n_ref + 1, "%s: %d faces, reference %d", path, n, n_ref);
        cJSON *ref;
        cJSON_ArrayForEach(ref, photo)
        {
            float box[4], pts[5][2];
            for (int k = 0; k < 4; k++)
                box[k] = (float)cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "box"), k)->valuedouble;
            for (int k = 0; k < 5; k++)
                for (int c = 0; c < 2; c++)
                    pts[k][c] = (float)cJSON_GetArrayItem(
                        cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "points"), k), c)->valuedouble;
            int best = -1;
            float best_iou = 0;
            for (int i = 0; i < n; i++)
                if (iou(faces[i].box, box) > best_iou)
                    best_iou = iou(faces[i].box, box), best = i;
            cr_expect_geq(best_iou, 0.85f, "%s: reference face at %.0f,%.0f not found (IoU %.2f)",
                          path, box[0], box[1], best_iou);
            if (best < 0)
                continue;
            float worst = 0;
            for (int k = 0; k < 5; k++)
                for (int c = 0; c < 2; c++)
                    worst = fmaxf(worst, fabsf(faces[best].landmarks[k][c] - pts[k][c]));
            /* Faces are 170-300 px tall here: 10 px is within 5% of the face. */
            cr_expect_leq(worst, 10.0f, "%s: landmarks %.1f px from the reference", path, worst);
            close += worst <= 3.0f;
            faces_checked++;
        }
        free(faces);
        fv_image_free(img);
    }
    cr_expect_eq(faces_checked, 21);
    /* Most faces agree to within 3 px. */
    cr_expect_geq(close, 17, "only %d of %d faces within 3 px", close, faces_checked);
    fv_detector_context_free(ctx);
    fv_detector_free(det);
    cJSON_Delete(root);
}

static struct fv_pipeline *open_pipeline(void)
{
    struct fv_pipeline_params p;
    struct fv_pipeline *pipe;
    struct fv_error err = {0};
    fv_pipeline_default_params(&p);
    cr_assert_eq(fv_pipeline_new("models", "models/mobilefacenet.fvm", &p, &pipe, &err), FV_OK,
                 "%s", err.message);
    return pipe;
}

/* A region around face i of img, enlarged by half its size on each side. */
static struct fv_image *cut_face(const struct fv_image *img, const struct fv_face *f)
{
    float w = f->box[2] - f->box[0], h = f->box[3] - f->box[1];
    return fv_image_crop(img, (int)(f->box[0] - w / 2), (int)(f->box[1] - h / 2), (int)(2 * w),
                         (int)(2 * h));
}

Test(verify, same_face_rescaled_matches_and_different_people_do_not, .timeout = 120)
{
    if (!have_models())
        cr_skip_test("models/ or tests/data/ missing: run `make models test-data`");
    struct fv_error err = {0};
    struct fv_pipeline *pipe = open_pipeline();
    struct fv_pipeline_worker *w;
    cr_assert_eq(fv_pipeline_worker_new(pipe, &w, &err), FV_OK, "%s", err.message);
    struct fv_image *img;
    cr_assert_eq(fv_image_load("tests/data/sample1.jpg", NULL, &img, &err), FV_OK);
    struct fv_face *faces;
    int n;
    cr_assert_eq(fv_pipeline_detect(w, img, FV_FACE_ALL, &faces, &n, &err), FV_OK);
    cr_assert_geq(n, 2);
    int dim = fv_pipeline_dim(pipe);
    float threshold = fv_pipeline_threshold(pipe);

    /* Face 0 cut out, shrunk to 60%, JPEG-compressed at quality 80 and decoded again. */
    struct fv_image *cut = cut_face(img, &faces[0]), *small;
    cr_assert_eq(fv_image_resize(cut, cut->width * 6 / 10, cut->height * 6 / 10, &small, &err), FV_OK);
    uint8_t *jpeg;
    size_t jpeg_size;
    cr_assert_eq(fv_image_encode_jpeg(small, 80, &jpeg, &jpeg_size, &err), FV_OK);
    struct fv_image *again;
    cr_assert_eq(fv_image_decode(jpeg, jpeg_size, NULL, &again, &err), FV_OK);

    struct fv_face_embedding *a, *b, *other;
    int na, nb, no;
    cr_assert_eq(fv_pipeline_process(w, cut, FV_FACE_LARGEST, &a, &na, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_pipeline_process(w, again, FV_FACE_LARGEST, &b, &nb, &err), FV_OK, "%s", err.message);
    struct fv_image *cut1 = cut_face(img, &faces[1]);
    cr_assert_eq(fv_pipeline_process(w, cut1, FV_FACE_LARGEST, &other, &no, &err), FV_OK);
    float same = fv_cosine(a[0].embedding, b[0].embedding, dim);
    float diff = fv_cosine(a[0].embedding, other[0].embedding, dim);
    cr_expect_gt(same, threshold, "same face scored %.3f (threshold %.3f)", same, threshold);
    cr_expect_gt(same, 0.8f, "same face scored only %.3f", same);
    cr_expect_lt(diff, threshold, "different people scored %.3f (threshold %.3f)", diff, threshold);

    /* Caller-supplied landmarks give the same embedding as detection. */
    float *e = malloc((size_t)dim * sizeof *e);
    struct fv_face f0;
    struct fv_face *fa;
    int nfa;
    cr_assert_eq(fv_pipeline_detect(w, cut, FV_FACE_LARGEST, &fa, &nfa, &err), FV_OK);
    f0 = fa[0];
    cr_assert_eq(fv_pipeline_embed_landmarks(w, cut, (const float(*)[2])f0.landmarks, NULL, e, &err), FV_OK);
    cr_expect_float_eq(fv_cosine(e, a[0].embedding, dim), 1.0f, 1e-5);

    /* The embedding is L2-normalised and has the crop+mirror size. */
    double norm = 0;
    for (int k = 0; k < dim; k++)
        norm += (double)a[0].embedding[k] * a[0].embedding[k];
    cr_expect_float_eq(norm, 1.0, 1e-4);
    cr_expect_eq(dim, 384);

    free(e);
    free(fa);
    free(jpeg);
    fv_face_embeddings_free(a, na);
    fv_face_embeddings_free(b, nb);
    fv_face_embeddings_free(other, no);
    fv_image_free(cut);
    fv_image_free(cut1);
    fv_image_free(small);
    fv_image_free(again);
    fv_image_free(img);
    free(faces);
    fv_pipeline_worker_free(w);
    fv_pipeline_free(pipe);
}

/* The same faces through pipelines at fp32 and at bf16: same detections, near-equal
 * embeddings (bf16 rounds the operands of the 1×1 convolutions), different
 * fingerprints so cached features never mix. */
Test(verify, bf16_embeddings_stay_close_to_fp32, .timeout = 120)
{
    if (!have_models())
        cr_skip_test("models/ or tests/data/ missing: run `make models test-data`");
    cr_expect_eq(fv_pipeline_precision_from_name("bf16"), FV_PIPELINE_BF16);
    cr_expect_eq(fv_pipeline_precision_from_name("auto"), FV_PIPELINE_AUTO);
    cr_expect_eq(fv_pipeline_precision_from_name("fp16"), -1);
    for (int p = FV_PIPELINE_AUTO; p <= FV_PIPELINE_BF16; p++)
        cr_expect_eq(fv_pipeline_precision_from_name(fv_pipeline_precision_name(p)), p);
    struct fv_error err = {0};
    struct fv_pipeline_params p;
    fv_pipeline_default_params(&p);
    cr_expect_eq(p.precision, FV_PIPELINE_AUTO);
    struct fv_pipeline *pipe[2];
    p.precision = FV_PIPELINE_FP32;
    cr_assert_eq(fv_pipeline_new("models", "models/mobilefacenet.fvm", &p, &pipe[0], &err), FV_OK);
    cr_expect_eq(fv_pipeline_precision(pipe[0]), FV_PRECISION_FP32);
    p.precision = FV_PIPELINE_BF16;
    if (fv_cpu_active_level() != FV_CPU_AVX512_BF16) {
        cr_expect_eq(fv_pipeline_new("models", "models/mobilefacenet.fvm", &p, &pipe[1], &err),
                     FV_ERR_UNSUPPORTED);
        fprintf(stderr, "verify: not at the avx512-bf16 level: bf16 embeddings not checked\n");
        fv_pipeline_free(pipe[0]);
        return;
    }
    cr_assert_eq(fv_pipeline_new("models", "models/mobilefacenet.fvm", &p, &pipe[1], &err), FV_OK);
    cr_expect_eq(fv_pipeline_precision(pipe[1]), FV_PRECISION_BF16);
    cr_expect_neq(fv_pipeline_fingerprint(pipe[0]), fv_pipeline_fingerprint(pipe[1]));
    struct fv_image *img;
    cr_assert_eq(fv_image_load("tests/data/sample1.jpg", NULL, &img, &err), FV_OK);
    struct fv_face_embedding *faces[2];
    int n[2], dim = fv_pipeline_dim(pipe[0]);
    for (int k = 0; k < 2; k++) {
        struct fv_pipeline_worker *w;
        cr_assert_eq(fv_pipeline_worker_new(pipe[k], &w, &err), FV_OK);
        cr_assert_eq(fv_pipeline_process(w, img, FV_FACE_ALL, &faces[k], &n[k], &err), FV_OK);
        fv_pipeline_worker_free(w);
    }
    cr_assert_eq(n[0], n[1]);
    cr_assert_geq(n[0], 2);
    for (int i = 0; i < n[0]; i++) {
        cr_expect_eq(memcmp(faces[0][i].face.landmarks, faces[1][i].face.landmarks,
                            sizeof faces[0][i].face.landmarks), 0, "face %d: detection differs", i);
        float c = fv_cosine(faces[0][i].embedding, faces[1][i].embedding, dim);
        cr_expect_gt(c, 0.999f, "face %d: bf16 embedding at cosine %.6f from fp32", i, c);
        cr_expect_lt(c, 1.0f - 1e-7f, "face %d: bf16 gave the fp32 embedding exactly", i);
        for (int j = 0; j < n[0]; j++)
            if (j != i)
                cr_expect_lt(fv_cosine(faces[0][i].embedding, faces[1][j].embedding, dim), 0.9f);
    }
    for (int k = 0; k < 2; k++) {
        fv_face_embeddings_free(faces[k], n[k]);
        fv_pipeline_free(pipe[k]);
    }
    fv_image_free(img);
}

Test(verify, blank_image_has_no_face)
{
    if (!have_models())
        cr_skip_test("models/ missing");
    struct fv_error err = {0};
    struct fv_pipeline *pipe = open_pipeline();
    struct fv_pipeline_worker *w;
    cr_assert_eq(fv_pipeline_worker_new(pipe, &w, &err), FV_OK);
    struct fv_image *img = fv_image_new(200, 150);
    memset(img->rgb, 128, 200 * 150 * 3);
    struct fv_face_embedding *faces;
    int n;
    cr_expect_eq(fv_pipeline_process(w, img, FV_FACE_LARGEST, &faces, &n, &err), FV_ERR_NO_FACE);
    cr_expect_eq(n, 0);
    /* A 1×1 image is too small for the pyramid: no face, no crash. */
    struct fv_image *tiny = fv_image_new(1, 1);
    cr_expect_eq(fv_pipeline_process(w, tiny, FV_FACE_LARGEST, &faces, &n, &err), FV_ERR_NO_FACE);
    fv_image_free(tiny);
    fv_image_free(img);
    fv_pipeline_worker_free(w);
    fv_pipeline_free(pipe);
}

Test(verify, lfw_dev_detection_rate, .timeout = 600)
{
    const char *list = "../shared/lfw-dev/mtcnn-landmarks.txt";
    if (access(list, R_OK) != 0 || !have_models())
        cr_skip_test("../shared/lfw-dev is absent: skipping the LFW detection-rate check");
    openblas_set_num_threads(1); /* as facever does: parallelism comes from workers */
    FILE *f = fopen(list, "r");
    struct fv_error err = {0};
    struct fv_pipeline *pipe = open_pipeline();
    struct fv_pipeline_worker *w;
    cr_assert_eq(fv_pipeline_worker_new(pipe, &w, &err), FV_OK);
    char line[1024];
    int total = 0, found = 0, within = 0;
    double sum_err = 0;
    while (fgets(line, sizeof line, f)) {
        char name[512];
        float ref[10];
        if (sscanf(line, "%511s %f %f %f %f %f %f %f %f %f %f", name, &ref[0], &ref[1], &ref[2],
                   &ref[3], &ref[4], &ref[5], &ref[6], &ref[7], &ref[8], &ref[9]) != 11)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "../shared/lfw-dev/images/%s", name);
        struct fv_image *img;
        if (fv_image_load(path, NULL, &img, &err) != FV_OK)
            continue;
        struct fv_face *faces = NULL;
        int n = 0;
        total++;
        if (fv_pipeline_detect(w, img, FV_FACE_CENTER, &faces, &n, &err) == FV_OK && n > 0) {
            found++;
            float worst = 0;
            for (int k = 0; k < 5; k++) {
                float d = hypotf(faces[0].landmarks[k][0] - ref[2 * k],
                                 faces[0].landmarks[k][1] - ref[2 * k + 1]);
                worst = fmaxf(worst, d);
                sum_err += d;
            }
            within += worst <= 3.0f;
        }
        free(faces);
        fv_image_free(img);
    }
    fclose(f);
    double rate = total ? (double)found / total : 0;
    fprintf(stderr, "[INFO] lfw-dev: face detected in %d of %d images (%.2f%%); %d within 3 px of the "
                "reference landmarks, mean landmark error %.2f px\n",
                found, total, 100 * rate, within, found ? sum_err / (5.0 * found) : 0.0);
    cr_expect_eq(total, 2320);
    cr_expect_geq(rate, 0.995);
    fv_pipeline_worker_free(w);
    fv_pipeline_free(pipe);
}
