// conv_direct.c: direct convolution for the strided 3×3 convolutions (the bundled Wide-ResNet's
// 28×28 → 14×14 and 14×14 → 7×7 layers), with AVX-512 where the CPU has AVX-512F and AVX2 elsewhere.
//
// Why: through im2col these are GEMMs of OC × (OH·OW) × (C·9) per image, with N = 196 or 49
// columns, which OpenBLAS runs at about half the machine's peak (the 49-column tail wastes part of
// every vector) after writing the column matrix. Here the vectors run over output channels instead
// (OC = 64 or 128: whole vectors) and the input values are broadcast straight from a zero-padded
// copy of the image, so there is no column matrix and no tail.
//
// Register blocks of NVB vectors of output channels × 6 output pixels (conv_direct_blocks.h, built
// for each instruction set). Weights are repacked once per call to Wp[k][oc] (k = (c, kh, kw), OC
// rounded up to 16 with zeros). Each output is one FMA chain over k in order from +0, then + bias,
// then the activation: the same bits for an image in any batch, at any thread count and with either
// instruction set (batch-invariant by construction). The naive oracle is jem_conv2d_forward_naive
// (conv2d.c).
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
// run, a noisy host; 16 and 64 no better), kept for the larger layer. With the AVX2 blocks (an AMD
// EPYC): 72 and 144 taps 1.01–1.04×, 18 taps 0.88× against 36 on the forward (one run each).
// DIRECT_GROUP output channels (forward) or dcolᵀ columns (input gradient) per unit of work, in
// blocks of NVB vectors; the forward parks a group's partial sums in T (pixels × DIRECT_GROUP).
enum { DIRECT_GROUP = 64, DIRECT_KC = 36, DIRECT_OCC = 32 };

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
    return direct_enabled && stride == 2 && KH == 3 && KW == 3 && OC >= 16 && C >= 8;
}

static inline size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t jem_conv2d_direct_workspace(int C, int H, int W, int OC, int KH, int KW, int pad, int OH, int OW, int threads) {
    const size_t K = (size_t)C * KH * KW, OCP = round16((size_t)OC), P = (size_t)OH * OW;
    const size_t img = round16((size_t)C * (H + 2 * pad) * (W + 2 * pad));
    // forward: packed weights, tap offsets, then per thread a padded image, pixel offsets and T
    const size_t fwd = K * OCP + round16(K) + (size_t)threads * (img + round16(P) + P * DIRECT_GROUP);
    // input gradient: repacked weights, then per thread the transposed column gradient (P × K) and a
    // padded image gradient
    const size_t bwd = round16((size_t)OC * K) + (size_t)threads * (P * round16(K) + img);
    // weight gradient: tap offsets, then per thread Dw (K × OCP), dyᵀ (P × OCP), a padded image and pixel offsets
    const size_t wgt = round16(K) + (size_t)threads * (K * OCP + P * OCP + img + round16(P));
    const size_t most = fwd > bwd ? fwd : bwd;
    return (most > wgt ? most : wgt) + 16;
}

static inline AVX512 __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1); }

// ---- the blocks, once per instruction set (conv_direct_blocks.h) --------------------------------

// AVX-512: blocks of 4 vectors (64 output channels) × 6 pixels, 24 accumulators; per tap 4 weight
// loads and 6 broadcasts for 24 FMAs. The output is scattered into y[oc][p] under a lane mask.
#define VL 16
#define NVB 4
#define PIXB 6
#define TGT AVX512
#define SUF(f) f##_avx512
#define VF __m512
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VLOADN(p, n) _mm512_maskz_loadu_ps(lanes(n), (p))
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSET1(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
static inline AVX512 __attribute__((always_inline))
void store_col_avx512(__m512 acc, const float* bias, int oc, int n, int act, float slope, float* y, size_t P) {
    const __mmask16 m = lanes(n);
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32((int)P));
    const __m512 zero = _mm512_setzero_ps();
    __m512 o = _mm512_add_ps(acc, bias ? _mm512_maskz_loadu_ps(m, bias + oc) : zero);
    if (act) o = _mm512_mask_mul_ps(o, _mm512_cmp_ps_mask(o, zero, _CMP_LE_OQ), o, _mm512_set1_ps(slope));
    _mm512_mask_i32scatter_ps(y, m, idx, o, 4);
}
#include "conv_direct_blocks.h"

