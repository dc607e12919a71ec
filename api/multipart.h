/* multipart.h - a bounded multipart/form-data parser (RFC 7578, RFC 2046).
 *
 *   char boundary[FV_MULTIPART_BOUNDARY_MAX + 1];
 *   if (fv_multipart_boundary(content_type, boundary) != FV_OK) ... // 400
 *   struct fv_multipart_part parts[8];
 *   int n;
 *   if (fv_multipart_parse(body, size, boundary, parts, 8, &n, &err) != FV_OK) ... // 400
 *   const struct fv_multipart_part *img = fv_multipart_find(parts, n, "image1");
 *
 * The parser copies nothing: each part's data points into the body, which must
 * outlive the parts. Part names and content types are copied into small fixed
 * buffers (longer ones are rejected). Line breaks are CRLF as the RFC says;
 * bare LF is accepted too, since some clients send it.
 */
#ifndef FV_MULTIPART_H
#define FV_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#include "model/status.h"

#define FV_MULTIPART_BOUNDARY_MAX 70 /* RFC 2046 */
#define FV_MULTIPART_NAME_MAX 63
#define FV_MULTIPART_HEADERS_MAX 8192 /* bytes of headers in one part */

struct fv_multipart_part {
    char name[FV_MULTIPART_NAME_MAX + 1];         /* Content-Disposition name */
    char content_type[FV_MULTIPART_NAME_MAX + 1]; /* "" when the part has none */
    int has_filename;
    const uint8_t *data; /* into the body */
    size_t size;
};

/* Extracts the boundary parameter (quoted or not) from a Content-Type value
 * such as `multipart/form-data; boundary="abc"` into boundary (NUL-terminated).
 * FV_ERR_FORMAT when the type is not multipart/form-data or the boundary is
 * missing, empty, too long or has characters RFC 2046 does not allow. */
enum fv_status fv_multipart_boundary(const char *content_type,
                                     char boundary[FV_MULTIPART_BOUNDARY_MAX + 1]);

/* Splits body into at most max_parts parts. FV_ERR_FORMAT (message in err)
 * for a malformed body: no opening delimiter, a part without a
 * Content-Disposition: form-data header with a name, headers that do not end,
 * a missing closing delimiter. FV_ERR_TOO_LARGE when there are more parts. */
enum fv_status fv_multipart_parse(const uint8_t *body, size_t size, const char *boundary,
                                  struct fv_multipart_part *parts, int max_parts, int *n_parts,
                                  struct fv_error *err);

/* The first part with this name, or NULL. */
const struct fv_multipart_part *fv_multipart_find(const struct fv_multipart_part *parts, int n,
                                                  const char *name);

#endif
