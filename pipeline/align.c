/* align.c - least-squares similarity transform and bilinear warp. */
#include "pipeline/align.h"

#include <math.h>
#include <string.h>

/* Wen et al., 112 high × 96 wide: left eye, right eye, nose tip, mouth corners. */
static const float template_112x96[5][2] = {
    {30.2946f, 51.6963f}, {65.5318f, 51.5014f}, {48.0252f, 71.7366f},
    {33.5493f, 92.3655f}, {62.7299f, 92.2041f},
};

void fv_align_template(int height, int width, float points[5][2])
{
    float s = (float)height / 112.0f;
    float shift = ((float)width - 96.0f * s) * 0.5f;
    for (int i = 0; i < 5; i++) {
        points[i][0] = template_112x96[i][0] * s + shift;
        points[i][1] = template_112x96[i][1] * s;
    }
}

enum fv_status fv_similarity_estimate(const float (*src)[2], const float (*dst)[2], int n,
                                      float m[2][3])
{
    /* Minimise sum |A p + t - q|^2 with A = [[a, -b], [b, a]]: with both point sets
     * centred, a = sum(p.q) / sum|p|^2 and b = sum(p × q) / sum|p|^2. */
    double sx = 0, sy = 0, dx = 0, dy = 0;
    if (n < 2)
        return FV_ERR_INVALID_ARG;
    for (int i = 0; i < n; i++) {
        if (!isfinite(src[i][0]) || !isfinite(src[i][1]) || !isfinite(dst[i][0]) ||
            !isfinite(dst[i][1]))
            return FV_ERR_INVALID_ARG;
        sx += src[i][0], sy += src[i][1], dx += dst[i][0], dy += dst[i][1];
    }
    sx /= n, sy /= n, dx /= n, dy /= n;
    double norm = 0, dot = 0, cross = 0;
    for (int i = 0; i < n; i++) {
        double px = src[i][0] - sx, py = src[i][1] - sy;
        double qx = dst[i][0] - dx, qy = dst[i][1] - dy;
        norm += px * px + py * py;
        dot += px * qx + py * qy;
        cross += px * qy - py * qx;
    }
    if (norm < 1e-12)
        return FV_ERR_INVALID_ARG;
    double a = dot / norm, b = cross / norm;
    m[0][0] = (float)a;
    m[0][1] = (float)-b;
    m[0][2] = (float)(dx - (a * sx - b * sy));
    m[1][0] = (float)b;
    m[1][1] = (float)a;
    m[1][2] = (float)(dy - (b * sx + a * sy));
    return FV_OK;
}

struct fv_image *fv_align_warp(const struct fv_image *src, const float m[2][3], int height,
                               int width)
{
    double det = (double)m[0][0] * m[1][1] - (double)m[0][1] * m[1][0];
    if (!(fabs(det) > 1e-12) || !isfinite(det))
        return NULL;
    /* Inverse of the 2×2 part, then of the translation. */
    double i00 = m[1][1] / det, i01 = -m[0][1] / det, i10 = -m[1][0] / det, i11 = m[0][0] / det;
    double t0 = -(i00 * m[0][2] + i01 * m[1][2]), t1 = -(i10 * m[0][2] + i11 * m[1][2]);
    struct fv_image *out = fv_image_new(width, height);
    if (!out)
        return NULL;
    for (int v = 0; v < height; v++) {
        for (int u = 0; u < width; u++) {
            double x = i00 * u + i01 * v + t0, y = i10 * u + i11 * v + t1;
            uint8_t *d = out->rgb + 3 * ((size_t)v * width + u);
            if (!(x > -1.0 && y > -1.0 && x < src->width && y < src->height))
                continue; /* black */
            if (x >= 0.0 && y >= 0.0 && x < src->width - 1 && y < src->height - 1) {
                /* All four neighbours inside: the loop below without its checks
                 * (truncation is floor here, and the sums are the same, in the
                 * same order). */
                int x0 = (int)x, y0 = (int)y;
                double fx = x - x0, fy = y - y0;
                const uint8_t *s0 = src->rgb + 3 * ((size_t)y0 * src->width + x0);
                const uint8_t *s1 = s0 + 3 * (size_t)src->width;
                double w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy,
                       w11 = fx * fy;
                for (int c = 0; c < 3; c++) {
                    double acc = 0.0;
                    acc += w00 * s0[c];
                    acc += w01 * s0[3 + c];
                    acc += w10 * s1[c];
                    acc += w11 * s1[3 + c];
                    int val = (int)(acc + 0.5);
                    d[c] = (uint8_t)(val > 255 ? 255 : val);
                }
                continue;
            }
            int x0 = (int)floor(x), y0 = (int)floor(y);
            double fx = x - x0, fy = y - y0;
            double acc[3] = {0, 0, 0};
            for (int k = 0; k < 4; k++) {
                int xi = x0 + (k & 1), yi = y0 + (k >> 1);
                double wgt = ((k & 1) ? fx : 1 - fx) * ((k >> 1) ? fy : 1 - fy);
                if (xi < 0 || yi < 0 || xi >= src->width || yi >= src->height || wgt == 0)
                    continue;
                const uint8_t *s = src->rgb + 3 * ((size_t)yi * src->width + xi);
                acc[0] += wgt * s[0], acc[1] += wgt * s[1], acc[2] += wgt * s[2];
            }
            for (int c = 0; c < 3; c++) {
                double val = floor(acc[c] + 0.5);
                d[c] = (uint8_t)(val < 0 ? 0 : val > 255 ? 255 : val);
            }
        }
    }
    return out;
}

struct fv_image *fv_image_mirror(const struct fv_image *img)
{
    struct fv_image *out = fv_image_new(img->width, img->height);
    if (!out)
        return NULL;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            memcpy(out->rgb + 3 * ((size_t)y * img->width + x),
                   img->rgb + 3 * ((size_t)y * img->width + (img->width - 1 - x)), 3);
    return out;
}
