/* detect.h - MTCNN face detection (Zhang et al. 2016) with five landmarks.
 *
 *   struct fv_detector *det;
 *   fv_detector_load("models", &det, &err);            // pnet.fvm, rnet.fvm, onet.fvm
 *   struct fv_detector_context *ctx;
 *   fv_detector_context_new(det, &ctx, &err);           // one per thread
 *   struct fv_detect_params p;
 *   fv_detect_default_params(&p);
 *   struct fv_face *faces; int n;
 *   fv_detect(ctx, image, &p, &faces, &n, &err);
 *   free(faces);
 *
 * The algorithm is the original one (the MATLAB release, as ported to
 * TensorFlow by FaceNet): an image pyramid with P-Net on every level, NMS per
 * level and across levels, box regression and squaring, R-Net and O-Net on
 * resampled crops, and a final NMS that compares overlap with the smaller box.
 * Boxes are (x1, y1, x2, y2) and landmarks (x, y), in 0-based pixel
 * coordinates of the image as given (pixel (0, 0) is the first stored); the
 * algorithm itself computes in MATLAB's 1-based coordinates, as the nets
 * were trained.
 */
#ifndef FV_DETECT_H
#define FV_DETECT_H

#include <stddef.h>

#include "model/model.h"
#include "model/status.h"
#include "pipeline/image.h"

enum fv_landmark { FV_LEFT_EYE, FV_RIGHT_EYE, FV_NOSE, FV_LEFT_MOUTH, FV_RIGHT_MOUTH, FV_LANDMARKS };

struct fv_face {
    float box[4]; /* x1, y1, x2, y2 */
    float score;  /* O-Net face probability; 0 for caller-supplied landmarks */
    float landmarks[FV_LANDMARKS][2]; /* (x, y) */
};

/* Detection runs on a copy of the image whose longer side is at most max_side
 * pixels (a 12-megapixel photo is searched at 640x480 by default); R-Net and
 * O-Net crops then read pixels at a resolution where the face is at least
 * twice the network's input, finer than that copy when the image has them.
 * Faces smaller than 20 pixels of that copy are not searched for unless
 * min_face asks for them: min_face (pixels of the image as given) or
 * min_face_relative (a fraction of its shorter side) below that raise the
 * copy's resolution, up to the full image. Images no larger than max_side are
 * searched at full size with a smallest face of 20 pixels, as MTCNN does. */
struct fv_detect_params {
    float min_face;          /* smallest face side in pixels of the image; 0 (default): 20
                                pixels of the copy detection runs on */
    float min_face_relative; /* the same as a fraction of the image's shorter side (0: unused);
                                the larger of the two counts */
    int max_side;            /* longer side of the copy detection runs on (default 640;
                                0: the full image) */
    float factor;        /* pyramid scale step (0.709) */
    float thresholds[3]; /* P-Net, R-Net, O-Net face probability (0.6, 0.7, 0.7) */
    int max_faces;       /* at most this many faces are returned, best first (1000) */
};

void fv_detect_default_params(struct fv_detect_params *params);
/* FV_OK, or FV_ERR_INVALID_ARG naming the parameter that is out of range. */
enum fv_status fv_detect_check_params(const struct fv_detect_params *params, struct fv_error *err);

struct fv_detector;
struct fv_detector_context;

/* Loads pnet.fvm, rnet.fvm and onet.fvm from dir. */
enum fv_status fv_detector_load(const char *dir, struct fv_detector **out, struct fv_error *err);
void fv_detector_free(struct fv_detector *det);

/* Per-thread state: network contexts sized for P-Net tiles and R-Net/O-Net batches. */
enum fv_status fv_detector_context_new(const struct fv_detector *det,
                                       struct fv_detector_context **out, struct fv_error *err);
void fv_detector_context_free(struct fv_detector_context *ctx);

/* Finds faces in the image src reads: on a reduced copy as the parameters say,
 * with results in pixel coordinates of the full-size upright image. */
enum fv_status fv_detect_source(struct fv_detector_context *ctx, struct fv_image_source *src,
                                const struct fv_detect_params *params, struct fv_face **faces,
                                int *n_faces, struct fv_error *err);

/* Finds faces in img. *faces (malloc'd, caller frees; NULL when none) is sorted
 * by score, best first. Finding no face is not an error: *n_faces is 0. */
enum fv_status fv_detect(struct fv_detector_context *ctx, const struct fv_image *img,
                         const struct fv_detect_params *params, struct fv_face **faces,
                         int *n_faces, struct fv_error *err);

/* Feeds the detector's networks into a running 64-bit FNV-1a hash. */
uint64_t fv_detector_hash(const struct fv_detector *det, uint64_t hash);
/* The same for one model's weights and metadata. */
uint64_t fv_model_hash(const struct fv_model *model, uint64_t hash);

/* Greedy non-maximum suppression as MTCNN does it: boxes in pixel-inclusive
 * coordinates (area (x2-x1+1)(y2-y1+1)), highest score first, dropping every
 * box whose overlap with a kept one is above threshold; overlap is
 * intersection over union, or over the smaller area when use_min. Writes the
 * kept indices to keep (best first) and returns how many. */
size_t fv_nms(const float (*boxes)[4], const float *scores, size_t n, float threshold,
              int use_min, size_t *keep);

#endif
