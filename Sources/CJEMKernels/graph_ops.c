// graph_ops.c: kernels the ONNX graph executor needs beyond the Wide-ResNet's: a direct
// convolution for what im2col+GEMM does not cover (groups, incl. depthwise; dilation; different
// strides or asymmetric padding per axis), max and average pooling with padding, and the smooth
// activations with their first and second derivatives (for Hessian–vector products).
#include "jem_kernels.h"
#include <math.h>
#include <float.h>

#define PAR_THRESHOLD 32768

void jem_conv2d_general_forward(float* out, const float* inp, const float* weight, const float* bias,
                                int N, int C, int H, int W, int OC, int KH, int KW,
                                int sh, int sw, int ph, int pw, int dh, int dw, int groups, int OH, int OW) {
    const int cg = C / groups, ocg = OC / groups;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++) {
        for (int oc = 0; oc < OC; oc++) {
            const int g = oc / ocg;
            float* o = out + ((size_t)n * OC + oc) * OH * OW;
            const float b = bias ? bias[oc] : 0.f;
            for (int i = 0; i < OH * OW; i++) o[i] = b;
            for (int c = 0; c < cg; c++) {
                const float* x = inp + ((size_t)n * C + g * cg + c) * H * W;
                const float* wk = weight + ((size_t)oc * cg + c) * KH * KW;
                for (int ky = 0; ky < KH; ky++) {
                    for (int kx = 0; kx < KW; kx++) {
                        const float wv = wk[ky * KW + kx];
                        for (int oy = 0; oy < OH; oy++) {
                            const int iy = oy * sh - ph + ky * dh;
                            if (iy < 0 || iy >= H) continue;
                            const float* xr = x + (size_t)iy * W;
                            float* orow = o + (size_t)oy * OW;
                            for (int ox = 0; ox < OW; ox++) {
                                const int ix = ox * sw - pw + kx * dw;
                                if (ix >= 0 && ix < W) orow[ox] += wv * xr[ix];
                            }
                        }
                    }
                }
            }
        }
    }
}

