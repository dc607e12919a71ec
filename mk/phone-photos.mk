# phone-photos.mk - phone-size test photos made from the sample photos at set-up.
#
#   make tests/data/phone/.stamp     (or: make phone-photos)
#
# Builds a small helper (tests/tools/photo_tool.c) on facever's image code and
# runs scripts/phone-photos.sh, which writes 12 MP JPEG (EXIF orientation 6),
# HEIC, WebP, AVIF and PNG copies of sample1, a 40 MP progressive JPEG, 4:3
# copies of all six samples, sample1 stored for each EXIF orientation, and
# tests/data/phone/geometry.txt. Needs heif-enc, cwebp and cjpeg (make deps).

PHOTO_TOOL := $(BUILD)/tests/tools/photo_tool

.PHONY: phone-photos

$(PHOTO_TOOL): tests/tools/photo_tool.c $(BUILD)/libpipeline.a $(BUILD)/libmodel.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libpipeline.a $(BUILD)/libmodel.a $(LDLIBS)

tests/data/phone/.stamp: scripts/phone-photos.sh $(PHOTO_TOOL) tests/data/.stamp
	@PHOTO_TOOL=$(PHOTO_TOOL) sh scripts/phone-photos.sh

phone-photos: tests/data/phone/.stamp
