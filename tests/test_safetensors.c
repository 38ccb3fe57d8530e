/* Tests of nn/safetensors.h: write -> read round trips, dtype conversions
 * against hand-computed bit patterns, one test per kind of bad header, the
 * atomic save, and the real MobileNetV2 file when ../shared is present. */
#include "tests/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/safetensors.h"

/* ---- helpers ---- */

/* A file image: 8-byte little-endian length of `header`, the header, then
 * `data_size` bytes copied from `data` (zeros when NULL). */
static unsigned char *make_file(const char *header, const void *data, size_t data_size,
                                size_t *size) {
    size_t n = strlen(header);
    *size = 8 + n + data_size;
    unsigned char *buf = calloc(1, *size);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, header, n);
    if (data && data_size) memcpy(buf + 8 + n, data, data_size);
    return buf;
}

static SafetensorsFile *open_image(const char *header, const void *data, size_t data_size,
                                   unsigned char **image) {
    size_t size;
    *image = make_file(header, data, data_size, &size);
    return safetensors_open_memory(*image, size);
}

/* Number of entries in a directory besides . and .. */
static int dir_entries(const char *path) {
    DIR *dir = opendir(path);
    assert_non_null(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(dir);
    return n;
}

/* Tests that write files get a fresh scratch directory each (testutil's). */
static int make_temp_dir(void **state) {
    return test_temp_dir_create("hg_safetensors");
}

static int remove_temp_dir(void **state) {
    return test_temp_dir_remove();
}

static void assert_error_has(const char *needle) {
    if (!strstr(hg_last_error(), needle))
        fail_msg("error '%s' lacks '%s'", hg_last_error(), needle);
}

static void assert_shape(const SafetensorsEntry *e, int ndim, const int64_t *shape) {
    assert_non_null(e);
    assert_int_equal(e->ndim, ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(e->shape[i], shape[i]);
}

static uint64_t read_u64_le(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* ---- round trips ---- */

static void test_round_trip_f32(void **state) {
    (void)state;
    const char *path = test_temp_path("model.safetensors");

    /* Values from an independent formula, checked element by element below. */
    float m23[6], v4[4], big[2 * 1 * 1 * 1 * 1 * 1 * 3 * 2];
    for (int i = 0; i < 6; i++) m23[i] = (float)i * 0.5f - 1.25f;
    for (int i = 0; i < 4; i++) v4[i] = 1.0f / (float)(i + 1);
    for (int i = 0; i < 12; i++) big[i] = (float)(i * i) - 7.0f;
    Tensor *a = tensor_from_data(SHAPE(2, 3), m23);
    Tensor *b = tensor_from_data(SHAPE(4), v4);
    Tensor *scalar = tensor_scalar(3.75f);
    Tensor *empty = tensor_zeros(SHAPE(0));
    Tensor *empty3 = tensor_zeros(SHAPE(3, 0, 2));
    Tensor *eight = tensor_from_data(SHAPE(2, 1, 1, 1, 1, 1, 3, 2), big);
    Tensor *at = tensor_transpose(a, 0, 1); /* non-contiguous [3,2] view */
    assert_ok_ptr(at);

    SafetensorsWriter *w = safetensors_writer_new();
    assert_ok_ptr(w);
    assert_ok(safetensors_writer_add(w, "layer.b", b));
    assert_ok(safetensors_writer_add(w, "layer.a", a));
    assert_ok(safetensors_writer_add(w, "scalar", scalar));
    assert_ok(safetensors_writer_add(w, "empty", empty));
    assert_ok(safetensors_writer_add(w, "empty3", empty3));
    assert_ok(safetensors_writer_add(w, "eight_dims", eight));
    assert_ok(safetensors_writer_add(w, "a_transposed", at));
    /* The writer holds references: freeing our handles must not lose the data. */
    tensor_free(a);
    tensor_free(b);
    tensor_free(at);
    assert_ok(safetensors_writer_save(w, path));
    safetensors_writer_free(w);
    assert_int_equal(dir_entries(test_temp_dir()), 1); /* no temporary left behind */

    SafetensorsFile *f = safetensors_open(path);
    assert_ok_ptr(f);
    assert_int_equal(safetensors_count(f), 7);
    const char *names[] = {"a_transposed", "eight_dims", "empty", "empty3",
                           "layer.a",      "layer.b",    "scalar"};
    for (int i = 0; i < 7; i++) {
        assert_string_equal(safetensors_entry(f, i)->name, names[i]);
        assert_int_equal(safetensors_entry(f, i)->dtype, ST_F32);
    }
    assert_null(safetensors_entry(f, 7));
    assert_null(safetensors_entry(f, -1));
    assert_shape(safetensors_find(f, "layer.a"), SHAPE(2, 3));
    assert_shape(safetensors_find(f, "a_transposed"), SHAPE(3, 2));
    assert_shape(safetensors_find(f, "empty3"), SHAPE(3, 0, 2));
    assert_int_equal(safetensors_find(f, "scalar")->ndim, 0);
    assert_int_equal(safetensors_find(f, "scalar")->numel, 1);
    assert_int_equal(safetensors_find(f, "empty")->nbytes, 0);
    assert_null(safetensors_find(f, "layer"));

    Tensor *t = safetensors_load_tensor(f, "layer.a");
    assert_ok_ptr(t);
    test_assert_values(t, m23, 6, 0);
    tensor_free(t);
    t = safetensors_load_tensor(f, "layer.b");
    test_assert_values(t, v4, 4, 0);
    tensor_free(t);
    t = safetensors_load_tensor(f, "a_transposed");
    float expect_t[6];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) expect_t[i * 2 + j] = m23[j * 3 + i];
    test_assert_values(t, expect_t, 6, 0);
    tensor_free(t);
    t = safetensors_load_tensor(f, "scalar");
    assert_int_equal(t->ndim, 0);
    assert_true(tensor_data(t)[0] == 3.75f);
    tensor_free(t);
    t = safetensors_load_tensor(f, "eight_dims");
    assert_int_equal(t->ndim, 8);
    test_assert_values(t, big, 12, 0);
    tensor_free(t);
    t = safetensors_load_tensor(f, "empty3");
    assert_ok_ptr(t);
    assert_int_equal(tensor_numel(t), 0);
    assert_int_equal(t->ndim, 3);
    tensor_free(t);
    assert_null(safetensors_load_tensor(f, "nope"));
    assert_error_has("no tensor named 'nope'");
    assert_error_has(path);
    safetensors_close(f);

    tensor_free(scalar);
    tensor_free(empty);
    tensor_free(empty3);
    tensor_free(eight);
}

/* The header length keeps the data 8-aligned, tensors are aligned to their
 * element size and cover the data region without gaps (huggingface's reader
 * refuses files with gaps). */
static void test_layout(void **state) {
    (void)state;
    const char *path = test_temp_path("layout.safetensors");
    SafetensorsWriter *w = safetensors_writer_new();
    Tensor *odd = tensor_ones(SHAPE(3));
    int64_t ints[3] = {1, 2, 3};
    uint16_t halves[5] = {0x3C00, 0x4000, 0x4200, 0x4400, 0x4500};
    uint8_t bytes[3] = {1, 2, 3};
    assert_ok(safetensors_writer_add(w, "a_f32", odd));
    assert_ok(safetensors_writer_add_raw(w, "b_u8", ST_U8, SHAPE(3), bytes));
    assert_ok(safetensors_writer_add_raw(w, "c_f16", ST_F16, SHAPE(5), halves));
    assert_ok(safetensors_writer_add_int64(w, "d_i64", SHAPE(3), ints));
    assert_ok(safetensors_writer_save(w, path));
    safetensors_writer_free(w);
    tensor_free(odd);

    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    unsigned char buf[4096];
    size_t size = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    uint64_t n = read_u64_le(buf);
    assert_int_equal((8 + n) % 8, 0);
    assert_int_equal(buf[8], '{');
    /* 8 * 3 + 4 * 3 + 2 * 5 + 1 * 3 bytes, no padding between tensors. */
    assert_int_equal(size - 8 - n, 24 + 12 + 10 + 3);

    SafetensorsFile *f = safetensors_open(path);
    assert_ok_ptr(f);
    uint64_t total = 0;
    for (int i = 0; i < safetensors_count(f); i++) {
        const SafetensorsEntry *e = safetensors_entry(f, i);
        assert_int_equal(e->offset % safetensors_dtype_size(e->dtype), 0);
        total += e->nbytes;
    }
    assert_int_equal(total, size - 8 - n);
    assert_int_equal(safetensors_find(f, "d_i64")->offset, 0); /* largest elements first */
    int64_t *vals, count;
    assert_ok(safetensors_load_int64(f, "d_i64", &vals, &count));
    assert_int_equal(count, 3);
    assert_int_equal(vals[2], 3);
    free(vals);
    assert_ok(safetensors_load_int64(f, "b_u8", &vals, &count));
    assert_int_equal(vals[1], 2);
    free(vals);
    Tensor *h = safetensors_load_tensor(f, "c_f16");
    test_assert_values(h, (float[]){1, 2, 3, 4, 5}, 5, 0);
    tensor_free(h);
    safetensors_close(f);
}

static void test_metadata(void **state) {
    (void)state;
    const char *path = test_temp_path("meta.safetensors");
    SafetensorsWriter *w = safetensors_writer_new();
    Tensor *x = tensor_ones(SHAPE(1));
    const char *tricky = "quote \" backslash \\ newline \n tab \t caf\xc3\xa9 \x01 end";
    assert_ok(safetensors_writer_add(w, "we\"ird\\name\n\xc3\xa9", x));
    assert_ok(safetensors_writer_set_metadata(w, "zeta", "last"));
    assert_ok(safetensors_writer_set_metadata(w, "alpha", "first"));
    assert_ok(safetensors_writer_set_metadata(w, "tricky", tricky));
    assert_ok(safetensors_writer_set_metadata(w, "alpha", "replaced"));
    assert_ok(safetensors_writer_set_metadata(w, "empty", ""));
    assert_ok(safetensors_writer_save(w, path));
    safetensors_writer_free(w);
    tensor_free(x);

    SafetensorsFile *f = safetensors_open(path);
    assert_ok_ptr(f);
    assert_int_equal(safetensors_metadata_count(f), 4);
    const char *keys[] = {"alpha", "empty", "tricky", "zeta"};
    const char *values[] = {"replaced", "", tricky, "last"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(safetensors_metadata_key(f, i), keys[i]);
        assert_string_equal(safetensors_metadata_value(f, i), values[i]);
        assert_string_equal(safetensors_metadata(f, keys[i]), values[i]);
    }
    assert_null(safetensors_metadata(f, "missing"));
    assert_null(safetensors_metadata_key(f, 4));
    assert_non_null(safetensors_find(f, "we\"ird\\name\n\xc3\xa9"));
    safetensors_close(f);

    /* A file without __metadata__ has none. */
    unsigned char *img;
    f = open_image("{}", NULL, 0, &img);
    assert_ok_ptr(f);
    assert_int_equal(safetensors_metadata_count(f), 0);
    assert_int_equal(safetensors_count(f), 0);
    assert_null(safetensors_metadata(f, "a"));
    safetensors_close(f);
    free(img);
}

static void test_writer_errors(void **state) {
    (void)state;
    SafetensorsWriter *w = safetensors_writer_new();
    Tensor *x = tensor_ones(SHAPE(2));
    assert_ok(safetensors_writer_add(w, "x", x));
    assert_int_equal(safetensors_writer_add(w, "x", x), HG_ERR_ARG);
    assert_error_has("'x' is already used");
    assert_int_equal(safetensors_writer_add(w, "__metadata__", x), HG_ERR_ARG);
    assert_error_has("reserved");
    assert_int_equal(safetensors_writer_add(w, "bad\xff", x), HG_ERR_ARG);
    assert_error_has("not valid UTF-8");
    assert_int_equal(safetensors_writer_add(w, "null", NULL), HG_ERR_ARG);
    assert_int_equal(safetensors_writer_add_raw(w, "neg", ST_U8, SHAPE(2, -1), "ab"), HG_ERR_ARG);
    assert_error_has("invalid shape [2,-1]");
    assert_int_equal(safetensors_writer_add_raw(w, "nodata", ST_U8, SHAPE(2), NULL), HG_ERR_ARG);
    assert_int_equal(safetensors_writer_add_raw(w, "dtype", (SafetensorsDtype)99, SHAPE(1), "a"),
                     HG_ERR_ARG);
    assert_int_equal(safetensors_writer_set_metadata(w, "k", "\xc3"), HG_ERR_ARG);
    assert_error_has("value");
    /* Failed adds leave the writer usable and unchanged. */
    assert_ok(safetensors_writer_add(w, "neg", x));
    safetensors_writer_free(w);
    tensor_free(x);
}

/* ---- dtype conversions (expected values computed by hand from the bit layout) ---- */

static void check_converted(const char *dtype, const void *raw, size_t elem_size,
                            const float *expected, int n) {
    char header[256];
    snprintf(header, sizeof header,
             "{\"v\":{\"dtype\":\"%s\",\"shape\":[%d],\"data_offsets\":[0,%zu]}}", dtype, n,
             (size_t)n * elem_size);
    unsigned char *img;
    SafetensorsFile *f = open_image(header, raw, (size_t)n * elem_size, &img);
    assert_ok_ptr(f);
    Tensor *t = safetensors_load_tensor(f, "v");
    assert_ok_ptr(t);
    const float *got = tensor_data(t);
    for (int i = 0; i < n; i++) {
        bool same = isnan(expected[i])
                        ? isnan(got[i])
                        : got[i] == expected[i] && signbit(got[i]) == signbit(expected[i]);
        if (!same)
            fail_msg("%s element %d: got %.9g (%a), expected %.9g (%a)", dtype, i, got[i], got[i],
                     expected[i], expected[i]);
    }
    tensor_free(t);
    safetensors_close(f);
    free(img);
}

static void test_f16(void **state) {
    (void)state;
    /* sign | 5-bit exponent (bias 15) | 10-bit fraction */
    const uint16_t bits[] = {0x0000, 0x8000, 0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0400,
                             0x0001, 0x03FF, 0x8001, 0x7C00, 0xFC00, 0x7E00, 0x7C01};
    const float expected[] = {
        0.0f,
        -0.0f,
        1.0f,
        -2.0f,
        0x1.554p-2f,     /* 1 + 0x155/1024 times 2^-2 = 0.333251953125 */
        65504.0f,        /* largest half: (2 - 2^-10) * 2^15 */
        0x1p-14f,        /* smallest normal */
        0x1p-24f,        /* smallest subnormal */
        1023 * 0x1p-24f, /* largest subnormal */
        -0x1p-24f,
        INFINITY,
        -INFINITY,
        NAN,
        NAN, /* signalling pattern still NaN */
    };
    check_converted("F16", bits, 2, expected, 14);
}

static void test_bf16(void **state) {
    (void)state;
    /* the top 16 bits of a float32 */
    const uint16_t bits[] = {0x3F80, 0xC049, 0x7F7F, 0x0080, 0x0001,
                             0x8000, 0x7F80, 0xFF80, 0x7FC0};
    const float expected[] = {
        1.0f,        -3.140625f, /* -(1 + 0x49/128) * 2 */
        0x1.FEp127f,             /* largest bf16 */
        0x1p-126f,               /* smallest normal */
        0x1p-133f,               /* smallest subnormal */
        -0.0f,       INFINITY,   -INFINITY, NAN,
    };
    check_converted("BF16", bits, 2, expected, 9);
}

static void test_f8_and_f64(void **state) {
    (void)state;
    /* e4m3fn: sign | 4-bit exponent (bias 7) | 3-bit fraction, no infinities */
    const uint8_t e4m3[] = {0x38, 0xB8, 0x7E, 0x7F, 0x01, 0x08, 0x00, 0x80};
    const float e4m3_expected[] = {1.0f, -1.0f, 448.0f, NAN, 0x1p-9f, 0x1p-6f, 0.0f, -0.0f};
    check_converted("F8_E4M3", e4m3, 1, e4m3_expected, 8);
    /* e5m2: sign | 5-bit exponent (bias 15) | 2-bit fraction */
    const uint8_t e5m2[] = {0x3C, 0x7C, 0x7B, 0x01, 0x7E, 0xC0};
    const float e5m2_expected[] = {1.0f, INFINITY, 57344.0f, 0x1p-16f, NAN, -2.0f};
    check_converted("F8_E5M2", e5m2, 1, e5m2_expected, 6);
    const double f64[] = {0.1, -1e300, 1.5};
    const float f64_expected[] = {0.1f, -INFINITY, 1.5f};
    check_converted("F64", f64, 8, f64_expected, 3);
}

static void test_integers(void **state) {
    (void)state;
    const int64_t i64[] = {INT64_MIN, -1, 0, INT64_MAX, 16777217};
    const int32_t i32[] = {-5, 7};
    const uint8_t flags[] = {0, 1, 2};
    const uint64_t u64[] = {1, 0x8000000000000000ull};
    unsigned char data[40 + 8 + 3 + 5 + 16 + 4];
    memcpy(data, i64, 40);
    memcpy(data + 40, i32, 8);
    memcpy(data + 48, flags, 3);
    memcpy(data + 56, u64, 16);
    const char *header = "{\"i64\":{\"dtype\":\"I64\",\"shape\":[5],\"data_offsets\":[0,40]},"
                         "\"i32\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[40,48]},"
                         "\"flags\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[48,51]},"
                         "\"u64\":{\"dtype\":\"U64\",\"shape\":[2],\"data_offsets\":[56,72]},"
                         "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[72,76]}}";
    unsigned char *img;
    SafetensorsFile *f = open_image(header, data, sizeof data, &img);
    assert_ok_ptr(f);
    int64_t *v, n;
    assert_ok(safetensors_load_int64(f, "i64", &v, &n));
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++) assert_true(v[i] == i64[i]);
    free(v);
    assert_ok(safetensors_load_int64(f, "i32", &v, &n));
    assert_true(v[0] == -5 && v[1] == 7);
    free(v);
    assert_ok(safetensors_load_int64(f, "flags", &v, &n));
    assert_true(v[0] == 0 && v[1] == 1 && v[2] == 1);
    free(v);
    assert_int_equal(safetensors_load_int64(f, "u64", &v, &n), HG_ERR_FORMAT);
    assert_null(v);
    assert_error_has("U64 element 1 does not fit");
    assert_int_equal(safetensors_load_int64(f, "f", &v, &n), HG_ERR_ARG);
    assert_error_has("'f' has dtype F32, not an integer");
    assert_int_equal(safetensors_load_int64(f, "zz", &v, &n), HG_ERR_FORMAT);
    assert_error_has("no tensor named 'zz'");

    /* Integers are floats only on request. */
    assert_null(safetensors_load_tensor(f, "i64"));
    assert_error_has("'i64' has dtype I64; read it with safetensors_load_int64");
    Tensor *t = safetensors_load_as_float(f, "i32");
    test_assert_values(t, (float[]){-5, 7}, 2, 0);
    tensor_free(t);
    t = safetensors_load_as_float(f, "i64");
    test_assert_values(t, (float[]){-0x1p63f, -1, 0, 0x1p63f, 16777216.0f}, 5, 0);
    tensor_free(t);
    t = safetensors_load_as_float(f, "f"); /* floats load as usual */
    assert_ok_ptr(t);
    tensor_free(t);
    safetensors_close(f);
    free(img);
}

/* ---- validation ---- */

typedef struct BadCase {
    const char *header;
    size_t data_size;
    const char *needles[3];
} BadCase;

#define E(dtype, shape, offsets)                                                                   \
    "{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offsets "}"

