/* report.c - JSON (cJSON), text summary and SVG ROC plot of a protocol result. */
#include "eval/report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#define SVG_MAX_POINTS 2000
#define SVG_LOG_FAR_MIN (-4.0)

static const char *const run_colours[FV_PROTOCOL_MAX_RUNS] = {"#1f5fa8", "#c8372d"};

struct fv_report_params fv_report_default_params(void)
{
    return (struct fv_report_params){
        .title = "Face verification",
        .max_roc_points = 300,
        .svg_tar_min = -1.0,
        .svg_width = 720,
        .svg_height = 540,
    };
}

static enum fv_status check_params(const struct fv_report_params *p, struct fv_error *err)
{
    if (!p->title || p->max_roc_points < 2 || p->svg_width < 320 || p->svg_width > 4000 ||
        p->svg_height < 320 || p->svg_height > 4000 || isnan(p->svg_tar_min) ||
        p->svg_tar_min >= 1.0)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "report: bad parameters");
    return FV_OK;
}

/* Indices (ascending) of at most max points of the ROC that keep its shape on a log FAR
 * axis: the first and last, the last point at or below each of a log-spaced FAR grid
 * (1e-6 .. 1), and evenly spaced points. Returns the count; keep must hold max. */
static size_t select_points(const struct fv_roc *roc, size_t max, size_t *keep, bool *marks)
{
    size_t n = fv_roc_point_count(roc);
    const struct fv_roc_point *pts = fv_roc_points(roc);
    if (n <= max) {
        for (size_t i = 0; i < n; i++)
            keep[i] = i;
        return n;
    }
    memset(marks, 0, n * sizeof *marks);
    marks[0] = marks[n - 1] = true;
    size_t n_grid = (max - 2) / 2, n_even = max - 2 - n_grid;
    size_t j = 0;
    for (size_t g = 0; g < n_grid; g++) {
        double far = pow(10.0, -6.0 + 6.0 * (double)(g + 1) / (double)n_grid);
        while (j + 1 < n && pts[j + 1].far <= far)
            j++;
        marks[j] = true;
    }
    for (size_t e = 0; e < n_even; e++)
        marks[(size_t)llround((double)(e + 1) * (double)(n - 1) / (double)(n_even + 1))] = true;
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (marks[i])
            keep[count++] = i;
    return count;
}

/* ---------------- JSON ---------------- */

