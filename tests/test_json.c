/* Tests of the strict JSON parser (nn/json.h): values, escapes, limits and the
 * byte offset and wording of every kind of error. */
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/json.h"

static JsonDoc *parse_ok(const char *text) {
    JsonError err;
    JsonDoc *doc = json_parse(text, strlen(text), &err);
    if (!doc) fail_msg("parse of %s failed: %s at %zu", text, err.message, err.offset);
    return doc;
}

static void test_scalars(void **state) {
    (void)state;
    JsonDoc *d = parse_ok(" true ");
    assert_int_equal(json_root(d)->type, JSON_BOOL);
    assert_true(json_root(d)->boolean);
    assert_int_equal(json_root(d)->offset, 1);
    json_free(d);
    d = parse_ok("false");
    assert_false(json_root(d)->boolean);
    json_free(d);
    d = parse_ok("\n\r\tnull");
    assert_int_equal(json_root(d)->type, JSON_NULL);
    json_free(d);
}

static void test_integers(void **state) {
    (void)state;
    const struct {
        const char *text;
        int64_t value;
    } cases[] = {
        {"0", 0},
        {"-0", 0},
        {"42", 42},
        {"-17", -17},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        JsonDoc *d = parse_ok(cases[i].text);
        assert_int_equal(json_root(d)->type, JSON_INT);
        assert_true(json_root(d)->integer == cases[i].value);
        json_free(d);
    }
}

static void test_numbers(void **state) {
    (void)state;
    const struct {
        const char *text;
        double value;
    } cases[] = {
        {"1.5", 1.5},    {"-2.5e3", -2500.0}, {"1E-2", 0.01},  {"0.1", 0.1},
        {"2e+2", 200.0}, {"-0.0", -0.0},      {"1e-400", 0.0}, /* underflow to zero is fine */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        JsonDoc *d = parse_ok(cases[i].text);
        assert_int_equal(json_root(d)->type, JSON_NUMBER);
        assert_true(json_root(d)->number == cases[i].value);
        json_free(d);
    }
    /* A number longer than the parser's stack buffer. */
    char longnum[300] = "0.";
    for (int i = 0; i < 200; i++) strcat(longnum, "0");
    strcat(longnum, "5e200");
    JsonDoc *d = parse_ok(longnum);
    assert_true(fabs(json_root(d)->number - 5e-1) < 1e-15);
    json_free(d);
}

static void assert_parses_to_string(const char *text, const char *expected,
                                    size_t expected_length) {
    JsonDoc *d = parse_ok(text);
    const JsonValue *v = json_root(d);
    assert_int_equal(v->type, JSON_STRING);
    assert_int_equal(v->string.length, expected_length);
    assert_memory_equal(v->string.chars, expected, expected_length);
    assert_int_equal(v->string.chars[expected_length], '\0');
    json_free(d);
}

