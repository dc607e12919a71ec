#!/bin/sh
# test-data.sh - fetch the six MIT-licensed demo photos of npm @vladmandic/face-api@1.7.15
# (integrity-checked) into tests/data/ for the pipeline and server tests, and MNIST for the
# training tests.
set -eu
tgz=$(sh scripts/npm-fetch.sh @vladmandic/face-api@1.7.15 \
    'sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw==' \
    tests/data/download)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$tgz" -C "$tmp" package/demo/sample1.jpg package/demo/sample2.jpg \
    package/demo/sample3.jpg package/demo/sample4.jpg package/demo/sample5.jpg package/demo/sample6.jpg
cp "$tmp"/package/demo/sample*.jpg tests/data/
sh scripts/mnist-data.sh
touch tests/data/.stamp
echo "test-data: six sample photos in tests/data/"
