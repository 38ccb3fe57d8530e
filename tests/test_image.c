/* Image I/O: PNG round trips and every PNG colour type (written here with
 * libpng), BMP files built byte by byte, JPEG files encoded here with libjpeg,
 * corrupt and truncated files of each format, conversions, and the MVTec AD
 * bottle images when ../shared is present. */
#include "tests/testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "datasets/image.h"
#include "tensor/rng.h"

/* ---- scratch directory and file helpers ---- */

static char scratch[64];

static int make_scratch(void **state) {
    (void)state;
    snprintf(scratch, sizeof scratch, "/tmp/hg_test_image_XXXXXX");
    return mkdtemp(scratch) ? 0 : -1;
}

static int remove_scratch(void **state) {
    (void)state;
    DIR *d = opendir(scratch);
    if (!d) return 0;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", scratch, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(scratch);
    return 0;
}

/* Path of `name` in the scratch directory; four rotating buffers. */
static const char *scratch_path(const char *name) {
    static char bufs[4][512];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, 512, "%s/%s", scratch, name);
    return p;
}

/* Files left behind by image_save_png's temporary-file step. */
static int count_temp_files(void) {
    DIR *d = opendir(scratch);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static void write_file(const char *path, const uint8_t *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static uint8_t *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Asserts that loading `path` fails with `status` and a message "image: PATH: ..."
 * containing `fragment`, and that nothing was printed to stderr meanwhile. */
static void assert_load_fails(const char *path, hg_status status, const char *fragment) {
    fflush(stderr);
    int saved = dup(2);
    static char log[512];
    snprintf(log, sizeof log, "%s/stderr.log", scratch);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    hg_clear_error();
    Image *img = image_load(path);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    size_t printed;
    uint8_t *out = read_whole(log, &printed);
    free(out);
    unlink(log);
    if (img) {
        image_free(img);
        fail_msg("%s loaded, expected an error containing \"%s\"", path, fragment);
    }
    char prefix[600];
    snprintf(prefix, sizeof prefix, "image: %s: ", path);
    if (strncmp(hg_last_error(), prefix, strlen(prefix)) != 0 ||
        !strstr(hg_last_error(), fragment) || hg_last_status() != status)
        fail_msg("%s: got \"%s\" (%s), expected \"%s...%s\" (%s)", path, hg_last_error(),
                 hg_status_name(hg_last_status()), prefix, fragment, hg_status_name(status));
    assert_int_equal(printed, 0);
}

/* ---- PNG ---- */

/* 8- and 16-bit test patterns whose high and low bytes both vary. */
static unsigned pattern(int x, int y, int c, int depth) {
    return depth == 8 ? (unsigned)(x * 31 + y * 17 + c * 50 + 3) & 0xFF
                      : (unsigned)(x * 4099 + y * 257 + c * 12345 + 7) & 0xFFFF;
}

static void test_png_round_trip_all_layouts(void **state) {
    (void)state;
    const char *path = scratch_path("round.png");
    for (int depth = 8; depth <= 16; depth += 8) {
        for (int ch = 1; ch <= 4; ch++) {
            Image *img = image_new(7, 5, ch, depth);
            assert_ok_ptr(img);
            for (int y = 0; y < 5; y++)
                for (int x = 0; x < 7; x++)
                    for (int c = 0; c < ch; c++) {
                        size_t k = ((size_t)y * 7 + (size_t)x) * (size_t)ch + (size_t)c;
                        if (depth == 8)
                            img->data8[k] = (uint8_t)pattern(x, y, c, 8);
                        else
                            img->data16[k] = (uint16_t)pattern(x, y, c, 16);
                    }
            /* Saving (over the previous file after the first time) leaves no temporary. */
            assert_ok(image_save_png(path, img));
            assert_int_equal(count_temp_files(), 0);
            Image *back = image_load(path);
            assert_ok_ptr(back);
            assert_int_equal(back->width, 7);
            assert_int_equal(back->height, 5);
            assert_int_equal(back->channels, ch);
            assert_int_equal(back->bit_depth, depth);
            assert_memory_equal(back->data8, img->data8, image_size_bytes(img));
            image_free(back);
            image_free(img);
        }
    }
    /* The 16-bit file stores big-endian samples (PNG spec 7.1): read one back raw. */
    Image *one = image_new(1, 1, 1, 16);
    one->data16[0] = 0x1234;
    assert_ok(image_save_png(path, one));
    FILE *f = fopen(path, "rb");
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng failed reading the test file");
    png_init_io(png, f);
    png_read_info(png, info);
    uint8_t stored[2];
    png_read_row(png, stored, NULL); /* no transforms: the bytes as stored */
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    assert_int_equal(stored[0], 0x12);
    assert_int_equal(stored[1], 0x34);
    image_free(one);
    unlink(path);
}

static void test_png_save_failures(void **state) {
    (void)state;
    Image *img = image_new(2, 2, 3, 8);
    const char *bad = "/nonexistent-dir-hg/x.png";
    hg_clear_error();
    assert_int_equal(image_save_png(bad, img), HG_ERR_IO);
    assert_non_null(strstr(hg_last_error(), bad));
    Image broken = *img;
    broken.channels = 5;
    assert_int_equal(image_save_png(scratch_path("bad.png"), &broken), HG_ERR_ARG);
    assert_int_equal(access(scratch_path("bad.png"), F_OK), -1);
    image_free(img);
}

/* A PNG written by libpng directly: rows are raw PNG rows (packed bits, big-endian 16-bit). */
typedef struct PngSpec {
    int width, height, bit_depth, color_type, interlace;
    const png_color *palette;
    int n_palette;
    const uint8_t *trns; /* palette alpha */
    int n_trns;
    const png_color_16 *trns_color; /* grey/RGB transparent colour */
} PngSpec;

static void write_png_spec(const char *path, const PngSpec *s, uint8_t *const *rows) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng failed writing the test file");
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)s->width, (png_uint_32)s->height, s->bit_depth,
                 s->color_type, s->interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (s->palette) png_set_PLTE(png, info, s->palette, s->n_palette);
    if (s->trns || s->trns_color) png_set_tRNS(png, info, s->trns, s->n_trns, s->trns_color);
    png_write_info(png, info);
    png_write_image(png, (png_bytepp)rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static Image *load_ok(const char *path, int w, int h, int channels, int depth) {
    Image *img = image_load(path);
    assert_ok_ptr(img);
    assert_int_equal(img->width, w);
    assert_int_equal(img->height, h);
    assert_int_equal(img->channels, channels);
    assert_int_equal(img->bit_depth, depth);
    return img;
}

static void test_png_palette_and_transparency(void **state) {
    (void)state;
    const char *path = scratch_path("palette.png");
    const png_color pal[4] = {{10, 20, 30}, {200, 100, 0}, {0, 255, 7}, {1, 2, 3}};
    /* 8-bit palette, 3x2, indices 0..3. */
    uint8_t r0[3] = {0, 1, 2}, r1[3] = {3, 2, 1};
    uint8_t *rows[2] = {r0, r1};
    PngSpec s = {3, 2, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, pal, 4, NULL, 0, NULL};
    write_png_spec(path, &s, rows);
    Image *img = load_ok(path, 3, 2, 3, 8);
    for (int i = 0; i < 6; i++) {
        int idx = i < 3 ? r0[i] : r1[i - 3];
        assert_int_equal(img->data8[3 * i], pal[idx].red);
        assert_int_equal(img->data8[3 * i + 1], pal[idx].green);
        assert_int_equal(img->data8[3 * i + 2], pal[idx].blue);
    }
    image_free(img);

    /* 2-bit palette with tRNS for the first two entries: RGBA, the rest opaque.
     * Row of 5 pixels, indices 3 0 1 2 3 packed MSB first: 11 00 01 10 | 11 000000. */
    const uint8_t alpha[2] = {0, 128};
    uint8_t packed[2] = {0xC6, 0xC0};
    uint8_t *prow[1] = {packed};
    PngSpec t = {5, 1, 2, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, pal, 4, alpha, 2, NULL};
    write_png_spec(path, &t, prow);
    img = load_ok(path, 5, 1, 4, 8);
    const int idx[5] = {3, 0, 1, 2, 3};
    for (int x = 0; x < 5; x++) {
        assert_int_equal(img->data8[4 * x], pal[idx[x]].red);
        assert_int_equal(img->data8[4 * x + 1], pal[idx[x]].green);
        assert_int_equal(img->data8[4 * x + 2], pal[idx[x]].blue);
        assert_int_equal(img->data8[4 * x + 3], idx[x] < 2 ? alpha[idx[x]] : 255);
    }
    /* As PIL's convert('RGB'): the palette colours, alpha ignored. */
    Image *rgb = image_to_rgb8(img);
    for (int x = 0; x < 5; x++) assert_int_equal(rgb->data8[3 * x + 1], pal[idx[x]].green);
    image_free(rgb);
    image_free(img);

    /* 8-bit grey with a transparent grey value 7: grey + alpha. */
    uint8_t g[4] = {0, 7, 200, 7};
    uint8_t *grow[1] = {g};
    png_color_16 key = {.gray = 7};
    PngSpec u = {4, 1, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, &key};
    write_png_spec(path, &u, grow);
    img = load_ok(path, 4, 1, 2, 8);
    for (int x = 0; x < 4; x++) {
        assert_int_equal(img->data8[2 * x], g[x]);
        assert_int_equal(img->data8[2 * x + 1], g[x] == 7 ? 0 : 255);
    }
    image_free(img);
    unlink(path);
}

static void test_png_low_bit_grey_scales_to_8_bits(void **state) {
    (void)state;
    const char *path = scratch_path("grey.png");
    /* 8 pixels per depth: values v (0 .. 2^d - 1) -> v * 255 / (2^d - 1). */
    const uint8_t v1[8] = {1, 0, 1, 1, 0, 0, 1, 0};
    const uint8_t v2[8] = {0, 1, 2, 3, 3, 2, 1, 0};
    const uint8_t v4[8] = {0, 15, 7, 8, 1, 14, 3, 12};
    const uint8_t *values[3] = {v1, v2, v4};
    const int depths[3] = {1, 2, 4};
    for (int k = 0; k < 3; k++) {
        int d = depths[k];
        uint8_t packed[4] = {0};
        for (int x = 0; x < 8; x++)
            packed[x * d / 8] |= (uint8_t)(values[k][x] << (8 - d - x * d % 8));
        uint8_t *rows[1] = {packed};
        PngSpec s = {8, 1, d, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, NULL};
        write_png_spec(path, &s, rows);
        Image *img = load_ok(path, 8, 1, 1, 8);
        for (int x = 0; x < 8; x++)
            assert_int_equal(img->data8[x], values[k][x] * 255 / ((1 << d) - 1));
        image_free(img);
    }
    unlink(path);
}

static void test_png_16_bit_and_interlaced(void **state) {
    (void)state;
    const char *path = scratch_path("deep.png");
    /* 16-bit RGB and grey+alpha: the file holds big-endian bytes; we expect native values. */
    const int types[2] = {PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_GRAY_ALPHA};
    const int chans[2] = {3, 2};
    for (int k = 0; k < 2; k++) {
        int ch = chans[k], w = 3, h = 2;
        uint8_t data[2][3 * 3 * 2];
        uint8_t *rows[2] = {data[0], data[1]};
        for (int y = 0; y < h; y++)
            for (int i = 0; i < w * ch; i++) {
                unsigned v = pattern(i, y, k, 16);
                data[y][2 * i] = (uint8_t)(v >> 8);
                data[y][2 * i + 1] = (uint8_t)v;
            }
        PngSpec s = {w, h, 16, types[k], PNG_INTERLACE_NONE, NULL, 0, NULL, 0, NULL};
        write_png_spec(path, &s, rows);
        Image *img = load_ok(path, w, h, ch, 16);
        for (int y = 0; y < h; y++)
            for (int i = 0; i < w * ch; i++)
                assert_int_equal(img->data16[y * w * ch + i], pattern(i, y, k, 16));
        /* 8-bit conversion keeps the high byte. */
        Image *rgb = image_to_rgb8(img);
        assert_int_equal(rgb->data8[0], pattern(0, 0, k, 16) >> 8);
        assert_int_equal(rgb->data8[2], pattern(ch == 3 ? 2 : 0, 0, k, 16) >> 8);
        image_free(rgb);
        image_free(img);
    }
    /* Adam7-interlaced RGBA, 13x11 (all seven passes non-empty). */
    int w = 13, h = 11;
    uint8_t *rows[11];
    uint8_t buf[11][13 * 4];
    for (int y = 0; y < h; y++) {
        rows[y] = buf[y];
        for (int i = 0; i < w * 4; i++) buf[y][i] = (uint8_t)pattern(i / 4, y, i % 4, 8);
    }
    PngSpec s = {w, h, 8, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_ADAM7, NULL, 0, NULL, 0, NULL};
    write_png_spec(path, &s, rows);
    Image *img = load_ok(path, w, h, 4, 8);
    for (int y = 0; y < h; y++) assert_memory_equal(img->data8 + y * w * 4, buf[y], (size_t)w * 4);
    image_free(img);
    unlink(path);
}

static uint8_t *small_png_bytes(size_t *n) {
    const char *path = scratch_path("small.png");
    Image *img = image_new(40, 30, 3, 8);
    Rng rng = rng_new(3);
    for (size_t i = 0; i < image_size_bytes(img); i++)
        img->data8[i] = (uint8_t)rng_below(&rng, 256);
    assert_ok(image_save_png(path, img));
    image_free(img);
    uint8_t *b = read_whole(path, n);
    unlink(path);
    return b;
}

/* The PNG chunk CRC (ISO 3309 CRC-32, reflected polynomial 0xEDB88320), bit by bit. */
static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void test_png_corrupt_and_truncated(void **state) {
    (void)state;
    size_t n;
    uint8_t *b = small_png_bytes(&n);
    const char *path = scratch_path("broken.png");
    write_file(path, b, n / 2);
    assert_load_fails(path, HG_ERR_FORMAT, "truncated");
    write_file(path, b, 20); /* inside IHDR */
    assert_load_fails(path, HG_ERR_FORMAT, "truncated");
    /* A flipped byte inside the IDAT data breaks its CRC (critical chunk: an error). */
    b[n / 2] ^= 0x55;
    write_file(path, b, n);
    assert_load_fails(path, HG_ERR_FORMAT, "");
    b[n / 2] ^= 0x55;
    /* A valid header claiming 60000 x 60000 pixels in a 300-byte file is
     * rejected before allocating 10 GB. */
    uint8_t *big = malloc(n);
    memcpy(big, b, n);
    big[16] = big[20] = 0, big[17] = big[21] = 0, big[18] = big[22] = 0xEA,
    big[19] = big[23] = 0x60;
    uint32_t crc = crc32_of(big + 12, 17); /* chunk type + 13 data bytes */
    for (int i = 0; i < 4; i++) big[29 + i] = (uint8_t)(crc >> (24 - 8 * i));
    write_file(path, big, 300);
    assert_load_fails(path, HG_ERR_FORMAT, "too short for its image size");
    free(big);
    free(b);
    unlink(path);
}

static void test_unknown_empty_and_missing_files(void **state) {
    (void)state;
    const char *path = scratch_path("text.png");
    write_file(path, (const uint8_t *)"hello, not an image", 19);
    assert_load_fails(path, HG_ERR_FORMAT, "unknown image format");
    write_file(path, (const uint8_t *)"", 0);
    assert_load_fails(path, HG_ERR_FORMAT, "empty");
    unlink(path);
    assert_load_fails(scratch_path("missing.png"), HG_ERR_IO, "cannot open");
}

/* ---- BMP ---- */

static void put16(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A BMP with the given DIB header size. `pixels` are top row first, one
 * uint32 per pixel: a palette index (bpp <= 8), 0xRRGGBB (24), or the raw
 * little-endian pixel value (16, 32). Masks go inside V2+ headers, or after a
 * 40-byte header when compression is BI_BITFIELDS (3) or BI_ALPHABITFIELDS (6). */
typedef struct BmpSpec {
    int header_size, bpp;
    int32_t width, height; /* height < 0: top-down */
    uint32_t compression;
    uint32_t masks[4];
    const uint8_t (*palette)[3]; /* RGB */
    int n_palette;
} BmpSpec;

static size_t build_bmp(const BmpSpec *s, const uint32_t *pixels, uint8_t *out) {
    int w = s->width, h = s->height < 0 ? -s->height : s->height;
    bool core = s->header_size == 12;
    size_t pos = 14 + (size_t)s->header_size;
    memset(out, 0, pos);
    out[0] = 'B', out[1] = 'M';
    put32(out + 14, (uint32_t)s->header_size);
    uint8_t *hd = out + 14;
    if (core) {
        put16(hd + 4, (unsigned)w), put16(hd + 6, (unsigned)h), put16(hd + 8, 1);
        put16(hd + 10, (unsigned)s->bpp);
    } else {
        put32(hd + 4, (uint32_t)w), put32(hd + 8, (uint32_t)s->height), put16(hd + 12, 1);
        put16(hd + 14, (unsigned)s->bpp), put32(hd + 16, s->compression);
        put32(hd + 32, (uint32_t)s->n_palette);
        if (s->header_size >= 52)
            for (int i = 0; i < (s->header_size >= 56 ? 4 : 3); i++)
                put32(hd + 40 + 4 * i, s->masks[i]);
        if (s->header_size == 40 && (s->compression == 3 || s->compression == 6))
            for (int i = 0; i < (s->compression == 6 ? 4 : 3); i++, pos += 4)
                put32(out + pos, s->masks[i]);
    }
    for (int i = 0; i < s->n_palette; i++) {
        out[pos++] = s->palette[i][2], out[pos++] = s->palette[i][1], out[pos++] = s->palette[i][0];
        if (!core) out[pos++] = 0;
    }
    put32(out + 10, (uint32_t)pos);
    size_t stride = ((size_t)s->bpp * (size_t)w + 31) / 32 * 4;
    for (int r = 0; r < h; r++) {
        int y = s->height < 0 ? r : h - 1 - r; /* image row stored at file row r */
        uint8_t *row = out + pos;
        memset(row, 0, stride);
        for (int x = 0; x < w; x++) {
            uint32_t v = pixels[y * w + x];
            if (s->bpp <= 8)
                row[x * s->bpp / 8] |= (uint8_t)(v << (8 - s->bpp - x * s->bpp % 8));
            else if (s->bpp == 24)
                row[3 * x] = (uint8_t)v, row[3 * x + 1] = (uint8_t)(v >> 8),
                        row[3 * x + 2] = (uint8_t)(v >> 16);
            else if (s->bpp == 16)
                put16(row + 2 * x, v);
            else
                put32(row + 4 * x, v);
        }
        pos += stride;
    }
    put32(out + 2, (uint32_t)pos);
    return pos;
}

static Image *decode_ok(const uint8_t *b, size_t n, int w, int h, int channels) {
    Image *img = image_decode(b, n, "test.bmp");
    assert_ok_ptr(img);
    assert_int_equal(img->width, w);
    assert_int_equal(img->height, h);
    assert_int_equal(img->channels, channels);
    assert_int_equal(img->bit_depth, 8);
    return img;
}

static void test_bmp_24_bit_bottom_up_byte_by_byte(void **state) {
    (void)state;
    /* 3x2, 24-bit BGR, rows padded from 9 to 12 bytes, bottom row first.
     * Top row: red, green, blue; bottom row: white, black, (10, 20, 30). */
    const uint8_t file[14 + 40 + 24] = {
        'B',  'M',  78,  0, 0,   0, 0,   0,   0,    0,    54,   0,    0,    0, /* file header: size,
                                                                                  offset 54 */
        40,   0,    0,   0, 3,   0, 0,   0,   2,    0,    0,    0,    1,    0,    24, 0, /* size 40,
                                                                                            w 3, h
                                                                                            2,
                                                                                            planes,
                                                                                            bpp */
        0,    0,    0,   0, 24,  0, 0,   0,   0x13, 0x0B, 0,    0,    0x13, 0x0B, 0,  0,  0,
        0,    0,    0,   0, 0,   0, 0,   255, 255,  255,  0,    0,    0,    30,   20, 10, 0xAA,
        0xAA, 0xAA,                                                   /* bottom row + padding */
        0,    0,    255, 0, 255, 0, 255, 0,   0,    0xAA, 0xAA, 0xAA, /* top row + padding */
    };
    Image *img = decode_ok(file, sizeof file, 3, 2, 3);
    const uint8_t expected[18] = {255, 0,   0,   0, 255, 0, 0,  0,  255,
                                  255, 255, 255, 0, 0,   0, 10, 20, 30};
    assert_memory_equal(img->data8, expected, 18);
    image_free(img);
    /* The same through image_load, by content: the name says .png. */
    const char *path = scratch_path("really_a_bmp.png");
    write_file(path, file, sizeof file);
    img = load_ok(path, 3, 2, 3, 8);
    assert_memory_equal(img->data8, expected, 18);
    image_free(img);
    /* Truncated pixel data; a missing last-row padding is still accepted. */
    write_file(path, file, sizeof file - 3);
    img = load_ok(path, 3, 2, 3, 8);
    image_free(img);
    write_file(path, file, sizeof file - 4);
    assert_load_fails(path, HG_ERR_FORMAT, "truncated BMP data");
    write_file(path, file, 30);
    assert_load_fails(path, HG_ERR_FORMAT, "truncated BMP data");
    unlink(path);
}

static void test_bmp_palettes(void **state) {
    (void)state;
    uint8_t buf[4096];
    const uint8_t colours[16][3] = {{0, 0, 0},    {255, 0, 0},   {0, 255, 0},  {0, 0, 255},
                                    {9, 8, 7},    {100, 50, 25}, {1, 2, 3},    {4, 5, 6},
                                    {7, 8, 9},    {10, 11, 12},  {13, 14, 15}, {16, 17, 18},
                                    {19, 20, 21}, {22, 23, 24},  {25, 26, 27}, {255, 255, 254}};
    uint32_t px[5 * 3];
    for (int i = 0; i < 15; i++) px[i] = (uint32_t)(i * 7 % 16);
    /* 8-bit (5 wide: rows padded to 8), 4-bit and 1-bit, bottom-up, and the core header. */
    const int bpps[4] = {8, 4, 1, 8};
    const int headers[4] = {40, 124, 40, 12};
    for (int k = 0; k < 4; k++) {
        int bpp = bpps[k], n_pal = bpp == 1 ? 2 : 16;
        uint32_t p[15];
        for (int i = 0; i < 15; i++) p[i] = px[i] % (uint32_t)n_pal;
        BmpSpec s = {headers[k], bpp, 5, 3, 0, {0}, colours, n_pal};
        size_t n = build_bmp(&s, p, buf);
        Image *img = decode_ok(buf, n, 5, 3, 3);
        for (int i = 0; i < 15; i++) assert_memory_equal(img->data8 + 3 * i, colours[p[i]], 3);
        image_free(img);
    }
    /* A palette of greys gives one channel, as PIL's mode "L". */
    uint8_t greys[256][3];
    for (int i = 0; i < 256; i++) greys[i][0] = greys[i][1] = greys[i][2] = (uint8_t)(255 - i);
    BmpSpec g = {40, 8, 5, -3, 0, {0}, (const uint8_t(*)[3])greys, 256};
    size_t n = build_bmp(&g, px, buf);
    Image *img = decode_ok(buf, n, 5, 3, 1);
    for (int i = 0; i < 15; i++) assert_int_equal(img->data8[i], 255 - px[i]);
    image_free(img);
}

static void test_bmp_32_bit_top_down_and_bitfields(void **state) {
    (void)state;
    uint8_t buf[4096];
    /* 32-bit BI_RGB, top-down: BGRx, the fourth byte is ignored (no alpha). */
    uint32_t px[4 * 2] = {0xFF112233, 0x00445566, 0x12778899, 0x00AABBCC,
                          0x00000000, 0xFFFFFFFF, 0x00010203, 0x80FF0000};
    BmpSpec s = {40, 32, 4, -2, 0, {0}, NULL, 0};
    size_t n = build_bmp(&s, px, buf);
    Image *img = decode_ok(buf, n, 4, 2, 3);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(img->data8[3 * i], (px[i] >> 16) & 255);
        assert_int_equal(img->data8[3 * i + 1], (px[i] >> 8) & 255);
        assert_int_equal(img->data8[3 * i + 2], px[i] & 255);
    }
    image_free(img);

    /* V5 header, BI_BITFIELDS with an alpha mask: RGBA, here with unusual channel order
     * R in the low byte, A in the next, B, then G in the top byte. */
    BmpSpec v5 = {124, 32, 4, 2, 3, {0x000000FF, 0xFF000000, 0x00FF0000, 0x0000FF00}, NULL, 0};
    n = build_bmp(&v5, px, buf);
    img = decode_ok(buf, n, 4, 2, 4);
    for (int i = 0; i < 8; i++) {
        const uint8_t want[4] = {(uint8_t)px[i], (uint8_t)(px[i] >> 24), (uint8_t)(px[i] >> 16),
                                 (uint8_t)(px[i] >> 8)};
        assert_memory_equal(img->data8 + 4 * i, want, 4);
    }
    image_free(img);

    /* 16-bit: BI_RGB is 5-5-5; BI_BITFIELDS 5-6-5 after a 40-byte header. Values scale to 8 bits.
     */
    uint32_t p16[3] = {0x7FFF, 0x0421, 0x4A52};
    BmpSpec s555 = {40, 16, 3, 1, 0, {0}, NULL, 0};
    n = build_bmp(&s555, p16, buf);
    img = decode_ok(buf, n, 3, 1, 3);
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 3; c++) {
            unsigned v = (p16[i] >> (10 - 5 * c)) & 31;
            assert_int_equal(img->data8[3 * i + c], (unsigned)lround(v * 255.0 / 31));
        }
    image_free(img);
    uint32_t p565[3] = {0xFFFF, 0x07E0, 0x8410};
    BmpSpec s565 = {40, 16, 3, 1, 3, {0xF800, 0x07E0, 0x001F, 0}, NULL, 0};
    n = build_bmp(&s565, p565, buf);
    img = decode_ok(buf, n, 3, 1, 3);
    const uint8_t want565[9] = {255, 255, 255, 0, 255, 0, 132, 130, 132};
    assert_memory_equal(img->data8, want565, 9);
    image_free(img);
}

static void test_bmp_rejects(void **state) {
    (void)state;
    uint8_t buf[4096];
    uint32_t px[4] = {0, 1, 1, 0};
    const uint8_t pal[2][3] = {{0, 0, 0}, {255, 255, 255}};
    const char *path = scratch_path("bad.bmp");
    BmpSpec rle = {40, 8, 2, 2, 1 /* BI_RLE8 */, {0}, pal, 2};
    size_t n = build_bmp(&rle, px, buf);
    write_file(path, buf, n);
    assert_load_fails(path, HG_ERR_UNSUPPORTED, "RLE");
    BmpSpec odd = {64, 8, 2, 2, 0, {0}, pal, 2}; /* OS/2 2.x header */
    n = build_bmp(&odd, px, buf);
    write_file(path, buf, n);
    assert_load_fails(path, HG_ERR_UNSUPPORTED, "header size");
    BmpSpec zero = {40, 8, 0, 2, 0, {0}, pal, 2};
    n = build_bmp(&zero, px, buf);
    write_file(path, buf, n);
    assert_load_fails(path, HG_ERR_FORMAT, "size");
    BmpSpec gap = {40, 32, 2, 2, 3, {0xFF0000, 0xF0F0, 0xFF, 0}, NULL, 0}; /* non-contiguous mask */
    n = build_bmp(&gap, px, buf);
    write_file(path, buf, n);
    assert_load_fails(path, HG_ERR_FORMAT, "mask");
    write_file(path, (const uint8_t *)"BM", 2);
    assert_load_fails(path, HG_ERR_FORMAT, "truncated");
    unlink(path);
}

/* ---- JPEG ---- */

/* Encodes with libjpeg (quality 95, default 4:2:0 subsampling). */
static void write_jpeg(const char *path, int w, int h, int comps, J_COLOR_SPACE space,
                       const uint8_t *data) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h;
    c.input_components = comps, c.in_color_space = space;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(data + (size_t)c.next_scanline * (size_t)(w * comps));
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

static void test_jpeg_decoding(void **state) {
    (void)state;
    const char *path = scratch_path("photo.jpg");
    /* 32x32 RGB in four flat 16x16 quadrants. */
    const uint8_t quad[4][3] = {{220, 30, 40}, {20, 200, 60}, {30, 40, 210}, {128, 128, 128}};
    uint8_t rgb[32 * 32 * 3];
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) memcpy(rgb + 3 * (y * 32 + x), quad[(y / 16) * 2 + x / 16], 3);
    write_jpeg(path, 32, 32, 3, JCS_RGB, rgb);
    Image *img = load_ok(path, 32, 32, 3, 8);
    /* Quadrant interiors (away from the chroma-upsampling seams) are near the input. */
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            if (abs(y % 16 - 8) > 4 || abs(x % 16 - 8) > 4) continue;
            for (int c = 0; c < 3; c++) {
                int got = img->data8[3 * (y * 32 + x) + c], want = quad[(y / 16) * 2 + x / 16][c];
                if (abs(got - want) > 8) fail_msg("(%d,%d,%d): %d vs %d", x, y, c, got, want);
            }
        }
    image_free(img);

    /* Greyscale: one channel, a smooth gradient within a few levels. */
    uint8_t grey[24 * 16];
    for (int i = 0; i < 24 * 16; i++) grey[i] = (uint8_t)(40 + (i % 24) * 6 + (i / 24) * 2);
    write_jpeg(path, 24, 16, 1, JCS_GRAYSCALE, grey);
    img = load_ok(path, 24, 16, 1, 8);
    for (int i = 0; i < 24 * 16; i++) assert_true(abs(img->data8[i] - grey[i]) <= 4);
    image_free(img);

    /* CMYK is refused clearly. */
    uint8_t cmyk[8 * 8 * 4];
    memset(cmyk, 90, sizeof cmyk);
    write_jpeg(path, 8, 8, 4, JCS_CMYK, cmyk);
    assert_load_fails(path, HG_ERR_UNSUPPORTED, "CMYK");
    unlink(path);
}

