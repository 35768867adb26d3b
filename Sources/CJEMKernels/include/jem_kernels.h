// jem_kernels.h: the C compute kernels of robust-eval. Kernels take pointers and sizes; they never
// allocate, print or exit. Swift (JEMCore) owns memory and checks every shape before a call.
//
// Layout: NCHW float32, C order. Dimensions are N (batch), C (channels), H, W (height, width),
// OC (output channels), KH, KW (kernel), OH, OW (output spatial size).
//
// Gradient contract (as in llm.c): a backward kernel *overwrites* the input gradient (`dinp =`)
// and *accumulates* parameter gradients (`dweight +=`, `dbias +=`).
#ifndef JEM_KERNELS_H
#define JEM_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- runtime -------------------------------------------------------------------------------
/// Sets the OpenMP thread count, pins OpenBLAS to one thread (the kernels parallelise over the
/// batch themselves, so BLAS and OpenMP never oversubscribe) and makes idle OpenMP threads sleep.
void jem_runtime_init(int threads);
int jem_num_threads(void);
// The calling thread's own kernel thread count while it runs a share of a batch (0: back to the
// process's), and whether it has one.
void jem_set_thread_threads(int threads);
int jem_thread_in_share(void);
/// Batch-invariant mode (0/1): kernel choices depend only on one image's shape, never on the batch
/// size, so an image's outputs are bitwise the same in any batch (the attacks' determinism needs it).
void jem_set_batch_invariant(int on);
int jem_batch_invariant(void);

// ---- convolution (im2col + sgemm, one image per OpenMP thread) ------------------------------
/// Floats of workspace the conv kernels need: threads * (C*KH*KW*OH*OW + OC*C*KH*KW).
size_t jem_conv2d_workspace(int C, int KH, int KW, int OH, int OW, int OC, int threads);
/// out (N,OC,OH,OW) = conv(inp (N,C,H,W), weight (OC,C,KH,KW)) + bias (OC) [bias may be NULL].
void jem_conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                        int N, int C, int H, int W, int OC, int KH, int KW,
                        int stride, int pad, int OH, int OW, float* work);
/// The same with a LeakyReLU (slope; 0 = ReLU) applied to the output in the kernel's epilogue when
/// act is 1.
void jem_conv2d_forward_act(float* out, const float* inp, const float* weight, const float* bias,
                            int N, int C, int H, int W, int OC, int KH, int KW,
                            int stride, int pad, int OH, int OW, float* work, int act, float slope);
/// dinp (N,C,H,W) = conv_transpose(dout (N,OC,OH,OW), weight). Overwrites dinp.
void jem_conv2d_backward_input(float* dinp, const float* dout, const float* weight,
                               int N, int C, int H, int W, int OC, int KH, int KW,
                               int stride, int pad, int OH, int OW, float* work);
/// The input gradient through a LeakyReLU fused into the forward pass (jem_conv2d_forward_act): dinp =
/// conv_transpose(dout ⊙ LeakyReLU′), the derivative read off act_out (the LeakyReLU's output, N × OC ×
/// OH × OW, slope ≥ 0). Where the Winograd path runs, the mask is applied as its input transform loads
/// dout (one pass less, the same bits as jem_leaky_relu_backward followed by jem_conv2d_backward_input)
/// and 1 is returned; elsewhere nothing is done and 0 is returned (the caller takes the two passes).
int jem_conv2d_backward_input_act(float* dinp, const float* dout, const float* act_out, float slope, const float* weight,
                                  int N, int C, int H, int W, int OC, int KH, int KW,
                                  int stride, int pad, int OH, int OW, float* work);
/// dweight (OC,C,KH,KW) += dout ⋆ inp; dbias (OC) += sum over N,OH,OW of dout [dbias may be NULL].
void jem_conv2d_backward_weight(float* dweight, float* dbias, const float* dout, const float* inp,
                                int N, int C, int H, int W, int OC, int KH, int KW,
                                int stride, int pad, int OH, int OW, float* work);
