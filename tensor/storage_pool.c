/* Size-class free lists of large tensor blocks (see storage_pool.h).
 *
 * A cached block is unused memory, so its list links live inside it: the first
 * bytes of every cached block hold a PoolNode, linked both into its class's
 * free list (LIFO: the most recently freed block is still warm in cache) and
 * into one global list in caching order, whose oldest end is evicted first. */
#include "tensor/storage_pool.h"

#include <pthread.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define POOL_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_UNDER_ASAN 1
#endif
#endif
#ifndef POOL_UNDER_ASAN
#define POOL_UNDER_ASAN 0
#endif

/* Under valgrind a cached block is marked inaccessible (but for its list
 * links) and a reused one undefined, so memcheck still reports use after free
 * and reads of uninitialized tensor data. The requests cost a few
 * instructions outside valgrind; without the header they compile to nothing. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define POOL_MARK_CACHED(p, n)                                                                     \
    VALGRIND_MAKE_MEM_NOACCESS((char *)(p) + sizeof(PoolNode), (n) - sizeof(PoolNode))
#define POOL_MARK_REUSED(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#endif
#endif
#ifndef POOL_MARK_CACHED
#define POOL_MARK_CACHED(p, n) ((void)0)
#define POOL_MARK_REUSED(p, n) ((void)0)
#endif

#define POOL_ALIGNMENT     64
#define POOL_MIN_SHIFT     16 /* blocks below 64 KB bypass the cache */
#define POOL_CLASS_BITS    3  /* 8 size classes per power of two */
#define POOL_MAX_SHIFT     48
#define POOL_CLASSES       ((POOL_MAX_SHIFT - POOL_MIN_SHIFT + 1) << POOL_CLASS_BITS)
#define POOL_DEFAULT_LIMIT ((size_t)1 << 30)

typedef struct PoolNode {
    struct PoolNode *prev, *next;   /* in its class's free list (next = older) */
    struct PoolNode *older, *newer; /* in the global caching order */
    size_t bytes;                   /* class size */
    int cls;
} PoolNode;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static bool g_enabled;
static bool g_exiting; /* after the exit handler ran, frees go straight to free() */
static size_t g_limit = POOL_DEFAULT_LIMIT;
static size_t g_cached_bytes;
static int64_t g_cached_blocks, g_hits, g_misses;
static PoolNode *g_classes[POOL_CLASSES];
static PoolNode *g_newest, *g_oldest;

static void release_at_exit(void) {
    tensor_pool_release();
    pthread_mutex_lock(&g_lock);
    g_exiting = true;
    pthread_mutex_unlock(&g_lock);
}

static void pool_init(void) {
    const char *on = getenv("HG_TENSOR_POOL");
    g_enabled = !POOL_UNDER_ASAN && !(on && on[0] == '0' && on[1] == '\0');
    const char *mb = getenv("HG_TENSOR_POOL_MB");
    if (mb && *mb) {
        char *end = NULL;
        unsigned long long v = strtoull(mb, &end, 10);
        if (end && *end == '\0' && v < ((unsigned long long)1 << 40)) g_limit = (size_t)v << 20;
    }
    if (g_enabled && atexit(release_at_exit) != 0) g_enabled = false;
}

/* Size class of a block of `bytes` (>= 2^POOL_MIN_SHIFT): with e = floor(log2
 * bytes), classes are multiples of 2^(e-3) in (2^e, 2^(e+1)]; rounding up to
 * 2^(e+1) lands on the first class of the next power, so a size always maps
 * to the same class. -1 when too large to pool. */
static int size_class(size_t bytes, size_t *class_bytes) {
    int e = 63 - __builtin_clzll((unsigned long long)bytes);
    if (e < POOL_MIN_SHIFT || e >= POOL_MAX_SHIFT) return -1;
    size_t step = (size_t)1 << (e - POOL_CLASS_BITS);
    size_t rounded = (bytes + step - 1) / step * step;
    *class_bytes = rounded;
    return ((e - POOL_MIN_SHIFT) << POOL_CLASS_BITS) + (int)(rounded / step) -
           (1 << POOL_CLASS_BITS);
}

