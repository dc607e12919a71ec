/* reply.c - JSON replies and the shared error shape. */
#include "api/reply.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/base64.h"

void fv_reply_clear(struct fv_reply *r)
{
    if (!r)
        return;
    free(r->body);
    memset(r, 0, sizeof *r);
}

static void set_body(struct fv_reply *r, int status, char *body, size_t size,
                     const char *content_type)
{
    free(r->body);
    r->status = status;
    r->body = body;
    r->size = size;
    r->content_type = content_type;
}

int fv_reply_json(struct fv_reply *r, int status, cJSON *root)
{
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!s) {
        /* Nothing left to allocate with: a body built on the stack, one small copy. */
        char oom[96];
        int n =
            snprintf(oom, sizeof oom, "{\"error\":{\"code\":\"%s\",\"message\":\"out of memory\"}}",
                     fv_api_code_str(FV_API_CODE_INTERNAL));
        char *copy = n > 0 && (size_t)n < sizeof oom ? malloc((size_t)n + 1) : NULL;
        if (copy)
            memcpy(copy, oom, (size_t)n + 1);
        set_body(r, 500, copy, copy ? (size_t)n : 0, "application/json");
        return 500;
    }
    set_body(r, status, s, strlen(s), "application/json");
    return status;
}

int fv_reply_error(struct fv_reply *r, int status, enum fv_api_code code, const char *field,
                   const char *fmt, ...)
{
    if (!fv_api_error_allows(code, status) || status < 400) {
        /* A handler sending a code with a status the table (and the spec) does
         * not give it is a bug, but not one to take the server down for: the
         * answer still goes out, and the log says so. */
        fprintf(stderr, "facever: bug: error code %s sent with status %d, which api/errors.c "
                        "does not allow\n", fv_api_code_str(code), status);
        if (status < 400)
            status = 500;
    }
    char message[FV_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    if (!e || !cJSON_AddStringToObject(e, "code", fv_api_code_str(code)) ||
        !cJSON_AddStringToObject(e, "message", message) ||
        (field && !cJSON_AddStringToObject(e, "field", field))) {
        cJSON_Delete(root);
        root = NULL;
    }
    return fv_reply_json(r, status, root);
}

int fv_reply_text(struct fv_reply *r, int status, const char *content_type, const char *text,
                  size_t size)
{
    char *copy = malloc(size + 1);
    if (!copy)
        return fv_reply_json(r, 500, NULL);
    memcpy(copy, text, size);
    copy[size] = 0;
    set_body(r, status, copy, size, content_type);
    return status;
}

int fv_reply_status_of(enum fv_status st, enum fv_api_code *code)
{
    switch (st) {
    case FV_ERR_FORMAT:
        *code = FV_API_CODE_BAD_IMAGE;
        return 400;
    case FV_ERR_UNSUPPORTED:
        *code = FV_API_CODE_UNSUPPORTED_IMAGE;
        return 415;
    case FV_ERR_TOO_LARGE:
        *code = FV_API_CODE_IMAGE_TOO_LARGE;
        return 413;
    case FV_ERR_NO_FACE:
        *code = FV_API_CODE_NO_FACE;
        return 422;
    case FV_ERR_INVALID_ARG:
        *code = FV_API_CODE_INVALID_VALUE;
        return 422;
    default:
        *code = FV_API_CODE_INTERNAL;
        return 500;
    }
}

int fv_api_image_from_json(const cJSON *v, const char *field, uint8_t **bytes, size_t *size,
                           struct fv_reply *r)
{
    *bytes = NULL;
    *size = 0;
    if (!cJSON_IsString(v))
        return fv_reply_error(r, 400, FV_API_CODE_INVALID_FIELD, field,
                              "%s must be a base64 string", field);
    switch (fv_base64_decode_alloc(v->valuestring, strlen(v->valuestring), bytes, size)) {
    case FV_OK:
        return 0;
    case FV_ERR_UNSUPPORTED:
        return fv_reply_error(r, 400, FV_API_CODE_BAD_BASE64, field,
                              "%s is a data URI that is not base64", field);
    case FV_ERR_NOMEM:
        return fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "out of memory");
    default:
        return fv_reply_error(r, 400, FV_API_CODE_BAD_BASE64, field, "%s is not valid base64",
                              field);
    }
}

cJSON *fv_api_face_json(const struct fv_face *f)
{
    static const char *const names[FV_LANDMARKS] = {"left_eye", "right_eye", "nose",
                                                    "mouth_left", "mouth_right"};
    cJSON *o = cJSON_CreateObject();
    cJSON *box = cJSON_AddArrayToObject(o, "box");
    if (!box)
        goto fail;
    for (int k = 0; k < 4; k++)
        if (!cJSON_AddItemToArray(box, cJSON_CreateNumber(round((double)f->box[k] * 10) / 10)))
            goto fail;
    if (!cJSON_AddNumberToObject(o, "score", round((double)f->score * 10000) / 10000))
        goto fail;
    cJSON *lm = cJSON_AddObjectToObject(o, "landmarks");
    if (!lm)
        goto fail;
    for (int k = 0; k < FV_LANDMARKS; k++) {
        cJSON *p = cJSON_CreateArray();
        if (!cJSON_AddItemToObject(lm, names[k], p)) {
            cJSON_Delete(p);
            goto fail;
        }
        if (!cJSON_AddItemToArray(p, cJSON_CreateNumber(round((double)f->landmarks[k][0] * 100) / 100)) ||
            !cJSON_AddItemToArray(p, cJSON_CreateNumber(round((double)f->landmarks[k][1] * 100) / 100)))
            goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}
