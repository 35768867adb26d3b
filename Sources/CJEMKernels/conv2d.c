// conv2d.c: 2-D convolution, NCHW, any kernel size, stride and padding, optional bias.
// Fast path: per-image im2col into a thread-private buffer, then one OpenBLAS sgemm
//   out_n (OC, OH*OW) = weight (OC, C*KH*KW) · col (C*KH*KW, OH*OW).
// A 1×1, stride-1, unpadded convolution skips im2col (col is the image itself).
// Naive direct-loop oracles sit at the bottom of the file.
#include "jem_kernels.h"
#include "split_even_odd.h"
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

// Range of output columns ow whose input column iw = ow*stride - pad + kw lies in [0, W).
static inline void valid_range(int kw, int stride, int pad, int W, int OW, int* lo, int* hi) {
    int off = kw - pad;
    int l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int h = (W - 1 - off) >= 0 ? (W - 1 - off) / stride + 1 : 0;
    *lo = imin(l, OW);
    *hi = imax(imin(h, OW), *lo);
}

// im2col for stride 2: each source row is zero-padded and split into its even and odd entries
// once (AVX2 shuffles, 8 pairs at a time), and every kw's row of col is then a contiguous copy:
// col[.., kw][oh][ow] = xpad[2ow + kw] = E[ow + kw/2] (kw even) or O[ow + (kw − 1)/2] (kw odd),
// instead of KW scalar stride-2 gathers. The same values as the generic loop (copies only). Not for
// 1×1 kernels: one gather per row there, and the split costs more than it saves.
enum { IM2COL_S2_MAX_W = 4096 };
static void im2col_s2(const float* x, int C, int H, int W, int KH, int KW, int pad, int OH, int OW, float* col) {
    const int PW = W + 2 * pad, NB = ((PW + 1) / 2 + 7) / 8;
    float xpad[16 * ((IM2COL_S2_MAX_W + 2 * 8 + 1) / 16 + 2)], E[8 * ((IM2COL_S2_MAX_W + 16) / 16 + 2)], O[8 * ((IM2COL_S2_MAX_W + 16) / 16 + 2)];
    memset(xpad, 0, sizeof(float) * 16 * (size_t)NB);
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < KH; kh++)
            for (int oh = 0; oh < OH; oh++) {
                const int ih = oh * 2 - pad + kh;
                float* d0 = col + ((size_t)(c * KH + kh) * KW) * OH * OW + (size_t)oh * OW;
                if (ih < 0 || ih >= H) {
                    for (int kw = 0; kw < KW; kw++) memset(d0 + (size_t)kw * OH * OW, 0, sizeof(float) * OW);
                    continue;
                }
                memcpy(xpad + pad, x + ((size_t)c * H + ih) * W, sizeof(float) * W);
                jem_split_even_odd(xpad, NB, E, O);
                for (int kw = 0; kw < KW; kw++)
                    memcpy(d0 + (size_t)kw * OH * OW, (kw & 1 ? O : E) + kw / 2, sizeof(float) * OW);
            }
}

// x (C,H,W) -> col (C*KH*KW, OH*OW)
static void im2col(const float* x, int C, int H, int W, int KH, int KW, int stride, int pad,
                   int OH, int OW, float* col) {
    if (stride == 2 && KW >= 3 && W + 2 * pad <= IM2COL_S2_MAX_W) { im2col_s2(x, C, H, W, KH, KW, pad, OH, OW, col); return; }
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++) {
                float* dst = col + (size_t)((c * KH + kh) * KW + kw) * OH * OW;
                int lo, hi;
                valid_range(kw, stride, pad, W, OW, &lo, &hi);
                int off = kw - pad;
                for (int oh = 0; oh < OH; oh++) {
                    float* d = dst + (size_t)oh * OW;
                    int ih = oh * stride - pad + kh;
                    if (ih < 0 || ih >= H) { memset(d, 0, sizeof(float) * OW); continue; }
                    const float* src = x + ((size_t)c * H + ih) * W;
                    for (int ow = 0; ow < lo; ow++) d[ow] = 0.f;
                    if (stride == 1) {
                        if (hi > lo) memcpy(d + lo, src + lo + off, sizeof(float) * (hi - lo));
                    } else {
                        for (int ow = lo; ow < hi; ow++) d[ow] = src[ow * stride + off];
                    }
                    for (int ow = hi; ow < OW; ow++) d[ow] = 0.f;
                }
            }
}

