/* image_heif_check.c - what a HEIF or AVIF file declares, read before libheif sees it: the
 * top-level boxes, the references between items, and every size a decoder will allocate
 * from (ispe aside, which libheif checks itself). */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "pipeline/image_internal.h"

/* Boxes, table entries, NAL units and OBUs visited while checking a file
 * before decoding (its coded sizes and references). Each item's type is looked up in iinf, so n
 * items cost about n * n / 2: a camera's grid of 48 tiles needs a few
 * thousand steps, a 40-megapixel grid of 256-pixel tiles (610 items) under
 * 200 000, and files of more than about 1 400 items are refused. The bound
 * keeps a file of crafted tables from costing seconds. */
#define HEIF_MAX_STEPS 1000000

/* How deep derived images (grids of tiles, an identity of a grid, ...) and
 * auxiliary images (alpha, depth) may nest below the primary image. A camera
 * file nests 2 or 3 deep; a cycle nests forever. */
#define HEIF_MAX_NESTING 8

/* Bytes of a parameter set or sequence header read to find its size (the
 * fields come within the first hundred or so). */
#define HEADER_PEEK 256

/* ---- bytes and boxes ---- */

/* A bounded view of bytes: every read checks what is left. */
struct span {
    const uint8_t *at;
    size_t left;
};

static uint32_t read_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool span_skip(struct span *s, uint64_t n)
{
    if (n > s->left)
        return false;
    s->at += n;
    s->left -= (size_t)n;
    return true;
}

/* A big-endian unsigned integer of 0..8 bytes (0 bytes reads as 0). */
static bool span_uint(struct span *s, unsigned bytes, uint64_t *value)
{
    if (bytes > 8 || bytes > s->left)
        return false;
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v = v << 8 | s->at[i];
    *value = v;
    return span_skip(s, bytes);
}

struct box {
    char type[5]; /* printable, for messages and comparisons */
    struct span body;
};

enum box_result { BOX_END, BOX_OK, BOX_TRUNCATED, BOX_BAD_SIZE };

/* The next box in s, as ISO/IEC 14496-12 frames it: a 32-bit size (1: a
 * 64-bit size follows the type; 0: to the end of the parent), a type. */
