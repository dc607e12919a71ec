/* base64.h - bounded base64 decoding of untrusted text (RFC 4648), and encoding.
 *
 *   uint8_t *bytes;                        // an image sent as base64 or a data URI
 *   size_t n;
 *   if (fv_base64_decode_alloc(text, len, &bytes, &n) != FV_OK) ... // 400
 *   ...
 *   free(bytes);
 *
 * or, into a buffer of the caller's:
 *   size_t cap = fv_base64_decoded_max(len);
 *   uint8_t *bytes = malloc(cap ? cap : 1);
 *   size_t n;
 *   if (fv_base64_decode(text, len, bytes, cap, &n) != FV_OK) ... // 400
 *
 * Accepts the standard alphabet and the URL-safe one ('-', '_'), optional
 * '=' padding, and ASCII whitespace anywhere (line-wrapped MIME bodies).
 * Rejects any other character, padding in the middle, a lone trailing
 * character (6 bits cannot make a byte) and non-zero leftover bits.
 */
#ifndef FV_BASE64_H
#define FV_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "model/status.h"

/* Upper bound on the decoded size of len characters (never overflows). */
size_t fv_base64_decoded_max(size_t len);

/* Decodes len characters of in into out (capacity out_cap) and stores the
 * byte count in *out_len. FV_ERR_FORMAT for malformed text, FV_ERR_TOO_LARGE
 * when out_cap is too small; out is never written past out_cap. */
enum fv_status fv_base64_decode(const char *in, size_t len, uint8_t *out, size_t out_cap,
                                size_t *out_len);

/* Skips a "data:<type>;base64," prefix (data URI) if there is one: returns the
 * offset of the payload in s, 0 when s does not start with "data:", or
 * (size_t)-1 when it is a data URI that is not base64 encoded. */
size_t fv_base64_data_uri_offset(const char *s, size_t len);

/* Decodes len characters of text, plain base64 or a base64 data URI, into a
 * malloc'd buffer: *out (the caller frees it) and *out_len. On failure *out is
 * NULL: FV_ERR_UNSUPPORTED for a data URI that is not base64, FV_ERR_FORMAT for
 * malformed base64, FV_ERR_NOMEM. */
enum fv_status fv_base64_decode_alloc(const char *text, size_t len, uint8_t **out,
                                      size_t *out_len);

/* size bytes as standard base64 with '=' padding, NUL-terminated, malloc'd
 * (free()); NULL when out of memory. For clients and test tools that build
 * requests. */
char *fv_base64_encode(const uint8_t *data, size_t size);

#endif
