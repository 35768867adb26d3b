// winograd_ab.c: the Winograd kernels of this checkout against those of another revision
// (scripts/winograd_ab.sh builds it): bitwise comparison of forward (with and without LeakyReLU),
// input gradient and weight gradient on odd and even shapes at 1 and 2 threads, then, with
// arguments C H THREADS, best-of-15 timings of each pass (old and new alternating, batch 64).
#include "jem_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
size_t old_winograd_workspace(int C, int OC, int H, int W, int threads);
size_t old_winograd_wgrad_workspace(int C, int OC, int H, int W, int threads);
void old_conv3x3_winograd_forward_act(float*, const float*, const float*, const float*, int, int, int, int, int, float*, int, float);
void old_conv3x3_winograd_backward_input(float*, const float*, const float*, int, int, int, int, int, float*);
void old_conv3x3_winograd_backward_weight(float*, const float*, const float*, int, int, int, int, int, float*);
static float* rnd(size_t n, unsigned* s) { float* p = malloc(n * 4); for (size_t i = 0; i < n; i++) { *s = *s * 1664525u + 1013904223u; p[i] = ((*s >> 8) / 16777216.f) * 2 - 1; } return p; }
static int cmp(const char* what, const float* a, const float* b, size_t n) { if (memcmp(a, b, n * 4)) { for (size_t i = 0; i < n; i++) if (a[i] != b[i]) { printf("%s differs at %zu: %g vs %g\n", what, i, a[i], b[i]); break; } return 1; } return 0; }
int main(int argc, char** argv) {
    int shapes[][5] = { {4,16,14,14,32}, {6,17,7,5,20}, {19,16,4,4,24}, {64,32,28,28,32}, {64,64,14,14,64}, {64,128,7,7,128}, {3,16,1,1,16}, {2,16,2,3,16}, {5,16,9,10,18}, {7,16,32,32,16}, {1,20,3,8,16} };
    int bad = 0; unsigned s = 7;
    if (argc > 1 && argv[1][0] != 'o' && argv[1][0] != 'n') goto timing;
    if (argc > 3) {  // cycles mode: variant (old|new) C H, one thread, forward + backward input, 10 reps
        int N = 64, C = atoi(argv[2]), H = atoi(argv[3]), W = H, OC = C, old = argv[1][0] == 'o'; omp_set_num_threads(1);
        float* x = rnd((size_t)N*C*H*W, &s), *w = rnd((size_t)OC*C*9, &s), *b = rnd(OC, &s);
        float* wk = calloc(old ? old_winograd_workspace(C, OC, H, W, 2) : jem_winograd_workspace(C, OC, H, W, 2), 4);
        float* y = malloc((size_t)N*OC*H*W*4), *d = malloc((size_t)N*C*H*W*4);
        for (int i = 0; i < 10; i++) {
            if (old) { old_conv3x3_winograd_forward_act(y, x, w, b, N, C, H, W, OC, wk, 1, 0.2f); old_conv3x3_winograd_backward_input(d, y, w, N, C, H, W, OC, wk); }
            else { jem_conv3x3_winograd_forward_act(y, x, w, b, N, C, H, W, OC, wk, 1, 0.2f); jem_conv3x3_winograd_backward_input(d, y, w, N, C, H, W, OC, wk); }
        }
        return 0;
    }
    for (int th = 1; th <= 2; th++) { omp_set_num_threads(th);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int N = shapes[k][0], C = shapes[k][1], H = shapes[k][2], W = shapes[k][3], OC = shapes[k][4];
        float* x = rnd((size_t)N*C*H*W, &s), *w = rnd((size_t)OC*C*9, &s), *b = rnd(OC, &s), *dy = rnd((size_t)N*OC*H*W, &s);
        size_t ws = jem_winograd_workspace(C, OC, H, W, 2), wo = old_winograd_workspace(C, OC, H, W, 2);
        size_t gs = jem_winograd_wgrad_workspace(C, OC, H, W, 2), go = old_winograd_wgrad_workspace(C, OC, H, W, 2);
        float* wk = calloc(ws > gs ? ws : gs, 4), *wk2 = calloc(wo > go ? wo : go, 4);
        float* y1 = malloc((size_t)N*OC*H*W*4), *y2 = malloc((size_t)N*OC*H*W*4);
        const int bad0 = bad; bad = 0;
        for (int act = 0; act < 2; act++) {
            jem_conv3x3_winograd_forward_act(y1, x, w, b, N, C, H, W, OC, wk, act, 0.2f);
            old_conv3x3_winograd_forward_act(y2, x, w, b, N, C, H, W, OC, wk2, act, 0.2f);
            bad |= cmp("forward", y1, y2, (size_t)N*OC*H*W);
        }
        float* d1 = malloc((size_t)N*C*H*W*4), *d2 = malloc((size_t)N*C*H*W*4);
        jem_conv3x3_winograd_backward_input(d1, dy, w, N, C, H, W, OC, wk);
        old_conv3x3_winograd_backward_input(d2, dy, w, N, C, H, W, OC, wk2);
        bad |= cmp("dinput", d1, d2, (size_t)N*C*H*W);
        float* g1 = calloc((size_t)OC*C*9, 4), *g2 = calloc((size_t)OC*C*9, 4);
        jem_conv3x3_winograd_backward_weight(g1, dy, x, N, C, H, W, OC, wk);
        old_conv3x3_winograd_backward_weight(g2, dy, x, N, C, H, W, OC, wk2);
        bad |= cmp("dweight", g1, g2, (size_t)OC*C*9);
        printf("threads %d shape N%d C%d %dx%d OC%d: %s\n", th, N, C, H, W, OC, bad ? "DIFF" : "same");
        bad |= bad0;
    }}