static void test_strings(void **state) {
    (void)state;
    assert_parses_to_string("\"\"", "", 0);
    assert_parses_to_string("\"plain\"", "plain", 5);
    assert_parses_to_string("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", "\" \\ / \b \f \n \r \t", 15);
    assert_parses_to_string("\"\\u0041\"", "A", 1);
    assert_parses_to_string("\"\\u00e9\"", "\xc3\xa9", 2);     /* U+00E9 */
    assert_parses_to_string("\"\\u20AC\"", "\xe2\x82\xac", 3); /* U+20AC euro sign */
    assert_parses_to_string("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80",
                            4); /* U+1F600 via surrogates */
    assert_parses_to_string("\"a\\u0000b\"", "a\0b", 3);
    assert_parses_to_string("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "caf\xc3\xa9 \xf0\x9f\x98\x80", 10);
    assert_parses_to_string("\"\xf4\x8f\xbf\xbf\"", "\xf4\x8f\xbf\xbf",
                            4); /* U+10FFFF, the last one */
}

static void test_containers(void **state) {
    (void)state;
    const char *text = "{\"a\": [1, \"x\", {\"b\": null}, []], \"c\": {}, \"a\": 2}";
    JsonDoc *d = parse_ok(text);
    const JsonValue *root = json_root(d);
    assert_int_equal(root->type, JSON_OBJECT);
    assert_int_equal(root->object.count, 3);
    assert_string_equal(root->object.members[1].key, "c");
    const JsonValue *a = json_object_get(root, "a"); /* the first of the duplicates */
    assert_non_null(a);
    assert_int_equal(a->type, JSON_ARRAY);
    assert_int_equal(a->offset, 6);
    assert_int_equal(a->array.count, 4);
    assert_int_equal(a->array.items[0].integer, 1);
    assert_int_equal(a->array.items[1].offset, 10);
    assert_string_equal(a->array.items[1].string.chars, "x");
    assert_int_equal(a->array.items[2].type, JSON_OBJECT);
    assert_non_null(json_object_get(&a->array.items[2], "b"));
    assert_int_equal(a->array.items[3].array.count, 0);
    assert_int_equal(root->object.members[2].value.integer, 2);
    assert_null(json_object_get(root, "missing"));
    assert_null(json_object_get(a, "a")); /* not an object */
    json_free(d);
}

static void test_large_document(void **state) {
    (void)state;
    /* 20000-element array plus a 100 KB string: grows the scratch stack and needs
     * an arena block larger than the default. */
    size_t cap = 400000;
    char *text = malloc(cap);
    size_t n = 0;
    n += (size_t)snprintf(text + n, cap - n, "[");
    for (int i = 0; i < 20000; i++) n += (size_t)snprintf(text + n, cap - n, "%d,", i * 3);
    text[n++] = '"';
    for (int i = 0; i < 100000; i++) text[n++] = (char)('a' + i % 26);
    text[n++] = '"';
    text[n++] = ']';
    JsonError err;
    JsonDoc *d = json_parse(text, n, &err);
    assert_non_null(d);
    const JsonValue *root = json_root(d);
    assert_int_equal(root->array.count, 20001);
    for (int i = 0; i < 20000; i++) assert_int_equal(root->array.items[i].integer, i * 3);
    const JsonValue *s = &root->array.items[20000];
    assert_int_equal(s->string.length, 100000);
    assert_int_equal(s->string.chars[99999], 'a' + 99999 % 26);
    json_free(d);
    free(text);
}

static void test_depth_limit(void **state) {
    (void)state;
    char text[2 * (JSON_MAX_DEPTH + 1) + 1];
    for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        JsonError err;
        JsonDoc *d = json_parse(text, 2 * (size_t)depth, &err);
        if (depth == JSON_MAX_DEPTH) {
            assert_non_null(d);
        } else {
            assert_null(d);
            assert_non_null(strstr(err.message, "nesting deeper"));
            assert_int_equal(err.offset, JSON_MAX_DEPTH);
        }
        json_free(d);
    }
}

