/* reply.h - HTTP replies built by the route handlers: JSON bodies and the one
 * error shape every route uses.
 *
 *   struct fv_reply r = {0};
 *   if (!image)
 *       return fv_reply_error(&r, 400, FV_API_CODE_MISSING_FIELD, "image1", "image1 is required");
 *   cJSON *root = cJSON_CreateObject();
 *   ...
 *   fv_reply_json(&r, 200, root);            // takes root
 *   ...
 *   fv_reply_clear(&r);
 *
 * Error bodies look like
 *   {"error": {"code": "no_face", "message": "no face found in image2", "field": "image2"}}
 * with "field" left out when no single input is at fault. The codes and the
 * statuses each may go with are the table in errors.h.
 */
#ifndef FV_REPLY_H
#define FV_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "api/errors.h"
#include "model/status.h"
#include "pipeline/detect.h"

struct cJSON;

struct fv_reply {
    int status;               /* HTTP status */
    char *body;               /* malloc'd, owned by the reply */
    size_t size;
    const char *content_type; /* static string */
    char allow[64];           /* Allow header for 405, "" otherwise */
    /* More headers: static name, value, name, value, ..., NULL; NULL for none. */
    const char *const *headers;
};

/* Frees the body and zeroes the reply; NULL is fine. */
void fv_reply_clear(struct fv_reply *r);

/* Serialises root (deleted here, NULL means out of memory) as the body.
 * Returns status, or 500 if serialising failed. */
int fv_reply_json(struct fv_reply *r, int status, struct cJSON *root);

/* Replaces the reply with the error shape. field may be NULL. Returns status.
 * status must be one the table (errors.h) gives code: a programmer error otherwise. */
int fv_reply_error(struct fv_reply *r, int status, enum fv_api_code code, const char *field,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A body that is not JSON (metrics text, SVG): copies size bytes. */
int fv_reply_text(struct fv_reply *r, int status, const char *content_type, const char *text,
                  size_t size);

/* The HTTP status and error code that a library failure on client input maps
 * to: FORMAT 400 "bad_image", UNSUPPORTED 415, TOO_LARGE 413, NO_FACE 422,
 * INVALID_ARG 422, NOMEM and the rest 500. */
int fv_reply_status_of(enum fv_status st, enum fv_api_code *code);

/* The encoded image in a JSON request field (v, named field in errors): a
 * string of base64 or a base64 data URI. Returns 0 with *bytes (malloc'd, the
 * caller frees it) and *size, or the HTTP status with the reply filled in and
 * *bytes NULL: 400 invalid_field (not a string), 400 bad_base64, 500. Every
 * route that takes images as JSON goes through here. */
int fv_api_image_from_json(const struct cJSON *v, const char *field, uint8_t **bytes,
                           size_t *size, struct fv_reply *r);

/* {"box": [x1, y1, x2, y2], "score": s, "landmarks": {"left_eye": [x, y], ...}}:
 * the same shape `facever detect --json` prints. NULL when out of memory. */
struct cJSON *fv_api_face_json(const struct fv_face *face);

#endif
