/* A cache of large tensor data blocks, so that the big temporaries of a
 * training step (activations, gradients) reuse memory that is already mapped
 * instead of costing fresh pages (kernel page faults) on every op.
 *
 * Blocks of at least 64 KB are rounded up to a size class (8 classes per power
 * of two, so at most 12.5% slack) and, when freed, kept on that class's free
 * list, most recently freed first. The cache holds at most a bounded number of
 * bytes (default 1 GiB, or HG_TENSOR_POOL_MB from the environment); freeing
 * past the bound first evicts the least recently cached blocks. Smaller blocks
 * go straight to the C allocator. Thread-safe (one mutex).
 *
 * The cache is bypassed (every call goes to aligned_alloc/free) in
 * AddressSanitizer builds, so that use-after-free stays detectable, and when
 * the environment sets HG_TENSOR_POOL=0 (e.g. for valgrind). Cached blocks are
 * freed at exit or by tensor_pool_release(). */
#ifndef HG_STORAGE_POOL_H
#define HG_STORAGE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 64-byte aligned memory of at least `bytes` bytes (never NULL for 0 bytes);
 * NULL when out of memory. Uninitialized. */
void *storage_pool_alloc(size_t bytes);
/* Gives back a block of storage_pool_alloc(bytes), with the same `bytes`. NULL is fine. */
void storage_pool_free(void *data, size_t bytes);

/* Frees every cached block (blocks in use are not affected). */
void tensor_pool_release(void);
/* Bound on cached bytes; a smaller bound evicts at once. 0 disables caching. */
void tensor_pool_set_limit(size_t bytes);

typedef struct TensorPoolStats {
    bool enabled;        /* false in sanitizer builds or with HG_TENSOR_POOL=0 */
    size_t limit;        /* bound on cached bytes */
    size_t cached_bytes; /* held on the free lists now */
    int64_t cached_blocks;
    int64_t hits, misses; /* pooled-size allocations served from / not from the cache */
} TensorPoolStats;

TensorPoolStats tensor_pool_stats(void);

#endif
