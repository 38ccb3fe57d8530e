/* Helpers shared by the CMocka suites. Include after <cmocka.h>'s prerequisites. */
#ifndef HG_TESTUTIL_H
#define HG_TESTUTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "nn/safetensors.h"
#include "tensor/cpu.h"
#include "tensor/tensor.h"

/* Fails the test (with the library's last error) when `ptr` is NULL. */
#define assert_ok_ptr(ptr)                                                                         \
    do {                                                                                           \
        if ((ptr) == NULL) fail_msg("%s is NULL: %s", #ptr, hg_last_error());                      \
    } while (0)
#define assert_ok(status)                                                                          \
    do {                                                                                           \
        hg_status s_ = (status);                                                                   \
        if (s_ != HG_OK) fail_msg("%s failed: %s", #status, hg_last_error());                      \
    } while (0)

/* max |a - b| / max(max |b|, tiny) over all elements; shapes must match. */
double test_max_rel_diff(const Tensor *a, const Tensor *b);
/* Asserts shapes equal and every |a - b| <= atol + rtol * |b|. */
void test_assert_close(const Tensor *a, const Tensor *b, double rtol, double atol);
/* Asserts a tensor matches a row-major float array. */
void test_assert_values(const Tensor *a, const float *expected, int64_t n, double atol);

/* The last library call failed with `code` and a message naming `op`; clears the error. */
void test_assert_failed(hg_status code, const char *op);
/* Row-major multi-index of position `linear` in an ndim-D `shape`. */
void test_unravel(int ndim, const int64_t *shape, int64_t linear, int64_t *index);

/* Directory of the read-only ../shared material, or NULL when absent
 * (tests that need it call skip()). */
const char *test_shared_dir(void);
/* Path of a committed fixture under tests/fixtures (static buffer). */
const char *test_fixture(const char *name);

/* tests/fixtures/<name> opened; fails the test when it cannot be. */
SafetensorsFile *test_open_fixture(const char *name);
/* Tensor "<case_name>.<what>" ("<what>" when case_name is NULL) of a fixture,
 * or NULL when the file has no such tensor; test_fixture_tensor fails the test then. */
Tensor *test_fixture_tensor_opt(const SafetensorsFile *f, const char *case_name, const char *what);
Tensor *test_fixture_tensor(const SafetensorsFile *f, const char *case_name, const char *what);
/* Fails "<name> <what>: ..." unless `got` is non-NULL, of want's shape and
 * within max relative difference `tol` of it (test_max_rel_diff). */
void test_expect_close(const char *what, const char *name, const Tensor *got, const Tensor *want,
                       double tol);

/* One scratch directory per test process: test_temp_dir_create("hgad_cli")
 * makes a fresh /tmp/hgad_cli_XXXXXX (mkdtemp) and returns 0, or -1 when it
 * could not; test_temp_dir() is its path and test_temp_dir_remove() deletes
 * it with everything in it (0 on success). */
int test_temp_dir_create(const char *tag);
const char *test_temp_dir(void);
int test_temp_dir_remove(void);
/* "<temp dir>/<fmt...>", in one of 16 rotating static buffers (so a few may be
 * used in one expression); test_temp_exists tells whether that path exists. */
const char *test_temp_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool test_temp_exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Directory of the built hgad command: $HG_BUILD_DIR (set by tests/run.sh), else "build". */
const char *test_build_dir(void);
/* Runs "OMP_NUM_THREADS=1 <build>/hgad ARGS 2>&1" with ARGS from fmt, puts
 * stdout+stderr (cut to size - 1 bytes) into out, and returns the exit code
 * (-1 when the command could not be run or did not exit normally). */
int test_run_hgad(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Asserts `out` of a failed test_run_hgad is a command error: exit code rc is
 * non-zero and out is exactly one line, starting "hgad " and containing `needle`. */
void test_assert_cli_error(const char *out, int rc, const char *needle);
/* test_temp_dir_create(tag), then "hgad synth" of a small two-category
 * (weave, disc) 64 px data set into <temp dir>/data; 0, or -1 after printing
 * why to stderr. */
int test_temp_dir_with_synthetic_data(const char *tag);

/* Runs the group once per kernel family this CPU runs, from the widest down
 * to `lowest` (tensor/cpu.h: AVX-512, AVX2, portable), printing
 * "# kernels: NAME" before each, so that every dispatched path is checked on
 * one machine; returns the failures summed. */
#define test_run_at_cpu_levels(tests, lowest)                                                      \
    test_run_at_cpu_levels_(#tests, tests, sizeof(tests) / sizeof((tests)[0]), lowest)
int test_run_at_cpu_levels_(const char *name, const struct CMUnitTest *tests, size_t count,
                            HgCpuLevel lowest);

#endif
