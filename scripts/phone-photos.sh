#!/bin/sh
# phone-photos.sh - phone-size test photos made from tests/data/sample1..6.jpg into
# tests/data/phone/ (never committed; normally through `make tests/data/phone/.stamp`).
#
#   PHOTO_TOOL=build/tests/tools/photo_tool sh scripts/phone-photos.sh
#
# Every photo is a sample resized by facever's own resampler and centred on a
# mid-grey 4:3 canvas (tests/tools/photo_tool.c), as a phone would frame it:
#   sample1-4032x3024-o6.jpg          sample1 x2.1 (4032x2688) on 4032x3024, stored as
#                                     3024x4032 with EXIF orientation 6, quality 92
#   sample1-4032x3024.{png,heic,webp,avif}  the same upright photo (AVIF only where
#                                     heif-enc can write it)
#   sample1-7296x5472-progressive.jpg sample1 x3.8 on 7296x5472 (39.9 MP), progressive
#   sampleN-4032.jpg                  each sample x2.1 on the smallest 4:3 canvas that
#                                     holds it (4032x3024; samples 4 and 6 are taller:
#                                     4056x3042 and 4304x3228), orientation 1, no EXIF
#   orient/sample1-oK.jpg             sample1 x1.05 (2016x1344) stored so that EXIF
#                                     orientation K (1..8) turns it upright
#   geometry.txt                      per photo: NAME SOURCE SCALE X Y, meaning the
#                                     upright photo's point (SCALE * u + X, SCALE * v + Y)
#                                     is the sample's point (u, v)
# Rebuilds the folder from scratch each time, so running it twice gives the same
# files; the stamp is written last. Needs heif-enc (libheif-examples), cwebp
# (webp) and cjpeg (libjpeg-turbo-progs): `make deps`.
set -eu

PHOTO_TOOL=${PHOTO_TOOL:-build/tests/tools/photo_tool}
data=tests/data
out=$data/phone

for tool in "$PHOTO_TOOL" heif-enc cwebp cjpeg; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "phone-photos: $tool not found (make deps installs heif-enc, cwebp and cjpeg;" \
            "make $PHOTO_TOOL builds the tool)" >&2
        exit 1
    fi
done

start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/facever-phone.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out/orient"
geometry=$tmp/geometry.txt
cat >"$geometry" <<'EOF'
# NAME SOURCE SCALE X Y: the upright photo's point (SCALE * u + X, SCALE * v + Y) is the
# point (u, v) of tests/data/SOURCE (exact to half a pixel where SCALE times a side of
# the source is not a whole number: the resized side is rounded).
EOF

# photo NAME SOURCE SCALE FILE [photo_tool options]: runs photo_tool on tests/data/SOURCE,
# writing FILE, and records NAME's geometry; sets $canvas to the upright WIDTHxHEIGHT.
photo() {
    name=$1 source=$2 scale=$3 file=$4
    shift 4
    line=$("$PHOTO_TOOL" "$@" "$data/$source" "$scale" "$file")
    # shellcheck disable=SC2086 # the tool's line is four words
    set -- $line
    echo "$name $source $1 $2 $3" >>"$geometry"
    canvas=$4
}

# again NAME AS: NAME shows the same upright photo as AS (already in geometry.txt).
again() {
    line=$(awk -v name="$1" -v as="$2" '$1 == as { $1 = name; print; exit }' "$geometry")
    echo "$line" >>"$geometry"
}

made() {
    printf '  %-36s upright %-10s %9s bytes\n' "$1" "$2" "$(wc -c <"$out/$1")"
}

echo "phone-photos: making $out/ from $data/sample1..6.jpg"

photo sample1-4032x3024-o6.jpg sample1.jpg 2.1 "$out/sample1-4032x3024-o6.jpg" -c 4:3 -o 6 -q 92
made sample1-4032x3024-o6.jpg "$canvas"

photo sample1-4032x3024.png sample1.jpg 2.1 "$out/sample1-4032x3024.png" -c 4:3
made sample1-4032x3024.png "$canvas"
# x265's "fast" preset: the default ("slow") takes five times as long for a test photo
heif-enc -q 80 -p preset=fast -o "$out/sample1-4032x3024.heic" "$out/sample1-4032x3024.png" \
    >"$tmp/heif.log" 2>&1 || { cat "$tmp/heif.log" >&2; exit 1; }
again sample1-4032x3024.heic sample1-4032x3024.png
made sample1-4032x3024.heic "$canvas"
cwebp -quiet -q 80 "$out/sample1-4032x3024.png" -o "$out/sample1-4032x3024.webp"
again sample1-4032x3024.webp sample1-4032x3024.png
made sample1-4032x3024.webp "$canvas"
if heif-enc --avif -q 80 -o "$out/sample1-4032x3024.avif" "$out/sample1-4032x3024.png" \
    >"$tmp/avif.log" 2>&1; then
    again sample1-4032x3024.avif sample1-4032x3024.png
    made sample1-4032x3024.avif "$canvas"
else
    rm -f "$out/sample1-4032x3024.avif"
    echo "  (no sample1-4032x3024.avif: heif-enc --avif failed: $(head -n 1 "$tmp/avif.log"))"
fi

photo sample1-7296x5472-progressive.jpg sample1.jpg 3.8 "$tmp/big.ppm" -c 7296x5472
cjpeg -progressive -quality 90 -outfile "$out/sample1-7296x5472-progressive.jpg" "$tmp/big.ppm"
rm "$tmp/big.ppm"
made sample1-7296x5472-progressive.jpg "$canvas"

for n in 1 2 3 4 5 6; do
    photo "sample$n-4032.jpg" "sample$n.jpg" 2.1 "$out/sample$n-4032.jpg" -c 4:3 -q 92
    made "sample$n-4032.jpg" "$canvas"
done

for k in 1 2 3 4 5 6 7 8; do
    photo "orient/sample1-o$k.jpg" sample1.jpg 1.05 "$out/orient/sample1-o$k.jpg" -o "$k" -q 92
    made "orient/sample1-o$k.jpg" "$canvas"
done

mv "$geometry" "$out/geometry.txt"
touch "$out/.stamp"
echo "phone-photos: $(grep -vc '^#' "$out/geometry.txt") photos and geometry.txt in $out/" \
    "in $(($(date +%s) - start)) s"
