/* test_pca.c - PCA on data with a known decomposition, projection, whitening, FVPCA files. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/pca.h"

enum { D = 4, N = 8 };

/* An orthonormal basis V (rows), from Gram-Schmidt on a fixed matrix with no special
 * structure, so every component has a unique largest-magnitude element. */
static void basis(double v[D][D])
{
    static const double a[D][D] = {
        {0.9, 0.3, -0.2, 0.1}, {0.1, 1.1, 0.4, -0.3}, {-0.2, 0.2, 0.8, 0.5}, {0.3, -0.1, 0.2, 1.2}};
    for (int i = 0; i < D; i++) {
        for (int j = 0; j < D; j++)
            v[i][j] = a[i][j];
        for (int p = 0; p < i; p++) {
            double dot = 0;
            for (int j = 0; j < D; j++)
                dot += v[i][j] * v[p][j];
            for (int j = 0; j < D; j++)
                v[i][j] -= dot * v[p][j];
        }
        double norm = 0;
        for (int j = 0; j < D; j++)
            norm += v[i][j] * v[i][j];
        for (int j = 0; j < D; j++)
            v[i][j] /= sqrt(norm);
    }
}

static const double mean[D] = {1, -2, 3, 0.5};
static const double spread[D] = {4, 3, 2, 1};

/* data = mean +- spread_i * v_i, one point per sign and direction (8 points). The sample
 * covariance is sum_i 2 spread_i^2 / 7 v_i v_i^T: eigenvalues 32/7, 18/7, 8/7, 2/7, total
 * variance 60/7. */
static void make_data(float x[N][D], double v[D][D])
{
    basis(v);
    for (int i = 0; i < D; i++)
        for (int s = 0; s < 2; s++)
            for (int j = 0; j < D; j++)
                x[2 * i + s][j] = (float)(mean[j] + (s ? -1 : 1) * spread[i] * v[i][j]);
}

static double dot_row(const float *c, const double *v)
{
    double d = 0;
    for (int j = 0; j < D; j++)
        d += c[j] * v[j];
    return d;
}

Test(pca, known_decomposition)
{
    float x[N][D];
    double v[D][D];
    make_data(x, v);
    struct fv_pca_params params = fv_pca_default_params();
    params.k = 3;
    struct fv_pca *pca = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_pca_fit(&x[0][0], N, D, &params, &pca, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_pca_input_dim(pca), D);
    cr_assert_eq(fv_pca_output_dim(pca), 3);
    cr_assert_eq(fv_pca_sample_count(pca), N);
    for (int j = 0; j < D; j++)
        cr_assert_float_eq(fv_pca_mean(pca)[j], mean[j], 1e-5);
    const double lambda[] = {32.0 / 7, 18.0 / 7, 8.0 / 7};
    cr_assert_float_eq(fv_pca_total_variance(pca), 60.0 / 7, 1e-4);
    double explained = 0;
    for (int i = 0; i < 3; i++) {
        cr_assert_float_eq(fv_pca_eigenvalues(pca)[i], lambda[i], 1e-4, "eigenvalue %d", i);
        cr_assert_float_eq(fv_pca_explained_variance_ratio(pca, (size_t)i), lambda[i] / (60.0 / 7),
                           1e-5);
        explained += lambda[i];
        const float *c = fv_pca_components(pca) + i * D;
        /* Equal to v_i up to sign... */
        cr_assert_float_eq(fabs(dot_row(c, v[i])), 1.0, 1e-5, "component %d", i);
        /* ...and the sign puts the largest-magnitude element positive. */
        int largest = 0;
        for (int j = 1; j < D; j++)
            if (fabsf(c[j]) > fabsf(c[largest]))
                largest = j;
        cr_assert_gt(c[largest], 0.0f, "component %d", i);
    }
    cr_assert_float_eq(fv_pca_explained_variance_total(pca), explained / (60.0 / 7), 1e-5);
    cr_assert_float_eq(fv_pca_explained_variance_total(pca), 58.0 / 60.0, 1e-5);

    /* p = mean + 2 v_0 - 1.5 v_1 + 0.5 v_3 projects to (2 s0, -1.5 s1, 0) with s_i the sign
     * of component i against v_i; v_3 is dropped. */
    float p[D], out[3];
    for (int j = 0; j < D; j++)
        p[j] = (float)(mean[j] + 2 * v[0][j] - 1.5 * v[1][j] + 0.5 * v[3][j]);
    fv_pca_project(pca, p, 1, out);
    double s0 = dot_row(fv_pca_components(pca), v[0]) > 0 ? 1 : -1;
    double s1 = dot_row(fv_pca_components(pca) + D, v[1]) > 0 ? 1 : -1;
    cr_assert_float_eq(out[0], 2 * s0, 1e-5);
    cr_assert_float_eq(out[1], -1.5 * s1, 1e-5);
    cr_assert_float_eq(out[2], 0.0, 1e-5);
    fv_pca_free(pca);
}