// col (C*KH*KW, OH*OW) -> dx (C,H,W), dx zeroed here then accumulated.
static void col2im(const float* col, int C, int H, int W, int KH, int KW, int stride, int pad,
                   int OH, int OW, float* dx) {
    memset(dx, 0, sizeof(float) * (size_t)C * H * W);
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++) {
                const float* srcrow = col + (size_t)((c * KH + kh) * KW + kw) * OH * OW;
                int lo, hi;
                valid_range(kw, stride, pad, W, OW, &lo, &hi);
                int off = kw - pad;
                for (int oh = 0; oh < OH; oh++) {
                    int ih = oh * stride - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    float* d = dx + ((size_t)c * H + ih) * W;
                    const float* s = srcrow + (size_t)oh * OW;
                    if (stride == 1) {
                        for (int ow = lo; ow < hi; ow++) d[ow + off] += s[ow];
                    } else {
                        for (int ow = lo; ow < hi; ow++) d[ow * stride + off] += s[ow];
                    }
                }
            }
}

static inline int is_pointwise(int KH, int KW, int stride, int pad) {
    return KH == 1 && KW == 1 && stride == 1 && pad == 0;
}

// Winograd needs enough channels for its 16 GEMMs (OC × C × tiles) to beat one im2col GEMM.
enum { WINOGRAD_MIN_CHANNELS = 16 };

// A fast path that an environment variable set to 0 turns off (for A/B runs); read once.
static int env_switch(const char* name, int* cached) {
    if (*cached < 0) { const char* e = getenv(name); *cached = !(e && e[0] == '0'); }
    return *cached;
}

int jem_conv2d_uses_winograd(int N, int C, int H, int W, int OC, int KH, int KW, int stride, int pad) {
    static int cached = -1;
    const int enabled = env_switch("JEM_WINOGRAD", &cached);
    // Its 16 GEMMs also need enough tiles: for one small image (batch-1 latency on 14×14 or 7×7
    // maps) a single im2col GEMM is faster.
    // In batch-invariant mode the tile condition is per image, so the choice never depends on N.
    const long tiles = (long)((H + 1) / 2) * ((W + 1) / 2);
    return enabled && KH == 3 && KW == 3 && stride == 1 && pad == 1
        && C >= WINOGRAD_MIN_CHANNELS && OC >= WINOGRAD_MIN_CHANNELS
        && (jem_batch_invariant() ? tiles >= 16 : (long)N * tiles >= 64);
}

size_t jem_conv2d_workspace(int C, int KH, int KW, int OH, int OW, int OC, int threads) {
    size_t col = (size_t)C * KH * KW * OH * OW;
    size_t wgt = (size_t)OC * C * KH * KW;
    size_t need = (size_t)threads * (col + wgt);
    if (KH == 3 && KW == 3) {   // a possible Winograd (stride 1, pad 1: OH = H) or direct (stride 2) shape
        size_t w = jem_winograd_workspace(C, OC, OH, OW, threads);
        if (w > need) need = w;
        w = jem_winograd_wgrad_workspace(C, OC, OH, OW, threads);
        if (w > need) need = w;
        // a possible strided direct shape: H + 2·pad ≤ 2·OH + 2 for any pad at stride 2
        w = jem_conv2d_direct_workspace(C, 2 * OH, 2 * OW, OC, KH, KW, 1, OH, OW, threads);
        if (w > need) need = w;
    }
    return need;
}

// A single image gets no OpenMP region (waking the idle worker costs more than it saves), so its
// im2col GEMM runs on OpenBLAS's own threads instead, outside any OpenMP region so the two pools
// never run at once (batch-1 forward +15 %, input gradient +18 %). JEM_B1_BLAS=0 turns it off
// for A/B runs.
static int single_blas_threads(int N) {
    static int cached = -1;
    const int t = jem_num_threads();
    // Not in batch-invariant mode: threaded BLAS may sum in another order than the batched path.
    if (N != 1 || t < 2 || jem_batch_invariant() || !env_switch("JEM_B1_BLAS", &cached)) return 0;
    openblas_set_num_threads(t);
    return 1;
}
static inline void single_blas_done(int on) { if (on) openblas_set_num_threads(1); }

void jem_conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                        int N, int C, int H, int W, int OC, int KH, int KW,
                        int stride, int pad, int OH, int OW, float* work) {
    jem_conv2d_forward_act(out, inp, weight, bias, N, C, H, W, OC, KH, KW, stride, pad, OH, OW, work, 0, 0.f);
}

