/* Driver of gemm(): Goto/BLIS blocking with packed panels.
 *
 *   for jc over N in steps of NC          B slice KC x NC packed once, shared
 *     for pc over K in steps of KC          by all threads (lives in L3)
 *       for ic over this thread's rows      A block MC x KC packed per thread
 *         for jr over NR-wide B panels        (lives in L2)
 *           for ir over MR-high A panels      micro-kernel: MR x NR tile of C
 *
 * Threads split the rows of C (or, for short and wide problems, the columns),
 * never K, and the K blocking depends on k only, so every element of C gets the
 * same sequence of multiply-adds whatever the thread count. */
#include "tensor/gemm.h"

#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/cpu.h"
#include "tensor/gemm_internal.h"

/* Blocking for a core with 48 KB L1d, 1 MB L2 and a shared L3 (tuned on
 * AMD Zen 5): a KC x NR B panel (32 KB) stays in L1 next to the 6 x KC A
 * panel, the MC x KC A block (~700 KB) in L2, the KC x NC B slice in L3.
 * K is cut into equal blocks of at most KC (k = 712 gives 2 x 356). */
static const int64_t g_mc = 336; /* multiple of GEMM_MR */
static const int64_t g_kc = 512;
static const int64_t g_nc = 4096; /* multiple of GEMM_NR */

/* Below this many multiply-adds one thread is faster than a team of two
 * (measured: 2 threads win from about 64 x 64 x 64 on). */
#define GEMM_PARALLEL_MIN_MACS (64.0 * 64.0 * 64.0)

static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

static int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

/* ---- per-thread packing buffers ----
 * Each thread keeps its buffers (grown on demand, 64-byte aligned) across
 * calls. They are freed when the thread exits; all live buffers are also
 * linked from a global list so that the main thread's count as reachable. */
typedef struct PackBuffers {
    float *a, *b;
    size_t a_cap, b_cap; /* floats */
    struct PackBuffers *prev, *next;
} PackBuffers;

static pthread_mutex_t g_buffers_lock = PTHREAD_MUTEX_INITIALIZER;
static PackBuffers *g_buffers;
static pthread_key_t g_buffers_key;
static pthread_once_t g_buffers_once = PTHREAD_ONCE_INIT;
static bool g_buffers_key_ok;

static void free_thread_buffers(void *p) {
    PackBuffers *pb = p;
    pthread_mutex_lock(&g_buffers_lock);
    if (pb->prev)
        pb->prev->next = pb->next;
    else
        g_buffers = pb->next;
    if (pb->next) pb->next->prev = pb->prev;
    pthread_mutex_unlock(&g_buffers_lock);
    free(pb->a);
    free(pb->b);
    free(pb);
}

static void create_buffers_key(void) {
    g_buffers_key_ok = pthread_key_create(&g_buffers_key, free_thread_buffers) == 0;
}

static PackBuffers *thread_buffers(void) {
    pthread_once(&g_buffers_once, create_buffers_key);
    if (!g_buffers_key_ok) return NULL;
    PackBuffers *pb = pthread_getspecific(g_buffers_key);
    if (pb) return pb;
    pb = calloc(1, sizeof *pb);
    if (!pb) return NULL;
    if (pthread_setspecific(g_buffers_key, pb) != 0) {
        free(pb);
        return NULL;
    }
    pthread_mutex_lock(&g_buffers_lock);
    pb->next = g_buffers;
    if (g_buffers) g_buffers->prev = pb;
    g_buffers = pb;
    pthread_mutex_unlock(&g_buffers_lock);
    return pb;
}

/* Returns a buffer of at least `floats` floats, reusing *buf when big enough. */
static float *grow_buffer(float **buf, size_t *cap, size_t floats) {
    if (*cap >= floats) return *buf;
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) return NULL;
    free(*buf);
    *buf = p;
    *cap = floats;
    return p;
}

/* ---- packing ---- */

/* Packs rows [i0, i0+mc) x columns [p0, p0+kc) of op(A) into MR-row panels
 * (panel q at dst + q * GEMM_MR * kc, rows past mc zero-filled). */
