/* status.h - error codes and error messages shared by every facever library.
 *
 *   struct fv_error err = {0};
 *   if (fv_model_load("models/mobilefacenet.fvm", &model, &err) != FV_OK)
 *       fprintf(stderr, "facever: %s\n", err.message);
 *
 * A function that can fail on input returns an enum fv_status and, when the
 * caller passes a non-NULL struct fv_error, fills it with a sentence that names
 * what was wrong. Library code never prints and never exits.
 */
#ifndef FV_STATUS_H
#define FV_STATUS_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

enum fv_status {
    FV_OK = 0,
    FV_ERR_NOMEM = -1,          /* an allocation failed */
    FV_ERR_IO = -2,             /* a file could not be opened, read or written */
    FV_ERR_FORMAT = -3,         /* input is malformed (bad magic, truncated, bad JSON, ...) */
    FV_ERR_UNSUPPORTED = -4,    /* well-formed input we do not handle (op, image format, ...) */
    FV_ERR_TOO_LARGE = -5,      /* input exceeds a configured limit */
    FV_ERR_INVALID_ARG = -6,    /* a parameter value is out of range */
    FV_ERR_NO_FACE = -7,        /* no face was found where one was required */
    FV_ERR_NOT_FOUND = -8,      /* a named thing (tensor, file, id) does not exist */
    FV_ERR_INTERNAL = -9,       /* a bug: should never happen on any input */
    FV_ERR_CANCELLED = -10,     /* the caller asked a long operation to stop, and it did */
    FV_STATUS_MIN = -10
};

#define FV_ERROR_MESSAGE_MAX 512

struct fv_error {
    enum fv_status status;
    char message[FV_ERROR_MESSAGE_MAX];
};

/* A short, constant description of a status ("out of memory", ...). */
const char *fv_status_str(enum fv_status status);

/* Records status and a printf-style message in err (which may be NULL) and
 * returns status, so a caller can write `return fv_error_set(err, ...)`. */
enum fv_status fv_error_set(struct fv_error *err, enum fv_status status,
                            const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with a printf-style context
 * ("model.fvm: " + "tensor 3 ..."); keeps the status. Returns err's status. */
enum fv_status fv_error_prefix(struct fv_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Programmer errors only, never input validation: prints file and line, aborts. */
#define FV_ASSERT(cond)                                                          \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                      \
            abort();                                                             \
        }                                                                        \
    } while (0)

#endif
