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

void fv_feature_normalise(float *features, int n, int dim)
{
    for (int i = 0; i < n; i++) {
        float *x = features + (size_t)i * dim;
        double sq = 0.0;
        for (int k = 0; k < dim; k++)
            sq += (double)x[k] * x[k];
        if (sq > 0.0)
            for (int k = 0; k < dim; k++)
                x[k] = (float)(x[k] / sqrt(sq));
    }
}

/* The plot area: the square [lo, lo + span]² drawn at `size` pixels. */
struct plot_frame {
    float lo[2], span;
    double size, margin;
};

/* in float up to the scale, as the plots have always been computed */
static double plot_x(const struct plot_frame *f, float x)
{
    return f->margin + (x - f->lo[0]) / f->span * f->size;
}

static double plot_y(const struct plot_frame *f, float y)
{
    return f->margin + f->size - (y - f->lo[1]) / f->span * f->size;
}

/* Opens path and writes the header, the title and the frame. */
static FILE *plot_begin(const char *path, const struct plot_frame *fr, const char *title,
                        struct fv_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fv_error_set(err, FV_ERR_IO, "%s: cannot create", path);
        return NULL;
    }
    const int width = (int)(fr->size + 2 * fr->margin + 90), height = (int)(fr->size + 2 * fr->margin);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            width, height, width, height);
    fprintf(f, "<text x=\"%g\" y=\"24\" font-family=\"sans-serif\" font-size=\"16\">", fr->margin);
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
            fr->margin, fr->margin, fr->size, fr->size);
    return f;
}

/* Writes the points, the legend and the end, and closes f. */
static enum fv_status plot_end(FILE *f, const char *path, const struct plot_frame *fr,
                               const float *features, const int *labels, int n, int dim,
                               int classes, struct fv_error *err)
{
    for (int i = 0; i < n; i++) {
        float x = features[(size_t)i * dim], y = features[(size_t)i * dim + 1];
        if (!isfinite(x) || !isfinite(y))
            continue;
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.2\" fill=\"%s\" fill-opacity=\"0.6\"/>\n",
                plot_x(fr, x), plot_y(fr, y), colours[labels[i] % 10]);
    }
    for (int j = 0; j < classes && j < 30; j++)
        fprintf(f, "<circle cx=\"%g\" cy=\"%g\" r=\"5\" fill=\"%s\"/><text x=\"%g\" y=\"%g\" "
                   "font-family=\"sans-serif\" font-size=\"13\">%d</text>\n",
                fr->margin + fr->size + 20, fr->margin + 10 + 20.0 * j, colours[j % 10],
                fr->margin + fr->size + 32, fr->margin + 15 + 20.0 * j, j);
    fputs("</svg>\n", f);
    if (fclose(f) != 0)
        return fv_error_set(err, FV_ERR_IO, "%s: write failed", path);
    return FV_OK;
}

enum fv_status fv_feature_scatter_svg(const char *path, const float *features, const int *labels,
                                      int n, int dim, int classes, const char *title,
                                      struct fv_error *err)
{
    if (dim < 2 || n < 1)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "scatter plot needs 2-D features");
    struct plot_frame fr = {.lo = {INFINITY, INFINITY}, .size = 560.0, .margin = 40.0};
    float hi[2] = {-INFINITY, -INFINITY};
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            float v = features[(size_t)i * dim + k];
            if (isfinite(v)) {
                fr.lo[k] = v < fr.lo[k] ? v : fr.lo[k];
                hi[k] = v > hi[k] ? v : hi[k];
            }
        }
    /* same scale on both axes, so circles stay circles */
    fr.span = fmaxf(hi[0] - fr.lo[0], hi[1] - fr.lo[1]);
    if (!(fr.span > 0.0f))
        fr.span = 1.0f;
    FILE *f = plot_begin(path, &fr, title, err);
    if (!f)
        return FV_ERR_IO;
    return plot_end(f, path, &fr, features, labels, n, dim, classes, err);
}

enum fv_status fv_feature_circle_svg(const char *path, const float *features, const int *labels,
                                     int n, int dim, int classes, const float *directions,
                                     const char *title, struct fv_error *err)
{
    if (dim < 2 || n < 1)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "circle plot needs 2-D features");
    const struct plot_frame fr = {.lo = {-1.15f, -1.15f}, .span = 2.3f, .size = 560.0,
                                  .margin = 40.0};
    FILE *f = plot_begin(path, &fr, title, err);
    if (!f)
        return FV_ERR_IO;
    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"none\" stroke=\"#bbb\"/>\n",
            plot_x(&fr, 0.0f), plot_y(&fr, 0.0f), plot_x(&fr, 1.0f) - plot_x(&fr, 0.0f));
    for (int j = 0; directions && j < classes; j++) {
        double x = directions[(size_t)j * dim], y = directions[(size_t)j * dim + 1];
        double norm = sqrt(x * x + y * y);
        if (!(norm > 0.0) || !isfinite(norm))
            continue;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"1.5\"/>\n",
                plot_x(&fr, 0.0f), plot_y(&fr, 0.0f), plot_x(&fr, (float)(1.1 * x / norm)),
                plot_y(&fr, (float)(1.1 * y / norm)), colours[j % 10]);
    }
    return plot_end(f, path, &fr, features, labels, n, dim, classes, err);
}
