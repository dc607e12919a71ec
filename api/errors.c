/* errors.c - the table of error codes (errors.h): the one place a code's string lives. */
#include "api/errors.h"

#include <stddef.h>

#include "model/status.h"

#define ON(s, on) {(s), (on)}

static const struct fv_api_error table[] = {
    [FV_API_CODE_BAD_JSON] = {"bad_json", {ON(400, FV_API_ON_BODY)},
                              "the body is empty, malformed JSON, not an object, or a field "
                              "that must hold JSON does not"},
    [FV_API_CODE_BAD_BASE64] = {"bad_base64", {ON(400, FV_API_ON_IMAGES | FV_API_ON_EVAL_NEW)},
                                "an image field is not valid base64 (or a data URI that is not "
                                "base64)"},
    [FV_API_CODE_BAD_MULTIPART] = {"bad_multipart", {ON(400, FV_API_ON_IMAGES)},
                                   "the multipart/form-data body cannot be parsed"},
    [FV_API_CODE_INVALID_FIELD] = {"invalid_field",
                                   {ON(400, FV_API_ON_IMAGES | FV_API_ON_EVAL_NEW)},
                                   "a field has the wrong JSON type, or conflicts with another"},
    [FV_API_CODE_MISSING_FIELD] = {"missing_field",
                                   {ON(400, FV_API_ON_IMAGES | FV_API_ON_EVAL_NEW)},
                                   "a required field or part is absent"},
    [FV_API_CODE_BAD_IMAGE] = {"bad_image", {ON(400, FV_API_ON_IMAGES), ON(0, FV_API_ON_JOB)},
                               "the image bytes are corrupt or truncated"},
    [FV_API_CODE_UNAUTHORIZED] = {"unauthorized", {ON(401, FV_API_ON_KEYED)},
                                  "the server has API keys and the request carries none of them"},
    [FV_API_CODE_FORBIDDEN_PATH] = {"forbidden_path",
                                    {ON(403, FV_API_ON_EVAL_NEW), ON(0, FV_API_ON_JOB)},
                                    "a path leaves the data root (absolute, .., or a link "
                                    "outside it)"},
    [FV_API_CODE_NOT_FOUND] = {"not_found",
                               {ON(404, FV_API_ON_NO_ROUTE | FV_API_ON_EVAL_ID)},
                               "no such route, or no such evaluation"},
    [FV_API_CODE_METHOD_NOT_ALLOWED] = {"method_not_allowed", {ON(405, FV_API_ON_NO_ROUTE)},
                                        "the path exists but not with this method (see Allow)"},
    [FV_API_CODE_REQUEST_TIMEOUT] = {"request_timeout", {ON(408, FV_API_ON_BODY)},
                                     "the body did not arrive within the request timeout"},
    [FV_API_CODE_NOT_DONE] = {"not_done", {ON(409, FV_API_ON_EVAL_ID)},
                              "the evaluation has no ROC yet (queued, running or failed)"},
    [FV_API_CODE_FINISHED] = {"finished", {ON(409, FV_API_ON_EVAL_ID)},
                              "the evaluation already finished and cannot be cancelled"},
    [FV_API_CODE_BODY_TOO_LARGE] = {"body_too_large", {ON(413, FV_API_ON_BODY)},
                                    "the body exceeds --max-body"},
    [FV_API_CODE_IMAGE_TOO_LARGE] = {"image_too_large",
                                     {ON(413, FV_API_ON_IMAGES), ON(0, FV_API_ON_JOB)},
                                     "an image has more pixels than --max-pixels"},
    [FV_API_CODE_TOO_MANY_IMAGES] = {"too_many_images", {ON(413, FV_API_ON_IMAGES)},
                                     "more images than one request may carry"},
    [FV_API_CODE_TOO_MANY_PARTS] = {"too_many_parts", {ON(413, FV_API_ON_IMAGES)},
                                    "more multipart parts than the parser accepts"},
    [FV_API_CODE_TOO_MANY_PAIRS] = {"too_many_pairs", {ON(413, FV_API_ON_EVAL_NEW)},
                                    "more inline pairs than an evaluation may carry"},
    [FV_API_CODE_UNSUPPORTED_MEDIA_TYPE] = {"unsupported_media_type",
                                            {ON(415, FV_API_ON_BODY)},
                                            "the Content-Type is not one the route takes"},
    [FV_API_CODE_UNSUPPORTED_IMAGE] = {"unsupported_image",
                                       {ON(415, FV_API_ON_IMAGES), ON(0, FV_API_ON_JOB)},
                                       "the image is in a format facever does not decode"},
    [FV_API_CODE_NO_FACE] = {"no_face", {ON(422, FV_API_ON_IMAGES), ON(0, FV_API_ON_JOB)},
                             "no face was found where one is needed"},
    [FV_API_CODE_INVALID_VALUE] = {"invalid_value",
                                   {ON(422, FV_API_ON_IMAGES | FV_API_ON_EVAL_NEW),
                                    ON(0, FV_API_ON_JOB)},
                                   "a field has the right type but a value out of range"},
    [FV_API_CODE_NO_DATA_ROOT] = {"no_data_root", {ON(422, FV_API_ON_EVAL_NEW)},
                                  "files were named but the server has no --data-root"},
    [FV_API_CODE_BUSY] = {"busy",
                          {ON(429, FV_API_ON_WORKER),
                           ON(503, FV_API_ON_BODY)},
                          "429: every worker is busy and the queue is full; 503: the server is "
                          "shutting down or out of memory for the body; retry later"},
    [FV_API_CODE_NOT_READY] = {"not_ready", {ON(503, FV_API_ON_READY)},
                               "the pipeline is not loaded"},
    [FV_API_CODE_DRAINING] = {"draining", {ON(503, FV_API_ON_READY)},
                              "the server is draining before it stops: send new work elsewhere"},
    [FV_API_CODE_JOBS_DIR_UNAVAILABLE] = {"jobs_dir_unavailable",
                                          {ON(503, FV_API_ON_EVAL_NEW),
                                           ON(500, FV_API_ON_EVAL_ID)},
                                          "the shared jobs folder cannot be read or written"},
    [FV_API_CODE_INTERNAL] = {"internal", {ON(500, FV_API_ON_ANY), ON(0, FV_API_ON_JOB)},
                              "out of memory, or a fault in the server"},
    [FV_API_CODE_CANCELLED] = {"cancelled", {ON(0, FV_API_ON_JOB)},
                               "a client cancelled the evaluation, or the server shut down"},
    [FV_API_CODE_OWNER_LOST] = {"owner_lost", {ON(0, FV_API_ON_JOB)},
                                "the replica running the evaluation stopped renewing its lease"},
    [FV_API_CODE_BAD_LANDMARKS] = {"bad_landmarks", {ON(0, FV_API_ON_JOB)},
                                   "the landmarks file cannot be read or parsed"},
    [FV_API_CODE_BAD_PAIRS] = {"bad_pairs", {ON(0, FV_API_ON_JOB)},
                               "the pairs file cannot be read or parsed"},
    [FV_API_CODE_TOO_LARGE] = {"too_large", {ON(0, FV_API_ON_JOB)},
                               "the evaluation names more images than the server takes"},
};

_Static_assert(sizeof table / sizeof table[0] == FV_API_CODE_COUNT,
               "a row in errors.c for every enum fv_api_code");

const struct fv_api_error *fv_api_error_get(enum fv_api_code code)
{
    FV_ASSERT((unsigned)code < FV_API_CODE_COUNT && table[code].code);
    return &table[code];
}

const char *fv_api_code_str(enum fv_api_code code)
{
    return fv_api_error_get(code)->code;
}

int fv_api_error_allows(enum fv_api_code code, int status)
{
    const struct fv_api_error *e = fv_api_error_get(code);
    for (int k = 0; k < FV_API_ERROR_USES; k++)
        if (e->uses[k].on && e->uses[k].status == status)
            return 1;
    return 0;
}