static void test_jpeg_corrupt_and_truncated(void **state) {
    (void)state;
    const char *path = scratch_path("cut.jpg");
    uint8_t rgb[48 * 40 * 3];
    Rng rng = rng_new(5);
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)rng_below(&rng, 256);
    write_jpeg(path, 48, 40, 3, JCS_RGB, rgb);
    size_t n;
    uint8_t *b = read_whole(path, &n);
    write_file(path, b, n * 2 / 3); /* ends inside the entropy-coded data */
    assert_load_fails(path, HG_ERR_FORMAT, "");
    write_file(path, b, 100); /* ends inside the headers */
    assert_load_fails(path, HG_ERR_FORMAT, "");
    uint8_t junk[64] = {0xFF, 0xD8, 0xFF, 0x00, 0x13, 0x37};
    write_file(path, junk, sizeof junk);
    assert_load_fails(path, HG_ERR_FORMAT, "");
    free(b);
    unlink(path);
}

/* Random byte flips and cuts of valid files must fail cleanly or decode (run under ASan). */
static void test_mutated_files_never_crash(void **state) {
    (void)state;
    size_t n_png, n_jpg;
    uint8_t *png = small_png_bytes(&n_png);
    const char *path = scratch_path("m.jpg");
    uint8_t rgb[24 * 24 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 7);
    write_jpeg(path, 24, 24, 3, JCS_RGB, rgb);
    uint8_t *jpg = read_whole(path, &n_jpg);
    unlink(path);
    uint8_t bmp[4096];
    uint32_t px[36];
    for (int i = 0; i < 36; i++) px[i] = (uint32_t)i % 4;
    const uint8_t pal[4][3] = {{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}};
    BmpSpec s = {40, 4, 6, 6, 0, {0}, pal, 4};
    size_t n_bmp = build_bmp(&s, px, bmp);

    const uint8_t *files[3] = {png, jpg, bmp};
    const size_t sizes[3] = {n_png, n_jpg, n_bmp};
    Rng rng = rng_new(9);
    uint8_t *copy = malloc(n_png + n_jpg + n_bmp);
    int decoded = 0, failed = 0;
    for (int iter = 0; iter < 300; iter++) {
        int k = iter % 3;
        size_t n = sizes[k];
        memcpy(copy, files[k], n);
        int flips = 1 + (int)rng_below(&rng, 4);
        for (int f = 0; f < flips; f++) {
            /* Keep the magic number so each decoder is reached; favour the headers. */
            size_t at = 3 + rng_below(&rng, iter % 2 ? 60 : n - 3);
            if (at < n) copy[at] = (uint8_t)rng_below(&rng, 256);
        }
        if (iter % 5 == 0) n = 3 + rng_below(&rng, n - 3);
        Image *img = image_decode(copy, n, "mutant");
        if (img)
            decoded++, image_free(img);
        else
            failed++, assert_non_null(strstr(hg_last_error(), "image: mutant: "));
    }
    print_message("    300 mutants: %d decoded, %d rejected\n", decoded, failed);
    assert_true(failed >= 100); /* the mutations mostly hit checked fields */
    free(copy);
    free(png);
    free(jpg);
}

