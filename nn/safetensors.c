/* safetensors reader and writer, see safetensors.h.
 *
 * Format reference: huggingface/safetensors README ("8 bytes: N, a u64 int, the
 * size of the header; N bytes: a JSON UTF-8 string; rest of the file: byte
 * buffer") and its Rust reader, whose checks (header <= 100 MB, offsets within
 * the buffer, byte count = numel * dtype size) we follow, except that gaps in
 * the data region are tolerated here. */
#include "nn/safetensors.h"

#include "tensor/half.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/json.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads and writes the little-endian file data with plain copies"
#endif

/* ---- dtypes ---- */

static const struct {
    const char *name;
    size_t size;
} dtype_info[] = {
    [ST_BOOL] = {"BOOL", 1},       [ST_U8] = {"U8", 1},           [ST_I8] = {"I8", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_I16] = {"I16", 2},
    [ST_U16] = {"U16", 2},         [ST_F16] = {"F16", 2},         [ST_BF16] = {"BF16", 2},
    [ST_I32] = {"I32", 4},         [ST_U32] = {"U32", 4},         [ST_F32] = {"F32", 4},
    [ST_F64] = {"F64", 8},         [ST_I64] = {"I64", 8},         [ST_U64] = {"U64", 8},
};
enum { DTYPE_COUNT = (int)(sizeof dtype_info / sizeof dtype_info[0]) };

static bool dtype_valid(SafetensorsDtype d) {
    return (int)d >= 0 && (int)d < DTYPE_COUNT;
}

const char *safetensors_dtype_name(SafetensorsDtype dtype) {
    return dtype_valid(dtype) ? dtype_info[dtype].name : "?";
}

size_t safetensors_dtype_size(SafetensorsDtype dtype) {
    return dtype_valid(dtype) ? dtype_info[dtype].size : 0;
}

static bool dtype_from_name(const char *s, size_t len, SafetensorsDtype *out) {
    for (int d = 0; d < DTYPE_COUNT; d++)
        if (strlen(dtype_info[d].name) == len && memcmp(dtype_info[d].name, s, len) == 0) {
            *out = (SafetensorsDtype)d;
            return true;
        }
    return false;
}

static bool dtype_is_integer(SafetensorsDtype d) {
    switch (d) {
    case ST_BOOL:
    case ST_U8:
    case ST_I8:
    case ST_I16:
    case ST_U16:
    case ST_I32:
    case ST_U32:
    case ST_I64:
    case ST_U64:
        return true;
    default:
        return false;
    }
}

/* Element count of `shape`, or -1 when it overflows. Zero dims count as 1 in the
 * overflow check so that a shape is either sane in every dim or refused. */
static int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1, bound = 1;
    for (int i = 0; i < ndim; i++) {
        int64_t d = shape[i];
        if (d < 0) return -1;
        if (d > 1 && bound > INT64_MAX / d) return -1;
        if (d > 1) bound *= d;
        n = d == 0 ? 0 : n * d;
    }
    return n;
}

/* Writes "'name'" for messages: control bytes as \xNN, long names cut with "...". */
static const char *quoted(const char *s, size_t len, char *buf, size_t size) {
    size_t o = 0;
    buf[o++] = '\'';
    for (size_t i = 0; i < len && o + 8 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 96) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}
#define QUOTE_BUF 128

static void shape_string(int ndim, const int64_t *shape, char *buf, size_t size) {
    size_t o = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (o < size) snprintf(buf + o, size - o, "]");
}

/* ---- floating-point formats -> F32 (exact) ---- */

/* float8 e5m2 has binary16's sign and exponent with a 2-bit fraction: it is the
 * top byte of a half. */
static float f8e5m2_to_f32(uint8_t b) {
    return half_to_float((uint16_t)(b << 8));
}

/* float8 e4m3 ("fn", as torch.float8_e4m3fn): 4 exponent bits (bias 7), 3
 * fraction bits, no infinities; S.1111.111 is NaN. Subnormals are fraction * 2^-9. */
