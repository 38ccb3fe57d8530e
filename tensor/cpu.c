#include "tensor/cpu.h"

#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
/* libgcc's answers include the OS's support (XCR0) for the register state. */
static int ask_cpu(bool avx512) {
    __builtin_cpu_init();
    if (avx512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Every thread that races here stores the same value. */
static bool cached_answer(atomic_int *cached, bool avx512) {
    int have = atomic_load_explicit(cached, memory_order_relaxed);
    if (have < 0) {
        have = ask_cpu(avx512);
        atomic_store_explicit(cached, have, memory_order_relaxed);
    }
    return have == 1;
}

bool hg_cpu_has_avx2_fma(void) {
    static atomic_int cached = -1;
    return cached_answer(&cached, false);
}

bool hg_cpu_has_avx512f(void) {
    static atomic_int cached = -1;
    return cached_answer(&cached, true);
}
#else
bool hg_cpu_has_avx2_fma(void) {
    return false;
}

bool hg_cpu_has_avx512f(void) {
    return false;
}
#endif
