// winograd.c: 3×3, stride-1, pad-1 convolution by Winograd's minimal filtering F(2×2, 3×3)
// (Lavin & Gray, 2016). Each 2×2 output tile comes from a 4×4 input tile:
//   Y = Aᵀ [ Σ_c (G g Gᵀ)_{oc,c} ⊙ (Bᵀ d B)_c ] A,
// so the 36 multiplications per tile and channel pair of a direct 3×3 convolution become 16,
// done as 16 GEMMs M[ξ] (OC, T) = U[ξ] (OC, C) · V[ξ] (C, T) over T tiles (ξ indexes the 4×4
// transformed positions). Images are processed in chunks of >= 256 tiles per OpenMP thread.
// The backward-input pass of the same convolution is the same routine with the kernel flipped
// and its in/out channels swapped.
#include "jem_kernels.h"
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static inline int tiles_per_image(int H, int W) { return ((H + 1) / 2) * ((W + 1) / 2); }

static inline int chunk_images(int H, int W) {
    int ti = tiles_per_image(H, W);
    int nb = (256 + ti - 1) / ti;
    return nb < 1 ? 1 : (nb > 16 ? 16 : nb);
}

// Images per chunk for a batch of N: chunks of >= 256 tiles (at most chunk_images), but never so
// few chunks that a thread idles (16 images on 7×7 maps would otherwise be one chunk of 16).
static inline int chunk_size(int N, int H, int W) {
    const int threads = omp_get_max_threads(), even = (N + threads - 1) / threads, nb = chunk_images(H, W);
    return even < nb ? (even < 1 ? 1 : even) : nb;
}

// The 16 transformed matrices of a chunk lie SKEW floats further apart than their size: with
// power-of-two sizes (C·T = 64·256 on 32×32 maps) the 16 streams of the transforms would
// otherwise map to the same cache sets.
enum { SKEW = 48 };

size_t jem_winograd_workspace(int C, int OC, int H, int W, int threads) {
    size_t t = (size_t)chunk_images(H, W) * tiles_per_image(H, W);
    return 16 * ((size_t)OC * C + SKEW) + (size_t)threads * 16 * (t * ((size_t)C + OC) + 2 * SKEW);
}

// U (16 matrices (OC, C), SKEW floats apart) = G g Gᵀ for each 3×3 kernel g from input channel c to output channel o:
// g = weight[o][c] (weight (OC, C, 3, 3)), or, with flip_transpose, g = rot180(weight[c][o])
// (weight (C, OC, 3, 3): the forward kernel of the convolution whose input gradient this is).
static void transform_weights(float* U, const float* w, int OC, int C, int flip_transpose) {
    const size_t us = (size_t)OC * C + SKEW;   // stride between the 16 (OC, C) matrices of U
    #pragma omp parallel for schedule(static) if ((long)OC * C >= 4096)
    for (int o = 0; o < OC; o++) {
        for (int c = 0; c < C; c++) {
            float g[9];
            if (!flip_transpose) {
                memcpy(g, w + ((size_t)o * C + c) * 9, sizeof g);
            } else {
                const float* s = w + ((size_t)c * OC + o) * 9;
                for (int k = 0; k < 9; k++) g[k] = s[8 - k];
            }
            float t[12];   // G g (4×3)
            for (int j = 0; j < 3; j++) {
                float a = g[j], b = g[3 + j], d = g[6 + j];
                t[j] = a; t[3 + j] = 0.5f * (a + b + d); t[6 + j] = 0.5f * (a - b + d); t[9 + j] = d;
            }
            for (int i = 0; i < 4; i++) {   // (G g) Gᵀ (4×4)
                float a = t[3 * i], b = t[3 * i + 1], d = t[3 * i + 2];
                float u[4] = { a, 0.5f * (a + b + d), 0.5f * (a - b + d), d };
                for (int j = 0; j < 4; j++) U[(size_t)(4 * i + j) * us + (size_t)o * C + c] = u[j];
            }
        }
    }
}

