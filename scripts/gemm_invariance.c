// gemm_invariance.c: the checks behind docs/PERFORMANCE.md "A GEMM of its own for batch-invariant
// mode", on the WRN-10-2 Winograd GEMM shapes (OC, K = C, TI tiles per image, G images per chunk):
//  1. OpenBLAS: does one image's block of columns keep its bits when the image sits at another
//     position of a call of the same shape, or in a call of its own? (It does not.)
//  2. jem_sgemm_invariant: bitwise equal to its oracle, and an image alone equal to it in the chunk.
//  3. Single-thread GFLOP/s: one OpenBLAS call per image, jem_sgemm_invariant over the chunk, one
//     OpenBLAS call over the chunk.
// Build and run (from the repository root):
//   gcc -O3 -march=x86-64-v3 scripts/gemm_invariance.c Sources/CJEMKernels/gemm_invariant.c \
//       -ISources/CJEMKernels/include -lopenblas -o /tmp/gemm_invariance && /tmp/gemm_invariance
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "jem_kernels.h"

void openblas_set_num_threads(int);
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static float rnd(void) { return (float)rand() / RAND_MAX - 0.5f; }
static void blas(int M, int N, int K, const float* A, const float* B, int ldb, float* C, int ldc) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.f, A, K, B, ldb, 1.f, C, ldc);
}

int main(void) {
    openblas_set_num_threads(1);
    const int shapes[][4] = { {16, 32, 196, 2}, {32, 16, 196, 2}, {32, 32, 196, 2}, {32, 64, 49, 6}, {64, 32, 49, 6},
                              {64, 64, 49, 6}, {64, 128, 16, 16}, {128, 64, 16, 16}, {128, 128, 16, 16} };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int OC = shapes[s][0], K = shapes[s][1], TI = shapes[s][2], G = shapes[s][3], N = G * TI, im = G - 1;
        float *A = malloc(sizeof(float) * OC * K), *B = malloc(sizeof(float) * K * N), *img = malloc(sizeof(float) * K * TI);
        float *C = calloc((size_t)OC * N, 4), *R = calloc((size_t)OC * N, 4), *C1 = calloc((size_t)OC * TI, 4), *ref = calloc((size_t)OC * TI, 4);
        for (int i = 0; i < OC * K; i++) A[i] = rnd();
        for (int i = 0; i < K * TI; i++) img[i] = rnd();
        // 1. OpenBLAS: the image at position 0 and at position G − 1 of the chunk, and alone.
        int blas_moves = 0;
        for (int pos = 0; pos < G; pos += G - 1 > 0 ? G - 1 : 1) {
            for (int i = 0; i < K * N; i++) B[i] = rnd();
            for (int k = 0; k < K; k++) memcpy(B + (size_t)k * N + pos * TI, img + (size_t)k * TI, sizeof(float) * TI);
            memset(C, 0, sizeof(float) * OC * N);
            blas(OC, N, K, A, B, N, C, N);
            for (int o = 0; o < OC; o++) {
                if (pos == 0) memcpy(ref + o * TI, C + (size_t)o * N, sizeof(float) * TI);
                else blas_moves |= memcmp(ref + o * TI, C + (size_t)o * N + pos * TI, sizeof(float) * TI) != 0;
            }
            if (G == 1) break;
        }
        blas(OC, TI, K, A, img, TI, C1, TI);
        const int blas_alone = memcmp(C1, ref, sizeof(float) * OC * TI) != 0;
        // 2. The invariant kernel: oracle, and the last image alone vs in the chunk.
        memset(C, 0, sizeof(float) * OC * N);
        jem_sgemm_invariant(OC, N, K, A, K, B, N, C, N);
        jem_sgemm_invariant_reference(OC, N, K, A, K, B, N, R, N);
        const int oracle = memcmp(C, R, sizeof(float) * OC * N) == 0;
        memset(C1, 0, sizeof(float) * OC * TI);
        jem_sgemm_invariant(OC, TI, K, A, K, B + im * TI, N, C1, TI);
        int alone = 1;
        for (int o = 0; o < OC; o++) alone &= memcmp(C1 + o * TI, C + (size_t)o * N + im * TI, sizeof(float) * TI) == 0;
        // 3. Speed.
        const int reps = 1000000000 / (2 * OC * K * N) + 1;
        double t0 = now();
        for (int r = 0; r < reps; r++) for (int i = 0; i < G; i++) blas(OC, TI, K, A, B + i * TI, N, C + i * TI, N);
        double t1 = now();
        for (int r = 0; r < reps; r++) jem_sgemm_invariant(OC, N, K, A, K, B, N, C, N);
        double t2 = now();
        for (int r = 0; r < reps; r++) blas(OC, N, K, A, B, N, C, N);
        double t3 = now();
        const double fl = 2.0 * OC * K * N * reps / 1e9;
        printf("OC %3d K %3d TI %3d G %2d | OpenBLAS bits move with position: %s, alone differs: %s | invariant kernel = oracle: %s, "
               "alone = in chunk: %s | GFLOP/s per-image BLAS %.1f, invariant %.1f, chunk BLAS %.1f\n",
               OC, K, TI, G, blas_moves ? "yes" : "no", blas_alone ? "yes" : "no", oracle ? "yes" : "no", alone ? "yes" : "no",
               fl / (t1 - t0), fl / (t2 - t1), fl / (t3 - t2));
        free(A); free(B); free(img); free(C); free(R); free(C1); free(ref);
    }
    return 0;
}
