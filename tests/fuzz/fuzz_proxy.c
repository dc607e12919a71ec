/* fuzz_proxy.c - libFuzzer harness for what a request says about its client:
 * X-Forwarded-For and X-Real-IP behind a trusted proxy, a trusted-proxies list,
 * and X-Request-Id, used the way identify() in api/server.c uses them.
 *
 * The input is split at newlines: every piece but the last is an X-Forwarded-For
 * value, the last is X-Real-IP; the whole input is also a proxies list and a
 * request id. Whatever comes out must be an address that formats and parses
 * back to itself, and a request id that is valid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "api/proxy.h"
#include "api/request_id.h"

#define PIECES_MAX 16

/* Formats a and parses the text back: it must be the same address. */
static void round_trip(const struct fv_address *a)
{
    char text[FV_ADDRESS_TEXT_MAX];
    fv_address_format(a, text);
    struct fv_address back;
    if (!fv_address_parse(text, strlen(text), &back) || !fv_address_equal(a, &back))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    size_t len = strlen(text); /* up to the first NUL, as a header value would be */

    struct fv_error err = {0};
    struct fv_proxy_list *trusted = NULL, *parsed = NULL;
    if (fv_proxy_list_parse("127.0.0.1, 10.0.0.0/8, 2001:db8::/32, ::ffff:192.168.0.0/112",
                            &trusted, &err))
        abort();
    if (fv_proxy_list_parse(text, &parsed, &err) == FV_OK) {
        if (fv_proxy_list_count(parsed) > FV_PROXY_LIST_MAX)
            abort();
        struct fv_address probe;
        fv_address_parse("10.1.2.3", 8, &probe);
        (void)fv_proxy_list_contains(parsed, &probe);
    }
    fv_proxy_list_free(parsed);

    const char *pieces[PIECES_MAX];
    int n = 0;
    for (char *p = text; n < PIECES_MAX;) {
        pieces[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = 0;
        p = nl + 1;
    }
    for (int i = 0; i < n; i++) {
        struct fv_address a;
        if (fv_address_parse(pieces[i], strlen(pieces[i]), &a)) {
            if (a.family != AF_INET && a.family != AF_INET6)
                abort();
            round_trip(&a);
        }
    }
    struct fv_address peer, client;
    fv_address_parse("127.0.0.1", 9, &peer);
    int from_header = fv_proxy_client_address(trusted, &peer, pieces, n - 1, pieces[n - 1],
                                              &client);
    if (client.family != AF_INET && client.family != AF_INET6)
        abort();
    if (!from_header && !fv_address_equal(&client, &peer))
        abort();
    round_trip(&client);

    struct fv_request_ids ids;
    fv_request_ids_init(&ids);
    char id[FV_REQUEST_ID_MAX + 1];
    text[len < FV_REQUEST_ID_MAX + 8 ? len : FV_REQUEST_ID_MAX + 8] = 0;
    fv_request_id_take(&ids, text, id);
    if (!fv_request_id_valid(id))
        abort();

    fv_proxy_list_free(trusted);
    free(text);
    return 0;
}
