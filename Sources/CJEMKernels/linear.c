// linear.c: fully connected layer, out (N,OUT) = inp (N,IN) · weight (OUT,IN)ᵀ + bias (OUT).
#include "jem_kernels.h"
#include <cblas.h>
#include <string.h>

void jem_linear_forward(float* out, const float* inp, const float* weight, const float* bias,
                        int N, int IN, int OUT) {
    for (int n = 0; n < N; n++) {
        if (bias) memcpy(out + (size_t)n * OUT, bias, sizeof(float) * OUT);
        else memset(out + (size_t)n * OUT, 0, sizeof(float) * OUT);
    }
    // Batch-invariant mode: the same call for every row whatever N is (BLAS picks kernels by shape).
    if (jem_batch_invariant()) {
        for (int n = 0; n < N; n++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, OUT, IN,
                        1.0f, inp + (size_t)n * IN, IN, weight, IN, 1.0f, out + (size_t)n * OUT, OUT);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OUT, IN,
                1.0f, inp, IN, weight, IN, 1.0f, out, OUT);
}

void jem_linear_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                         const float* inp, const float* weight, int N, int IN, int OUT) {
    if (dinp && jem_batch_invariant()) {
        for (int n = 0; n < N; n++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, IN, OUT,
                        1.0f, dout + (size_t)n * OUT, OUT, weight, IN, 0.0f, dinp + (size_t)n * IN, IN);
    } else if (dinp)  // dinp (N,IN) = dout (N,OUT) · weight (OUT,IN)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IN, OUT,
                    1.0f, dout, OUT, weight, IN, 0.0f, dinp, IN);
    if (dweight)  // dweight (OUT,IN) += doutᵀ (OUT,N) · inp (N,IN)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, N,
                    1.0f, dout, OUT, inp, IN, 1.0f, dweight, IN);
    if (dbias)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OUT; o++) dbias[o] += dout[(size_t)n * OUT + o];
}

void jem_linear_forward_naive(float* out, const float* inp, const float* weight, const float* bias,
                              int N, int IN, int OUT) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int i = 0; i < IN; i++) s += (double)inp[(size_t)n * IN + i] * weight[(size_t)o * IN + i];
            out[(size_t)n * OUT + o] = (float)s;
        }
}

void jem_linear_backward_naive(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, int N, int IN, int OUT) {
    if (dinp) memset(dinp, 0, sizeof(float) * (size_t)N * IN);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            float g = dout[(size_t)n * OUT + o];
            if (dbias) dbias[o] += g;
            for (int i = 0; i < IN; i++) {
                if (dinp) dinp[(size_t)n * IN + i] += g * weight[(size_t)o * IN + i];
                if (dweight) dweight[(size_t)o * IN + i] += g * inp[(size_t)n * IN + i];
            }
        }
}