timing:
    if (argc > 1) {  // timing: forward (+LeakyReLU), input gradient, weight gradient; old and new alternating
        int N = 64, C = atoi(argv[1]), H = atoi(argv[2]), W = H, OC = argc > 4 ? atoi(argv[4]) : C; omp_set_num_threads(atoi(argv[3]));
        float* x = rnd((size_t)N*C*H*W, &s), *w = rnd((size_t)OC*C*9, &s), *b = rnd(OC, &s), *dy = rnd((size_t)N*OC*H*W, &s);
        size_t wn = jem_winograd_workspace(C, OC, H, W, 2), gn = jem_winograd_wgrad_workspace(C, OC, H, W, 2);
        size_t wo = old_winograd_workspace(C, OC, H, W, 2), go = old_winograd_wgrad_workspace(C, OC, H, W, 2);
        float* wk = calloc(wn > gn ? wn : gn, 4), *wk2 = calloc(wo > go ? wo : go, 4);
        float* y = malloc((size_t)N*OC*H*W*4), *d = malloc((size_t)N*C*H*W*4), *g = calloc((size_t)OC*C*9, 4);
        double best[2][3]; for (int v = 0; v < 2; v++) for (int k = 0; k < 3; k++) best[v][k] = 1e9;
        for (int r = 0; r < 15; r++) for (int v = 0; v < 2; v++) for (int k = 0; k < 3; k++) {
            double t0 = omp_get_wtime();
            for (int i = 0; i < 10; i++) {
                if (k == 0) (v ? jem_conv3x3_winograd_forward_act : old_conv3x3_winograd_forward_act)(y, x, w, b, N, C, H, W, OC, v ? wk : wk2, 1, 0.2f);
                if (k == 1) (v ? jem_conv3x3_winograd_backward_input : old_conv3x3_winograd_backward_input)(d, dy, w, N, C, H, W, OC, v ? wk : wk2);
                if (k == 2) (v ? jem_conv3x3_winograd_backward_weight : old_conv3x3_winograd_backward_weight)(g, dy, x, N, C, H, W, OC, v ? wk : wk2);
            }
            double t = (omp_get_wtime() - t0) * 100; if (t < best[v][k]) best[v][k] = t;
        }
        const char* names[3] = { "forward", "input grad", "weight grad" };
        for (int k = 0; k < 3; k++) printf("| %d×%d, %d → %d | %s | %.2f | %.2f | %.2f× |\n", H, W, C, OC, names[k], best[0][k], best[1][k], best[0][k] / best[1][k]);
    }
    return bad;
}
