// batchnorm.c: 2-D batch normalisation over (N,H,W) per channel, train and eval modes,
// matching torch.nn.BatchNorm2d (biased variance to normalise, unbiased for running_var).
#include "jem_kernels.h"
#include <math.h>

void jem_batchnorm_train_forward(float* out, float* mean, float* invstd, float* running_mean,
                                 float* running_var, const float* inp, const float* gamma,
                                 const float* beta, float eps, float momentum, int N, int C, int HW) {
    const size_t M = (size_t)N * HW;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int n = 0; n < N; n++) {
            const float* x = inp + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) s += x[i];
        }
        double mu = s / M;
        for (int n = 0; n < N; n++) {
            const float* x = inp + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) { double d = x[i] - mu; ss += d * d; }
        }
        double var = ss / M;
        float is = (float)(1.0 / sqrt(var + eps));
        mean[c] = (float)mu; invstd[c] = is;
        if (running_mean) {
            double unbiased = M > 1 ? ss / (M - 1) : var;
            running_mean[c] = (1 - momentum) * running_mean[c] + momentum * (float)mu;
            running_var[c] = (1 - momentum) * running_var[c] + momentum * (float)unbiased;
        }
        float g = gamma ? gamma[c] : 1.f, b = beta ? beta[c] : 0.f;
        for (int n = 0; n < N; n++) {
            const float* x = inp + ((size_t)n * C + c) * HW;
            float* y = out + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) y[i] = ((x[i] - (float)mu) * is) * g + b;
        }
    }
}

void jem_batchnorm_train_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                                  const float* inp, const float* mean, const float* invstd,
                                  const float* gamma, int N, int C, int HW) {
    const size_t M = (size_t)N * HW;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double sdy = 0, sdyx = 0;
        float mu = mean[c], is = invstd[c];
        for (int n = 0; n < N; n++) {
            const float* x = inp + ((size_t)n * C + c) * HW;
            const float* dy = dout + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) { sdy += dy[i]; sdyx += dy[i] * (x[i] - mu) * is; }
        }
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        if (!dinp) continue;
        float g = gamma ? gamma[c] : 1.f;
        float mdy = (float)(sdy / M), mdyx = (float)(sdyx / M);
        for (int n = 0; n < N; n++) {
            const float* x = inp + ((size_t)n * C + c) * HW;
            const float* dy = dout + ((size_t)n * C + c) * HW;
            float* dx = dinp + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                float xh = (x[i] - mu) * is;
                dx[i] = g * is * (dy[i] - mdy - xh * mdyx);
            }
        }
    }
}

void jem_batchnorm_eval_forward(float* out, const float* inp, const float* running_mean,
                                const float* running_var, const float* gamma, const float* beta,
                                float eps, int N, int C, int HW) {
    #pragma omp parallel for schedule(static)
    for (int nc = 0; nc < N * C; nc++) {
        int c = nc % C;
        float is = 1.0f / sqrtf(running_var[c] + eps);
        float s = (gamma ? gamma[c] : 1.f) * is;
        float b = (beta ? beta[c] : 0.f) - running_mean[c] * s;
        const float* x = inp + (size_t)nc * HW;
        float* y = out + (size_t)nc * HW;
        for (int i = 0; i < HW; i++) y[i] = x[i] * s + b;
    }
}

void jem_batchnorm_eval_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                                 const float* inp, const float* running_mean,
                                 const float* running_var, const float* gamma, float eps,
                                 int N, int C, int HW) {
    for (int c = 0; c < C; c++) {
        float is = 1.0f / sqrtf(running_var[c] + eps);
        float s = (gamma ? gamma[c] : 1.f) * is;
        double sdy = 0, sdyx = 0;
        for (int n = 0; n < N; n++) {
            const float* x = inp + ((size_t)n * C + c) * HW;
            const float* dy = dout + ((size_t)n * C + c) * HW;
            float* dx = dinp ? dinp + ((size_t)n * C + c) * HW : 0;
            for (int i = 0; i < HW; i++) {
                if (dx) dx[i] = dy[i] * s;
                sdy += dy[i]; sdyx += dy[i] * (x[i] - running_mean[c]) * is;
            }
        }
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
    }
}