static float f8e4m3_to_f32(uint8_t b) {
    uint32_t sign = (uint32_t)(b & 0x80) << 24;
    uint32_t exp = (b >> 3) & 0xF, frac = b & 0x7;
    if (exp == 0) {
        float v = (float)frac * 0x1p-9f;
        return sign ? -v : v;
    }
    uint32_t bits =
        exp == 15 && frac == 7 ? sign | 0x7FC00000u : sign | ((exp + 127 - 7) << 23) | (frac << 20);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* bfloat16 is the top half of a float. */
static float bhalf_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Converts n elements of `dtype` at `src` (unaligned) to float, in parallel above
 * 64k elements. Every dtype converts (integers above 2^24 and F64 round). */
static void convert_to_float(SafetensorsDtype dtype, const unsigned char *src, float *dst,
                             int64_t n) {
#define CONVERT(T, EXPR)                                                                           \
    _Pragma("omp parallel for if(n > 65536)") for (int64_t i = 0; i < n; i++) {                    \
        T v;                                                                                       \
        memcpy(&v, src + (size_t)i * sizeof(T), sizeof(T));                                        \
        dst[i] = (EXPR);                                                                           \
    }                                                                                              \
    return;
    switch (dtype) {
    case ST_F32:
        if (n) memcpy(dst, src, (size_t)n * 4);
        return;
    case ST_F16:
        CONVERT(uint16_t, half_to_float(v))
    case ST_BF16:
        CONVERT(uint16_t, bhalf_to_float(v))
    case ST_F8_E5M2:
        CONVERT(uint8_t, f8e5m2_to_f32(v))
    case ST_F8_E4M3:
        CONVERT(uint8_t, f8e4m3_to_f32(v))
    case ST_F64:
        CONVERT(double, (float)v)
    case ST_BOOL:
        CONVERT(uint8_t, v ? 1.0f : 0.0f)
    case ST_U8:
        CONVERT(uint8_t, (float)v)
    case ST_I8:
        CONVERT(int8_t, (float)v)
    case ST_I16:
        CONVERT(int16_t, (float)v)
    case ST_U16:
        CONVERT(uint16_t, (float)v)
    case ST_I32:
        CONVERT(int32_t, (float)v)
    case ST_U32:
        CONVERT(uint32_t, (float)v)
    case ST_I64:
        CONVERT(int64_t, (float)v)
    case ST_U64:
        CONVERT(uint64_t, (float)v)
    }
#undef CONVERT
}

/* Converts n elements of an integer or BOOL dtype to int64. Returns the index of
 * the first U64 value above INT64_MAX, or -1 when all fit. */
static int64_t convert_to_int64(SafetensorsDtype dtype, const unsigned char *src, int64_t *dst,
                                int64_t n) {
#define CONVERT(T)                                                                                 \
    for (int64_t i = 0; i < n; i++) {                                                              \
        T v;                                                                                       \
        memcpy(&v, src + (size_t)i * sizeof(T), sizeof(T));                                        \
        dst[i] = (int64_t)v;                                                                       \
    }                                                                                              \
    return -1;
    switch (dtype) {
    case ST_BOOL:
        for (int64_t i = 0; i < n; i++) dst[i] = src[i] != 0;
        return -1;
    case ST_U8:
        CONVERT(uint8_t)
    case ST_I8:
        CONVERT(int8_t)
    case ST_I16:
        CONVERT(int16_t)
    case ST_U16:
        CONVERT(uint16_t)
    case ST_I32:
        CONVERT(int32_t)
    case ST_U32:
        CONVERT(uint32_t)
    case ST_I64:
        if (n) memcpy(dst, src, (size_t)n * 8);
        return -1;
    case ST_U64:
        for (int64_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, src + (size_t)i * 8, 8);
            if (v > (uint64_t)INT64_MAX) return i;
            dst[i] = (int64_t)v;
        }
        return -1;
    default:
        return -1;
    }
#undef CONVERT
}

/* ---- reading ---- */

typedef struct MetadataItem {
    const char *key, *value;
} MetadataItem;

struct SafetensorsFile {
    char *name; /* path for messages, or "<memory>" */
    const unsigned char *bytes;
    size_t size;
    bool mapped;
    const unsigned char *data; /* the data region, after the header */
    uint64_t data_size;
    JsonDoc *doc;              /* owns the names and metadata strings */
    SafetensorsEntry *entries; /* sorted by name */
    int count;
    int64_t *shapes;        /* every entry's dims, one block */
    MetadataItem *metadata; /* sorted by key */
    int metadata_count;
};

__attribute__((format(printf, 3, 4))) static hg_status
file_fail(const SafetensorsFile *f, hg_status code, const char *fmt, ...) {
    char msg[400];
    va_list args;
    va_start(args, fmt);
    vsnprintf(msg, sizeof msg, fmt, args);
    va_end(args);
    return hg_fail(code, "safetensors: %s: %s", f->name, msg);
}

static bool is_metadata_key(const JsonMember *m) {
    return m->key_length == 12 && memcmp(m->key, "__metadata__", 12) == 0;
}

static int compare_entry_names(const void *a, const void *b) {
    return strcmp(((const SafetensorsEntry *)a)->name, ((const SafetensorsEntry *)b)->name);
}

