/* fuzz_base64.c - libFuzzer harness for the bounded base64 decoder and the data-URI
 * prefix check, used the way blob_from_base64() in api/handlers.c uses them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t off = fv_base64_data_uri_offset(text, size);
    if (off == (size_t)-1)
        return 0;
    if (off > size)
        abort();
    size_t len = size - off;
    size_t cap = fv_base64_decoded_max(len);
    /* Exactly the bound, so any write past it is a heap overflow ASan sees. */
    uint8_t *out = malloc(cap ? cap : 1);
    if (!out)
        return 0;
    size_t n = 0;
    if (fv_base64_decode(text + off, len, out, cap, &n) == FV_OK && n > cap)
        abort();
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
