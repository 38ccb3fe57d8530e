/* Strict recursive-descent JSON parser (RFC 8259), see json.h.
 *
 * All values and decoded strings of a document live in one arena owned by the
 * JsonDoc. While an array or object is being parsed its children wait on a
 * shared scratch stack; when it closes they are copied to the arena in one
 * block, so each container ends up as a plain C array. */
#include "nn/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/error.h"

/* ---- arena ---- */

typedef struct ArenaBlock {
    struct ArenaBlock *next;
    size_t used, size;
    _Alignas(max_align_t) unsigned char data[];
} ArenaBlock;

enum { ARENA_BLOCK_BYTES = 64 * 1024 };

struct JsonDoc {
    ArenaBlock *blocks; /* newest first */
    JsonValue root;
};

static void *arena_alloc(JsonDoc *doc, size_t bytes) {
    const size_t align = _Alignof(max_align_t);
    if (bytes > SIZE_MAX - align) return NULL;
    bytes = (bytes + align - 1) / align * align;
    ArenaBlock *b = doc->blocks;
    if (!b || b->size - b->used < bytes) {
        size_t size = bytes > ARENA_BLOCK_BYTES ? bytes : ARENA_BLOCK_BYTES;
        if (size > SIZE_MAX - sizeof(ArenaBlock)) return NULL;
        ArenaBlock *nb = malloc(sizeof(ArenaBlock) + size);
        if (!nb) return NULL;
        nb->used = 0;
        nb->size = size;
        /* A block made for one large request goes behind the current block so the
         * current block's free space stays usable. */
        if (b && size > ARENA_BLOCK_BYTES) {
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            doc->blocks = nb;
        }
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += bytes;
    return p;
}

void json_free(JsonDoc *doc) {
    if (!doc) return;
    ArenaBlock *b = doc->blocks;
    while (b) {
        ArenaBlock *next = b->next;
        free(b);
        b = next;
    }
    free(doc);
}

const JsonValue *json_root(const JsonDoc *doc) {
    return doc ? &doc->root : NULL;
}

/* ---- parser state ---- */

typedef struct Parser {
    const unsigned char *text;
    size_t length, pos;
    int depth;
    JsonDoc *doc;
    JsonMember *stack; /* children of the containers being parsed */
    size_t stack_count, stack_capacity;
    char *scratch; /* the string being decoded */
    size_t scratch_count, scratch_capacity;
    JsonError *err;
    hg_status status;
} Parser;

__attribute__((format(printf, 3, 4))) static bool fail_at(Parser *ps, size_t offset,
                                                          const char *fmt, ...) {
    if (ps->status != HG_OK) return false; /* keep the first error */
    ps->status = HG_ERR_FORMAT;
    ps->err->offset = offset;
    va_list args;
    va_start(args, fmt);
    vsnprintf(ps->err->message, sizeof ps->err->message, fmt, args);
    va_end(args);
    return false;
}

static bool fail_nomem(Parser *ps) {
    if (ps->status != HG_OK) return false;
    ps->status = HG_ERR_NOMEM;
    ps->err->offset = ps->pos;
    snprintf(ps->err->message, sizeof ps->err->message, "out of memory");
    return false;
}

/* Describes the byte at `pos` for messages: 'x', "byte 0xNN" or "end of input". */
static const char *describe_byte(const Parser *ps, size_t pos, char *buf, size_t size) {
    if (pos >= ps->length) return "end of input";
    unsigned char c = ps->text[pos];
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, size, "'%c'", c);
    else
        snprintf(buf, size, "byte 0x%02x", c);
    return buf;
}

static bool unexpected(Parser *ps, const char *expected) {
    char buf[16];
    return fail_at(ps, ps->pos, "expected %s, found %s", expected,
                   describe_byte(ps, ps->pos, buf, sizeof buf));
}

