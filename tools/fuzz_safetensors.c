/* libFuzzer harness for the safetensors reader and the JSON parser it uses.
 *
 * Each input is parsed twice: as a bare JSON document, and as a safetensors file
 * from memory. When the file opens, every tensor and metadata entry is read
 * back and the invariants the reader promises are checked; a broken invariant
 * traps so that libFuzzer records the input. Build and run with `make fuzz`
 * (seeds: tools/fuzz_corpus/safetensors/). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/json.h"
#include "nn/safetensors.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

static void check_entries(const SafetensorsFile *f, const uint8_t *data, size_t size) {
    int count = safetensors_count(f);
    for (int i = 0; i < count; i++) {
        const SafetensorsEntry *e = safetensors_entry(f, i);
        CHECK(e && e->name);
        CHECK(safetensors_find(f, e->name) == e); /* names unique and sorted */
        if (i > 0) CHECK(strcmp(safetensors_entry(f, i - 1)->name, e->name) < 0);
        CHECK(e->ndim >= 0 && e->ndim <= SAFETENSORS_MAX_DIMS);
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            CHECK(e->shape[d] >= 0);
            numel *= e->shape[d]; /* cannot overflow: the reader bounds the product */
        }
        CHECK(numel == e->numel);
        CHECK(e->nbytes == (uint64_t)e->numel * safetensors_dtype_size(e->dtype));
        const uint8_t *p = safetensors_entry_data(f, e);
        CHECK(p >= data + 8 && e->nbytes <= (size_t)(data + size - p)); /* inside the input */

        if (e->dtype == ST_F32 || e->dtype == ST_F16 || e->dtype == ST_BF16 || e->dtype == ST_F64 ||
            e->dtype == ST_F8_E4M3 || e->dtype == ST_F8_E5M2) {
            Tensor *t = safetensors_load_tensor(f, e->name);
            if (t) CHECK(tensor_numel(t) == e->numel);
            tensor_free(t);
        } else {
            CHECK(safetensors_load_tensor(f, e->name) == NULL); /* integers need a request */
            int64_t *values = NULL, n = -1;
            if (safetensors_load_int64(f, e->name, &values, &n) == HG_OK) CHECK(n == e->numel);
            free(values);
            Tensor *t = safetensors_load_as_float(f, e->name);
            tensor_free(t);
        }
    }
}

static void check_metadata(const SafetensorsFile *f) {
    int n = safetensors_metadata_count(f);
    for (int i = 0; i < n; i++) {
        const char *key = safetensors_metadata_key(f, i);
        const char *value = safetensors_metadata_value(f, i);
        CHECK(key && value);
        CHECK(safetensors_metadata(f, key) == value);
        if (i > 0) CHECK(strcmp(safetensors_metadata_key(f, i - 1), key) < 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    JsonError err;
    JsonDoc *doc = json_parse((const char *)data, size, &err);
    if (!doc) CHECK(err.offset <= size && err.message[0] != '\0');
    json_free(doc);

    SafetensorsFile *f = safetensors_open_memory(data, size);
    if (!f) {
        CHECK(strncmp(hg_last_error(), "safetensors: <memory>: ", 23) == 0);
        return 0;
    }
    check_entries(f, data, size);
    check_metadata(f);
    safetensors_close(f);
    return 0;
}
