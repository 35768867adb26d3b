// JEMViews.swift: the classifier read as an energy model. f(x) are the logits;
// p(y|x) = softmax f(x); log p(x) = logsumexp_y f(x)[y] − log Z; E(x) = −logsumexp f(x);
// E(x, y) = −f(x)[y]. Every view takes pixels in [0, 1] and runs the model in eval mode.

extension WideResNet {
    /// Logits of a batch, no gradient work.
    public func logits(_ x: Tensor) throws -> Tensor {
        try forward(Variable(x), training: false, tape: nil).value
    }

    /// Logits in batches of at most `batchSize` rows (bounded memory for whole data sets).
    public func logits(_ x: Tensor, batchSize: Int) throws -> Tensor {
        let n = x.shape[0]
        if n <= batchSize { return try logits(x) }
        var parts: [Tensor] = []
        var i = 0
        while i < n {
            let m = min(batchSize, n - i)
            parts.append(try logits(x.rows(i, m)))
            i += m
        }
        return try Tensor.concat(parts)
    }

    /// p(y|x).
    public func probabilities(_ x: Tensor) throws -> Tensor { Losses.softmax(try logits(x)) }

    /// log p(x) + log Z = logsumexp f(x) = −E(x).
    public func logDensity(_ x: Tensor) throws -> [Float] { Losses.logsumexp(try logits(x)) }

    /// E(x, y) = −f(x)[y].
    public func energy(_ x: Tensor, labels: [Int]) throws -> [Float] {
        let z = try logits(x)
        let k = z.shape[1]
        try Losses.checkLabels(labels, n: z.shape[0], k: k)
        return labels.enumerated().map { -z.data[$0.offset * k + $0.element] }
    }

    /// The gradient with respect to the input of a scalar function of the logits.
    /// - Parameters:
    ///   - x: pixels (N, C, H, W).
    ///   - seed: given the logits, returns d(objective)/d(logits), (N, K).
    /// - Returns: the logits and d(objective)/dx, (N, C, H, W). No weight-gradient work is done.
    public func inputGradient(_ x: Tensor, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
        let tape = Tape(parameterGradients: false)
        let input = Variable(x, requiresGrad: true)
        let out = try forward(input, training: false, tape: tape)
        let dlogits = try seed(out.value)
        try tape.backward(from: out, seed: dlogits)
        return (out.value, input.grad ?? Tensor(shape: x.shape))
    }

    /// ∇ₓ Σₙ logsumexp f(xₙ): the score used by SGLD and the approximate-mass OOD score.
    public func logDensityGradient(_ x: Tensor) throws -> (logits: Tensor, gradient: Tensor) {
        try inputGradient(x) { z in
            let d = Tensor(shape: z.shape)
            Losses.addLogsumexpGradient(d, logits: z, weights: Array(repeating: 1, count: z.shape[0]))
            return d
        }
    }

    /// ∇ₓ Σₙ CE(f(xₙ), yₙ).
    public func crossEntropyGradient(_ x: Tensor, labels: [Int]) throws -> (logits: Tensor, gradient: Tensor) {
        try inputGradient(x) { z in
            let d = Tensor(shape: z.shape)
            try Losses.addCrossEntropyGradient(d, logits: z, labels: labels, weights: Array(repeating: 1, count: z.shape[0]))
            return d
        }
    }

    /// One training pass: forward in the given mode, seed from the logits, backward into the
    /// parameter gradients (which the caller zeroes). Returns the logits.
    public func accumulateParameterGradients(_ x: Tensor, training: Bool, seed: (Tensor) throws -> Tensor) throws -> Tensor {
        let tape = Tape(parameterGradients: true)
        let out = try forward(Variable(x), training: training, tape: tape)
        try tape.backward(from: out, seed: try seed(out.value))
        return out.value
    }

    public func zeroGradients() { for p in trainableParameters { p.zeroGrad() } }
}