static void skip_whitespace(Parser *ps) {
    while (ps->pos < ps->length) {
        unsigned char c = ps->text[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        ps->pos++;
    }
}

static bool at(const Parser *ps, char c) {
    return ps->pos < ps->length && ps->text[ps->pos] == (unsigned char)c;
}

static bool push_member(Parser *ps, const JsonMember *m) {
    if (ps->stack_count == ps->stack_capacity) {
        size_t cap = ps->stack_capacity ? ps->stack_capacity * 2 : 64;
        if (cap > SIZE_MAX / sizeof(JsonMember)) return fail_nomem(ps);
        JsonMember *s = realloc(ps->stack, cap * sizeof(JsonMember));
        if (!s) return fail_nomem(ps);
        ps->stack = s;
        ps->stack_capacity = cap;
    }
    ps->stack[ps->stack_count++] = *m;
    return true;
}

static bool scratch_append(Parser *ps, const unsigned char *bytes, size_t n) {
    if (ps->scratch_capacity - ps->scratch_count < n + 1) {
        size_t cap = ps->scratch_capacity ? ps->scratch_capacity : 256;
        while (cap - ps->scratch_count < n + 1) {
            if (cap > SIZE_MAX / 2) return fail_nomem(ps);
            cap *= 2;
        }
        char *s = realloc(ps->scratch, cap);
        if (!s) return fail_nomem(ps);
        ps->scratch = s;
        ps->scratch_capacity = cap;
    }
    memcpy(ps->scratch + ps->scratch_count, bytes, n);
    ps->scratch_count += n;
    return true;
}

/* ---- strings ---- */

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits after "\u" at ps->pos (which points at 'u'). */
static bool read_hex4(Parser *ps, unsigned *out) {
    unsigned v = 0;
    for (int i = 1; i <= 4; i++) {
        size_t p = ps->pos + (size_t)i;
        int h = p < ps->length ? hex_value(ps->text[p]) : -1;
        if (h < 0) return fail_at(ps, p, "\\u escape needs 4 hex digits");
        v = v * 16 + (unsigned)h;
    }
    ps->pos += 5;
    *out = v;
    return true;
}

static bool append_utf8(Parser *ps, unsigned cp) {
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return scratch_append(ps, b, n);
}

/* ps->pos is at the backslash. JSON escapes: \" \\ \/ \b \f \n \r \t \uXXXX, where
 * a UTF-16 high surrogate must be followed by an escaped low surrogate. */
static bool parse_escape(Parser *ps) {
    size_t start = ps->pos;
    ps->pos++;
    if (ps->pos >= ps->length) return fail_at(ps, start, "unterminated escape");
    unsigned char c = ps->text[ps->pos];
    unsigned char out;
    switch (c) {
    case '"':
        out = '"';
        break;
    case '\\':
        out = '\\';
        break;
    case '/':
        out = '/';
        break;
    case 'b':
        out = '\b';
        break;
    case 'f':
        out = '\f';
        break;
    case 'n':
        out = '\n';
        break;
    case 'r':
        out = '\r';
        break;
    case 't':
        out = '\t';
        break;
    case 'u': {
        unsigned cp;
        if (!read_hex4(ps, &cp)) return false;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return fail_at(ps, start, "unpaired UTF-16 low surrogate \\u%04X", cp);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!(ps->pos + 1 < ps->length && ps->text[ps->pos] == '\\' &&
                  ps->text[ps->pos + 1] == 'u'))
                return fail_at(ps, start, "unpaired UTF-16 high surrogate \\u%04X", cp);
            size_t low_start = ps->pos;
            ps->pos++;
            unsigned low;
            if (!read_hex4(ps, &low)) return false;
            if (low < 0xDC00 || low > 0xDFFF)
                return fail_at(ps, low_start,
                               "UTF-16 high surrogate \\u%04X not followed by a "
                               "low surrogate",
                               cp);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        return append_utf8(ps, cp);
    }
    default: {
        char buf[16];
        return fail_at(ps, start, "invalid escape: backslash followed by %s",
                       describe_byte(ps, ps->pos, buf, sizeof buf));
    }
    }
    ps->pos++;
    return scratch_append(ps, &out, 1);
}

