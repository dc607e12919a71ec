/* align.h - five-point similarity alignment onto the paper's face template.
 *
 *   float template[5][2], m[2][3];
 *   fv_align_template(112, 96, template);
 *   fv_similarity_estimate(face.landmarks, template, 5, m);
 *   struct fv_image *crop = fv_align_warp(img, m, 112, 96);
 *
 * The template is the 112×96 one of Wen et al.'s released code (eyes, nose tip,
 * mouth corners). Other sizes scale it by height / 112 and centre it
 * horizontally, so 112×112 is the 112×96 template shifted right by 8 pixels.
 */
#ifndef FV_ALIGN_H
#define FV_ALIGN_H

#include "model/status.h"
#include "pipeline/image.h"

/* The five template points for a height × width crop. */
void fv_align_template(int height, int width, float points[5][2]);

/* The similarity transform (scale, rotation, translation; never a reflection)
 * that maps src onto dst with the least squared error:
 *   dst ≈ (m[0][0] x + m[0][1] y + m[0][2], m[1][0] x + m[1][1] y + m[1][2]).
 * FV_ERR_INVALID_ARG when the source points all coincide or are not finite. */
enum fv_status fv_similarity_estimate(const float (*src)[2], const float (*dst)[2], int n,
                                      float m[2][3]);

/* The height × width crop whose pixel (u, v) is src at m⁻¹(u, v), sampled
 * bilinearly; black outside src. NULL when m is singular or out of memory. */
struct fv_image *fv_align_warp(const struct fv_image *src, const float m[2][3], int height,
                               int width);

/* A copy of img mirrored left to right; NULL when out of memory. */
struct fv_image *fv_image_mirror(const struct fv_image *img);

#endif
