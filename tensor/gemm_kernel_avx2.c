/* AVX2/FMA parts of gemm(): the micro-kernel and the packing routines.
 *
 * Micro-kernel: a 6 x 16 tile of C held in 12 ymm accumulators. Each k step
 * loads 16 floats of the packed B panel (2 vectors), broadcasts the 6 packed A
 * values and issues 12 FMAs, which keeps both FMA pipes busy while loads stay
 * well under the load-port limit; its k loop is inline assembly. Right-edge
 * tiles of at most 8 columns use a 6 x 8 kernel. Packing: the layouts that
 * need a transpose (rows of A into k-major panels, columns of B^T) go through
 * 8 x 8 register transposes. Built with -mavx2 -mfma; gemm.c calls these
 * only when the CPU reports both. */
#include "tensor/gemm_internal.h"

#include <immintrin.h>
#include <stdalign.h>

/* C = alpha * acc + beta * C for one row of 8, or C = alpha * acc when beta == 0. */
static inline void update8(float *c, __m256 acc, __m256 alpha, __m256 beta, int read_c) {
    __m256 r = _mm256_mul_ps(alpha, acc);
    if (read_c) r = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c), r);
    _mm256_storeu_ps(c, r);
}

/* Writes the accumulators into a C tile (whole 6 x w tile, no edge). */
#define UPDATE_ROWS16(c, ldc)                                                                      \
    do {                                                                                           \
        update8((c) + 0 * (ldc), c00, va, vb, read_c);                                             \
        update8((c) + 0 * (ldc) + 8, c01, va, vb, read_c);                                         \
        update8((c) + 1 * (ldc), c10, va, vb, read_c);                                             \
        update8((c) + 1 * (ldc) + 8, c11, va, vb, read_c);                                         \
        update8((c) + 2 * (ldc), c20, va, vb, read_c);                                             \
        update8((c) + 2 * (ldc) + 8, c21, va, vb, read_c);                                         \
        update8((c) + 3 * (ldc), c30, va, vb, read_c);                                             \
        update8((c) + 3 * (ldc) + 8, c31, va, vb, read_c);                                         \
        update8((c) + 4 * (ldc), c40, va, vb, read_c);                                             \
        update8((c) + 4 * (ldc) + 8, c41, va, vb, read_c);                                         \
        update8((c) + 5 * (ldc), c50, va, vb, read_c);                                             \
        update8((c) + 5 * (ldc) + 8, c51, va, vb, read_c);                                         \
    } while (0)

#define UPDATE_ROWS8(c, ldc)                                                                       \
    do {                                                                                           \
        update8((c) + 0 * (ldc), c00, va, vb, read_c);                                             \
        update8((c) + 1 * (ldc), c10, va, vb, read_c);                                             \
        update8((c) + 2 * (ldc), c20, va, vb, read_c);                                             \
        update8((c) + 3 * (ldc), c30, va, vb, read_c);                                             \
        update8((c) + 4 * (ldc), c40, va, vb, read_c);                                             \
        update8((c) + 5 * (ldc), c50, va, vb, read_c);                                             \
    } while (0)

/* Edge tiles go through a full-size scratch tile so that the very same vector
 * update runs on them (bit-identical to interior tiles). */
static void load_edge(float *tile, int w, const float *c, int64_t ldc, int mr, int nr, int read_c) {
    for (int i = 0; i < GEMM_MR; i++)
        for (int j = 0; j < w; j++)
            tile[i * w + j] = (read_c && i < mr && j < nr) ? c[i * ldc + j] : 0.0f;
}

static void store_edge(const float *tile, int w, float *c, int64_t ldc, int mr, int nr) {
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) c[i * ldc + j] = tile[i * w + j];
}

/* One k step of the 6 x 16 kernel in assembly: B row at byte offset bo of
 * %[b], A column at byte offset ao of %[a]. Registers: ymm0/ymm1 = B, ymm2 and
 * ymm3 (alternating) = broadcast A, ymm4 + 2i / ymm5 + 2i = row i of the tile. */
