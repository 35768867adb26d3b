// The batch-invariant GEMM's AVX2 and AVX-512 blocks against each other (and OpenBLAS's sgemm, β = 1,
// for scale) on the Winograd GEMM shapes of the bundled WRN-10-2 (OC × T × C per chunk): bitwise
// equality of the two paths, then the best of 15 timings of REPS calls each, the paths alternating.
// Then the im2col GEMM shapes of the same network, one image per call as in conv2d.c.
// Build and run: bash scripts/gemm_isa_ab.sh [THREADS]   (one GEMM per thread, as in winograd_run)
#include "jem_kernels.h"
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

typedef struct { int M, N, K; const char* what; } Shape;

int main(void) {
    if (!jem_sgemm_invariant_isa()) { printf("this CPU has no AVX-512F (or JEM_AVX512=0): nothing to compare\n"); return 0; }
    const Shape shapes[] = {
        { 32, 392, 16, "28x28 16->32, chunk of 2 images" }, { 32, 392, 32, "28x28 32->32" },
        { 64, 294, 64, "14x14 64->64, 6 images" }, { 32, 294, 64, "14x14 input grad 64->32" },
        { 128, 256, 128, "7x7 128->128, 16 images" }, { 64, 256, 128, "7x7 input grad 128->64" },
        { 128, 16, 128, "7x7, one image" }, { 64, 49, 64, "14x14, one image" },
        // im2col GEMMs (one image per call): the stem, the stride-2 3x3 (each block's second
        // convolution, as in the reference's wide_basic), the 1x1 shortcuts, and input gradients
        { 16, 784, 9, "stem 1->16 at 28x28" }, { 64, 196, 576, "3x3/2 64->64 to 14x14" },
        { 128, 49, 1152, "3x3/2 128->128 to 7x7" }, { 64, 196, 32, "1x1/2 shortcut 32->64" },
        { 9, 784, 16, "stem input grad" }, { 576, 196, 64, "3x3/2 input grad 64<-64" },
        { 1152, 49, 128, "3x3/2 input grad 128<-128" },
    };
    const int T = omp_get_max_threads(), REPS = 20;
    srand(1);
    printf("%-34s %10s %10s %10s %8s   (GFLOP/s, %d thread(s), best of 15)\n", "shape (M x N x K)", "AVX2", "AVX-512", "OpenBLAS", "512/AVX2", T);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
        float *A = malloc(sizeof(float) * M * K * T), *B = malloc(sizeof(float) * K * N * T);
        float *C0 = malloc(sizeof(float) * M * N * T), *C1 = malloc(sizeof(float) * M * N * T);
        for (int i = 0; i < M * K * T; i++) A[i] = rand() / (float)RAND_MAX - 0.5f;
        for (int i = 0; i < K * N * T; i++) B[i] = rand() / (float)RAND_MAX - 0.5f;
        for (int i = 0; i < M * N * T; i++) C0[i] = C1[i] = rand() / (float)RAND_MAX - 0.5f;
        jem_sgemm_invariant_set_isa(0); jem_sgemm_invariant(M, N, K, A, K, B, N, C0, N);
        jem_sgemm_invariant_set_isa(1); jem_sgemm_invariant(M, N, K, A, K, B, N, C1, N);
        if (memcmp(C0, C1, sizeof(float) * M * N)) { printf("%s: the two paths differ\n", shapes[s].what); return 1; }
        double best[3] = { 1e9, 1e9, 1e9 };
        for (int round = 0; round < 15; round++) {
            for (int path = 0; path < 3; path++) {
                if (path < 2) jem_sgemm_invariant_set_isa(path);
                double t0 = now();
                #pragma omp parallel
                {
                    const int t = omp_get_thread_num();
                    const float* a = A + (size_t)t * M * K; const float* b = B + (size_t)t * K * N; float* c = C0 + (size_t)t * M * N;
                    for (int r = 0; r < REPS; r++) {
                        if (path < 2) jem_sgemm_invariant(M, N, K, a, K, b, N, c, N);
                        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.f, a, K, b, N, 1.f, c, N);
                    }
                }
                double dt = now() - t0;
                if (dt < best[path]) best[path] = dt;
            }
        }
        const double flop = 2.0 * M * N * K * REPS * T;
        char label[64]; snprintf(label, sizeof label, "%dx%dx%d", M, N, K);
        printf("%-14s %-19s %10.1f %10.1f %10.1f %7.2fx\n", label, shapes[s].what, flop / best[0] * 1e-9, flop / best[1] * 1e-9,
               flop / best[2] * 1e-9, best[0] / best[1]);
        free(A); free(B); free(C0); free(C1);
    }
    return 0;
}