static void test_errors(void **state) {
    (void)state;
    const struct {
        const char *text;
        size_t length; /* 0: strlen */
        size_t offset;
        const char *message;
    } cases[] = {
        {"", 0, 0, "expected a JSON value, found end of input"},
        {"   ", 0, 3, "expected a JSON value"},
        {"{", 0, 1, "expected a string key"},
        {"[", 0, 1, "expected a JSON value"},
        {"[1,]", 0, 3, "trailing comma in array"},
        {"{\"a\":1,}", 0, 7, "trailing comma in object"},
        {"{\"a\" 1}", 0, 5, "expected ':' after object key, found '1'"},
        {"{1:2}", 0, 1, "expected a string key"},
        {"[1 2]", 0, 3, "expected ',' or ']'"},
        {"{\"a\":1 \"b\":2}", 0, 7, "expected ',' or '}'"},
        {"{\"a\":}", 0, 5, "expected a JSON value, found '}'"},
        {"1 2", 0, 2, "end of input after the JSON value"},
        {"01", 0, 0, "leading zero"},
        {"-", 0, 1, "expected a digit"},
        {"-a", 0, 1, "expected a digit"},
        {"1.", 0, 2, "digit after '.'"},
        {"1.e3", 0, 2, "digit after '.'"},
        {"1e", 0, 2, "exponent"},
        {"1e+", 0, 3, "exponent"},
        {".5", 0, 0, "expected a JSON value, found '.'"},
        {"+1", 0, 0, "expected a JSON value, found '+'"},
        {"9223372036854775808", 0, 0, "int64 range"},
        {"-9223372036854775809", 0, 0, "int64 range"},
        {"1e999", 0, 0, "double range"},
        {"tru", 0, 0, "expected a JSON value"},
        {"nulL", 0, 0, "expected a JSON value"},
        {"NaN", 0, 0, "expected a JSON value, found 'N'"},
        {"\"abc", 0, 0, "unterminated string"},
        {"\"a\x01\"", 0, 2, "control character 0x01"},
        {"\"a\tb\"", 0, 2, "control character 0x09"},
        {"\"\\x\"", 0, 1, "invalid escape: backslash followed by 'x'"},
        {"\"\\\x0e\"", 0, 1, "invalid escape: backslash followed by byte 0x0e"},
        {"\"\\", 0, 1, "unterminated escape"},
        {"\"\\u12\"", 0, 5, "4 hex digits"},
        {"\"\\u12G4\"", 0, 5, "4 hex digits"},
        {"\"\\ud800\"", 0, 1, "unpaired UTF-16 high surrogate \\uD800"},
        {"\"\\udc00\"", 0, 1, "unpaired UTF-16 low surrogate \\uDC00"},
        {"\"\\ud800\\u0041\"", 0, 7, "not followed by a low surrogate"},
        {"\"\xc3\x28\"", 0, 1, "invalid UTF-8"},         /* bad continuation */
        {"\"\xc0\xaf\"", 0, 1, "invalid UTF-8"},         /* overlong '/' */
        {"\"\xe0\x80\xaf\"", 0, 1, "invalid UTF-8"},     /* overlong, 3 bytes */
        {"\"\xed\xa0\x80\"", 0, 1, "invalid UTF-8"},     /* encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", 0, 1, "invalid UTF-8"}, /* above U+10FFFF */
        {"\"\xe2\x82\"", 0, 1, "invalid UTF-8"},         /* truncated */
        {"\"\x80\"", 0, 1, "invalid UTF-8"},             /* lone continuation */
        {"\"\xff\"", 0, 1, "invalid UTF-8"},
        {"\xef\xbb\xbf{}", 0, 0, "found byte 0xef"}, /* byte order mark */
        {"[1,\0]", 5, 3, "found byte 0x00"},
        {"{\"a\":1}\0", 8, 7, "end of input after the JSON value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].length ? cases[i].length : strlen(cases[i].text);
        JsonError err;
        hg_clear_error();
        JsonDoc *d = json_parse(cases[i].text, len, &err);
        if (d) fail_msg("case %zu (%s) parsed but should fail", i, cases[i].text);
        if (!strstr(err.message, cases[i].message))
            fail_msg("case %zu: message '%s' lacks '%s'", i, err.message, cases[i].message);
        if (err.offset != cases[i].offset)
            fail_msg("case %zu (%s): offset %zu, expected %zu", i, err.message, err.offset,
                     cases[i].offset);
        assert_int_equal(hg_last_status(), HG_ERR_FORMAT);
        char at[64];
        snprintf(at, sizeof at, "at byte %zu", cases[i].offset);
        assert_non_null(strstr(hg_last_error(), "json: "));
        assert_non_null(strstr(hg_last_error(), at));
    }
    /* The error struct is optional. */
    assert_null(json_parse("[", 1, NULL));
    assert_non_null(strstr(hg_last_error(), "at byte 1"));
}

static void test_valid_utf8(void **state) {
    (void)state;
    assert_true(json_is_valid_utf8("", 0));
    assert_true(json_is_valid_utf8("abc", 3));
    assert_true(json_is_valid_utf8("a\0b", 3));
    assert_true(json_is_valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(json_is_valid_utf8("\xc3", 1));
    assert_false(json_is_valid_utf8("\xc1\xbf", 2));
    assert_false(json_is_valid_utf8("\xed\xbf\xbf", 3));
    assert_false(json_is_valid_utf8("\xf8\x88\x80\x80\x80", 5));
}

static void test_type_names(void **state) {
    (void)state;
    assert_string_equal(json_type_name(JSON_OBJECT), "object");
    assert_string_equal(json_type_name(JSON_INT), "integer");
    assert_string_equal(json_type_name(JSON_NUMBER), "number");
    assert_null(json_root(NULL));
    json_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),     cmocka_unit_test(test_integers),
        cmocka_unit_test(test_numbers),     cmocka_unit_test(test_strings),
        cmocka_unit_test(test_containers),  cmocka_unit_test(test_large_document),
        cmocka_unit_test(test_depth_limit), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_valid_utf8),  cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
