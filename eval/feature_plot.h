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
 *
 * A network trained with a cosine loss (LMCL) only cares about directions, so
 * its features are compared after L2 normalisation, as in the CosFace paper's
 * toy experiment (Fig. 3):
 *   fv_feature_normalise(features, n, 2);
 *   fv_feature_spread(features, labels, n, 2, 10, &sp);
 *   fv_feature_circle_svg("docs/mnist/lmcl.svg", features, labels, n, 2, 10,
 *                         class_weights, "LMCL", &err);
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

/* Divides each of the n rows of features (n × dim) by its L2 norm, in place;
 * a row of norm 0 stays 0. */
void fv_feature_normalise(float *features, int n, int dim);

/* Writes an SVG plot of features already on the unit circle (the first two
 * dimensions of normalised rows): fixed axes around the circle, the circle
 * drawn, and, when directions (classes × dim, any norm) is not NULL, each
 * class's direction as a ray in its colour. */
enum fv_status fv_feature_circle_svg(const char *path, const float *features, const int *labels,
                                     int n, int dim, int classes, const float *directions,
                                     const char *title, struct fv_error *err);

#endif
