// Per-layer forward time of the bundled JEM's convolutions (WRN-10-2, 1×28×28, batch 64, bias and
// LeakyReLU 0.2 as the network runs them): best of 15 × 10 calls of jem_conv2d_forward_act per layer.
// Argument: 1 for batch-invariant mode. Built and run by scripts/conv_layers.sh.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include "jem_kernels.h"

static float* rnd(size_t n) { float* p = malloc(n * 4); for (size_t i = 0; i < n; i++) p[i] = (rand() / (float)RAND_MAX) * 2 - 1; return p; }

int main(int argc, char** argv) {
    jem_set_batch_invariant(argc > 1 ? atoi(argv[1]) : 0);
    // C, OC, input size, kernel, stride, pad: stem, then each block's conv1, conv2 (stride on conv2) and 1×1 shortcut.
    static const int layers[][6] = {{1, 16, 28, 3, 1, 1}, {16, 32, 28, 3, 1, 1}, {32, 32, 28, 3, 1, 1}, {16, 32, 28, 1, 1, 0},
                                    {32, 64, 28, 3, 1, 1}, {64, 64, 28, 3, 2, 1}, {32, 64, 28, 1, 2, 0},
                                    {64, 128, 14, 3, 1, 1}, {128, 128, 14, 3, 2, 1}, {64, 128, 14, 1, 2, 0}};
    const int N = 64, T = omp_get_max_threads();
    double total = 0;
    printf("| layer | path | robust-eval ms |\n|---|---|---:|\n");
    for (size_t s = 0; s < sizeof layers / sizeof layers[0]; s++) {
        const int C = layers[s][0], OC = layers[s][1], H = layers[s][2], K = layers[s][3], st = layers[s][4], p = layers[s][5];
        const int OH = (H + 2 * p - K) / st + 1;
        float *x = rnd((size_t)N * C * H * H), *w = rnd((size_t)OC * C * K * K), *b = rnd(OC), *o = malloc((size_t)N * OC * OH * OH * 4);
        size_t ws = jem_conv2d_workspace(C, K, K, OH, OH, OC, T), w2 = jem_winograd_workspace(C, OC, H, H, T);
        float* work = malloc((ws > w2 ? ws : w2) * 4 + 64);
        double best = 1e9;
        for (int r = 0; r < 15; r++) {
            double t = omp_get_wtime();
            for (int c = 0; c < 10; c++) jem_conv2d_forward_act(o, x, w, b, N, C, H, H, OC, K, K, st, p, OH, OH, work, 1, 0.2f);
            t = (omp_get_wtime() - t) / 10;
            if (t < best) best = t;
        }
        total += best * 1e3;
        printf("| %d→%d, %d×%d, %d×%d stride %d | %s | %.2f |\n", C, OC, H, H, K, K, st,
               jem_conv2d_uses_winograd(N, C, H, H, OC, K, K, st, p) ? "Winograd" : jem_conv2d_uses_direct(C, OC, K, K, st, p) ? "direct" : "im2col", best * 1e3);
        free(x); free(w); free(b); free(o); free(work);
    }
    printf("| all ten | | %.2f |\n", total);
    return 0;
}
