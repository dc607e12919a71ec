/* image_format.c - format sniffing and the dispatch: decode, probe, load and save. */
#include "pipeline/image.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/image_internal.h"

#define SAVE_JPEG_QUALITY 95

/* ---- format sniffing ---- */

/* Every format recognised by its magic number; FORMAT_OTHER is one we do not
 * decode. */
enum image_format { FORMAT_JPEG, FORMAT_PNG, FORMAT_HEIF, FORMAT_AVIF, FORMAT_WEBP, FORMAT_OTHER };

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* Which format data holds; for one we do not decode, *name says which (or
 * "unrecognised data"), for the error message. */
static enum image_format detect_format(const uint8_t *data, size_t size, const char **name)
{
    *name = "unrecognised data";
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return FORMAT_JPEG;
    if (size >= 8 && memcmp(data, png_signature, 8) == 0)
        return FORMAT_PNG;
    if (size >= 4 && memcmp(data, "GIF8", 4) == 0)
        *name = "GIF";
    else if (size >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0) {
        *name = "WebP";
        return FORMAT_WEBP;
    } else if (size >= 12 && memcmp(data + 4, "ftyp", 4) == 0) {
        const uint8_t *brand = data + 8;
        if (memcmp(brand, "avif", 4) == 0 || memcmp(brand, "avis", 4) == 0) {
            *name = "AVIF";
            return FORMAT_AVIF;
        }
        if (memcmp(brand, "hei", 3) == 0 || memcmp(brand, "hev", 3) == 0 ||
            memcmp(brand, "mif1", 4) == 0 || memcmp(brand, "msf1", 4) == 0) {
            *name = "HEIC";
            return FORMAT_HEIF;
        }
        *name = "ISO media";
    } else if (size >= 2 && data[0] == 'B' && data[1] == 'M')
        *name = "BMP";
    else if (size >= 4 && (memcmp(data, "II*\0", 4) == 0 || memcmp(data, "MM\0*", 4) == 0))
        *name = "TIFF";
    else if ((size >= 2 && data[0] == 0xff && data[1] == 0x0a) ||
             (size >= 12 && memcmp(data, "\0\0\0\x0cJXL \r\n\x87\n", 12) == 0))
        *name = "JPEG XL";
    else if (size >= 12 && memcmp(data, "\0\0\0\x0cjP  \r\n\x87\n", 12) == 0)
        *name = "JPEG 2000";
    return FORMAT_OTHER;
}

const char *fv_image_formats(void)
{
    return "JPEG, PNG, WebP, HEIC/HEIF, AVIF";
}

/* ---- decoding entry points ---- */

/* Each decodable format's decoder and probe (image_internal.h), by format. */
static const struct {
    enum fv_status (*decode)(const uint8_t *, size_t, const struct fv_image_limits *,
                             struct fv_image **, int *, struct fv_error *);
    enum fv_status (*probe)(const uint8_t *, size_t, const struct fv_image_limits *,
                            struct fv_image_info *, struct fv_error *);
} formats[FORMAT_OTHER] = {
    [FORMAT_JPEG] = {fv_jpeg_decode, fv_jpeg_probe},
    [FORMAT_PNG] = {fv_png_decode, fv_png_probe},
    [FORMAT_HEIF] = {fv_heif_decode, fv_heif_probe},
    [FORMAT_AVIF] = {fv_heif_decode, fv_heif_probe},
    [FORMAT_WEBP] = {fv_webp_decode, fv_webp_probe},
};

/* The checks both entry points make first: arguments, encoded size, and a
 * format we decode (its index into formats[]), else the error. */
static enum fv_status find_format(const uint8_t *data, size_t size,
                                  const struct fv_image_limits *limits, const char *who,
                                  enum image_format *format, struct fv_error *err)
{
    if (!data && size > 0)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "%s: NULL argument", who);
    enum fv_status status = fv_image_check_encoded(data, size, limits, err);
    if (status != FV_OK)
        return status;
    const char *name;
    *format = detect_format(data, size, &name);
    if (*format == FORMAT_OTHER)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "unsupported image format (%s); "
                            "supported: %s", name, fv_image_formats());
    return FV_OK;
}

enum fv_status fv_image_decode(const uint8_t *data, size_t size,
                               const struct fv_image_limits *limits, struct fv_image **out,
                               struct fv_error *err)
{
    struct fv_image_limits default_limits;
    struct fv_image *img = NULL;
    int orientation = 1;
    enum image_format format;

    if (!out)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_decode: NULL argument");
    *out = NULL;
    limits = fv_image_limits_or_default(limits, &default_limits);
    enum fv_status status = find_format(data, size, limits, "fv_image_decode", &format, err);
    if (status != FV_OK)
        return status;
    status = formats[format].decode(data, size, limits, &img, &orientation, err);
    if (status == FV_OK)
        status = fv_image_orient(&img, orientation, err);
    if (status != FV_OK) {
        fv_image_free(img);
        return status;
    }
    *out = img;
    return FV_OK;
}

