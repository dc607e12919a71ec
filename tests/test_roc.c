/* test_roc.c - accuracy, best threshold, ROC, AUC, EER and TAR@FAR on hand-worked cases. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "eval/roc.h"

/* Case A, six pairs (S = same, D = different):
 *   score  0.9 0.8 0.7 0.6 0.4 0.3
 *   label   S   S   D   S   D   D        3 same, 3 different
 */
static const float a_scores[] = {0.9f, 0.8f, 0.7f, 0.6f, 0.4f, 0.3f};
static const bool a_same[] = {true, true, false, true, false, false};

Test(roc, accuracy_at_threshold)
{
    double acc;
    /* t = 0.65 accepts 0.9 S (right), 0.8 S (right), 0.7 D (wrong); rejects 0.6 S (wrong),
     * 0.4 D, 0.3 D (right): 4 / 6. */
    cr_assert_eq(fv_roc_accuracy(a_scores, a_same, 6, 0.65, &acc, NULL), FV_OK);
    cr_assert_float_eq(acc, 4.0 / 6.0, 1e-12);
    /* score >= threshold is "same": at t = 0.7 exactly, 0.7 D is still accepted: 4 / 6. */
    cr_assert_eq(fv_roc_accuracy(a_scores, a_same, 6, (double)0.7f, &acc, NULL), FV_OK);
    cr_assert_float_eq(acc, 4.0 / 6.0, 1e-12);
    /* Just above 0.7: 0.7 D is rejected, now 5 / 6. */
    cr_assert_eq(fv_roc_accuracy(a_scores, a_same, 6, nextafter((double)0.7f, 1.0), &acc, NULL),
                 FV_OK);
    cr_assert_float_eq(acc, 5.0 / 6.0, 1e-12);
}

Test(roc, best_threshold_takes_smallest_of_tied_candidates)
{
    /* Ascending: 0.3 D, 0.4 D, 0.6 S, 0.7 D, 0.8 S, 0.9 S.
     *   below all           correct = 3 (the same pairs)
     *   past 0.3 -> t 0.35  4
     *   past 0.4 -> t 0.50  5   <- first maximum
     *   past 0.6 -> t 0.65  4
     *   past 0.7 -> t 0.75  5   (tie; the smaller threshold 0.50 is kept)
     *   past 0.8 -> t 0.85  4
     *   past 0.9 -> above   3 */
    double threshold, acc;
    cr_assert_eq(fv_roc_best_threshold(a_scores, a_same, 6, &threshold, &acc, NULL), FV_OK);
    cr_assert_float_eq(threshold, 0.5 * ((double)0.4f + (double)0.6f), 1e-12);
    cr_assert_float_eq(acc, 5.0 / 6.0, 1e-12);
}

Test(roc, curve_auc_eer_tar)
{
    struct fv_roc *roc = NULL;
    cr_assert_eq(fv_roc_compute(a_scores, a_same, 6, &roc, NULL), FV_OK);
    /* Lowering the threshold through 0.9 S, 0.8 S, 0.7 D, 0.6 S, 0.4 D, 0.3 D:
     * (FAR, TAR) = (0,0) (0,1/3) (0,2/3) (1/3,2/3) (1/3,1) (2/3,1) (1,1). */
    static const double far[] = {0, 0, 0, 1.0 / 3, 1.0 / 3, 2.0 / 3, 1};
    static const double tar[] = {0, 1.0 / 3, 2.0 / 3, 2.0 / 3, 1, 1, 1};
    cr_assert_eq(fv_roc_point_count(roc), 7);
    const struct fv_roc_point *p = fv_roc_points(roc);
    for (size_t i = 0; i < 7; i++) {
        cr_assert_float_eq(p[i].far, far[i], 1e-12, "point %zu", i);
        cr_assert_float_eq(p[i].tar, tar[i], 1e-12, "point %zu", i);
    }
    cr_assert_float_eq(p[3].threshold, (double)0.7f, 1e-12);
    cr_assert_gt(p[0].threshold, 0.9);
    /* AUC: FAR 0 -> 1/3 at TAR 2/3 gives 2/9, 1/3 -> 2/3 and 2/3 -> 1 at TAR 1 give 1/3 each:
     * 8/9. Cross-check: of the 9 (S, D) couples, S wins 3 + 3 + 2 = 8. */
    cr_assert_float_eq(fv_roc_auc(roc), 8.0 / 9.0, 1e-12);
    /* EER: FAR - FRR is -1, -2/3, -1/3, 0 at (1/3, 2/3): EER = 1/3 at threshold 0.7. */
    double threshold;
    cr_assert_float_eq(fv_roc_eer(roc, &threshold), 1.0 / 3.0, 1e-9);
    cr_assert_float_eq(threshold, (double)0.7f, 1e-6);
    /* FAR <= 0: best point (0, 2/3) at threshold 0.8. FAR <= 0.5: (1/3, 1) at 0.6. */
    cr_assert_float_eq(fv_roc_tar_at_far(roc, 0.0, &threshold), 2.0 / 3.0, 1e-12);
    cr_assert_float_eq(threshold, (double)0.8f, 1e-12);
    cr_assert_float_eq(fv_roc_tar_at_far(roc, 0.5, &threshold), 1.0, 1e-12);
    cr_assert_float_eq(threshold, (double)0.6f, 1e-12);
    cr_assert_float_eq(fv_roc_tar_at_far(roc, 1e-3, NULL), 2.0 / 3.0, 1e-12);
    fv_roc_free(roc);
}

