/* report.h - evaluation reports: JSON, a plain-text summary table, and the ROC as SVG.
 *
 *   struct fv_report_params params = fv_report_default_params();
 *   params.title = "MobileFaceNet on LFW View 2";
 *   fv_report_write_summary(stderr, result, failures, n_failures, &params, &err);
 *   char *json = fv_report_json(result, failures, n_failures, &params, &err);
 *   FILE *svg = fopen("roc.svg", "w");
 *   fv_report_write_svg(svg, result, &params, &err);
 *
 * result comes from fv_protocol_run; failures (may be NULL when n_failures is 0) lists
 * images where face detection failed, supplied by the caller. Writers return FV_ERR_IO
 * when the stream reports an error; the string forms return a malloc'd NUL-terminated
 * string owned by the caller, or NULL with err set.
 */
#ifndef FV_EVAL_REPORT_H
#define FV_EVAL_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "eval/protocol.h"
#include "model/status.h"

struct fv_report_failure {
    const char *image;    /* relative image path */
    bool fallback_used;   /* true: a fallback crop was embedded; false: image left out */
    const char *fallback; /* which fallback: "landmarks" or "center" (NULL when none) */
};

struct fv_report_params {
    const char *title;       /* JSON "title", summary heading, SVG title */
    size_t max_roc_points;   /* ROC points kept in the JSON (>= 2); the SVG keeps 2000 */
    double svg_tar_min;      /* lower end of the TAR axis; < 0 picks a zoom automatically */
    int svg_width, svg_height; /* pixels, each 320..4000 */
};

/* "Face verification", 300 ROC points, automatic zoom, 720 x 540. */
struct fv_report_params fv_report_default_params(void);

enum fv_status fv_report_write_json(FILE *out, const struct fv_protocol_result *result,
                                    const struct fv_report_failure *failures, size_t n_failures,
                                    const struct fv_report_params *params,
                                    struct fv_error *err);
char *fv_report_json(const struct fv_protocol_result *result,
                     const struct fv_report_failure *failures, size_t n_failures,
                     const struct fv_report_params *params, struct fv_error *err);

/* A fixed-width table: per fold accuracy, threshold and training images for each run side
 * by side, then mean +- sample std, AUC, EER, TAR@FAR and the failure count. */
enum fv_status fv_report_write_summary(FILE *out, const struct fv_protocol_result *result,
                                       const struct fv_report_failure *failures,
                                       size_t n_failures, const struct fv_report_params *params,
                                       struct fv_error *err);
char *fv_report_summary(const struct fv_protocol_result *result,
                        const struct fv_report_failure *failures, size_t n_failures,
                        const struct fv_report_params *params, struct fv_error *err);

/* A standalone SVG: ROC curves of every run on a log FAR axis from 1e-4 to 1, with the
 * TAR@FAR = 1e-3, 1e-2 and EER points marked and annotated, and a legend. */
enum fv_status fv_report_write_svg(FILE *out, const struct fv_protocol_result *result,
                                   const struct fv_report_params *params,
                                   struct fv_error *err);
char *fv_report_svg(const struct fv_protocol_result *result,
                    const struct fv_report_params *params, struct fv_error *err);

#endif
