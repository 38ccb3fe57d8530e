#include "tests/testutil.h"

#include "tensor/cpu.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

double test_max_rel_diff(const Tensor *a, const Tensor *b) {
    int64_t n = tensor_numel(a);
    float *va = malloc(sizeof(float) * (size_t)(n ? n : 1));
    float *vb = malloc(sizeof(float) * (size_t)(n ? n : 1));
    tensor_to_array(a, va);
    tensor_to_array(b, vb);
    double max_diff = 0, max_ref = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)va[i] - vb[i]);
        if (d > max_diff || isnan(d)) max_diff = isnan(d) ? INFINITY : d;
        if (fabs(vb[i]) > max_ref) max_ref = fabs(vb[i]);
    }
    free(va);
    free(vb);
    return max_diff / max_ref;
}

void test_assert_close(const Tensor *a, const Tensor *b, double rtol, double atol) {
    char sa[128], sb[128];
    if (!tensor_same_shape(a, b))
        fail_msg("shapes differ: %s vs %s", tensor_shape_str(a, sa, sizeof sa),
                 tensor_shape_str(b, sb, sizeof sb));
    int64_t n = tensor_numel(a);
    float *va = malloc(sizeof(float) * (size_t)(n ? n : 1));
    float *vb = malloc(sizeof(float) * (size_t)(n ? n : 1));
    tensor_to_array(a, va);
    tensor_to_array(b, vb);
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)va[i] - vb[i]);
        if (!(d <= atol + rtol * fabs(vb[i]))) {
            float x = va[i], y = vb[i];
            free(va);
            free(vb);
            fail_msg("element %lld: %.9g vs expected %.9g", (long long)i, x, y);
        }
    }
    free(va);
    free(vb);
}

void test_assert_values(const Tensor *a, const float *expected, int64_t n, double atol) {
    assert_int_equal(tensor_numel(a), n);
    Tensor *e = tensor_from_data(1, &n, expected);
    Tensor *flat = tensor_reshape(a, 1, &n);
    test_assert_close(flat, e, 0, atol);
    tensor_free(e);
    tensor_free(flat);
}

void test_assert_failed(hg_status code, const char *op) {
    if (hg_last_status() != code)
        fail_msg("expected status %s, got %s (%s)", hg_status_name(code),
                 hg_status_name(hg_last_status()), hg_last_error());
    if (!strstr(hg_last_error(), op))
        fail_msg("message \"%s\" does not name \"%s\"", hg_last_error(), op);
    hg_clear_error();
}

void test_unravel(int ndim, const int64_t *shape, int64_t linear, int64_t *index) {
    for (int d = ndim - 1; d >= 0; d--) {
        index[d] = linear % shape[d];
        linear /= shape[d];
    }
}

const char *test_shared_dir(void) {
    static char path[4096];
    const char *env = getenv("HG_SHARED_DIR");
    snprintf(path, sizeof path, "%s", env && *env ? env : "../shared");
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return path;
}

const char *test_fixture(const char *name) {
    static char path[4096];
    const char *root = getenv("HG_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", root && *root ? root : ".", name);
    return path;
}

SafetensorsFile *test_open_fixture(const char *name) {
    SafetensorsFile *f = safetensors_open(test_fixture(name));
    if (!f) fail_msg("cannot open fixture %s: %s", name, hg_last_error());
    return f;
}

Tensor *test_fixture_tensor_opt(const SafetensorsFile *f, const char *case_name, const char *what) {
    char key[128];
    if (case_name)
        snprintf(key, sizeof key, "%s.%s", case_name, what);
    else
        snprintf(key, sizeof key, "%s", what);
    if (!safetensors_find(f, key)) return NULL;
    Tensor *t = safetensors_load_tensor(f, key);
    assert_ok_ptr(t);
    return t;
}

Tensor *test_fixture_tensor(const SafetensorsFile *f, const char *case_name, const char *what) {
    Tensor *t = test_fixture_tensor_opt(f, case_name, what);
    if (!t) fail_msg("fixture tensor %s.%s is missing", case_name ? case_name : "", what);
    return t;
}

void test_expect_close(const char *what, const char *name, const Tensor *got, const Tensor *want,
                       double tol) {
    char a[96], b[96];
    if (!got) fail_msg("%s %s: NULL (%s)", name, what, hg_last_error());
    if (!tensor_same_shape(got, want))
        fail_msg("%s %s: shape %s, expected %s", name, what, tensor_shape_str(got, a, sizeof a),
                 tensor_shape_str(want, b, sizeof b));
    double rel = test_max_rel_diff(got, want);
    if (!(rel <= tol)) fail_msg("%s %s: max relative difference %.3g", name, what, rel);
}

static char temp_dir[256];

int test_temp_dir_create(const char *tag) {
    snprintf(temp_dir, sizeof temp_dir, "/tmp/%s_XXXXXX", tag);
    return mkdtemp(temp_dir) ? 0 : -1;
}

const char *test_temp_dir(void) {
    return temp_dir;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(path);
}

int test_temp_dir_remove(void) {
    return nftw(temp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *temp_path_v(const char *fmt, va_list ap) {
    static char path[16][600];
    static int slot;
    slot = (slot + 1) % 16;
    int used = snprintf(path[slot], sizeof path[slot], "%s/", temp_dir);
    vsnprintf(path[slot] + used, sizeof path[slot] - (size_t)used, fmt, ap);
    return path[slot];
}

const char *test_temp_path(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const char *path = temp_path_v(fmt, ap);
    va_end(ap);
    return path;
}

bool test_temp_exists(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const char *path = temp_path_v(fmt, ap);
    va_end(ap);
    return access(path, F_OK) == 0;
}

const char *test_build_dir(void) {
    const char *build = getenv("HG_BUILD_DIR");
    return build && *build ? build : "build";
}

int test_run_hgad(char *out, size_t size, const char *fmt, ...) {
    char args[4096], cmd[4600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s/hgad %s 2>&1", test_build_dir(), args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, size - 1, p) : 0;
    out[n] = '\0';
    int status = p ? pclose(p) : -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int test_temp_dir_with_synthetic_data(const char *tag) {
    if (test_temp_dir_create(tag) != 0) {
        fprintf(stderr, "cannot create a scratch directory /tmp/%s_*\n", tag);
        return -1;
    }
    char out[16384];
    if (test_run_hgad(out, sizeof out,
                      "synth --output %s/data --categories weave,disc --size 64 --train 4 "
                      "--test-good 2 --test-defective 2 --seed 3",
                      temp_dir) != 0) {
        fprintf(stderr, "synth failed: %s\n", out);
        return -1;
    }
    return 0;
}

int test_run_at_cpu_levels_(const char *name, const struct CMUnitTest *tests, size_t count,
                            HgCpuLevel lowest) {
    int failed = 0;
    for (int level = (int)hg_cpu_best(); level >= (int)lowest; level--) {
        hg_cpu_set_limit((HgCpuLevel)level);
        printf("# kernels: %s\n", hg_cpu_level_name((HgCpuLevel)level));
        fflush(stdout);
        failed += _cmocka_run_group_tests(name, tests, count, NULL, NULL);
    }
    hg_cpu_set_limit(HG_CPU_AVX512);
    return failed;
}

void test_assert_cli_error(const char *out, int rc, const char *needle) {
    if (rc == 0) fail_msg("expected a failure, got exit 0: %s", out);
    int lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    if (lines != 1 || strncmp(out, "hgad ", 5) != 0)
        fail_msg("expected one 'hgad ...' line, got: %s", out);
    if (!strstr(out, needle)) fail_msg("expected '%s' in: %s", needle, out);
}