/* Length of the well-formed multi-byte UTF-8 sequence at `s` (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_sequence_length(const unsigned char *s, size_t avail) {
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

bool json_is_valid_utf8(const char *s, size_t length) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < length;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_sequence_length(u + i, length - i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

/* Decodes the string at ps->pos (the opening quote) into a NUL-terminated arena copy. */
static bool parse_string(Parser *ps, const char **chars, size_t *length) {
    size_t start = ps->pos;
    ps->pos++;
    ps->scratch_count = 0;
    for (;;) {
        if (ps->pos >= ps->length) return fail_at(ps, start, "unterminated string");
        unsigned char c = ps->text[ps->pos];
        if (c == '"') break;
        if (c == '\\') {
            if (!parse_escape(ps)) return false;
            continue;
        }
        if (c < 0x20)
            return fail_at(ps, ps->pos, "raw control character 0x%02x in string (use an escape)",
                           c);
        /* Copy a run of plain ASCII at once. */
        size_t run = ps->pos;
        if (c < 0x80) {
            while (run < ps->length && ps->text[run] >= 0x20 && ps->text[run] < 0x80 &&
                   ps->text[run] != '"' && ps->text[run] != '\\')
                run++;
        } else {
            size_t n = utf8_sequence_length(ps->text + ps->pos, ps->length - ps->pos);
            if (n == 0) return fail_at(ps, ps->pos, "invalid UTF-8 in string");
            run += n;
        }
        if (!scratch_append(ps, ps->text + ps->pos, run - ps->pos)) return false;
        ps->pos = run;
    }
    ps->pos++; /* closing quote */
    char *copy = arena_alloc(ps->doc, ps->scratch_count + 1);
    if (!copy) return fail_nomem(ps);
    if (ps->scratch_count) memcpy(copy, ps->scratch, ps->scratch_count);
    copy[ps->scratch_count] = '\0';
    *chars = copy;
    *length = ps->scratch_count;
    return true;
}

/* ---- numbers and literals ---- */

static bool is_digit(const Parser *ps, size_t pos) {
    return pos < ps->length && ps->text[pos] >= '0' && ps->text[pos] <= '9';
}

/* number = [ "-" ] ( "0" / 1-9 *DIGIT ) [ "." 1*DIGIT ] [ ("e"/"E") ["+"/"-"] 1*DIGIT ] */
static bool parse_number(Parser *ps, JsonValue *out) {
    size_t start = ps->pos, p = ps->pos;
    bool negative = at(ps, '-');
    if (negative) p++;
    if (!is_digit(ps, p)) return fail_at(ps, p, "expected a digit in number");
    if (ps->text[p] == '0') {
        p++;
        if (is_digit(ps, p)) return fail_at(ps, start, "number has a leading zero");
    } else {
        while (is_digit(ps, p)) p++;
    }
    size_t int_end = p;
    bool is_integer = true;
    if (p < ps->length && ps->text[p] == '.') {
        is_integer = false;
        p++;
        if (!is_digit(ps, p)) return fail_at(ps, p, "expected a digit after '.' in number");
        while (is_digit(ps, p)) p++;
    }
    if (p < ps->length && (ps->text[p] == 'e' || ps->text[p] == 'E')) {
        is_integer = false;
        p++;
        if (p < ps->length && (ps->text[p] == '+' || ps->text[p] == '-')) p++;
        if (!is_digit(ps, p)) return fail_at(ps, p, "expected a digit in number exponent");
        while (is_digit(ps, p)) p++;
    }
    ps->pos = p;
    out->offset = start;
    if (is_integer) {
        /* Accumulate toward the sign so that INT64_MIN is representable. */
        int64_t v = 0;
        for (size_t i = start + (negative ? 1 : 0); i < int_end; i++) {
            int d = ps->text[i] - '0';
            if (negative ? v < (INT64_MIN + d) / 10 : v > (INT64_MAX - d) / 10)
                return fail_at(ps, start, "integer out of the int64 range");
            v = v * 10 + (negative ? -d : d);
        }
        out->type = JSON_INT;
        out->integer = v;
        return true;
    }
    /* strtod needs a terminated copy; the grammar check above already passed. */
    size_t n = p - start;
    char small[64];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) return fail_nomem(ps);
    memcpy(buf, ps->text + start, n);
    buf[n] = '\0';
    errno = 0;
    double v = strtod(buf, NULL);
    bool overflow = errno == ERANGE && (v > 1.0 || v < -1.0);
    if (buf != small) free(buf);
    if (overflow) return fail_at(ps, start, "number out of the double range");
    out->type = JSON_NUMBER;
    out->number = v;
    return true;
}

