// winograd.c: 3×3, stride-1, pad-1 convolution by Winograd's minimal filtering F(2×2, 3×3)
// (Lavin & Gray, 2016). Each 2×2 output tile comes from a 4×4 input tile:
//   Y = Aᵀ [ Σ_c (G g Gᵀ)_{oc,c} ⊙ (Bᵀ d B)_c ] A,
// so the 36 multiplications per tile and channel pair of a direct 3×3 convolution become 16,
// done as 16 GEMMs M[ξ] (OC, T) = U[ξ] (OC, C) · V[ξ] (C, T) over T tiles (ξ indexes the 4×4
// transformed positions). Images are processed in chunks of >= 256 tiles per OpenMP thread.
// The backward-input pass of the same convolution is the same routine with the kernel flipped
// and its in/out channels swapped.
#include "jem_kernels.h"
#include "split_even_odd.h"
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

// Per-thread scratch of the plane-wise transforms (floats): the eight phase planes and the padded
// row of the input transform, or (later in the same chunk) the four planes of the output transform
// or of the weight gradient's output-gradient transform over a whole chunk (and a padded row).
static inline size_t phase_stride(int TH, int TW) { return (size_t)(TH + 1) * TW + 16; }
static inline size_t plane_scratch(int H, int W) {
    const int th = (H + 1) / 2, tw = (W + 1) / 2;
    const size_t TH = (size_t)th, TW = (size_t)tw, in = 8 * phase_stride(th, tw) + 16 * (size_t)((tw + 1 + 7) / 8);
    const size_t outp = 4 * ((size_t)chunk_images(H, W) * TH * TW + 16) + 16 * (size_t)((tw + 7) / 8);
    return in > outp ? in : outp;
}

