// pointwise.c: elementwise kernels and global average pooling.
#include "jem_kernels.h"
#include <string.h>

#define PAR_THRESHOLD 32768

void jem_leaky_relu_forward(float* out, const float* inp, float slope, size_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) { float v = inp[i]; out[i] = v > 0.f ? v : slope * v; }
}

void jem_leaky_relu_backward(float* dinp, const float* dout, const float* inp, float slope, size_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) dinp[i] = inp[i] > 0.f ? dout[i] : slope * dout[i];
}

void jem_add_forward(float* out, const float* a, const float* b, size_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void jem_axpy(float* y, const float* x, float alpha, size_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

void jem_scale(float* y, float alpha, size_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) y[i] *= alpha;
}

void jem_clamp(float* x, float lo, float hi, size_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_THRESHOLD)
    for (size_t i = 0; i < n; i++) { float v = x[i]; x[i] = v < lo ? lo : (v > hi ? hi : v); }
}

void jem_channel_affine(float* out, const float* inp, const float* scale, const float* shift,
                        int N, int C, int HW) {
    #pragma omp parallel for schedule(static) if ((size_t)N * C * HW > PAR_THRESHOLD)
    for (int nc = 0; nc < N * C; nc++) {
        int c = nc % C;
        float s = scale[c], b = shift ? shift[c] : 0.f;
        const float* x = inp + (size_t)nc * HW;
        float* y = out + (size_t)nc * HW;
        for (int i = 0; i < HW; i++) y[i] = x[i] * s + b;
    }
}

void jem_global_avg_pool_forward(float* out, const float* inp, int N, int C, int HW) {
    for (int nc = 0; nc < N * C; nc++) {
        const float* x = inp + (size_t)nc * HW;
        double s = 0;
        for (int i = 0; i < HW; i++) s += x[i];
        out[nc] = (float)(s / HW);
    }
}

void jem_global_avg_pool_backward(float* dinp, const float* dout, int N, int C, int HW) {
    for (int nc = 0; nc < N * C; nc++) {
        float g = dout[nc] / (float)HW;
        float* d = dinp + (size_t)nc * HW;
        for (int i = 0; i < HW; i++) d[i] = g;
    }
}
