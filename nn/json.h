/* A small, strict JSON parser (RFC 8259), enough for safetensors headers.
 *
 * json_parse() reads a whole document into a tree owned by a JsonDoc; every
 * value and string lives until json_free(). Strictness: UTF-8 is validated,
 * escapes include \uXXXX with surrogate pairs (lone surrogates are errors), raw
 * control characters in strings are errors, numbers follow the JSON grammar,
 * nesting deeper than JSON_MAX_DEPTH is an error, and nothing but whitespace may
 * follow the top-level value. Numbers without fraction or exponent become
 * JSON_INT and must fit in int64 (else an error); others become JSON_NUMBER.
 * Objects keep their members in input order, duplicates included. */
#ifndef HG_JSON_H
#define HG_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

typedef enum {
    JSON_NULL,
    JSON_BOOL,
    JSON_INT,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} JsonType;

typedef struct JsonValue JsonValue;
typedef struct JsonMember JsonMember;

struct JsonValue {
    JsonType type;
    size_t offset; /* byte offset of the value's first character in the input */
    union {
        bool boolean;
        int64_t integer;
        double number;
        struct {
            const char *chars; /* decoded UTF-8, NUL-terminated; may hold \u0000 */
            size_t length;     /* bytes, without the terminator */
        } string;
        struct {
            const JsonValue *items;
            size_t count;
        } array;
        struct {
            const JsonMember *members;
            size_t count;
        } object;
    };
};

struct JsonMember {
    const char *key; /* decoded, NUL-terminated */
    size_t key_length;
    JsonValue value;
};

typedef struct JsonDoc JsonDoc;

/* Where and why parsing failed. */
typedef struct JsonError {
    size_t offset;    /* byte offset of the offending character */
    char message[96]; /* e.g. "expected ':' after object key" */
} JsonError;

/* Parses `length` bytes (no terminator needed). Returns NULL on failure, filling
 * `err` when non-NULL and recording "json: <message> at byte N" (HG_ERR_FORMAT,
 * or HG_ERR_NOMEM) in hg_last_error(). */
JsonDoc *json_parse(const char *text, size_t length, JsonError *err);
const JsonValue *json_root(const JsonDoc *doc);
void json_free(JsonDoc *doc); /* NULL is fine */

/* First member of `object` named `key` (NUL-terminated, compared bytewise), or
 * NULL when absent or `object` is not an object. */
const JsonValue *json_object_get(const JsonValue *object, const char *key);

/* True when `length` bytes are well-formed UTF-8 (RFC 3629; NUL bytes allowed). */
bool json_is_valid_utf8(const char *s, size_t length);

/* "null", "boolean", "integer", "number", "string", "array", "object". */
const char *json_type_name(JsonType type);

#endif