void jem_conv2d_forward_act(float* out, const float* inp, const float* weight, const float* bias,
                            int N, int C, int H, int W, int OC, int KH, int KW,
                            int stride, int pad, int OH, int OW, float* work, int act, float slope) {
    if (jem_conv2d_uses_winograd(N, C, H, W, OC, KH, KW, stride, pad)) {
        jem_conv3x3_winograd_forward_act(out, inp, weight, bias, N, C, H, W, OC, work, act, slope);
        return;
    }
    if (jem_conv2d_uses_direct(C, OC, KH, KW, stride, pad)) {
        jem_conv2d_direct_forward_act(out, inp, weight, bias, N, C, H, W, OC, KH, KW, stride, pad, OH, OW, work, act, slope);
        return;
    }
    const int K = C * KH * KW, P = OH * OW;
    const size_t per = (size_t)K * P + (size_t)OC * K;
    const int pw = is_pointwise(KH, KW, stride, pad);
    const int b1 = single_blas_threads(N);
    #pragma omp parallel for schedule(static) if (N > 1)
    for (int n = 0; n < N; n++) {
        float* col = work + (size_t)omp_get_thread_num() * per;
        const float* x = inp + (size_t)n * C * H * W;
        float* y = out + (size_t)n * OC * P;
        if (pw) col = (float*)x; else im2col(x, C, H, W, KH, KW, stride, pad, OH, OW, col);
        if (bias) {
            for (int o = 0; o < OC; o++) { float b = bias[o]; float* yo = y + (size_t)o * P; for (int p = 0; p < P; p++) yo[p] = b; }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, P, K,
                    1.0f, weight, K, col, P, bias ? 1.0f : 0.0f, y, P);
        if (act) { for (size_t i = 0; i < (size_t)OC * P; i++) { float v = y[i]; y[i] = v > 0.f ? v : slope * v; } }
    }
    single_blas_done(b1);
}

int jem_conv2d_backward_input_act(float* dinp, const float* dout, const float* act_out, float slope, const float* weight,
                                  int N, int C, int H, int W, int OC, int KH, int KW,
                                  int stride, int pad, int OH, int OW, float* work) {
    (void)OH; (void)OW;
    if (!jem_conv2d_uses_winograd(N, C, H, W, OC, KH, KW, stride, pad)) return 0;
    jem_conv3x3_winograd_backward_input_act(dinp, dout, act_out, slope, weight, N, C, H, W, OC, work);
    return 1;
}

void jem_conv2d_backward_input(float* dinp, const float* dout, const float* weight,
                               int N, int C, int H, int W, int OC, int KH, int KW,
                               int stride, int pad, int OH, int OW, float* work) {
    if (jem_conv2d_uses_winograd(N, C, H, W, OC, KH, KW, stride, pad)) {
        jem_conv3x3_winograd_backward_input(dinp, dout, weight, N, C, H, W, OC, work);
        return;
    }
    if (jem_conv2d_uses_direct(C, OC, KH, KW, stride, pad)) {
        jem_conv2d_direct_backward_input(dinp, dout, weight, N, C, H, W, OC, KH, KW, stride, pad, OH, OW, work);
        return;
    }
    const int K = C * KH * KW, P = OH * OW;
    const size_t per = (size_t)K * P + (size_t)OC * K;
    const int pw = is_pointwise(KH, KW, stride, pad);
    const int b1 = single_blas_threads(N);
    #pragma omp parallel for schedule(static) if (N > 1)
    for (int n = 0; n < N; n++) {
        float* col = work + (size_t)omp_get_thread_num() * per;
        float* dx = dinp + (size_t)n * C * H * W;
        const float* dy = dout + (size_t)n * OC * P;
        // dcol (K, P) = weightᵀ (K, OC) · dy (OC, P)
        float* dst = pw ? dx : col;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, OC,
                    1.0f, weight, K, dy, P, 0.0f, dst, P);
        if (!pw) col2im(col, C, H, W, KH, KW, stride, pad, OH, OW, dx);
    }
    single_blas_done(b1);
}

// dbias (OC) += sum over N, P of dout (N, OC, P): each image's plane summed in 16 float lanes (a
// vector loop; a single double chain was latency-bound, 1.8 % of a training iteration), the images
// in double.
static void bias_grad(float* dbias, const float* dout, int N, int OC, int P) {
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) {
        double s = 0;
        for (int n = 0; n < N; n++) {
            const float* dy = dout + ((size_t)n * OC + o) * P;
            float a[16] = {0.f}, t = 0.f;
            int p = 0;
            for (; p + 16 <= P; p += 16)
                for (int l = 0; l < 16; l++) a[l] += dy[p + l];
            for (; p < P; p++) t += dy[p];
            for (int l = 0; l < 16; l++) t += a[l];
            s += t;
        }
        dbias[o] += (float)s;
    }
}

