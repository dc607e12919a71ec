/* roc.h - verification metrics over scored pairs: accuracy, best threshold, ROC, AUC,
 * EER and TAR at a given FAR.
 *
 *   struct fv_roc *roc = NULL;
 *   if (fv_roc_compute(scores, same, n, &roc, &err) == FV_OK) {
 *       double auc = fv_roc_auc(roc);
 *       double tar = fv_roc_tar_at_far(roc, 1e-3, NULL);
 *       fv_roc_free(roc);
 *   }
 *   double threshold, accuracy;
 *   fv_roc_best_threshold(train_scores, train_same, n_train, &threshold, &accuracy, &err);
 *   fv_roc_accuracy(test_scores, test_same, n_test, threshold, &accuracy, &err);
 *
 * Scores: higher means more similar; a pair is predicted "same" when score >= threshold.
 * same[i] is the ground truth. Scores must be finite (FV_ERR_INVALID_ARG otherwise).
 * FAR = false accepts / different pairs, TAR = true accepts / same pairs, FRR = 1 - TAR.
 * Everything is O(n log n) (one sort).
 */
#ifndef FV_EVAL_ROC_H
#define FV_EVAL_ROC_H

#include <stdbool.h>
#include <stddef.h>

#include "model/status.h"

struct fv_roc_point {
    double far;        /* false accept rate at this threshold */
    double tar;        /* true accept rate at this threshold */
    double threshold;  /* predict "same" when score >= threshold */
};

struct fv_roc;

/* Fraction of the n pairs classified correctly at threshold into *accuracy. n >= 1. */
enum fv_status fv_roc_accuracy(const float *scores, const bool *same, size_t n, double threshold,
                               double *accuracy, struct fv_error *err);

/* The threshold maximising accuracy on the n pairs. Candidates are the midpoints between
 * consecutive distinct scores plus one threshold below the lowest score (all "same") and
 * one above the highest (all "different"), min - max(1, |min|) and max + max(1, |max|).
 * Ties: the smallest candidate reaching the best accuracy wins. n >= 1. */
enum fv_status fv_roc_best_threshold(const float *scores, const bool *same, size_t n,
                                     double *threshold, double *accuracy,
                                     struct fv_error *err);

/* The ROC curve over all thresholds. Needs at least one same and one different pair.
 * On success *out owns the curve (free with fv_roc_free). */
enum fv_status fv_roc_compute(const float *scores, const bool *same, size_t n,
                              struct fv_roc **out, struct fv_error *err);

void fv_roc_free(struct fv_roc *roc);

/* The curve's points, owned by roc: the first is (0, 0) with a threshold above every score,
 * then one point per distinct score in descending order (threshold = that score), the
 * last being (1, 1). FAR and TAR are non-decreasing along the array. */
size_t fv_roc_point_count(const struct fv_roc *roc);
const struct fv_roc_point *fv_roc_points(const struct fv_roc *roc);

/* Area under the curve by the trapezoid rule over the points above; a tie between a same
 * and a different pair contributes one half, as in the Mann-Whitney statistic. */
double fv_roc_auc(const struct fv_roc *roc);

/* Equal error rate: where FAR = FRR, linearly interpolated between the two curve points
 * that bracket it. *threshold (if not NULL) receives the threshold interpolated the same
 * way. */
double fv_roc_eer(const struct fv_roc *roc, double *threshold);

/* The largest TAR among curve points with FAR <= far (0 when none); *threshold (if not
 * NULL) receives that point's threshold. */
double fv_roc_tar_at_far(const struct fv_roc *roc, double far, double *threshold);

#endif
