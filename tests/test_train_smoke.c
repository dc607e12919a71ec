/* test_train_smoke.c - LeNets++ with center loss on an MNIST subset, a face net
 * through the model file into the pipeline, and the IDX reader on hostile input. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/feature_plot.h"
#include "eval/mnist.h"
#include "model/train.h"
#include "pipeline/pipeline.h"

#define MNIST_DIR "tests/data/mnist"

Test(train_smoke, lenetpp_center_loss_on_mnist_subset, .timeout = 120)
{
    if (access(MNIST_DIR "/train-images-idx3-ubyte", R_OK) != 0) {
        cr_skip_test("no MNIST in " MNIST_DIR " (run: sh scripts/mnist-data.sh)");
        return;
    }
    struct fv_error err = {0};
    struct fv_mnist *m;
    cr_assert_eq(fv_mnist_load(MNIST_DIR, "train", 2000, &m, &err), FV_OK, "%s", err.message);
    cr_assert_eq(m->count, 2000);
    struct fv_train_params p;
    fv_train_default_params(&p);
    enum { B = 8, STEPS = 200 };
    p.batch = B, p.classes = 10, p.loss = FV_LOSS_CENTER, p.lambda = 0.01f, p.alpha = 0.5f;
    struct fv_graph *g;
    cr_assert_eq(fv_train_arch_new("lenetpp", 3, &g, &err), FV_OK, "%s", err.message);
    struct fv_trainer *tr;
    cr_assert_eq(fv_trainer_new(g, &p, &tr, &err), FV_OK, "%s", err.message);
    float *x = malloc(sizeof(float) * B * 784);
    int labels[B];
    double first = 0, last = 0;
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < B; i++) {
            int k = (s * B + i) % m->count;
            for (int q = 0; q < 784; q++)
                x[i * 784 + q] = ((float)m->images[(size_t)k * 784 + q] - 127.5f) / 128.0f;
            labels[i] = m->labels[k];
        }
        struct fv_train_stats st;
        cr_assert_eq(fv_trainer_step(tr, x, labels, B, &st, &err), FV_OK, "%s", err.message);
        cr_assert(isfinite(st.loss));
        if (s < 25)
            first += st.loss / 25;
        if (s >= STEPS - 25)
            last += st.loss / 25;
    }
    cr_expect(last < 0.8 * first, "loss went from %.3f to %.3f", first, last);
    /* centres against the class means of the features of 400 training images */
    enum { N = 400 };
    float *features = malloc(sizeof(float) * N * 2);
    int all_labels[N];
    for (int i0 = 0; i0 < N; i0 += B) {
        for (int i = 0; i < B; i++) {
            for (int q = 0; q < 784; q++)
                x[i * 784 + q] = ((float)m->images[(size_t)(i0 + i) * 784 + q] - 127.5f) / 128.0f;
            all_labels[i0 + i] = m->labels[i0 + i];
        }
        cr_assert_eq(fv_trainer_predict(tr, x, B, features + i0 * 2, NULL, &err), FV_OK);
    }
    double mean[10][2] = {{0}}, count[10] = {0};
    for (int i = 0; i < N; i++) {
        count[all_labels[i]]++;
        mean[all_labels[i]][0] += features[i * 2];
        mean[all_labels[i]][1] += features[i * 2 + 1];
    }
    const float *c = fv_center_loss_centers(fv_trainer_center_loss(tr));
    double to_mean = 0, from_start = 0;
    for (int j = 0; j < 10; j++) {
        double mx = mean[j][0] / count[j], my = mean[j][1] / count[j];
        to_mean += hypot(c[2 * j] - mx, c[2 * j + 1] - my) / 10;
        from_start += hypot(mx, my) / 10; /* centres start at the origin */
    }
    cr_expect(to_mean < 0.6 * from_start,
              "centres are %.3f from their class means, which are %.3f from the origin",
              to_mean, from_start);
    cr_log_info("lenetpp smoke: loss %.3f -> %.3f; centre-to-mean %.3f vs %.3f", first, last,
                to_mean, from_start);
    free(features);
    free(x);
    fv_trainer_free(tr);
    fv_mnist_free(m);
}