/* ---- conversions ---- */

static void test_conversions(void **state) {
    (void)state;
    /* Grey -> RGB replicates; grey + alpha drops alpha. */
    Image *ga = image_new(3, 1, 2, 8);
    const uint8_t ga_px[6] = {10, 0, 128, 50, 255, 255};
    memcpy(ga->data8, ga_px, 6);
    Image *rgb = image_to_rgb8(ga);
    const uint8_t want_rgb[9] = {10, 10, 10, 128, 128, 128, 255, 255, 255};
    assert_memory_equal(rgb->data8, want_rgb, 9);
    Image *grey = image_to_grey8(ga);
    assert_int_equal(grey->channels, 1);
    const uint8_t want_grey[3] = {10, 128, 255};
    assert_memory_equal(grey->data8, want_grey, 3);
    image_free(rgb);
    image_free(grey);
    image_free(ga);

    /* RGBA -> L: PIL gives 76, 150, 29 for pure red, green, blue (ITU-R 601-2 luma). */
    Image *rgba = image_new(6, 1, 4, 8);
    const uint8_t px[24] = {255, 0,   0,   9, 0, 255, 0, 9,   0,  0,  255, 9,
                            255, 255, 255, 0, 0, 0,   0, 255, 10, 20, 30,  7};
    memcpy(rgba->data8, px, 24);
    grey = image_to_grey8(rgba);
    const uint8_t want_l[6] = {76, 150, 29, 255, 0, 18};
    assert_memory_equal(grey->data8, want_l, 6);
    image_free(grey);
    rgb = image_to_rgb8(rgba);
    for (int i = 0; i < 6; i++) assert_memory_equal(rgb->data8 + 3 * i, px + 4 * i, 3);
    image_free(rgb);
    image_free(rgba);

    /* Random colours: within one level of the floating-point luma. */
    Image *c = image_new(50, 20, 3, 8);
    Rng rng = rng_new(21);
    for (size_t i = 0; i < image_size_bytes(c); i++) c->data8[i] = (uint8_t)rng_below(&rng, 256);
    grey = image_to_grey8(c);
    for (int i = 0; i < 1000; i++) {
        const uint8_t *p = c->data8 + 3 * i;
        double l = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        assert_true(fabs(grey->data8[i] - l) <= 1.0);
    }
    image_free(grey);

    /* Tensor: (3, H, W) planes of value / 255. */
    Tensor *t = image_to_tensor(c);
    assert_ok_ptr(t);
    assert_int_equal(t->ndim, 3);
    assert_int_equal(t->shape[0], 3);
    assert_int_equal(t->shape[1], 20);
    assert_int_equal(t->shape[2], 50);
    const float *v = tensor_data(t);
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < 1000; i++)
            assert_true(v[ch * 1000 + i] == c->data8[3 * i + ch] / 255.0f);
    tensor_free(t);
    image_free(c);

    /* 16-bit grey -> tensor uses the high byte. */
    Image *g16 = image_new(2, 1, 1, 16);
    g16->data16[0] = 0xFFFF, g16->data16[1] = 0x80FF;
    t = image_to_tensor(g16);
    assert_true(tensor_data(t)[0] == 1.0f && tensor_data(t)[1] == 128 / 255.0f);
    assert_true(tensor_data(t)[2 * 2 + 1] == 128 / 255.0f);
    tensor_free(t);
    image_free(g16);
    hg_clear_error();
    assert_null(image_to_rgb8(NULL));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    assert_null(image_new(0, 5, 3, 8));
    assert_null(image_new(5, 5, 3, 12));
}