/// Direct forward for the strided 3×3 convolutions, AVX-512 blocks where the CPU has AVX-512F (and
/// JEM_AVX512 is not 0), AVX2 blocks elsewhere (used by jem_conv2d_forward[_act] when
/// jem_conv2d_uses_direct says so: JEM_DIRECT_CONV is not 0, stride 2, 3×3, C ≥ 8, OC ≥ 16). Each
/// output is one FMA chain over (c, kh, kw) from +0, + bias, then the activation: batch-invariant,
/// and the same bits with either instruction set. Workspace floats: jem_conv2d_direct_workspace (≤ jem_conv2d_workspace).
int jem_conv2d_uses_direct(int C, int OC, int KH, int KW, int stride, int pad);
/// Turns the direct kernels off (0) or on (1); −1 decides again from JEM_DIRECT_CONV.
void jem_conv2d_set_direct(int on);
size_t jem_conv2d_direct_workspace(int C, int H, int W, int OC, int KH, int KW, int pad, int OH, int OW, int threads);
void jem_conv2d_direct_forward_act(float* out, const float* inp, const float* weight, const float* bias,
                                   int N, int C, int H, int W, int OC, int KH, int KW,
                                   int stride, int pad, int OH, int OW, float* work, int act, float slope);
/// Its input gradient (same conditions): dcolᵀ = (weightᵀ · dout)ᵀ by the same blocks, then col2im.
void jem_conv2d_direct_backward_input(float* dinp, const float* dout, const float* weight,
                                      int N, int C, int H, int W, int OC, int KH, int KW,
                                      int stride, int pad, int OH, int OW, float* work);
/// Their weight gradient (same conditions): dweight (OC, C, KH, KW) += Σ over images and pixels of
/// dout ⊗ input window, by blocks of output channels × taps; the bias gradient is not included. Each
/// thread sums its images privately, added in thread order (deterministic for a thread count).
void jem_conv2d_direct_backward_weight(float* dweight, const float* dout, const float* inp,
                                       int N, int C, int H, int W, int OC, int KH, int KW,
                                       int stride, int pad, int OH, int OW, float* work);
/// Naive oracles (direct loops), same contracts.
void jem_conv2d_forward_naive(float* out, const float* inp, const float* weight, const float* bias,
                              int N, int C, int H, int W, int OC, int KH, int KW,
                              int stride, int pad, int OH, int OW);
void jem_conv2d_backward_naive(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight,
                               int N, int C, int H, int W, int OC, int KH, int KW,
                               int stride, int pad, int OH, int OW);

/// Winograd F(2×2, 3×3) for 3×3, stride-1, pad-1 convolutions (used by the two functions above
/// when eligible; exposed for tests). Workspace floats: jem_winograd_workspace(C, OC, H, W, threads).
size_t jem_winograd_workspace(int C, int OC, int H, int W, int threads);
void jem_conv3x3_winograd_forward(float* out, const float* inp, const float* weight, const float* bias,
                                  int N, int C, int H, int W, int OC, float* work);
void jem_conv3x3_winograd_forward_act(float* out, const float* inp, const float* weight, const float* bias,
                                      int N, int C, int H, int W, int OC, float* work, int act, float slope);
void jem_conv3x3_winograd_backward_input(float* dinp, const float* dout, const float* weight,
                                         int N, int C, int H, int W, int OC, float* work);
/// The same through a LeakyReLU fused into the convolution's forward pass: dinp = convᵀ(dout ⊙
/// LeakyReLU′), the derivative read off act_out, the LeakyReLU's output (N, OC, H, W; its sign is its
/// input's for slope ≥ 0), as the input transform loads dout: the bits of jem_leaky_relu_backward
/// followed by jem_conv3x3_winograd_backward_input, without the pass over dz.
void jem_conv3x3_winograd_backward_input_act(float* dinp, const float* dout, const float* act_out, float slope,
                                             const float* weight, int N, int C, int H, int W, int OC, float* work);
