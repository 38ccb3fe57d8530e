/* AVX-512 micro-kernel of the implicit-GEMM convolution (conv2d_implicit.c):
 * a tile of 8 output channels x 48 outputs in 24 accumulators; every K step
 * loads 3 vectors of the packed input panel, broadcasts 8 packed weights and
 * issues 24 FMAs. On CPUs with 512-bit FMA units this doubles the rate of
 * gemm's AVX2 6x16 kernel.
 *
 * This file is compiled with the generic flags: the function carries the
 * AVX-512 target attribute and is called only when hg_cpu_has_avx512f()
 * (tensor/cpu.h). */
#include <immintrin.h>

#include "nn/conv2d_implicit.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#define VEC    16
#define NV     (IMPLICIT512_NR / VEC)

AVX512 void conv2d_implicit_tile_avx512(int64_t kc, const float *a, const float *b, float *c,
                                        int64_t ldc, const float *bias, bool accumulate, bool relu,
                                        int mr, int nr) {
    __mmask16 mask[NV];
    for (int v = 0; v < NV; v++) {
        int left = nr - v * VEC;
        mask[v] = left >= VEC ? (__mmask16)0xFFFF
                  : left <= 0 ? (__mmask16)0
                              : (__mmask16)((1u << left) - 1u);
    }
    __m512 acc[IMPLICIT512_MR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < IMPLICIT512_MR; r++)
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++)
            acc[r][v] = accumulate && r < mr ? _mm512_maskz_loadu_ps(mask[v], c + r * ldc + v * VEC)
                        : bias && r < mr     ? _mm512_set1_ps(bias[r])
                                             : _mm512_setzero_ps();
    for (int64_t p = 0; p < kc; p++) {
        const float *bp = b + p * IMPLICIT512_NR, *ap = a + p * IMPLICIT512_MR;
        __m512 xv[NV];
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++) xv[v] = _mm512_load_ps(bp + v * VEC);
#pragma GCC unroll 8
        for (int r = 0; r < IMPLICIT512_MR; r++) {
            __m512 wv = _mm512_set1_ps(ap[r]);
#pragma GCC unroll 3
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(wv, xv[v], acc[r][v]);
        }
    }
    if (relu) {
        __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int r = 0; r < IMPLICIT512_MR; r++)
#pragma GCC unroll 3
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_max_ps(acc[r][v], zero);
    }
#pragma GCC unroll 8
    for (int r = 0; r < IMPLICIT512_MR; r++) {
        if (r >= mr) break;
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++)
            _mm512_mask_storeu_ps(c + r * ldc + v * VEC, mask[v], acc[r][v]);
    }
}

AVX512 void conv2d_implicit_pack_avx512(float *d, const float *planes, const int64_t *tap,
                                        int64_t kc, int nseg, const int64_t *seg_off,
                                        const int *seg_len, const int *seg_dst) {
    if (nseg == 1 && seg_len[0] == IMPLICIT512_NR) {
        const float *src = planes + seg_off[0];
        for (int64_t r = 0; r < kc; r++) {
            const float *s = src + tap[r];
            float *dr = d + r * IMPLICIT512_NR;
#pragma GCC unroll 3
            for (int v = 0; v < NV; v++)
                _mm512_store_ps(dr + v * VEC, _mm512_loadu_ps(s + v * VEC));
        }
        return;
    }
    __m512 zero = _mm512_setzero_ps();
    for (int64_t r = 0; r < kc; r++) {
        float *dr = d + r * IMPLICIT512_NR;
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++) _mm512_store_ps(dr + v * VEC, zero);
        for (int q = 0; q < nseg; q++) {
            const float *s = planes + tap[r] + seg_off[q];
            for (int t = 0; t < seg_len[q]; t += VEC) {
                int left = seg_len[q] - t;
                __mmask16 mask = left >= VEC ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
                _mm512_mask_storeu_ps(dr + seg_dst[q] + t, mask,
                                      _mm512_maskz_loadu_ps(mask, s + t));
            }
        }
    }
}

#else

void conv2d_implicit_pack_avx512(float *d, const float *planes, const int64_t *tap, int64_t kc,
                                 int nseg, const int64_t *seg_off, const int *seg_len,
                                 const int *seg_dst) {
    (void)d, (void)planes, (void)tap, (void)kc, (void)nseg, (void)seg_off, (void)seg_len,
        (void)seg_dst;
}

void conv2d_implicit_tile_avx512(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                                 const float *bias, bool accumulate, bool relu, int mr, int nr) {
    (void)kc, (void)a, (void)b, (void)c, (void)ldc, (void)bias, (void)accumulate, (void)relu,
        (void)mr, (void)nr;
}

#endif
