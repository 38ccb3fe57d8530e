/* The cache of large tensor blocks (tensor/storage_pool.h): reuse by size
 * class, alignment, the bound on cached bytes with oldest-first eviction,
 * release, small blocks passing through, concurrent use, and tensors built on
 * reused (dirty) memory. In AddressSanitizer builds, or with HG_TENSOR_POOL=0,
 * the cache is off: the checks that need reuse are skipped, the rest run. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/storage_pool.h"
#include "tensor/tensor.h"
#include "tests/testutil.h"

#define MB ((size_t)1 << 20)

static size_t g_default_limit;

static int setup(void **state) {
    (void)state;
    g_default_limit = tensor_pool_stats().limit;
    return 0;
}

/* Every test starts and ends with an empty cache and the default bound. */
static int reset(void **state) {
    (void)state;
    tensor_pool_set_limit(g_default_limit);
    tensor_pool_release();
    return 0;
}

static void test_alignment_and_sizes(void **state) {
    (void)state;
    const size_t sizes[] = {0, 1, 63, 64, 1000, 65535, 65536, 65537, MB + 3, 5 * MB + 12345};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = storage_pool_alloc(sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        memset(p, 0xab, sizes[i]); /* the whole requested size is usable */
        storage_pool_free(p, sizes[i]);
    }
    storage_pool_free(NULL, 123); /* no-op */
}

static void test_reuse_within_a_size_class(void **state) {
    (void)state;
    TensorPoolStats s0 = tensor_pool_stats();
    if (!s0.enabled) skip();
    /* 1 MB + 100 KB and 1 MB + 1 round up to the same class (1 MB + 128 KB). */
    void *a = storage_pool_alloc(MB + 100 * 1024);
    storage_pool_free(a, MB + 100 * 1024);
    TensorPoolStats s1 = tensor_pool_stats();
    assert_int_equal(s1.cached_blocks, 1);
    assert_int_equal(s1.cached_bytes, MB + 128 * 1024);
    void *b = storage_pool_alloc(MB + 1);
    assert_ptr_equal(a, b);
    TensorPoolStats s2 = tensor_pool_stats();
    assert_int_equal(s2.hits, s1.hits + 1);
    assert_int_equal(s2.cached_blocks, 0);
    /* A different class is not served from it. */
    storage_pool_free(b, MB + 1);
    void *c = storage_pool_alloc(MB);
    assert_ptr_not_equal(c, b);
    assert_int_equal(tensor_pool_stats().cached_blocks, 1);
    storage_pool_free(c, MB);
    /* The most recently freed block of a class comes back first. */
    void *d = storage_pool_alloc(MB), *e = storage_pool_alloc(MB);
    storage_pool_free(d, MB);
    storage_pool_free(e, MB);
    assert_ptr_equal(storage_pool_alloc(MB), e);
    assert_ptr_equal(storage_pool_alloc(MB), d);
    storage_pool_free(d, MB);
    storage_pool_free(e, MB);
}

static void test_small_blocks_bypass_the_cache(void **state) {
    (void)state;
    TensorPoolStats s0 = tensor_pool_stats();
    void *p = storage_pool_alloc(4096);
    storage_pool_free(p, 4096);
    TensorPoolStats s1 = tensor_pool_stats();
    assert_int_equal(s1.cached_blocks, s0.cached_blocks);
    assert_int_equal(s1.hits + s1.misses, s0.hits + s0.misses);
}