// AVX2 (the kernels' baseline, x86-64-v3): 16 registers, so blocks of 2 vectors (16 output channels)
// × 6 pixels, 12 accumulators, 2 weight loads and 6 broadcasts for 12 FMAs per tap (the shape of
// OpenBLAS's own AVX2 block). The output is written lane by lane.
static inline __m256 loadn_avx2(const float* p, int n) {
    if (n >= 8) return _mm256_loadu_ps(p);
    return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}
#define VL 8
#define NVB 2
#define PIXB 6
#define TGT
#define SUF(f) f##_avx2
#define VF __m256
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VLOADN(p, n) loadn_avx2((p), (n))
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSET1(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
static inline __attribute__((always_inline))
void store_col_avx2(__m256 acc, const float* bias, int oc, int n, int act, float slope, float* y, size_t P) {
    float t[8];
    _mm256_storeu_ps(t, acc);
    for (int l = 0; l < n; l++) {
        float o = t[l] + (bias ? bias[oc + l] : 0.f);
        if (act && o <= 0.f) o *= slope;
        y[(size_t)l * P] = o;
    }
}
#include "conv_direct_blocks.h"

// Offsets into a zero-padded image (C, H + 2·pad, W + 2·pad): of each tap k = (c, kh, kw) from a
// window's corner, and of each output pixel's window corner.
static void tap_offsets(int* toff, int C, int KH, int KW, int PH, int PW) {
    for (int c = 0, k = 0; c < C; c++)
        for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++, k++) toff[k] = (c * PH + kh) * PW + kw;
}
static void pixel_offsets(int* poff, int OH, int OW, int stride, int PW) {
    for (int oh = 0, p = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++, p++) poff[p] = oh * stride * PW + ow * stride;
}
// xp = the image x (C, H, W) with a border of pad zeros.
static void pad_image(float* xp, const float* x, int C, int H, int W, int pad) {
    const int PH = H + 2 * pad, PW = W + 2 * pad;
    memset(xp, 0, sizeof(float) * (size_t)C * PH * PW);
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++)
            memcpy(xp + ((size_t)c * PH + h + pad) * PW + pad, x + ((size_t)c * H + h) * W, sizeof(float) * W);
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
    tap_offsets(toff, C, KH, KW, PH, PW);
    const int OCB = (OC + DIRECT_GROUP - 1) / DIRECT_GROUP;
    const int avx512 = jem_sgemm_invariant_isa();
    const long items = (long)N * OCB;
    #pragma omp parallel if (items > 1)
    {
        float* xp = per_thread + (size_t)omp_get_thread_num() * (img + round16((size_t)P) + (size_t)P * DIRECT_GROUP);
        int* poff = (int*)(xp + img);
        float* T = xp + img + round16((size_t)P);
        pixel_offsets(poff, OH, OW, stride, PW);
        int have = -1;   // the image now in xp
        #pragma omp for schedule(static)
        for (long it = 0; it < items; it++) {
            const int n = (int)(it / OCB), ob = (int)(it % OCB);
            if (n != have) { pad_image(xp, inp + (size_t)n * C * H * W, C, H, W, pad); have = n; }
            float* y = out + (size_t)n * OC * P;
            if (avx512) direct_channels_avx512(Wp, OCP, toff, K, xp, poff, T, y, P, OC, ob * DIRECT_GROUP, bias, act, slope);
            else direct_channels_avx2(Wp, OCP, toff, K, xp, poff, T, y, P, OC, ob * DIRECT_GROUP, bias, act, slope);
        }
    }
}

