// conv_direct.c: direct convolution with AVX-512 for the strided 3×3 convolutions (the bundled
// Wide-ResNet's 28×28 → 14×14 and 14×14 → 7×7 layers), on CPUs that have AVX-512F.
//
// Why: through im2col these are GEMMs of OC × (OH·OW) × (C·9) per image, with N = 196 or 49
// columns, which OpenBLAS runs at about half the machine's peak (the 49-column tail wastes a
// quarter of every 16-wide vector). Here the vectors run over output channels instead (OC = 64 or
// 128: whole vectors) and the input values are broadcast straight from a zero-padded copy of the
// image, so there is no column matrix and no tail.
//
// Blocks of 4 vectors (64 output channels) × 6 output pixels: 24 accumulators, per tap 4 weight
// loads and 6 broadcasts for 24 FMAs. Weights are repacked once per call to Wp[k][oc] (k = (c, kh,
// kw), OC rounded up to 16 with zeros). Each output is one FMA chain over k in order from +0,
// then + bias, then the activation: the same bits for an image in any batch, at any thread count
// (batch-invariant by construction). The naive oracle is jem_conv2d_forward_naive (conv2d.c).
#include "jem_kernels.h"
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f")))

// DIRECT_KC taps per chunk (4 input channels of a 3×3 kernel): 1.24× faster than one pass over all
// taps on the 14×14 → 7×7 layer (K = 1 152, where the weights and the image fall out of L1), 1.04× on
// the 28×28 → 14×14 one (one A/B run each; 18 and 72 taps were no better). DIRECT_OCC output channels
// per chunk of the input gradient's sum: 1.04× and 0.99× against one pass over all 128 or 64 (one
// run, a noisy host; 16 and 64 no better), kept for the larger layer.
enum { DIRECT_PIX = 6, DIRECT_VEC = 4, DIRECT_KC = 36, DIRECT_OCC = 32 };

// 1: the direct kernels run where they apply (the default unless JEM_DIRECT_CONV=0); decided when
// the library loads, like the invariant GEMM's blocks; set_direct is for tests and A/B runs.
static int direct_enabled = 1;

void jem_conv2d_set_direct(int on) {
    if (on < 0) { const char* e = getenv("JEM_DIRECT_CONV"); on = !(e && e[0] == '0'); }
    direct_enabled = on != 0;
}

__attribute__((constructor)) static void decide_direct(void) { jem_conv2d_set_direct(-1); }

int jem_conv2d_uses_direct(int C, int OC, int KH, int KW, int stride, int pad) {
    (void)pad;
    return direct_enabled && jem_sgemm_invariant_isa() && stride == 2 && KH == 3 && KW == 3 && OC >= 16 && C >= 8;
}

static inline size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t jem_conv2d_direct_workspace(int C, int H, int W, int OC, int KH, int KW, int pad, int OH, int OW, int threads) {
    const size_t K = (size_t)C * KH * KW, OCP = round16((size_t)OC), P = (size_t)OH * OW;
    const size_t img = round16((size_t)C * (H + 2 * pad) * (W + 2 * pad));
    // forward: packed weights, tap offsets, then per thread a padded image, pixel offsets and T
    const size_t fwd = K * OCP + round16(K) + (size_t)threads * (img + round16(P) + P * 64);
    // input gradient: repacked weights, then per thread the transposed column gradient (P × K) and a
    // padded image gradient
    const size_t bwd = round16((size_t)OC * K) + (size_t)threads * (P * round16(K) + img);
    return (fwd > bwd ? fwd : bwd) + 16;
}

static inline AVX512 __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1); }

