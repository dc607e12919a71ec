/* page.c - GET /, /app.js and /app.css: the page in api/page/, embedded at build time. */
#include <string.h>

#include "api/routes.h"

/* The page loads only its own script and style, talks only to this server,
 * shows photos from data: and blob: URLs, and cannot be framed. */
static const char *const page_headers[] = {
    "Content-Security-Policy",
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options", "nosniff",
    "Referrer-Policy", "no-referrer",
    /* The files change with the binary: a browser asks again each time. */
    "Cache-Control", "no-cache",
    NULL,
};

struct asset {
    const char *path;
    const char *content_type;
    const unsigned char *data;
    const unsigned long *size;
};

static const struct asset assets[] = {
    {"/", "text/html; charset=utf-8", fv_page_index_html, &fv_page_index_html_size},
    {"/app.js", "text/javascript; charset=utf-8", fv_page_app_js, &fv_page_app_js_size},
    {"/app.css", "text/css; charset=utf-8", fv_page_app_css, &fv_page_app_css_size},
};

void fv_handle_page(const struct fv_handler_env *env, const struct fv_request *req,
                    struct fv_reply *r)
{
    (void)env;
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
        if (strcmp(req->path, assets[i].path) != 0)
            continue;
        if (fv_reply_text(r, 200, assets[i].content_type, (const char *)assets[i].data,
                          *assets[i].size) == 200)
            r->headers = page_headers;
        return;
    }
    /* Only the paths above are routed here. */
    fv_reply_error(r, 500, FV_API_CODE_INTERNAL, NULL, "no page asset for %s", req->path);
}
