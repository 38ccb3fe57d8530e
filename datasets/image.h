/* Decoded raster images and their conversions.
 *
 * An Image holds width x height pixels of `channels` interleaved samples
 * (row-major, HWC): 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA. Samples are uint8_t
 * when bit_depth is 8 and native-endian uint16_t when it is 16; `data8` and
 * `data16` are two names for the same buffer.
 *
 * image_load() decodes PNG (libpng), JPEG (libjpeg-turbo) and BMP (our own
 * reader), recognised by their first bytes, never by the file name. Every
 * failure returns NULL (or a status) with a one-line message naming the file,
 * e.g. "image: /data/x.png: truncated PNG data"; nothing is printed. */
#ifndef HG_IMAGE_H
#define HG_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/error.h"
#include "tensor/tensor.h"

typedef struct Image {
    int width, height;
    int channels;  /* 1..4, see above */
    int bit_depth; /* 8 or 16 */
    union {
        uint8_t *data8;   /* bit_depth 8 */
        uint16_t *data16; /* bit_depth 16 */
    };
} Image;

/* A zero-filled image; NULL on bad arguments or when it would exceed the
 * decoder size limit (1 GiB of samples). */
Image *image_new(int width, int height, int channels, int bit_depth);
void image_free(Image *img); /* NULL is fine */
/* Bytes in one row / in the whole buffer. */
size_t image_row_bytes(const Image *img);
size_t image_size_bytes(const Image *img);

/* Decodes a PNG, JPEG or BMP file. PNG keeps its depth (8 or 16 bits; lower
 * depths are scaled to 8) and its channels (palette expands to RGB, tRNS to
 * an alpha channel); JPEG gives grey or RGB; BMP gives grey (grey palettes),
 * RGB or RGBA (32-bit with an alpha mask). */
Image *image_load(const char *path);
/* The same from bytes in memory; `name` is used in error messages. */
Image *image_decode(const uint8_t *bytes, size_t size, const char *name);

/* Writes a PNG atomically: to a temporary file in the same directory, then
 * renamed over `path`, so readers never see a half-written file. */
hg_status image_save_png(const char *path, const Image *img);

/* 3-channel 8-bit copy, as PIL's convert('RGB'): grey is replicated, alpha is
 * dropped (not composited), 16-bit samples keep their high byte (as PIL does
 * for 16-bit RGB PNGs and libpng's png_set_strip_16). */
Image *image_to_rgb8(const Image *img);
/* 1-channel 8-bit copy, as PIL's convert('L'): L = (19595 R + 38470 G + 7471 B
 * + 2^15) >> 16 (ITU-R 601-2 luma in 16-bit fixed point), alpha dropped. */
Image *image_to_grey8(const Image *img);
/* float32 tensor (3, H, W) in [0, 1]: image_to_rgb8() then / 255, matching
 * torchvision's ToTensor() on the PIL RGB image. */
Tensor *image_to_tensor(const Image *img);

/* ---- internal to datasets/ ---- */
/* HG_OK when a width x height x channels image of `bit_depth` is allowed;
 * otherwise fails with "image: NAME: ..." (HG_ERR_FORMAT or HG_ERR_UNSUPPORTED). */
hg_status image_check_size(int64_t width, int64_t height, int channels, int bit_depth,
                           const char *name);
/* Decoders behind image_decode(); `bytes` starts with the format's magic number. */
Image *image_decode_png(const uint8_t *bytes, size_t size, const char *name);
Image *image_decode_jpeg(const uint8_t *bytes, size_t size, const char *name);
Image *image_decode_bmp(const uint8_t *bytes, size_t size, const char *name);

#endif
