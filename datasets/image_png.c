/* PNG reading and writing with libpng.
 *
 * libpng reports errors by calling an error function that must not return; we
 * install our own, which keeps the message and longjmps back to the setjmp in
 * the caller, so corrupt or truncated files become an error status instead of
 * libpng's default (print to stderr, then abort). Warnings are dropped. */
#include "datasets/image.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* deflate cannot expand data by more than 1032:1 (RFC 1951 block limits), so a
 * file far smaller than its pixels / 1032 cannot hold them: reject it before
 * allocating what its header claims. */
#define DEFLATE_MAX_RATIO 1032

typedef struct PngIo {
    const uint8_t *bytes; /* reading: the whole file */
    size_t size, pos;
    char message[200]; /* libpng's last error message */
} PngIo;

static void on_error(png_structp png, png_const_charp message) {
    PngIo *io = png_get_error_ptr(png);
    snprintf(io->message, sizeof io->message, "%s", message);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

static void read_bytes(png_structp png, png_bytep out, size_t n) {
    PngIo *io = png_get_io_ptr(png);
    if (n > io->size - io->pos) png_error(png, "truncated PNG data");
    memcpy(out, io->bytes + io->pos, n);
    io->pos += n;
}

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

Image *image_decode_png(const uint8_t *bytes, size_t size, const char *name) {
    PngIo io = {.bytes = bytes, .size = size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &io, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        hg_fail(HG_ERR_NOMEM, "image: %s: out of memory starting libpng", name);
        return NULL;
    }
    /* Written after setjmp and read after the longjmp, hence volatile. */
    Image *volatile img = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        image_free(img);
        free(rows);
        hg_fail(HG_ERR_FORMAT, "image: %s: %s", name, io.message);
        return NULL;
    }
    png_set_read_fn(png, &io, read_bytes);
    png_read_info(png, info);

    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    int stored_bits = png_get_bit_depth(png, info) * png_get_channels(png, info);
    if ((double)width * height * stored_bits / 8 > (double)DEFLATE_MAX_RATIO * size + 65536)
        png_error(png, "truncated PNG data (too short for its image size)");

    /* Palette -> RGB, grey below 8 bits -> 8 bits (scaled to 0..255), tRNS -> alpha. */
    png_set_expand(png);
    if (png_get_bit_depth(png, info) == 16 && host_is_little_endian()) png_set_swap(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info), bit_depth = png_get_bit_depth(png, info);
    if (image_check_size(width, height, channels, bit_depth, name) != HG_OK ||
        !(img = image_new((int)width, (int)height, channels, bit_depth))) {
        png_destroy_read_struct(&png, &info, NULL);
        return NULL; /* the message is already set */
    }
    if (png_get_rowbytes(png, info) != image_row_bytes(img)) png_error(png, "unexpected row size");
    rows = malloc(sizeof(png_bytep) * height);
    if (!rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < height; y++) rows[y] = img->data8 + y * image_row_bytes(img);
    png_read_image(png, rows);
    png_read_end(png, NULL);

    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    return img;
}

/* Encodes `img` into the open file `f`; HG_OK or a failure naming `path`. */
static hg_status write_png(FILE *f, const Image *img, const char *path) {
    PngIo io = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &io, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return hg_fail(HG_ERR_NOMEM, "image: %s: out of memory starting libpng", path);
    }
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        return hg_fail(HG_ERR_IO, "image: %s: cannot write PNG: %s", path, io.message);
    }
    static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                       PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, img->bit_depth,
                 color_types[img->channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    if (img->bit_depth == 16 && host_is_little_endian()) png_set_swap(png);
    rows = malloc(sizeof(png_bytep) * (size_t)img->height);
    if (!rows) png_error(png, "out of memory");
    for (int y = 0; y < img->height; y++) rows[y] = img->data8 + (size_t)y * image_row_bytes(img);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return HG_OK;
}

hg_status image_save_png(const char *path, const Image *img) {
    if (!img || !img->data8 || img->width <= 0 || img->height <= 0 || img->channels < 1 ||
        img->channels > 4 || (img->bit_depth != 8 && img->bit_depth != 16))
        return hg_fail(HG_ERR_ARG, "image: %s: cannot save an invalid image", path);
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) return hg_fail(HG_ERR_NOMEM, "image: %s: out of memory", path);
    snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        free(tmp);
        return hg_fail(HG_ERR_IO, "image: %s: cannot create a temporary file", path);
    }
    fchmod(fd, 0644); /* mkstemp makes 0600; an image should be readable like any file */
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        free(tmp);
        return hg_fail(HG_ERR_IO, "image: %s: cannot open a temporary file", path);
    }
    hg_status status = write_png(f, img, path);
    if (fflush(f) != 0 || ferror(f)) {
        if (status == HG_OK) status = hg_fail(HG_ERR_IO, "image: %s: write error", path);
    }
    if (fclose(f) != 0 && status == HG_OK)
        status = hg_fail(HG_ERR_IO, "image: %s: write error", path);
    if (status == HG_OK && rename(tmp, path) != 0)
        status = hg_fail(HG_ERR_IO, "image: %s: cannot rename the temporary file", path);
    if (status != HG_OK) unlink(tmp);
    free(tmp);
    return status;
}