static int compare_entry_offsets(const void *a, const void *b) {
    const SafetensorsEntry *x = *(const SafetensorsEntry *const *)a;
    const SafetensorsEntry *y = *(const SafetensorsEntry *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

static int compare_metadata_keys(const void *a, const void *b) {
    return strcmp(((const MetadataItem *)a)->key, ((const MetadataItem *)b)->key);
}

/* Reads one {"dtype", "shape", "data_offsets"} object into `e` (shape into `dims`). */
static hg_status parse_entry(const SafetensorsFile *f, const JsonMember *m, SafetensorsEntry *e,
                             int64_t *dims) {
    char qn[QUOTE_BUF], qk[QUOTE_BUF];
    quoted(m->key, m->key_length, qn, sizeof qn);
    if (m->key_length != strlen(m->key))
        return file_fail(f, HG_ERR_FORMAT, "tensor %s: name contains a NUL character", qn);
    const JsonValue *v = &m->value;
    if (v->type != JSON_OBJECT)
        return file_fail(f, HG_ERR_FORMAT, "tensor %s: entry is a JSON %s, not an object", qn,
                         json_type_name(v->type));
    const JsonValue *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (size_t i = 0; i < v->object.count; i++) {
        const JsonMember *field = &v->object.members[i];
        const JsonValue **slot = !strcmp(field->key, "dtype")          ? &dtype
                                 : !strcmp(field->key, "shape")        ? &shape
                                 : !strcmp(field->key, "data_offsets") ? &offsets
                                                                       : NULL;
        if (slot && field->key_length != strlen(field->key)) slot = NULL;
        quoted(field->key, field->key_length, qk, sizeof qk);
        if (!slot)
            return file_fail(f, HG_ERR_FORMAT,
                             "tensor %s: unexpected field %s (allowed: dtype, shape, "
                             "data_offsets)",
                             qn, qk);
        if (*slot) return file_fail(f, HG_ERR_FORMAT, "tensor %s: duplicate field %s", qn, qk);
        *slot = &field->value;
    }
    if (!dtype) return file_fail(f, HG_ERR_FORMAT, "tensor %s: missing field 'dtype'", qn);
    if (!shape) return file_fail(f, HG_ERR_FORMAT, "tensor %s: missing field 'shape'", qn);
    if (!offsets) return file_fail(f, HG_ERR_FORMAT, "tensor %s: missing field 'data_offsets'", qn);

    if (dtype->type != JSON_STRING)
        return file_fail(f, HG_ERR_FORMAT, "tensor %s: dtype is a JSON %s, not a string", qn,
                         json_type_name(dtype->type));
    if (!dtype_from_name(dtype->string.chars, dtype->string.length, &e->dtype))
        return file_fail(f, HG_ERR_FORMAT, "tensor %s: unknown dtype %s", qn,
                         quoted(dtype->string.chars, dtype->string.length, qk, sizeof qk));

    if (shape->type != JSON_ARRAY)
        return file_fail(f, HG_ERR_FORMAT, "tensor %s: shape is a JSON %s, not an array", qn,
                         json_type_name(shape->type));
    if (shape->array.count > SAFETENSORS_MAX_DIMS)
        return file_fail(f, HG_ERR_FORMAT, "tensor %s: shape has %zu dims (limit %d)", qn,
                         shape->array.count, SAFETENSORS_MAX_DIMS);
    e->ndim = (int)shape->array.count;
    for (int i = 0; i < e->ndim; i++) {
        const JsonValue *d = &shape->array.items[i];
        if (d->type != JSON_INT)
            return file_fail(f, HG_ERR_FORMAT, "tensor %s: shape[%d] is a JSON %s, not an integer",
                             qn, i, json_type_name(d->type));
        if (d->integer < 0)
            return file_fail(f, HG_ERR_FORMAT, "tensor %s: shape[%d] = %lld is negative", qn, i,
                             (long long)d->integer);
        dims[i] = d->integer;
    }
    e->shape = dims;
    char shp[256];
    shape_string(e->ndim, dims, shp, sizeof shp);
    e->numel = shape_numel(e->ndim, dims);
    size_t esize = dtype_info[e->dtype].size;
    if (e->numel < 0 || (uint64_t)e->numel > UINT64_MAX / esize)
        return file_fail(f, HG_ERR_FORMAT, "tensor %s: element count of shape %s overflows", qn,
                         shp);
    e->nbytes = (uint64_t)e->numel * esize;

    if (offsets->type != JSON_ARRAY || offsets->array.count != 2 ||
        offsets->array.items[0].type != JSON_INT || offsets->array.items[1].type != JSON_INT)
        return file_fail(f, HG_ERR_FORMAT,
                         "tensor %s: data_offsets is not a [begin, end] pair of integers", qn);
    int64_t begin = offsets->array.items[0].integer, end = offsets->array.items[1].integer;
    if (begin < 0 || end < 0)
        return file_fail(f, HG_ERR_FORMAT, "tensor %s: data_offsets [%lld, %lld] are negative", qn,
                         (long long)begin, (long long)end);
    if (begin > end)
        return file_fail(f, HG_ERR_FORMAT, "tensor %s: data_offsets [%lld, %lld] have begin > end",
                         qn, (long long)begin, (long long)end);
    if ((uint64_t)end > f->data_size)
        return file_fail(f, HG_ERR_FORMAT,
                         "tensor %s: data_offsets [%lld, %lld] out of range (the data region has "
                         "%llu bytes)",
                         qn, (long long)begin, (long long)end, (unsigned long long)f->data_size);
    if ((uint64_t)(end - begin) != e->nbytes)
        return file_fail(f, HG_ERR_FORMAT,
                         "tensor %s: shape %s of %s needs %llu bytes but data_offsets [%lld, %lld] "
                         "hold %lld",
                         qn, shp, dtype_info[e->dtype].name, (unsigned long long)e->nbytes,
                         (long long)begin, (long long)end, (long long)(end - begin));
    e->name = m->key;
    e->offset = (uint64_t)begin;
    return HG_OK;
}

static hg_status parse_metadata(SafetensorsFile *f, const JsonValue *v) {
    char qk[QUOTE_BUF], qv[QUOTE_BUF];
    if (v->type != JSON_OBJECT)
        return file_fail(f, HG_ERR_FORMAT, "__metadata__ is a JSON %s, not an object",
                         json_type_name(v->type));
    if (v->object.count > (size_t)INT32_MAX)
        return file_fail(f, HG_ERR_FORMAT, "__metadata__ has too many entries");
    f->metadata = malloc(sizeof(MetadataItem) * (v->object.count ? v->object.count : 1));
    if (!f->metadata) return file_fail(f, HG_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < v->object.count; i++) {
        const JsonMember *m = &v->object.members[i];
        quoted(m->key, m->key_length, qk, sizeof qk);
        if (m->value.type != JSON_STRING)
            return file_fail(f, HG_ERR_FORMAT,
                             "__metadata__ value for key %s is a JSON %s, not a string", qk,
                             json_type_name(m->value.type));
        if (m->key_length != strlen(m->key))
            return file_fail(f, HG_ERR_FORMAT, "__metadata__ key %s contains a NUL character", qk);
        if (m->value.string.length != strlen(m->value.string.chars))
            return file_fail(f, HG_ERR_FORMAT,
                             "__metadata__ value for key %s contains a NUL character (%s)", qk,
                             quoted(m->value.string.chars, m->value.string.length, qv, sizeof qv));
        f->metadata[i].key = m->key;
        f->metadata[i].value = m->value.string.chars;
    }
    f->metadata_count = (int)v->object.count;
    qsort(f->metadata, (size_t)f->metadata_count, sizeof(MetadataItem), compare_metadata_keys);
    for (int i = 1; i < f->metadata_count; i++)
        if (!strcmp(f->metadata[i - 1].key, f->metadata[i].key))
            return file_fail(f, HG_ERR_FORMAT, "__metadata__ has a duplicate key %s",
                             quoted(f->metadata[i].key, strlen(f->metadata[i].key), qk, sizeof qk));
    return HG_OK;
}

/* Tensors may leave gaps but must not share bytes. Empty tensors own no bytes. */
static hg_status check_overlaps(const SafetensorsFile *f) {
    const SafetensorsEntry **order = malloc(sizeof(*order) * (size_t)(f->count ? f->count : 1));
    if (!order) return file_fail(f, HG_ERR_NOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < f->count; i++)
        if (f->entries[i].nbytes) order[n++] = &f->entries[i];
    qsort(order, (size_t)n, sizeof(*order), compare_entry_offsets);
    hg_status st = HG_OK;
    for (int i = 1; i < n; i++) {
        const SafetensorsEntry *a = order[i - 1], *b = order[i];
        if (b->offset < a->offset + a->nbytes) {
            char qa[QUOTE_BUF], qb[QUOTE_BUF];
            st = file_fail(
                f, HG_ERR_FORMAT,
                "tensors %s [%llu, %llu) and %s [%llu, %llu) overlap in the data region",
                quoted(a->name, strlen(a->name), qa, sizeof qa), (unsigned long long)a->offset,
                (unsigned long long)(a->offset + a->nbytes),
                quoted(b->name, strlen(b->name), qb, sizeof qb), (unsigned long long)b->offset,
                (unsigned long long)(b->offset + b->nbytes));
            break;
        }
    }
    free(order);
    return st;
}

static hg_status parse_header(SafetensorsFile *f) {
    if (f->size < 8)
        return file_fail(f, HG_ERR_FORMAT,
                         "file is %zu bytes, shorter than the 8-byte header length", f->size);
    uint64_t n;
    memcpy(&n, f->bytes, 8);
    if (n > SAFETENSORS_MAX_HEADER)
        return file_fail(f, HG_ERR_FORMAT, "header length %llu is absurd (limit %llu bytes)",
                         (unsigned long long)n, (unsigned long long)SAFETENSORS_MAX_HEADER);
    if (n > f->size - 8)
        return file_fail(f, HG_ERR_FORMAT,
                         "header length %llu runs past the end of the file (%zu bytes)",
                         (unsigned long long)n, f->size);
    f->data = f->bytes + 8 + n;
    f->data_size = f->size - 8 - n;

    JsonError err;
    f->doc = json_parse((const char *)f->bytes + 8, (size_t)n, &err);
    if (!f->doc)
        return file_fail(f, hg_last_status() == HG_ERR_NOMEM ? HG_ERR_NOMEM : HG_ERR_FORMAT,
                         "malformed JSON header: %s at header byte %zu", err.message, err.offset);
    const JsonValue *root = json_root(f->doc);
    if (root->type != JSON_OBJECT)
        return file_fail(f, HG_ERR_FORMAT, "header is a JSON %s, not an object",
                         json_type_name(root->type));

    /* Count tensors and their dims to allocate once. */
    size_t count = 0, total_dims = 0;
    const JsonValue *meta = NULL;
    for (size_t i = 0; i < root->object.count; i++) {
        const JsonMember *m = &root->object.members[i];
        if (is_metadata_key(m)) {
            if (meta) return file_fail(f, HG_ERR_FORMAT, "duplicate __metadata__ entry");
            meta = &m->value;
            continue;
        }
        count++;
        const JsonValue *shape = json_object_get(&m->value, "shape");
        if (shape && shape->type == JSON_ARRAY)
            total_dims += shape->array.count < SAFETENSORS_MAX_DIMS ? shape->array.count
                                                                    : SAFETENSORS_MAX_DIMS;
    }
    if (count > (size_t)INT32_MAX) return file_fail(f, HG_ERR_FORMAT, "too many tensors");
    f->entries = calloc(count ? count : 1, sizeof(SafetensorsEntry));
    f->shapes = malloc(sizeof(int64_t) * (total_dims ? total_dims : 1));
    if (!f->entries || !f->shapes) return file_fail(f, HG_ERR_NOMEM, "out of memory");

    size_t dims_used = 0;
    for (size_t i = 0; i < root->object.count; i++) {
        const JsonMember *m = &root->object.members[i];
        if (is_metadata_key(m)) continue;
        /* parse_entry writes at most the counted dims: it refuses longer shapes first. */
        hg_status st = parse_entry(f, m, &f->entries[f->count], f->shapes + dims_used);
        if (st != HG_OK) return st;
        dims_used += (size_t)f->entries[f->count].ndim;
        f->count++;
    }
    qsort(f->entries, (size_t)f->count, sizeof(SafetensorsEntry), compare_entry_names);
    for (int i = 1; i < f->count; i++)
        if (!strcmp(f->entries[i - 1].name, f->entries[i].name)) {
            char q[QUOTE_BUF];
            return file_fail(f, HG_ERR_FORMAT, "duplicate tensor name %s",
                             quoted(f->entries[i].name, strlen(f->entries[i].name), q, sizeof q));
        }
    hg_status st = check_overlaps(f);
    if (st != HG_OK) return st;
    return meta ? parse_metadata(f, meta) : HG_OK;
}

void safetensors_close(SafetensorsFile *f) {
    if (!f) return;
    if (f->mapped && f->size) munmap((void *)f->bytes, f->size);
    json_free(f->doc);
    free(f->entries);
    free(f->shapes);
    free(f->metadata);
    free(f->name);
    free(f);
}

static SafetensorsFile *file_new(const char *name) {
    SafetensorsFile *f = calloc(1, sizeof(SafetensorsFile));
    if (f) f->name = strdup(name);
    if (!f || !f->name) {
        free(f);
        hg_fail(HG_ERR_NOMEM, "safetensors: %s: out of memory", name);
        return NULL;
    }
    return f;
}

SafetensorsFile *safetensors_open_memory(const void *data, size_t size) {
    SafetensorsFile *f = file_new("<memory>");
    if (!f) return NULL;
    f->bytes = data;
    f->size = data ? size : 0;
    if (parse_header(f) != HG_OK) {
        safetensors_close(f);
        return NULL;
    }
    return f;
}

SafetensorsFile *safetensors_open(const char *path) {
    SafetensorsFile *f = file_new(path);
    if (!f) return NULL;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        file_fail(f, HG_ERR_IO, "cannot open: %s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        file_fail(f, HG_ERR_IO, "not a regular file");
        goto fail;
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            file_fail(f, HG_ERR_IO, "cannot map %zu bytes: %s", f->size, strerror(errno));
            f->size = 0;
            goto fail;
        }
        f->bytes = map;
        f->mapped = true;
    }
    close(fd);
    fd = -1;
    if (parse_header(f) != HG_OK) goto fail;
    return f;
fail:
    if (fd >= 0) close(fd);
    safetensors_close(f);
    return NULL;
}

int safetensors_count(const SafetensorsFile *f) {
    return f ? f->count : 0;
}

const SafetensorsEntry *safetensors_entry(const SafetensorsFile *f, int i) {
    return f && i >= 0 && i < f->count ? &f->entries[i] : NULL;
}

const SafetensorsEntry *safetensors_find(const SafetensorsFile *f, const char *name) {
    if (!f || !name || f->count == 0) return NULL;
    SafetensorsEntry key = {.name = name};
    return bsearch(&key, f->entries, (size_t)f->count, sizeof(SafetensorsEntry),
                   compare_entry_names);
}

const void *safetensors_entry_data(const SafetensorsFile *f, const SafetensorsEntry *e) {
    return f && e ? f->data + e->offset : NULL;
}

const char *safetensors_metadata(const SafetensorsFile *f, const char *key) {
    if (!f || !key || f->metadata_count == 0) return NULL;
    MetadataItem probe = {.key = key};
    const MetadataItem *m = bsearch(&probe, f->metadata, (size_t)f->metadata_count,
                                    sizeof(MetadataItem), compare_metadata_keys);
    return m ? m->value : NULL;
}

int safetensors_metadata_count(const SafetensorsFile *f) {
    return f ? f->metadata_count : 0;
}

const char *safetensors_metadata_key(const SafetensorsFile *f, int i) {
    return f && i >= 0 && i < f->metadata_count ? f->metadata[i].key : NULL;
}

const char *safetensors_metadata_value(const SafetensorsFile *f, int i) {
    return f && i >= 0 && i < f->metadata_count ? f->metadata[i].value : NULL;
}

static const SafetensorsEntry *require_entry(const SafetensorsFile *f, const char *name) {
    if (!f || !name) {
        hg_fail(HG_ERR_ARG, "safetensors: load needs a file and a tensor name");
        return NULL;
    }
    const SafetensorsEntry *e = safetensors_find(f, name);
    if (!e) {
        char q[QUOTE_BUF];
        file_fail(f, HG_ERR_FORMAT, "no tensor named %s", quoted(name, strlen(name), q, sizeof q));
    }
    return e;
}

static Tensor *load_float(const SafetensorsFile *f, const char *name, bool allow_integers) {
    const SafetensorsEntry *e = require_entry(f, name);
    if (!e) return NULL;
    char q[QUOTE_BUF];
    quoted(e->name, strlen(e->name), q, sizeof q);
    if (dtype_is_integer(e->dtype) && !allow_integers) {
        file_fail(f, HG_ERR_ARG,
                  "tensor %s has dtype %s; read it with safetensors_load_int64 or "
                  "safetensors_load_as_float",
                  q, dtype_info[e->dtype].name);
        return NULL;
    }
    if (e->ndim > TENSOR_MAX_DIMS) {
        file_fail(f, HG_ERR_UNSUPPORTED, "tensor %s has %d dims; tensors have at most %d", q,
                  e->ndim, TENSOR_MAX_DIMS);
        return NULL;
    }
    const int64_t scalar_shape[1] = {1};
    Tensor *t = tensor_empty(e->ndim, e->ndim ? e->shape : scalar_shape);
    if (!t) return NULL;
    convert_to_float(e->dtype, f->data + e->offset, tensor_data(t), e->numel);
    return t;
}

Tensor *safetensors_load_tensor(const SafetensorsFile *f, const char *name) {
    return load_float(f, name, false);
}

Tensor *safetensors_load_as_float(const SafetensorsFile *f, const char *name) {
    return load_float(f, name, true);
}

hg_status safetensors_load_int64(const SafetensorsFile *f, const char *name, int64_t **out,
                                 int64_t *numel) {
    if (!out) return hg_fail(HG_ERR_ARG, "safetensors_load_int64: out is NULL");
    *out = NULL;
    if (numel) *numel = 0;
    const SafetensorsEntry *e = require_entry(f, name);
    if (!e) return hg_last_status();
    char q[QUOTE_BUF];
    quoted(e->name, strlen(e->name), q, sizeof q);
    if (!dtype_is_integer(e->dtype))
        return file_fail(f, HG_ERR_ARG, "tensor %s has dtype %s, not an integer dtype", q,
                         dtype_info[e->dtype].name);
    int64_t *values = malloc(sizeof(int64_t) * (size_t)(e->numel ? e->numel : 1));
    if (!values) return file_fail(f, HG_ERR_NOMEM, "tensor %s: out of memory", q);
    int64_t bad = convert_to_int64(e->dtype, f->data + e->offset, values, e->numel);
    if (bad >= 0) {
        free(values);
        return file_fail(f, HG_ERR_FORMAT, "tensor %s: U64 element %lld does not fit in int64", q,
                         (long long)bad);
    }
    *out = values;
    if (numel) *numel = e->numel;
    return HG_OK;
}

/* ---- writing ---- */

typedef struct WriterEntry {
    char *name;
    SafetensorsDtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    uint64_t nbytes;
    Tensor *tensor;       /* F32 values held by reference, or NULL */
    unsigned char *bytes; /* owned copy otherwise */
} WriterEntry;

struct SafetensorsWriter {
    WriterEntry *entries;
    int count, capacity;
    MetadataItem *metadata; /* owned strings */
    int metadata_count, metadata_capacity;
};

SafetensorsWriter *safetensors_writer_new(void) {
    SafetensorsWriter *w = calloc(1, sizeof(SafetensorsWriter));
    if (!w) hg_fail(HG_ERR_NOMEM, "safetensors_writer_new: out of memory");
    return w;
}

void safetensors_writer_free(SafetensorsWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->count; i++) {
        free(w->entries[i].name);
        tensor_free(w->entries[i].tensor);
        free(w->entries[i].bytes);
    }
    for (int i = 0; i < w->metadata_count; i++) {
        free((char *)w->metadata[i].key);
        free((char *)w->metadata[i].value);
    }
    free(w->entries);
    free(w->metadata);
    free(w);
}