enum fv_status fv_image_probe(const uint8_t *data, size_t size,
                              const struct fv_image_limits *limits, struct fv_image_info *info,
                              struct fv_error *err)
{
    struct fv_image_limits default_limits;
    struct fv_image_info found = {0};
    enum image_format format;

    if (!info)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_probe: NULL argument");
    limits = fv_image_limits_or_default(limits, &default_limits);
    enum fv_status status = find_format(data, size, limits, "fv_image_probe", &format, err);
    if (status == FV_OK)
        status = formats[format].probe(data, size, limits, &found, err);
    if (status == FV_OK)
        *info = found;
    return status;
}

/* Prefixes err's message with the path, if there is an err to prefix. */
static enum fv_status with_path(struct fv_error *err, enum fv_status status, const char *path)
{
    if (err)
        fv_error_prefix(err, "%s: ", path);
    return status;
}

enum fv_status fv_image_load(const char *path, const struct fv_image_limits *limits,
                             struct fv_image **out, struct fv_error *err)
{
    struct fv_image_limits default_limits;
    uint8_t *data = NULL;
    size_t size = 0, capacity = 0, expected = 0;
    enum fv_status status;
    FILE *file = NULL;

    if (!path || !out)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_load: NULL argument");
    *out = NULL;
    limits = fv_image_limits_or_default(limits, &default_limits);
    file = fopen(path, "rb");
    if (!file) {
        status = fv_error_set(err, errno == ENOENT ? FV_ERR_NOT_FOUND : FV_ERR_IO,
                              "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fileno(file), &st) == 0 && S_ISREG(st.st_mode)) {
        if (limits->max_bytes && (uint64_t)st.st_size > limits->max_bytes) {
            status = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: image too large: %jd bytes, "
                                  "the limit is %zu bytes", path, (intmax_t)st.st_size,
                                  limits->max_bytes);
            goto fail;
        }
        if ((uint64_t)st.st_size < SIZE_MAX)
            expected = (size_t)st.st_size + 1; /* + 1 sees the end without a regrow */
    }
    for (;;) {
        if (size == capacity) {
            size_t grown = capacity ? capacity * 2 : expected ? expected : 65536;
            if (grown < capacity) {
                status = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: file too large", path);
                goto fail;
            }
            uint8_t *bigger = realloc(data, grown);
            if (!bigger) {
                status = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory reading", path);
                goto fail;
            }
            data = bigger;
            capacity = grown;
        }
        size_t got = fread(data + size, 1, capacity - size, file);
        size += got;
        if (limits->max_bytes && size > limits->max_bytes) {
            status = fv_error_set(err, FV_ERR_TOO_LARGE, "%s: image too large: over the "
                                  "limit of %zu bytes", path, limits->max_bytes);
            goto fail;
        }
        if (got == 0)
            break;
    }
    if (ferror(file)) {
        status = fv_error_set(err, FV_ERR_IO, "%s: read error", path);
        goto fail;
    }
    status = fv_image_decode(data, size, limits, out, err);
    if (status != FV_OK) {
        with_path(err, status, path);
        goto fail;
    }
    fclose(file);
    free(data);
    return FV_OK;

fail:
    if (file)
        fclose(file);
    free(data);
    return status;
}

/* ---- saving ---- */

static bool has_extension(const char *path, const char *extension)
{
    size_t n = strlen(path), m = strlen(extension);
    return n > m && strcasecmp(path + n - m, extension) == 0;
}

enum fv_status fv_image_save(const struct fv_image *img, const char *path,
                             struct fv_error *err)
{
    uint8_t *data = NULL;
    size_t size = 0;
    enum fv_status status;
    FILE *file = NULL;

    if (!path)
        return fv_error_set(err, FV_ERR_INVALID_ARG, "fv_image_save: NULL path");
    if (has_extension(path, ".png"))
        status = fv_image_encode_png(img, &data, &size, err);
    else if (has_extension(path, ".jpg") || has_extension(path, ".jpeg"))
        status = fv_image_encode_jpeg(img, SAVE_JPEG_QUALITY, &data, &size, err);
    else
        return fv_error_set(err, FV_ERR_INVALID_ARG, "%s: unknown image extension "
                            "(use .png, .jpg or .jpeg)", path);
    if (status != FV_OK) {
        with_path(err, status, path);
        goto fail;
    }
    file = fopen(path, "wb");
    if (!file) {
        status = fv_error_set(err, FV_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto fail;
    }
    bool written = fwrite(data, 1, size, file) == size;
    int close_result = fclose(file);
    file = NULL;
    if (!written || close_result != 0) {
        status = fv_error_set(err, FV_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        unlink(path);
        goto fail;
    }
    free(data);
    return FV_OK;

fail:
    if (file)
        fclose(file);
    free(data);
    return status;
}