static cJSON *run_json(const struct fv_protocol_result *result, const struct fv_protocol_run *run,
                       size_t max_points)
{
    cJSON *obj = cJSON_CreateObject(), *folds, *tars, *roc;
    size_t n_roc = fv_roc_point_count(run->roc);
    size_t *keep = malloc(n_roc * sizeof *keep);
    bool *marks = malloc(n_roc * sizeof *marks);
    if (!obj || !keep || !marks)
        goto fail;
    cJSON_AddStringToObject(obj, "label", run->label);
    cJSON_AddNumberToObject(obj, "pca_dim", (double)run->pca_dim);
    cJSON_AddBoolToObject(obj, "whitened", run->whitened);
    if (!(folds = cJSON_AddArrayToObject(obj, "folds")))
        goto fail;
    for (size_t f = 0; f < result->n_folds; f++) {
        const struct fv_protocol_fold *fold = &run->folds[f];
        cJSON *item = cJSON_CreateObject();
        if (!item || !cJSON_AddItemToArray(folds, item)) {
            cJSON_Delete(item);
            goto fail;
        }
        cJSON_AddNumberToObject(item, "fold", (double)(f + 1));
        cJSON_AddNumberToObject(item, "accuracy", fold->accuracy);
        cJSON_AddNumberToObject(item, "threshold", fold->threshold);
        cJSON_AddNumberToObject(item, "train_accuracy", fold->train_accuracy);
        cJSON_AddNumberToObject(item, "test_pairs", (double)fold->n_test_pairs);
        cJSON_AddNumberToObject(item, "train_pairs", (double)fold->n_train_pairs);
        cJSON_AddNumberToObject(item, "train_images", (double)fold->n_train_images);
        if (run->pca_dim)
            cJSON_AddNumberToObject(item, "explained_variance", fold->explained_variance);
    }
    cJSON_AddNumberToObject(obj, "mean_accuracy", run->mean_accuracy);
    cJSON_AddNumberToObject(obj, "std_accuracy", run->std_accuracy);
    cJSON_AddNumberToObject(obj, "auc", run->auc);
    cJSON_AddNumberToObject(obj, "eer", run->eer);
    cJSON_AddNumberToObject(obj, "eer_threshold", run->eer_threshold);
    if (!(tars = cJSON_AddArrayToObject(obj, "tar_at_far")))
        goto fail;
    for (size_t i = 0; i < FV_PROTOCOL_N_FAR; i++) {
        cJSON *item = cJSON_CreateObject();
        if (!item || !cJSON_AddItemToArray(tars, item)) {
            cJSON_Delete(item);
            goto fail;
        }
        cJSON_AddNumberToObject(item, "far", run->far_targets[i]);
        cJSON_AddNumberToObject(item, "tar", run->tar_at_far[i]);
        cJSON_AddNumberToObject(item, "threshold", run->tar_threshold[i]);
    }
    if (!(roc = cJSON_AddArrayToObject(obj, "roc")))
        goto fail;
    const struct fv_roc_point *pts = fv_roc_points(run->roc);
    size_t count = select_points(run->roc, max_points, keep, marks);
    for (size_t i = 0; i < count; i++) {
        const struct fv_roc_point *p = &pts[keep[i]];
        cJSON *item = cJSON_CreateObject();
        if (!item || !cJSON_AddItemToArray(roc, item)) {
            cJSON_Delete(item);
            goto fail;
        }
        cJSON_AddNumberToObject(item, "far", p->far);
        cJSON_AddNumberToObject(item, "tar", p->tar);
        cJSON_AddNumberToObject(item, "threshold", p->threshold);
    }
    free(keep);
    free(marks);
    return obj;

fail:
    free(keep);
    free(marks);
    cJSON_Delete(obj);
    return NULL;
}

char *fv_report_json(const struct fv_protocol_result *result,
                     const struct fv_report_failure *failures, size_t n_failures,
                     const struct fv_report_params *params, struct fv_error *err)
{
    struct fv_report_params defaults = fv_report_default_params();
    char *text = NULL;
    cJSON *root = NULL, *runs, *fails;
    if (!params)
        params = &defaults;
    if (check_params(params, err) != FV_OK)
        return NULL;
    if (!result || (n_failures && !failures)) {
        fv_error_set(err, FV_ERR_INVALID_ARG, "report: NULL result or failures");
        return NULL;
    }
    if (!(root = cJSON_CreateObject()))
        goto fail;
    cJSON_AddStringToObject(root, "title", params->title);
    cJSON_AddNumberToObject(root, "images", (double)result->n_images);
    cJSON_AddNumberToObject(root, "feature_dim", (double)result->feature_dim);
    cJSON_AddNumberToObject(root, "pairs", (double)result->n_pairs);
    cJSON_AddNumberToObject(root, "folds", (double)result->n_folds);
    cJSON_AddStringToObject(root, "std_convention", "sample standard deviation over folds (k - 1)");
    cJSON_AddStringToObject(root, "score", "cosine similarity; same when score >= threshold");
    if (!(runs = cJSON_AddArrayToObject(root, "runs")))
        goto fail;
    for (size_t r = 0; r < result->n_runs; r++) {
        cJSON *run = run_json(result, &result->runs[r], params->max_roc_points);
        if (!run || !cJSON_AddItemToArray(runs, run)) {
            cJSON_Delete(run);
            goto fail;
        }
    }
    if (!(fails = cJSON_AddArrayToObject(root, "detection_failures")))
        goto fail;
    for (size_t i = 0; i < n_failures; i++) {
        cJSON *item = cJSON_CreateObject();
        if (!item || !cJSON_AddItemToArray(fails, item)) {
            cJSON_Delete(item);
            goto fail;
        }
        cJSON_AddStringToObject(item, "image", failures[i].image ? failures[i].image : "");
        cJSON_AddBoolToObject(item, "fallback_used", failures[i].fallback_used);
        if (failures[i].fallback)
            cJSON_AddStringToObject(item, "fallback", failures[i].fallback);
    }
    if (!(text = cJSON_Print(root)))
        goto fail;
    cJSON_Delete(root);
    return text;

fail:
    cJSON_Delete(root);
    fv_error_set(err, FV_ERR_NOMEM, "report: out of memory building JSON");
    return NULL;
}