/* Strings become JSON strings, so they must be UTF-8; NUL would end them early. */
static hg_status check_text(const char *op, const char *what, const char *s) {
    if (!s) return hg_fail(HG_ERR_ARG, "%s: %s is NULL", op, what);
    if (!json_is_valid_utf8(s, strlen(s))) {
        char q[QUOTE_BUF];
        return hg_fail(HG_ERR_ARG, "%s: %s %s is not valid UTF-8", op, what,
                       quoted(s, strlen(s), q, sizeof q));
    }
    return HG_OK;
}

/* Validates name and shape and appends an entry; the caller fills the data. */
static WriterEntry *writer_append(SafetensorsWriter *w, const char *op, const char *name,
                                  SafetensorsDtype dtype, int ndim, const int64_t *shape) {
    char q[QUOTE_BUF], shp[256];
    if (!w) {
        hg_fail(HG_ERR_ARG, "%s: writer is NULL", op);
        return NULL;
    }
    if (check_text(op, "tensor name", name) != HG_OK) return NULL;
    quoted(name, strlen(name), q, sizeof q);
    if (!strcmp(name, "__metadata__")) {
        hg_fail(HG_ERR_ARG, "%s: '__metadata__' is reserved and cannot name a tensor", op);
        return NULL;
    }
    for (int i = 0; i < w->count; i++)
        if (!strcmp(w->entries[i].name, name)) {
            hg_fail(HG_ERR_ARG, "%s: tensor name %s is already used", op, q);
            return NULL;
        }
    if (!dtype_valid(dtype)) {
        hg_fail(HG_ERR_ARG, "%s: tensor %s: invalid dtype %d", op, q, (int)dtype);
        return NULL;
    }
    if (ndim < 0 || ndim > SAFETENSORS_MAX_DIMS || (ndim > 0 && !shape)) {
        hg_fail(HG_ERR_ARG, "%s: tensor %s: invalid ndim %d", op, q, ndim);
        return NULL;
    }
    int64_t numel = shape_numel(ndim, shape);
    if (numel < 0 || (uint64_t)numel > UINT64_MAX / dtype_info[dtype].size) {
        shape_string(ndim, shape, shp, sizeof shp);
        hg_fail(HG_ERR_ARG, "%s: tensor %s: invalid shape %s", op, q, shp);
        return NULL;
    }
    if (w->count == w->capacity) {
        int cap = w->capacity ? w->capacity * 2 : 16;
        WriterEntry *e = realloc(w->entries, sizeof(WriterEntry) * (size_t)cap);
        if (!e) {
            hg_fail(HG_ERR_NOMEM, "%s: out of memory", op);
            return NULL;
        }
        w->entries = e;
        w->capacity = cap;
    }
    WriterEntry *e = &w->entries[w->count];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name) {
        hg_fail(HG_ERR_NOMEM, "%s: out of memory", op);
        return NULL;
    }
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = (uint64_t)numel * dtype_info[dtype].size;
    w->count++;
    return e;
}