static void pack_a(bool trans, const float *a, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
                   int64_t kc, float *restrict dst) {
    if (!trans) {
        for (int64_t ip = 0; ip < mc; ip += GEMM_MR) {
            int mr = (int)min64(GEMM_MR, mc - ip);
            const float *src = a + (i0 + ip) * lda + p0;
            float *restrict d = dst + ip * kc;
            for (int64_t p = 0; p < kc; p++)
                for (int r = 0; r < GEMM_MR; r++)
                    d[p * GEMM_MR + r] = r < mr ? src[r * lda + p] : 0.0f;
        }
        return;
    }
    /* A stored K x M: walk k outermost so each source row is read once. */
    for (int64_t p = 0; p < kc; p++) {
        const float *row = a + (p0 + p) * lda + i0;
        for (int64_t ip = 0; ip < mc; ip += GEMM_MR) {
            float *restrict d = dst + ip * kc + p * GEMM_MR;
            for (int r = 0; r < GEMM_MR; r++) d[r] = ip + r < mc ? row[ip + r] : 0.0f;
        }
    }
}

/* Packs columns [j, j+nr) x rows [p0, p0+kc) of op(B) into one panel. */
static void pack_b_panel(bool trans, const float *b, int64_t ldb, int64_t j, int nr, int64_t p0,
                         int64_t kc, float *restrict d) {
    int w = gemm_b_panel_width(nr);
    if (!trans) {
        const float *src = b + p0 * ldb + j;
        if (nr == GEMM_NR) {
            for (int64_t p = 0; p < kc; p++)
                for (int c = 0; c < GEMM_NR; c++) d[p * GEMM_NR + c] = src[p * ldb + c];
        } else {
            for (int64_t p = 0; p < kc; p++)
                for (int c = 0; c < w; c++) d[p * w + c] = c < nr ? src[p * ldb + c] : 0.0f;
        }
    } else {
        const float *src = b + j * ldb + p0;
        for (int c = 0; c < w; c++) {
            if (c < nr)
                for (int64_t p = 0; p < kc; p++) d[p * w + c] = src[c * ldb + p];
            else
                for (int64_t p = 0; p < kc; p++) d[p * w + c] = 0.0f;
        }
    }
}

/* ---- portable micro-kernel ---- */

static void microkernel_portable(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                                 float alpha, float beta, int mr, int nr) {
    float acc[GEMM_MR][GEMM_NR] = {{0}};
    if (gemm_b_panel_width(nr) == GEMM_NR) {
        for (int64_t p = 0; p < kc; p++, a += GEMM_MR, b += GEMM_NR)
            for (int i = 0; i < GEMM_MR; i++)
                for (int j = 0; j < GEMM_NR; j++) acc[i][j] += a[i] * b[j];
    } else {
        for (int64_t p = 0; p < kc; p++, a += GEMM_MR, b += 8)
            for (int i = 0; i < GEMM_MR; i++)
                for (int j = 0; j < 8; j++) acc[i][j] += a[i] * b[j];
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float r = alpha * acc[i][j];
            c[i * ldc + j] = beta == 0.0f ? r : beta * c[i * ldc + j] + r;
        }
}

/* The three routines the driver needs, chosen once per call. */
typedef struct GemmImpl {
    gemm_microkernel_fn kernel;
    void (*pack_a)(bool trans, const float *a, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
                   int64_t kc, float *dst);
    void (*pack_b_panel)(bool trans, const float *b, int64_t ldb, int64_t j, int nr, int64_t p0,
                         int64_t kc, float *dst);
} GemmImpl;

static const GemmImpl g_portable = {microkernel_portable, pack_a, pack_b_panel};
static const GemmImpl g_avx2 = {gemm_microkernel_avx2, gemm_pack_a_avx2, gemm_pack_b_panel_avx2};

static const GemmImpl *active_impl(void) {
    return hg_cpu_has_avx2_fma() ? &g_avx2 : &g_portable;
}

const char *gemm_kernel_name(void) {
    return active_impl() == &g_avx2 ? "avx2-fma" : "portable";
}

/* ---- team barrier ----
 * OpenMP's barrier spins without yielding the CPU. When the machine runs more
 * threads than cores, a thread that waits for a preempted teammate then burns
 * its whole time slice, and a product slows down tenfold. This barrier spins
 * briefly and then yields, so the preempted teammate gets the core back. */