static enum box_result box_next(struct span *s, struct box *b)
{
    if (s->left == 0)
        return BOX_END;
    if (s->left < 8)
        return BOX_TRUNCATED;
    uint64_t size = read_be32(s->at);
    for (int i = 0; i < 4; i++) {
        uint8_t c = s->at[4 + i];
        b->type[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    b->type[4] = '\0';
    size_t header = 8;
    if (size == 1) {
        if (s->left < 16)
            return BOX_TRUNCATED;
        size = (uint64_t)read_be32(s->at + 8) << 32 | read_be32(s->at + 12);
        header = 16;
    } else if (size == 0) {
        size = s->left;
    }
    if (size < header)
        return BOX_BAD_SIZE;
    if (size > s->left)
        return BOX_TRUNCATED;
    b->body = (struct span){s->at + header, (size_t)size - header};
    span_skip(s, size);
    return BOX_OK;
}

/* The first child of `parent` of the given type; false when there is none or
 * the children are malformed (libheif then says what is wrong). */
static bool box_find(struct span parent, const char *type, struct box *out)
{
    struct box b;
    while (box_next(&parent, &b) == BOX_OK)
        if (memcmp(b.type, type, 4) == 0) {
            *out = b;
            return true;
        }
    return false;
}

static bool is_avif_brand(const uint8_t *brand)
{
    return memcmp(brand, "avif", 4) == 0 || memcmp(brand, "avis", 4) == 0;
}

static bool is_hevc_brand(const uint8_t *brand)
{
    return memcmp(brand, "hei", 3) == 0 || memcmp(brand, "hev", 3) == 0;
}

const char *fv_heif_format(const uint8_t *data, size_t size)
{
    if (size < 12 || memcmp(data + 4, "ftyp", 4) != 0)
        return "HEIF";
    if (is_avif_brand(data + 8))
        return "AVIF";
    if (is_hevc_brand(data + 8))
        return "HEIF";
    uint64_t end = read_be32(data);
    if (end > size)
        end = size;
    bool avif = false;
    for (uint64_t at = 16; at + 4 <= end; at += 4) {
        if (is_hevc_brand(data + at))
            return "HEIF";
        avif = avif || is_avif_brand(data + at);
    }
    return avif ? "AVIF" : "HEIF";
}

/* Every top-level box must fit in the data. A file cut short ends inside a
 * box (usually mdat), which libheif would report only later, if at all, as
 * a decoder error. */
static enum fv_status check_top_level(const uint8_t *data, size_t size, const char *format,
                                      struct fv_error *err)
{
    struct span s = {data, size};
    struct box b;
    for (;;) {
        size_t at = size - s.left;
        switch (box_next(&s, &b)) {
        case BOX_END:
            return FV_OK;
        case BOX_OK:
            continue;
        case BOX_TRUNCATED:
            if (size - at < 8)
                return fv_error_set(err, FV_ERR_FORMAT, "truncated %s: %zu bytes of a box "
                                    "header at the end", format, size - at);
            return fv_error_set(err, FV_ERR_FORMAT, "truncated %s: the '%s' box at byte %zu "
                                "runs past the end of the data (%zu bytes)", format, b.type, at,
                                size);
        case BOX_BAD_SIZE:
            return fv_error_set(err, FV_ERR_FORMAT, "corrupt %s: box '%s' at byte %zu is "
                                "smaller than its header", format, b.type, at);
        }
    }
}

/* ---- coded sizes ----
 *
 * The size libheif checks is the one in the ispe property; the decoders
 * allocate whatever their bitstream says. A file of a few kilobytes can
 * declare 64x64 in ispe and carry an 8192x8192 HEVC or AV1 stream of one
 * flat colour, and libheif 1.15 decodes it in full before anyone can compare.
 * So before decoding, every size a decoder or libheif will allocate from is
 * read from the file and checked against the limits: the HEVC sequence
 * parameter sets (in hvcC boxes and in the image items' data), the AV1
 * sequence headers (in av1C boxes and in the items' data) and the canvases
 * of grid and overlay images. The item table (iloc) must be one this walk
 * can follow, or the file is refused; a parameter set or other box too
 * malformed to read is left to libheif and its decoders, which refuse it. */

struct coded_check {
    struct span file, idat;
    const struct fv_image_limits *limits;
    const char *format;
    struct fv_error *err;
    long steps;
};

static bool step(struct coded_check *c)
{
    return ++c->steps <= HEIF_MAX_STEPS;
}

static enum fv_status check_coded(struct coded_check *c, uint64_t width, uint64_t height)
{
    return fv_image_check_dimensions(width, height, c->limits, c->format, c->err);
}

/* Bits, most significant first; reading past the end sets `over`. */
struct bits {
    const uint8_t *data;
    size_t size, position;
    bool over;
};

static uint32_t bits_read(struct bits *b, unsigned n)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        if (b->position >= b->size * 8) {
            b->over = true;
            return 0;
        }
        v = v << 1 | (b->data[b->position / 8] >> (7 - b->position % 8) & 1);
        b->position++;
    }
    return v;
}

static void bits_skip(struct bits *b, unsigned n)
{
    b->position += n;
    if (b->position > b->size * 8)
        b->over = true;
}

/* An Exp-Golomb code, ue(v) of H.265; more than 31 leading zeros is
 * malformed. */
static uint64_t bits_ue(struct bits *b)
{
    unsigned zeros = 0;
    while (!b->over && bits_read(b, 1) == 0)
        if (++zeros > 31) {
            b->over = true;
            return 0;
        }
    return ((uint64_t)1 << zeros) - 1 + bits_read(b, zeros);
}

/* uvlc() of the AV1 specification (4.10.3). */
static void bits_skip_uvlc(struct bits *b)
{
    unsigned zeros = 0;
    while (!b->over && bits_read(b, 1) == 0)
        zeros++;
    if (zeros < 32)
        bits_skip(b, zeros);
}

/* pic_width/height_in_luma_samples of an HEVC sequence parameter set: the
 * NAL unit from its two-byte header on, as far as `size` bytes of it are at
 * hand (H.265 7.3.2.2, the fields before the size; 7.3.3 profile_tier_level). */
