/* base64.c - bounded base64 decoding of untrusted text. */
#include "api/base64.h"

#include <stdlib.h>
#include <string.h>

/* 0..63 for alphabet characters, SKIP for whitespace, PAD for '=', BAD otherwise. */
enum { BAD = 0xff, SKIP = 0xfe, PAD = 0xfd };

static uint8_t value_of(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (uint8_t)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (uint8_t)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (uint8_t)(c - '0' + 52);
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    if (c == '=')
        return PAD;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v')
        return SKIP;
    return BAD;
}

size_t fv_base64_decoded_max(size_t len)
{
    return len / 4 * 3 + (len % 4 ? 3 : 0);
}

enum fv_status fv_base64_decode(const char *in, size_t len, uint8_t *out, size_t out_cap,
                                size_t *out_len)
{
    uint32_t acc = 0;
    int held = 0;     /* sextets in acc */
    int padding = 0;  /* '=' seen so far; nothing but padding and whitespace may follow */
    size_t n = 0;
    *out_len = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t v = value_of((unsigned char)in[i]);
        if (v == SKIP)
            continue;
        if (v == BAD)
            return FV_ERR_FORMAT;
        if (v == PAD) {
            /* Padding completes a quantum of 2 or 3 sextets, to 4 characters. */
            if (held < 2 || held + ++padding > 4)
                return FV_ERR_FORMAT;
            continue;
        }
        if (padding)
            return FV_ERR_FORMAT;
        acc = acc << 6 | v;
        if (++held == 4) {
            if (out_cap - n < 3)
                return FV_ERR_TOO_LARGE;
            out[n++] = (uint8_t)(acc >> 16);
            out[n++] = (uint8_t)(acc >> 8);
            out[n++] = (uint8_t)acc;
            acc = 0;
            held = 0;
        }
    }
    if (padding && held + padding != 4)
        return FV_ERR_FORMAT;
    if (held == 1)
        return FV_ERR_FORMAT;
    if (held > 1) {
        /* 2 sextets give one byte (4 spare bits), 3 give two (2 spare bits);
         * canonical encoders leave the spare bits zero. */
        int bytes = held - 1, spare = held * 6 - bytes * 8;
        if (acc & ((1u << spare) - 1))
            return FV_ERR_FORMAT;
        if (out_cap - n < (size_t)bytes)
            return FV_ERR_TOO_LARGE;
        acc >>= spare;
        for (int k = bytes - 1; k >= 0; k--)
            out[n++] = (uint8_t)(acc >> (8 * k));
    }
    *out_len = n;
    return FV_OK;
}

size_t fv_base64_data_uri_offset(const char *s, size_t len)
{
    if (len < 5 || strncmp(s, "data:", 5) != 0)
        return 0;
    /* The header is short; a comma far away means this is not a data URI header. */
    size_t limit = len < 256 ? len : 256;
    for (size_t i = 5; i < limit; i++) {
        if (s[i] == ',') {
            if (i >= 12 && strncmp(s + i - 7, ";base64", 7) == 0)
                return i + 1;
            return (size_t)-1;
        }
    }
    return (size_t)-1;
}

enum fv_status fv_base64_decode_alloc(const char *text, size_t len, uint8_t **out,
                                      size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t off = fv_base64_data_uri_offset(text, len);
    if (off == (size_t)-1)
        return FV_ERR_UNSUPPORTED;
    size_t cap = fv_base64_decoded_max(len - off);
    uint8_t *bytes = malloc(cap ? cap : 1);
    if (!bytes)
        return FV_ERR_NOMEM;
    /* cap is an upper bound, so TOO_LARGE cannot happen: any failure is the text's. */
    if (fv_base64_decode(text + off, len - off, bytes, cap, out_len) != FV_OK) {
        free(bytes);
        *out_len = 0;
        return FV_ERR_FORMAT;
    }
    *out = bytes;
    return FV_OK;
}

char *fv_base64_encode(const uint8_t *data, size_t size)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (size > (SIZE_MAX - 1) / 4 * 3 - 2)
        return NULL;
    char *out = malloc((size + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < size)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < size)
            v |= data[i + 2];
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = i + 1 < size ? alphabet[v >> 6 & 63] : '=';
        *o++ = i + 2 < size ? alphabet[v & 63] : '=';
    }
    *o = 0;
    return out;
}