void jem_conv2d_general_backward_input(float* dinp, const float* dout, const float* weight,
                                       int N, int C, int H, int W, int OC, int KH, int KW,
                                       int sh, int sw, int ph, int pw, int dh, int dw, int groups, int OH, int OW) {
    const int cg = C / groups, ocg = OC / groups;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++) {
        for (int ci = 0; ci < C; ci++) {
            const int g = ci / cg, c = ci % cg;
            float* dx = dinp + ((size_t)n * C + ci) * H * W;
            for (int i = 0; i < H * W; i++) dx[i] = 0.f;
            for (int j = 0; j < ocg; j++) {
                const int oc = g * ocg + j;
                const float* dy = dout + ((size_t)n * OC + oc) * OH * OW;
                const float* wk = weight + ((size_t)oc * cg + c) * KH * KW;
                for (int ky = 0; ky < KH; ky++) {
                    for (int kx = 0; kx < KW; kx++) {
                        const float wv = wk[ky * KW + kx];
                        for (int oy = 0; oy < OH; oy++) {
                            const int iy = oy * sh - ph + ky * dh;
                            if (iy < 0 || iy >= H) continue;
                            float* xr = dx + (size_t)iy * W;
                            const float* dyr = dy + (size_t)oy * OW;
                            for (int ox = 0; ox < OW; ox++) {
                                const int ix = ox * sw - pw + kx * dw;
                                if (ix >= 0 && ix < W) xr[ix] += wv * dyr[ox];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The flat index in the (H, W) plane of each output's maximum (first maximum wins; padding is
/// −∞ and never selected unless a window is entirely padding, then −1).
static inline int maxpool_arg(const float* x, int H, int W, int oy, int ox, int KH, int KW,
                              int sh, int sw, int ph, int pw, int dh, int dw) {
    int best = -1;
    float bv = -INFINITY;
    for (int ky = 0; ky < KH; ky++) {
        const int iy = oy * sh - ph + ky * dh;
        if (iy < 0 || iy >= H) continue;
        for (int kx = 0; kx < KW; kx++) {
            const int ix = ox * sw - pw + kx * dw;
            if (ix < 0 || ix >= W) continue;
            const float v = x[iy * W + ix];
            if (best < 0 || v > bv || (v != v && bv == bv)) { bv = v; best = iy * W + ix; }
        }
    }
    return best;
}

void jem_maxpool_forward(float* out, const float* inp, int NC, int H, int W, int KH, int KW,
                         int sh, int sw, int ph, int pw, int dh, int dw, int OH, int OW) {
    #pragma omp parallel for schedule(static) if ((size_t)NC * OH * OW > PAR_THRESHOLD / 8)
    for (int p = 0; p < NC; p++) {
        const float* x = inp + (size_t)p * H * W;
        float* o = out + (size_t)p * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const int a = maxpool_arg(x, H, W, oy, ox, KH, KW, sh, sw, ph, pw, dh, dw);
                o[oy * OW + ox] = a < 0 ? -INFINITY : x[a];
            }
    }
}

void jem_maxpool_backward(float* dinp, const float* dout, const float* inp, int NC, int H, int W, int KH, int KW,
                          int sh, int sw, int ph, int pw, int dh, int dw, int OH, int OW) {
    #pragma omp parallel for schedule(static) if ((size_t)NC * OH * OW > PAR_THRESHOLD / 8)
    for (int p = 0; p < NC; p++) {
        const float* x = inp + (size_t)p * H * W;
        float* dx = dinp + (size_t)p * H * W;
        const float* dy = dout + (size_t)p * OH * OW;
        for (int i = 0; i < H * W; i++) dx[i] = 0.f;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const int a = maxpool_arg(x, H, W, oy, ox, KH, KW, sh, sw, ph, pw, dh, dw);
                if (a >= 0) dx[a] += dy[oy * OW + ox];
            }
    }
}

void jem_maxpool_tangent(float* tout, const float* tinp, const float* inp, int NC, int H, int W, int KH, int KW,
                         int sh, int sw, int ph, int pw, int dh, int dw, int OH, int OW) {
    #pragma omp parallel for schedule(static) if ((size_t)NC * OH * OW > PAR_THRESHOLD / 8)
    for (int p = 0; p < NC; p++) {
        const float* x = inp + (size_t)p * H * W;
        const float* t = tinp + (size_t)p * H * W;
        float* o = tout + (size_t)p * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const int a = maxpool_arg(x, H, W, oy, ox, KH, KW, sh, sw, ph, pw, dh, dw);
                o[oy * OW + ox] = a < 0 ? 0.f : t[a];
            }
    }
}

/// Divisor of one average-pool window: the whole kernel with count_include_pad (clipped to the
/// padded extent, as ONNX and PyTorch do for ceil-mode windows), else the in-image elements.
static inline int avgpool_count(int H, int W, int oy, int ox, int KH, int KW, int sh, int sw, int ph, int pw,
                                int include_pad) {
    int y0 = oy * sh - ph, x0 = ox * sw - pw;
    int y1 = y0 + KH, x1 = x0 + KW;
    if (include_pad) {
        int ye = y1 < H + ph ? y1 : H + ph, xe = x1 < W + pw ? x1 : W + pw;
        return (ye - y0) * (xe - x0);
    }
    int ys = y0 < 0 ? 0 : y0, xs = x0 < 0 ? 0 : x0;
    int ye = y1 < H ? y1 : H, xe = x1 < W ? x1 : W;
    int c = (ye - ys) * (xe - xs);
    return c > 0 ? c : 1;
}

void jem_avgpool_forward(float* out, const float* inp, int NC, int H, int W, int KH, int KW,
                         int sh, int sw, int ph, int pw, int include_pad, int OH, int OW) {
    #pragma omp parallel for schedule(static) if ((size_t)NC * OH * OW > PAR_THRESHOLD / 8)
    for (int p = 0; p < NC; p++) {
        const float* x = inp + (size_t)p * H * W;
        float* o = out + (size_t)p * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float s = 0.f;
                for (int ky = 0; ky < KH; ky++) {
                    const int iy = oy * sh - ph + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < KW; kx++) {
                        const int ix = ox * sw - pw + kx;
                        if (ix >= 0 && ix < W) s += x[iy * W + ix];
                    }
                }
                o[oy * OW + ox] = s / (float)avgpool_count(H, W, oy, ox, KH, KW, sh, sw, ph, pw, include_pad);
            }
    }
}

void jem_avgpool_backward(float* dinp, const float* dout, int NC, int H, int W, int KH, int KW,
                          int sh, int sw, int ph, int pw, int include_pad, int OH, int OW) {
    #pragma omp parallel for schedule(static) if ((size_t)NC * OH * OW > PAR_THRESHOLD / 8)
    for (int p = 0; p < NC; p++) {
        float* dx = dinp + (size_t)p * H * W;
        const float* dy = dout + (size_t)p * OH * OW;
        for (int i = 0; i < H * W; i++) dx[i] = 0.f;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const float g = dy[oy * OW + ox] / (float)avgpool_count(H, W, oy, ox, KH, KW, sh, sw, ph, pw, include_pad);
                for (int ky = 0; ky < KH; ky++) {
                    const int iy = oy * sh - ph + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < KW; kx++) {
                        const int ix = ox * sw - pw + kx;
                        if (ix >= 0 && ix < W) dx[iy * W + ix] += g;
                    }
                }
            }
    }
}

// Activations: kind 0 sigmoid, 1 tanh, 2 softplus. value, first and second derivative at x.
static inline void smooth_eval(int kind, float x, float* f, float* d1, float* d2) {
    switch (kind) {
    case 0: { float s = x >= 0 ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x));
              *f = s; *d1 = s * (1 - s); *d2 = s * (1 - s) * (1 - 2 * s); break; }
    case 1: { float t = tanhf(x); *f = t; *d1 = 1 - t * t; *d2 = -2 * t * (1 - t * t); break; }
    default: { float s = x >= 0 ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x));
               *f = x > 20.f ? x : log1pf(expf(x)); *d1 = s; *d2 = s * (1 - s); break; }
    }
}

void jem_smooth_forward(float* out, const float* inp, int kind, size_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) { float f, a, b; smooth_eval(kind, inp[i], &f, &a, &b); out[i] = f; }
}

void jem_smooth_backward(float* dinp, const float* dout, const float* inp, int kind, size_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) { float f, a, b; smooth_eval(kind, inp[i], &f, &a, &b); dinp[i] = dout[i] * a; }
}

void jem_smooth_dual_backward(float* dinp, float* tdinp, const float* dout, const float* tdout,
                              const float* inp, const float* tinp, int kind, size_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) {
        float f, a, b; smooth_eval(kind, inp[i], &f, &a, &b);
        dinp[i] = dout[i] * a;
        tdinp[i] = tdout[i] * a + dout[i] * b * tinp[i];
    }
}

void jem_add_leaky_forward(float* out, const float* a, const float* b, float slope, size_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) { float v = a[i] + b[i]; out[i] = v > 0.f ? v : slope * v; }
}