Test(train_smoke, face_net_round_trips_into_the_pipeline, .timeout = 120)
{
    if (access("models/pnet.fvm", R_OK) != 0 || access("tests/data/sample1.jpg", R_OK) != 0) {
        cr_skip_test("no detector models or sample photos (run: make models test-data)");
        return;
    }
    struct fv_error err = {0};
    struct fv_graph *g;
    cr_assert_eq(fv_train_arch_new("face", 1, &g, &err), FV_OK, "%s", err.message);
    struct fv_train_params p;
    fv_train_default_params(&p);
    p.batch = 2, p.classes = 3, p.loss = FV_LOSS_LMCL, p.schedule.base_lr = 0.001f;
    struct fv_trainer *tr;
    cr_assert_eq(fv_trainer_new(g, &p, &tr, &err), FV_OK, "%s", err.message);
    cr_expect_eq(fv_trainer_feature_dim(tr), 512);
    const size_t per = 112 * 96 * 3;
    float *x = malloc(2 * per * sizeof *x);
    struct fv_rng r;
    fv_rng_seed(&r, 9);
    for (size_t i = 0; i < 2 * per; i++)
        x[i] = (float)(fv_rng_uniform(&r) - 0.5);
    int labels[2] = {0, 2};
    for (int s = 0; s < 2; s++) {
        struct fv_train_stats st;
        cr_assert_eq(fv_trainer_step(tr, x, labels, 2, &st, &err), FV_OK, "%s", err.message);
        cr_expect(isfinite(st.loss));
    }
    float before[2 * 512];
    cr_assert_eq(fv_trainer_predict(tr, x, 2, before, NULL, &err), FV_OK);
    char path[] = "/tmp/facever-test-face-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(fv_trainer_save_model(tr, path, &err), FV_OK, "%s", err.message);
    fv_trainer_free(tr);

    /* The trainer's forward is the served one: the saved model, run by the engine
     * (batch norms folded into the convolutions, Winograd where it applies), gives
     * the features the trainer predicted, to float rounding. */
    struct fv_model *m;
    cr_assert_eq(fv_model_load(path, &m, &err), FV_OK, "%s", err.message);
    struct fv_context *ctx;
    cr_assert_eq(fv_context_new(m, 2, 0, 0, &ctx, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_context_run(ctx, x, 2, 112, 96, &err), FV_OK, "%s", err.message);
    int shape[4];
    const float *served = fv_context_tensor(
        ctx, fv_model_find_tensor(m, fv_model_meta(m)->embedding), shape);
    cr_assert_not_null(served);
    cr_assert_eq(shape[0] * shape[1] * shape[2] * shape[3], 2 * 512);
    double max_abs = 0.0, max_diff = 0.0;
    for (int i = 0; i < 2 * 512; i++) {
        max_abs = fabs(before[i]) > max_abs ? fabs(before[i]) : max_abs;
        max_diff = fabs(before[i] - served[i]) > max_diff ? fabs(before[i] - served[i]) : max_diff;
    }
    cr_expect_gt(max_abs, 0.0);
    cr_expect(max_diff <= 1e-5 * max_abs, "served features differ by %g (largest %g)", max_diff,
              max_abs);
    fv_context_free(ctx);
    fv_model_free(m);
    free(x);

    struct fv_pipeline_params pp;
    fv_pipeline_default_params(&pp);
    struct fv_pipeline *pipe;
    cr_assert_eq(fv_pipeline_new("models", path, &pp, &pipe, &err), FV_OK, "%s", err.message);
    cr_expect_eq(fv_pipeline_raw_dim(pipe), 1024, "crop and mirror, 512 each");
    cr_expect_eq(fv_pipeline_model_meta(pipe)->template_h, 112);
    cr_expect_eq(fv_pipeline_model_meta(pipe)->template_w, 96);
    struct fv_pipeline_worker *w;
    cr_assert_eq(fv_pipeline_worker_new(pipe, &w, &err), FV_OK, "%s", err.message);
    struct fv_image_limits limits;
    fv_image_default_limits(&limits);
    struct fv_image *img;
    cr_assert_eq(fv_image_load("tests/data/sample1.jpg", &limits, &img, &err), FV_OK);
    struct fv_face_embedding *faces;
    int n;
    cr_assert_eq(fv_pipeline_process(w, img, FV_FACE_LARGEST, &faces, &n, &err), FV_OK, "%s",
                 err.message);
    cr_assert(n >= 1);
    double norm = 0;
    for (int k = 0; k < fv_pipeline_dim(pipe); k++)
        norm += (double)faces[0].embedding[k] * faces[0].embedding[k];
    cr_expect(fabs(norm - 1.0) < 1e-3, "embedding norm² %g", norm);
    fv_face_embeddings_free(faces, n);
    fv_image_free(img);
    fv_pipeline_worker_free(w);
    fv_pipeline_free(pipe);
    remove(path);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

Test(mnist, idx_reader_checks_its_input)
{
    uint8_t buf[16 + 2 * 3 * 2];
    memset(buf, 7, sizeof buf);
    put_be32(buf, 0x00000803), put_be32(buf + 4, 2), put_be32(buf + 8, 3), put_be32(buf + 12, 2);
    int n, rows, cols;
    uint8_t *images;
    cr_assert_eq(fv_mnist_parse_images(buf, sizeof buf, &n, &rows, &cols, &images, NULL), FV_OK);
    cr_expect(n == 2 && rows == 3 && cols == 2 && images[11] == 7);
    free(images);
    cr_expect_eq(fv_mnist_parse_images(buf, sizeof buf - 1, &n, &rows, &cols, &images, NULL),
                 FV_ERR_FORMAT, "truncated");
    put_be32(buf + 4, 0xffffffffu);
    cr_expect_eq(fv_mnist_parse_images(buf, sizeof buf, &n, &rows, &cols, &images, NULL),
                 FV_ERR_TOO_LARGE);
    put_be32(buf + 4, 2);
    put_be32(buf, 0x00000801);
    cr_expect_eq(fv_mnist_parse_images(buf, sizeof buf, &n, &rows, &cols, &images, NULL),
                 FV_ERR_FORMAT, "label magic on an image file");
    cr_expect_eq(fv_mnist_parse_images(buf, 5, &n, &rows, &cols, &images, NULL), FV_ERR_FORMAT);

    uint8_t lab[8 + 3] = {0, 0, 8, 1, 0, 0, 0, 3, 1, 9, 0};
    uint8_t *labels;
    cr_assert_eq(fv_mnist_parse_labels(lab, sizeof lab, &n, &labels, NULL), FV_OK);
    cr_expect(n == 3 && labels[1] == 9);
    free(labels);
    lab[10] = 10;
    cr_expect_eq(fv_mnist_parse_labels(lab, sizeof lab, &n, &labels, NULL), FV_ERR_FORMAT);
    lab[10] = 0;
    cr_expect_eq(fv_mnist_parse_labels(lab, sizeof lab - 1, &n, &labels, NULL), FV_ERR_FORMAT);
    struct fv_mnist *m;
    cr_expect_eq(fv_mnist_load("/nonexistent", "train", 0, &m, NULL), FV_ERR_NOT_FOUND);
}

Test(feature_plot, spread_of_known_points)
{
    /* class 0 at (±1, 0) around (0, 0), class 1 at (10, ±1) around (10, 0):
     * intra 1, inter 10, ratio 0.1 */
    float f[8] = {-1, 0, 1, 0, 10, 1, 10, -1};
    int labels[4] = {0, 0, 1, 1};
    struct fv_feature_spread sp;
    fv_feature_spread(f, labels, 4, 2, 2, &sp);
    cr_expect_float_eq(sp.intra, 1.0, 1e-9);
    cr_expect_float_eq(sp.inter, 10.0, 1e-9);
    cr_expect_float_eq(sp.ratio, 0.1, 1e-9);
    char path[] = "/tmp/facever-test-plot-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert_eq(fv_feature_scatter_svg(path, f, labels, 4, 2, 2, "a <test>", NULL), FV_OK);
    FILE *fp = fopen(path, "r");
    char text[4096] = {0};
    fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    cr_expect(strstr(text, "<svg") && strstr(text, "a &lt;test>") && strstr(text, "<circle"));
    remove(path);
}

Test(feature_plot, normalised_features_on_the_unit_circle)
{
    /* class 0 along +x at two lengths, class 1 along +y, one zero feature */
    float f[8] = {3, 0, 0.5f, 0, 0, -2, 0, 0};
    int labels[4] = {0, 0, 1, 1};
    fv_feature_normalise(f, 4, 2);
    cr_expect(f[0] == 1 && f[1] == 0 && f[2] == 1 && f[3] == 0 && f[4] == 0 && f[5] == -1);
    cr_expect(f[6] == 0 && f[7] == 0);
    char path[] = "/tmp/facever-test-circle-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    const float directions[4] = {2, 0, 0, -0.5f};
    cr_assert_eq(fv_feature_circle_svg(path, f, labels, 4, 2, 2, directions, "lmcl", NULL), FV_OK);
    FILE *fp = fopen(path, "r");
    char text[4096] = {0};
    fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    /* the unit circle (radius 1 of a 2.3-wide, 560-pixel frame) and two class rays */
    cr_expect(strstr(text, "r=\"243.5\"") != NULL, "%s", text);
    int lines = 0;
    for (const char *p = text; (p = strstr(p, "<line")); p++)
        lines++;
    cr_expect_eq(lines, 2);
    cr_expect_eq(fv_feature_circle_svg(path, f, labels, 4, 1, 2, NULL, "1-D", NULL),
                 FV_ERR_INVALID_ARG);
    remove(path);
}
