/* status.c - status strings and error message helpers. */
#include "model/status.h"

#include <stdarg.h>
#include <string.h>

const char *fv_status_str(enum fv_status status)
{
    switch (status) {
    case FV_OK: return "ok";
    case FV_ERR_NOMEM: return "out of memory";
    case FV_ERR_IO: return "input/output error";
    case FV_ERR_FORMAT: return "malformed input";
    case FV_ERR_UNSUPPORTED: return "unsupported";
    case FV_ERR_TOO_LARGE: return "too large";
    case FV_ERR_INVALID_ARG: return "invalid argument";
    case FV_ERR_NO_FACE: return "no face found";
    case FV_ERR_NOT_FOUND: return "not found";
    case FV_ERR_INTERNAL: return "internal error";
    case FV_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

enum fv_status fv_error_set(struct fv_error *err, enum fv_status status, const char *fmt, ...)
{
    if (!err)
        return status;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return status;
}

enum fv_status fv_error_prefix(struct fv_error *err, const char *fmt, ...)
{
    if (!err)
        return FV_ERR_INTERNAL;
    char prefix[FV_ERROR_MESSAGE_MAX];
    char old[FV_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    size_t used = strlen(prefix);
    memcpy(err->message, prefix, used + 1);
    if (used + 1 < sizeof err->message) {
        size_t room = sizeof err->message - used - 1;
        size_t len = strnlen(old, room);
        memcpy(err->message + used, old, len);
        err->message[used + len] = '\0';
    }
    return err->status;
}
