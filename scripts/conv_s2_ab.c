// conv_s2_ab.c: the stride-2 convolutions of this checkout against another revision's conv2d.c (built by
// scripts/conv_s2_ab.sh): forward, input gradient and weight gradient on the bundled JEM's stride-2 layers, batch 64,
// best of 15 × 10 calls, old and new alternating, and whether the outputs are bit-identical.
#include "jem_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
void old_conv2d_forward(float*, const float*, const float*, const float*, int, int, int, int, int, int, int, int, int, int, int, float*);
void old_conv2d_backward_input(float*, const float*, const float*, int, int, int, int, int, int, int, int, int, int, int, float*);
void old_conv2d_backward_weight(float*, float*, const float*, const float*, int, int, int, int, int, int, int, int, int, int, int, float*);
static float* rnd(size_t n, unsigned* s) { float* p = malloc(n * 4); for (size_t i = 0; i < n; i++) { *s = *s * 1664525u + 1013904223u; p[i] = ((*s >> 8) / 16777216.f) * 2 - 1; } return p; }
int main(void) {
    int sh[][6] = { {64,64,28,28,64,3}, {64,128,14,14,128,3}, {64,32,28,28,64,1}, {64,64,14,14,128,1} };  // N C H W OC K, stride 2: each block's second 3×3 and the 1×1 shortcuts
    unsigned s = 3; omp_set_num_threads(2); jem_runtime_init(2);
    for (int k = 0; k < 4; k++) {
        int N = sh[k][0], C = sh[k][1], H = sh[k][2], W = sh[k][3], OC = sh[k][4], K = sh[k][5], pad = K / 2;
        int OH = (H + 2 * pad - K) / 2 + 1, OW = (W + 2 * pad - K) / 2 + 1;
        float* x = rnd((size_t)N*C*H*W, &s), *w = rnd((size_t)OC*C*K*K, &s), *b = rnd(OC, &s), *dy = rnd((size_t)N*OC*OH*OW, &s);
        float* ws = calloc(jem_conv2d_workspace(C, K, K, OH, OW, OC, 2), 4);
        float* y1 = malloc((size_t)N*OC*OH*OW*4), *y2 = malloc((size_t)N*OC*OH*OW*4);
        float* g1 = calloc((size_t)OC*C*K*K, 4), *g2 = calloc((size_t)OC*C*K*K, 4), *gb1 = calloc(OC, 4), *gb2 = calloc(OC, 4);
        float* d1 = malloc((size_t)N*C*H*W*4), *d2 = malloc((size_t)N*C*H*W*4);
        double bo = 1e9, bn = 1e9, wo = 1e9, wn = 1e9, io = 1e9, in = 1e9;
        for (int r = 0; r < 15; r++) {
            double t0 = omp_get_wtime(); for (int i = 0; i < 10; i++) old_conv2d_forward(y2, x, w, b, N, C, H, W, OC, K, K, 2, pad, OH, OW, ws);
            double t1 = omp_get_wtime(); for (int i = 0; i < 10; i++) jem_conv2d_forward(y1, x, w, b, N, C, H, W, OC, K, K, 2, pad, OH, OW, ws);
            double t2 = omp_get_wtime(); for (int i = 0; i < 10; i++) old_conv2d_backward_weight(g2, gb2, dy, x, N, C, H, W, OC, K, K, 2, pad, OH, OW, ws);
            double t3 = omp_get_wtime(); for (int i = 0; i < 10; i++) jem_conv2d_backward_weight(g1, gb1, dy, x, N, C, H, W, OC, K, K, 2, pad, OH, OW, ws);
            double t4 = omp_get_wtime(); for (int i = 0; i < 10; i++) old_conv2d_backward_input(d2, dy, w, N, C, H, W, OC, K, K, 2, pad, OH, OW, ws);
            double t5 = omp_get_wtime(); for (int i = 0; i < 10; i++) jem_conv2d_backward_input(d1, dy, w, N, C, H, W, OC, K, K, 2, pad, OH, OW, ws);
            double t6 = omp_get_wtime(); if (t5 - t4 < io) io = t5 - t4; if (t6 - t5 < in) in = t6 - t5;
            if (t1 - t0 < bo) bo = t1 - t0; if (t2 - t1 < bn) bn = t2 - t1; if (t3 - t2 < wo) wo = t3 - t2; if (t4 - t3 < wn) wn = t4 - t3;
        }
        printf("| %dx%d, %d→%d, %dx%d stride 2 | forward | %.2f | %.2f | %.2f× | %s |\n", H, W, C, OC, K, K, bo * 100, bn * 100, bo / bn, memcmp(y1, y2, (size_t)N*OC*OH*OW*4) ? "DIFFERENT" : "bit-identical");
        printf("| %dx%d, %d→%d, %dx%d stride 2 | input grad | %.2f | %.2f | %.2f× | %s |\n", H, W, C, OC, K, K, io * 100, in * 100, io / in, memcmp(d1, d2, (size_t)N*C*H*W*4) ? "DIFFERENT" : "bit-identical");
        printf("| %dx%d, %d→%d, %dx%d stride 2 | weight grad | %.2f | %.2f | %.2f× | %s |\n", H, W, C, OC, K, K, wo * 100, wn * 100, wo / wn, memcmp(g1, g2, (size_t)OC*C*K*K*4) ? "DIFFERENT" : "bit-identical");
    }
    return 0;
}
