/* faceset.h - a folder-per-identity face data set (CASIA-WebFace layout) for training.
 *
 *   struct fv_faceset *fs;
 *   fv_faceset_open("casia", "models", 112, 96, "casia-aligned", &fs, &err);
 *   uint8_t crop[112 * 96 * 3];
 *   for (int i = 0; i < fv_faceset_count(fs); i++)
 *       if (fv_faceset_load(fs, i, mirror, crop, &err) == FV_OK)
 *           use(crop, fv_faceset_label(fs, i));
 *   fv_faceset_free(fs);
 *
 * DIR/<identity>/<image>.{jpg,jpeg,png}: identities sorted by name are labels
 * 0, 1, ...; images sorted by name within each. An image that already has the
 * crop size is taken as aligned. Any other is aligned on the fly: MTCNN (from
 * detector_dir) finds the face with the highest score, the five landmarks are
 * mapped onto the template by a similarity transform and the crop warped, as the
 * pipeline does; when no face is found the centre of the image, resized, stands
 * in (counted by fv_faceset_fallbacks). With a cache directory, each aligned
 * crop is written there as PNG (cache/<identity>/<image>.png) and read back on
 * later loads, so detection runs once per image over a whole training run.
 * Loading is single-threaded per set (one detector context).
 */
#ifndef FV_FACESET_H
#define FV_FACESET_H

#include <stdint.h>

#include "model/status.h"

#define FV_FACESET_MAX_IMAGES 20000000
#define FV_FACESET_MAX_IDENTITIES 1000000

struct fv_faceset;

/* Scans dir. detector_dir may be NULL when every image is pre-aligned (loads
 * of other sizes then fail with FV_ERR_UNSUPPORTED); cache_dir may be NULL. */
enum fv_status fv_faceset_open(const char *dir, const char *detector_dir, int height, int width,
                               const char *cache_dir, struct fv_faceset **out,
                               struct fv_error *err);
void fv_faceset_free(struct fv_faceset *fs);

int fv_faceset_count(const struct fv_faceset *fs);
int fv_faceset_classes(const struct fv_faceset *fs);
int fv_faceset_label(const struct fv_faceset *fs, int i);
/* Identity folder name and file name of image i. */
const char *fv_faceset_identity(const struct fv_faceset *fs, int i);
const char *fv_faceset_file(const struct fv_faceset *fs, int i);
/* Images that fell back to a centre crop so far. */
int fv_faceset_fallbacks(const struct fv_faceset *fs);

/* The aligned height × width × 3 RGB crop of image i, mirrored left-right when
 * mirror is set, into rgb. */
enum fv_status fv_faceset_load(struct fv_faceset *fs, int i, int mirror, uint8_t *rgb,
                               struct fv_error *err);

#endif