static void test_bad_headers(void **state) {
    (void)state;
    const BadCase cases[] = {
        {"{\"a\":", 0, {"malformed JSON header", "at header byte 5"}},
        {"{\"a\":1,}", 0, {"malformed JSON header", "trailing comma"}},
        {"[1]", 0, {"header is a JSON array, not an object"}},
        {"\"x\"", 0, {"header is a JSON string"}},
        {"{\"t\":5}", 0, {"tensor 't'", "entry is a JSON integer, not an object"}},
        {"{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}",
         4,
         {"tensor 't'", "missing field 'dtype'"}},
        {"{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}",
         4,
         {"tensor 't'", "missing field 'shape'"}},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}",
         4,
         {"tensor 't'", "missing field 'data_offsets'"}},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"foo\":1}}",
         4,
         {"tensor 't'", "unexpected field 'foo'"}},
        {"{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
         4,
         {"tensor 't'", "duplicate field 'dtype'"}},
        {"{\"t\":" E("F7", "[1]", "[0,4]") "}", 4, {"tensor 't'", "unknown dtype 'F7'"}},
        {"{\"t\":" E("f32", "[1]", "[0,4]") "}", 4, {"unknown dtype 'f32'"}},
        {"{\"t\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}",
         4,
         {"tensor 't'", "dtype is a JSON integer"}},
        {"{\"t\":" E("F32", "4", "[0,16]") "}",
         16,
         {"tensor 't'", "shape is a JSON integer, not an array"}},
        {"{\"t\":" E("F32", "[2,-2]", "[0,16]") "}",
         16,
         {"tensor 't'", "shape[1] = -2 is negative"}},
        {"{\"t\":" E("F32", "[2.5]", "[0,16]") "}",
         16,
         {"tensor 't'", "shape[0] is a JSON number"}},
        {"{\"t\":" E("F32", "[4294967296,4294967296]", "[0,16]") "}",
         16,
         {"tensor 't'", "element count of shape [4294967296,4294967296] overflows"}},
        {"{\"t\":" E("F32", "[0,4294967296,4294967296]", "[0,0]") "}", 16, {"overflows"}},
        {"{\"t\":" E("I64", "[2305843009213693952]", "[0,16]") "}", 16, {"overflows"}},
        {"{\"t\":" E("U8", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]",
                     "[0,1]") "}",
         1,
         {"tensor 't'", "shape has 33 dims (limit 32)"}},
        {"{\"t\":" E("F32", "[2,2]", "[0,12]") "}",
         16,
         {"tensor 't'", "shape [2,2] of F32 needs 16 bytes but data_offsets [0, 12] hold 12"}},
        {"{\"t\":" E("F32", "[2,2]", "[0,32]") "}",
         16,
         {"tensor 't'", "data_offsets [0, 32] out of range (the data region has 16 bytes)"}},
        {"{\"t\":" E("F32", "[1]", "[8,4]") "}", 16, {"tensor 't'", "[8, 4] have begin > end"}},
        {"{\"t\":" E("F32", "[1]", "[-4,0]") "}", 16, {"tensor 't'", "are negative"}},
        {"{\"t\":" E("F32", "[1]", "[0]") "}", 16, {"tensor 't'", "not a [begin, end] pair"}},
        {"{\"t\":" E("F32", "[1]", "[0,\"4\"]") "}", 16, {"not a [begin, end] pair"}},
        {"{\"t\":" E("F32", "[1]", "[0,4,8]") "}", 16, {"not a [begin, end] pair"}},
        {"{\"t\":" E("F32", "[1]", "{}") "}", 16, {"not a [begin, end] pair"}},
        {"{\"a\":" E("F32", "[2]", "[0,8]") ",\"b\":" E("F32", "[2]", "[4,12]") "}",
         16,
         {"tensors 'a' [0, 8) and 'b' [4, 12) overlap"}},
        {"{\"big\":" E("F32", "[4]", "[0,16]") ",\"in\":" E("U8", "[1]", "[15,16]") "}",
         16,
         {"'big'", "'in'", "overlap"}},
        {"{\"a\":" E("F32", "[1]", "[0,4]") ",\"a\":" E("F32", "[1]", "[4,8]") "}",
         8,
         {"duplicate tensor name 'a'"}},
        {"{\"__metadata__\":{\"k\":1}}",
         0,
         {"__metadata__ value for key 'k' is a JSON integer, not a string"}},
        {"{\"__metadata__\":{\"k\":null}}", 0, {"key 'k'", "not a string"}},
        {"{\"__metadata__\":[\"k\"]}", 0, {"__metadata__ is a JSON array, not an object"}},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, {"duplicate __metadata__"}},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}",
         0,
         {"__metadata__ has a duplicate key 'k'"}},
        {"{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", 0, {"key 'k' contains a NUL"}},
        {"{\"__metadata__\":{\"k\\u0000\":\"v\"}}", 0, {"key 'k\\x00' contains a NUL"}},
        {"{\"a\\u0000b\":" E("F32", "[1]", "[0,4]") "}", 4, {"tensor 'a\\x00b'", "NUL"}},
        {"{\"line\\nbreak\":" E("F7", "[1]", "[0,4]") "}", 4, {"tensor 'line\\x0abreak'"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char *img;
        hg_clear_error();
        SafetensorsFile *f = open_image(cases[i].header, NULL, cases[i].data_size, &img);
        if (f) fail_msg("case %zu (%s) opened but should fail", i, cases[i].header);
        assert_int_equal(hg_last_status(), HG_ERR_FORMAT);
        const char *msg = hg_last_error();
        if (strncmp(msg, "safetensors: <memory>: ", 23) != 0) fail_msg("case %zu: '%s'", i, msg);
        if (strchr(msg, '\n')) fail_msg("case %zu: message has a newline: '%s'", i, msg);
        for (int k = 0; k < 3 && cases[i].needles[k]; k++)
            if (!strstr(msg, cases[i].needles[k]))
                fail_msg("case %zu: '%s' lacks '%s'", i, msg, cases[i].needles[k]);
        free(img);
    }
}