/* Case B, with a tie between a same and a different pair:
 *   score  0.8 0.5 0.5 0.2
 *   label   S   S   D   D */
static const float b_scores[] = {0.5f, 0.8f, 0.2f, 0.5f};
static const bool b_same[] = {true, true, false, false};

Test(roc, ties)
{
    struct fv_roc *roc = NULL;
    cr_assert_eq(fv_roc_compute(b_scores, b_same, 4, &roc, NULL), FV_OK);
    /* Points: (0,0), 0.8 S -> (0,1/2), the tied 0.5 group at once -> (1/2,1), 0.2 -> (1,1). */
    cr_assert_eq(fv_roc_point_count(roc), 4);
    const struct fv_roc_point *p = fv_roc_points(roc);
    cr_assert_float_eq(p[1].tar, 0.5, 1e-12);
    cr_assert_float_eq(p[2].far, 0.5, 1e-12);
    cr_assert_float_eq(p[2].tar, 1.0, 1e-12);
    /* AUC: 1/2 * (1/2 + 1) / 2 + 1/2 * 1 = 0.375 + 0.5 = 0.875; Mann-Whitney: couples
     * (0.8,0.5) 1, (0.8,0.2) 1, (0.5,0.5) 1/2, (0.5,0.2) 1 -> 3.5 / 4. */
    cr_assert_float_eq(fv_roc_auc(roc), 0.875, 1e-12);
    /* EER: FAR - FRR goes from -1/2 at (0,1/2) to +1/2 at (1/2,1): halfway, FAR = 1/4,
     * threshold 0.8 + 1/2 (0.5 - 0.8) = 0.65. */
    double threshold;
    cr_assert_float_eq(fv_roc_eer(roc, &threshold), 0.25, 1e-12);
    cr_assert_float_eq(threshold, 0.5 * ((double)0.8f + (double)0.5f), 1e-9);
    /* FAR <= 0.4 cannot include the tie: TAR 1/2. */
    cr_assert_float_eq(fv_roc_tar_at_far(roc, 0.4, NULL), 0.5, 1e-12);
    fv_roc_free(roc);

    /* Best threshold: below all 2 right; past 0.2 D: 3 (t = 0.35); past the 0.5 tie (S
     * lost, D gained): 3 (t = 0.65, tie, not taken); past 0.8: 2. */
    double acc;
    cr_assert_eq(fv_roc_best_threshold(b_scores, b_same, 4, &threshold, &acc, NULL), FV_OK);
    cr_assert_float_eq(threshold, 0.5 * ((double)0.2f + (double)0.5f), 1e-12);
    cr_assert_float_eq(acc, 0.75, 1e-12);
}

Test(roc, perfect_separation)
{
    static const float s[] = {0.9f, 0.1f, 0.8f, 0.2f};
    static const bool same[] = {true, false, true, false};
    struct fv_roc *roc = NULL;
    cr_assert_eq(fv_roc_compute(s, same, 4, &roc, NULL), FV_OK);
    cr_assert_float_eq(fv_roc_auc(roc), 1.0, 1e-12);
    /* (0,1/2) -> (0,1) crosses FAR = FRR at FAR = 0: EER 0 at threshold 0.8. */
    double threshold;
    cr_assert_float_eq(fv_roc_eer(roc, &threshold), 0.0, 1e-12);
    cr_assert_float_eq(threshold, (double)0.8f, 1e-9);
    cr_assert_float_eq(fv_roc_tar_at_far(roc, 1e-3, NULL), 1.0, 1e-12);
    fv_roc_free(roc);
    double acc;
    cr_assert_eq(fv_roc_best_threshold(s, same, 4, &threshold, &acc, NULL), FV_OK);
    cr_assert_float_eq(threshold, 0.5 * ((double)0.2f + (double)0.8f), 1e-12);
    cr_assert_float_eq(acc, 1.0, 1e-12);
}

