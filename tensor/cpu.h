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

#endif
