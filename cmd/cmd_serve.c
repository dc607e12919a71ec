/* cmd_serve.c - `facever serve`: the HTTP JSON API until SIGTERM or SIGINT. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/auth.h"
#include "api/proxy.h"
#include "api/server.h"
#include "cmd/cli.h"

static const char serve_usage[] =
    "usage: facever serve [--host 127.0.0.1] [--port 8080] [--threads N] [options]\n\n"
    "Runs the HTTP JSON API (POST /v1/verify, /v1/embed, /v1/detect; GET /v1/models,\n"
    "/healthz, /readyz, /metrics, /openapi.json) until SIGTERM or SIGINT. Then it\n"
    "drains: /readyz answers 503 and answers carry Connection: close, while requests\n"
    "are still served for --drain-seconds (a second signal cuts this short); then it\n"
    "stops listening, lets requests in flight finish and exits 0. Each option can\n"
    "also come from the environment variable named after it; flags win.\n\n"
    "server options:\n"
    "  --host ADDR          address to bind (default 127.0.0.1; $FACEVER_HOST)\n"
    "  --port N             port, 0 for any free one (default 8080; $FACEVER_PORT)\n"
    "  --threads N          pipeline workers (default: CPU count; $FACEVER_THREADS)\n"
    "  --io-threads N       HTTP threads (default 2; $FACEVER_IO_THREADS)\n"
    "  --queue N            requests that may wait for a worker before 429 (default 64;\n"
    "                       $FACEVER_QUEUE)\n"
    "  --api-keys FILE      require one of these keys, one per line (# comments;\n"
    "                       $FACEVER_API_KEYS)\n"
    "  --max-body BYTES     request body cap (default 33554432; $FACEVER_MAX_BODY)\n"
    "  --max-batch N        images per embed/detect batch (default 16; $FACEVER_MAX_BATCH)\n"
    "  --max-connections N  open connections (default 256; $FACEVER_MAX_CONNECTIONS)\n"
    "  --timeout S          close idle or stalled connections after S seconds\n"
    "                       (default 30; $FACEVER_TIMEOUT)\n"
    "  --request-timeout S  answer 408 when a body is still arriving after S seconds\n"
    "                       (default 60; $FACEVER_REQUEST_TIMEOUT)\n"
    "  --max-connections-per-ip N  open connections from one address (default 32;\n"
    "                       $FACEVER_MAX_CONNECTIONS_PER_IP); trusted proxies are exempt\n"
    "  --trusted-proxies LIST  comma-separated addresses or networks (10.0.0.0/8, ::1)\n"
    "                       of reverse proxies: exempt from the per-address limit, and\n"
    "                       their X-Forwarded-For / X-Real-IP name the client in the\n"
    "                       log (default none; $FACEVER_TRUSTED_PROXIES)\n"
    "  --admin-port N       a second listener serving only /healthz, /readyz and\n"
    "                       /metrics, outside the public connection limits (default\n"
    "                       none; 0 any free port; $FACEVER_ADMIN_PORT)\n"
    "  --admin-host ADDR    its address (default: --host; $FACEVER_ADMIN_HOST)\n"
    "  --drain-seconds S    after SIGTERM, keep serving this long with /readyz 503\n"
    "                       before the listener stops (default 5, 0 none;\n"
    "                       $FACEVER_DRAIN_SECONDS)\n"
    "  --data-root DIR      folder evaluations may read from ($FACEVER_DATA_ROOT)\n"
    "  --jobs-dir DIR       keep evaluation jobs in DIR, shared by every replica, so any\n"
    "                       replica answers for any job ($FACEVER_JOBS_DIR)\n"
    "  --eval-keep N        finished evaluations kept (default 16; $FACEVER_EVAL_KEEP)\n"
    "  --threshold T        default verification threshold (model's; $FACEVER_THRESHOLD)\n"
    "  --max-pixels N       $FACEVER_MAX_PIXELS; --min-face PX|P% $FACEVER_MIN_FACE;\n"
    "                       --detect-max-side N $FACEVER_DETECT_MAX_SIDE\n"
    "  --policy P           default face policy: largest | center ($FACEVER_POLICY)\n"
    "  --precision P        auto | fp32 | bf16 ($FACEVER_PRECISION)\n\n"
    "pipeline options:\n";

struct serve_options {
    struct fv_server_config server;
    const char *api_keys_path;
    int drain_seconds;
};

/* Consumes a server option: 1 consumed, 0 not one, -1 error (printed). */
static int serve_option(struct serve_options *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long n;
    static const struct {
        const char *name;
        long min, max;
    } ints[] = {
        {"--port", 0, 65535},           {"--threads", 1, 1024},      {"--io-threads", 1, 256},
        {"--queue", 0, 100000},         {"--max-body", 1024, 1L << 40}, {"--max-batch", 1, 1024},
        {"--max-connections", 1, 100000}, {"--timeout", 1, 86400},
        {"--request-timeout", 1, 86400}, {"--max-connections-per-ip", 1, 100000},
        {"--admin-port", 0, 65535},     {"--drain-seconds", 0, 3600},
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        if (strcmp(a, ints[k].name) != 0)
            continue;
        if (fv_cli_parse_int("serve", a, v, ints[k].min, ints[k].max, &n))
            return -1;
        switch (k) {
        case 0: o->server.port = (int)n; break;
        case 1: o->server.threads = (int)n; break;
        case 2: o->server.io_threads = (int)n; break;
        case 3: o->server.queue = (int)n; break;
        case 4: o->server.max_body = (size_t)n; break;
        case 5: o->server.max_batch = (int)n; break;
        case 6: o->server.max_connections = (unsigned)n; break;
        case 7: o->server.timeout_s = (unsigned)n; break;
        case 8: o->server.request_timeout_s = (unsigned)n; break;
        case 9: o->server.max_connections_per_ip = (unsigned)n; break;
        case 10: o->server.admin_port = (int)n; break;
        default: o->drain_seconds = (int)n; break;
        }
        (*i)++;
        return 1;
    }
    if (strcmp(a, "--host") == 0 && v)
        o->server.host = v;
    else if (strcmp(a, "--api-keys") == 0 && v)
        o->api_keys_path = v;
    else if (strcmp(a, "--data-root") == 0 && v)
        o->server.data_root = v;
    else if (strcmp(a, "--jobs-dir") == 0 && v)
        o->server.jobs_dir = v;
    else if (strcmp(a, "--eval-keep") == 0) {
        if (fv_cli_parse_int("serve", a, v, 1, 100000, &n))
            return -1;
        o->server.eval_keep = (int)n;
    } else if (strcmp(a, "--jobs-lease-ms") == 0) { /* not in the help: tests shorten it */
        if (fv_cli_parse_int("serve", a, v, 1000, 86400000, &n))
            return -1;
        o->server.jobs_lease_ms = (int)n;
    } else if (strcmp(a, "--trusted-proxies") == 0 && v)
        o->server.trusted_proxies = v;
    else if (strcmp(a, "--admin-host") == 0 && v)
        o->server.admin_host = v;
    else
        return 0;
    (*i)++;
    return 1;
}

