#!/bin/sh
# cluster-test.sh - two facever replicas behind Debian's nginx, on loopback: how throughput
# scales, what nginx costs, a rolling restart and a crash under load, metrics that add up.
#
#   sh scripts/cluster-test.sh        (normally through `make cluster-test`)
#
# Starts two `facever serve` replicas with one worker each (--trusted-proxies 127.0.0.1,
# --drain-seconds, an --admin-port each) and nginx with deploy/nginx/facever.conf (its
# ports rewritten) plus a one-replica upstream, all in a temporary folder. Then:
#   1. wrk POST /v1/verify (two 250x250 faces) straight to replica A, through nginx to A
#      alone and through nginx to both, alternating, CLUSTER_ROUNDS times: the targets are
#      two replicas >= 1.8x one and nginx costing <= 5% against the direct connection;
#   2. under load through nginx, SIGTERM to A, restart it, then the same for B (a rolling
#      restart): no non-2xx answer and no socket error;
#   3. under load, SIGKILL to B: at most as many failures as B had requests in flight,
#      none after nginx stopped sending it requests, and B serves again once restarted;
#   4. exactly CLUSTER_REQUESTS requests through nginx: the replicas' /metrics counters
#      of /v1/verify grow by that many in all.
# Prints a report and exits 1 when a check of 2-4 fails; the speed targets of 1 are
# reported (machines are noisy: a benchmark prints figures). Without nginx, wrk or curl it prints
# SKIP and exits 0, unless CLUSTER_REQUIRED=1 (CI), when it fails.
#
# Environment: FACEVER (./facever), MAKE_FACES (build/tests/load/make_faces),
# CLUSTER_SECONDS (seconds of each throughput run, 8), CLUSTER_ROUNDS (2),
# CLUSTER_CONNECTIONS (8), CLUSTER_REQUESTS (120), CLUSTER_KEEP (keep the folder).
set -eu

FACEVER=${FACEVER:-./facever}
MAKE_FACES=${MAKE_FACES:-build/tests/load/make_faces}
CLUSTER_SECONDS=${CLUSTER_SECONDS:-8}
CLUSTER_ROUNDS=${CLUSTER_ROUNDS:-2}
CLUSTER_CONNECTIONS=${CLUSTER_CONNECTIONS:-8}
CLUSTER_REQUESTS=${CLUSTER_REQUESTS:-120}
DRAIN_SECONDS=2
NGINX_CONF=deploy/nginx/facever.conf
LUA=tests/load/post_count.lua

say() { echo "cluster-test: $*"; }