// dweight += Σ_n dy_n · im2col(x_n)ᵀ, one OpenBLAS GEMM per image into a thread-private accumulator.
static void backward_weight_im2col(float* dweight, const float* dout, const float* inp,
                                   int N, int C, int H, int W, int OC, int KH, int KW,
                                   int stride, int pad, int OH, int OW, float* work) {
    const int K = C * KH * KW, P = OH * OW;
    const size_t per = (size_t)K * P + (size_t)OC * K;
    const int pw = is_pointwise(KH, KW, stride, pad);
    int T = 1;
    #pragma omp parallel
    {
        #pragma omp single
        T = omp_get_num_threads();
        int t = omp_get_thread_num();
        float* col = work + (size_t)t * per;
        float* dw = col + (size_t)K * P;   // thread-private dweight accumulator (OC, K)
        memset(dw, 0, sizeof(float) * (size_t)OC * K);
        #pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float* x = inp + (size_t)n * C * H * W;
            const float* dy = dout + (size_t)n * OC * P;
            const float* c = x;
            if (!pw) { im2col(x, C, H, W, KH, KW, stride, pad, OH, OW, col); c = col; }
            // dw (OC, K) += dy (OC, P) · colᵀ (P, K)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, K, P,
                        1.0f, dy, P, c, P, 1.0f, dw, K);
        }
    }
    // Reduce the private accumulators in a fixed order: deterministic for a given thread count.
    for (int t = 0; t < T; t++) {
        const float* dw = work + (size_t)t * per + (size_t)K * P;
        for (size_t i = 0; i < (size_t)OC * K; i++) dweight[i] += dw[i];
    }
}

void jem_conv2d_backward_weight(float* dweight, float* dbias, const float* dout, const float* inp,
                                int N, int C, int H, int W, int OC, int KH, int KW,
                                int stride, int pad, int OH, int OW, float* work) {
    if (jem_conv2d_uses_winograd(N, C, H, W, OC, KH, KW, stride, pad))
        jem_conv3x3_winograd_backward_weight(dweight, dout, inp, N, C, H, W, OC, work);
    else if (jem_conv2d_uses_direct(C, OC, KH, KW, stride, pad))
        jem_conv2d_direct_backward_weight(dweight, dout, inp, N, C, H, W, OC, KH, KW, stride, pad, OH, OW, work);
    else
        backward_weight_im2col(dweight, dout, inp, N, C, H, W, OC, KH, KW, stride, pad, OH, OW, work);
    if (dbias) bias_grad(dbias, dout, N, OC, OH * OW);
}

void jem_conv2d_forward_naive(float* out, const float* inp, const float* weight, const float* bias,
                              int N, int C, int H, int W, int OC, int KH, int KW,
                              int stride, int pad, int OH, int OW) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double s = bias ? bias[o] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int kh = 0; kh < KH; kh++)
                            for (int kw = 0; kw < KW; kw++) {
                                int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                s += (double)inp[(((size_t)n * C + c) * H + ih) * W + iw] *
                                     weight[(((size_t)o * C + c) * KH + kh) * KW + kw];
                            }
                    out[(((size_t)n * OC + o) * OH + oh) * OW + ow] = (float)s;
                }
}

void jem_conv2d_backward_naive(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight,
                               int N, int C, int H, int W, int OC, int KH, int KW,
                               int stride, int pad, int OH, int OW) {
    if (dinp) memset(dinp, 0, sizeof(float) * (size_t)N * C * H * W);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    float g = dout[(((size_t)n * OC + o) * OH + oh) * OW + ow];
                    if (dbias) dbias[o] += g;
                    for (int c = 0; c < C; c++)
                        for (int kh = 0; kh < KH; kh++)
                            for (int kw = 0; kw < KW; kw++) {
                                int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                size_t xi = (((size_t)n * C + c) * H + ih) * W + iw;
                                size_t wi = (((size_t)o * C + c) * KH + kh) * KW + kw;
                                if (dinp) dinp[xi] += g * weight[wi];
                                if (dweight) dweight[wi] += g * inp[xi];
                            }
                }
}