static bool hevc_sps_size(const uint8_t *nal, size_t size, uint64_t *width, uint64_t *height)
{
    uint8_t rbsp[HEADER_PEEK];
    size_t n = 0;
    int zeros = 0;
    for (size_t i = 2; i < size && n < sizeof rbsp; i++) {
        if (zeros >= 2 && nal[i] == 3) { /* emulation prevention byte */
            zeros = 0;
            continue;
        }
        zeros = nal[i] == 0 ? zeros + 1 : 0;
        rbsp[n++] = nal[i];
    }
    struct bits b = {rbsp, n, 0, false};
    bits_skip(&b, 4); /* sps_video_parameter_set_id */
    unsigned sub_layers = bits_read(&b, 3); /* sps_max_sub_layers_minus1 */
    bits_skip(&b, 1 + 88 + 8);              /* nesting flag; general profile, level */
    bool profile[8] = {false}, level[8] = {false};
    for (unsigned i = 0; i < sub_layers; i++) {
        profile[i] = bits_read(&b, 1);
        level[i] = bits_read(&b, 1);
    }
    if (sub_layers > 0)
        bits_skip(&b, 2 * (8 - sub_layers));
    for (unsigned i = 0; i < sub_layers; i++)
        bits_skip(&b, (profile[i] ? 88 : 0) + (level[i] ? 8 : 0));
    bits_ue(&b); /* sps_seq_parameter_set_id */
    if (bits_ue(&b) == 3) /* chroma_format_idc */
        bits_skip(&b, 1);
    *width = bits_ue(&b);
    *height = bits_ue(&b);
    return !b.over;
}

/* max_frame_width/height of an AV1 sequence header OBU's payload (AV1
 * specification 5.5.1): no frame of the stream is larger. */
static bool av1_sequence_size(const uint8_t *payload, size_t size, uint64_t *width,
                              uint64_t *height)
{
    struct bits b = {payload, size, 0, false};
    bits_skip(&b, 3 + 1); /* seq_profile, still_picture */
    if (bits_read(&b, 1)) { /* reduced_still_picture_header */
        bits_skip(&b, 5);
    } else {
        bool decoder_model = false, display_delay;
        unsigned delay_length = 0;
        if (bits_read(&b, 1)) { /* timing_info_present_flag */
            bits_skip(&b, 32 + 32);
            if (bits_read(&b, 1)) /* equal_picture_interval */
                bits_skip_uvlc(&b);
            decoder_model = bits_read(&b, 1);
            if (decoder_model) {
                delay_length = bits_read(&b, 5) + 1;
                bits_skip(&b, 32 + 5 + 5);
            }
        }
        display_delay = bits_read(&b, 1);
        unsigned points = bits_read(&b, 5) + 1;
        for (unsigned i = 0; i < points && !b.over; i++) {
            bits_skip(&b, 12); /* operating_point_idc */
            if (bits_read(&b, 5) > 7) /* seq_level_idx */
                bits_skip(&b, 1);
            if (decoder_model && bits_read(&b, 1))
                bits_skip(&b, 2 * delay_length + 1);
            if (display_delay && bits_read(&b, 1))
                bits_skip(&b, 4);
        }
    }
    unsigned width_bits = bits_read(&b, 4) + 1, height_bits = bits_read(&b, 4) + 1;
    *width = (uint64_t)bits_read(&b, width_bits) + 1;
    *height = (uint64_t)bits_read(&b, height_bits) + 1;
    return !b.over;
}

/* An item's data: its extents one after another, read front to back. The
 * extents are read lazily from the iloc entry, whose fields say how wide
 * each number is. */
struct item_data {
    struct coded_check *check;
    struct span extents; /* the rest of the iloc entry's extent list */
    uint64_t extents_left, base;
    unsigned offset_size, length_size, index_size;
    const struct span *source; /* the file or idat */
    struct span current;       /* the rest of the current extent */
    const char *bad;           /* why the data cannot be read, once it cannot */
};

/* Moves to the next extent when the current one is used up; false at the end
 * of the data, and with d->bad set when an extent is malformed, empty or
 * outside its source. An extent length of 0 means "to the end" in ISO BMFF,
 * but libheif 1.15 hands the decoder no bytes for it (dav1d then prints a
 * complaint and leaks), and no encoder writes one: it is refused. */
