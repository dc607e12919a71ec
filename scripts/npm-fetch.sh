#!/bin/sh
# npm-fetch.sh PACKAGE@VERSION INTEGRITY DEST_DIR
# Downloads an npm package tarball into DEST_DIR with `npm pack` (once), checks it
# against its published sha512 integrity, and prints the tarball's path.
set -eu
spec=$1
want=$2
dest=$3
mkdir -p "$dest"
name=$(printf '%s' "$spec" | sed -e 's/^@//' -e 's,/,-,' -e 's/@/-/')
tgz="$dest/$name.tgz"

integrity() {
    printf 'sha512-%s' "$(openssl dgst -sha512 -binary "$1" | base64 | tr -d '\n')"
}

if [ ! -f "$tgz" ] || [ "$(integrity "$tgz")" != "$want" ]; then
    command -v npm >/dev/null 2>&1 || { echo "npm-fetch: npm is not installed (run: make deps)" >&2; exit 1; }
    rm -f "$tgz"
    (cd "$dest" && npm pack "$spec" --silent >/dev/null)
    [ -f "$tgz" ] || { echo "npm-fetch: npm pack $spec did not produce $tgz" >&2; exit 1; }
fi
got=$(integrity "$tgz")
if [ "$got" != "$want" ]; then
    echo "npm-fetch: $tgz: integrity mismatch" >&2
    echo "  expected $want" >&2
    echo "  got      $got" >&2
    rm -f "$tgz"
    exit 1
fi
printf '%s\n' "$tgz"
