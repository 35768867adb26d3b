// logits.c: reductions over class logits (N,K): logsumexp (the JEM's -E(x)) and softmax
// cross-entropy, with max-subtraction for stability.
#include "jem_kernels.h"
#include <math.h>

static inline float row_lse(const float* z, int K) {
    float m = z[0];
    for (int k = 1; k < K; k++) if (z[k] > m) m = z[k];
    double s = 0;
    for (int k = 0; k < K; k++) s += exp((double)z[k] - m);
    return m + (float)log(s);
}

void jem_logsumexp_forward(float* out, const float* logits, int N, int K) {
    for (int n = 0; n < N; n++) out[n] = row_lse(logits + (size_t)n * K, K);
}

void jem_logsumexp_backward(float* dlogits, const float* dout, const float* logits, int N, int K) {
    for (int n = 0; n < N; n++) {
        const float* z = logits + (size_t)n * K;
        float l = row_lse(z, K);
        for (int k = 0; k < K; k++) dlogits[(size_t)n * K + k] += dout[n] * expf(z[k] - l);
    }
}

void jem_softmax_xent_forward(float* loss, const float* logits, const int* labels, int N, int K) {
    for (int n = 0; n < N; n++) {
        const float* z = logits + (size_t)n * K;
        loss[n] = row_lse(z, K) - z[labels[n]];
    }
}

void jem_softmax_xent_backward(float* dlogits, const float* dloss, const float* logits,
                               const int* labels, int N, int K) {
    for (int n = 0; n < N; n++) {
        const float* z = logits + (size_t)n * K;
        float l = row_lse(z, K);
        for (int k = 0; k < K; k++)
            dlogits[(size_t)n * K + k] += dloss[n] * (expf(z[k] - l) - (k == labels[n] ? 1.f : 0.f));
    }
}
