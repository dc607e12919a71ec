/* fuzz_base64.c - libFuzzer harness for the bounded base64 decoder, the data-URI
 * prefix check and fv_base64_decode_alloc, which every JSON image field goes
 * through (fv_api_image_from_json); the two decoding paths must agree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    uint8_t *alloc = NULL;
    size_t alloc_n = 0;
    enum fv_status alloc_st = fv_base64_decode_alloc(text, size, &alloc, &alloc_n);
    if ((alloc_st == FV_OK) != (alloc != NULL))
        abort();
    size_t off = fv_base64_data_uri_offset(text, size);
    if (off == (size_t)-1) {
        if (alloc_st != FV_ERR_UNSUPPORTED)
            abort();
        return 0;
    }
    if (off > size)
        abort();
    size_t len = size - off;
    size_t cap = fv_base64_decoded_max(len);
    /* Exactly the bound, so any write past it is a heap overflow ASan sees. */
    uint8_t *out = malloc(cap ? cap : 1);
    if (!out) {
        free(alloc);
        return 0;
    }
    size_t n = 0;
    enum fv_status st = fv_base64_decode(text + off, len, out, cap, &n);
    if (st == FV_OK && n > cap)
        abort();
    /* The allocating path decodes exactly what the bounded one does. */
    if ((st == FV_OK) != (alloc_st == FV_OK) ||
        (st == FV_OK && (n != alloc_n || (n && memcmp(out, alloc, n) != 0))))
        abort();
    free(alloc);
    /* A buffer one byte short of the decoded size must be refused, never overrun. */
    if (n > 0) {
        uint8_t *small = malloc(n - 1 ? n - 1 : 1);
        size_t m = 0;
        if (small && fv_base64_decode(text + off, len, small, n - 1, &m) == FV_OK)
            abort();
        free(small);
    }
    free(out);
    return 0;
}
