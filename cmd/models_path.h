/* models_path.h - where the model files are: the one search every command uses.
 *
 *   char dir[FV_MODELS_PATH_MAX];
 *   struct fv_models_place place;
 *   if (fv_models_find(explicit_dir_or_NULL, fv_models_pipeline_files, dir, &place, &err))
 *       return fv_cli_fail("verify", &err);   // err names every place looked and why
 *
 * The places, in order: --models DIR (when given), $FACEVER_MODELS (when set),
 * ../share/facever/models beside the executable (/proc/self/exe), ./models. The
 * first folder that holds every requested file wins, so an installed binary run
 * from any folder finds the models installed with it.
 */
#ifndef FV_MODELS_PATH_H
#define FV_MODELS_PATH_H

#include <stddef.h>

#include "model/status.h"

#define FV_MODELS_PATH_MAX 4096

enum fv_models_place {
    FV_MODELS_PLACE_OPTION,      /* --models DIR */
    FV_MODELS_PLACE_ENVIRONMENT, /* $FACEVER_MODELS */
    FV_MODELS_PLACE_EXECUTABLE,  /* ../share/facever/models beside the executable */
    FV_MODELS_PLACE_WORKING_DIR, /* ./models */
    FV_MODELS_PLACE_COUNT
};

/* "--models", "$FACEVER_MODELS", "beside the executable", "./models". */
const char *fv_models_place_name(enum fv_models_place place);

/* NULL-terminated file lists: the detector's three networks, and those plus the
 * default embedding model (mobilefacenet.fvm). */
extern const char *const fv_models_detector_files[];
extern const char *const fv_models_pipeline_files[];

/* Writes the first place that holds every file in files to dir (and which place
 * it was to *place, which may be NULL). explicit_dir is --models or NULL. On
 * failure returns FV_ERR_NOT_FOUND with a message that lists each place looked
 * and why it was passed over; dir is then "". */
enum fv_status fv_models_find(const char *explicit_dir, const char *const *files,
                              char dir[FV_MODELS_PATH_MAX], enum fv_models_place *place,
                              struct fv_error *err);

#endif