/* Removes the last entry after a failure to fill it. */
static void writer_drop_last(SafetensorsWriter *w) {
    WriterEntry *e = &w->entries[--w->count];
    free(e->name);
    tensor_free(e->tensor);
    free(e->bytes);
}

hg_status safetensors_writer_add(SafetensorsWriter *w, const char *name, const Tensor *t) {
    if (!t) return hg_fail(HG_ERR_ARG, "safetensors_writer_add: tensor is NULL");
    WriterEntry *e = writer_append(w, "safetensors_writer_add", name, ST_F32, t->ndim, t->shape);
    if (!e) return hg_last_status();
    e->tensor = tensor_ref(t);
    if (!e->tensor) {
        writer_drop_last(w);
        return hg_last_status();
    }
    return HG_OK;
}

hg_status safetensors_writer_add_raw(SafetensorsWriter *w, const char *name, SafetensorsDtype dtype,
                                     int ndim, const int64_t *shape, const void *bytes) {
    WriterEntry *e = writer_append(w, "safetensors_writer_add", name, dtype, ndim, shape);
    if (!e) return hg_last_status();
    if (e->nbytes && !bytes) {
        writer_drop_last(w);
        return hg_fail(HG_ERR_ARG, "safetensors_writer_add: data of '%s' is NULL", name);
    }
    if (e->nbytes > SIZE_MAX || !(e->bytes = malloc(e->nbytes ? (size_t)e->nbytes : 1))) {
        writer_drop_last(w);
        return hg_fail(HG_ERR_NOMEM, "safetensors_writer_add: out of memory for '%s'", name);
    }
    if (e->nbytes) memcpy(e->bytes, bytes, (size_t)e->nbytes);
    return HG_OK;
}

