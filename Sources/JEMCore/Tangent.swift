// Tangent.swift: forward-mode (Jacobian–vector) products of the Wide-ResNet in eval mode, and the
// Hessian–vector product of logsumexp∘f built on them. The network is piecewise linear in its
// input (LeakyReLU, eval-mode batch norm, average pooling), so its JVP is the same network with
// biases and shifts dropped and each LeakyReLU's slope fixed by the primal pre-activation, and
//   ∇²ₓ logsumexp f(x) · u = Jᵀ (diag p − p pᵀ) J u     (p = softmax f(x); exact almost everywhere).
// This is what lets attacks differentiate through SGLD steps exactly.
import CJEMKernels

extension WideResNet {
    /// Primal and tangent through one conv: tangent has no bias.
    private func convPair(_ c: Conv2d, _ x: Tensor, _ t: Tensor) throws -> (Tensor, Tensor) {
        let y = try c(Variable(x), tape: nil).value
        let s = t.shape
        let (oh, ow) = c.outputSize(s[2], s[3])
        let out = Tensor(shape: [s[0], c.outputChannels, oh, ow])
        let ws = Tensor(shape: [jem_conv2d_workspace(Int32(s[1]), Int32(c.kernelSize), Int32(c.kernelSize), Int32(oh), Int32(ow), Int32(c.outputChannels), Int32(Runtime.threads))])
        jem_conv2d_forward(out.data, t.data, c.weight.value.data, nil, Int32(s[0]), Int32(s[1]), Int32(s[2]), Int32(s[3]),
                           Int32(c.outputChannels), Int32(c.kernelSize), Int32(c.kernelSize), Int32(c.stride), Int32(c.padding),
                           Int32(oh), Int32(ow), ws.data)
        return (y, out)
    }

    private func bnPair(_ bn: BatchNorm2d?, _ x: Tensor, _ t: Tensor) throws -> (Tensor, Tensor) {
        guard let bn else { return (x, t) }
        let y = try bn(Variable(x), training: false, tape: nil).value
        let scale = (0..<bn.channels).map { bn.weight.value[$0] / (bn.runningVar.value[$0] + bn.eps).squareRoot() }
        let out = Tensor(shape: t.shape)
        jem_channel_affine(out.data, t.data, scale, nil, Int32(t.shape[0]), Int32(t.shape[1]), Int32(t.shape[2] * t.shape[3]))
        return (y, out)
    }

    private func lreluPair(_ x: Tensor, _ t: Tensor) -> (Tensor, Tensor) {
        let y = Tensor(shape: x.shape), out = Tensor(shape: t.shape)
        jem_leaky_relu_forward(y.data, x.data, config.leak, x.count)
        jem_leaky_relu_backward(out.data, t.data, x.data, config.leak, t.count)   // t · (x > 0 ? 1 : slope)
        return (y, out)
    }

    /// Logits f(x) and the Jacobian–vector product J(x)·u, eval mode.
    public func jvp(_ x: Tensor, _ u: Tensor) throws -> (logits: Tensor, tangent: Tensor) {
        guard u.shape == x.shape else { throw JEMError.shapeMismatch(what: "tangent", expected: x.shape, found: u.shape) }
        let c = config
        var h = try normalizeChannels(Variable(x), mean: c.inputMean, std: c.inputStd, tape: nil).value
        var t = Tensor(shape: u.shape)
        jem_channel_affine(t.data, u.data, c.inputStd.map { 1 / $0 }, nil, Int32(u.shape[0]), Int32(u.shape[1]), Int32(u.shape[2] * u.shape[3]))
        (h, t) = try convPair(stem, h, t)
        for b in blocks {
            let (x0, t0) = (h, t)
            var (a, ta) = try bnPair(b.bn1, h, t)
            (a, ta) = lreluPair(a, ta)
            (a, ta) = try convPair(b.conv1, a, ta)
            (a, ta) = try bnPair(b.bn2, a, ta)
            (a, ta) = lreluPair(a, ta)
            (a, ta) = try convPair(b.conv2, a, ta)
            let (sx, st) = try b.shortcut.map { try convPair($0, x0, t0) } ?? (x0, t0)
            jem_add_forward(a.data, a.data, sx.data, a.count)
            jem_add_forward(ta.data, ta.data, st.data, ta.count)
            (h, t) = (a, ta)
        }
        (h, t) = try bnPair(finalNorm, h, t)
        (h, t) = lreluPair(h, t)
        let s = h.shape
        let ph = Tensor(shape: [s[0], s[1]]), pt = Tensor(shape: [s[0], s[1]])
        jem_global_avg_pool_forward(ph.data, h.data, Int32(s[0]), Int32(s[1]), Int32(s[2] * s[3]))
        jem_global_avg_pool_forward(pt.data, t.data, Int32(s[0]), Int32(s[1]), Int32(s[2] * s[3]))
        let z = try classOutput(Variable(ph), tape: nil).value
        let zt = Tensor(shape: z.shape)
        jem_linear_forward(zt.data, pt.data, classOutput.weight.value.data, nil, Int32(s[0]), Int32(s[1]), Int32(config.numClasses))
        return (z, zt)
    }

    /// Hessian–vector product of Σₙ logsumexp f(xₙ) with respect to x, applied to u (per example).
    public func logDensityHVP(_ x: Tensor, _ u: Tensor) throws -> Tensor {
        let (z, ju) = try jvp(x, u)
        let w = Self.logsumexpCurvature(logits: z, tangent: ju)
        return try inputGradient(x) { _ in w }.gradient
    }
}