Test(pca, whitening)
{
    float x[N][D];
    double v[D][D];
    make_data(x, v);
    struct fv_pca_params params = {.k = 2, .whiten = true, .whiten_epsilon = 0.0f};
    struct fv_pca *pca = NULL;
    cr_assert_eq(fv_pca_fit(&x[0][0], N, D, &params, &pca, NULL), FV_OK);
    cr_assert(fv_pca_whitened(pca));
    /* mean + 2 v_0 -> 2 / sqrt(32/7) in magnitude; the whitened training data has unit
     * sample variance per coordinate (e.g. component 0: 2 * 16 / (32/7) / 7 = 1). */
    float p[D], out[2];
    for (int j = 0; j < D; j++)
        p[j] = (float)(mean[j] + 2 * v[0][j]);
    fv_pca_project(pca, p, 1, out);
    cr_assert_float_eq(fabsf(out[0]), 2 / sqrt(32.0 / 7), 1e-5);
    cr_assert_float_eq(out[1], 0.0, 1e-5);
    float projected[N][2];
    fv_pca_project(pca, &x[0][0], N, &projected[0][0]);
    for (int c = 0; c < 2; c++) {
        double sum = 0, squares = 0;
        for (int i = 0; i < N; i++) {
            sum += projected[i][c];
            squares += projected[i][c] * projected[i][c];
        }
        cr_assert_float_eq(sum / N, 0.0, 1e-5);
        cr_assert_float_eq(squares / (N - 1), 1.0, 1e-4, "coordinate %d", c);
    }
    fv_pca_free(pca);

    /* eps changes the scale: 1 / sqrt(32/7 + 1). */
    params.whiten_epsilon = 1.0f;
    cr_assert_eq(fv_pca_fit(&x[0][0], N, D, &params, &pca, NULL), FV_OK);
    fv_pca_project(pca, p, 1, out);
    cr_assert_float_eq(fabsf(out[0]), 2 / sqrt(32.0 / 7 + 1), 1e-5);
    fv_pca_free(pca);
}

Test(pca, larger_random_matches_covariance)
{
    /* 200 x 16 random data: each component must satisfy C v = lambda v. */
    enum { RN = 200, RD = 16, RK = 5 };
    static float x[RN * RD];
    uint32_t state = 7;
    for (int i = 0; i < RN * RD; i++) {
        state = state * 1664525u + 1013904223u;
        x[i] = (float)((state >> 8) & 0xffff) / 65536.0f * (float)(1 + i % RD);
    }
    struct fv_pca_params params = {.k = RK};
    struct fv_pca *pca = NULL;
    cr_assert_eq(fv_pca_fit(x, RN, RD, &params, &pca, NULL), FV_OK);
    double m[RD] = {0}, c[RD][RD] = {{0}};
    for (int i = 0; i < RN; i++)
        for (int j = 0; j < RD; j++)
            m[j] += x[i * RD + j] / (double)RN;
    for (int i = 0; i < RN; i++)
        for (int a = 0; a < RD; a++)
            for (int b = 0; b < RD; b++)
                c[a][b] += (x[i * RD + a] - m[a]) * (x[i * RD + b] - m[b]) / (RN - 1);
    for (int k = 0; k < RK; k++) {
        const float *v = fv_pca_components(pca) + k * RD;
        double lambda = fv_pca_eigenvalues(pca)[k];
        if (k > 0)
            cr_assert_geq(fv_pca_eigenvalues(pca)[k - 1], lambda);
        for (int a = 0; a < RD; a++) {
            double cv = 0;
            for (int b = 0; b < RD; b++)
                cv += c[a][b] * v[b];
            cr_assert_float_eq(cv, lambda * v[a], 1e-3 * lambda, "k %d row %d", k, a);
        }
    }
    fv_pca_free(pca);
}