nginx_bin=$(command -v nginx || true)
[ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
for need in "nginx:$nginx_bin" "wrk:$(command -v wrk || true)" "curl:$(command -v curl || true)"; do
    if [ -z "${need#*:}" ]; then
        if [ "${CLUSTER_REQUIRED:-0}" = 1 ]; then
            say "FAIL: ${need%%:*} not found (make deps installs it)" >&2
            exit 1
        fi
        say "SKIP: ${need%%:*} not found (Debian: apt-get install nginx-light wrk curl)"
        exit 0
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/facever-cluster.XXXXXX")
pids=""
cleanup() {
    for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
    if [ -f "$work/nginx.pid" ]; then
        "$nginx_bin" -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true
    fi
    if [ -n "${CLUSTER_KEEP:-}" ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports: nothing listening on them now.
used=" $( (ss -Htln 2>/dev/null || true) | awk '{ n = split($4, a, ":"); printf "%s ", a[n] }')"
next_port=$((20000 + ($$ % 20000)))
free_port() { # name: sets the variable to the next port nobody listens on
    next_port=$((next_port + 1))
    while case $used in *" $next_port "*) true ;; *) false ;; esac; do
        next_port=$((next_port + 1))
    done
    eval "$1=$next_port"
}
for name in port_a admin_a port_b admin_b port_lb port_one; do free_port "$name"; done

# The request body: two 250x250 faces cut out of a sample photo.
"$MAKE_FACES" models tests/data/sample1.jpg "$work" >/dev/null
body="$work/verify.json"

# --- replicas ---
start_replica() { # name port admin
    OPENBLAS_NUM_THREADS=1 "$FACEVER" serve --host 127.0.0.1 --port "$2" --admin-port "$3" \
        --threads 1 --trusted-proxies 127.0.0.1 --drain-seconds "$DRAIN_SECONDS" \
        2>>"$work/$1.log" &
    eval "pid_$1=$!"
    pids="$pids $!"
    i=0
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$3/readyz")" = 200 ]; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 "$(eval echo "\$pid_$1")" 2>/dev/null; then
            say "FAIL: replica $1 did not become ready:" >&2
            tail -n 20 "$work/$1.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}
stopped=0
stop_replica() { # name signal; waits for the exit, its status in $stopped
    p=$(eval echo "\$pid_$1")
    kill "-$2" "$p"
    stopped=0
    wait "$p" || stopped=$?
}
start_replica a "$port_a" "$admin_a"
start_replica b "$port_b" "$admin_b"
say "replicas a (127.0.0.1:$port_a, admin $admin_a) and b (127.0.0.1:$port_b, admin $admin_b)," \
    "one worker each"

# --- nginx: deploy/nginx/facever.conf with these ports, plus a one-replica upstream ---
mkdir -p "$work/tmp" "$work/logs"
sed -e "s|listen 8080;|listen 127.0.0.1:$port_lb;|" \
    -e "s|127.0.0.1:8081|127.0.0.1:$port_a|" -e "s|127.0.0.1:8082|127.0.0.1:$port_b|" \
    -e "s|/var/log/nginx/facever.log|$work/logs/access.log|" "$NGINX_CONF" >"$work/facever.conf"
cat >"$work/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log notice;
events { worker_connections 1024; }
http {
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    include $work/facever.conf;
    # test only: the same proxying to replica a alone
    upstream facever_one {
        server 127.0.0.1:$port_a;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$port_one;
        client_max_body_size 32m;
        access_log off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        location / { proxy_pass http://facever_one; }
    }
}
EOF
"$nginx_bin" -p "$work" -c "$work/nginx.conf" -t 2>"$work/nginx-t.log" || {
    cat "$work/nginx-t.log" >&2
    exit 1
}
"$nginx_bin" -p "$work" -c "$work/nginx.conf"
say "$("$nginx_bin" -v 2>&1) on 127.0.0.1:$port_lb (both replicas) and :$port_one (a only)"

failed=0
check() { # condition-text result(0 = pass)
    if [ "$2" = 0 ]; then say "PASS: $1"; else say "FAIL: $1"; failed=1; fi
}
target() { # a speed target: reported, not failed (a benchmark prints figures)
    if [ "$2" = 0 ]; then say "target met: $1"; else say "target NOT met: $1"; fi
}
field() { # name, from a RESULT line on stdin
    sed -n "s/.* $1=\([0-9.]*\).*/\1/p"
}
run_wrk() { # url seconds -> RESULT line
    wrk -t2 -c"$CLUSTER_CONNECTIONS" -d"$2s" --timeout 10s -s "$LUA" "$1/v1/verify" -- "$body" \
        >"$work/wrk.out" 2>&1 || true
    grep '^RESULT' "$work/wrk.out" || echo "RESULT requests_per_s=0 requests=0 non2xx=0 socket_errors=999"
}

# The first requests warm every replica (and their page cache).
for url in "http://127.0.0.1:$port_a" "http://127.0.0.1:$port_b" "http://127.0.0.1:$port_lb"; do
    code=$(curl -s -o "$work/first.json" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "@$body" "$url/v1/verify")
    if [ "$code" != 200 ]; then
        say "FAIL: the first /v1/verify to $url answered $code: $(cut -c 1-200 "$work/first.json")"
        exit 1
    fi
done

# --- 1. throughput: direct, nginx -> a, nginx -> a + b; alternating ---
say "1. throughput: wrk -t2 -c$CLUSTER_CONNECTIONS -d${CLUSTER_SECONDS}s POST /v1/verify," \
    "$CLUSTER_ROUNDS rounds"
: >"$work/rates"
r=1
while [ $r -le "$CLUSTER_ROUNDS" ]; do
    for target in direct:$port_a one:$port_one both:$port_lb; do
        line=$(run_wrk "http://127.0.0.1:${target#*:}" "$CLUSTER_SECONDS")
        rate=$(echo "$line" | field requests_per_s)
        errors=$(( $(echo "$line" | field non2xx) + $(echo "$line" | field socket_errors) ))
        echo "${target%%:*} $rate $errors" >>"$work/rates"
        say "   round $r ${target%%:*}: $rate req/s, $errors errors"
    done
    r=$((r + 1))
done
direct=0 one=0 both=0 errs=0
eval "$(awk '{ sum[$1] += $2; n[$1]++; err += $3 }
    END { printf "direct=%.1f one=%.1f both=%.1f errs=%d\n",
          sum["direct"] / n["direct"], sum["one"] / n["one"], sum["both"] / n["both"], err }' \
    "$work/rates")"
scaling=$(awk -v a="$both" -v b="$one" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
overhead=$(awk -v a="$one" -v b="$direct" 'BEGIN { printf "%.1f", (b > 0 ? 100 * (1 - a / b) : 100) }')
say "   mean: direct $direct req/s, nginx -> a $one, nginx -> a + b $both"
target "two replicas give ${scaling}x one (>= 1.8)" \
    "$(awk -v s="$scaling" 'BEGIN { print (s >= 1.8) ? 0 : 1 }')"
target "nginx costs ${overhead}% against a direct connection (<= 5%)" \
    "$(awk -v o="$overhead" 'BEGIN { print (o <= 5) ? 0 : 1 }')"
check "no errors in the throughput runs ($errs)" "$([ "$errs" = 0 ] && echo 0 || echo 1)"

# --- 2. rolling restart under load ---
roll_seconds=$((4 * DRAIN_SECONDS + 16))
say "2. rolling restart: ${roll_seconds}s of load through nginx; SIGTERM a, restart it," \
    "then b (--drain-seconds $DRAIN_SECONDS)"
run_wrk "http://127.0.0.1:$port_lb" "$roll_seconds" >"$work/roll.result" &
wrk_pid=$!
sleep 3
stop_replica a TERM
status_a=$stopped
start_replica a "$port_a" "$admin_a"
sleep 2
stop_replica b TERM
status_b=$stopped
start_replica b "$port_b" "$admin_b"
wait "$wrk_pid" || true
line=$(cat "$work/roll.result")
say "   ${line#RESULT }"
say "   a exited $status_a, b exited $status_b after SIGTERM; drain logged by a:" \
    "$(grep -c -i 'drain' "$work/a.log" || true) lines"
check "rolling restart: no non-2xx answer, no socket error, replicas exit 0" \
    "$([ "$(echo "$line" | field non2xx)" = 0 ] && [ "$(echo "$line" | field socket_errors)" = 0 ] &&
        [ "$status_a" = 0 ] && [ "$status_b" = 0 ] && echo 0 || echo 1)"

# --- 3. SIGKILL under load ---
say "3. crash: 14s of load through nginx; SIGKILL b after 4s, restart it 4s later"
run_wrk "http://127.0.0.1:$port_lb" 14 >"$work/kill.result" &
wrk_pid=$!
sleep 4
in_flight=$(curl -s "http://127.0.0.1:$admin_b/metrics" |
    sed -n 's/^facever_in_flight_requests \([0-9]*\).*/\1/p')
in_flight=${in_flight:-0}
killed_at=$(date +%s)
stop_replica b KILL
before_b=$(date +%s)
sleep 4
start_replica b "$port_b" "$admin_b"
rejoined_at=$(date +%s)
wait "$wrk_pid" || true
line=$(cat "$work/kill.result")
failures=$(( $(echo "$line" | field non2xx) + $(echo "$line" | field socket_errors) ))
last_failure=$(echo "$line" | field last_failure)
served_b=$(curl -s "http://127.0.0.1:$admin_b/metrics" |
    awk -F' ' '/^facever_requests_total\{route="\/v1\/verify"/ { n += $2 } END { print n + 0 }')
say "   ${line#RESULT }"
say "   b had $in_flight requests in flight when killed; down $((rejoined_at - before_b))s;" \
    "served $served_b verify requests after its restart"
late=0
if [ "${last_failure:-0}" -gt 0 ] && [ "$last_failure" -gt $((killed_at + 1)) ]; then late=1; fi
check "crash: $failures failures <= $in_flight in flight at b, none later than 1 s after the kill" \
    "$([ "$failures" -le "$in_flight" ] && [ "$late" = 0 ] && echo 0 || echo 1)"
check "crash: b serves again after its restart ($served_b requests)" \
    "$([ "$served_b" -gt 0 ] && echo 0 || echo 1)"

# --- 4. metrics add up ---
verify_count() { # admin port: /v1/verify requests answered, all statuses
    curl -s "http://127.0.0.1:$1/metrics" |
        awk '/^facever_requests_total\{route="\/v1\/verify"/ { n += $2 } END { print n + 0 }'
}
idle() { # admin port: no request in flight there
    [ "$(curl -s "http://127.0.0.1:$1/metrics" |
        sed -n 's/^facever_in_flight_requests \([0-9]*\).*/\1/p')" = 0 ]
}
say "4. metrics: $CLUSTER_REQUESTS requests through nginx, 4 at a time"
i=0 # the requests of the last run that were still queued when wrk stopped
until idle "$admin_a" && idle "$admin_b"; do
    i=$((i + 1))
    [ $i -gt 100 ] && break
    sleep 0.1
done
a0=$(verify_count "$admin_a"); b0=$(verify_count "$admin_b")
i=0
while [ $i -lt "$CLUSTER_REQUESTS" ]; do echo $i; i=$((i + 1)); done |
    xargs -P 4 -I{} curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
        --data-binary "@$body" "http://127.0.0.1:$port_lb/v1/verify" >"$work/codes"
ok=$(grep -c '^200$' "$work/codes" || true)
a1=$(verify_count "$admin_a"); b1=$(verify_count "$admin_b")
counted=$((a1 - a0 + b1 - b0))
say "   client: $ok of $CLUSTER_REQUESTS answered 200; a counted $((a1 - a0)), b $((b1 - b0))"
check "metrics: the replicas counted $counted requests, the client sent $CLUSTER_REQUESTS" \
    "$([ "$counted" = "$CLUSTER_REQUESTS" ] && [ "$ok" = "$CLUSTER_REQUESTS" ] && echo 0 || echo 1)"
request_ids=$(grep -c 'rid=' "$work/logs/access.log" || true)
say "   nginx access log: $request_ids lines with a request id; retries logged in error.log:" \
    "$(grep -c 'upstream' "$work/logs/error.log" || true)"

"$nginx_bin" -p "$work" -c "$work/nginx.conf" -s quit
rm -f "$work/nginx.pid"
stop_replica a TERM
stop_replica b TERM
pids=""
if [ "$failed" = 0 ]; then say "all checks passed"; else say "some checks FAILED"; exit 1; fi