// ---- input gradient ----------------------------------------------------------------------------
// dcolᵀ[p][m] = Σ_oc Wr[oc][m] · dy[oc][p], with m = (kh, kw, c) (Wr is the weight with its taps
// moved before its input channels, repacked once per call): vectors over m, dy values broadcast, NVB
// vectors × 6 pixels per block, each entry one FMA chain over oc from +0, stored whole (no tail in
// p). Then col2im in channels-last order (each pixel's KH × KW window added as whole vectors of
// channels into a zero-padded gradient, pixels in order), whose interior is transposed into dx.

static void dcol_rows(int avx512, const float* Wr, int M, int OC, const float* dy, int P, float* dcolT, size_t ldt, int m0) {
    if (avx512) dcol_rows_avx512(Wr, M, OC, dy, P, dcolT, ldt, m0);
    else dcol_rows_avx2(Wr, M, OC, dy, P, dcolT, ldt, m0);
}

// dst[j·ld + i] = src[i·ls + j] for i < n (≤ 8) and j < 8: eight rows of src read whole, the first n
// lanes of each of the eight transposed rows stored.
static inline void transpose8x8(const float* src, size_t ls, float* dst, size_t ld, int n) {
    const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ls), r2 = _mm256_loadu_ps(src + 2 * ls), r3 = _mm256_loadu_ps(src + 3 * ls);
    const __m256 r4 = _mm256_loadu_ps(src + 4 * ls), r5 = _mm256_loadu_ps(src + 5 * ls), r6 = _mm256_loadu_ps(src + 6 * ls), r7 = _mm256_loadu_ps(src + 7 * ls);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5), t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE), s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE), s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    const __m256 o[8] = {
        _mm256_permute2f128_ps(s0, s4, 0x20), _mm256_permute2f128_ps(s1, s5, 0x20), _mm256_permute2f128_ps(s2, s6, 0x20), _mm256_permute2f128_ps(s3, s7, 0x20),
        _mm256_permute2f128_ps(s0, s4, 0x31), _mm256_permute2f128_ps(s1, s5, 0x31), _mm256_permute2f128_ps(s2, s6, 0x31), _mm256_permute2f128_ps(s3, s7, 0x31),
    };
    if (n >= 8) {
        for (int j = 0; j < 8; j++) _mm256_storeu_ps(dst + (size_t)j * ld, o[j]);
    } else {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        for (int j = 0; j < 8; j++) _mm256_maskstore_ps(dst + (size_t)j * ld, m, o[j]);
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
    // The interior, transposed into dx in blocks of 8 pixels × 8 channels (a scalar loop was 82 % of
    // col2im's time). A row's last block may read up to 7 pixels past the row, into the border and
    // the next row of g, and stores only the pixels inside; where that would read past g, and for
    // channels past a multiple of 8, the scalar loop.
    const size_t HW = (size_t)H * W, gsize = (size_t)PH * PW * C;
    for (int h = 0; h < H; h++) {
        const size_t row = ((size_t)(h + pad) * PW + pad) * C;
        const float* src = g + row;
        float* d = dx + (size_t)h * W;
        const int C8 = C & ~7;
        for (int w = 0; w < W; w += 8) {
            const int n = W - w < 8 ? W - w : 8;
            if (row + ((size_t)w + 8) * C > gsize) {
                for (int c = 0; c < C8; c++)
                    for (int i = 0; i < n; i++) d[(size_t)c * HW + w + i] = src[(size_t)(w + i) * C + c];
                continue;
            }
            for (int c = 0; c < C8; c += 8) transpose8x8(src + (size_t)w * C + c, (size_t)C, d + (size_t)c * HW + w, HW, n);
        }
        for (int c = C8; c < C; c++)
            for (int w = 0; w < W; w++) d[(size_t)c * HW + w] = src[(size_t)w * C + c];
    }
}