enum fv_status fv_report_write_json(FILE *out, const struct fv_protocol_result *result,
                                    const struct fv_report_failure *failures, size_t n_failures,
                                    const struct fv_report_params *params,
                                    struct fv_error *err)
{
    char *text = fv_report_json(result, failures, n_failures, params, err);
    if (!text)
        return err ? err->status : FV_ERR_NOMEM;
    size_t len = strlen(text);
    bool ok = fwrite(text, 1, len, out) == len && fputc('\n', out) != EOF && fflush(out) == 0;
    free(text);
    return ok ? FV_OK : fv_error_set(err, FV_ERR_IO, "report: write failed");
}

/* ---------------- text summary ---------------- */

/* Runs a FILE writer into a malloc'd string. */
typedef enum fv_status (*stream_writer)(FILE *out, const void *context, struct fv_error *err);

static char *write_to_string(stream_writer writer, const void *context, struct fv_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *stream = open_memstream(&buf, &len);
    if (!stream) {
        fv_error_set(err, FV_ERR_NOMEM, "report: out of memory");
        return NULL;
    }
    enum fv_status st = writer(stream, context, err);
    if (fclose(stream) != 0 && st == FV_OK)
        st = fv_error_set(err, FV_ERR_NOMEM, "report: out of memory");
    if (st != FV_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

enum fv_status fv_report_write_summary(FILE *out, const struct fv_protocol_result *result,
                                       const struct fv_report_failure *failures,
                                       size_t n_failures, const struct fv_report_params *params,
                                       struct fv_error *err)
{
    struct fv_report_params defaults = fv_report_default_params();
    enum fv_status st;
    if (!params)
        params = &defaults;
    if ((st = check_params(params, err)) != FV_OK)
        return st;
    if (!result || (n_failures && !failures))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "report: NULL result or failures");
    size_t runs = result->n_runs;
    fprintf(out, "%s\n%zu folds, %zu pairs, %zu images, %zu-dimensional features\n\n",
            params->title, result->n_folds, result->n_pairs, result->n_images,
            result->feature_dim);
    fprintf(out, "%-16s", "");
    for (size_t r = 0; r < runs; r++) {
        char head[64];
        const struct fv_protocol_run *run = &result->runs[r];
        if (run->pca_dim)
            snprintf(head, sizeof head, "%s (k=%zu%s)", run->label, run->pca_dim,
                     run->whitened ? ", whitened" : "");
        else
            snprintf(head, sizeof head, "%s", run->label);
        fprintf(out, " | %-32s", head);
    }
    fprintf(out, "\n%-16s", "fold (pairs)");
    for (size_t r = 0; r < runs; r++)
        fprintf(out, " | %9s %11s %10s", "accuracy", "threshold", "train img");
    fputc('\n', out);
    for (size_t f = 0; f < result->n_folds; f++) {
        char label[32];
        snprintf(label, sizeof label, "%zu (%zu)", f + 1, result->runs[0].folds[f].n_test_pairs);
        fprintf(out, "%-16s", label);
        for (size_t r = 0; r < runs; r++) {
            const struct fv_protocol_fold *fold = &result->runs[r].folds[f];
            fprintf(out, " | %8.2f%% %11.5f %10zu", 100.0 * fold->accuracy, fold->threshold,
                    fold->n_train_images);
        }
        fputc('\n', out);
    }
    fprintf(out, "%-16s", "mean +- std");
    for (size_t r = 0; r < runs; r++) {
        char cell[64];
        snprintf(cell, sizeof cell, "%.2f%% +- %.2f", 100.0 * result->runs[r].mean_accuracy,
                 100.0 * result->runs[r].std_accuracy);
        fprintf(out, " | %-32s", cell);
    }
    fprintf(out, "\n%-16s", "AUC");
    for (size_t r = 0; r < runs; r++)
        fprintf(out, " | %-32.5f", result->runs[r].auc);
    fprintf(out, "\n%-16s", "EER");
    for (size_t r = 0; r < runs; r++) {
        char cell[64];
        snprintf(cell, sizeof cell, "%.2f%% (threshold %.5f)", 100.0 * result->runs[r].eer,
                 result->runs[r].eer_threshold);
        fprintf(out, " | %-32s", cell);
    }
    for (size_t i = 0; i < FV_PROTOCOL_N_FAR; i++) {
        char label[32];
        snprintf(label, sizeof label, "TAR @ FAR=%g", result->runs[0].far_targets[i]);
        fprintf(out, "\n%-16s", label);
        for (size_t r = 0; r < runs; r++) {
            char cell[64];
            snprintf(cell, sizeof cell, "%.2f%% (threshold %.5f)",
                     100.0 * result->runs[r].tar_at_far[i], result->runs[r].tar_threshold[i]);
            fprintf(out, " | %-32s", cell);
        }
    }
    size_t fallbacks = 0;
    for (size_t i = 0; i < n_failures; i++)
        fallbacks += failures[i].fallback_used;
    fprintf(out,
            "\n\nstd is the sample standard deviation over folds; thresholds are cosine "
            "similarities.\ndetection failures: %zu (%zu embedded with a fallback, %zu left "
            "out)\n",
            n_failures, fallbacks, n_failures - fallbacks);
    if (ferror(out))
        return fv_error_set(err, FV_ERR_IO, "report: write failed");
    return FV_OK;
}

struct summary_context {
    const struct fv_protocol_result *result;
    const struct fv_report_failure *failures;
    size_t n_failures;
    const struct fv_report_params *params;
};

static enum fv_status summary_writer(FILE *out, const void *context, struct fv_error *err)
{
    const struct summary_context *c = context;
    return fv_report_write_summary(out, c->result, c->failures, c->n_failures, c->params, err);
}

char *fv_report_summary(const struct fv_protocol_result *result,
                        const struct fv_report_failure *failures, size_t n_failures,
                        const struct fv_report_params *params, struct fv_error *err)
{
    struct summary_context c = {result, failures, n_failures, params};
    return write_to_string(summary_writer, &c, err);
}

/* ---------------- SVG ---------------- */

struct plot {
    double left, top, width, height;
    double tar_min;
};

static double plot_x(const struct plot *p, double far)
{
    double l = far > 0.0 ? log10(far) : SVG_LOG_FAR_MIN;
    if (l < SVG_LOG_FAR_MIN)
        l = SVG_LOG_FAR_MIN;
    if (l > 0.0)
        l = 0.0;
    return p->left + (l - SVG_LOG_FAR_MIN) / -SVG_LOG_FAR_MIN * p->width;
}

static double plot_y(const struct plot *p, double tar)
{
    return p->top + (1.0 - (tar - p->tar_min) / (1.0 - p->tar_min)) * p->height;
}

static void xml_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '&': fputs("&amp;", out); break;
        case '"': fputs("&quot;", out); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t')
                fputc(*s, out);
        }
    }
}