Test(roc, one_class_and_extreme_thresholds)
{
    static const float s[] = {0.3f, 0.7f};
    static const bool same[] = {true, true};
    double threshold, acc;
    /* All same: the lowest candidate (below every score) already gets 2/2 and wins. */
    cr_assert_eq(fv_roc_best_threshold(s, same, 2, &threshold, &acc, NULL), FV_OK);
    cr_assert_float_eq(threshold, (double)0.3f - 1.0, 1e-12);
    cr_assert_float_eq(acc, 1.0, 1e-12);
    static const bool different[] = {false, false};
    cr_assert_eq(fv_roc_best_threshold(s, different, 2, &threshold, &acc, NULL), FV_OK);
    cr_assert_float_eq(threshold, (double)0.7f + 1.0, 1e-12);
    cr_assert_float_eq(acc, 1.0, 1e-12);
    struct fv_roc *roc = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_roc_compute(s, same, 2, &roc, &err), FV_ERR_INVALID_ARG);
    cr_assert_null(roc);
    cr_assert(strstr(err.message, "both same and different"), "%s", err.message);
}

Test(roc, rejects_bad_input)
{
    const float s[] = {0.3f, NAN};
    const bool same[] = {true, false};
    double threshold, acc;
    struct fv_roc *roc = NULL;
    struct fv_error err = {0};
    cr_assert_eq(fv_roc_best_threshold(s, same, 2, &threshold, &acc, &err), FV_ERR_INVALID_ARG);
    cr_assert(strstr(err.message, "score 1"), "%s", err.message);
    cr_assert_eq(fv_roc_compute(s, same, 2, &roc, NULL), FV_ERR_INVALID_ARG);
    cr_assert_eq(fv_roc_accuracy(s, same, 0, 0.5, &acc, NULL), FV_ERR_INVALID_ARG);
    cr_assert_eq(fv_roc_accuracy(s, same, 1, NAN, &acc, NULL), FV_ERR_INVALID_ARG);
    fv_roc_free(NULL);
}

/* Random scores on a coarse grid (many ties) against brute-force definitions. */
Test(roc, matches_brute_force)
{
    enum { N = 300 };
    float s[N];
    bool same[N];
    uint32_t state = 12345;
    size_t n_same = 0;
    for (size_t i = 0; i < N; i++) {
        state = state * 1664525u + 1013904223u;
        same[i] = (state >> 16) & 1;
        state = state * 1664525u + 1013904223u;
        s[i] = (float)((state >> 20) % 40) / 40.0f + (same[i] ? 0.2f : 0.0f);
        n_same += same[i];
    }
    double wins = 0;
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++)
            if (same[i] && !same[j])
                wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
    struct fv_roc *roc = NULL;
    cr_assert_eq(fv_roc_compute(s, same, N, &roc, NULL), FV_OK);
    cr_assert_float_eq(fv_roc_auc(roc), wins / ((double)n_same * (double)(N - n_same)), 1e-12);

    /* Best accuracy over every score used as a threshold, plus "all different". */
    double best = 0;
    for (size_t i = 0; i <= N; i++) {
        double t = i < N ? s[i] : 10.0, acc;
        cr_assert_eq(fv_roc_accuracy(s, same, N, t, &acc, NULL), FV_OK);
        if (acc > best)
            best = acc;
    }
    double threshold, acc, check;
    cr_assert_eq(fv_roc_best_threshold(s, same, N, &threshold, &acc, NULL), FV_OK);
    cr_assert_float_eq(acc, best, 1e-12);
    cr_assert_eq(fv_roc_accuracy(s, same, N, threshold, &check, NULL), FV_OK);
    cr_assert_float_eq(check, acc, 1e-12);

    /* TAR@FAR against a direct count at each point's threshold. */
    double target = 0.05, t;
    double tar = fv_roc_tar_at_far(roc, target, &t);
    size_t ta = 0, fa = 0;
    for (size_t i = 0; i < N; i++)
        if ((double)s[i] >= t)
            same[i] ? ta++ : fa++;
    cr_assert_float_eq(tar, (double)ta / (double)n_same, 1e-12);
    cr_assert_leq((double)fa / (double)(N - n_same), target);
    fv_roc_free(roc);
}