// One block: NV vectors of output channels [oc0, oc0 + 16·NV) × R pixels starting at pixel p0, taps
// [k0, k1). The partial sums of earlier taps wait in T (p × 64 floats); the last chunk of taps adds
// the bias, applies the activation and writes y[oc][p].
static inline AVX512 __attribute__((always_inline))
void direct_block(const float* Wp, size_t OCP, const int* toff, int k0, int k1, const float* xp, const int* poff,
                  float* T, int first, int last, float* y, int P, int OC, int oc0, int p0,
                  const float* bias, int act, float slope, const int NV, const int R) {
    __m512 acc[DIRECT_PIX][DIRECT_VEC];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(T + (size_t)(p0 + r) * 64 + 16 * v);
    const float* xs[DIRECT_PIX];
    for (int r = 0; r < R; r++) xs[r] = xp + poff[p0 + r];
    const float* w = Wp + (size_t)k0 * OCP + oc0;
    for (int k = k0; k < k1; k++, w += OCP) {
        __m512 wv[DIRECT_VEC];
        for (int v = 0; v < NV; v++) wv[v] = _mm512_loadu_ps(w + 16 * v);
        const int t = toff[k];
        for (int r = 0; r < R; r++) {
            const __m512 b = _mm512_set1_ps(xs[r][t]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(b, wv[v], acc[r][v]);
        }
    }
    if (!last) {
        for (int r = 0; r < R; r++)
            for (int v = 0; v < NV; v++) _mm512_storeu_ps(T + (size_t)(p0 + r) * 64 + 16 * v, acc[r][v]);
        return;
    }
    // y[oc][p]: output channel oc0 + 16v + lane at pixel p0 + r sits P floats after the previous one.
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(P));
    const __m512 sl = _mm512_set1_ps(slope), zero = _mm512_setzero_ps();
    for (int v = 0; v < NV; v++) {
        const __mmask16 m = lanes(OC - oc0 - 16 * v);
        const __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + oc0 + 16 * v) : zero;
        float* yv = y + (size_t)(oc0 + 16 * v) * P + p0;
        for (int r = 0; r < R; r++) {
            __m512 o = _mm512_add_ps(acc[r][v], bv);
            if (act) o = _mm512_mask_mul_ps(o, _mm512_cmp_ps_mask(o, zero, _CMP_LE_OQ), o, sl);
            _mm512_mask_i32scatter_ps(yv + r, m, idx, o, 4);
        }
    }
}

#define PIX_CASES(NV) \
    switch (R) { \
        case 6: direct_block(Wp, OCP, toff, k0, k1, xp, poff, T, first, last, y, P, OC, oc0, p, bias, act, slope, NV, 6); break; \
        case 5: direct_block(Wp, OCP, toff, k0, k1, xp, poff, T, first, last, y, P, OC, oc0, p, bias, act, slope, NV, 5); break; \
        case 4: direct_block(Wp, OCP, toff, k0, k1, xp, poff, T, first, last, y, P, OC, oc0, p, bias, act, slope, NV, 4); break; \
        case 3: direct_block(Wp, OCP, toff, k0, k1, xp, poff, T, first, last, y, P, OC, oc0, p, bias, act, slope, NV, 3); break; \
        case 2: direct_block(Wp, OCP, toff, k0, k1, xp, poff, T, first, last, y, P, OC, oc0, p, bias, act, slope, NV, 2); break; \
        default: direct_block(Wp, OCP, toff, k0, k1, xp, poff, T, first, last, y, P, OC, oc0, p, bias, act, slope, NV, 1); break; \
    }

// All pixels of output channels [oc0, oc0 + 16·nv) of one image, taps in chunks of DIRECT_KC so that a
// chunk's weights and input rows stay in L1 while every pixel block uses them.
static AVX512 void direct_channels(const float* Wp, size_t OCP, const int* toff, int K, const float* xp, const int* poff,
                                   float* T, float* y, int P, int OC, int oc0, int nv, const float* bias, int act, float slope) {
    for (int k0 = 0; k0 < K; k0 += DIRECT_KC) {
        const int k1 = K - k0 < DIRECT_KC ? K : k0 + DIRECT_KC, first = k0 == 0, last = k1 == K;
        for (int p = 0; p < P; p += DIRECT_PIX) {
            const int R = P - p < DIRECT_PIX ? P - p : DIRECT_PIX;
            switch (nv) {
                case 4: PIX_CASES(4) break;
                case 3: PIX_CASES(3) break;
                case 2: PIX_CASES(2) break;
                default: PIX_CASES(1) break;
            }
        }
    }
}