Test(pca, rejects_bad_arguments)
{
    float x[N][D];
    double v[D][D];
    make_data(x, v);
    struct fv_pca *pca = NULL;
    struct fv_error err = {0};
    struct fv_pca_params params = {.k = 0};
    cr_assert_eq(fv_pca_fit(&x[0][0], N, D, &params, &pca, &err), FV_ERR_INVALID_ARG);
    params.k = D + 1;
    cr_assert_eq(fv_pca_fit(&x[0][0], N, D, &params, &pca, &err), FV_ERR_INVALID_ARG);
    params.k = 2;
    cr_assert_eq(fv_pca_fit(&x[0][0], 2, D, &params, &pca, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "n - 1 = 1"), "%s", err.message);
    cr_assert_eq(fv_pca_fit(&x[0][0], 1, D, &params, &pca, &err), FV_ERR_INVALID_ARG);
    x[3][2] = NAN;
    cr_assert_eq(fv_pca_fit(&x[0][0], N, D, &params, &pca, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "sample 3, element 2"), "%s", err.message);
    cr_assert_null(pca);
    fv_pca_free(NULL);
}

/* Saves a whitened k = 2 PCA of the known data and returns the file bytes. */
static unsigned char *saved_bytes(char *dir, size_t *size, struct fv_pca **fitted)
{
    float x[N][D];
    double v[D][D];
    make_data(x, v);
    struct fv_pca_params params = {.k = 2, .whiten = true, .whiten_epsilon = 0.01f};
    cr_assert_eq(fv_pca_fit(&x[0][0], N, D, &params, fitted, NULL), FV_OK);
    char path[256];
    snprintf(path, sizeof path, "%s/p.fvpca", dir);
    struct fv_error err = {0};
    cr_assert_eq(fv_pca_save(*fitted, path, &err), FV_OK, "%s", err.message);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    unsigned char *buf = malloc(4096);
    *size = fread(buf, 1, 4096, f);
    fclose(f);
    return buf;
}

