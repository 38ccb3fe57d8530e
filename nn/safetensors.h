/* Reading and writing safetensors files (huggingface/safetensors format).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of a JSON object
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
 * {string: string}}, then the raw little-endian tensor bytes; offsets count from
 * the first byte after the header.
 *
 * Opening validates the whole header once (JSON, fields, dtypes, shapes,
 * offsets in range, no overlapping tensors, unique names, string metadata); a
 * bad file gives NULL and a one-line message naming the file and the tensor.
 * Gaps between tensors are accepted, overlaps are not. Entries and metadata are
 * listed in name order. Names and metadata containing "\u0000" are rejected. */
#ifndef HG_SAFETENSORS_H
#define HG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"

#define SAFETENSORS_MAX_DIMS   32
#define SAFETENSORS_MAX_HEADER ((uint64_t)100000000) /* bytes; larger headers are refused */

typedef enum {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_F8_E5M2,
    ST_F8_E4M3,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_F64,
    ST_I64,
    ST_U64,
} SafetensorsDtype;

const char *safetensors_dtype_name(SafetensorsDtype dtype); /* "F32", ... */
size_t safetensors_dtype_size(SafetensorsDtype dtype);      /* bytes per element */

typedef struct SafetensorsEntry {
    const char *name;
    SafetensorsDtype dtype;
    int ndim; /* 0 for a scalar */
    const int64_t *shape;
    int64_t numel;
    uint64_t offset; /* bytes from the start of the data region */
    uint64_t nbytes; /* numel * dtype size */
} SafetensorsEntry;

typedef struct SafetensorsFile SafetensorsFile;

/* Maps `path` read-only and validates it. */
SafetensorsFile *safetensors_open(const char *path);
/* Validates `size` bytes in memory without copying them: `data` must outlive the
 * file. Messages call the file "<memory>". */
SafetensorsFile *safetensors_open_memory(const void *data, size_t size);
void safetensors_close(SafetensorsFile *f); /* NULL is fine */

int safetensors_count(const SafetensorsFile *f);
const SafetensorsEntry *safetensors_entry(const SafetensorsFile *f, int i); /* name order */
/* NULL when there is no such tensor (no error is recorded). */
const SafetensorsEntry *safetensors_find(const SafetensorsFile *f, const char *name);
/* The entry's raw little-endian bytes inside the file (not necessarily aligned). */
const void *safetensors_entry_data(const SafetensorsFile *f, const SafetensorsEntry *e);

/* Metadata ("__metadata__"): value for `key`, or NULL when absent (no error). */
const char *safetensors_metadata(const SafetensorsFile *f, const char *key);
int safetensors_metadata_count(const SafetensorsFile *f);
const char *safetensors_metadata_key(const SafetensorsFile *f, int i); /* key order */
const char *safetensors_metadata_value(const SafetensorsFile *f, int i);

/* A new contiguous float32 tensor from a floating-point entry: F32, F16, BF16,
 * F8_E5M2, F8_E4M3 (exactly) or F64 (rounded). BOOL and integer entries fail:
 * they are read with the two functions below. Fails with a message naming the
 * tensor when it is missing or has more than TENSOR_MAX_DIMS dims. */
Tensor *safetensors_load_tensor(const SafetensorsFile *f, const char *name);
/* Like safetensors_load_tensor but also converts BOOL and integer dtypes to float
 * (integers above 2^24 in magnitude are rounded). */
Tensor *safetensors_load_as_float(const SafetensorsFile *f, const char *name);
/* Exact values of a BOOL or integer tensor as a malloc'ed int64 array of
 * entry->numel elements (row-major; free() it). U64 values above INT64_MAX fail. */
hg_status safetensors_load_int64(const SafetensorsFile *f, const char *name, int64_t **out,
                                 int64_t *numel);

/* ---- writing ----
 * Tensors are written in name order in the header; in the data region they are
 * ordered by decreasing element size, then name, so every tensor is aligned to
 * its element size with no gaps (as huggingface's writer does, whose reader
 * requires gap-free data). */
typedef struct SafetensorsWriter SafetensorsWriter;

SafetensorsWriter *safetensors_writer_new(void);
void safetensors_writer_free(SafetensorsWriter *w); /* NULL is fine */
/* Adds an F32 tensor. The writer keeps a reference (a view, not a copy): the
 * values are those `t` holds when saving. Names must be unique, valid UTF-8,
 * without NUL, and not "__metadata__". */
hg_status safetensors_writer_add(SafetensorsWriter *w, const char *name, const Tensor *t);
/* Adds an I64 tensor; the values are copied. */
hg_status safetensors_writer_add_int64(SafetensorsWriter *w, const char *name, int ndim,
                                       const int64_t *shape, const int64_t *values);
/* Adds a tensor of any dtype from numel * dtype-size little-endian bytes (copied). */
hg_status safetensors_writer_add_raw(SafetensorsWriter *w, const char *name, SafetensorsDtype dtype,
                                     int ndim, const int64_t *shape, const void *bytes);
/* Sets a metadata entry, replacing any previous value for `key`. */
hg_status safetensors_writer_set_metadata(SafetensorsWriter *w, const char *key, const char *value);
/* Writes `path` atomically: to "path.tmp.PID", fsync, then rename over `path`.
 * On failure nothing is left behind and an existing `path` is untouched. */
hg_status safetensors_writer_save(const SafetensorsWriter *w, const char *path);

#endif
