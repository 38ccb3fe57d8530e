/* Helpers shared by the CMocka suites. Include after <cmocka.h>'s prerequisites. */
#ifndef HG_TESTUTIL_H
#define HG_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tensor/tensor.h"

/* Fails the test (with the library's last error) when `ptr` is NULL. */
#define assert_ok_ptr(ptr)                                                                          \
    do {                                                                                           \
        if ((ptr) == NULL) fail_msg("%s is NULL: %s", #ptr, hg_last_error());                     \
    } while (0)
#define assert_ok(status)                                                                          \
    do {                                                                                           \
        hg_status s_ = (status);                                                                   \
        if (s_ != HG_OK) fail_msg("%s failed: %s", #status, hg_last_error());                     \
    } while (0)

/* max |a - b| / max(max |b|, tiny) over all elements; shapes must match. */
double test_max_rel_diff(const Tensor *a, const Tensor *b);
/* Asserts shapes equal and every |a - b| <= atol + rtol * |b|. */
void test_assert_close(const Tensor *a, const Tensor *b, double rtol, double atol);
/* Asserts a tensor matches a row-major float array. */
void test_assert_values(const Tensor *a, const float *expected, int64_t n, double atol);

/* Directory of the read-only ../shared material, or NULL when absent
 * (tests that need it call skip()). */
const char *test_shared_dir(void);
/* Path of a committed fixture under tests/fixtures (static buffer). */
const char *test_fixture(const char *name);

#endif