/// C (M, N) = A (M, K) · B (K, N), row-major, each element one FMA chain over k in order from +0
/// (C is only written): a column's result does not depend on N or on its position (batch-invariant
/// mode's GEMM). `_reference` is the naive oracle with the same arithmetic (bit-identical by construction).
void jem_sgemm_invariant(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc);
void jem_sgemm_invariant_reference(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc);
/// Which blocks jem_sgemm_invariant runs: 1 AVX-512 (when the CPU has it and JEM_AVX512 is not 0), 0 AVX2.
int jem_sgemm_invariant_isa(void);
/// Forces the AVX2 (0) or, if the CPU has it, the AVX-512 (1) blocks; −1 decides again (tests, A/B runs).
void jem_sgemm_invariant_set_isa(int avx512);
/// Which GEMM the Winograd forward and input gradient use outside batch-invariant mode: 1 the invariant
/// GEMM (the default where it has AVX-512 blocks), 0 OpenBLAS; −1 decides again from JEM_WINOGRAD_GEMM
/// (own|openblas) and the CPU (tests, A/B runs).
void jem_winograd_set_gemm(int own);
/// dweight (OC, C, 3, 3) += weight gradient by Winograd; workspace: jem_winograd_wgrad_workspace.
size_t jem_winograd_wgrad_workspace(int C, int OC, int H, int W, int threads);
void jem_conv3x3_winograd_backward_weight(float* dweight, const float* dout, const float* inp,
                                          int N, int C, int H, int W, int OC, float* work);
/// Whether jem_conv2d_forward, _backward_input and _backward_weight take the Winograd path for this shape
/// (3×3, stride 1, pad 1, at least 16 channels in and out, at least 64 output tiles of 2×2 in
/// the batch; JEM_WINOGRAD=0 in the environment turns it off).
int jem_conv2d_uses_winograd(int N, int C, int H, int W, int OC, int KH, int KW, int stride, int pad);

// ---- linear ---------------------------------------------------------------------------------
/// out (N,OUT) = inp (N,IN) · weight (OUT,IN)ᵀ + bias (OUT).
void jem_linear_forward(float* out, const float* inp, const float* weight, const float* bias,
                        int N, int IN, int OUT);
/// dinp (N,IN) = dout · weight [dinp may be NULL]; dweight += doutᵀ · inp, dbias += Σ dout
/// [dweight, dbias may be NULL: an input-gradient pass skips them].
void jem_linear_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                         const float* inp, const float* weight, int N, int IN, int OUT);
void jem_linear_forward_naive(float* out, const float* inp, const float* weight, const float* bias,
                              int N, int IN, int OUT);
void jem_linear_backward_naive(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, int N, int IN, int OUT);

// ---- pointwise ------------------------------------------------------------------------------
/// out = x > 0 ? x : slope*x (n elements). out may alias inp.
void jem_leaky_relu_forward(float* out, const float* inp, float slope, size_t n);
/// dinp = dout * (inp > 0 ? 1 : slope). dinp may alias dout.
void jem_leaky_relu_backward(float* dinp, const float* dout, const float* inp, float slope, size_t n);
/// out = a + b.
void jem_add_forward(float* out, const float* a, const float* b, size_t n);
/// y += alpha * x.
void jem_axpy(float* y, const float* x, float alpha, size_t n);
/// y = alpha * y.
void jem_scale(float* y, float alpha, size_t n);
/// x = min(max(x, lo), hi).
void jem_clamp(float* x, float lo, float hi, size_t n);
/// Per-channel affine map on NCHW: out[n,c,:] = inp[n,c,:] * scale[c] + shift[c].
void jem_channel_affine(float* out, const float* inp, const float* scale, const float* shift,
                        int N, int C, int HW);

// ---- pooling --------------------------------------------------------------------------------
/// out (N,C) = mean over H*W of inp (N,C,H,W).
void jem_global_avg_pool_forward(float* out, const float* inp, int N, int C, int HW);
/// dinp (N,C,H,W) = dout (N,C) / HW, broadcast. Overwrites dinp.
void jem_global_avg_pool_backward(float* dinp, const float* dout, int N, int C, int HW);

// ---- batch norm -----------------------------------------------------------------------------
/// Training mode: batch statistics over (N,H,W) per channel. Writes out, the batch mean and the
/// inverse standard deviation (saved for backward), and updates the running statistics with
/// `momentum` (PyTorch convention: running = (1-momentum)*running + momentum*batch, unbiased var).
void jem_batchnorm_train_forward(float* out, float* mean, float* invstd, float* running_mean,
                                 float* running_var, const float* inp, const float* gamma,
                                 const float* beta, float eps, float momentum, int N, int C, int HW);
/// dinp = BN backward through batch statistics; dgamma, dbeta += (may be NULL).
void jem_batchnorm_train_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                                  const float* inp, const float* mean, const float* invstd,
                                  const float* gamma, int N, int C, int HW);
