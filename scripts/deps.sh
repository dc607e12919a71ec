#!/bin/sh
# deps.sh - install the Debian packages facever needs to build, test and fetch models
# (and clang with its libFuzzer runtime for `make fuzz`, wrk for `make loadtest`; the
# image tests and fuzz seeds encode HEIF/AVIF, WebP and JPEG files with heif-enc
# (libheif-examples), cwebp and img2webp (webp) and cjpeg (libjpeg-turbo-progs); `make
# slurm-test` starts a single-node Slurm of its own with slurmctld, slurmd, slurm-client and
# munge; `make cluster-test` puts nginx-light in front of two replicas and reads ports with
# ss from iproute2; xxd embeds api/openapi.json and the page in the build; `make
# browser-test` drives chromium).
# Idempotent: installs only what is missing. Prints the apt-get command when not root.
set -eu
packages="gcc make pkg-config libjpeg62-turbo-dev libpng-dev libheif-dev libwebp-dev
libopenblas-dev liblapacke-dev libmicrohttpd-dev libcjson-dev libcriterion-dev
libcurl4-openssl-dev curl openssl nodejs npm clang libclang-rt-14-dev wrk
libheif-examples webp libjpeg-turbo-progs slurmctld slurmd slurm-client munge
nginx-light iproute2 xxd chromium"
missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        case "$p" in
            nodejs|npm) command -v "${p%js}" >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && continue ;;
        esac
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "deps: all packages present"
    exit 0
fi
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing:$missing" >&2
    echo "deps: run as root: $cmd" >&2
    exit 1
fi
echo "deps: installing:$missing"
sh -c "$cmd"
