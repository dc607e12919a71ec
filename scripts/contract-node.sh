#!/bin/sh
# contract-node.sh DIR - install the pinned contract checkers (tests/contract/package.json and
# its package-lock.json: an OpenAPI 3 validator and ajv) into DIR/node_modules with `npm ci`,
# once per lockfile; later runs are offline. Exits 0 with a notice, installing nothing, when
# node or npm is missing: the contract tests then skip and say so.
set -eu
dir=${1:-build/contract}
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "contract-node: $tool is not installed (run: make deps); the OpenAPI checks will be skipped" >&2
        exit 0
    fi
done
mkdir -p "$dir"
if [ -f "$dir/.stamp" ] && cmp -s tests/contract/package-lock.json "$dir/package-lock.json"; then
    exit 0
fi
rm -f "$dir/.stamp"
cp tests/contract/package.json tests/contract/package-lock.json "$dir/"
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --silent)
touch "$dir/.stamp"
echo "contract-node: checkers installed in $dir/node_modules"