/// Eval mode with running statistics: out = (inp - rm)/sqrt(rv+eps)*gamma + beta.
void jem_batchnorm_eval_forward(float* out, const float* inp, const float* running_mean,
                                const float* running_var, const float* gamma, const float* beta,
                                float eps, int N, int C, int HW);
/// dinp = dout * gamma/sqrt(rv+eps); dgamma, dbeta += (may be NULL).
void jem_batchnorm_eval_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                                 const float* inp, const float* running_mean,
                                 const float* running_var, const float* gamma, float eps,
                                 int N, int C, int HW);

// ---- reductions over logits -----------------------------------------------------------------
/// out (N) = logsumexp over K of logits (N,K).
void jem_logsumexp_forward(float* out, const float* logits, int N, int K);
/// dlogits (N,K) += dout[n] * softmax(logits)[n,:].
void jem_logsumexp_backward(float* dlogits, const float* dout, const float* logits, int N, int K);
/// loss (N) = -log softmax(logits)[n, labels[n]].
void jem_softmax_xent_forward(float* loss, const float* logits, const int* labels, int N, int K);
/// dlogits (N,K) += dloss[n] * (softmax(logits)[n,:] - onehot(labels[n])).
void jem_softmax_xent_backward(float* dlogits, const float* dloss, const float* logits,
                               const int* labels, int N, int K);


// ---- graph executor (graph_ops.c) ------------------------------------------------------------
/// Direct convolution with groups (C and OC divisible by groups; weight (OC, C/groups, KH, KW)),
/// strides (sh, sw), leading pads (ph, pw; the trailing pads are implied by OH, OW) and dilations.
void jem_conv2d_general_forward(float* out, const float* inp, const float* weight, const float* bias,
                                int N, int C, int H, int W, int OC, int KH, int KW,
                                int sh, int sw, int ph, int pw, int dh, int dw, int groups, int OH, int OW);
/// Overwrites dinp (N,C,H,W) with the transpose of the convolution above applied to dout.
void jem_conv2d_general_backward_input(float* dinp, const float* dout, const float* weight,
                                       int N, int C, int H, int W, int OC, int KH, int KW,
                                       int sh, int sw, int ph, int pw, int dh, int dw, int groups, int OH, int OW);
/// Max pooling over NC planes of H×W, padding is −∞. backward routes dout to each window's first
/// maximum (overwrites dinp); tangent gathers the input tangent at the same positions.
void jem_maxpool_forward(float* out, const float* inp, int NC, int H, int W, int KH, int KW,
                         int sh, int sw, int ph, int pw, int dh, int dw, int OH, int OW);
void jem_maxpool_backward(float* dinp, const float* dout, const float* inp, int NC, int H, int W, int KH, int KW,
                          int sh, int sw, int ph, int pw, int dh, int dw, int OH, int OW);
void jem_maxpool_tangent(float* tout, const float* tinp, const float* inp, int NC, int H, int W, int KH, int KW,
                         int sh, int sw, int ph, int pw, int dh, int dw, int OH, int OW);
/// Average pooling; include_pad selects ONNX's count_include_pad. backward overwrites dinp.
void jem_avgpool_forward(float* out, const float* inp, int NC, int H, int W, int KH, int KW,
                         int sh, int sw, int ph, int pw, int include_pad, int OH, int OW);
void jem_avgpool_backward(float* dinp, const float* dout, int NC, int H, int W, int KH, int KW,
                          int sh, int sw, int ph, int pw, int include_pad, int OH, int OW);
/// Smooth activations, kind 0 sigmoid, 1 tanh, 2 softplus: value; dinp = dout·f'(x); and the
/// dual rule of Hessian–vector products, tdinp = tdout·f'(x) + dout·f''(x)·tinp.
void jem_smooth_forward(float* out, const float* inp, int kind, size_t n);
/// out = leaky(a + b) in one pass (a residual add followed by its ReLU).
void jem_add_leaky_forward(float* out, const float* a, const float* b, float slope, size_t n);
void jem_smooth_backward(float* dinp, const float* dout, const float* inp, int kind, size_t n);
void jem_smooth_dual_backward(float* dinp, float* tdinp, const float* dout, const float* tdout,
                              const float* inp, const float* tinp, int kind, size_t n);

#ifdef __cplusplus
}
#endif
#endif