static void test_bad_lengths(void **state) {
    (void)state;
    unsigned char small[5] = {1, 0, 0, 0, 0};
    assert_null(safetensors_open_memory(small, sizeof small));
    assert_error_has("file is 5 bytes, shorter than the 8-byte header length");
    assert_null(safetensors_open_memory(NULL, 0));
    assert_error_has("file is 0 bytes");

    unsigned char huge[16] = {0};
    uint64_t n = 200000000; /* 200 MB */
    for (int i = 0; i < 8; i++) huge[i] = (unsigned char)(n >> (8 * i));
    assert_null(safetensors_open_memory(huge, sizeof huge));
    assert_error_has("header length 200000000 is absurd");
    memset(huge, 0xff, 8);
    assert_null(safetensors_open_memory(huge, sizeof huge));
    assert_error_has("is absurd");

    unsigned char past[20] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    assert_null(safetensors_open_memory(past, sizeof past));
    assert_error_has("header length 100 runs past the end of the file (20 bytes)");
}

static void test_lenient_layouts(void **state) {
    (void)state;
    /* A gap between tensors, trailing bytes, an empty tensor inside another's
     * range, space padding: all accepted. */
    const char *header =
        "{\"a\":" E("F32", "[1]", "[0,4]") ",\"b\":" E("F32", "[1]", "[8,12]") ",\"e\":" E(
            "F32", "[0]", "[2,2]") ",\"z\":" E("F32", "[0,3]", "[12,12]") "}      ";
    float data[5] = {1.5f, -9.0f, 2.5f, 0, 0};
    unsigned char *img;
    SafetensorsFile *f = open_image(header, data, sizeof data, &img);
    assert_ok_ptr(f);
    Tensor *b = safetensors_load_tensor(f, "b");
    assert_true(tensor_data(b)[0] == 2.5f);
    tensor_free(b);
    assert_int_equal((const unsigned char *)safetensors_entry_data(f, safetensors_find(f, "b")) -
                         (img + 8 + strlen(header)),
                     8);
    safetensors_close(f);
    free(img);
}