/* "10<sup>e</sup>" as SVG text content. */
static void power_of_ten(FILE *out, int exponent)
{
    if (exponent == 0)
        fputs("1", out);
    else
        fprintf(out, "10<tspan dy=\"-6\" font-size=\"75%%\">%s%d</tspan>",
                exponent < 0 ? "\u2212" : "", abs(exponent));
}

static double auto_tar_min(const struct fv_protocol_result *result)
{
    double lowest = 1.0;
    for (size_t r = 0; r < result->n_runs; r++) {
        double tar = fv_roc_tar_at_far(result->runs[r].roc, 1e-4, NULL);
        if (tar < lowest)
            lowest = tar;
    }
    double t = floor((lowest - 0.02) * 10.0) / 10.0;
    return t < 0.0 ? 0.0 : t > 0.9 ? 0.9 : t;
}

static void draw_axes(FILE *out, const struct plot *p, const char *title, double w, double h)
{
    double right = p->left + p->width, bottom = p->top + p->height;
    fprintf(out, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"17\" "
                 "font-weight=\"bold\">",
            w / 2);
    xml_text(out, title);
    fputs("</text>\n", out);
    fputs("<g stroke=\"#e3e3e3\" stroke-width=\"1\">\n", out);
    for (int e = -4; e <= 0; e++) {
        for (int m = 1; m <= (e < 0 ? 9 : 1); m++) {
            double x = plot_x(p, m * pow(10.0, e));
            fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"%s/>\n", x, p->top,
                    x, bottom, m == 1 ? " stroke=\"#cccccc\"" : "");
        }
    }
    double range = 1.0 - p->tar_min;
    double step = range > 0.5 ? 0.1 : range > 0.2 ? 0.05 : 0.02;
    int n_steps = (int)llround(range / step);
    for (int i = 0; i <= n_steps; i++) {
        double y = plot_y(p, p->tar_min + i * step);
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#cccccc\"/>\n",
                p->left, y, right, y);
    }
    fputs("</g>\n", out);
    fprintf(out, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
                 "stroke=\"#222\" stroke-width=\"1.2\"/>\n",
            p->left, p->top, p->width, p->height);
    fputs("<g font-size=\"13\" fill=\"#222\">\n", out);
    for (int e = -4; e <= 0; e++) {
        double x = plot_x(p, pow(10.0, e));
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#222\"/>\n", x,
                bottom, x, bottom + 6);
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">", x, bottom + 22);
        power_of_ten(out, e);
        fputs("</text>\n", out);
    }
    for (int i = 0; i <= n_steps; i++) {
        double tar = p->tar_min + i * step, y = plot_y(p, tar);
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#222\"/>\n",
                p->left - 6, y, p->left, y);
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%.*f</text>\n",
                p->left - 9, y + 4.5, step < 0.1 ? 2 : 1, tar);
    }
    fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"14\">"
                 "False accept rate (FAR, log scale)</text>\n",
            p->left + p->width / 2, h - 16);
    fprintf(out, "<text transform=\"translate(20 %.2f) rotate(-90)\" text-anchor=\"middle\" "
                 "font-size=\"14\">True accept rate (TAR)</text>\n",
            p->top + p->height / 2);
    fputs("</g>\n", out);
}