static bool item_data_ready(struct item_data *d)
{
    while (d->current.left == 0) {
        uint64_t index, offset, length;
        if (d->extents_left == 0)
            return false;
        if (!step(d->check) || !span_uint(&d->extents, d->index_size, &index) ||
            !span_uint(&d->extents, d->offset_size, &offset) ||
            !span_uint(&d->extents, d->length_size, &length)) {
            d->bad = "a malformed extent";
            return false;
        }
        d->extents_left--;
        size_t available = d->source->left;
        if (offset > UINT64_MAX - d->base || d->base + offset > available ||
            length > available - (d->base + offset)) {
            d->bad = d->source == &d->check->file ? "data past the end of the file"
                                                  : "an extent outside idat";
            return false;
        }
        if (length == 0) {
            d->bad = "an extent of length 0";
            return false;
        }
        d->current = (struct span){d->source->at + d->base + offset, (size_t)length};
    }
    return true;
}

/* Copies up to n bytes into out; returns how many there were. */
static size_t item_data_read(struct item_data *d, uint8_t *out, size_t n)
{
    size_t done = 0;
    while (done < n && item_data_ready(d)) {
        size_t k = n - done < d->current.left ? n - done : d->current.left;
        memcpy(out + done, d->current.at, k);
        span_skip(&d->current, k);
        done += k;
    }
    return done;
}

static bool item_data_skip(struct item_data *d, uint64_t n)
{
    while (n > 0) {
        if (!item_data_ready(d))
            return false;
        uint64_t k = n < d->current.left ? n : d->current.left;
        span_skip(&d->current, k);
        n -= k;
    }
    return true;
}

/* HEVC data as libheif 1.15 hands it to libde265: NAL units each after a
 * four-byte length, whatever hvcC's lengthSizeMinusOne says. Every SPS
 * counts; libde265 takes a new one wherever it comes. */
static enum fv_status check_hevc_data(struct item_data *d)
{
    uint8_t length[4], nal[HEADER_PEEK];
    while (item_data_read(d, length, 4) == 4) {
        if (!step(d->check))
            return fv_error_set(d->check->err, FV_ERR_FORMAT, "corrupt %s: too many NAL units",
                                d->check->format);
        uint32_t size = read_be32(length);
        size_t got = item_data_read(d, nal, size < sizeof nal ? size : sizeof nal);
        if (got >= 2 && (nal[0] >> 1 & 0x3f) == 33) { /* SPS_NUT */
            uint64_t width, height;
            if (hevc_sps_size(nal, got, &width, &height)) {
                enum fv_status status = check_coded(d->check, width, height);
                if (status != FV_OK)
                    return status;
            }
        }
        if (got < size && !item_data_skip(d, size - got))
            break;
    }
    return FV_OK;
}

/* AV1 data: OBUs (AV1 specification 5.3), each sequence header checked.
 * Reserved OBU types (0, 9..14) and tile lists (8, for large-scale tile
 * decoding, which AVIF does not use) are refused: no AVIF encoder writes
 * them, and dav1d, which would skip them, prints a line to stderr for each. */
static enum fv_status check_av1_data(struct item_data *d)
{
    uint8_t header;
    while (item_data_read(d, &header, 1) == 1) {
        if (!step(d->check))
            return fv_error_set(d->check->err, FV_ERR_FORMAT, "corrupt %s: too many OBUs",
                                d->check->format);
        unsigned type = header >> 3 & 0xf;
        if (type == 0 || (type >= 8 && type <= 14))
            return fv_error_set(d->check->err, FV_ERR_FORMAT, "corrupt %s: OBU type %u in an "
                                "image", d->check->format, type);
        uint8_t extension;
        if (header & 0x04 && item_data_read(d, &extension, 1) != 1)
            break;
        uint64_t size = UINT64_MAX; /* no size field: the OBU runs to the end */
        if (header & 0x02) {
            uint8_t byte = 0x80;
            size = 0;
            for (int i = 0; i < 8 && byte & 0x80; i++) {
                if (item_data_read(d, &byte, 1) != 1)
                    return FV_OK;
                size |= (uint64_t)(byte & 0x7f) << (7 * i);
            }
        }
        uint8_t payload[HEADER_PEEK];
        size_t got = 0;
        if (type == 1) { /* OBU_SEQUENCE_HEADER */
            got = item_data_read(d, payload, size < sizeof payload ? size : sizeof payload);
            uint64_t width, height;
            if (av1_sequence_size(payload, got, &width, &height)) {
                enum fv_status status = check_coded(d->check, width, height);
                if (status != FV_OK)
                    return status;
            }
        }
        if (got < size && !item_data_skip(d, size - got))
            break;
    }
    return FV_OK;
}