static void test_bound_evicts_oldest(void **state) {
    (void)state;
    if (!tensor_pool_stats().enabled) skip();
    tensor_pool_set_limit(3 * MB);
    void *blocks[4];
    for (int i = 0; i < 4; i++) blocks[i] = storage_pool_alloc(MB);
    for (int i = 0; i < 4; i++) storage_pool_free(blocks[i], MB);
    TensorPoolStats s = tensor_pool_stats();
    assert_int_equal(s.cached_bytes, 3 * MB);
    assert_int_equal(s.cached_blocks, 3);
    /* blocks[0] (cached first) was evicted: the three others come back, newest first */
    for (int i = 3; i >= 1; i--) assert_ptr_equal(storage_pool_alloc(MB), blocks[i]);
    for (int i = 1; i < 4; i++) storage_pool_free(blocks[i], MB);
    /* A block larger than the bound is never cached. */
    void *big = storage_pool_alloc(4 * MB);
    storage_pool_free(big, 4 * MB);
    assert_true(tensor_pool_stats().cached_bytes <= 3 * MB);
    /* Lowering the bound evicts at once; 0 turns caching off. */
    tensor_pool_set_limit(MB);
    assert_true(tensor_pool_stats().cached_bytes <= MB);
    tensor_pool_set_limit(0);
    assert_int_equal(tensor_pool_stats().cached_bytes, 0);
    void *p = storage_pool_alloc(MB);
    storage_pool_free(p, MB);
    assert_int_equal(tensor_pool_stats().cached_blocks, 0);
}

static void test_release_empties_the_cache(void **state) {
    (void)state;
    for (int i = 1; i <= 5; i++) {
        void *p = storage_pool_alloc((size_t)i * MB);
        storage_pool_free(p, (size_t)i * MB);
    }
    if (tensor_pool_stats().enabled) assert_int_equal(tensor_pool_stats().cached_blocks, 5);
    tensor_pool_release();
    TensorPoolStats s = tensor_pool_stats();
    assert_int_equal(s.cached_blocks, 0);
    assert_int_equal(s.cached_bytes, 0);
}

/* Threads allocate, fill, check and free blocks of mixed sizes at once; a
 * block handed to two threads would show up as a wrong pattern. */
static void test_concurrent_use(void **state) {
    (void)state;
    tensor_pool_set_limit(24 * MB);
    int bad = 0;
#pragma omp parallel num_threads(4) reduction(+ : bad)
    {
        unsigned seed = 12345u + 977u * (unsigned)omp_get_thread_num();
        for (int it = 0; it < 300; it++) {
            seed = seed * 1664525u + 1013904223u;
            size_t bytes = 64 * 1024 + (size_t)(seed >> 12) % (3 * MB);
            unsigned char *p = storage_pool_alloc(bytes);
            if (!p) {
                bad++;
                continue;
            }
            unsigned char tag = (unsigned char)(seed >> 24);
            memset(p, tag, bytes);
            for (size_t k = 0; k < bytes; k += 4093) bad += p[k] != tag;
            bad += p[bytes - 1] != tag;
            storage_pool_free(p, bytes);
        }
    }
    assert_int_equal(bad, 0);
    TensorPoolStats s = tensor_pool_stats();
    assert_true(s.cached_bytes <= 24 * MB);
}

/* Tensors live on pooled blocks: a zeros tensor on a reused dirty block is
 * still zero, and values survive views being freed in any order. */
static void test_tensors_on_reused_blocks(void **state) {
    (void)state;
    const int64_t n = 300, m = 500; /* 600 KB */
    Tensor *a = tensor_full(SHAPE(n, m), 7.0f);
    assert_ok_ptr(a);
    Tensor *view = tensor_narrow(a, 0, 10, 5);
    tensor_free(a); /* the view keeps the storage */
    assert_true(tensor_data(view)[0] == 7.0f);
    tensor_free(view); /* now the block goes back to the cache, dirty */
    Tensor *z = tensor_zeros(SHAPE(n, m));
    assert_ok_ptr(z);
    for (int64_t i = 0; i < n * m; i++)
        if (tensor_data(z)[i] != 0.0f)
            fail_msg("element %lld is %g", (long long)i, tensor_data(z)[i]);
    tensor_free(z);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_alignment_and_sizes, reset, reset),
        cmocka_unit_test_setup_teardown(test_reuse_within_a_size_class, reset, reset),
        cmocka_unit_test_setup_teardown(test_small_blocks_bypass_the_cache, reset, reset),
        cmocka_unit_test_setup_teardown(test_bound_evicts_oldest, reset, reset),
        cmocka_unit_test_setup_teardown(test_release_empties_the_cache, reset, reset),
        cmocka_unit_test_setup_teardown(test_concurrent_use, reset, reset),
        cmocka_unit_test_setup_teardown(test_tensors_on_reused_blocks, reset, reset),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