void jem_conv2d_direct_backward_input(float* dinp, const float* dout, const float* weight,
                                      int N, int C, int H, int W, int OC, int KH, int KW,
                                      int stride, int pad, int OH, int OW, float* work) {
    const int KK = KH * KW, M = C * KK, P = OH * OW, MB = (M + DIRECT_GROUP - 1) / DIRECT_GROUP;
    const size_t ldt = round16((size_t)M), img = round16((size_t)C * (H + 2 * pad) * (W + 2 * pad));
    const size_t per = (size_t)P * ldt + img;
    float* Wr = work;   // Wr[oc][t][c] = weight[oc][c][t]
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++)
            for (int t = 0; t < KK; t++) Wr[((size_t)o * KK + t) * C + c] = weight[((size_t)o * C + c) * KK + t];
    float* base = work + round16((size_t)OC * M);
    const int T = jem_num_threads(), avx512 = jem_sgemm_invariant_isa();
    if (N >= T) {   // one image per thread at a time
        #pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            float* dcolT = base + (size_t)omp_get_thread_num() * per;
            const float* dy = dout + (size_t)n * OC * P;
            for (int mb = 0; mb < MB; mb++) dcol_rows(avx512, Wr, M, OC, dy, P, dcolT, ldt, mb * DIRECT_GROUP);
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
        for (int mb = 0; mb < MB; mb++) dcol_rows(avx512, Wr, M, OC, dy, P, dcolT, ldt, mb * DIRECT_GROUP);
        col2im_t(dcolT, ldt, dcolT + (size_t)P * ldt, dinp + (size_t)n * C * H * W, C, H, W, KH, KW, stride, pad, OH, OW);
    }
}

// ---- weight gradient ---------------------------------------------------------------------------
// dweight[oc][k] += Σ_n Σ_p dy[n][oc][p] · xp_n[poff[p] + toff[k]]: per image, dy transposed to
// dyᵀ (P × OCP, zero past OC) and the image padded, then blocks of NVB vectors of output channels ×
// PIXB taps summed over the pixels in registers (wgrad_image), into a thread-private Dw (K × OCP);
// the threads' Dw are added into dweight in thread order (deterministic for a given thread count).
void jem_conv2d_direct_backward_weight(float* dweight, const float* dout, const float* inp,
                                       int N, int C, int H, int W, int OC, int KH, int KW,
                                       int stride, int pad, int OH, int OW, float* work) {
    const int K = C * KH * KW, P = OH * OW, PH = H + 2 * pad, PW = W + 2 * pad;
    const size_t OCP = round16((size_t)OC), img = round16((size_t)C * PH * PW);
    const size_t per = (size_t)K * OCP + (size_t)P * OCP + img + round16((size_t)P);
    int* toff = (int*)work;
    float* base = work + round16((size_t)K);
    tap_offsets(toff, C, KH, KW, PH, PW);
    const int avx512 = jem_sgemm_invariant_isa();
    int T = 1;
    #pragma omp parallel if (N > 1)
    {
        #pragma omp single
        T = omp_get_num_threads();
        float* Dw = base + (size_t)omp_get_thread_num() * per;
        float* dyT = Dw + (size_t)K * OCP;
        float* xp = dyT + (size_t)P * OCP;
        int* poff = (int*)(xp + img);
        memset(Dw, 0, sizeof(float) * (size_t)K * OCP);
        memset(dyT, 0, sizeof(float) * (size_t)P * OCP);   // the columns past OC stay zero
        pixel_offsets(poff, OH, OW, stride, PW);
        #pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            pad_image(xp, inp + (size_t)n * C * H * W, C, H, W, pad);
            const float* dy = dout + (size_t)n * OC * P;
            for (int o = 0; o < OC; o++)
                for (int p = 0; p < P; p++) dyT[(size_t)p * OCP + o] = dy[(size_t)o * P + p];
            if (avx512) wgrad_image_avx512(dyT, OCP, P, xp, poff, toff, K, Dw);
            else wgrad_image_avx2(dyT, OCP, P, xp, poff, toff, K, Dw);
        }
    }
    for (int o = 0; o < OC; o++)
        for (int k = 0; k < K; k++) {
            float s = 0.f;
            for (int t = 0; t < T; t++) s += base[(size_t)t * per + (size_t)k * OCP + o];
            dweight[(size_t)o * K + k] += s;
        }
}