Test(pca, save_load_round_trip)
{
    char dir[] = "/tmp/fv_pca_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct fv_pca *fitted = NULL, *loaded = NULL;
    size_t size;
    unsigned char *buf = saved_bytes(dir, &size, &fitted);
    /* 40-byte header + 4 * (d + k + k d) = 40 + 4 * (4 + 2 + 8). */
    cr_assert_eq(size, 96);
    cr_assert_eq(memcmp(buf, "FVPCA\0\0\0\1\0\0\0\4\0\0\0\2\0\0\0\1\0\0\0", 24), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/p.fvpca", dir);
    struct fv_error err = {0};
    cr_assert_eq(fv_pca_load(path, &loaded, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_pca_input_dim(loaded), D);
    cr_assert_eq(fv_pca_output_dim(loaded), 2);
    cr_assert(fv_pca_whitened(loaded));
    cr_assert_eq(fv_pca_whiten_epsilon(loaded), 0.01f);
    cr_assert_eq(fv_pca_sample_count(loaded), N);
    cr_assert_eq(fv_pca_total_variance(loaded), fv_pca_total_variance(fitted));
    cr_assert_eq(memcmp(fv_pca_mean(loaded), fv_pca_mean(fitted), D * sizeof(float)), 0);
    cr_assert_eq(memcmp(fv_pca_eigenvalues(loaded), fv_pca_eigenvalues(fitted), 2 * sizeof(float)),
                 0);
    cr_assert_eq(memcmp(fv_pca_components(loaded), fv_pca_components(fitted),
                        2 * D * sizeof(float)),
                 0);
    float p[D] = {0.5f, 1, -1, 2}, a[2], b[2];
    fv_pca_project(fitted, p, 1, a);
    fv_pca_project(loaded, p, 1, b);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    fv_pca_free(loaded);

    /* A file cut short is named in the error. */
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, 60, f);
    fclose(f);
    cr_assert_eq(fv_pca_load(path, &loaded, &err), FV_ERR_FORMAT);
    cr_assert(strstr(err.message, path) && strstr(err.message, "truncated"), "%s", err.message);
    cr_assert_null(loaded);
    unlink(path);
    cr_assert_eq(fv_pca_load(path, &loaded, &err), FV_ERR_IO);
    rmdir(dir);
    fv_pca_free(fitted);
    free(buf);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void expect_reject(const unsigned char *good, size_t size, size_t offset, uint32_t value,
                          enum fv_status status, const char *message)
{
    unsigned char bad[4096];
    memcpy(bad, good, size);
    put32(bad + offset, value);
    struct fv_pca *pca = (struct fv_pca *)1;
    struct fv_error err = {0};
    cr_assert_eq(fv_pca_load_memory(bad, size, &pca, &err), status, "offset %zu: %s", offset,
                 err.message);
    cr_assert_null(pca);
    cr_assert(strstr(err.message, message), "got '%s', want '%s'", err.message, message);
}

Test(pca, malformed_files_rejected)
{
    char dir[] = "/tmp/fv_pca_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct fv_pca *fitted = NULL, *pca = NULL;
    size_t size;
    unsigned char *good = saved_bytes(dir, &size, &fitted);
    char path[256];
    snprintf(path, sizeof path, "%s/p.fvpca", dir);
    unlink(path);
    rmdir(dir);
    fv_pca_free(fitted);

    struct fv_error err = {0};
    cr_assert_eq(fv_pca_load_memory(good, size, &pca, &err), FV_OK, "%s", err.message);
    fv_pca_free(pca);
    /* Every truncation and one trailing byte. */
    for (size_t cut = 0; cut < size; cut++)
        cr_assert_neq(fv_pca_load_memory(good, cut, &pca, NULL), FV_OK, "cut %zu", cut);
    unsigned char longer[4096];
    memcpy(longer, good, size);
    cr_assert_eq(fv_pca_load_memory(longer, size + 1, &pca, &err), FV_ERR_FORMAT);
    cr_assert(strstr(err.message, "trailing bytes"), "%s", err.message);

    float nan = NAN, two = 2.0f;
    uint32_t nan_bits, two_bits;
    memcpy(&nan_bits, &nan, 4);
    memcpy(&two_bits, &two, 4);
    expect_reject(good, size, 0, 0x50564647, FV_ERR_FORMAT, "bad magic");
    expect_reject(good, size, 8, 2, FV_ERR_UNSUPPORTED, "version 2");
    expect_reject(good, size, 12, 0, FV_ERR_FORMAT, "dimension d = 0");
    expect_reject(good, size, 12, 0xffffffffu, FV_ERR_FORMAT, "dimension d = 4294967295");
    expect_reject(good, size, 12, 5, FV_ERR_FORMAT, "d = 5, k = 2 need 108 bytes but the file has 96");
    expect_reject(good, size, 16, 0, FV_ERR_FORMAT, "component count k = 0");
    expect_reject(good, size, 16, 5, FV_ERR_FORMAT, "k = 5 is not in 1..d = 4");
    expect_reject(good, size, 16, 1, FV_ERR_FORMAT, "trailing bytes");
    expect_reject(good, size, 20, 2, FV_ERR_FORMAT, "unknown flags");
    expect_reject(good, size, 24, nan_bits, FV_ERR_FORMAT, "whitening epsilon");
    expect_reject(good, size, 40, nan_bits, FV_ERR_FORMAT, "mean value 0 is not finite");
    expect_reject(good, size, 40 + 4 * 4 + 4, 0x7f800000u, FV_ERR_FORMAT,
                  "eigenvalue value 1 is not finite");
    /* eigenvalue 1 larger than eigenvalue 0 */
    expect_reject(good, size, 40 + 4 * 4 + 4, 0x47000000u, FV_ERR_FORMAT,
                  "eigenvalue 1 (32768) is negative or larger");
    expect_reject(good, size, 40 + 6 * 4, two_bits, FV_ERR_FORMAT, "component 0 has length");

    /* Absurd sizes are refused from the header alone, before any allocation. */
    unsigned char header[40];
    memcpy(header, good, 40);
    put32(header + 12, 65536);
    put32(header + 16, 65536);
    cr_assert_eq(fv_pca_load_memory(header, 40, &pca, &err), FV_ERR_TOO_LARGE);
    cr_assert(strstr(err.message, "d = 65536, k = 65536"), "%s", err.message);
    put32(header + 16, 100);
    cr_assert_eq(fv_pca_load_memory(header, 40, &pca, &err), FV_ERR_FORMAT);
    cr_assert(strstr(err.message, "truncated"), "%s", err.message);
    cr_assert_eq(fv_pca_load_memory(NULL, 0, &pca, &err), FV_ERR_FORMAT);
    free(good);
}
