/* roc.c - accuracy, best threshold, ROC curve, AUC, EER and TAR@FAR from pair scores. */
#include "eval/roc.h"

#include <math.h>
#include <string.h>

struct fv_roc {
    struct fv_roc_point *points;
    size_t n_points;
};

struct scored {
    float score;
    bool same;
};

static int compare_ascending(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    /* Ties are broken by label only so the sort is total; nothing below depends on it. */
    return (int)x->same - (int)y->same;
}

static enum fv_status check_input(const float *scores, const bool *same, size_t n,
                                  struct fv_error *err)
{
    if (n == 0)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "no scores");
    if (!scores || !same)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "NULL scores or labels");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(scores[i]))
            return fv_error_set(err, FV_ERR_INVALID_ARG, "score %zu is not finite", i);
    return FV_OK;
}

/* A sorted copy of the input (ascending score); NULL on allocation failure. */
static struct scored *sorted_copy(const float *scores, const bool *same, size_t n)
{
    struct scored *s = malloc(n * sizeof *s);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++)
        s[i] = (struct scored){scores[i], same[i]};
    qsort(s, n, sizeof *s, compare_ascending);
    return s;
}

static double below(double lowest) { return lowest - fmax(1.0, fabs(lowest)); }
static double above(double highest) { return highest + fmax(1.0, fabs(highest)); }

enum fv_status fv_roc_accuracy(const float *scores, const bool *same, size_t n, double threshold,
                               double *accuracy, struct fv_error *err)
{
    enum fv_status st = check_input(scores, same, n, err);
    if (st != FV_OK)
        return st;
    if (isnan(threshold))
        return fv_error_set(err, FV_ERR_INVALID_ARG, "threshold is NaN");
    size_t correct = 0;
    for (size_t i = 0; i < n; i++)
        correct += ((double)scores[i] >= threshold) == same[i];
    *accuracy = (double)correct / (double)n;
    return FV_OK;
}

enum fv_status fv_roc_best_threshold(const float *scores, const bool *same, size_t n,
                                     double *threshold, double *accuracy,
                                     struct fv_error *err)
{
    enum fv_status st = check_input(scores, same, n, err);
    if (st != FV_OK)
        return st;
    struct scored *s = sorted_copy(scores, same, n);
    if (!s)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");

    /* Walk the candidates from the lowest up. Below every score all pairs are called
     * "same", so the correct ones are the same pairs; moving the threshold past a group
     * of equal scores turns that group into "different" calls. */
    size_t correct = 0;
    for (size_t i = 0; i < n; i++)
        correct += s[i].same;
    size_t best_correct = correct;
    double best_threshold = below(s[0].score);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        for (; j < n && s[j].score == s[i].score; j++) {
            if (s[j].same)
                correct--;
            else
                correct++;
        }
        double candidate = j < n ? 0.5 * ((double)s[i].score + (double)s[j].score)
                                 : above(s[n - 1].score);
        if (correct > best_correct) {  /* strict: the smallest threshold keeps a tie */
            best_correct = correct;
            best_threshold = candidate;
        }
        i = j;
    }
    free(s);
    *threshold = best_threshold;
    *accuracy = (double)best_correct / (double)n;
    return FV_OK;
}

enum fv_status fv_roc_compute(const float *scores, const bool *same, size_t n,
                              struct fv_roc **out, struct fv_error *err)
{
    enum fv_status st = check_input(scores, same, n, err);
    struct scored *s = NULL;
    struct fv_roc *roc = NULL;
    *out = NULL;
    if (st != FV_OK)
        return st;
    size_t n_same = 0;
    for (size_t i = 0; i < n; i++)
        n_same += same[i];
    size_t n_diff = n - n_same;
    if (n_same == 0 || n_diff == 0)
        return fv_error_set(err, FV_ERR_INVALID_ARG,
                            "a ROC curve needs both same and different pairs (%zu same, %zu "
                            "different)",
                            n_same, n_diff);
    s = sorted_copy(scores, same, n);
    roc = calloc(1, sizeof *roc);
    if (!s || !roc || !(roc->points = malloc((n + 1) * sizeof *roc->points))) {
        st = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* Lower the threshold from above the highest score through each distinct score; a
     * whole group of equal scores is accepted at once, so a tie between same and
     * different pairs becomes one diagonal segment. */
    size_t true_accepts = 0, false_accepts = 0, k = 0;
    roc->points[k++] = (struct fv_roc_point){0.0, 0.0, above(s[n - 1].score)};
    for (size_t i = n; i > 0;) {
        float score = s[i - 1].score;
        for (; i > 0 && s[i - 1].score == score; i--) {
            if (s[i - 1].same)
                true_accepts++;
            else
                false_accepts++;
        }
        roc->points[k++] = (struct fv_roc_point){
            (double)false_accepts / (double)n_diff, (double)true_accepts / (double)n_same, score};
    }
    roc->n_points = k;
    free(s);
    *out = roc;
    return FV_OK;

fail:
    free(s);
    fv_roc_free(roc);
    return st;
}

void fv_roc_free(struct fv_roc *roc)
{
    if (!roc)
        return;
    free(roc->points);
    free(roc);
}

size_t fv_roc_point_count(const struct fv_roc *roc) { return roc->n_points; }
const struct fv_roc_point *fv_roc_points(const struct fv_roc *roc) { return roc->points; }

double fv_roc_auc(const struct fv_roc *roc)
{
    double area = 0.0;
    for (size_t i = 1; i < roc->n_points; i++) {
        const struct fv_roc_point *p = &roc->points[i - 1], *q = &roc->points[i];
        area += (q->far - p->far) * 0.5 * (p->tar + q->tar);
    }
    return area;
}

double fv_roc_eer(const struct fv_roc *roc, double *threshold)
{
    /* d = FAR - FRR rises from -1 at (0, 0) to +1 at (1, 1); find its zero crossing. */
    const struct fv_roc_point *pts = roc->points;
    for (size_t i = 1; i < roc->n_points; i++) {
        double d1 = pts[i].far - (1.0 - pts[i].tar);
        if (d1 < 0.0)
            continue;
        double d0 = pts[i - 1].far - (1.0 - pts[i - 1].tar);
        double t = d1 > d0 ? -d0 / (d1 - d0) : 1.0;
        if (threshold)
            *threshold = pts[i - 1].threshold + t * (pts[i].threshold - pts[i - 1].threshold);
        return pts[i - 1].far + t * (pts[i].far - pts[i - 1].far);
    }
    /* Unreachable: the last point is (1, 1), where d = 1. */
    if (threshold)
        *threshold = pts[roc->n_points - 1].threshold;
    return 1.0;
}

double fv_roc_tar_at_far(const struct fv_roc *roc, double far, double *threshold)
{
    /* TAR is non-decreasing along the points, so the last point within the FAR budget
     * has the largest TAR. */
    double tar = 0.0, at = roc->points[0].threshold;
    for (size_t i = 0; i < roc->n_points && roc->points[i].far <= far; i++) {
        tar = roc->points[i].tar;
        at = roc->points[i].threshold;
    }
    if (threshold)
        *threshold = at;
    return tar;
}