/* ---- real data ---- */

static void test_mvtec_bottle_images(void **state) {
    (void)state;
    const char *shared = test_shared_dir();
    if (!shared) {
        print_message("    ../shared is absent: skipping the MVTec AD check\n");
        skip();
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/data/mvtec_ad/bottle/test/broken_large/000.png", shared);
    Image *img = load_ok(path, 900, 900, 3, 8);
    Tensor *t = image_to_tensor(img);
    assert_ok_ptr(t);
    assert_int_equal(t->shape[0], 3);
    tensor_free(t);
    image_free(img);
    snprintf(path, sizeof path, "%s/data/mvtec_ad/bottle/ground_truth/broken_large/000_mask.png",
             shared);
    Image *mask = load_ok(path, 900, 900, 1, 8);
    size_t on = 0;
    for (size_t i = 0; i < 900 * 900; i++) {
        assert_true(mask->data8[i] == 0 || mask->data8[i] == 255);
        on += mask->data8[i] == 255;
    }
    assert_true(on > 0 && on < 900 * 900);
    image_free(mask);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_round_trip_all_layouts),
        cmocka_unit_test(test_png_save_failures),
        cmocka_unit_test(test_png_palette_and_transparency),
        cmocka_unit_test(test_png_low_bit_grey_scales_to_8_bits),
        cmocka_unit_test(test_png_16_bit_and_interlaced),
        cmocka_unit_test(test_png_corrupt_and_truncated),
        cmocka_unit_test(test_unknown_empty_and_missing_files),
        cmocka_unit_test(test_bmp_24_bit_bottom_up_byte_by_byte),
        cmocka_unit_test(test_bmp_palettes),
        cmocka_unit_test(test_bmp_32_bit_top_down_and_bitfields),
        cmocka_unit_test(test_bmp_rejects),
        cmocka_unit_test(test_jpeg_decoding),
        cmocka_unit_test(test_jpeg_corrupt_and_truncated),
        cmocka_unit_test(test_mutated_files_never_crash),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_mvtec_bottle_images),
    };
    return cmocka_run_group_tests(tests, make_scratch, remove_scratch);
}
