#!/bin/sh
# npm-pinned.sh SRC DIR NAME - install the pinned npm packages of SRC (SRC/package.json and its
# package-lock.json) into DIR/node_modules with `npm ci`, once per lockfile; later runs are
# offline. NAME says what they are for in the messages. Exits 0 with a notice, installing
# nothing, when node or npm is missing: what needs them then skips and says so.
# Used for tests/contract (the OpenAPI checkers) and tests/browser (puppeteer-core, which
# drives an installed chromium and downloads none).
set -eu
src=$1
dir=$2
name=$3
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$name: $tool is not installed (run: make deps); its checks will be skipped" >&2
        exit 0
    fi
done
mkdir -p "$dir"
if [ -f "$dir/.stamp" ] && cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
    exit 0
fi
rm -f "$dir/.stamp"
cp "$src/package.json" "$src/package-lock.json" "$dir/"
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --silent)
touch "$dir/.stamp"
echo "$name: packages installed in $dir/node_modules"
