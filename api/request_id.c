/* request_id.c - X-Request-Id: checked when given, made when not. */
#include "api/request_id.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void fv_request_ids_init(struct fv_request_ids *ids)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        /* no entropy yet (early boot): time and pid still tell replicas apart */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec << 20 ^ (uint64_t)getpid();
    }
    ids->prefix = r;
    atomic_init(&ids->next, 1);
}

int fv_request_id_valid(const char *text)
{
    if (!text)
        return 0;
    size_t n = 0;
    for (; text[n]; n++)
        if (n >= FV_REQUEST_ID_MAX || (unsigned char)text[n] < 0x21 ||
            (unsigned char)text[n] > 0x7e)
            return 0;
    return n > 0;
}

void fv_request_id_take(struct fv_request_ids *ids, const char *given,
                        char out[FV_REQUEST_ID_MAX + 1])
{
    if (fv_request_id_valid(given)) {
        strcpy(out, given);
        return;
    }
    uint64_t n = atomic_fetch_add(&ids->next, 1);
    snprintf(out, FV_REQUEST_ID_MAX + 1, "%016llx-%016llx", (unsigned long long)ids->prefix,
             (unsigned long long)n);
}
