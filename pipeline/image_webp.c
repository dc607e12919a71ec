/* image_webp.c - WebP decoding through libwebp: lossy, lossless, with or without alpha, and
 * the first frame of an animation; the EXIF chunk's orientation is returned for the caller
 * to apply, as for JPEG. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

#include "pipeline/image_internal.h"

static uint32_t read_le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* The RIFF header: "RIFF", the size of what follows, "WEBP". Returns the
 * length of the WebP data (bytes after it, such as a trailing newline some
 * uploaders add, are not part of the image) or a status. A file cut short
 * is caught here, whichever chunk it ends in: libwebp alone would decode a
 * still image whose trailing EXIF chunk was lost. */
static enum fv_status check_riff(const uint8_t *data, size_t size, size_t *length,
                                 struct fv_error *err)
{
    if (size < 12)
        return fv_error_set(err, FV_ERR_FORMAT, "truncated WebP: %zu bytes", size);
    if (memcmp(data, "RIFF", 4) != 0 || memcmp(data + 8, "WEBP", 4) != 0)
        return fv_error_set(err, FV_ERR_FORMAT, "corrupt WebP: no RIFF WEBP header");
    uint32_t riff = read_le32(data + 4);
    if (riff < 4 + 8 || riff % 2 != 0)
        return fv_error_set(err, FV_ERR_FORMAT, "corrupt WebP: RIFF size %" PRIu32, riff);
    if ((uint64_t)riff + 8 > size)
        return fv_error_set(err, FV_ERR_FORMAT, "truncated WebP: the RIFF header declares %"
                            PRIu64 " bytes, %zu are present", (uint64_t)riff + 8, size);
    *length = (size_t)riff + 8;
    return FV_OK;
}

static enum fv_status webp_status(VP8StatusCode code, const char *what, struct fv_error *err)
{
    switch (code) {
    case VP8_STATUS_OK:
        return FV_OK;
    case VP8_STATUS_OUT_OF_MEMORY:
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory decoding WebP");
    case VP8_STATUS_UNSUPPORTED_FEATURE:
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "unsupported WebP: %s uses a feature "
                            "libwebp does not decode", what);
    case VP8_STATUS_NOT_ENOUGH_DATA:
    case VP8_STATUS_SUSPENDED:
        return fv_error_set(err, FV_ERR_FORMAT, "truncated WebP: the %s ends early", what);
    default: /* BITSTREAM_ERROR; INVALID_PARAM means libwebp disliked the header */
        return fv_error_set(err, FV_ERR_FORMAT, "corrupt WebP: bad %s", what);
    }
}

/* The orientation in the EXIF chunk (1 when there is none). A container the
 * demuxer will not parse has no usable EXIF either: the image stands as
 * libwebp decoded it. */
static int find_orientation(const WebPData *webp)
{
    WebPDemuxer *demux = WebPDemux(webp);
    if (!demux)
        return 1;
    int orientation = 1;
    WebPChunkIterator chunk;
    if (WebPDemuxGetChunk(demux, "EXIF", 1, &chunk)) {
        orientation = fv_exif_orientation(chunk.chunk.bytes, chunk.chunk.size);
        WebPDemuxReleaseChunkIterator(&chunk);
    }
    WebPDemuxDelete(demux);
    return orientation;
}

/* Header checks shared by probe and decode: the RIFF size, the features
 * (canvas size, animation) and the limits, before any pixel memory. */
static enum fv_status read_features(const uint8_t *data, size_t size,
                                    const struct fv_image_limits *limits, size_t *length,
                                    WebPBitstreamFeatures *features, struct fv_error *err)
{
    enum fv_status status = check_riff(data, size, length, err);
    if (status != FV_OK)
        return status;
    status = webp_status(WebPGetFeatures(data, *length, features), "header", err);
    if (status != FV_OK)
        return status;
    return fv_image_check_dimensions(features->width > 0 ? (uint64_t)features->width : 0,
                                     features->height > 0 ? (uint64_t)features->height : 0,
                                     limits, "WebP", err);
}

enum fv_status fv_webp_probe(const uint8_t *data, size_t size,
                             const struct fv_image_limits *limits, struct fv_image_info *info,
                             struct fv_error *err)
{
    size_t length;
    WebPBitstreamFeatures features;
    enum fv_status status = read_features(data, size, limits, &length, &features, err);
    if (status != FV_OK)
        return status;
    WebPData webp = {data, length};
    bool swap = find_orientation(&webp) >= 5;
    info->format = "WebP";
    info->width = swap ? features.height : features.width;
    info->height = swap ? features.width : features.height;
    return FV_OK;
}

/* A still image straight into the RGB pixels: libwebp writes into our
 * buffer and allocates no output of its own. */
