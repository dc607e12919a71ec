#!/bin/sh
# test-arm64.sh - cross-build the model library and its tests for aarch64 and run them
# under qemu-user (`make test-arm64`, see mk/arm64.mk). Run from the repository root.
#
# As root, installs what is missing (idempotent, like deps.sh): the cross compiler,
# qemu-user and, through dpkg multiarch, the arm64 OpenBLAS and cJSON. Criterion cannot
# be installed for arm64 beside the amd64 one `make test` needs (its libnanomsg5 is not
# Multi-Arch: same, so apt would remove the amd64 Criterion), so its arm64 packages are
# fetched with `apt-get download` and unpacked into $build/sysroot, which only this
# build reads. Prints "SKIPPED" and exits 0 only when packages cannot be had; a build
# error, a failing test or a run past ARM64_TIMEOUT seconds fails.
set -eu
build=${ARM64_BUILD:-build-arm64}
cc=${ARM64_CC:-aarch64-linux-gnu-gcc}
limit=${ARM64_TIMEOUT:-600}
make=${MAKE:-make}

host_packages="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
# libgit2-1.5 and libffi8: what the arm64 libcriterion3 needs that does install beside
# the amd64 packages (Debian 12 names).
arm64_packages="libc6:arm64 libopenblas-dev:arm64 libcjson-dev:arm64 libgit2-1.5:arm64 libffi8:arm64"
private_packages="libcriterion-dev:arm64 libcriterion3:arm64 libnanomsg5:arm64"

skip() {
    echo "test-arm64: SKIPPED: $*"
    exit 0
}

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

find_qemu() {
    command -v qemu-aarch64 2>/dev/null || command -v qemu-aarch64-static 2>/dev/null || true
}

# ---------------------------------------------------------------- packages
command -v dpkg-query >/dev/null 2>&1 || skip "not a Debian system (no dpkg)"
missing=""
for p in $host_packages $arm64_packages; do
    case "$p" in
        qemu-user) [ -n "$(find_qemu)" ] && continue ;;
    esac
    installed "$p" || missing="$missing $p"
done
updated=""
if [ -n "$missing" ]; then
    add_arch=""
    dpkg --print-foreign-architectures | grep -qx arm64 || add_arch="dpkg --add-architecture arm64 && "
    cmd="${add_arch}apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing"
    [ "$(id -u)" -eq 0 ] || skip "missing:$missing; not root, so not installed (as root: $cmd)"
    # Undo a new architecture that came to nothing: an apt source without arm64 would
    # otherwise break every later `apt-get update`.
    fail() {
        if [ -n "$add_arch" ] && ! dpkg-query -W -f='${Architecture}\n' | grep -qx arm64; then
            echo "test-arm64: dpkg --remove-architecture arm64"
            dpkg --remove-architecture arm64 || true
            apt-get update -qq >/dev/null 2>&1 || true
        fi
        skip "$1"
    }
    if [ -n "$add_arch" ]; then
        echo "test-arm64: dpkg --add-architecture arm64"
        dpkg --add-architecture arm64
    fi
    echo "test-arm64: apt-get update"
    apt-get update -qq || fail "apt-get update failed (do the apt sources carry arm64?)"
    updated=1
    # The arm64 packages must install beside the amd64 ones (Multi-Arch: same, at the
    # same version; apt may upgrade amd64 libraries to match). Refuse any removal.
    sim=$(DEBIAN_FRONTEND=noninteractive apt-get install -s -y --no-install-recommends $missing 2>&1) ||
        fail "apt-get cannot install:$missing: $(printf '%s\n' "$sim" | grep '^E:' | head -n 3)"
    removals=$(printf '%s\n' "$sim" | sed -n 's/^Remv \([^ ]*\).*/\1/p' | tr '\n' ' ')
    [ -z "$removals" ] || fail "installing$missing would remove: $removals"
    echo "test-arm64: installing:$missing"
    printf '%s\n' "$sim" | sed -n 's/^Inst \([^ ]*\) \[\([^]]*\)\] (\([^ ]*\).*/test-arm64:   (upgrading \1 \2 -> \3)/p'
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing ||
        fail "apt-get install$missing failed"
fi

