#include "tensor/cpu.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* -1 until the first query reads HG_CPU from the environment. */
static atomic_int g_limit = -1;

void hg_cpu_set_limit(HgCpuLevel level) {
    atomic_store(&g_limit, (int)level);
}

/* HG_CPU=avx2 or HG_CPU=portable caps the kernels of a whole run (e.g. to
 * measure what an AVX2-only machine gets); unset or anything else: no cap. */
static int limit_now(void) {
    int limit = atomic_load_explicit(&g_limit, memory_order_relaxed);
    if (limit >= 0) return limit;
    const char *env = getenv("HG_CPU");
    limit = HG_CPU_AVX512;
    if (env && !strcmp(env, "avx2")) limit = HG_CPU_AVX2;
    if (env && !strcmp(env, "portable")) limit = HG_CPU_PORTABLE;
    int unset = -1; /* a hg_cpu_set_limit meanwhile wins */
    atomic_compare_exchange_strong(&g_limit, &unset, limit);
    return atomic_load(&g_limit);
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
    return limit_now() >= (int)level && cpu_runs(level);
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
