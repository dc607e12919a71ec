#!/bin/sh
# make_format_seeds.sh - seed corpora for fuzz_heif and fuzz_webp, and HEIF, AVIF and WebP
# seeds for fuzz_image, made at set-up (by `make fuzz`) instead of committed: small HEIC,
# AVIF and WebP files encoded from images written here byte by byte (PPM, PAM, and JPEG
# through cjpeg), plus cut-short copies.
#
#   sh tests/fuzz/make_format_seeds.sh OUT_DIR     writes OUT_DIR/{heif,webp,image}/
#
# Needs heif-enc (libheif-examples), cwebp and img2webp (webp), cjpeg
# (libjpeg-turbo-progs); a format whose tools are missing gets no seeds (a warning, not a
# failure: libFuzzer starts from an empty corpus).
set -eu
out=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out/heif" "$out/webp"

# Bytes of one pixel repeated: rep COUNT 'OCTAL ESCAPES'
rep() {
    i=0
    while [ "$i" -lt "$1" ]; do
        printf "$2"
        i=$((i + 1))
    done
}

# 32x24 quadrants: red, green / blue, yellow (flat areas, sharp edges)
{
    printf 'P6\n32 24\n255\n'
    for r in 1 2 3 4 5 6 7 8 9 10 11 12; do rep 16 '\377\000\000'; rep 16 '\000\377\000'; done
    for r in 1 2 3 4 5 6 7 8 9 10 11 12; do rep 16 '\000\000\377'; rep 16 '\377\377\000'; done
} > "$tmp/quad.ppm"
# 64x64 noise (every coefficient busy)
{ printf 'P6\n64 64\n255\n'; head -c $((64 * 64 * 3)) /dev/urandom; } > "$tmp/noise.ppm"
# 32x24 with alpha: opaque left half, transparent right half
{
    printf 'P7\nWIDTH 32\nHEIGHT 24\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n'
    for r in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24; do rep 16 '\377\000\000\377'; rep 16 '\000\377\000\000'; done
} > "$tmp/alpha.pam"

# A JPEG with an EXIF block saying orientation 6, spliced in after SOI.
exif_jpeg() { # in.jpg out.jpg
    {
        printf '\377\330\377\341\000\042Exif\000\000II*\000\010\000\000\000\001\000'
        printf '\022\001\003\000\001\000\000\000\006\000\000\000\000\000\000\000'
        tail -c +3 "$1"
    } > "$2"
}

# Whole files, and the same cut in half and one byte short.
keep() { # file corpus-dir
    name=$(basename "$1")
    cp "$1" "$2/$name"
    size=$(wc -c < "$1")
    head -c $((size / 2)) "$1" > "$2/$name-half"
    head -c $((size - 1)) "$1" > "$2/$name-minus1"
}

have() { command -v "$1" > /dev/null 2>&1; }

if have cjpeg && have heif-enc; then
    cjpeg -quality 90 "$tmp/quad.ppm" > "$tmp/quad.jpg"
    cjpeg -quality 90 "$tmp/noise.ppm" > "$tmp/noise.jpg"
    exif_jpeg "$tmp/quad.jpg" "$tmp/exif6.jpg"
    heif-enc -q 60 "$tmp/quad.jpg" -o "$tmp/quad.heic" > /dev/null
    heif-enc -q 60 "$tmp/noise.jpg" -o "$tmp/noise.heic" > /dev/null
    heif-enc -q 60 "$tmp/exif6.jpg" -o "$tmp/exif6.heic" > /dev/null
    heif-enc -q 60 "$tmp/quad.jpg" "$tmp/noise.jpg" -o "$tmp/two.heic" > /dev/null
    heif-enc -A -q 60 "$tmp/quad.jpg" -o "$tmp/quad.avif" > /dev/null
    heif-enc -A -q 60 "$tmp/noise.jpg" -o "$tmp/noise.avif" > /dev/null
    for f in quad.heic noise.heic exif6.heic two.heic quad.avif noise.avif; do
        keep "$tmp/$f" "$out/heif"
    done
else
    echo "make_format_seeds: heif-enc or cjpeg missing: no HEIF seeds" \
         "(install libheif-examples libjpeg-turbo-progs)" >&2
fi

if have cwebp && have img2webp && have cjpeg; then
    cjpeg -quality 90 "$tmp/quad.ppm" > "$tmp/quad.jpg"
    exif_jpeg "$tmp/quad.jpg" "$tmp/exif6.jpg"
    cwebp -quiet -q 60 "$tmp/quad.ppm" -o "$tmp/lossy.webp"
    cwebp -quiet -lossless "$tmp/noise.ppm" -o "$tmp/lossless.webp"
    cwebp -quiet -q 60 "$tmp/alpha.pam" -o "$tmp/alpha-lossy.webp"
    cwebp -quiet -lossless -exact "$tmp/alpha.pam" -o "$tmp/alpha-lossless.webp"
    cwebp -quiet -q 60 -metadata exif "$tmp/exif6.jpg" -o "$tmp/exif6.webp"
    img2webp -loop 0 -lossy "$tmp/quad.ppm" -lossless "$tmp/alpha.pam" \
        -o "$tmp/anim.webp" > /dev/null 2>&1
    for f in lossy.webp lossless.webp alpha-lossy.webp alpha-lossless.webp exif6.webp \
             anim.webp; do
        keep "$tmp/$f" "$out/webp"
    done
else
    echo "make_format_seeds: cwebp, img2webp or cjpeg missing: no WebP seeds" \
         "(install webp libjpeg-turbo-progs)" >&2
fi
# The whole files seed fuzz_image too, which reaches them through the format sniffing.
mkdir -p "$out/image"
for f in "$out"/heif/*.heic "$out"/heif/*.avif "$out"/webp/*.webp; do
    [ -e "$f" ] && cp "$f" "$out/image/"
done
echo "make_format_seeds: $(ls "$out/heif" | wc -l) HEIF, $(ls "$out/webp" | wc -l) WebP," \
     "$(ls "$out/image" | wc -l) fuzz_image seeds"