#define ASM_STEP16(bo, ao)                                                                         \
    "vmovaps " #bo "(%[b]), %%ymm0\n\t"                                                            \
    "vmovaps " #bo "+32(%[b]), %%ymm1\n\t"                                                         \
    "vbroadcastss " #ao "(%[a]), %%ymm2\n\t"                                                       \
    "vfmadd231ps %%ymm0, %%ymm2, %%ymm4\n\t"                                                       \
    "vfmadd231ps %%ymm1, %%ymm2, %%ymm5\n\t"                                                       \
    "vbroadcastss " #ao "+4(%[a]), %%ymm3\n\t"                                                     \
    "vfmadd231ps %%ymm0, %%ymm3, %%ymm6\n\t"                                                       \
    "vfmadd231ps %%ymm1, %%ymm3, %%ymm7\n\t"                                                       \
    "vbroadcastss " #ao "+8(%[a]), %%ymm2\n\t"                                                     \
    "vfmadd231ps %%ymm0, %%ymm2, %%ymm8\n\t"                                                       \
    "vfmadd231ps %%ymm1, %%ymm2, %%ymm9\n\t"                                                       \
    "vbroadcastss " #ao "+12(%[a]), %%ymm3\n\t"                                                    \
    "vfmadd231ps %%ymm0, %%ymm3, %%ymm10\n\t"                                                      \
    "vfmadd231ps %%ymm1, %%ymm3, %%ymm11\n\t"                                                      \
    "vbroadcastss " #ao "+16(%[a]), %%ymm2\n\t"                                                    \
    "vfmadd231ps %%ymm0, %%ymm2, %%ymm12\n\t"                                                      \
    "vfmadd231ps %%ymm1, %%ymm2, %%ymm13\n\t"                                                      \
    "vbroadcastss " #ao "+20(%[a]), %%ymm3\n\t"                                                    \
    "vfmadd231ps %%ymm0, %%ymm3, %%ymm14\n\t"                                                      \
    "vfmadd231ps %%ymm1, %%ymm3, %%ymm15\n\t"

/* acc[i][0:16] = sum over k of A[k][i] * B[k][0:16] (one FMA per k, in order).
 * Written in assembly because compilers shuffle the 12 accumulators between
 * registers and spill one, which costs several percent of peak. */
