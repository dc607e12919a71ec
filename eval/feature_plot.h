/* feature_plot.h - how compact learned features are, and 2-D scatter plots of them.
 *
 *   struct fv_feature_spread sp;
 *   fv_feature_spread(features, labels, n, 2, 10, &sp);
 *   printf("intra / inter = %.3f\n", sp.ratio);
 *   fv_feature_scatter_svg("docs/mnist/center.svg", features, labels, n, 10,
 *                          "softmax + center loss", &err);
 *
 * Wen et al.'s Fig. 3 shows 2-D MNIST features of LeNets++: with center loss
 * the classes shrink around their centres. fv_feature_spread puts a number on
 * it: the mean distance of a feature to its class mean over the mean distance
 * between two class means.
 */
#ifndef FV_FEATURE_PLOT_H
#define FV_FEATURE_PLOT_H

#include "model/status.h"

struct fv_feature_spread {
    double intra; /* mean over samples of ‖x_i − μ_{y_i}‖ */
    double inter; /* mean over pairs of classes present of ‖μ_j − μ_k‖ */
    double ratio; /* intra / inter (NAN when inter is 0) */
};

/* features n × dim, labels in [0, classes). */
void fv_feature_spread(const float *features, const int *labels, int n, int dim, int classes,
                       struct fv_feature_spread *out);

/* Writes an SVG scatter plot of the first two feature dimensions, one colour
 * per class (at most 10 distinct colours, then repeated), with a legend. */
enum fv_status fv_feature_scatter_svg(const char *path, const float *features, const int *labels,
                                      int n, int dim, int classes, const char *title,
                                      struct fv_error *err);

#endif