// V[ξ][c][t] (matrices xs floats apart, rows T = nb·TI long) = (Bᵀ d B)[ξ] for the 4×4 input
// tile d at (2ty − 1, 2tx − 1) of images n0 ..< n0 + nb (zero outside the image).
// One tile row at a time: its 4 input rows are copied into zero-padded buffers (entry p holds
// column p − 1), so the loop over the tiles of the row has no branches and stride-2 loads, and
// the compiler vectorises it across tiles. The arithmetic is the scalar one, in the same order.
static void transform_input(float* V, size_t xs, const float* inp, int n0, int nb, int C, int H, int W) {
    const int TH = (H + 1) / 2, TW = (W + 1) / 2, TI = TH * TW, T = nb * TI;
    const int PW = 2 * TW + 2;
    float rows[4 * PW];   // on the stack: no allocation per call
    for (int i = 0; i < nb; i++) {
        for (int c = 0; c < C; c++) {
            const float* x = inp + ((size_t)(n0 + i) * C + c) * H * W;
            float* vb = V + (size_t)c * T + (size_t)i * TI;
            for (int ty = 0; ty < TH; ty++) {
                for (int r = 0; r < 4; r++) {
                    float* R = rows + (size_t)r * PW;
                    const int yy = 2 * ty - 1 + r;
                    memset(R, 0, sizeof(float) * (size_t)PW);
                    if (yy >= 0 && yy < H) memcpy(R + 1, x + (size_t)yy * W, sizeof(float) * (size_t)W);
                }
                const float* restrict R0 = rows;
                const float* restrict R1 = rows + PW;
                const float* restrict R2 = rows + 2 * (size_t)PW;
                const float* restrict R3 = rows + 3 * (size_t)PW;
                float* restrict o[16];
                for (int k = 0; k < 16; k++) o[k] = vb + (size_t)k * xs + (size_t)ty * TW;
                float* restrict o0 = o[0]; float* restrict o1 = o[1]; float* restrict o2 = o[2]; float* restrict o3 = o[3];
                float* restrict o4 = o[4]; float* restrict o5 = o[5]; float* restrict o6 = o[6]; float* restrict o7 = o[7];
                float* restrict o8 = o[8]; float* restrict o9 = o[9]; float* restrict o10 = o[10]; float* restrict o11 = o[11];
                float* restrict o12 = o[12]; float* restrict o13 = o[13]; float* restrict o14 = o[14]; float* restrict o15 = o[15];
                for (int tx = 0; tx < TW; tx++) {
                    const int p = 2 * tx;
                    float t[16];   // Bᵀ d: rows a = d[0][q], b = d[1][q], e = d[2][q], f = d[3][q]
                    for (int q = 0; q < 4; q++) {
                        const float a = R0[p + q], b = R1[p + q], e = R2[p + q], f = R3[p + q];
                        t[q] = a - e; t[4 + q] = b + e; t[8 + q] = e - b; t[12 + q] = b - f;
                    }
                    // (Bᵀ d) B
                    o0[tx] = t[0] - t[2];   o1[tx] = t[1] + t[2];   o2[tx] = t[2] - t[1];   o3[tx] = t[1] - t[3];
                    o4[tx] = t[4] - t[6];   o5[tx] = t[5] + t[6];   o6[tx] = t[6] - t[5];   o7[tx] = t[5] - t[7];
                    o8[tx] = t[8] - t[10];  o9[tx] = t[9] + t[10];  o10[tx] = t[10] - t[9]; o11[tx] = t[9] - t[11];
                    o12[tx] = t[12] - t[14]; o13[tx] = t[13] + t[14]; o14[tx] = t[14] - t[13]; o15[tx] = t[13] - t[15];
                }
            }
        }
    }
}