static enum fv_status decode_still(const uint8_t *data, size_t length,
                                   const WebPBitstreamFeatures *features, struct fv_image *img,
                                   struct fv_error *err)
{
    WebPDecoderConfig config;
    if (!WebPInitDecoderConfig(&config))
        return fv_error_set(err, FV_ERR_INTERNAL, "libwebp's decoder ABI does not match its "
                            "header");
    config.input = *features;
    config.options.use_threads = 0; /* the server already decodes one image per worker */
    config.output.colorspace = MODE_RGB; /* alpha is dropped, keeping the stored colours */
    config.output.is_external_memory = 1;
    config.output.u.RGBA.rgba = img->rgb;
    config.output.u.RGBA.stride = img->width * 3;
    config.output.u.RGBA.size = fv_image_byte_count(img);
    enum fv_status status = webp_status(WebPDecode(data, length, &config), "image data", err);
    WebPFreeDecBuffer(&config.output); /* frees nothing of ours: the memory is external */
    return status;
}

/* The first frame of an animation: a sequence is read as its first picture,
 * as a HEIF sequence is read as its primary image. The frame is decoded
 * straight into its place on the canvas (which read_features checked against
 * the limits), so an animation costs no more memory than a still image of
 * the canvas's size; the canvas around a smaller frame stays black, the
 * colour a transparent background has once alpha is dropped. Disposal and
 * blending start mattering only at the second frame. */
static enum fv_status decode_first_frame(const WebPData *webp, struct fv_image *img,
                                         struct fv_error *err)
{
    WebPDemuxer *demux = WebPDemux(webp);
    if (!demux)
        return fv_error_set(err, FV_ERR_FORMAT, "corrupt WebP: bad animation container");
    WebPIterator frame;
    enum fv_status status = FV_OK;
    if (!WebPDemuxGetFrame(demux, 1, &frame)) {
        status = fv_error_set(err, FV_ERR_FORMAT, "corrupt WebP: the animation has no frames");
        WebPDemuxDelete(demux);
        return status;
    }
    WebPDecoderConfig config;
    if (!WebPInitDecoderConfig(&config)) {
        status = fv_error_set(err, FV_ERR_INTERNAL, "libwebp's decoder ABI does not match "
                              "its header");
        goto done;
    }
    if (frame.x_offset < 0 || frame.y_offset < 0 || frame.width <= 0 || frame.height <= 0 ||
        frame.width > img->width - frame.x_offset || frame.height > img->height - frame.y_offset) {
        status = fv_error_set(err, FV_ERR_FORMAT, "corrupt WebP: the first frame (%dx%d at "
                              "%d,%d) does not fit the %dx%d canvas", frame.width, frame.height,
                              frame.x_offset, frame.y_offset, img->width, img->height);
        goto done;
    }
    status = webp_status(WebPGetFeatures(frame.fragment.bytes, frame.fragment.size,
                                         &config.input), "first frame's header", err);
    if (status != FV_OK)
        goto done;
    if (config.input.width != frame.width || config.input.height != frame.height) {
        status = fv_error_set(err, FV_ERR_FORMAT, "corrupt WebP: the first frame's bitstream "
                              "is %dx%d, its header says %dx%d", config.input.width,
                              config.input.height, frame.width, frame.height);
        goto done;
    }
    uint8_t *corner = fv_image_pixel_at(img, frame.x_offset, frame.y_offset);
    config.options.use_threads = 0;
    config.output.colorspace = MODE_RGB;
    config.output.is_external_memory = 1;
    config.output.u.RGBA.rgba = corner;
    config.output.u.RGBA.stride = img->width * 3;
    config.output.u.RGBA.size = fv_image_byte_count(img) - (size_t)(corner - img->rgb);
    status = webp_status(WebPDecode(frame.fragment.bytes, frame.fragment.size, &config),
                         "first frame", err);
    WebPFreeDecBuffer(&config.output);
done:
    WebPDemuxReleaseIterator(&frame);
    WebPDemuxDelete(demux);
    return status;
}

enum fv_status fv_webp_decode(const uint8_t *data, size_t size,
                              const struct fv_image_limits *limits, struct fv_image **out,
                              int *orientation, struct fv_error *err)
{
    size_t length;
    WebPBitstreamFeatures features;
    struct fv_image *img = NULL;
    enum fv_status status = read_features(data, size, limits, &length, &features, err);
    if (status != FV_OK)
        goto fail;
    img = fv_image_new(features.width, features.height);
    if (!img) {
        status = fv_error_set(err, FV_ERR_NOMEM, "out of memory decoding a %dx%d WebP",
                              features.width, features.height);
        goto fail;
    }
    WebPData webp = {data, length};
    if (features.has_animation)
        status = decode_first_frame(&webp, img, err);
    else
        status = decode_still(data, length, &features, img, err);
    if (status != FV_OK)
        goto fail;
    *out = img;
    *orientation = find_orientation(&webp);
    return FV_OK;

fail:
    fv_image_free(img);
    return status;
}