static void draw_curve(FILE *out, const struct plot *p, const struct fv_roc *roc,
                       const char *colour, const size_t *keep, size_t count)
{
    const struct fv_roc_point *pts = fv_roc_points(roc);
    /* FAR = 0 has no place on a log axis: start at the left edge with the best TAR the
     * curve reaches there. */
    double start = fv_roc_tar_at_far(roc, pow(10.0, SVG_LOG_FAR_MIN), NULL);
    fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                 "stroke-linejoin=\"round\" clip-path=\"url(#plot)\" points=\"%.2f,%.2f",
            colour, plot_x(p, 0.0), plot_y(p, start));
    for (size_t i = 0; i < count; i++) {
        const struct fv_roc_point *q = &pts[keep[i]];
        if (log10(q->far) > SVG_LOG_FAR_MIN)
            fprintf(out, " %.2f,%.2f", plot_x(p, q->far), plot_y(p, q->tar));
    }
    fputs("\"/>\n", out);
}

static void draw_operating_points(FILE *out, const struct plot *p,
                                  const struct fv_protocol_run *run, const char *colour,
                                  size_t r)
{
    /* The first run is annotated above-left of its marks, the second below-right, so the
     * labels of two close curves do not sit on each other. */
    double dx = r == 0 ? -8 : 8, dy = r == 0 ? -9 : 18;
    const char *anchor = r == 0 ? "end" : "start";
    for (size_t i = 0; i < FV_PROTOCOL_N_FAR; i++) {
        double x = plot_x(p, run->far_targets[i]), y = plot_y(p, run->tar_at_far[i]);
        if (run->tar_at_far[i] < p->tar_min)
            continue;
        fprintf(out, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"4.5\" fill=\"%s\" stroke=\"white\" "
                     "stroke-width=\"1.2\"/>\n",
                x, y, colour);
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\" font-size=\"11.5\" "
                     "fill=\"%s\">TAR %.2f%% @ FAR ",
                x + dx, y + dy, anchor, colour, 100.0 * run->tar_at_far[i]);
        power_of_ten(out, (int)lround(log10(run->far_targets[i])));
        fputs("</text>\n", out);
    }
    double eer_tar = 1.0 - run->eer;
    if (eer_tar >= p->tar_min && run->eer > 0.0 && log10(run->eer) >= SVG_LOG_FAR_MIN) {
        double x = plot_x(p, run->eer), y = plot_y(p, eer_tar);
        fprintf(out, "<path d=\"M %.2f %.2f l 6 6 l -6 6 l -6 -6 z\" fill=\"%s\" "
                     "stroke=\"white\" stroke-width=\"1.2\"/>\n",
                x, y - 6, colour);
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\" font-size=\"11.5\" "
                     "fill=\"%s\">EER %.2f%%</text>\n",
                x + dx, y + dy, anchor, colour, 100.0 * run->eer);
    }
}