void jem_conv2d_direct_forward_act(float* out, const float* inp, const float* weight, const float* bias,
                                   int N, int C, int H, int W, int OC, int KH, int KW,
                                   int stride, int pad, int OH, int OW, float* work, int act, float slope) {
    const int K = C * KH * KW, P = OH * OW, PH = H + 2 * pad, PW = W + 2 * pad;
    const size_t OCP = round16((size_t)OC), img = round16((size_t)C * PH * PW);
    float* Wp = work;
    int* toff = (int*)(Wp + (size_t)K * OCP);
    float* per_thread = (float*)toff + round16((size_t)K);
    // Wp[k][oc] = weight[oc][k], zero past OC.
    for (int k = 0; k < K; k++) {
        float* d = Wp + (size_t)k * OCP;
        for (int o = 0; o < OC; o++) d[o] = weight[(size_t)o * K + k];
        for (size_t o = OC; o < OCP; o++) d[o] = 0.f;
    }
    for (int c = 0, k = 0; c < C; c++)
        for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++, k++) toff[k] = (c * PH + kh) * PW + kw;
    const int OCB = (OC + 16 * DIRECT_VEC - 1) / (16 * DIRECT_VEC);
    const long items = (long)N * OCB;
    #pragma omp parallel if (items > 1)
    {
        float* xp = per_thread + (size_t)omp_get_thread_num() * (img + round16((size_t)P) + (size_t)P * 64);
        int* poff = (int*)(xp + img);
        float* T = xp + img + round16((size_t)P);
        for (int oh = 0, p = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++, p++) poff[p] = oh * stride * PW + ow * stride;
        int have = -1;   // the image now in xp
        #pragma omp for schedule(static)
        for (long it = 0; it < items; it++) {
            const int n = (int)(it / OCB), ob = (int)(it % OCB);
            if (n != have) {
                const float* x = inp + (size_t)n * C * H * W;
                memset(xp, 0, sizeof(float) * (size_t)C * PH * PW);
                for (int c = 0; c < C; c++)
                    for (int h = 0; h < H; h++)
                        memcpy(xp + ((size_t)c * PH + h + pad) * PW + pad, x + ((size_t)c * H + h) * W, sizeof(float) * W);
                have = n;
            }
            const int oc0 = ob * 16 * DIRECT_VEC, left = (OC - oc0 + 15) / 16;
            direct_channels(Wp, OCP, toff, K, xp, poff, T, out + (size_t)n * OC * P, P, OC, oc0,
                            left < DIRECT_VEC ? left : DIRECT_VEC, bias, act, slope);
        }
    }
}

// ---- input gradient ----------------------------------------------------------------------------
// dcolᵀ[p][m] = Σ_oc Wr[oc][m] · dy[oc][p], with m = (kh, kw, c) (Wr is the weight with its taps
// moved before its input channels, repacked once per call): vectors over m, dy values broadcast, 4
// vectors × 6 pixels per block, each entry one FMA chain over oc from +0, stored whole (no tail in
// p). Then col2im in channels-last order (each pixel's KH × KW window added as whole vectors of
// channels into a zero-padded gradient, pixels in order), whose interior is transposed into dx.