// out (N, OC, H, W) = winograd conv of inp (N, C, H, W) with transformed kernel U (16, OC, C).
static void winograd_run(float* out, const float* inp, const float* U, const float* bias,
                         int N, int C, int H, int W, int OC, float* work, int act, float slope) {
    const int TH = (H + 1) / 2, TW = (W + 1) / 2, TI = TH * TW;
    const int NB = chunk_size(N, H, W), NC = (N + NB - 1) / NB;
    const size_t tmax = (size_t)chunk_images(H, W) * TI;   // the workspace's chunk
    // Batch-invariant mode: the GEMM whose columns do not depend on the call's shape, so a result
    // does not depend on what else shares the chunk (OpenBLAS's do).
    const int invariant = jem_batch_invariant();
    #pragma omp parallel for schedule(static) if (NC > 1)
    for (int ch = 0; ch < NC; ch++) {
        const int n0 = ch * NB, nb = (N - n0) < NB ? (N - n0) : NB;
        const int T = nb * TI;
        float* V = work + (size_t)omp_get_thread_num() * 16 * (tmax * ((size_t)C + OC) + 2 * SKEW);
        float* M = V + 16 * (tmax * (size_t)C + SKEW);
        const size_t xs = (size_t)C * T + SKEW, ms = (size_t)OC * T + SKEW;   // strides between the 16 matrices
        transform_input(V, xs, inp, n0, nb, C, H, W);
        // β = 1 into a cleared M: OpenBLAS's β = 0 path clears C with a slow scalar pass per GEMM
        // call (8 % of a full-chain defense profile); one memset of the chunk's M is cheaper and
        // gives the same sums (0 + Σ).
        memset(M, 0, sizeof(float) * (15 * ms + (size_t)OC * T));
        for (int xi = 0; xi < 16; xi++) {
            const float* u = U + (size_t)xi * ((size_t)OC * C + SKEW);
            if (invariant) {
                jem_sgemm_invariant(OC, T, C, u, C, V + (size_t)xi * xs, T, M + (size_t)xi * ms, T);
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, T, C,
                            1.0f, u, C, V + (size_t)xi * xs, T, 1.0f, M + (size_t)xi * ms, T);
            }
        }
        // Output transform: y = Aᵀ m A (+ bias), cropped at odd edges.
        for (int i = 0; i < nb; i++) {
            for (int o = 0; o < OC; o++) {
                float* y = out + ((size_t)(n0 + i) * OC + o) * H * W;
                const float* mb = M + (size_t)o * T + (size_t)i * TI;
                const float b0 = bias ? bias[o] : 0.f;
                for (int ty = 0; ty < TH; ty++) {
                    for (int tx = 0; tx < TW; tx++) {
                        const size_t tt = (size_t)ty * TW + tx;
                        float m[16];
                        for (int k = 0; k < 16; k++) m[k] = mb[(size_t)k * ms + tt];
                        float r0[4], r1[4];   // Aᵀ m
                        for (int q = 0; q < 4; q++) { r0[q] = m[q] + m[4 + q] + m[8 + q]; r1[q] = m[4 + q] - m[8 + q] - m[12 + q]; }
                        float y00 = r0[0] + r0[1] + r0[2] + b0, y01 = r0[1] - r0[2] - r0[3] + b0;
                        float y10 = r1[0] + r1[1] + r1[2] + b0, y11 = r1[1] - r1[2] - r1[3] + b0;
                        if (act) {
                            y00 = y00 > 0.f ? y00 : slope * y00; y01 = y01 > 0.f ? y01 : slope * y01;
                            y10 = y10 > 0.f ? y10 : slope * y10; y11 = y11 > 0.f ? y11 : slope * y11;
                        }
                        const int yy = 2 * ty, xx = 2 * tx;
                        float* p = y + (size_t)yy * W + xx;
                        p[0] = y00; if (xx + 1 < W) p[1] = y01;
                        if (yy + 1 < H) { p[W] = y10; if (xx + 1 < W) p[W + 1] = y11; }
                    }
                }
            }
        }
    }
}

void jem_conv3x3_winograd_forward(float* out, const float* inp, const float* weight, const float* bias,
                                  int N, int C, int H, int W, int OC, float* work) {
    jem_conv3x3_winograd_forward_act(out, inp, weight, bias, N, C, H, W, OC, work, 0, 0.f);
}

void jem_conv3x3_winograd_forward_act(float* out, const float* inp, const float* weight, const float* bias,
                                      int N, int C, int H, int W, int OC, float* work, int act, float slope) {
    float* U = work;
    transform_weights(U, weight, OC, C, 0);
    winograd_run(out, inp, U, bias, N, C, H, W, OC, work + 16 * ((size_t)OC * C + SKEW), act, slope);
}

void jem_conv3x3_winograd_backward_input(float* dinp, const float* dout, const float* weight,
                                         int N, int C, int H, int W, int OC, float* work) {
    // dx (N, C, H, W) = conv(dy (N, OC, H, W), w') with w'[c][oc] = rot180(w[oc][c]).
    float* U = work;
    transform_weights(U, weight, C, OC, 1);
    winograd_run(dinp, dout, U, NULL, N, OC, H, W, C, work + 16 * ((size_t)OC * C + SKEW), 0, 0.f);
}

// Weight gradient. With Y = Aᵀ (U ⊙ V) A per tile and U = G g Gᵀ:
//   ∂L/∂U[ξ] (OC, C) = Σ_t (A dY_t Aᵀ)[ξ] · V[ξ]ᵀ   (16 GEMMs over the tiles),
//   ∂L/∂g = Gᵀ (∂L/∂U) G.
// Each thread accumulates ∂L/∂U over its chunks privately; the reduction runs in thread order
// (deterministic for a given thread count).
size_t jem_winograd_wgrad_workspace(int C, int OC, int H, int W, int threads) {
    size_t t = (size_t)chunk_images(H, W) * tiles_per_image(H, W);
    return (size_t)threads * (16 * (t * ((size_t)C + OC) + 2 * SKEW) + 16 * ((size_t)OC * C + SKEW));
}

