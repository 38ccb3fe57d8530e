#include "tensor/cpu.h"

#include <stdatomic.h>

static atomic_int g_limit = HG_CPU_AVX512;

void hg_cpu_set_limit(HgCpuLevel level) {
    atomic_store(&g_limit, (int)level);
}

#if defined(__x86_64__) || defined(__i386__)
/* libgcc's answers include the OS's support (XCR0) for the register state.
 * Asked once; every thread that races here stores the same value. */
static bool cpu_runs(HgCpuLevel level) {
    static atomic_int cached[3] = {1, -1, -1}; /* portable always */
    int have = atomic_load_explicit(&cached[level], memory_order_relaxed);
    if (have < 0) {
        __builtin_cpu_init();
        bool wide = level == HG_CPU_AVX512 ? __builtin_cpu_supports("avx512f")
                                           : __builtin_cpu_supports("avx2");
        have = wide && __builtin_cpu_supports("fma");
        atomic_store_explicit(&cached[level], have, memory_order_relaxed);
    }
    return have == 1;
}
#else
static bool cpu_runs(HgCpuLevel level) {
    return level == HG_CPU_PORTABLE;
}
#endif

static bool allowed(HgCpuLevel level) {
    return atomic_load_explicit(&g_limit, memory_order_relaxed) >= (int)level && cpu_runs(level);
}

bool hg_cpu_has_avx2_fma(void) {
    return allowed(HG_CPU_AVX2);
}

bool hg_cpu_has_avx512f(void) {
    return allowed(HG_CPU_AVX512);
}

HgCpuLevel hg_cpu_best(void) {
    return cpu_runs(HG_CPU_AVX512) ? HG_CPU_AVX512
           : cpu_runs(HG_CPU_AVX2) ? HG_CPU_AVX2
                                   : HG_CPU_PORTABLE;
}

const char *hg_cpu_level_name(HgCpuLevel level) {
    return level == HG_CPU_AVX512 ? "avx512" : level == HG_CPU_AVX2 ? "avx2" : "portable";
}