/* The output size of a grid ('grid') or overlay ('iovl') image item: after a
 * version byte and a flags byte (bit 0: 32-bit fields instead of 16), two
 * bytes of rows and columns or eight of fill colour (ISO/IEC 23008-12,
 * 6.6.2.3 and 6.6.2.2). */
static enum fv_status check_canvas(struct item_data *d, bool overlay)
{
    uint8_t head[2 + 8 + 8];
    size_t got = item_data_read(d, head, sizeof head);
    if (got < 2)
        return FV_OK;
    unsigned field = head[1] & 1 ? 4 : 2;
    struct span s = {head + 2, got - 2};
    uint64_t width, height;
    if (!span_skip(&s, overlay ? 8 : 2) || !span_uint(&s, field, &width) ||
        !span_uint(&s, field, &height))
        return FV_OK;
    return check_coded(d->check, width, height);
}

/* The type of item `id` from the infe boxes in iinf (infe version 2 or 3;
 * earlier ones describe no images). */
static bool item_type(struct coded_check *c, struct span iinf, uint32_t id, char type[4])
{
    uint64_t version, count;
    if (!span_uint(&iinf, 1, &version) || !span_skip(&iinf, 3) ||
        !span_uint(&iinf, version == 0 ? 2 : 4, &count))
        return false;
    struct box infe;
    while (box_next(&iinf, &infe) == BOX_OK && step(c)) {
        uint64_t infe_version, item;
        struct span s = infe.body;
        if (memcmp(infe.type, "infe", 4) != 0 || !span_uint(&s, 1, &infe_version) ||
            infe_version < 2 || !span_skip(&s, 3) ||
            !span_uint(&s, infe_version == 2 ? 2 : 4, &item) || item != id ||
            !span_skip(&s, 2) || s.left < 4)
            continue;
        memcpy(type, s.at, 4);
        return true;
    }
    return false;
}

static bool valid_field_size(unsigned bytes)
{
    return bytes == 0 || bytes == 4 || bytes == 8;
}

/* Walks the iloc box (ISO/IEC 14496-12 8.11.3) and checks the data of every
 * HEVC, AV1, grid and overlay item. Here a malformed table is refused rather
 * than left to libheif: 1.15 reads field widths other than 0, 4 and 8 as it
 * can, and a decoder must not get data this walk could not follow. */
static enum fv_status check_items(struct coded_check *c, struct span iloc, struct span iinf)
{
    uint64_t version, sizes, more, count;
    if (!span_uint(&iloc, 1, &version) || version > 2 || !span_skip(&iloc, 3) ||
        !span_uint(&iloc, 1, &sizes) || !span_uint(&iloc, 1, &more) ||
        !span_uint(&iloc, version < 2 ? 2 : 4, &count))
        return fv_error_set(c->err, FV_ERR_FORMAT, "corrupt %s: bad iloc header", c->format);
    unsigned offset_size = (unsigned)sizes >> 4, length_size = sizes & 0xf;
    unsigned base_size = (unsigned)more >> 4, index_size = version > 0 ? more & 0xf : 0;
    if (!valid_field_size(offset_size) || !valid_field_size(length_size) ||
        !valid_field_size(base_size) || !valid_field_size(index_size))
        return fv_error_set(c->err, FV_ERR_FORMAT, "corrupt %s: iloc fields of %u, %u, %u "
                            "and %u bytes (0, 4 or 8)", c->format, offset_size, length_size,
                            base_size, index_size);
    for (uint64_t i = 0; i < count; i++) {
        uint64_t id, method = 0, reference, base, extents;
        if (!step(c))
            return fv_error_set(c->err, FV_ERR_FORMAT, "corrupt %s: too many items",
                                c->format);
        if (!span_uint(&iloc, version < 2 ? 2 : 4, &id) ||
            (version > 0 && !span_uint(&iloc, 2, &method)) ||
            !span_uint(&iloc, 2, &reference) || !span_uint(&iloc, base_size, &base) ||
            !span_uint(&iloc, 2, &extents))
            return fv_error_set(c->err, FV_ERR_FORMAT, "corrupt %s: the iloc box ends in "
                                "item %" PRIu64 " of %" PRIu64, c->format, i + 1, count);
        struct span extent_list = iloc;
        if (!span_skip(&iloc, extents * (index_size + offset_size + length_size)))
            return fv_error_set(c->err, FV_ERR_FORMAT, "corrupt %s: the iloc box ends in "
                                "item %" PRIu64 " of %" PRIu64, c->format, i + 1, count);
        method &= 0xf;
        char type[4];
        /* Data in other files (reference) or built from other items
         * (method 2) libheif 1.15 does not read. */
        if (reference != 0 || method > 1 || !item_type(c, iinf, (uint32_t)id, type))
            continue;
        const struct span *source = method == 0 ? &c->file : &c->idat;
        struct item_data d = {c,          extent_list, extents, base, offset_size, length_size,
                              index_size, source,      {NULL, 0}, NULL};
        enum fv_status status = FV_OK;
        bool coded = memcmp(type, "hvc1", 4) == 0 || memcmp(type, "av01", 4) == 0;
        bool canvas = memcmp(type, "grid", 4) == 0 || memcmp(type, "iovl", 4) == 0;
        if (!coded && !canvas)
            continue;
        /* An image item with no bytes would reach the decoder as an empty
         * buffer (dav1d prints a complaint and leaks). */
        if (!item_data_ready(&d) && !d.bad)
            d.bad = "no data";
        if (!d.bad) {
            if (memcmp(type, "hvc1", 4) == 0)
                status = check_hevc_data(&d);
            else if (memcmp(type, "av01", 4) == 0)
                status = check_av1_data(&d);
            else
                status = check_canvas(&d, type[0] == 'i');
        }
        if (status != FV_OK)
            return status;
        if (d.bad)
            return fv_error_set(c->err, FV_ERR_FORMAT, "%s %s: image item %" PRIu64 " has %s",
                                strstr(d.bad, "end of the file") ? "truncated" : "corrupt",
                                c->format, id, d.bad);
    }
    return FV_OK;
}