static void accumulate_6x16(int64_t kc, const float *a, const float *b, float *acc) {
    int64_t quads = kc / 4, rest = kc % 4;
    /* clang-format off */
    __asm__ volatile(
        "vxorps %%ymm4, %%ymm4, %%ymm4\n\t"
        "vxorps %%ymm5, %%ymm5, %%ymm5\n\t"
        "vxorps %%ymm6, %%ymm6, %%ymm6\n\t"
        "vxorps %%ymm7, %%ymm7, %%ymm7\n\t"
        "vxorps %%ymm8, %%ymm8, %%ymm8\n\t"
        "vxorps %%ymm9, %%ymm9, %%ymm9\n\t"
        "vxorps %%ymm10, %%ymm10, %%ymm10\n\t"
        "vxorps %%ymm11, %%ymm11, %%ymm11\n\t"
        "vxorps %%ymm12, %%ymm12, %%ymm12\n\t"
        "vxorps %%ymm13, %%ymm13, %%ymm13\n\t"
        "vxorps %%ymm14, %%ymm14, %%ymm14\n\t"
        "vxorps %%ymm15, %%ymm15, %%ymm15\n\t"
        "test %[q], %[q]\n\t"
        "jz 2f\n\t"
        ".p2align 5\n"
        "1:\n\t"
        ASM_STEP16(0, 0)
        ASM_STEP16(64, 24)
        ASM_STEP16(128, 48)
        ASM_STEP16(192, 72)
        "add $96, %[a]\n\t"
        "add $256, %[b]\n\t"
        "dec %[q]\n\t"
        "jnz 1b\n"
        "2:\n\t"
        "test %[r], %[r]\n\t"
        "jz 4f\n"
        "3:\n\t"
        ASM_STEP16(0, 0)
        "add $24, %[a]\n\t"
        "add $64, %[b]\n\t"
        "dec %[r]\n\t"
        "jnz 3b\n"
        "4:\n\t"
        "vmovaps %%ymm4, 0(%[acc])\n\t"
        "vmovaps %%ymm5, 32(%[acc])\n\t"
        "vmovaps %%ymm6, 64(%[acc])\n\t"
        "vmovaps %%ymm7, 96(%[acc])\n\t"
        "vmovaps %%ymm8, 128(%[acc])\n\t"
        "vmovaps %%ymm9, 160(%[acc])\n\t"
        "vmovaps %%ymm10, 192(%[acc])\n\t"
        "vmovaps %%ymm11, 224(%[acc])\n\t"
        "vmovaps %%ymm12, 256(%[acc])\n\t"
        "vmovaps %%ymm13, 288(%[acc])\n\t"
        "vmovaps %%ymm14, 320(%[acc])\n\t"
        "vmovaps %%ymm15, 352(%[acc])\n\t"
        : [a] "+r"(a), [b] "+r"(b), [q] "+r"(quads), [r] "+r"(rest)
        : [acc] "r"(acc)
        : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
          "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    /* clang-format on */
}
#undef ASM_STEP16

static void kernel_6x16(int64_t kc, const float *restrict a, const float *restrict b, float *c,
                        int64_t ldc, float alpha, float beta, int mr, int nr) {
    /* Bring the C tile towards L1 while the k loop runs. */
    if (beta != 0.0f && mr == GEMM_MR)
        for (int i = 0; i < GEMM_MR; i++) {
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
        }
    alignas(32) float acc[GEMM_MR * 16];
    accumulate_6x16(kc, a, b, acc);
    __m256 c00 = _mm256_load_ps(acc + 0), c01 = _mm256_load_ps(acc + 8);
    __m256 c10 = _mm256_load_ps(acc + 16), c11 = _mm256_load_ps(acc + 24);
    __m256 c20 = _mm256_load_ps(acc + 32), c21 = _mm256_load_ps(acc + 40);
    __m256 c30 = _mm256_load_ps(acc + 48), c31 = _mm256_load_ps(acc + 56);
    __m256 c40 = _mm256_load_ps(acc + 64), c41 = _mm256_load_ps(acc + 72);
    __m256 c50 = _mm256_load_ps(acc + 80), c51 = _mm256_load_ps(acc + 88);

    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const int read_c = beta != 0.0f;
    if (mr == GEMM_MR && nr == 16) {
        UPDATE_ROWS16(c, ldc);
    } else {
        alignas(32) float tile[GEMM_MR * 16];
        load_edge(tile, 16, c, ldc, mr, nr, read_c);
        UPDATE_ROWS16(tile, 16);
        store_edge(tile, 16, c, ldc, mr, nr);
    }
}

/* Right-edge tiles of at most 8 columns: half the work of kernel_6x16. Six
 * accumulators alone cannot cover the FMA latency, so even and odd k steps go
 * to separate accumulators, added at the end (a fixed order for given kc). */
static void kernel_6x8(int64_t kc, const float *restrict a, const float *restrict b, float *c,
                       int64_t ldc, float alpha, float beta, int mr, int nr) {
    __m256 c00 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps();
    __m256 d00 = _mm256_setzero_ps(), d10 = _mm256_setzero_ps(), d20 = _mm256_setzero_ps();
    __m256 d30 = _mm256_setzero_ps(), d40 = _mm256_setzero_ps(), d50 = _mm256_setzero_ps();
    int64_t p = 0;
    for (; p + 2 <= kc; p += 2) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 0), b0, c00);
        c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1), b0, c10);
        c20 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2), b0, c20);
        c30 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3), b0, c30);
        c40 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4), b0, c40);
        c50 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5), b0, c50);
        d00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 6), b1, d00);
        d10 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 7), b1, d10);
        d20 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 8), b1, d20);
        d30 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 9), b1, d30);
        d40 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 10), b1, d40);
        d50 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 11), b1, d50);
        a += 2 * GEMM_MR;
        b += 16;
    }
    if (p < kc) {
        __m256 b0 = _mm256_load_ps(b);
        c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 0), b0, c00);
        c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1), b0, c10);
        c20 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2), b0, c20);
        c30 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3), b0, c30);
        c40 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4), b0, c40);
        c50 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5), b0, c50);
    }
    c00 = _mm256_add_ps(c00, d00);
    c10 = _mm256_add_ps(c10, d10);
    c20 = _mm256_add_ps(c20, d20);
    c30 = _mm256_add_ps(c30, d30);
    c40 = _mm256_add_ps(c40, d40);
    c50 = _mm256_add_ps(c50, d50);
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const int read_c = beta != 0.0f;
    if (mr == GEMM_MR && nr == 8) {
        UPDATE_ROWS8(c, ldc);
    } else {
        alignas(32) float tile[GEMM_MR * 8];
        load_edge(tile, 8, c, ldc, mr, nr, read_c);
        UPDATE_ROWS8(tile, 8);
        store_edge(tile, 8, c, ldc, mr, nr);
    }
}

void gemm_microkernel_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                           float alpha, float beta, int mr, int nr) {
    if (gemm_b_panel_width(nr) == 8)
        kernel_6x8(kc, a, b, c, ldc, alpha, beta, mr, nr);
    else
        kernel_6x16(kc, a, b, c, ldc, alpha, beta, mr, nr);
}

/* ---- packing ---- */