static inline AVX512 __attribute__((always_inline))
void dcol_block(const float* Wr, int M, int o0, int o1, const float* dy, int P, float* dcolT, size_t ldt,
                int m0, int p0, const int NV, const int R) {
    __m512 acc[DIRECT_PIX][DIRECT_VEC];
    __mmask16 mk[DIRECT_VEC];
    for (int v = 0; v < NV; v++) mk[v] = lanes(M - m0 - 16 * v);
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = o0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(dcolT + (size_t)(p0 + r) * ldt + m0 + 16 * v);
    for (int o = o0; o < o1; o++) {
        const float* w = Wr + (size_t)o * M + m0;
        __m512 wv[DIRECT_VEC];
        for (int v = 0; v < NV; v++) wv[v] = _mm512_maskz_loadu_ps(mk[v], w + 16 * v);
        const float* d = dy + (size_t)o * P + p0;
        for (int r = 0; r < R; r++) {
            const __m512 b = _mm512_set1_ps(d[r]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(b, wv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(dcolT + (size_t)(p0 + r) * ldt + m0 + 16 * v, acc[r][v]);
}

#define DCOL_PIX(NV) \
    switch (R) { \
        case 6: dcol_block(Wr, M, o0, o1, dy, P, dcolT, ldt, m0, p, NV, 6); break; \
        case 5: dcol_block(Wr, M, o0, o1, dy, P, dcolT, ldt, m0, p, NV, 5); break; \
        case 4: dcol_block(Wr, M, o0, o1, dy, P, dcolT, ldt, m0, p, NV, 4); break; \
        case 3: dcol_block(Wr, M, o0, o1, dy, P, dcolT, ldt, m0, p, NV, 3); break; \
        case 2: dcol_block(Wr, M, o0, o1, dy, P, dcolT, ldt, m0, p, NV, 2); break; \
        default: dcol_block(Wr, M, o0, o1, dy, P, dcolT, ldt, m0, p, NV, 1); break; \
    }

// Columns [m0, m0 + 64) (fewer at the end) of dcolᵀ for all pixels of one image, the sum over
// output channels in chunks (partial sums wait in dcolᵀ itself: the same FMA chain).
static AVX512 void dcol_rows(const float* Wr, int M, int OC, const float* dy, int P, float* dcolT, size_t ldt, int m0) {
    const int nv = (M - m0 + 15) / 16 < DIRECT_VEC ? (M - m0 + 15) / 16 : DIRECT_VEC;
    for (int o0 = 0; o0 < OC; o0 += DIRECT_OCC) {
        const int o1 = OC - o0 < DIRECT_OCC ? OC : o0 + DIRECT_OCC;
        for (int p = 0; p < P; p += DIRECT_PIX) {
            const int R = P - p < DIRECT_PIX ? P - p : DIRECT_PIX;
            switch (nv) {
                case 4: DCOL_PIX(4) break;
                case 3: DCOL_PIX(3) break;
                case 2: DCOL_PIX(2) break;
                default: DCOL_PIX(1) break;
            }
        }
    }
}

// dx (C, H, W) of one image from dcolᵀ, through the channels-last padded gradient g (PH·PW × C).
static void col2im_t(const float* dcolT, size_t ldt, float* g, float* dx, int C, int H, int W,
                     int KH, int KW, int stride, int pad, int OH, int OW) {
    const int PH = H + 2 * pad, PW = W + 2 * pad;
    memset(g, 0, sizeof(float) * (size_t)PH * PW * C);
    for (int oh = 0, p = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++, p++) {
            const float* s = dcolT + (size_t)p * ldt;
            for (int kh = 0; kh < KH; kh++)
                for (int kw = 0; kw < KW; kw++, s += C) {
                    float* d = g + ((size_t)(oh * stride + kh) * PW + ow * stride + kw) * C;
                    for (int c = 0; c < C; c++) d[c] += s[c];
                }
        }
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++) {
            const float* src = g + ((size_t)(h + pad) * PW + pad) * C + c;
            float* d = dx + ((size_t)c * H + h) * W;
            for (int w = 0; w < W; w++) d[w] = src[(size_t)w * C];
        }
}

void jem_conv2d_direct_backward_input(float* dinp, const float* dout, const float* weight,
                                      int N, int C, int H, int W, int OC, int KH, int KW,
                                      int stride, int pad, int OH, int OW, float* work) {
    const int KK = KH * KW, M = C * KK, P = OH * OW, MB = (M + 16 * DIRECT_VEC - 1) / (16 * DIRECT_VEC);
    const size_t ldt = round16((size_t)M), img = round16((size_t)C * (H + 2 * pad) * (W + 2 * pad));
    const size_t per = (size_t)P * ldt + img;
    float* Wr = work;   // Wr[oc][t][c] = weight[oc][c][t]
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++)
            for (int t = 0; t < KK; t++) Wr[((size_t)o * KK + t) * C + c] = weight[((size_t)o * C + c) * KK + t];
    float* base = work + round16((size_t)OC * M);
    const int T = jem_num_threads();
    if (N >= T) {   // one image per thread at a time
        #pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            float* dcolT = base + (size_t)omp_get_thread_num() * per;
            const float* dy = dout + (size_t)n * OC * P;
            for (int mb = 0; mb < MB; mb++) dcol_rows(Wr, M, OC, dy, P, dcolT, ldt, mb * 16 * DIRECT_VEC);
            col2im_t(dcolT, ldt, dcolT + (size_t)P * ldt, dinp + (size_t)n * C * H * W, C, H, W, KH, KW, stride, pad, OH, OW);
        }
        return;
    }
    // Fewer images than threads (batch-1 latency): the threads share each image's columns of dcolᵀ.
    // Every entry is computed by the same code in the same order: the same bits.
    float* dcolT = base;
    for (int n = 0; n < N; n++) {
        const float* dy = dout + (size_t)n * OC * P;
        #pragma omp parallel for schedule(static)
        for (int mb = 0; mb < MB; mb++) dcol_rows(Wr, M, OC, dy, P, dcolT, ldt, mb * 16 * DIRECT_VEC);
        col2im_t(dcolT, ldt, dcolT + (size_t)P * ldt, dinp + (size_t)n * C * H * W, C, H, W, KH, KW, stride, pad, OH, OW);
    }
}
