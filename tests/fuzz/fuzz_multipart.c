/* fuzz_multipart.c - libFuzzer harness for the multipart/form-data parser.
 *
 * Input: a Content-Type value up to the first '\n', then the body. The parse uses
 * the handlers' part limit (64) and looks parts up by name as they do.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/multipart.h"

#define MAX_PARTS 64 /* as api/handlers.c */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 512 ? size : 512);
    if (!nl)
        return 0;
    size_t ct_len = (size_t)(nl - data);
    char *content_type = malloc(ct_len + 1);
    if (!content_type)
        return 0;
    memcpy(content_type, data, ct_len);
    content_type[ct_len] = 0;
    const uint8_t *body = nl + 1;
    size_t body_size = size - ct_len - 1;
    /* The body in its own exact-size allocation, so reads past it are caught. */
    uint8_t *copy = malloc(body_size ? body_size : 1);
    if (!copy) {
        free(content_type);
        return 0;
    }
    memcpy(copy, body, body_size);

    char boundary[FV_MULTIPART_BOUNDARY_MAX + 1];
    if (fv_multipart_boundary(content_type, boundary) == FV_OK) {
        if (strlen(boundary) == 0 || strlen(boundary) > FV_MULTIPART_BOUNDARY_MAX)
            abort();
        struct fv_multipart_part parts[MAX_PARTS];
        int n = 0;
        struct fv_error err = {0};
        if (fv_multipart_parse(copy, body_size, boundary, parts, MAX_PARTS, &n, &err) == FV_OK) {
            if (n < 0 || n > MAX_PARTS)
                abort();
            unsigned sum = 0;
            for (int i = 0; i < n; i++) {
                if (parts[i].size > body_size || parts[i].data < copy ||
                    parts[i].data + parts[i].size > copy + body_size)
                    abort();
                for (size_t j = 0; j < parts[i].size; j++)
                    sum += parts[i].data[j];
                sum += (unsigned)strlen(parts[i].name) + (unsigned)strlen(parts[i].content_type);
            }
            (void)sum;
            fv_multipart_find(parts, n, "image1");
            fv_multipart_find(parts, n, "images");
        }
    }
    free(copy);
    free(content_type);
    return 0;
}