/* The parameter sets in hvcC boxes (ISO/IEC 14496-15 8.3.3.1: 22 bytes of
 * configuration, then arrays of NAL units each after a 16-bit length) and
 * the OBUs in av1C boxes (after 4 bytes of configuration). */
static enum fv_status check_configurations(struct coded_check *c, struct span ipco)
{
    struct box b;
    while (box_next(&ipco, &b) == BOX_OK) {
        if (!step(c))
            return fv_error_set(c->err, FV_ERR_FORMAT, "corrupt %s: too many properties",
                                c->format);
        if (memcmp(b.type, "av1C", 4) == 0 && b.body.left > 4) {
            struct span obus = {b.body.at + 4, b.body.left - 4};
            uint8_t extent[16] = {0}; /* offset 0, length all of it */
            for (int i = 0; i < 8; i++)
                extent[8 + i] = (uint8_t)((uint64_t)obus.left >> (56 - 8 * i));
            struct span list = {extent, sizeof extent};
            struct item_data d = {c, list, 1, 0, 8, 8, 0, &obus, {NULL, 0}, NULL};
            enum fv_status status = check_av1_data(&d);
            if (status != FV_OK)
                return status;
        }
        if (memcmp(b.type, "hvcC", 4) != 0)
            continue;
        struct span s = b.body;
        uint64_t arrays;
        if (!span_skip(&s, 22) || !span_uint(&s, 1, &arrays))
            continue;
        for (uint64_t i = 0; i < arrays; i++) {
            uint64_t kind, count;
            if (!span_uint(&s, 1, &kind) || !span_uint(&s, 2, &count))
                break;
            for (uint64_t k = 0; k < count; k++) {
                uint64_t size;
                if (!step(c))
                    return fv_error_set(c->err, FV_ERR_FORMAT, "corrupt %s: too many NAL "
                                        "units", c->format);
                if (!span_uint(&s, 2, &size) || size > s.left)
                    goto next_box;
                uint64_t width, height;
                if (size >= 2 && (s.at[0] >> 1 & 0x3f) == 33 &&
                    hevc_sps_size(s.at, (size_t)size, &width, &height)) {
                    enum fv_status status = check_coded(c, width, height);
                    if (status != FV_OK)
                        return status;
                }
                span_skip(&s, size);
            }
        }
    next_box:;
    }
    return FV_OK;
}

/* ---- references ----
 *
 * libheif 1.15 decodes a derived image (grid, overlay, identity) by decoding
 * the items its dimg reference names, and an image's alpha or depth plane by
 * decoding the item whose auxl reference names it, recursively and with no
 * guard against cycles: an item derived from itself, directly or through
 * others, recurses until the stack overflows and the process dies. So the
 * references are followed here first, to a bounded depth. */

