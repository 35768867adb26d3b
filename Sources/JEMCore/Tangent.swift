// Tangent.swift: forward-mode (Jacobian–vector) products of the Wide-ResNet in eval mode, and the
// Hessian–vector product of logsumexp∘f built on them. The network is piecewise linear in its
// input (LeakyReLU, eval-mode batch norm, average pooling), so its JVP is the same network with
// biases and shifts dropped and each LeakyReLU's slope fixed by the primal pre-activation, and
//   ∇²ₓ logsumexp f(x) · u = Jᵀ (diag p − p pᵀ) J u     (p = softmax f(x); exact almost everywhere).
// This is what lets attacks differentiate through SGLD steps exactly.
import CJEMKernels

extension WideResNet {
    /// Primal and tangent through one conv: tangent has no bias.
    private func convPair(_ c: Conv2d, _ x: Variable, _ t: Tensor, _ tape: Tape?) throws -> (Variable, Tensor) {
        (try c(x, tape: tape), c.forward(t, bias: false))
    }

    private func bnPair(_ bn: BatchNorm2d?, _ x: Variable, _ t: Tensor, _ tape: Tape?) throws -> (Variable, Tensor) {
        guard let bn else { return (x, t) }
        let y = try bn(x, training: false, tape: tape)
        let scale = (0..<bn.channels).map { bn.weight.value[$0] / (bn.runningVar.value[$0] + bn.eps).squareRoot() }
        let out = Tensor(uninitialized: t.shape)
        jem_channel_affine(out.data, t.data, scale, nil, Int32(t.shape[0]), Int32(t.shape[1]), Int32(t.shape[2] * t.shape[3]))
        return (y, out)
    }

    private func lreluPair(_ x: Variable, _ t: Tensor, _ tape: Tape?) -> (Variable, Tensor) {
        let y = leakyReLU(x, slope: config.leak, tape: tape), out = Tensor(uninitialized: t.shape)
        jem_leaky_relu_backward(out.data, t.data, x.value.data, config.leak, t.count)   // t · (x > 0 ? 1 : slope)
        return (y, out)
    }

    /// A conv followed by a LeakyReLU, the primal with the LeakyReLU in the conv's epilogue (as in
    /// the plain forward pass); the tangent's slopes come from the sign of the primal output, which the
    /// slope keeps (`WRNConfig.validate` holds it in [0, 1]).
    private func convLReLUPair(_ c: Conv2d, _ x: Variable, _ t: Tensor, _ tape: Tape?) throws -> (Variable, Tensor) {
        let y = try c(x, leakyReLU: config.leak, tape: tape), ct = c.forward(t, bias: false), out = Tensor(uninitialized: ct.shape)
        jem_leaky_relu_backward(out.data, ct.data, y.value.data, config.leak, ct.count)
        return (y, out)
    }

    /// The forward pass (recorded on `tape` if given) beside its tangent: logits and J(x)·u.
    private func tangentForward(_ x: Variable, _ u: Tensor, tape: Tape?) throws -> (logits: Variable, tangent: Tensor) {
        guard u.shape == x.shape else { throw JEMError.shapeMismatch(what: "tangent", expected: x.shape, found: u.shape) }
        let c = config
        var h = try normalizeChannels(x, mean: c.inputMean, std: c.inputStd, tape: tape)
        var t = Tensor(uninitialized: u.shape)
        jem_channel_affine(t.data, u.data, c.inputStd.map { 1 / $0 }, nil, Int32(u.shape[0]), Int32(u.shape[1]), Int32(u.shape[2] * u.shape[3]))
        (h, t) = try convPair(stem, h, t, tape)
        for b in blocks {
            let (x0, t0) = (h, t)
            var (a, ta) = try bnPair(b.bn1, h, t, tape)
            (a, ta) = lreluPair(a, ta, tape)
            if b.bn2 == nil {
                (a, ta) = try convLReLUPair(b.conv1, a, ta, tape)
            } else {
                (a, ta) = try convPair(b.conv1, a, ta, tape)
                (a, ta) = try bnPair(b.bn2, a, ta, tape)
                (a, ta) = lreluPair(a, ta, tape)
            }
            (a, ta) = try convPair(b.conv2, a, ta, tape)
            let (sx, st) = try b.shortcut.map { try convPair($0, x0, t0, tape) } ?? (x0, t0)
            h = try add(a, sx, tape: tape)
            jem_add_forward(ta.data, ta.data, st.data, ta.count)
            t = ta
        }
        (h, t) = try bnPair(finalNorm, h, t, tape)
        (h, t) = lreluPair(h, t, tape)
        let s = t.shape
        let pt = Tensor(uninitialized: [s[0], s[1]])
        let ph = try globalAveragePool(h, tape: tape)
        jem_global_avg_pool_forward(pt.data, t.data, Int32(s[0]), Int32(s[1]), Int32(s[2] * s[3]))
        let z = try classOutput(ph, tape: tape)
        let zt = Tensor(uninitialized: z.value.shape)
        jem_linear_forward(zt.data, pt.data, classOutput.weight.value.data, nil, Int32(s[0]), Int32(s[1]), Int32(config.numClasses))
        return (z, zt)
    }

    /// Logits f(x) and the Jacobian–vector product J(x)·u, eval mode.
    public func jvp(_ x: Tensor, _ u: Tensor) throws -> (logits: Tensor, tangent: Tensor) {
        let (z, zt) = try tangentForward(Variable(x), u, tape: nil)
        return (z.value, zt)
    }

    /// Hessian–vector product of Σₙ logsumexp f(xₙ) with respect to x, applied to u (per example).
    /// One recorded forward pass carries the tangent J u beside it; the backward of that same
    /// recording applies Jᵀ (three passes, not a separate JVP and a second forward).
    public func shareLogDensityHVP(_ x: Tensor, _ u: Tensor) throws -> Tensor {
        let tape = Tape(parameterGradients: false)
        let input = Variable(x, requiresGrad: true)
        let (z, ju) = try tangentForward(input, u, tape: tape)
        try tape.backward(from: z, seed: Self.logsumexpCurvature(logits: z.value, tangent: ju))
        return input.grad ?? Tensor(shape: x.shape)
    }
}