static bool parse_literal(Parser *ps, const char *word, JsonValue *out) {
    size_t n = strlen(word);
    if (ps->length - ps->pos < n || memcmp(ps->text + ps->pos, word, n) != 0)
        return unexpected(ps, "a JSON value");
    out->offset = ps->pos;
    ps->pos += n;
    return true;
}

/* ---- containers ---- */

static bool parse_value(Parser *ps, JsonValue *out);

static bool enter(Parser *ps) {
    if (ps->depth >= JSON_MAX_DEPTH)
        return fail_at(ps, ps->pos, "nesting deeper than %d levels", JSON_MAX_DEPTH);
    ps->depth++;
    ps->pos++; /* the opening bracket */
    return true;
}

/* The children pushed since `base` move into one arena block: members for an
 * object, bare values for an array. Returns false only when out of memory. */
static bool pop_members(Parser *ps, size_t base, const JsonMember **members, size_t *count) {
    *count = ps->stack_count - base;
    ps->stack_count = base;
    *members = NULL;
    if (*count == 0) return true;
    JsonMember *m = arena_alloc(ps->doc, *count * sizeof(JsonMember));
    if (!m) return fail_nomem(ps);
    memcpy(m, ps->stack + base, *count * sizeof(JsonMember));
    *members = m;
    return true;
}

static bool pop_values(Parser *ps, size_t base, const JsonValue **items, size_t *count) {
    *count = ps->stack_count - base;
    ps->stack_count = base;
    *items = NULL;
    if (*count == 0) return true;
    JsonValue *v = arena_alloc(ps->doc, *count * sizeof(JsonValue));
    if (!v) return fail_nomem(ps);
    for (size_t i = 0; i < *count; i++) v[i] = ps->stack[base + i].value;
    *items = v;
    return true;
}

static bool parse_array(Parser *ps, JsonValue *out) {
    out->type = JSON_ARRAY;
    out->offset = ps->pos;
    if (!enter(ps)) return false;
    size_t base = ps->stack_count;
    skip_whitespace(ps);
    if (at(ps, ']')) {
        ps->pos++;
    } else {
        for (;;) {
            JsonMember m = {0};
            if (!parse_value(ps, &m.value) || !push_member(ps, &m)) return false;
            skip_whitespace(ps);
            if (at(ps, ']')) {
                ps->pos++;
                break;
            }
            if (!at(ps, ',')) return unexpected(ps, "',' or ']' in array");
            ps->pos++;
            skip_whitespace(ps);
            if (at(ps, ']')) return fail_at(ps, ps->pos, "trailing comma in array");
        }
    }
    if (!pop_values(ps, base, &out->array.items, &out->array.count)) return false;
    ps->depth--;
    return true;
}