static void draw_legend(FILE *out, const struct plot *p, const struct fv_protocol_result *result)
{
    char labels[FV_PROTOCOL_MAX_RUNS][160];
    size_t longest = 40; /* the fixed entries below */
    for (size_t r = 0; r < result->n_runs; r++) {
        const struct fv_protocol_run *run = &result->runs[r];
        char dim[48] = "";
        if (run->pca_dim)
            snprintf(dim, sizeof dim, " (k = %zu%s)", run->pca_dim,
                     run->whitened ? ", whitened" : "");
        snprintf(labels[r], sizeof labels[r], "%s%s: %.2f%% \u00b1 %.2f, AUC %.4f", run->label,
                 dim, 100.0 * run->mean_accuracy, 100.0 * run->std_accuracy, run->auc);
        if (strlen(labels[r]) > longest)
            longest = strlen(labels[r]);
    }
    /* No text metrics in SVG: about 6.9 px per character at 12.5 px Helvetica. */
    double row = 20, width = fmin(56 + 6.9 * (double)longest, p->width - 20);
    double height = row * (double)(result->n_runs + 2) + 8;
    double x = p->left + p->width - width - 10, y = p->top + p->height - height - 10;
    fprintf(out, "<g font-size=\"12.5\">\n<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
                 "height=\"%.2f\" fill=\"white\" fill-opacity=\"0.92\" stroke=\"#999\"/>\n",
            x, y, width, height);
    for (size_t r = 0; r < result->n_runs; r++) {
        double ly = y + 16 + row * (double)r;
        fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                     "stroke-width=\"2.5\"/>\n",
                x + 10, ly - 4, x + 38, ly - 4, run_colours[r]);
        fprintf(out, "<text x=\"%.2f\" y=\"%.2f\">", x + 46, ly);
        xml_text(out, labels[r]);
        fputs("</text>\n", out);
    }
    double ly = y + 16 + row * (double)result->n_runs;
    fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#888\" "
                 "stroke-dasharray=\"5 4\"/>\n",
            x + 10, ly - 4, x + 38, ly - 4);
    fprintf(out, "<text x=\"%.2f\" y=\"%.2f\">FAR = FRR (equal error line)</text>\n", x + 46, ly);
    ly += row;
    fprintf(out, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"4.5\" fill=\"#555\"/>\n", x + 18, ly - 4);
    fprintf(out, "<path d=\"M %.2f %.2f l 6 6 l -6 6 l -6 -6 z\" fill=\"#555\"/>\n", x + 32,
            ly - 10);
    fprintf(out, "<text x=\"%.2f\" y=\"%.2f\">TAR at FAR = 10<tspan dy=\"-5\" font-size=\"75%%\">"
                 "\u22123</tspan><tspan dy=\"5\">, 10</tspan><tspan dy=\"-5\" "
                 "font-size=\"75%%\">\u22122</tspan><tspan dy=\"5\">; EER point</tspan></text>\n",
            x + 46, ly);
    fputs("</g>\n", out);
}