size_t jem_winograd_workspace(int C, int OC, int H, int W, int threads) {
    size_t t = (size_t)chunk_images(H, W) * tiles_per_image(H, W);
    return 16 * ((size_t)OC * C + SKEW) + (size_t)threads * (16 * (t * ((size_t)C + OC) + 2 * SKEW) + plane_scratch(H, W));
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

// One input row into a transform's padded buffer: a copy, or with mask (the input-gradient pass through
// a fused LeakyReLU) dy ⊙ LeakyReLU′, read off the activation's output mask: the same expression as
// jem_leaky_relu_backward, so the same bits as a separate pass, without writing and re-reading dz.
static inline void load_row(float* restrict d, const float* restrict x, const float* restrict mask, float slope, int W) {
    if (!mask) { memcpy(d, x, sizeof(float) * (size_t)W); return; }
    for (int w = 0; w < W; w++) d[w] = mask[w] > 0.f ? x[w] : slope * x[w];
}

// V[ξ][c][t] (matrices xs floats apart, rows T = nb·TI long) = (Bᵀ d B)[ξ] for the 4×4 input
// tile d at (2ty − 1, 2tx − 1) of images n0 ..< n0 + nb (zero outside the image), for small maps
// (fewer than 32 tiles per plane, e.g. 7×7), where the plane-wise transform below spends more on
// splitting the plane than it saves. One tile row at a time: its 4 input rows are copied into
// zero-padded buffers (entry p holds column p − 1), so the loop over the tiles of the row has no
// branches and stride-2 loads, and the compiler vectorises it across tiles. The arithmetic is the
// scalar one, in the same order.
static void transform_input_rows(float* V, size_t xs, const float* inp, const float* mask, float slope, int n0, int nb, int C, int H, int W) {
    const int TH = (H + 1) / 2, TW = (W + 1) / 2, TI = TH * TW, T = nb * TI;
    const int PW = 2 * TW + 2;
    float rows[4 * PW];   // on the stack: no allocation per call
    for (int i = 0; i < nb; i++) {
        for (int c = 0; c < C; c++) {
            const size_t plane = ((size_t)(n0 + i) * C + c) * H * W;
            const float* x = inp + plane;
            const float* mk = mask ? mask + plane : NULL;
            float* vb = V + (size_t)c * T + (size_t)i * TI;
            for (int ty = 0; ty < TH; ty++) {
                for (int r = 0; r < 4; r++) {
                    float* R = rows + (size_t)r * PW;
                    const int yy = 2 * ty - 1 + r;
                    memset(R, 0, sizeof(float) * (size_t)PW);
                    if (yy >= 0 && yy < H) load_row(R + 1, x + (size_t)yy * W, mk ? mk + (size_t)yy * W : NULL, slope, W);
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

// The same V, one image plane at a time (planes of 32 tiles or more, e.g. 14×14 and 28×28). The plane's
// zero-padded rows are first split into eight phase planes
// P[rp][q][ty'·TW + tx] = x(2ty' + rp − 1, 2tx + q − 1) (rp the row parity, q the column offset,
// ty' = 0 … TH; an AVX2 even/odd split of each padded row), so that element r, q of tile
// t = ty·TW + tx is P[r % 2][q][t + (r / 2)·TW]: the transform is then one branch-free,
// unit-stride loop over all TI tiles of the plane (196 and 49 on 28×28 and 14×14 maps, against 14
// and 7 per tile row) that the compiler vectorises. The arithmetic is the scalar one, in the same
// order: both paths give the same bits. On 7×7 maps (16 tiles) the split costs what the loop saves.
static void transform_input(float* V, size_t xs, const float* inp, const float* mask, float slope, int n0, int nb, int C, int H, int W, float* scratch) {
    const int TH = (H + 1) / 2, TW = (W + 1) / 2, TI = TH * TW, T = nb * TI;
    if (TI < 32) { transform_input_rows(V, xs, inp, mask, slope, n0, nb, C, H, W); return; }
    const size_t PS = phase_stride(TH, TW);     // floats per phase plane (with room for overflow)
    const int NBLK = (TW + 1 + 7) / 8;          // blocks of 8 tiles in a padded row's TW + 1 column pairs
    float* P = scratch;                         // P[(rp·4 + q)·PS + ty'·TW + tx]
    float* R = scratch + 8 * PS;                // the padded row (16·NBLK floats); beyond the image it stays zero
    memset(R, 0, sizeof(float) * 16 * (size_t)NBLK);
    for (int i = 0; i < nb; i++) {
        for (int c = 0; c < C; c++) {
            const size_t plane = ((size_t)(n0 + i) * C + c) * H * W;
            const float* x = inp + plane;
            const float* mk = mask ? mask + plane : NULL;
            // Padded row k = 0 … 2·TH + 1 is input row k − 1 (zero outside): phase rp = k % 2, ty' = k / 2.
            // Rows are written in increasing ty', whole blocks of 8: what a block writes past a row's
            // TW entries lands in the next row (written after it) or in the plane's spare 16 floats.
            for (int k = 0; k < 2 * TH + 2; k++) {
                const int yy = k - 1;
                float* q0 = P + (size_t)((k & 1) * 4) * PS + (size_t)(k >> 1) * TW;
                float* q1 = q0 + PS; float* q2 = q0 + 2 * PS; float* q3 = q0 + 3 * PS;
                if (yy < 0 || yy >= H) {
                    for (int tx = 0; tx < TW; tx++) { q0[tx] = 0.f; q1[tx] = 0.f; q2[tx] = 0.f; q3[tx] = 0.f; }
                    continue;
                }
                load_row(R + 1, x + (size_t)yy * W, mk ? mk + (size_t)yy * W : NULL, slope, W);
                // q0[tx] = R[2tx], q1[tx] = R[2tx + 1] (even and odd entries, tx = 0 … TW), then
                // q2[tx] = R[2tx + 2] = q0[tx + 1], q3[tx] = q1[tx + 1].
                jem_split_even_odd(R, NBLK, q0, q1);
                for (int j = 0; j < TW; j += 8) {
                    _mm256_storeu_ps(q2 + j, _mm256_loadu_ps(q0 + j + 1));
                    _mm256_storeu_ps(q3 + j, _mm256_loadu_ps(q1 + j + 1));
                }
            }
            const float* restrict a0 = P;          const float* restrict a1 = P + PS;
            const float* restrict a2 = P + 2 * PS; const float* restrict a3 = P + 3 * PS;
            const float* restrict b0 = P + 4 * PS; const float* restrict b1 = P + 5 * PS;
            const float* restrict b2 = P + 6 * PS; const float* restrict b3 = P + 7 * PS;
            float* vb = V + (size_t)c * T + (size_t)i * TI;
            float* restrict o0 = vb;            float* restrict o1 = vb + xs;       float* restrict o2 = vb + 2 * xs;   float* restrict o3 = vb + 3 * xs;
            float* restrict o4 = vb + 4 * xs;   float* restrict o5 = vb + 5 * xs;   float* restrict o6 = vb + 6 * xs;   float* restrict o7 = vb + 7 * xs;
            float* restrict o8 = vb + 8 * xs;   float* restrict o9 = vb + 9 * xs;   float* restrict o10 = vb + 10 * xs; float* restrict o11 = vb + 11 * xs;
            float* restrict o12 = vb + 12 * xs; float* restrict o13 = vb + 13 * xs; float* restrict o14 = vb + 14 * xs; float* restrict o15 = vb + 15 * xs;
            // The 24 streams are distinct (phase planes in the scratch, V's 16 matrices): too many
            // for the vectoriser's run-time alias checks, so it is told.
            #pragma clang loop vectorize(assume_safety)
            for (int t = 0; t < TI; t++) {
                const int u = t + TW;
                // Bᵀ d: rows a = d[0][q], b = d[1][q], e = d[2][q], f = d[3][q]
                const float t0 = a0[t] - a0[u], t1 = a1[t] - a1[u], t2 = a2[t] - a2[u], t3 = a3[t] - a3[u];
                const float t4 = b0[t] + a0[u], t5 = b1[t] + a1[u], t6 = b2[t] + a2[u], t7 = b3[t] + a3[u];
                const float t8 = a0[u] - b0[t], t9 = a1[u] - b1[t], t10 = a2[u] - b2[t], t11 = a3[u] - b3[t];
                const float t12 = b0[t] - b0[u], t13 = b1[t] - b1[u], t14 = b2[t] - b2[u], t15 = b3[t] - b3[u];
                // (Bᵀ d) B
                o0[t] = t0 - t2;    o1[t] = t1 + t2;    o2[t] = t2 - t1;    o3[t] = t1 - t3;
                o4[t] = t4 - t6;    o5[t] = t5 + t6;    o6[t] = t6 - t5;    o7[t] = t5 - t7;
                o8[t] = t8 - t10;   o9[t] = t9 + t10;   o10[t] = t10 - t9;  o11[t] = t9 - t11;
                o12[t] = t12 - t14; o13[t] = t13 + t14; o14[t] = t14 - t13; o15[t] = t13 - t15;
            }
        }
    }
}

// Outside batch-invariant mode too, the forward and input-gradient GEMMs go through the invariant
// GEMM instead of OpenBLAS on CPUs where it has its AVX-512 blocks (faster than OpenBLAS on these
// shapes there, and it needs no cleared output and no packing); JEM_WINOGRAD_GEMM=openblas or =own
// forces either (for A/B runs; read once).
static int own_gemm_choice = -1;

void jem_winograd_set_gemm(int own) {
    if (own < 0) {
        const char* e = getenv("JEM_WINOGRAD_GEMM");
        own = e && !strcmp(e, "own") ? 1 : e && !strcmp(e, "openblas") ? 0 : jem_sgemm_invariant_isa() == 1;
    }
    own_gemm_choice = own != 0;
}

static int use_own_gemm(void) {
    if (own_gemm_choice < 0) jem_winograd_set_gemm(-1);   // first call, outside any OpenMP region
    return own_gemm_choice;
}

// p[2k] = a[k], p[2k + 1] = b[k] for k < pairs: an output row from its tiles' left and right
// columns, 8 and then 4 pairs at a time (rows of 14 and 7 pairs on 28×28 and 14×14 maps: the
// compiler's own loop left 6 and all 7 of them to a scalar tail).
static inline void interleave_row(float* restrict p, const float* restrict a, const float* restrict b, int pairs) {
    int k = 0;
    for (; k + 8 <= pairs; k += 8) {
        const __m256 x = _mm256_loadu_ps(a + k), y = _mm256_loadu_ps(b + k);
        const __m256 lo = _mm256_unpacklo_ps(x, y), hi = _mm256_unpackhi_ps(x, y);   // pairs 0, 1, 4, 5 and 2, 3, 6, 7
        _mm256_storeu_ps(p + 2 * k, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(p + 2 * k + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
    for (; k + 4 <= pairs; k += 4) {
        const __m128 x = _mm_loadu_ps(a + k), y = _mm_loadu_ps(b + k);
        _mm_storeu_ps(p + 2 * k, _mm_unpacklo_ps(x, y));
        _mm_storeu_ps(p + 2 * k + 4, _mm_unpackhi_ps(x, y));
    }
    for (; k < pairs; k++) { p[2 * k] = a[k]; p[2 * k + 1] = b[k]; }
}

// out (N, OC, H, W) = winograd conv of inp (N, C, H, W) with transformed kernel U (16, OC, C); with
// mask, of inp ⊙ LeakyReLU′ (slope mslope) read off mask (N, C, H, W) as the transform loads it.
static void winograd_run(float* out, const float* inp, const float* mask, float mslope, const float* U, const float* bias,
                         int N, int C, int H, int W, int OC, float* work, int act, float slope) {
    const int TH = (H + 1) / 2, TW = (W + 1) / 2, TI = TH * TW;
    const int NB = chunk_size(N, H, W), NC = (N + NB - 1) / NB;
    const size_t tmax = (size_t)chunk_images(H, W) * TI;   // the workspace's chunk
    // Batch-invariant mode: the GEMM whose columns do not depend on the call's shape, so a result
    // does not depend on what else shares the chunk (OpenBLAS's do).
    const int invariant = jem_batch_invariant(), own_gemm = use_own_gemm();
    #pragma omp parallel for schedule(static) if (NC > 1)
    for (int ch = 0; ch < NC; ch++) {
        const int n0 = ch * NB, nb = (N - n0) < NB ? (N - n0) : NB;
        const int T = nb * TI;
        float* V = work + (size_t)omp_get_thread_num() * (16 * (tmax * ((size_t)C + OC) + 2 * SKEW) + plane_scratch(H, W));
        float* M = V + 16 * (tmax * (size_t)C + SKEW);
        float* scratch = M + 16 * (tmax * (size_t)OC + SKEW);
        const size_t xs = (size_t)C * T + SKEW, ms = (size_t)OC * T + SKEW;   // strides between the 16 matrices
        transform_input(V, xs, inp, mask, mslope, n0, nb, C, H, W, scratch);
        // The invariant GEMM (batch-invariant mode, or JEM_WINOGRAD_GEMM=own) writes M without
        // reading it. OpenBLAS: β = 1 into a cleared M, since its β = 0 path clears C with a slow
        // scalar pass per GEMM call (8 % of a full-chain defense profile); a memset is cheaper and
        // gives the same sums (0 + Σ). Each matrix is cleared just before its GEMM, so C is still in
        // cache when read.
        for (int xi = 0; xi < 16; xi++) {
            const float* u = U + (size_t)xi * ((size_t)OC * C + SKEW);
            if (invariant || own_gemm) {
                jem_sgemm_invariant(OC, T, C, u, C, V + (size_t)xi * xs, T, M + (size_t)xi * ms, T);
            } else {
                memset(M + (size_t)xi * ms, 0, sizeof(float) * (size_t)OC * T);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, T, C,
                            1.0f, u, C, V + (size_t)xi * xs, T, 1.0f, M + (size_t)xi * ms, T);
            }
        }
        // Output transform: y = Aᵀ m A (+ bias, activation), one output channel of the whole chunk
        // at a time: the 2×2 outputs of all T tiles (every image of the chunk: M's rows are
        // contiguous over images) in one unit-stride loop over the 16 streams of M (vectorised),
        // into four planes Y00 … Y11, then interleaved into each image, cropped at odd edges.
        float* restrict Y00 = scratch; float* restrict Y01 = scratch + tmax;
        float* restrict Y10 = scratch + 2 * tmax; float* restrict Y11 = scratch + 3 * tmax;
        for (int o = 0; o < OC; o++) {
            const float* mb = M + (size_t)o * T;
            const float* restrict m0 = mb;            const float* restrict m1 = mb + ms;       const float* restrict m2 = mb + 2 * ms;   const float* restrict m3 = mb + 3 * ms;
            const float* restrict m4 = mb + 4 * ms;   const float* restrict m5 = mb + 5 * ms;   const float* restrict m6 = mb + 6 * ms;   const float* restrict m7 = mb + 7 * ms;
            const float* restrict m8 = mb + 8 * ms;   const float* restrict m9 = mb + 9 * ms;   const float* restrict m10 = mb + 10 * ms; const float* restrict m11 = mb + 11 * ms;
            const float* restrict m12 = mb + 12 * ms; const float* restrict m13 = mb + 13 * ms; const float* restrict m14 = mb + 14 * ms; const float* restrict m15 = mb + 15 * ms;
            const float b0 = bias ? bias[o] : 0.f;
            #pragma clang loop vectorize(assume_safety)
            for (int t = 0; t < T; t++) {
                // Aᵀ m: r0[q] = m[q] + m[4 + q] + m[8 + q], r1[q] = m[4 + q] − m[8 + q] − m[12 + q]
                const float r00 = m0[t] + m4[t] + m8[t], r01 = m1[t] + m5[t] + m9[t];
                const float r02 = m2[t] + m6[t] + m10[t], r03 = m3[t] + m7[t] + m11[t];
                const float r10 = m4[t] - m8[t] - m12[t], r11 = m5[t] - m9[t] - m13[t];
                const float r12 = m6[t] - m10[t] - m14[t], r13 = m7[t] - m11[t] - m15[t];
                float y00 = r00 + r01 + r02 + b0, y01 = r01 - r02 - r03 + b0;
                float y10 = r10 + r11 + r12 + b0, y11 = r11 - r12 - r13 + b0;
                if (act) {
                    y00 = y00 > 0.f ? y00 : slope * y00; y01 = y01 > 0.f ? y01 : slope * y01;
                    y10 = y10 > 0.f ? y10 : slope * y10; y11 = y11 > 0.f ? y11 : slope * y11;
                }
                Y00[t] = y00; Y01[t] = y01; Y10[t] = y10; Y11[t] = y11;
            }
            const int pairs = W / 2;   // tiles whose two columns are inside
            for (int i = 0; i < nb; i++) {
                float* y = out + ((size_t)(n0 + i) * OC + o) * H * W;
                for (int ty = 0; ty < TH; ty++) {
                    const size_t t0 = (size_t)i * TI + (size_t)ty * TW;
                    float* restrict p = y + (size_t)(2 * ty) * W;
                    interleave_row(p, Y00 + t0, Y01 + t0, pairs);
                    if (W & 1) p[W - 1] = Y00[t0 + TW - 1];
                    if (2 * ty + 1 < H) {
                        float* restrict q = p + W;
                        interleave_row(q, Y10 + t0, Y11 + t0, pairs);
                        if (W & 1) q[W - 1] = Y10[t0 + TW - 1];
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
    winograd_run(out, inp, NULL, 0.f, U, bias, N, C, H, W, OC, work + 16 * ((size_t)OC * C + SKEW), act, slope);
}

void jem_conv3x3_winograd_backward_input(float* dinp, const float* dout, const float* weight,
                                         int N, int C, int H, int W, int OC, float* work) {
    jem_conv3x3_winograd_backward_input_act(dinp, dout, NULL, 0.f, weight, N, C, H, W, OC, work);
}

void jem_conv3x3_winograd_backward_input_act(float* dinp, const float* dout, const float* act_out, float slope,
                                             const float* weight, int N, int C, int H, int W, int OC, float* work) {
    // dx (N, C, H, W) = conv(dy (N, OC, H, W), w') with w'[c][oc] = rot180(w[oc][c]).
    float* U = work;
    transform_weights(U, weight, C, OC, 1);
    winograd_run(dinp, dout, act_out, slope, U, NULL, N, OC, H, W, C, work + 16 * ((size_t)OC * C + SKEW), 0, 0.f);
}

// Weight gradient. With Y = Aᵀ (U ⊙ V) A per tile and U = G g Gᵀ:
//   ∂L/∂U[ξ] (OC, C) = Σ_t (A dY_t Aᵀ)[ξ] · V[ξ]ᵀ   (16 GEMMs over the tiles),
//   ∂L/∂g = Gᵀ (∂L/∂U) G.
// Each thread accumulates ∂L/∂U over its chunks privately; the reduction runs in thread order
// (deterministic for a given thread count).
size_t jem_winograd_wgrad_workspace(int C, int OC, int H, int W, int threads) {
    size_t t = (size_t)chunk_images(H, W) * tiles_per_image(H, W);
    return (size_t)threads * (16 * (t * ((size_t)C + OC) + 2 * SKEW) + 16 * ((size_t)OC * C + SKEW) + plane_scratch(H, W));
}

void jem_conv3x3_winograd_backward_weight(float* dweight, const float* dout, const float* inp,
                                          int N, int C, int H, int W, int OC, float* work) {
    const int TH = (H + 1) / 2, TW = (W + 1) / 2, TI = TH * TW;
    const int NB = chunk_size(N, H, W), NC = (N + NB - 1) / NB;
    const size_t tmax = (size_t)chunk_images(H, W) * TI;   // the workspace's chunk
    const size_t us = (size_t)OC * C + SKEW;   // stride between the 16 (OC, C) matrices of dU
    const size_t per = 16 * (tmax * ((size_t)C + OC) + 2 * SKEW) + 16 * us + plane_scratch(H, W);
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
            transform_input(V, xs, inp, NULL, 0.f, n0, nb, C, H, W, dU + 16 * us);
            // D[ξ][oc][t] = (A dY Aᵀ)[ξ], dY the 2×2 output-gradient tile (0 where cropped). Per output
            // channel: the four entries of every tile of the chunk are gathered into planes G00 … G11
            // (an AVX2 even/odd split of each dY row, zero-padded past W), then one unit-stride loop
            // over the chunk's tiles writes the 16 streams (the tile-by-tile arithmetic, same order).
            float* G = dU + 16 * us;                    // the plane scratch (the input transform is done with it)
            const size_t GS = tmax + 16;                // G planes' stride: room for the last row's block overflow
            float* restrict G00 = G; float* restrict G01 = G + GS; float* restrict G10 = G + 2 * GS; float* restrict G11 = G + 3 * GS;
            float* Rb = G + 4 * GS;                     // a dY row, zero past W
            const int NBW = (TW + 7) / 8;
            memset(Rb, 0, sizeof(float) * 16 * (size_t)NBW);
            for (int o = 0; o < OC; o++) {
                for (int i = 0; i < nb; i++) {
                    const float* dy = dout + ((size_t)(n0 + i) * OC + o) * H * W;
                    // Rows in increasing t: a block's writes past a row's TW entries land in the next
                    // row (written after it) or in the planes' spare 16 floats.
                    for (int ty = 0; ty < TH; ty++) {
                        const size_t t0 = (size_t)i * TI + (size_t)ty * TW;
                        for (int half = 0; half < 2; half++) {
                            float* ge = (half ? G10 : G00) + t0; float* go = (half ? G11 : G01) + t0;
                            const int yy = 2 * ty + half;
                            if (yy >= H) { for (int tx = 0; tx < TW; tx++) { ge[tx] = 0.f; go[tx] = 0.f; } continue; }
                            memcpy(Rb, dy + (size_t)yy * W, sizeof(float) * (size_t)W);
                            jem_split_even_odd(Rb, NBW, ge, go);
                        }
                    }
                }
                float* db = D + (size_t)o * T;
                float* restrict d0 = db;            float* restrict d1 = db + ds;       float* restrict d2 = db + 2 * ds;   float* restrict d3 = db + 3 * ds;
                float* restrict d4 = db + 4 * ds;   float* restrict d5 = db + 5 * ds;   float* restrict d6 = db + 6 * ds;   float* restrict d7 = db + 7 * ds;
                float* restrict d8 = db + 8 * ds;   float* restrict d9 = db + 9 * ds;   float* restrict d10 = db + 10 * ds; float* restrict d11 = db + 11 * ds;
                float* restrict d12 = db + 12 * ds; float* restrict d13 = db + 13 * ds; float* restrict d14 = db + 14 * ds; float* restrict d15 = db + 15 * ds;
                #pragma clang loop vectorize(assume_safety)
                for (int t = 0; t < T; t++) {
                    const float g00 = G00[t], g01 = G01[t], g10 = G10[t], g11 = G11[t];
                    // A g (4×2): rows g0, g0 + g1, g0 − g1, −g1 (g0, g1 the rows of dY); then (A g) Aᵀ
                    const float u0 = g00, v0 = g01, u1 = g00 + g10, v1 = g01 + g11;
                    const float u2 = g00 - g10, v2 = g01 - g11, u3 = -g10, v3 = -g11;
                    d0[t] = u0;  d1[t] = u0 + v0;  d2[t] = u0 - v0;  d3[t] = -v0;
                    d4[t] = u1;  d5[t] = u1 + v1;  d6[t] = u1 - v1;  d7[t] = -v1;
                    d8[t] = u2;  d9[t] = u2 + v2;  d10[t] = u2 - v2; d11[t] = -v2;
                    d12[t] = u3; d13[t] = u3 + v3; d14[t] = u3 - v3; d15[t] = -v3;
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