void jem_conv3x3_winograd_backward_weight(float* dweight, const float* dout, const float* inp,
                                          int N, int C, int H, int W, int OC, float* work) {
    const int TH = (H + 1) / 2, TW = (W + 1) / 2, TI = TH * TW;
    const int NB = chunk_size(N, H, W), NC = (N + NB - 1) / NB;
    const size_t tmax = (size_t)chunk_images(H, W) * TI;   // the workspace's chunk
    const size_t us = (size_t)OC * C + SKEW;   // stride between the 16 (OC, C) matrices of dU
    const size_t per = 16 * (tmax * ((size_t)C + OC) + 2 * SKEW) + 16 * us;
    int T_threads = 1;
    #pragma omp parallel
    {
        #pragma omp single
        T_threads = omp_get_num_threads();
        float* V = work + (size_t)omp_get_thread_num() * per;
        float* D = V + 16 * (tmax * (size_t)C + SKEW);
        float* dU = D + 16 * (tmax * (size_t)OC + SKEW);
        memset(dU, 0, sizeof(float) * 16 * us);
        #pragma omp for schedule(static)
        for (int ch = 0; ch < NC; ch++) {
            const int n0 = ch * NB, nb = (N - n0) < NB ? (N - n0) : NB;
            const int T = nb * TI;
            const size_t xs = (size_t)C * T + SKEW, ds = (size_t)OC * T + SKEW;
            transform_input(V, xs, inp, n0, nb, C, H, W);
            // D[ξ][oc][t] = (A dY Aᵀ)[ξ], dY the 2×2 output-gradient tile (0 where cropped).
            for (int i = 0; i < nb; i++) {
                for (int o = 0; o < OC; o++) {
                    const float* dy = dout + ((size_t)(n0 + i) * OC + o) * H * W;
                    float* db = D + (size_t)o * T + (size_t)i * TI;
                    for (int ty = 0; ty < TH; ty++) {
                        for (int tx = 0; tx < TW; tx++) {
                            const int yy = 2 * ty, xx = 2 * tx;
                            const float* p = dy + (size_t)yy * W + xx;
                            float g00 = p[0], g01 = xx + 1 < W ? p[1] : 0.f;
                            float g10 = yy + 1 < H ? p[W] : 0.f, g11 = (yy + 1 < H && xx + 1 < W) ? p[W + 1] : 0.f;
                            // A g (4×2): rows g0, g0 + g1, g0 − g1, −g1 (g0, g1 the rows of dY)
                            float r[4][2] = { { g00, g01 }, { g00 + g10, g01 + g11 }, { g00 - g10, g01 - g11 }, { -g10, -g11 } };
                            const size_t tt = (size_t)ty * TW + tx;
                            for (int a = 0; a < 4; a++) {   // (A g) Aᵀ
                                float u = r[a][0], v = r[a][1];
                                db[(size_t)(4 * a + 0) * ds + tt] = u;
                                db[(size_t)(4 * a + 1) * ds + tt] = u + v;
                                db[(size_t)(4 * a + 2) * ds + tt] = u - v;
                                db[(size_t)(4 * a + 3) * ds + tt] = -v;
                            }
                        }
                    }
                }
            }
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, C, T,
                            1.0f, D + (size_t)xi * ds, T, V + (size_t)xi * xs, T, 1.0f, dU + (size_t)xi * us, C);
        }
    }
    // dweight[o][c] += Gᵀ (Σ_threads dU[·][o][c]) G, threads summed in order.
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) {
        for (int c = 0; c < C; c++) {
            float u[16];
            for (int k = 0; k < 16; k++) {
                float s = 0.f;
                for (int t = 0; t < T_threads; t++) {
                    const float* dU = work + (size_t)t * per + 16 * (tmax * ((size_t)C + OC) + 2 * SKEW);
                    s += dU[(size_t)k * us + (size_t)o * C + c];
                }
                u[k] = s;
            }
            float m[12];   // Gᵀ u (3×4); Gᵀ rows: (1, ½, ½, 0), (0, ½, −½, 0), (0, ½, ½, 1)
            for (int j = 0; j < 4; j++) {
                float a = u[j], b = u[4 + j], e = u[8 + j], f = u[12 + j];
                m[j] = a + 0.5f * (b + e); m[4 + j] = 0.5f * (b - e); m[8 + j] = 0.5f * (b + e) + f;
            }
            float* g = dweight + ((size_t)o * C + c) * 9;
            for (int i = 0; i < 3; i++) {   // (Gᵀ u) G
                float a = m[4 * i], b = m[4 * i + 1], e = m[4 * i + 2], f = m[4 * i + 3];
                g[3 * i + 0] += a + 0.5f * (b + e);
                g[3 * i + 1] += 0.5f * (b - e);
                g[3 * i + 2] += 0.5f * (b + e) + f;
            }
        }
    }
}
