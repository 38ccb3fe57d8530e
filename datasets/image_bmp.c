/* BMP decoding (our own reader; no library).
 *
 * Layout (Microsoft "Bitmap Storage" documentation): a 14-byte file header
 * ("BM", file size, 2 reserved, offset of the pixel array), then a DIB header
 * whose first u32 is its size: 12 = BITMAPCOREHEADER (OS/2 1.x, 16-bit sizes,
 * 3-byte palette entries), 40 = BITMAPINFOHEADER, 52/56 = V2/V3 (+RGB/+A masks),
 * 108 = V4, 124 = V5. A colour table follows the header (4-byte BGRx entries,
 * 3-byte for the core header); with a 40-byte header and BI_BITFIELDS the three
 * (BI_ALPHABITFIELDS: four) masks sit between the header and the table.
 * Rows are padded to 4 bytes and stored bottom-up unless the height is negative.
 * All integers are little-endian.
 *
 * Supported: 1/4/8-bit palette, 16-bit (5-5-5 or bitfields), 24-bit BGR,
 * 32-bit (BGRx or bitfields, alpha only with an alpha mask, as PIL decides),
 * compression BI_RGB, BI_BITFIELDS and BI_ALPHABITFIELDS. RLE and embedded
 * JPEG/PNG are rejected as unsupported. A palette of greys gives a 1-channel
 * image (as PIL opens it as mode "L"); palette indices past the table read as
 * black. */
#include "datasets/image.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum { BI_RGB = 0, BI_RLE8 = 1, BI_RLE4 = 2, BI_BITFIELDS = 3, BI_JPEG = 4, BI_PNG = 5 };
enum { BI_ALPHABITFIELDS = 6 };

static uint16_t u16le(const uint8_t *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One channel's bitfield: value = (pixel & mask) >> shift, scaled from `bits` bits to 8. */
typedef struct Field {
    uint32_t mask;
    int shift, bits;
} Field;

/* false when the mask is not one contiguous run of bits. */
static bool field_init(Field *f, uint32_t mask) {
    f->mask = mask;
    f->shift = f->bits = 0;
    if (mask == 0) return true;
    while (!(mask & 1u)) mask >>= 1, f->shift++;
    while (mask & 1u) mask >>= 1, f->bits++;
    return mask == 0;
}

static uint8_t field_get(const Field *f, uint32_t pixel) {
    if (f->bits == 0) return 0;
    uint64_t v = (pixel & f->mask) >> f->shift;
    if (f->bits == 8) return (uint8_t)v;
    uint64_t max = ((uint64_t)1 << f->bits) - 1;
    return (uint8_t)((v * 255 + max / 2) / max);
}

typedef struct BmpInfo {
    int64_t width, height; /* height > 0 */
    bool top_down;
    int bpp;
    uint32_t compression;
    uint32_t masks[4];       /* R, G, B, A for 16/32-bit */
    int n_colors;            /* palette entries read */
    uint8_t palette[256][3]; /* RGB */
    bool grey_palette;
    size_t pixel_offset;
} BmpInfo;

static Image *fail_null(hg_status code, const char *name, const char *what) {
    hg_fail(code, "image: %s: %s", name, what);
    return NULL;
}

/* Parses the headers, masks and palette. Returns NULL on success, else the
 * problem; `*unsupported` tells a valid-but-unhandled file from a corrupt one. */
static const char *parse_headers(const uint8_t *b, size_t size, BmpInfo *info, bool *unsupported) {
    *unsupported = false;
    if (size < 18) return "truncated BMP data";
    info->pixel_offset = u32le(b + 10);
    uint32_t header_size = u32le(b + 14);
    bool core = header_size == 12;
    if (!core && header_size != 40 && header_size != 52 && header_size != 56 &&
        header_size != 108 && header_size != 124) {
        *unsupported = true;
        return "unsupported BMP header size";
    }
    if (size < 14 + (size_t)header_size) return "truncated BMP data";
    const uint8_t *h = b + 14;
    int32_t height;
    if (core) {
        info->width = u16le(h + 4);
        height = (int16_t)u16le(h + 6);
        info->bpp = u16le(h + 10);
        info->compression = BI_RGB;
    } else {
        info->width = (int32_t)u32le(h + 4);
        height = (int32_t)u32le(h + 8);
        info->bpp = u16le(h + 14);
        info->compression = u32le(h + 16);
    }
    if (info->width <= 0 || height == 0 || height == INT32_MIN) return "invalid BMP image size";
    info->top_down = height < 0;
    info->height = height < 0 ? -(int64_t)height : height;

    int bpp = info->bpp;
    if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32) {
        *unsupported = true;
        return "unsupported BMP bit count";
    }
    size_t table = 14 + (size_t)header_size; /* where the masks or the palette start */
    switch (info->compression) {
    case BI_RGB:
        if (bpp == 16) {
            info->masks[0] = 0x7C00, info->masks[1] = 0x03E0, info->masks[2] = 0x001F;
        } else if (bpp == 32) {
            info->masks[0] = 0xFF0000, info->masks[1] = 0xFF00, info->masks[2] = 0xFF;
        }
        info->masks[3] = 0;
        break;
    case BI_BITFIELDS:
    case BI_ALPHABITFIELDS: {
        if (bpp != 16 && bpp != 32) return "BMP bitfields need 16 or 32 bits per pixel";
        int n_masks = info->compression == BI_ALPHABITFIELDS ? 4 : 3;
        const uint8_t *m = h + 40;
        if (header_size == 40) {
            if (size < table + 4 * (size_t)n_masks) return "truncated BMP data";
            m = b + table;
            table += 4 * (size_t)n_masks;
        } else if (header_size >= 56) {
            n_masks = 4;
        }
        for (int i = 0; i < 4; i++) info->masks[i] = i < n_masks ? u32le(m + 4 * i) : 0;
        break;
    }
    case BI_RLE8:
    case BI_RLE4:
        *unsupported = true;
        return "RLE-compressed BMP is not supported";
    case BI_JPEG:
    case BI_PNG:
        *unsupported = true;
        return "JPEG/PNG-compressed BMP is not supported";
    default:
        *unsupported = true;
        return "unknown BMP compression";
    }

    info->n_colors = 0;
    info->grey_palette = true;
    if (bpp <= 8) {
        uint32_t used = core ? 0 : u32le(h + 32);
        uint32_t n = used == 0 || used > (1u << bpp) ? 1u << bpp : used;
        size_t entry = core ? 3 : 4;
        /* Some writers declare more entries than they store; read what fits before the pixels. */
        if (info->pixel_offset >= table && (info->pixel_offset - table) / entry < n)
            n = (uint32_t)((info->pixel_offset - table) / entry);
        if (size < table + n * entry) return "truncated BMP data";
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *e = b + table + i * entry;
            info->palette[i][0] = e[2], info->palette[i][1] = e[1], info->palette[i][2] = e[0];
            if (e[0] != e[1] || e[1] != e[2]) info->grey_palette = false;
        }
        info->n_colors = (int)n;
        for (int i = (int)n; i < 256; i++)
            info->palette[i][0] = info->palette[i][1] = info->palette[i][2] = 0;
    }
    if (info->pixel_offset < table) return "invalid BMP pixel data offset";
    return NULL;
}

