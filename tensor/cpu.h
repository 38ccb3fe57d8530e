/* What the CPU can run, for choosing between portable, AVX2 and AVX-512
 * kernels at run time (the *_avx2.c files are compiled with -mavx2 -mfma, the
 * *_avx512.c functions carry target attributes; only call into them when this
 * says so). */
#ifndef HG_CPU_H
#define HG_CPU_H

#include <stdbool.h>

/* True when the CPU runs AVX2 and FMA. Asked once, then cached; thread-safe. */
bool hg_cpu_has_avx2_fma(void);

/* True when the CPU and the OS (which must save the 512-bit registers) run
 * AVX-512F and FMA; the *_avx512.c kernels need it. Cached; thread-safe. */
bool hg_cpu_has_avx512f(void);

/* Kernel families, widest last. hg_cpu_set_limit caps what the two functions
 * above report, so that tests can run every family's kernels on one machine
 * (HG_CPU_AVX512 caps nothing). The default comes from the environment:
 * HG_CPU=avx2 or HG_CPU=portable, else no cap. Process-wide; set it only while
 * no kernel runs. hg_cpu_best is the widest family this CPU runs. */
typedef enum { HG_CPU_PORTABLE, HG_CPU_AVX2, HG_CPU_AVX512 } HgCpuLevel;
void hg_cpu_set_limit(HgCpuLevel level);
HgCpuLevel hg_cpu_best(void);
const char *hg_cpu_level_name(HgCpuLevel level);

#endif