/* Environment variables, applied as if they were flags given before argv's. */
static int apply_environment(struct serve_options *o, struct fv_cli_pipeline *p)
{
    static const char *const vars[][2] = {
        {"FACEVER_HOST", "--host"},           {"FACEVER_PORT", "--port"},
        {"FACEVER_THREADS", "--threads"},     {"FACEVER_IO_THREADS", "--io-threads"},
        {"FACEVER_QUEUE", "--queue"},         {"FACEVER_API_KEYS", "--api-keys"},
        {"FACEVER_MAX_BODY", "--max-body"},   {"FACEVER_MAX_BATCH", "--max-batch"},
        {"FACEVER_MAX_CONNECTIONS", "--max-connections"},
        {"FACEVER_TIMEOUT", "--timeout"},     {"FACEVER_DATA_ROOT", "--data-root"},
        {"FACEVER_REQUEST_TIMEOUT", "--request-timeout"},
        {"FACEVER_MAX_CONNECTIONS_PER_IP", "--max-connections-per-ip"},
        {"FACEVER_THRESHOLD", "--threshold"}, {"FACEVER_MAX_PIXELS", "--max-pixels"},
        {"FACEVER_MIN_FACE", "--min-face"},   {"FACEVER_POLICY", "--policy"},
        {"FACEVER_PRECISION", "--precision"}, {"FACEVER_DETECT_MAX_SIDE", "--detect-max-side"},
        {"FACEVER_JOBS_DIR", "--jobs-dir"},   {"FACEVER_EVAL_KEEP", "--eval-keep"},
        {"FACEVER_JOBS_LEASE_MS", "--jobs-lease-ms"},
        {"FACEVER_TRUSTED_PROXIES", "--trusted-proxies"},
        {"FACEVER_ADMIN_PORT", "--admin-port"}, {"FACEVER_ADMIN_HOST", "--admin-host"},
        {"FACEVER_DRAIN_SECONDS", "--drain-seconds"},
    };
    for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++) {
        char *value = getenv(vars[k][0]);
        if (!value || !*value)
            continue;
        char *args[2] = {(char *)vars[k][1], value};
        int i = 0;
        int r = serve_option(o, 2, args, &i);
        if (r == 0)
            r = fv_cli_pipeline_option("serve", p, 2, args, &i);
        if (r <= 0) {
            fprintf(stderr, "facever serve: bad value in $%s\n", vars[k][0]);
            return -1;
        }
    }
    return 0;
}

static const char *signal_name(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : "SIGINT";
}

static void print_listener(const char *what, const char *host, int port, const char *tail)
{
    int v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "facever: %s http://%s%s%s:%d%s\n", what, v6 ? "[" : "", host, v6 ? "]" : "",
            port, tail);
}