# Criterion for arm64, unpacked (not installed) into $build/sysroot; the .debs stay in
# $build/debs, so later runs need no network.
sysroot=$build/sysroot
mkdir -p "$build"
echo '*' > "$build/.gitignore"
if [ ! -f "$sysroot/.stamp" ]; then
    mkdir -p "$build/debs"
    need=""
    for p in $private_packages; do
        ls "$build/debs/${p%:arm64}_"*_arm64.deb >/dev/null 2>&1 || need="$need $p"
    done
    if [ -n "$need" ]; then
        echo "test-arm64: apt-get download$need (into $build/debs)"
        if [ "$(id -u)" -eq 0 ] && [ -z "$updated" ]; then
            apt-get update -qq || skip "apt-get update failed"
        fi
        # As root, apt warns that it fetches unsandboxed (its _apt user cannot write here).
        (cd "$build/debs" && apt-get download -q $need) ||
            skip "apt-get download$need failed (is arm64 a dpkg architecture?)"
        for p in $need; do
            ls "$build/debs/${p%:arm64}_"*_arm64.deb >/dev/null 2>&1 || skip "apt-get download $p failed"
        done
    fi
    rm -rf "$sysroot"
    for deb in "$build"/debs/*_arm64.deb; do
        dpkg-deb -x "$deb" "$sysroot"
    done
    touch "$sysroot/.stamp"
fi

qemu=$(find_qemu)
[ -n "$qemu" ] || skip "no qemu-aarch64 after installing qemu-user"
command -v "$cc" >/dev/null 2>&1 || skip "no $cc after installing gcc-aarch64-linux-gnu"

# ---------------------------------------------------------------- build
libdir=$(cd "$sysroot/usr/lib/aarch64-linux-gnu" && pwd)
echo "test-arm64: $cc ($($cc -dumpmachine), gcc $($cc -dumpfullversion))"
# The Makefile's own rules, so the kernel objects are those it picks for this compiler.
$make BUILD="$build" CC="$cc" \
    MODEL_TEST_CFLAGS="-isystem $sysroot/usr/include" \
    MODEL_TEST_LDFLAGS="-L$libdir -Wl,-rpath-link,$libdir" \
    "$build/libmodel.a" "$build/tests/model-unit"
echo "test-arm64: $build/libmodel.a holds: $(ar t "$build/libmodel.a" | tr '\n' ' ')"

# ---------------------------------------------------------------- run
# The reference tests would skip, not fail, without the imported models.
for f in models/mobilefacenet.fvm models/pnet.fvm models/rnet.fvm models/onet.fvm \
         models/tflite/MobileFaceNet.tflite tests/fixtures/tflite-reference-outputs.json; do
    [ -r "$f" ] || { echo "test-arm64: $f is missing: run \`make models\`" >&2; exit 2; }
done
# The loader and libc are the multiarch arm64 ones (-L /), the glibc build that OpenBLAS,
# cJSON and Criterion were made for; the cross toolchain's loader (-L
# /usr/aarch64-linux-gnu, an older build of glibc 2.36) with that libc.so.6 hangs before
# the first test. Criterion comes from the sysroot above. One BLAS thread: emulated
# threads would only compete for the same cores.
export QEMU_LD_PREFIX=/ OPENBLAS_NUM_THREADS=1
export QEMU_SET_ENV="LD_LIBRARY_PATH=$libdir"
binary=$build/tests/model-unit
# Criterion starts every test in a new process by executing the test binary again, and
# the kernel runs an aarch64 executable only through a binfmt_misc handler. Without one
# registered, one is registered for these runs alone, in a new user namespace (Linux
# 6.7 and later give each user namespace its own binfmt_misc).
aarch64_magic=7f454c460201010000000000000000000200b700
handler=""
for f in /proc/sys/fs/binfmt_misc/*; do
    [ -f "$f" ] && grep -qx enabled "$f" 2>/dev/null && grep -q "^magic $aarch64_magic" "$f" && handler=$f
done
if [ -n "$handler" ]; then
    echo "test-arm64: aarch64 executables run through $handler"
elif unshare --user --map-root-user --mount \
        sh -c 'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc' 2>/dev/null; then
    echo "test-arm64: aarch64 executables run through a binfmt_misc handler in a private user namespace"
else
    echo "test-arm64: cannot run the aarch64 processes Criterion starts: no binfmt_misc handler" \
         "for aarch64, and no private one (needs Linux >= 6.7 with user namespaces; or" \
         "install qemu-user-binfmt on the host)" >&2
    exit 2
fi
# The kernel reads the \x escapes itself. F: the interpreter is opened at registration.
register=':fv-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
register="$register:"'\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
register="$register:$qemu:F"

# run_unit WHAT [CRITERION ARGS...]: the test binary under qemu, within $limit seconds.
run_unit() {
    what=$1
    shift
    echo "test-arm64: running ($what): OPENBLAS_NUM_THREADS=1${FV_CPU:+ FV_CPU=$FV_CPU}" \
         "QEMU_SET_ENV=$QEMU_SET_ENV $qemu -L / $binary --jobs 1 $* (limit ${limit}s)"
    start=$(date +%s)
    status=0
    if [ -n "$handler" ]; then
        timeout -k 10 "$limit" "$qemu" -L / "$binary" --jobs 1 "$@" || status=$?
    else
        timeout -k 10 "$limit" unshare --user --map-root-user --mount sh -c \
            'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc &&
             printf "%s" "$1" > /proc/sys/fs/binfmt_misc/register && shift && exec "$@"' \
            sh "$register" "$qemu" -L / "$binary" --jobs 1 "$@" || status=$?
    fi
    elapsed=$(($(date +%s) - start))
    case $status in
        0) echo "test-arm64: $what: PASSED under $qemu in ${elapsed}s" ;;
        124 | 137) echo "test-arm64: $what: FAILED: timed out or killed after ${elapsed}s (ARM64_TIMEOUT=$limit)" >&2 ;;
        *) echo "test-arm64: $what: FAILED (exit $status) under $qemu after ${elapsed}s" >&2 ;;
    esac
    [ "$status" -eq 0 ] || exit "$status"
}

run_unit "all tests, best CPU level"
# As `make test` does: the network tests again at each lower level (the kernel and
# reference tests go through every level themselves).
if [ -n "${ARM64_LEVEL_TESTS:-}" ]; then
    for level in ${ARM64_LOWER_LEVELS:-generic}; do
        FV_CPU=$level
        export FV_CPU
        run_unit "FV_CPU=$level" --filter "$ARM64_LEVEL_TESTS"
    done
fi
echo "test-arm64: PASSED"