/* Every prefix of a valid file fails cleanly (or, for the whole file, opens). */
static void test_truncations(void **state) {
    (void)state;
    const char *header = "{\"__metadata__\":{\"k\":\"v\"},\"w\":" E("F32", "[2,2]", "[0,16]") "}";
    size_t size;
    unsigned char *img = make_file(header, NULL, 16, &size);
    for (size_t len = 0; len <= size; len++) {
        unsigned char *copy = malloc(len ? len : 1);
        memcpy(copy, img, len);
        SafetensorsFile *f = safetensors_open_memory(copy, len);
        if (len == size) {
            assert_ok_ptr(f);
        } else {
            assert_null(f);
            assert_non_null(strstr(hg_last_error(), "safetensors: <memory>: "));
        }
        safetensors_close(f);
        free(copy);
    }
    free(img);
}

static void test_open_errors(void **state) {
    (void)state;
    const char *path = test_temp_path("none.safetensors");
    assert_null(safetensors_open(path));
    assert_int_equal(hg_last_status(), HG_ERR_IO);
    assert_error_has(path);
    assert_error_has("cannot open");
    assert_null(safetensors_open(test_temp_dir()));
    assert_error_has("not a regular file");
    path = test_temp_path("fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_null(safetensors_open(path)); /* must not block waiting for a writer */
    assert_error_has("not a regular file");
    unlink(path);
    /* An on-disk bad file names its path. */
    path = test_temp_path("short.safetensors");
    FILE *fp = fopen(path, "wb");
    fwrite("abc", 1, 3, fp);
    fclose(fp);
    assert_null(safetensors_open(path));
    char expect[300];
    snprintf(expect, sizeof expect, "safetensors: %s: file is 3 bytes", path);
    assert_error_has(expect);
    fp = fopen(path, "wb");
    fclose(fp);
    assert_null(safetensors_open(path));
    assert_error_has("file is 0 bytes");
}

/* ---- atomic save ---- */

static void test_atomic_save(void **state) {
    (void)state;
    SafetensorsWriter *w = safetensors_writer_new();
    Tensor *x = tensor_full(SHAPE(3), 2.0f);
    assert_ok(safetensors_writer_add(w, "x", x));

    /* Into a directory that does not exist: fails, creates nothing. */
    const char *missing = test_temp_path("no/such/dir");
    const char *path = test_temp_path("no/such/dir/out.safetensors");
    assert_int_equal(safetensors_writer_save(w, path), HG_ERR_IO);
    assert_error_has(path);
    struct stat st;
    assert_int_not_equal(stat(missing, &st), 0);
    assert_int_equal(dir_entries(test_temp_dir()), 0);

    /* Onto an existing directory: the rename fails, the temporary is removed and
     * the directory is untouched. */
    path = test_temp_path("occupied");
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(safetensors_writer_save(w, path), HG_ERR_IO);
    assert_error_has("cannot write");
    assert_int_equal(dir_entries(test_temp_dir()), 1);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    rmdir(path);

    /* Over an existing file: replaced whole. */
    path = test_temp_path("m.safetensors");
    FILE *fp = fopen(path, "wb");
    fputs("old contents", fp);
    fclose(fp);
    assert_ok(safetensors_writer_save(w, path));
    assert_int_equal(dir_entries(test_temp_dir()), 1);
    SafetensorsFile *f = safetensors_open(path);
    assert_ok_ptr(f);
    Tensor *y = safetensors_load_tensor(f, "x");
    test_assert_values(y, (float[]){2, 2, 2}, 3, 0);
    tensor_free(y);
    safetensors_close(f);

    /* An empty writer makes a valid empty file. */
    SafetensorsWriter *empty = safetensors_writer_new();
    assert_ok(safetensors_writer_save(empty, path));
    safetensors_writer_free(empty);
    f = safetensors_open(path);
    assert_ok_ptr(f);
    assert_int_equal(safetensors_count(f), 0);
    safetensors_close(f);

    safetensors_writer_free(w);
    tensor_free(x);
}

/* ---- the real MobileNetV2 weights ---- */

static void test_mobilenet_file(void **state) {
    (void)state;
    const char *shared = test_shared_dir();
    if (!shared) skip();
    char path[4096];
    snprintf(path, sizeof path, "%s/weights/mobilenet_v2_tf_1001.safetensors", shared);
    if (access(path, R_OK) != 0) skip();
    SafetensorsFile *f = safetensors_open(path);
    assert_ok_ptr(f);
    assert_int_equal(safetensors_count(f), 314);
    const SafetensorsEntry *e = safetensors_find(f, "features.0.0.weight");
    assert_shape(e, SHAPE(32, 3, 3, 3));
    assert_int_equal(e->dtype, ST_F32);
    assert_string_equal(safetensors_metadata(f, "arch"), "mobilenet_v2");
    Tensor *w = safetensors_load_tensor(f, "features.0.0.weight");
    assert_ok_ptr(w);

    /* Compare with the bytes read by plain stdio from the offsets in the header. */
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    unsigned char len[8];
    assert_int_equal(fread(len, 1, 8, fp), 8);
    assert_int_equal(fseek(fp, (long)(8 + read_u64_le(len) + e->offset), SEEK_SET), 0);
    float raw[32 * 27];
    assert_int_equal(fread(raw, sizeof(float), 32 * 27, fp), 32 * 27);
    fclose(fp);
    test_assert_values(w, raw, 32 * 27, 0);
    tensor_free(w);

    /* Every F32 tensor loads; integer ones (num_batches_tracked) need the int path. */
    for (int i = 0; i < safetensors_count(f); i++) {
        e = safetensors_entry(f, i);
        if (e->dtype == ST_I64) {
            int64_t *v, n;
            assert_ok(safetensors_load_int64(f, e->name, &v, &n));
            free(v);
            continue;
        }
        Tensor *t = safetensors_load_tensor(f, e->name);
        assert_ok_ptr(t);
        assert_int_equal(tensor_numel(t), e->numel);
        tensor_free(t);
    }
    safetensors_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_f32, make_temp_dir, remove_temp_dir),
        cmocka_unit_test_setup_teardown(test_layout, make_temp_dir, remove_temp_dir),
        cmocka_unit_test_setup_teardown(test_metadata, make_temp_dir, remove_temp_dir),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_f16),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_f8_and_f64),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_lenient_layouts),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test_setup_teardown(test_open_errors, make_temp_dir, remove_temp_dir),
        cmocka_unit_test_setup_teardown(test_atomic_save, make_temp_dir, remove_temp_dir),
        cmocka_unit_test(test_mobilenet_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