enum fv_status fv_report_write_svg(FILE *out, const struct fv_protocol_result *result,
                                   const struct fv_report_params *params,
                                   struct fv_error *err)
{
    struct fv_report_params defaults = fv_report_default_params();
    enum fv_status st;
    size_t *keep = NULL;
    bool *marks = NULL;
    if (!params)
        params = &defaults;
    if ((st = check_params(params, err)) != FV_OK)
        return st;
    if (!result || result->n_runs == 0)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "report: no result to plot");
    double w = params->svg_width, h = params->svg_height;
    struct plot p = {.left = 78, .top = 46, .width = w - 78 - 24, .height = h - 46 - 62};
    p.tar_min = params->svg_tar_min >= 0.0 ? params->svg_tar_min : auto_tar_min(result);

    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, sans-serif\">\n",
            params->svg_width, params->svg_height, params->svg_width, params->svg_height);
    fputs("<title>", out);
    xml_text(out, params->title);
    fputs("</title>\n", out);
    fprintf(out, "<defs><clipPath id=\"plot\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
                 "height=\"%.2f\"/></clipPath></defs>\n",
            p.left, p.top, p.width, p.height);
    fprintf(out, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", params->svg_width,
            params->svg_height);
    draw_axes(out, &p, params->title, w, h);

    /* The equal error line TAR = 1 - FAR, sampled evenly in log FAR. */
    fputs("<polyline fill=\"none\" stroke=\"#888\" stroke-dasharray=\"5 4\" "
          "clip-path=\"url(#plot)\" points=\"",
          out);
    for (int i = 0; i <= 80; i++) {
        double far = pow(10.0, SVG_LOG_FAR_MIN * (1.0 - i / 80.0));
        fprintf(out, "%s%.2f,%.2f", i ? " " : "", plot_x(&p, far), plot_y(&p, 1.0 - far));
    }
    fputs("\"/>\n", out);

    for (size_t r = 0; r < result->n_runs; r++) {
        const struct fv_roc *roc = result->runs[r].roc;
        size_t n = fv_roc_point_count(roc);
        keep = malloc(n * sizeof *keep);
        marks = malloc(n * sizeof *marks);
        if (!keep || !marks) {
            st = fv_error_set(err, FV_ERR_NOMEM, "report: out of memory");
            goto fail;
        }
        size_t count = select_points(roc, SVG_MAX_POINTS, keep, marks);
        draw_curve(out, &p, roc, run_colours[r], keep, count);
        free(keep);
        free(marks);
        keep = NULL;
        marks = NULL;
    }
    for (size_t r = 0; r < result->n_runs; r++)
        draw_operating_points(out, &p, &result->runs[r], run_colours[r], r);
    draw_legend(out, &p, result);
    fputs("</svg>\n", out);
    if (ferror(out))
        st = fv_error_set(err, FV_ERR_IO, "report: write failed");
fail:
    free(keep);
    free(marks);
    return st;
}

struct svg_context {
    const struct fv_protocol_result *result;
    const struct fv_report_params *params;
};

static enum fv_status svg_writer(FILE *out, const void *context, struct fv_error *err)
{
    const struct svg_context *c = context;
    return fv_report_write_svg(out, c->result, c->params, err);
}

char *fv_report_svg(const struct fv_protocol_result *result,
                    const struct fv_report_params *params, struct fv_error *err)
{
    struct svg_context c = {result, params};
    return write_to_string(svg_writer, &c, err);
}