hg_status safetensors_writer_add_int64(SafetensorsWriter *w, const char *name, int ndim,
                                       const int64_t *shape, const int64_t *values) {
    return safetensors_writer_add_raw(w, name, ST_I64, ndim, shape, values);
}

hg_status safetensors_writer_set_metadata(SafetensorsWriter *w, const char *key,
                                          const char *value) {
    const char *op = "safetensors_writer_set_metadata";
    if (!w) return hg_fail(HG_ERR_ARG, "%s: writer is NULL", op);
    if (check_text(op, "key", key) != HG_OK || check_text(op, "value", value) != HG_OK)
        return hg_last_status();
    char *v = strdup(value);
    if (!v) return hg_fail(HG_ERR_NOMEM, "%s: out of memory", op);
    for (int i = 0; i < w->metadata_count; i++)
        if (!strcmp(w->metadata[i].key, key)) {
            free((char *)w->metadata[i].value);
            w->metadata[i].value = v;
            return HG_OK;
        }
    if (w->metadata_count == w->metadata_capacity) {
        int cap = w->metadata_capacity ? w->metadata_capacity * 2 : 8;
        MetadataItem *m = realloc(w->metadata, sizeof(MetadataItem) * (size_t)cap);
        if (!m) {
            free(v);
            return hg_fail(HG_ERR_NOMEM, "%s: out of memory", op);
        }
        w->metadata = m;
        w->metadata_capacity = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return hg_fail(HG_ERR_NOMEM, "%s: out of memory", op);
    }
    w->metadata[w->metadata_count++] = (MetadataItem){k, v};
    return HG_OK;
}

