/* request_id.h - X-Request-Id: the one a client or proxy sent when it is sane,
 * a new one otherwise.
 *
 *   struct fv_request_ids ids;
 *   fv_request_ids_init(&ids);                 // once per server
 *   char id[FV_REQUEST_ID_MAX + 1];
 *   fv_request_id_take(&ids, header_or_null, id);
 *
 * New ids are 16 hex digits drawn at random when the server starts, a dash and
 * a 16-digit counter: unique within a process, and across replicas unless two
 * draw the same 64 bits.
 */
#ifndef FV_REQUEST_ID_H
#define FV_REQUEST_ID_H

#include <stdatomic.h>
#include <stdint.h>

#define FV_REQUEST_ID_MAX 128

struct fv_request_ids {
    uint64_t prefix;
    atomic_uint_fast64_t next;
};

void fv_request_ids_init(struct fv_request_ids *ids);

/* 1 when text is 1 to FV_REQUEST_ID_MAX characters of printable ASCII other
 * than space (so it stays one field of a log line). */
int fv_request_id_valid(const char *text);

/* given when valid, else a new id, into out. */
void fv_request_id_take(struct fv_request_ids *ids, const char *given,
                        char out[FV_REQUEST_ID_MAX + 1]);

#endif
