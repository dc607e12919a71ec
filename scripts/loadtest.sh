#!/bin/sh
# loadtest.sh - bounded load on `facever serve`: POST /v1/verify with two 250x250 faces,
# or with two 12 MP phone photos.
#
#   sh scripts/loadtest.sh            (normally through `make loadtest`)
#
# Environment: FACEVER (./facever), MAKE_FACES (build/tests/load/make_faces),
# LOAD_IMAGES (faces: two faces cut out of tests/data/sample1.jpg; phone:
# tests/data/phone/sample1-4032x3024-o6.jpg and sample2-4032.jpg, made by
# scripts/phone-photos.sh), LOAD_SECONDS (30), LOAD_CONNECTIONS (8),
# LOAD_THREADS (wrk threads, 2),
# LOAD_SERVE_ARGS (extra `facever serve` flags), LOAD_SAMPLE_S (RSS sampling
# period, 5), LOAD_KEEP (set: keep the work folder with the server log).
#
# Prints wrk's latency distribution, then requests/s, p50 and p99 latency and the
# error count (non-2xx answers, counted in the Lua response hook, plus socket
# errors), and the server's VmRSS sampled during the run. Exits non-zero when the
# server fails to start, a request fails, or the server does not stop cleanly.
set -eu

FACEVER=${FACEVER:-./facever}
MAKE_FACES=${MAKE_FACES:-build/tests/load/make_faces}
LOAD_SECONDS=${LOAD_SECONDS:-30}
LOAD_CONNECTIONS=${LOAD_CONNECTIONS:-8}
LOAD_THREADS=${LOAD_THREADS:-2}
LOAD_SERVE_ARGS=${LOAD_SERVE_ARGS:-}
LOAD_SAMPLE_S=${LOAD_SAMPLE_S:-5}
LOAD_IMAGES=${LOAD_IMAGES:-faces}
PHONE_PHOTOS="tests/data/phone/sample1-4032x3024-o6.jpg tests/data/phone/sample2-4032.jpg"

if ! command -v wrk >/dev/null 2>&1; then
    echo "loadtest: wrk not found; install it with: sudo apt-get install -y wrk" >&2
    exit 2
fi
case $LOAD_SECONDS in '' | *[!0-9]*) echo "loadtest: LOAD_SECONDS must be a number" >&2; exit 2 ;; esac
case $LOAD_IMAGES in
faces) ;;
phone)
    for photo in $PHONE_PHOTOS; do
        if [ ! -f "$photo" ]; then
            echo "loadtest: $photo missing; make tests/data/phone/.stamp makes it" >&2
            exit 2
        fi
    done
    ;;
*) echo "loadtest: LOAD_IMAGES must be faces or phone, not $LOAD_IMAGES" >&2; exit 2 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/facever-load.XXXXXX")
server_pid=
sampler_pid=
cleanup() {
    [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    if [ -n "${LOAD_KEEP:-}" ]; then
        echo "loadtest: kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$LOAD_IMAGES" = phone ]; then
    # {"image1": base64, "image2": base64}, streamed: each photo is over a megabyte
    # shellcheck disable=SC2086 # a list of two paths without spaces
    set -- $PHONE_PHOTOS
    {
        printf '{"image1":"'
        base64 -w 0 "$1"
        printf '","image2":"'
        base64 -w 0 "$2"
        printf '"}'
    } >"$work/verify.json"
    echo "loadtest: /v1/verify body of $(wc -c <"$work/verify.json") bytes: $1 and $2"
else
    "$MAKE_FACES" models tests/data/sample1.jpg "$work"
fi

# shellcheck disable=SC2086 # LOAD_SERVE_ARGS is a list of flags
"$FACEVER" serve --port 0 $LOAD_SERVE_ARGS 2>"$work/server.log" &
server_pid=$!
port=
i=0
while [ $i -lt 600 ]; do
    port=$(sed -n 's|.*listening on http://.*:\([0-9][0-9]*\)$|\1|p' "$work/server.log" | head -n 1)
    [ -n "$port" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "loadtest: facever serve exited before listening:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$port" ]; then
    echo "loadtest: no 'listening on' line from facever serve within 60 s" >&2
    exit 1
fi
url="http://127.0.0.1:$port"
grep -m 1 "workers" "$work/server.log" || true

# One request first: it must succeed, and it warms the caches.
code=$(curl -s -o "$work/first.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "@$work/verify.json" "$url/v1/verify")
if [ "$code" != 200 ]; then
    echo "loadtest: the first /v1/verify answered $code:" >&2
    cat "$work/first.json" >&2
    exit 1
fi
echo "loadtest: first /v1/verify: $(cut -c 1-160 "$work/first.json")..."


rss_kib() {
    sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$server_pid/status" 2>/dev/null
}

# RSS every LOAD_SAMPLE_S seconds while wrk runs, one "seconds kib" line each.
(
    t=0
    while kill -0 "$server_pid" 2>/dev/null; do
        echo "$t $(rss_kib)" >>"$work/rss.txt"
        sleep "$LOAD_SAMPLE_S"
        t=$((t + LOAD_SAMPLE_S))
    done
) &
sampler_pid=$!

echo "loadtest: wrk -t$LOAD_THREADS -c$LOAD_CONNECTIONS -d${LOAD_SECONDS}s POST $url/v1/verify"
wrk -t"$LOAD_THREADS" -c"$LOAD_CONNECTIONS" -d"${LOAD_SECONDS}s" --timeout 10s --latency \
    -s tests/load/post_count.lua "$url/v1/verify" -- "$work/verify.json" | tee "$work/wrk.txt"
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=
echo "$LOAD_SECONDS $(rss_kib)" >>"$work/rss.txt"

echo "loadtest: server VmRSS (seconds into the run: MiB)"
awk '{ printf "  %4ds %8.1f\n", $1, $2 / 1024 }' "$work/rss.txt"
# Flat: the last sample within 10% (or 16 MiB) of the first one taken under load.
awk 'NR == 2 { base = $2 } { last = $2; if ($2 > max) max = $2 }
     END {
         if (!base) base = last
         grow = last - base
         printf "loadtest: RSS under load %.1f -> %.1f MiB (max %.1f, %+.1f MiB, %+.1f%%): %s\n",
             base / 1024, last / 1024, max / 1024, grow / 1024, 100 * grow / base,
             (grow <= 16384 || grow <= base / 10) ? "flat" : "GROWING"
     }' "$work/rss.txt"

summary=$(grep '^RESULT' "$work/wrk.txt" || true)
echo "loadtest: $LOAD_CONNECTIONS connections, $LOAD_SECONDS s: ${summary#RESULT }"

kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=
echo "loadtest: server stopped with SIGTERM, exit status $status"
tail -n 2 "$work/server.log"

case $summary in
*" non2xx=0 socket_errors=0 "*) ;;
*) echo "loadtest: there were errors" >&2; exit 1 ;;
esac
[ "$status" = 0 ] || exit 1