/* A growable text buffer for the JSON header. */
typedef struct Text {
    char *chars;
    size_t length, capacity;
    bool failed;
} Text;

static void text_append(Text *t, const char *s, size_t n) {
    if (t->failed) return;
    if (t->capacity - t->length < n + 1) {
        size_t cap = t->capacity ? t->capacity : 1024;
        while (cap - t->length < n + 1) cap *= 2;
        char *c = realloc(t->chars, cap);
        if (!c) {
            t->failed = true;
            return;
        }
        t->chars = c;
        t->capacity = cap;
    }
    memcpy(t->chars + t->length, s, n);
    t->length += n;
    t->chars[t->length] = '\0';
}

__attribute__((format(printf, 2, 3))) static void text_printf(Text *t, const char *fmt, ...) {
    char buf[64];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, args); /* only used for short numbers */
    va_end(args);
    if (n > 0 && (size_t)n < sizeof buf) text_append(t, buf, (size_t)n);
}

/* A JSON string literal: quote, backslash and control characters escaped. */
static void text_json_string(Text *t, const char *s) {
    text_append(t, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            text_append(t, esc, 2);
        } else if (c == '\n' || c == '\t' || c == '\r') {
            char esc[2] = {'\\', c == '\n' ? 'n' : c == '\t' ? 't' : 'r'};
            text_append(t, esc, 2);
        } else if (c < 0x20) {
            text_printf(t, "\\u%04x", c);
        } else {
            text_append(t, p, 1);
        }
    }
    text_append(t, "\"", 1);
}

static int compare_writer_names(const void *a, const void *b) {
    return strcmp((*(const WriterEntry *const *)a)->name, (*(const WriterEntry *const *)b)->name);
}

/* Larger elements first keeps every tensor aligned to its element size without
 * padding (the data region starts 8-aligned); then by name for a stable layout. */