/* After the first stop signal: readiness turns 503 at once and requests are
 * still served for `seconds`, so that a balancer notices and sends new ones
 * elsewhere before the listener closes; a second signal ends the wait. */
static void drain(struct fv_server *server, const sigset_t *stop, int sig, int seconds)
{
    if (seconds <= 0) {
        fprintf(stderr, "facever: %s received, finishing requests in flight\n",
                signal_name(sig));
        return;
    }
    fv_server_drain(server);
    fprintf(stderr,
            "facever: %s received, draining for %d s: /readyz answers 503, requests are "
            "still served\n",
            signal_name(sig), seconds);
    struct timespec deadline, now;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += seconds;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        double left = (double)(deadline.tv_sec - now.tv_sec) +
                      (double)(deadline.tv_nsec - now.tv_nsec) / 1e9;
        if (left <= 0) {
            fprintf(stderr, "facever: drain over after %d s\n", seconds);
            return;
        }
        struct timespec wait = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        int got = sigtimedwait(stop, NULL, &wait);
        if (got == SIGTERM || got == SIGINT) {
            fprintf(stderr, "facever: %s received again, ending the drain early\n",
                    signal_name(got));
            return;
        }
        /* EAGAIN: the time is up (checked above); EINTR: wait again */
    }
}

static long cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : n;
}

int fv_cmd_serve(int argc, char **argv)
{
    struct serve_options o;
    struct fv_cli_pipeline p;
    fv_server_default_config(&o.server);
    o.server.threads = (int)cpu_count();
    o.api_keys_path = NULL;
    o.drain_seconds = 5;
    fv_cli_pipeline_defaults(&p);
    if (apply_environment(&o, &p))
        return 2;
    for (int i = 1; i < argc; i++) {
        if (fv_cli_is_help(argv[i])) {
            printf("%s%s", serve_usage, fv_cli_pipeline_help);
            return 0;
        }
        int r = serve_option(&o, argc, argv, &i);
        if (r == 0)
            r = fv_cli_pipeline_option("serve", &p, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r == 0) {
            fprintf(stderr, "facever serve: unknown or incomplete option '%s'\n%s", argv[i],
                    serve_usage);
            return 2;
        }
    }
    if (o.server.admin_host && o.server.admin_port < 0) {
        fprintf(stderr, "facever serve: --admin-host needs --admin-port\n");
        return 2;
    }
    if (p.policy == FV_FACE_ALL) {
        fprintf(stderr, "facever serve: the default policy must be largest or center\n");
        return 2;
    }
    o.server.policy = p.policy;
    o.server.threshold = p.threshold;

    struct fv_error err = {0};
    struct fv_api_keys *keys = NULL;
    struct fv_pipeline *pipe = NULL;
    struct fv_server *server = NULL;
    int rc = 2;
    /* Checked again by the server; here so that a typo fails before the models load. */
    struct fv_proxy_list *trusted = NULL;
    if (fv_proxy_list_parse(o.server.trusted_proxies, &trusted, &err)) {
        fv_error_prefix(&err, "--trusted-proxies: ");
        goto done;
    }
    fv_proxy_list_free(trusted);
    if (o.api_keys_path && fv_api_keys_load(o.api_keys_path, &keys, &err))
        goto done;
    if (fv_cli_pipeline_open(&p, &pipe, &err))
        goto done;
    o.server.pipeline = pipe;
    o.server.api_keys = keys;

    /* Block the stop signals in every thread (the server's inherit this mask)
     * and wait for them here, so no handler runs in an arbitrary thread. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (fv_server_start(&o.server, &server, &err))
        goto done;
    print_listener("listening on", o.server.host, fv_server_port(server), "");
    if (fv_server_admin_port(server) >= 0)
        print_listener("admin endpoints on",
                       o.server.admin_host ? o.server.admin_host : o.server.host,
                       fv_server_admin_port(server), " (/healthz, /readyz, /metrics)");
    fprintf(stderr, "facever: %d workers, model %s (dim %d, %s, cpu %s, threshold %.4f)%s\n",
            o.server.threads, fv_pipeline_model_meta(pipe)->name, fv_pipeline_dim(pipe),
            fv_precision_name(fv_pipeline_precision(pipe)),
            fv_cpu_level_name(fv_pipeline_cpu_level(pipe)),
            isnan(o.server.threshold) ? fv_pipeline_threshold(pipe) : o.server.threshold,
            keys ? ", API keys required" : "");
    if (o.server.trusted_proxies && *o.server.trusted_proxies)
        fprintf(stderr, "facever: trusted proxies %s\n", o.server.trusted_proxies);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    drain(server, &stop, sig, o.drain_seconds);
    fprintf(stderr, "facever: closing the listener, finishing %ld requests in flight\n",
            fv_server_in_flight(server));
    fv_server_stop(server);
    fprintf(stderr, "facever: stopped\n");
    rc = 0;
done:
    if (rc)
        fv_cli_fail("serve", &err);
    fv_pipeline_free(pipe);
    fv_api_keys_free(keys);
    return rc;
}