struct references {
    struct span boxes; /* the iref box's children */
    unsigned id_size;  /* 2 or 4 bytes, by iref's version */
};

/* Whether decoding item `id` stays within `depth_left` levels of nesting. */
static bool nesting_ok(struct coded_check *c, const struct references *r, uint64_t id,
                       int depth_left)
{
    if (depth_left < 0)
        return false;
    struct span s = r->boxes;
    struct box ref;
    while (box_next(&s, &ref) == BOX_OK) {
        if (!step(c))
            return false;
        bool dimg = memcmp(ref.type, "dimg", 4) == 0, auxl = memcmp(ref.type, "auxl", 4) == 0;
        uint64_t from, count, to;
        struct span body = ref.body;
        if ((!dimg && !auxl) || !span_uint(&body, r->id_size, &from) ||
            !span_uint(&body, 2, &count))
            continue;
        for (uint64_t i = 0; i < count && span_uint(&body, r->id_size, &to); i++) {
            /* decoding `from` decodes its dimg inputs; decoding `to` decodes
             * the auxiliary image `from` */
            if (dimg && from == id && !nesting_ok(c, r, to, depth_left - 1))
                return false;
            if (auxl && to == id && !nesting_ok(c, r, from, depth_left - 1))
                return false;
        }
    }
    return true;
}

static enum fv_status check_references(struct coded_check *c, struct span iref)
{
    uint64_t version;
    if (!span_uint(&iref, 1, &version) || !span_skip(&iref, 3))
        return FV_OK; /* libheif refuses the box */
    struct references r = {iref, version == 0 ? 2 : 4};
    struct box ref;
    while (box_next(&iref, &ref) == BOX_OK) {
        uint64_t from;
        struct span body = ref.body;
        if ((memcmp(ref.type, "dimg", 4) != 0 && memcmp(ref.type, "auxl", 4) != 0) ||
            !span_uint(&body, r.id_size, &from))
            continue;
        /* Each item with inputs, and each auxiliary image, starts a walk:
         * every cycle passes through one of them. */
        if (!nesting_ok(c, &r, from, HEIF_MAX_NESTING))
            return fv_error_set(c->err, FV_ERR_FORMAT, "corrupt %s: item %" PRIu64 " is "
                                "derived from itself, or its images nest more than %d deep",
                                c->format, from, HEIF_MAX_NESTING);
    }
    return FV_OK;
}

/* The references, then the coded sizes, of the file in data. */
static enum fv_status check_meta(const uint8_t *data, size_t size,
                                 const struct fv_image_limits *limits, const char *format,
                                 struct fv_error *err)
{
    struct coded_check c = {{data, size}, {NULL, 0}, limits, format, err, 0};
    struct box meta, iprp, ipco, iloc, iinf, idat, iref;
    if (!box_find(c.file, "meta", &meta) || !span_skip(&meta.body, 4))
        return FV_OK;
    if (box_find(meta.body, "iref", &iref)) {
        enum fv_status status = check_references(&c, iref.body);
        if (status != FV_OK)
            return status;
    }
    if (box_find(meta.body, "idat", &idat))
        c.idat = idat.body;
    if (box_find(meta.body, "iprp", &iprp) && box_find(iprp.body, "ipco", &ipco)) {
        enum fv_status status = check_configurations(&c, ipco.body);
        if (status != FV_OK)
            return status;
    }
    if (box_find(meta.body, "iloc", &iloc) && box_find(meta.body, "iinf", &iinf)) {
        enum fv_status status = check_items(&c, iloc.body, iinf.body);
        if (status != FV_OK)
            return status;
    }
    /* A walk cut short by the bound may have missed a size: refuse. */
    if (c.steps > HEIF_MAX_STEPS)
        return fv_error_set(err, FV_ERR_FORMAT, "corrupt %s: more than %d boxes, table "
                            "entries and NAL units or OBUs", format, HEIF_MAX_STEPS);
    return FV_OK;
}

enum fv_status fv_heif_check(const uint8_t *data, size_t size,
                             const struct fv_image_limits *limits, const char *format,
                             struct fv_error *err)
{
    enum fv_status status = check_top_level(data, size, format, err);
    if (status != FV_OK)
        return status;
    return check_meta(data, size, limits, format, err);
}