static bool parse_object(Parser *ps, JsonValue *out) {
    out->type = JSON_OBJECT;
    out->offset = ps->pos;
    if (!enter(ps)) return false;
    size_t base = ps->stack_count;
    skip_whitespace(ps);
    if (at(ps, '}')) {
        ps->pos++;
    } else {
        for (;;) {
            JsonMember m = {0};
            if (!at(ps, '"')) return unexpected(ps, "a string key in object");
            if (!parse_string(ps, &m.key, &m.key_length)) return false;
            skip_whitespace(ps);
            if (!at(ps, ':')) return unexpected(ps, "':' after object key");
            ps->pos++;
            if (!parse_value(ps, &m.value) || !push_member(ps, &m)) return false;
            skip_whitespace(ps);
            if (at(ps, '}')) {
                ps->pos++;
                break;
            }
            if (!at(ps, ',')) return unexpected(ps, "',' or '}' in object");
            ps->pos++;
            skip_whitespace(ps);
            if (at(ps, '}')) return fail_at(ps, ps->pos, "trailing comma in object");
        }
    }
    if (!pop_members(ps, base, &out->object.members, &out->object.count)) return false;
    ps->depth--;
    return true;
}

static bool parse_value(Parser *ps, JsonValue *out) {
    skip_whitespace(ps);
    if (ps->pos >= ps->length) return unexpected(ps, "a JSON value");
    out->offset = ps->pos;
    switch (ps->text[ps->pos]) {
    case '{':
        return parse_object(ps, out);
    case '[':
        return parse_array(ps, out);
    case '"':
        out->type = JSON_STRING;
        return parse_string(ps, &out->string.chars, &out->string.length);
    case 't':
        out->type = JSON_BOOL;
        out->boolean = true;
        return parse_literal(ps, "true", out);
    case 'f':
        out->type = JSON_BOOL;
        out->boolean = false;
        return parse_literal(ps, "false", out);
    case 'n':
        out->type = JSON_NULL;
        return parse_literal(ps, "null", out);
    default:
        if (at(ps, '-') || is_digit(ps, ps->pos)) return parse_number(ps, out);
        return unexpected(ps, "a JSON value");
    }
}

JsonDoc *json_parse(const char *text, size_t length, JsonError *err) {
    JsonError local;
    if (!err) err = &local;
    err->offset = 0;
    err->message[0] = '\0';
    Parser ps = {.text = (const unsigned char *)text, .length = length, .err = err};
    if (!text && length) {
        fail_at(&ps, 0, "no input");
        hg_fail(HG_ERR_ARG, "json: no input");
        return NULL;
    }
    ps.doc = calloc(1, sizeof(JsonDoc));
    if (!ps.doc) {
        fail_nomem(&ps);
        hg_fail(HG_ERR_NOMEM, "json: out of memory");
        return NULL;
    }
    if (parse_value(&ps, &ps.doc->root)) {
        skip_whitespace(&ps);
        if (ps.pos < ps.length) unexpected(&ps, "end of input after the JSON value");
    }
    free(ps.stack);
    free(ps.scratch);
    if (ps.status != HG_OK) {
        json_free(ps.doc);
        hg_fail(ps.status, "json: %s at byte %zu", err->message, err->offset);
        return NULL;
    }
    return ps.doc;
}

const JsonValue *json_object_get(const JsonValue *object, const char *key) {
    if (!object || object->type != JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < object->object.count; i++) {
        const JsonMember *m = &object->object.members[i];
        if (m->key_length == n && memcmp(m->key, key, n) == 0) return &m->value;
    }
    return NULL;
}

const char *json_type_name(JsonType type) {
    switch (type) {
    case JSON_NULL:
        return "null";
    case JSON_BOOL:
        return "boolean";
    case JSON_INT:
        return "integer";
    case JSON_NUMBER:
        return "number";
    case JSON_STRING:
        return "string";
    case JSON_ARRAY:
        return "array";
    case JSON_OBJECT:
        return "object";
    }
    return "unknown";
}
