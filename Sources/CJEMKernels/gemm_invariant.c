// gemm_invariant.c: C (M, N) = A (M, K) · B (K, N), row-major, for batch-invariant mode.
// Every element is one fused multiply-add chain over k = 0, 1, ..., K−1 starting from +0, whatever
// N is and wherever its column sits (full vectors or the masked tail: a lane of a vector FMA
// rounds exactly like a scalar one). So one call can hold a whole chunk of images and each image's
// columns come out bit-identical to a call holding that image alone. OpenBLAS gives no such
// promise: its results for a column change with the call's shape and the column's position, which
// is why batch-invariant mode used to issue one small GEMM per image.
#include "jem_kernels.h"
#include <immintrin.h>
#include <stdlib.h>

static inline __m256i tail_mask(int n) {   // lanes 0..n−1 on (n may be ≤ 0 or ≥ 8)
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes);
}

// A block of 4 rows × 24 columns (12 accumulators); `cols` < 24 masks the tail.
static inline __attribute__((always_inline))
void block4x24(int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc, int cols, int masked) {
    __m256i m0 = tail_mask(cols), m1 = tail_mask(cols - 8), m2 = tail_mask(cols - 16);
    __m256 c[4][3];
    for (int r = 0; r < 4; r++) c[r][0] = c[r][1] = c[r][2] = _mm256_setzero_ps();
    const float *a0 = A, *a1 = A + lda, *a2 = A + 2 * (size_t)lda, *a3 = A + 3 * (size_t)lda;
    for (int k = 0; k < K; k++) {
        const float* b = B + (size_t)k * ldb;
        __m256 b0 = masked ? _mm256_maskload_ps(b, m0) : _mm256_loadu_ps(b);
        __m256 b1 = masked ? _mm256_maskload_ps(b + 8, m1) : _mm256_loadu_ps(b + 8);
        __m256 b2 = masked ? _mm256_maskload_ps(b + 16, m2) : _mm256_loadu_ps(b + 16);
        __m256 a;
        a = _mm256_broadcast_ss(a0 + k);
        c[0][0] = _mm256_fmadd_ps(a, b0, c[0][0]); c[0][1] = _mm256_fmadd_ps(a, b1, c[0][1]); c[0][2] = _mm256_fmadd_ps(a, b2, c[0][2]);
        a = _mm256_broadcast_ss(a1 + k);
        c[1][0] = _mm256_fmadd_ps(a, b0, c[1][0]); c[1][1] = _mm256_fmadd_ps(a, b1, c[1][1]); c[1][2] = _mm256_fmadd_ps(a, b2, c[1][2]);
        a = _mm256_broadcast_ss(a2 + k);
        c[2][0] = _mm256_fmadd_ps(a, b0, c[2][0]); c[2][1] = _mm256_fmadd_ps(a, b1, c[2][1]); c[2][2] = _mm256_fmadd_ps(a, b2, c[2][2]);
        a = _mm256_broadcast_ss(a3 + k);
        c[3][0] = _mm256_fmadd_ps(a, b0, c[3][0]); c[3][1] = _mm256_fmadd_ps(a, b1, c[3][1]); c[3][2] = _mm256_fmadd_ps(a, b2, c[3][2]);
    }
    for (int r = 0; r < 4; r++) {
        float* cr = C + (size_t)r * ldc;
        if (masked) {
            _mm256_maskstore_ps(cr, m0, c[r][0]); _mm256_maskstore_ps(cr + 8, m1, c[r][1]); _mm256_maskstore_ps(cr + 16, m2, c[r][2]);
        } else {
            _mm256_storeu_ps(cr, c[r][0]); _mm256_storeu_ps(cr + 8, c[r][1]); _mm256_storeu_ps(cr + 16, c[r][2]);
        }
    }
}

// One row × 24 columns (the rows left over when M is not a multiple of 4).
static void block1x24(int K, const float* A, const float* B, int ldb, float* C, int cols) {
    __m256i m0 = tail_mask(cols), m1 = tail_mask(cols - 8), m2 = tail_mask(cols - 16);
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0;
    for (int k = 0; k < K; k++) {
        const float* b = B + (size_t)k * ldb;
        __m256 a = _mm256_broadcast_ss(A + k);
        c0 = _mm256_fmadd_ps(a, _mm256_maskload_ps(b, m0), c0);
        c1 = _mm256_fmadd_ps(a, _mm256_maskload_ps(b + 8, m1), c1);
        c2 = _mm256_fmadd_ps(a, _mm256_maskload_ps(b + 16, m2), c2);
    }
    _mm256_maskstore_ps(C, m0, c0); _mm256_maskstore_ps(C + 8, m1, c1); _mm256_maskstore_ps(C + 16, m2, c2);
}

// The same blocks with AVX-512 (for CPUs that have it: chosen at run time, since the package is
// compiled for x86-64-v3): R rows × NV vectors of 16 columns, R = 6 or 4, NV = 4 for full blocks,
// fewer for the tail (masked lanes load zeros and are not stored). Each element is the same FMA chain
// as in the AVX2 blocks and the oracle, so the bits do not depend on the path or the blocking.
#define AVX512 __attribute__((target("avx512f")))