typedef struct TeamBarrier {
    atomic_int arrived;
    atomic_int phase;
    atomic_int nthreads;
} TeamBarrier;

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* `phase` is the caller's copy of the barrier phase (starts at 0). */
static void team_barrier_wait(TeamBarrier *bar, int *phase) {
    int next = *phase + 1, nthreads = atomic_load_explicit(&bar->nthreads, memory_order_relaxed);
    *phase = next;
    if (nthreads == 1) return;
    if (atomic_fetch_add_explicit(&bar->arrived, 1, memory_order_acq_rel) == nthreads - 1) {
        atomic_store_explicit(&bar->arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&bar->phase, next, memory_order_release);
        return;
    }
    for (int spins = 0; atomic_load_explicit(&bar->phase, memory_order_acquire) != next; spins++) {
        if (spins < 2000)
            cpu_relax();
        else
            sched_yield();
    }
}

/* ---- driver ---- */

typedef struct GemmProblem {
    bool trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    int64_t lda, ldb, ldc;
    float *c;
    int64_t kc_max, nc_max;
    float *bpack; /* shared by the team */
    const GemmImpl *impl;
    TeamBarrier *barrier;
} GemmProblem;

/* C[ic:ic+mc, jc + panels jp_lo..jp_hi] with the packed A block and B slice. */
static void macro_kernel(const GemmProblem *pr, int64_t ic, int64_t mc, int64_t jc, int64_t nc,
                         int64_t jp_lo, int64_t jp_hi, int64_t kc, const float *apack, float beta) {
    for (int64_t jp = jp_lo; jp < jp_hi; jp++) {
        int nr = (int)min64(GEMM_NR, nc - jp * GEMM_NR);
        const float *bp = pr->bpack + jp * kc * GEMM_NR;
        float *cj = pr->c + ic * pr->ldc + jc + jp * GEMM_NR;
        for (int64_t ip = 0; ip < mc; ip += GEMM_MR) {
            int mr = (int)min64(GEMM_MR, mc - ip);
            pr->impl->kernel(kc, apack + ip * kc, bp, cj + ip * pr->ldc, pr->ldc, pr->alpha, beta,
                             mr, nr);
        }
    }
}

/* The whole blocked product as seen by thread t of T (called inside the team). */
static void run_thread(const GemmProblem *pr, float *apack, int t, int T, int *phase) {
    int64_t m = pr->m, n = pr->n, k = pr->k;
    int64_t mp = ceil_div(m, GEMM_MR);
    for (int64_t jc = 0; jc < n; jc += pr->nc_max) {
        int64_t nc = min64(pr->nc_max, n - jc);
        int64_t np = ceil_div(nc, GEMM_NR);
        for (int64_t p0 = 0; p0 < k; p0 += pr->kc_max) {
            int64_t kc = min64(pr->kc_max, k - p0);
            float beta = p0 == 0 ? pr->beta : 1.0f;

            for (int64_t jp = np * t / T; jp < np * (t + 1) / T; jp++)
                pr->impl->pack_b_panel(pr->trans_b, pr->b, pr->ldb, jc + jp * GEMM_NR,
                                       (int)min64(GEMM_NR, nc - jp * GEMM_NR), p0, kc,
                                       pr->bpack + jp * kc * GEMM_NR);
            team_barrier_wait(pr->barrier, phase); /* B slice complete */

            /* Split rows in whole MR panels; when there are too few row panels
             * to keep every thread busy, split the B panels instead. */
            int64_t i_lo = 0, i_hi = m, jp_lo = 0, jp_hi = np;
            if (T == 1 || mp >= 4 * T || np < 2 * T) {
                i_lo = min64(m, mp * t / T * GEMM_MR);
                i_hi = min64(m, mp * (t + 1) / T * GEMM_MR);
            } else {
                jp_lo = np * t / T;
                jp_hi = np * (t + 1) / T;
            }
            int64_t rows = i_hi - i_lo;
            if (rows > 0 && jp_hi > jp_lo) {
                /* Equal MC blocks (in whole panels) rather than a short last one. */
                int64_t nblocks = ceil_div(rows, g_mc);
                int64_t mc_step = ceil_div(ceil_div(rows, nblocks), GEMM_MR) * GEMM_MR;
                for (int64_t ic = i_lo; ic < i_hi; ic += mc_step) {
                    int64_t mc = min64(mc_step, i_hi - ic);
                    pr->impl->pack_a(pr->trans_a, pr->a, pr->lda, ic, mc, p0, kc, apack);
                    macro_kernel(pr, ic, mc, jc, nc, jp_lo, jp_hi, kc, apack, beta);
                }
            }
            team_barrier_wait(pr->barrier, phase); /* B slice no longer read */
        }
    }
}