Image *image_decode_bmp(const uint8_t *bytes, size_t size, const char *name) {
    BmpInfo info;
    bool unsupported;
    const char *problem = parse_headers(bytes, size, &info, &unsupported);
    if (problem) return fail_null(unsupported ? HG_ERR_UNSUPPORTED : HG_ERR_FORMAT, name, problem);

    int bpp = info.bpp;
    Field fields[4];
    bool has_alpha = false;
    if (bpp == 16 || bpp == 32) {
        for (int i = 0; i < 4; i++) {
            uint32_t limit = bpp == 16 ? 0xFFFFu : 0xFFFFFFFFu;
            if (!field_init(&fields[i], info.masks[i]) || info.masks[i] > limit ||
                (i < 3 && info.masks[i] == 0))
                return fail_null(HG_ERR_FORMAT, name, "invalid BMP bitfield masks");
        }
        has_alpha = info.masks[3] != 0;
    }
    int channels = bpp <= 8 ? (info.grey_palette ? 1 : 3) : (has_alpha ? 4 : 3);
    if (image_check_size(info.width, info.height, channels, 8, name) != HG_OK) return NULL;

    /* Rows are padded to a multiple of 4 bytes; the last row's padding may be missing. */
    uint64_t stride = ((uint64_t)bpp * (uint64_t)info.width + 31) / 32 * 4;
    uint64_t last_row = ((uint64_t)bpp * (uint64_t)info.width + 7) / 8;
    if (info.pixel_offset > size ||
        (uint64_t)(size - info.pixel_offset) < stride * (uint64_t)(info.height - 1) + last_row)
        return fail_null(HG_ERR_FORMAT, name, "truncated BMP data");

    Image *img = image_new((int)info.width, (int)info.height, channels, 8);
    if (!img) return NULL;
    int64_t w = info.width;
    for (int64_t y = 0; y < info.height; y++) {
        int64_t src_row = info.top_down ? y : info.height - 1 - y;
        const uint8_t *src = bytes + info.pixel_offset + (size_t)(stride * (uint64_t)src_row);
        uint8_t *dst = img->data8 + (size_t)y * image_row_bytes(img);
        for (int64_t x = 0; x < w; x++) {
            if (bpp <= 8) {
                /* Pixels are packed from the most significant bits of each byte. */
                int64_t bit = x * bpp;
                int index = (src[bit / 8] >> (8 - bpp - bit % 8)) & ((1 << bpp) - 1);
                const uint8_t *rgb = info.palette[index]; /* past n_colors: black */
                if (channels == 1)
                    dst[x] = rgb[0];
                else
                    memcpy(dst + 3 * x, rgb, 3);
            } else if (bpp == 24) {
                dst[3 * x] = src[3 * x + 2];
                dst[3 * x + 1] = src[3 * x + 1];
                dst[3 * x + 2] = src[3 * x];
            } else {
                uint32_t pixel = bpp == 16 ? u16le(src + 2 * x) : u32le(src + 4 * x);
                for (int c = 0; c < channels; c++)
                    dst[channels * x + c] = field_get(&fields[c], pixel);
            }
        }
    }
    return img;
}
