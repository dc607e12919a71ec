/* errors.h - every error code the API answers with, in one table: the code
 * string, the HTTP statuses it goes with, the routes that may send it, and what
 * it means. Handlers, evaluations and the server name codes only through this
 * enum; tests/test_contract.c checks the table against api/openapi.json (the
 * Error.code enum, and each route's documented statuses).
 *
 *   return fv_reply_error(r, 422, FV_API_CODE_NO_FACE, "image2", "no face found in image2");
 *   const struct fv_api_error *e = fv_api_error_get(FV_API_CODE_NO_FACE);
 *   printf("%s: %s\n", e->code, e->meaning);            // no_face: ...
 *
 * Adding a code: a value here, a row in errors.c, the string in the spec's
 * Error.code enum, and its status under each route that sends it.
 */
#ifndef FV_API_ERRORS_H
#define FV_API_ERRORS_H

enum fv_api_code {
    FV_API_CODE_BAD_JSON,
    FV_API_CODE_BAD_BASE64,
    FV_API_CODE_BAD_MULTIPART,
    FV_API_CODE_INVALID_FIELD,
    FV_API_CODE_MISSING_FIELD,
    FV_API_CODE_BAD_IMAGE,
    FV_API_CODE_UNAUTHORIZED,
    FV_API_CODE_FORBIDDEN_PATH,
    FV_API_CODE_NOT_FOUND,
    FV_API_CODE_METHOD_NOT_ALLOWED,
    FV_API_CODE_REQUEST_TIMEOUT,
    FV_API_CODE_NOT_DONE,
    FV_API_CODE_FINISHED,
    FV_API_CODE_BODY_TOO_LARGE,
    FV_API_CODE_IMAGE_TOO_LARGE,
    FV_API_CODE_TOO_MANY_IMAGES,
    FV_API_CODE_TOO_MANY_PARTS,
    FV_API_CODE_TOO_MANY_PAIRS,
    FV_API_CODE_UNSUPPORTED_MEDIA_TYPE,
    FV_API_CODE_UNSUPPORTED_IMAGE,
    FV_API_CODE_NO_FACE,
    FV_API_CODE_INVALID_VALUE,
    FV_API_CODE_NO_DATA_ROOT,
    FV_API_CODE_BUSY,
    FV_API_CODE_NOT_READY,
    FV_API_CODE_DRAINING,
    FV_API_CODE_JOBS_DIR_UNAVAILABLE,
    FV_API_CODE_INTERNAL,
    /* Only in a failed evaluation's record (GET /v1/evaluations/{id}), never a status. */
    FV_API_CODE_CANCELLED,
    FV_API_CODE_OWNER_LOST,
    FV_API_CODE_BAD_LANDMARKS,
    FV_API_CODE_BAD_PAIRS,
    FV_API_CODE_TOO_LARGE,
    FV_API_CODE_COUNT
};

/* Where a code may be sent from. Server-wide kinds follow the route flags
 * (routes.h); the rest name the handlers' route families. */
enum fv_api_on {
    FV_API_ON_ANY = 1 << 0,      /* every route (a handler out of memory) */
    FV_API_ON_KEYED = 1 << 1,    /* routes that need an API key (not FV_ROUTE_OPEN) */
    FV_API_ON_BODY = 1 << 2,     /* routes that take a body (FV_ROUTE_BODY) */
    FV_API_ON_WORKER = 1 << 3,   /* routes queued for a pipeline worker (FV_ROUTE_WORKER) */
    FV_API_ON_IMAGES = 1 << 4,   /* POST /v1/verify, /v1/embed, /v1/detect, /v1/align */
    FV_API_ON_EVAL_NEW = 1 << 5, /* POST /v1/evaluations */
    FV_API_ON_EVAL_ID = 1 << 6,  /* GET /v1/evaluations/{id}[/roc.svg], POST .../cancel */
    FV_API_ON_READY = 1 << 7,    /* GET /readyz */
    FV_API_ON_NO_ROUTE = 1 << 8, /* a request that matches no route (404) or no method (405) */
    FV_API_ON_JOB = 1 << 9,      /* a failed evaluation's record, status 0 */
};

#define FV_API_ERROR_USES 3

struct fv_api_error {
    const char *code; /* the string in {"error": {"code": ...}} */
    /* Each HTTP status the code is sent with and where from; unused slots are {0, 0}.
     * Status 0 with FV_API_ON_JOB: inside an evaluation record, not as an answer. */
    struct {
        int status;
        unsigned on; /* enum fv_api_on bits */
    } uses[FV_API_ERROR_USES];
    const char *meaning;
};

/* The row of code (static); code must be below FV_API_CODE_COUNT. */
const struct fv_api_error *fv_api_error_get(enum fv_api_code code);

/* The code string, e.g. "no_face". */
const char *fv_api_code_str(enum fv_api_code code);

/* Whether the table lets code go out with HTTP status (0: in an evaluation record). */
int fv_api_error_allows(enum fv_api_code code, int status);

#endif