static void scale_c(int64_t m, int64_t n, float beta, float *c, int64_t ldc) {
    for (int64_t i = 0; i < m; i++) {
        float *row = c + i * ldc;
        if (beta == 0.0f)
            memset(row, 0, sizeof(float) * (size_t)n);
        else if (beta != 1.0f)
            for (int64_t j = 0; j < n; j++) row[j] *= beta;
    }
}

static int choose_threads(int64_t m, int64_t n, int64_t k) {
    if (omp_in_parallel()) return 1;
    if ((double)m * (double)n * (double)k < GEMM_PARALLEL_MIN_MACS) return 1;
    return omp_get_max_threads();
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
          int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) {
        scale_c(m, n, beta, c, ldc);
        return;
    }
    GemmProblem pr = {
        .trans_a = trans_a,
        .trans_b = trans_b,
        .m = m,
        .n = n,
        .k = k,
        .alpha = alpha,
        .beta = beta,
        .a = a,
        .b = b,
        .lda = lda,
        .ldb = ldb,
        .ldc = ldc,
        .c = c,
        .impl = active_impl(),
    };
    /* Equal K blocks (depend on k only, so results do not depend on threads). */
    int64_t kblocks = ceil_div(k, g_kc);
    pr.kc_max = ceil_div(k, kblocks);
    pr.nc_max = min64(g_nc, ceil_div(n, GEMM_NR) * GEMM_NR);
    int64_t mc_max = min64(g_mc, ceil_div(m, GEMM_MR) * GEMM_MR);

    PackBuffers *master = thread_buffers();
    pr.bpack =
        master ? grow_buffer(&master->b, &master->b_cap, (size_t)(pr.kc_max * pr.nc_max)) : NULL;
    if (!pr.bpack) {
        /* Out of memory: the unblocked loop needs no buffers. */
        gemm_reference(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }

    int nthreads = choose_threads(m, n, k);
    if (nthreads == 1) { /* no team: small products, or called from a parallel region */
        float *apack = grow_buffer(&master->a, &master->a_cap, (size_t)(mc_max * pr.kc_max));
        if (apack) {
            TeamBarrier alone = {.nthreads = 1};
            int phase = 0;
            pr.barrier = &alone;
            run_thread(&pr, apack, 0, 1, &phase);
        } else {
            gemm_reference(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        }
        return;
    }
    /* The team synchronizes only through team_barrier_wait (see there). */
    atomic_int failed = 0;
    TeamBarrier barrier = {.nthreads = nthreads};
    pr.barrier = &barrier;
#pragma omp parallel num_threads(nthreads)
    {
        int t = omp_get_thread_num(), phase = 0;
        /* The team may be smaller than asked for; all members store the same size. */
        atomic_store_explicit(&barrier.nthreads, omp_get_num_threads(), memory_order_relaxed);
        PackBuffers *mine = thread_buffers();
        float *apack =
            mine ? grow_buffer(&mine->a, &mine->a_cap, (size_t)(mc_max * pr.kc_max)) : NULL;
        if (!apack) atomic_store(&failed, 1);
        team_barrier_wait(&barrier, &phase);
        if (!atomic_load(&failed)) run_thread(&pr, apack, t, omp_get_num_threads(), &phase);
    }
    if (failed) gemm_reference(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm_reference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0.0;
            for (int64_t p = 0; p < k; p++) {
                double x = trans_a ? a[p * lda + i] : a[i * lda + p];
                double y = trans_b ? b[j * ldb + p] : b[p * ldb + j];
                acc += x * y;
            }
            double r = (double)alpha * acc;
            if (beta != 0.0f) r += (double)beta * c[i * ldc + j];
            c[i * ldc + j] = (float)r;
        }
}