static inline AVX512 __mmask16 mask16(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1); }

static inline AVX512 __attribute__((always_inline))
void blockrxv(int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc, int cols, const int R, const int NV) {
    __mmask16 m[4];
    for (int v = 0; v < 4; v++) m[v] = mask16(cols - 16 * v);
    __m512 c[6][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) c[r][v] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float* b = B + (size_t)k * ldb;
        __m512 bv[4];
        for (int v = 0; v < NV; v++) bv[v] = _mm512_maskz_loadu_ps(m[v], b + 16 * v);
        for (int r = 0; r < R; r++) {
            const __m512 x = _mm512_set1_ps(A[(size_t)r * lda + k]);
            for (int v = 0; v < NV; v++) c[r][v] = _mm512_fmadd_ps(x, bv[v], c[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(C + (size_t)r * ldc + 16 * v, m[v], c[r][v]);
}

#define BLOCK_CASES(R) \
    switch (nv) {   /* constant R and NV per case: the blocks unroll */ \
        case 4: blockrxv(K, a, lda, b, ldb, c, ldc, cols, R, 4); break; \
        case 3: blockrxv(K, a, lda, b, ldb, c, ldc, cols, R, 3); break; \
        case 2: blockrxv(K, a, lda, b, ldb, c, ldc, cols, R, 2); break; \
        default: blockrxv(K, a, lda, b, ldb, c, ldc, cols, R, 1); break; \
    }

// Rows in blocks of 6 (24 accumulators: 10 loads per 24 FMAs against 8 per 16 for blocks of 4), as
// many as leave a multiple of 4 for blocks of 4 (M = 32: 4 × 6 + 2 × 4), then one block of the 1–3
// rows left (M = 49: 7 × 6 + 4 + 3). Against
// blocks of 4 only, one thread, the Winograd shapes of WRN-10-2: 0.98–1.18× (scripts/gemm_isa_ab.sh's
// shapes, in-process A/B, 2026-11-29).
static AVX512 void sgemm_invariant_avx512(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc) {
    int k6 = M / 6;
    while (k6 > 0 && (M - 6 * k6) % 4 != 0) k6--;
    for (int j = 0; j < N; j += 64) {
        const int cols = N - j < 64 ? N - j : 64, nv = (cols + 15) / 16;
        const float* b = B + j;
        int i = 0;
        for (; i < 6 * k6; i += 6) { const float* a = A + (size_t)i * lda; float* c = C + (size_t)i * ldc + j; BLOCK_CASES(6) }
        for (; i + 4 <= M; i += 4) { const float* a = A + (size_t)i * lda; float* c = C + (size_t)i * ldc + j; BLOCK_CASES(4) }
        if (i < M) {   // 1–3 rows left: one block of them
            const float* a = A + (size_t)i * lda; float* c = C + (size_t)i * ldc + j;
            switch (M - i) { case 3: BLOCK_CASES(3) break; case 2: BLOCK_CASES(2) break; default: BLOCK_CASES(1) break; }
        }
    }
}

// 0: AVX2 blocks; 1: AVX-512 blocks (the CPU has AVX-512F and JEM_AVX512 is not 0). Decided when
// the library loads (before any OpenMP region reads it); set_isa is for single-threaded callers.
static int use_avx512 = 0;

void jem_sgemm_invariant_set_isa(int avx512) {
    if (avx512 < 0) {
        const char* e = getenv("JEM_AVX512");
        avx512 = !(e && e[0] == '0');
    }
    __builtin_cpu_init();
    use_avx512 = avx512 && __builtin_cpu_supports("avx512f");
}

__attribute__((constructor)) static void decide_isa(void) { jem_sgemm_invariant_set_isa(-1); }

int jem_sgemm_invariant_isa(void) { return use_avx512; }

void jem_sgemm_invariant(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc) {
    if (jem_sgemm_invariant_isa()) { sgemm_invariant_avx512(M, N, K, A, lda, B, ldb, C, ldc); return; }
    for (int j = 0; j < N; j += 24) {
        const int cols = N - j < 24 ? N - j : 24;
        int i = 0;
        for (; i + 4 <= M; i += 4) {
            if (cols == 24) block4x24(K, A + (size_t)i * lda, lda, B + j, ldb, C + (size_t)i * ldc + j, ldc, 24, 0);
            else block4x24(K, A + (size_t)i * lda, lda, B + j, ldb, C + (size_t)i * ldc + j, ldc, cols, 1);
        }
        for (; i < M; i++) block1x24(K, A + (size_t)i * lda, B + j, ldb, C + (size_t)i * ldc + j, cols);
    }
}

void jem_sgemm_invariant_reference(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0.f;
            for (int k = 0; k < K; k++) s = __builtin_fmaf(A[(size_t)i * lda + k], B[(size_t)k * ldb + j], s);
            C[(size_t)i * ldc + j] = s;
        }
}
