#!/bin/sh
# browser-node.sh DIR - install the pinned browser driver (tests/browser/package.json and its
# package-lock.json: puppeteer-core, which drives an installed chromium and downloads none)
# into DIR/node_modules with `npm ci`, once per lockfile; later runs are offline. Exits 0 with
# a notice, installing nothing, when node or npm is missing (make browser-test then skips).
set -eu
dir=${1:-build/browser}
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "browser-node: $tool is not installed (run: make deps); the browser test will be skipped" >&2
        exit 0
    fi
done
mkdir -p "$dir"
if [ -f "$dir/.stamp" ] && cmp -s tests/browser/package-lock.json "$dir/package-lock.json"; then
    exit 0
fi
rm -f "$dir/.stamp"
cp tests/browser/package.json tests/browser/package-lock.json "$dir/"
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --silent)
touch "$dir/.stamp"
echo "browser-node: puppeteer-core installed in $dir/node_modules"
