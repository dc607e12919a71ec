/* feature_plot.c - intra/inter-class spread of features and SVG scatter plots. */
#include "eval/feature_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void fv_feature_spread(const float *features, const int *labels, int n, int dim, int classes,
                       struct fv_feature_spread *out)
{
    out->intra = out->inter = 0.0;
    out->ratio = NAN;
    double *mean = calloc((size_t)classes * dim, sizeof *mean);
    int *count = calloc((size_t)classes, sizeof *count);
    if (!mean || !count || n <= 0)
        goto done;
    for (int i = 0; i < n; i++) {
        count[labels[i]]++;
        for (int k = 0; k < dim; k++)
            mean[(size_t)labels[i] * dim + k] += features[(size_t)i * dim + k];
    }
    for (int j = 0; j < classes; j++)
        for (int k = 0; k < dim && count[j]; k++)
            mean[(size_t)j * dim + k] /= count[j];
    for (int i = 0; i < n; i++) {
        double sq = 0.0;
        for (int k = 0; k < dim; k++) {
            double d = features[(size_t)i * dim + k] - mean[(size_t)labels[i] * dim + k];
            sq += d * d;
        }
        out->intra += sqrt(sq);
    }
    out->intra /= n;
    long pairs = 0;
    for (int j = 0; j < classes; j++)
        for (int l = j + 1; l < classes; l++) {
            if (!count[j] || !count[l])
                continue;
            double sq = 0.0;
            for (int k = 0; k < dim; k++) {
                double d = mean[(size_t)j * dim + k] - mean[(size_t)l * dim + k];
                sq += d * d;
            }
            out->inter += sqrt(sq);
            pairs++;
        }
    if (pairs)
        out->inter /= (double)pairs;
    if (out->inter > 0.0)
        out->ratio = out->intra / out->inter;
done:
    free(mean);
    free(count);
}

/* Tableau's ten categorical colours. */
static const char *const colours[10] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                        "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

enum fv_status fv_feature_scatter_svg(const char *path, const float *features, const int *labels,
                                      int n, int dim, int classes, const char *title,
                                      struct fv_error *err)
{
    if (dim < 2 || n < 1)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "scatter plot needs 2-D features");
    float lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            float v = features[(size_t)i * dim + k];
            if (isfinite(v)) {
                lo[k] = v < lo[k] ? v : lo[k];
                hi[k] = v > hi[k] ? v : hi[k];
            }
        }
    /* same scale on both axes, so circles stay circles */
    float span = fmaxf(hi[0] - lo[0], hi[1] - lo[1]);
    if (!(span > 0.0f))
        span = 1.0f;
    const double size = 560.0, margin = 40.0;
    FILE *f = fopen(path, "w");
    if (!f)
        return fv_error_set(err, FV_ERR_IO, "%s: cannot create", path);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            (int)(size + 2 * margin + 90), (int)(size + 2 * margin),
            (int)(size + 2 * margin + 90), (int)(size + 2 * margin));
    fprintf(f, "<text x=\"%g\" y=\"24\" font-family=\"sans-serif\" font-size=\"16\">", margin);
    for (const char *p = title; *p; p++) {
        if (*p == '<')
            fputs("&lt;", f);
        else if (*p == '&')
            fputs("&amp;", f);
        else
            fputc(*p, f);
    }
    fputs("</text>\n", f);
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#888\"/>\n",
            margin, margin, size, size);
    for (int i = 0; i < n; i++) {
        float x = features[(size_t)i * dim], y = features[(size_t)i * dim + 1];
        if (!isfinite(x) || !isfinite(y))
            continue;
        double px = margin + (x - lo[0]) / span * size;
        double py = margin + size - (y - lo[1]) / span * size;
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.2\" fill=\"%s\" fill-opacity=\"0.6\"/>\n",
                px, py, colours[labels[i] % 10]);
    }
    for (int j = 0; j < classes && j < 30; j++)
        fprintf(f, "<circle cx=\"%g\" cy=\"%g\" r=\"5\" fill=\"%s\"/><text x=\"%g\" y=\"%g\" "
                   "font-family=\"sans-serif\" font-size=\"13\">%d</text>\n",
                margin + size + 20, margin + 10 + 20.0 * j, colours[j % 10], margin + size + 32,
                margin + 15 + 20.0 * j, j);
    fputs("</svg>\n", f);
    if (fclose(f) != 0)
        return fv_error_set(err, FV_ERR_IO, "%s: write failed", path);
    return FV_OK;
}