static void *system_alloc(size_t bytes) {
    size_t padded = (bytes + POOL_ALIGNMENT - 1) / POOL_ALIGNMENT * POOL_ALIGNMENT;
    return aligned_alloc(POOL_ALIGNMENT, padded ? padded : POOL_ALIGNMENT);
}

/* Unlinks `n` from both lists. Caller holds the lock. */
static void unlink_node(PoolNode *n) {
    if (n->prev)
        n->prev->next = n->next;
    else
        g_classes[n->cls] = n->next;
    if (n->next) n->next->prev = n->prev;
    if (n->newer)
        n->newer->older = n->older;
    else
        g_newest = n->older;
    if (n->older)
        n->older->newer = n->newer;
    else
        g_oldest = n->newer;
    g_cached_bytes -= n->bytes;
    g_cached_blocks--;
}

/* Evicts the oldest cached blocks until at most `target` bytes stay cached;
 * the evicted blocks are chained through ->next into *freed, to be given back
 * to the system after the lock is dropped. */
static void evict_to(size_t target, PoolNode **freed) {
    while (g_cached_bytes > target && g_oldest) {
        PoolNode *n = g_oldest;
        unlink_node(n);
        n->next = *freed;
        *freed = n;
    }
}

static void free_chain(PoolNode *n) {
    while (n) {
        PoolNode *next = n->next;
        free(n);
        n = next;
    }
}

void *storage_pool_alloc(size_t bytes) {
    pthread_once(&g_once, pool_init);
    size_t class_bytes = 0;
    int cls = g_enabled ? size_class(bytes, &class_bytes) : -1;
    if (cls < 0) return system_alloc(bytes);
    pthread_mutex_lock(&g_lock);
    PoolNode *n = g_classes[cls];
    if (n) {
        unlink_node(n);
        g_hits++;
    } else {
        g_misses++;
    }
    pthread_mutex_unlock(&g_lock);
    if (!n) return aligned_alloc(POOL_ALIGNMENT, class_bytes);
    POOL_MARK_REUSED(n, class_bytes);
    return n;
}

void storage_pool_free(void *data, size_t bytes) {
    if (!data) return;
    pthread_once(&g_once, pool_init);
    size_t class_bytes = 0;
    int cls = g_enabled ? size_class(bytes, &class_bytes) : -1;
    if (cls < 0) {
        free(data);
        return;
    }
    PoolNode *freed = NULL;
    pthread_mutex_lock(&g_lock);
    if (g_exiting || class_bytes > g_limit) {
        freed = data;
        freed->next = NULL;
    } else {
        evict_to(g_limit - class_bytes, &freed);
        PoolNode *n = data;
        *n = (PoolNode){.prev = NULL,
                        .next = g_classes[cls],
                        .older = g_newest,
                        .newer = NULL,
                        .bytes = class_bytes,
                        .cls = cls};
        if (n->next) n->next->prev = n;
        g_classes[cls] = n;
        if (g_newest) g_newest->newer = n;
        g_newest = n;
        if (!g_oldest) g_oldest = n;
        g_cached_bytes += class_bytes;
        g_cached_blocks++;
        POOL_MARK_CACHED(n, class_bytes);
    }
    pthread_mutex_unlock(&g_lock);
    free_chain(freed);
}

void tensor_pool_release(void) {
    pthread_once(&g_once, pool_init);
    PoolNode *freed = NULL;
    pthread_mutex_lock(&g_lock);
    evict_to(0, &freed);
    pthread_mutex_unlock(&g_lock);
    free_chain(freed);
}

void tensor_pool_set_limit(size_t bytes) {
    pthread_once(&g_once, pool_init);
    PoolNode *freed = NULL;
    pthread_mutex_lock(&g_lock);
    g_limit = bytes;
    evict_to(bytes, &freed);
    pthread_mutex_unlock(&g_lock);
    free_chain(freed);
}

TensorPoolStats tensor_pool_stats(void) {
    pthread_once(&g_once, pool_init);
    pthread_mutex_lock(&g_lock);
    TensorPoolStats s = {g_enabled, g_limit, g_cached_bytes, g_cached_blocks, g_hits, g_misses};
    pthread_mutex_unlock(&g_lock);
    return s;
}
