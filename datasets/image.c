/* Image allocation, loading by content, and pixel-format conversions. */
#include "datasets/image.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest decoded buffer we allocate: bounds the memory a corrupt header can claim. */
#define IMAGE_MAX_BYTES ((int64_t)1 << 30)

hg_status image_check_size(int64_t width, int64_t height, int channels, int bit_depth,
                           const char *name) {
    if (width <= 0 || height <= 0)
        return hg_fail(HG_ERR_FORMAT, "image: %s: invalid size %lldx%lld", name, (long long)width,
                       (long long)height);
    if (channels < 1 || channels > 4 || (bit_depth != 8 && bit_depth != 16))
        return hg_fail(HG_ERR_UNSUPPORTED, "image: %s: %d channels of %d bits are not supported",
                       name, channels, bit_depth);
    /* Each factor is < 2^31, so test step by step to avoid overflow. */
    int64_t bytes = width * channels * (bit_depth / 8);
    if (bytes > IMAGE_MAX_BYTES || height > IMAGE_MAX_BYTES / bytes)
        return hg_fail(HG_ERR_UNSUPPORTED, "image: %s: %lldx%lld image exceeds the 1 GiB limit",
                       name, (long long)width, (long long)height);
    return HG_OK;
}

size_t image_row_bytes(const Image *img) {
    return (size_t)img->width * (size_t)img->channels * (size_t)(img->bit_depth / 8);
}

size_t image_size_bytes(const Image *img) {
    return image_row_bytes(img) * (size_t)img->height;
}

Image *image_new(int width, int height, int channels, int bit_depth) {
    if (image_check_size(width, height, channels, bit_depth, "new image") != HG_OK) return NULL;
    Image *img = calloc(1, sizeof *img);
    if (!img) {
        hg_fail(HG_ERR_NOMEM, "image: out of memory");
        return NULL;
    }
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->bit_depth = bit_depth;
    img->data8 = calloc(image_size_bytes(img), 1);
    if (!img->data8) {
        free(img);
        hg_fail(HG_ERR_NOMEM, "image: out of memory for a %dx%dx%d image", width, height, channels);
        return NULL;
    }
    return img;
}

void image_free(Image *img) {
    if (!img) return;
    free(img->data8);
    free(img);
}

Image *image_decode(const uint8_t *bytes, size_t size, const char *name) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size == 0) {
        hg_fail(HG_ERR_FORMAT, "image: %s: empty file", name);
        return NULL;
    }
    if (size >= 8 && memcmp(bytes, png_magic, 8) == 0) return image_decode_png(bytes, size, name);
    if (size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        return image_decode_jpeg(bytes, size, name);
    if (size >= 2 && bytes[0] == 'B' && bytes[1] == 'M') return image_decode_bmp(bytes, size, name);
    hg_fail(HG_ERR_FORMAT, "image: %s: unknown image format (not PNG, JPEG or BMP)", name);
    return NULL;
}

/* Reads a whole file; the decoders then work on memory with exact bounds. */
static uint8_t *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        hg_fail(HG_ERR_IO, "image: %s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) break;
        if (cap >= (size_t)IMAGE_MAX_BYTES) {
            free(buf);
            fclose(f);
            hg_fail(HG_ERR_UNSUPPORTED, "image: %s: file larger than 1 GiB", path);
            return NULL;
        }
        uint8_t *grown = realloc(buf, cap * 2);
        if (!grown) free(buf);
        buf = grown;
        cap *= 2;
    }
    if (!buf) {
        fclose(f);
        hg_fail(HG_ERR_NOMEM, "image: %s: out of memory reading the file", path);
        return NULL;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        hg_fail(HG_ERR_IO, "image: %s: read error", path);
        return NULL;
    }
    *size = len;
    return buf;
}

Image *image_load(const char *path) {
    size_t size = 0;
    uint8_t *bytes = read_file(path, &size);
    if (!bytes) return NULL;
    Image *img = image_decode(bytes, size, path);
    free(bytes);
    return img;
}

/* Sample c of pixel i as 8 bits (the high byte of a 16-bit sample). */
static inline uint8_t sample8(const Image *img, size_t i, int c) {
    size_t k = i * (size_t)img->channels + (size_t)c;
    return img->bit_depth == 8 ? img->data8[k] : (uint8_t)(img->data16[k] >> 8);
}

Image *image_to_rgb8(const Image *img) {
    if (!img) {
        hg_fail(HG_ERR_ARG, "image_to_rgb8: NULL image");
        return NULL;
    }
    Image *out = image_new(img->width, img->height, 3, 8);
    if (!out) return NULL;
    size_t n = (size_t)img->width * (size_t)img->height;
    bool colour = img->channels >= 3;
#pragma omp parallel for if (n > 1 << 18)
    for (size_t i = 0; i < n; i++) {
        uint8_t *px = out->data8 + 3 * i;
        if (colour) {
            px[0] = sample8(img, i, 0);
            px[1] = sample8(img, i, 1);
            px[2] = sample8(img, i, 2);
        } else {
            px[0] = px[1] = px[2] = sample8(img, i, 0);
        }
    }
    return out;
}

Image *image_to_grey8(const Image *img) {
    if (!img) {
        hg_fail(HG_ERR_ARG, "image_to_grey8: NULL image");
        return NULL;
    }
    Image *out = image_new(img->width, img->height, 1, 8);
    if (!out) return NULL;
    size_t n = (size_t)img->width * (size_t)img->height;
    bool colour = img->channels >= 3;
#pragma omp parallel for if (n > 1 << 18)
    for (size_t i = 0; i < n; i++) {
        if (colour) {
            /* PIL's L24 macro: the weights sum to 65536, so white stays 255. */
            uint32_t l = 19595u * sample8(img, i, 0) + 38470u * sample8(img, i, 1) +
                         7471u * sample8(img, i, 2) + 0x8000u;
            out->data8[i] = (uint8_t)(l >> 16);
        } else {
            out->data8[i] = sample8(img, i, 0);
        }
    }
    return out;
}

Tensor *image_to_tensor(const Image *img) {
    Image *rgb = image_to_rgb8(img);
    if (!rgb) return NULL;
    int64_t h = rgb->height, w = rgb->width, plane = h * w;
    Tensor *t = tensor_empty(SHAPE(3, h, w));
    if (!t) {
        image_free(rgb);
        return NULL;
    }
    float *dst = tensor_data(t);
#pragma omp parallel for if (plane > 1 << 18)
    for (int64_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) dst[c * plane + i] = rgb->data8[3 * i + c] / 255.0f;
    image_free(rgb);
    return t;
}
