#!/bin/sh
# make_seeds.sh - regenerates tests/fuzz/corpus/ (committed) from make_seeds.c and
# make_tflite_seed.py. Needs `make fuzz` first (it links build-fuzz/libfacever.a).
set -eu
cd "$(dirname "$0")/../.."
out=tests/fuzz/corpus
clang -O1 -g -std=c11 -D_GNU_SOURCE -I. -fsanitize=address,undefined -o build-fuzz/make_seeds \
    tests/fuzz/make_seeds.c build-fuzz/libfacever.a \
    -lmicrohttpd -lcjson -ljpeg -lpng -lheif -lwebp -lwebpdemux -llapacke -lopenblas -lz -lm \
    -pthread
rm -rf "$out"
mkdir -p "$out/tflite"
./build-fuzz/make_seeds "$out"
python3 tests/fuzz/make_tflite_seed.py "$out/tflite/tiny-model"
size=$(wc -c < "$out/tflite/tiny-model")
head -c $((size / 2)) "$out/tflite/tiny-model" > "$out/tflite/tiny-model-half"
head -c $((size - 1)) "$out/tflite/tiny-model" > "$out/tflite/tiny-model-minus1"
printf 'TFL3' > "$out/tflite/identifier-only"
echo "seeds: $(find "$out" -type f | wc -l) files, $(du -sb "$out" | cut -f1) bytes"