static int compare_writer_layout(const void *a, const void *b) {
    const WriterEntry *x = *(const WriterEntry *const *)a, *y = *(const WriterEntry *const *)b;
    size_t sx = dtype_info[x->dtype].size, sy = dtype_info[y->dtype].size;
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int compare_metadata_items(const void *a, const void *b) {
    return strcmp((*(const MetadataItem *const *)a)->key, (*(const MetadataItem *const *)b)->key);
}

/* Builds the padded JSON header; offsets[i] receives entry i's data offset. */
static hg_status build_header(const SafetensorsWriter *w, const WriterEntry **layout,
                              const WriterEntry **by_name, uint64_t *offsets, Text *t) {
    uint64_t offset = 0;
    for (int k = 0; k < w->count; k++) {
        offsets[layout[k] - w->entries] = offset;
        offset += layout[k]->nbytes;
    }
    const MetadataItem **meta = malloc(sizeof(*meta) * (size_t)(w->metadata_count + 1));
    if (!meta) return hg_fail(HG_ERR_NOMEM, "safetensors_writer_save: out of memory");
    for (int i = 0; i < w->metadata_count; i++) meta[i] = &w->metadata[i];
    qsort(meta, (size_t)w->metadata_count, sizeof(*meta), compare_metadata_items);

    text_append(t, "{\"__metadata__\":{", 17);
    for (int i = 0; i < w->metadata_count; i++) {
        if (i) text_append(t, ",", 1);
        text_json_string(t, meta[i]->key);
        text_append(t, ":", 1);
        text_json_string(t, meta[i]->value);
    }
    text_append(t, "}", 1);
    free(meta);
    for (int k = 0; k < w->count; k++) {
        const WriterEntry *e = by_name[k];
        uint64_t begin = offsets[e - w->entries];
        text_append(t, ",", 1);
        text_json_string(t, e->name);
        text_printf(t, ":{\"dtype\":\"%s\",\"shape\":[", dtype_info[e->dtype].name);
        for (int d = 0; d < e->ndim; d++)
            text_printf(t, d ? ",%lld" : "%lld", (long long)e->shape[d]);
        text_printf(t, "],\"data_offsets\":[%llu,", (unsigned long long)begin);
        text_printf(t, "%llu]}", (unsigned long long)(begin + e->nbytes));
    }
    text_append(t, "}", 1);
    /* Pad with spaces so the data region starts 8-byte aligned (8 + N = 0 mod 8). */
    while (!t->failed && t->length % 8) text_append(t, " ", 1);
    if (t->failed) return hg_fail(HG_ERR_NOMEM, "safetensors_writer_save: out of memory");
    if (t->length > SAFETENSORS_MAX_HEADER)
        return hg_fail(HG_ERR_ARG, "safetensors_writer_save: header of %zu bytes exceeds %llu",
                       t->length, (unsigned long long)SAFETENSORS_MAX_HEADER);
    return HG_OK;
}

static bool write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Writes one entry's bytes; non-contiguous tensors go through a packed copy. */
static bool write_entry(int fd, const WriterEntry *e) {
    if (!e->tensor) return write_all(fd, e->bytes, (size_t)e->nbytes);
    if (tensor_is_contiguous(e->tensor))
        return write_all(fd, tensor_data(e->tensor), (size_t)e->nbytes);
    float *packed = malloc(e->nbytes ? (size_t)e->nbytes : 1);
    if (!packed) {
        errno = ENOMEM;
        return false;
    }
    bool ok =
        tensor_to_array(e->tensor, packed) == HG_OK && write_all(fd, packed, (size_t)e->nbytes);
    if (!ok && errno == 0) errno = EIO;
    free(packed);
    return ok;
}

/* Makes the rename durable; failure here cannot undo the save, so it is ignored. */
static void sync_parent_dir(const char *path) {
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        slash[slash == dir ? 1 : 0] = '\0';
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

hg_status safetensors_writer_save(const SafetensorsWriter *w, const char *path) {
    if (!w || !path) return hg_fail(HG_ERR_ARG, "safetensors_writer_save: writer or path is NULL");
    int n = w->count;
    const WriterEntry **layout = malloc(sizeof(*layout) * (size_t)(n + 1));
    const WriterEntry **by_name = malloc(sizeof(*by_name) * (size_t)(n + 1));
    uint64_t *offsets = malloc(sizeof(uint64_t) * (size_t)(n + 1));
    size_t tmp_size = strlen(path) + 32;
    char *tmp = malloc(tmp_size);
    Text header = {0};
    int fd = -1;
    hg_status st = HG_OK;
    if (!layout || !by_name || !offsets || !tmp) {
        st = hg_fail(HG_ERR_NOMEM, "safetensors_writer_save: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) layout[i] = by_name[i] = &w->entries[i];
    qsort(layout, (size_t)n, sizeof(*layout), compare_writer_layout);
    qsort(by_name, (size_t)n, sizeof(*by_name), compare_writer_names);
    st = build_header(w, layout, by_name, offsets, &header);
    if (st != HG_OK) goto done;

    snprintf(tmp, tmp_size, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = hg_fail(HG_ERR_IO, "safetensors: cannot write '%s': %s", path, strerror(errno));
        goto done;
    }
    uint64_t header_length = header.length;
    bool ok = write_all(fd, &header_length, 8) && write_all(fd, header.chars, header.length);
    for (int k = 0; ok && k < n; k++) ok = write_entry(fd, layout[k]);
    if (ok) ok = fsync(fd) == 0;
    int saved_errno = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        saved_errno = errno;
    }
    fd = -1;
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        saved_errno = errno;
    }
    if (!ok) {
        unlink(tmp);
        st = hg_fail(HG_ERR_IO, "safetensors: cannot write '%s': %s", path, strerror(saved_errno));
        goto done;
    }
    sync_parent_dir(path);
done:
    free(layout);
    free(by_name);
    free(offsets);
    free(tmp);
    free(header.chars);
    return st;
}