/* In-register transpose: on return r[j] holds column j of the 8 x 8 input. */
static inline void transpose8x8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* One A panel from `mr` rows of a row-major A (k contiguous): d[p][r] = src[r][p]. */
static void pack_a_panel_rows(const float *src, int64_t lda, int mr, int64_t kc, float *d) {
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; i++)
            r[i] = i < mr ? _mm256_loadu_ps(src + i * lda + p) : _mm256_setzero_ps();
        transpose8x8(r);
        float *o = d + p * GEMM_MR;
        /* Columns are 8 wide but panels hold 6: each store's 2 extra lanes
         * are overwritten by the next one; the last store is trimmed. */
        for (int j = 0; j < 7; j++) _mm256_storeu_ps(o + j * GEMM_MR, r[j]);
        _mm_storeu_ps(o + 7 * GEMM_MR, _mm256_castps256_ps128(r[7]));
        _mm_storel_pi((__m64 *)(o + 7 * GEMM_MR + 4), _mm256_extractf128_ps(r[7], 1));
    }
    for (; p < kc; p++)
        for (int i = 0; i < GEMM_MR; i++) d[p * GEMM_MR + i] = i < mr ? src[i * lda + p] : 0.0f;
}

/* How many k rows ahead the transposed-A packer prefetches. */
#define PACK_PREFETCH_ROWS 8

void gemm_pack_a_avx2(bool trans, const float *a, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
                      int64_t kc, float *dst) {
    if (!trans) {
        for (int64_t ip = 0; ip < mc; ip += GEMM_MR) {
            int mr = mc - ip < GEMM_MR ? (int)(mc - ip) : GEMM_MR;
            pack_a_panel_rows(a + (i0 + ip) * lda + p0, lda, mr, kc, dst + ip * kc);
        }
        return;
    }
    /* A stored K x M: each k row holds the 6 values of a panel contiguously.
     * Walk k in the outer loop so every source row is read once, in order
     * (large power-of-two lda would otherwise thrash the cache sets). */
    int64_t full = mc / GEMM_MR * GEMM_MR;
    for (int64_t p = 0; p < kc; p++) {
        const float *row = a + (p0 + p) * lda + i0;
        float *d = dst + p * GEMM_MR;
        /* Rows lie lda apart, too far for the hardware prefetcher to follow. */
        if (p + PACK_PREFETCH_ROWS < kc) {
            const float *ahead = row + PACK_PREFETCH_ROWS * lda;
            for (int64_t i = 0; i < mc; i += 16)
                _mm_prefetch((const char *)(ahead + i), _MM_HINT_T0);
            _mm_prefetch((const char *)(ahead + mc - 1), _MM_HINT_T0);
        }
        for (int64_t ip = 0; ip < full; ip += GEMM_MR) {
            _mm_storeu_ps(d + ip * kc, _mm_loadu_ps(row + ip));
            _mm_storel_pi((__m64 *)(d + ip * kc + 4),
                          _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(row + ip + 4)));
        }
        if (full < mc)
            for (int i = 0; i < GEMM_MR; i++)
                d[full * kc + i] = full + i < mc ? row[full + i] : 0.0f;
    }
}

void gemm_pack_b_panel_avx2(bool trans, const float *b, int64_t ldb, int64_t j, int nr, int64_t p0,
                            int64_t kc, float *d) {
    int w = gemm_b_panel_width(nr);
    if (!trans) {
        const float *src = b + p0 * ldb + j;
        if (nr == GEMM_NR) {
            for (int64_t p = 0; p < kc; p++) {
                _mm256_store_ps(d + p * 16, _mm256_loadu_ps(src + p * ldb));
                _mm256_store_ps(d + p * 16 + 8, _mm256_loadu_ps(src + p * ldb + 8));
            }
        } else if (nr == 8) {
            for (int64_t p = 0; p < kc; p++)
                _mm256_store_ps(d + p * 8, _mm256_loadu_ps(src + p * ldb));
        } else {
            for (int64_t p = 0; p < kc; p++)
                for (int c = 0; c < w; c++) d[p * w + c] = c < nr ? src[p * ldb + c] : 0.0f;
        }
        return;
    }
    /* B stored N x K: transpose 8 x 8 blocks of the panel's nr rows. */
    const float *src = b + j * ldb + p0;
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        for (int half = 0; half < w / 8; half++) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                int c = half * 8 + i;
                r[i] = c < nr ? _mm256_loadu_ps(src + c * ldb + p) : _mm256_setzero_ps();
            }
            transpose8x8(r);
            for (int q = 0; q < 8; q++) _mm256_store_ps(d + (p + q) * w + half * 8, r[q]);
        }
    }
    for (; p < kc; p++)
        for (int c = 0; c < w; c++) d[p * w + c] = c < nr ? src[c * ldb + p] : 0.0f;
}
