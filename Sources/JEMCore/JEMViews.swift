// JEMViews.swift: any classifier read as an energy model. f(x) are the logits;
// p(y|x) = softmax f(x); log p(x) = logsumexp_y f(x)[y] − log Z; E(x) = −logsumexp f(x);
// E(x, y) = −f(x)[y]. Every view takes pixels in [0, 1] and runs the model in eval mode.

/// What every command needs from a classifier: logits, input gradients and the Hessian–vector
/// product of the log density. The hand-written Wide-ResNet (which also trains) and the ONNX graph
/// executor both provide it; everything else (SGLD, attacks, the defense, OOD scores) is written
/// once against this protocol.
public protocol Network: AnyObject {
    var numClasses: Int { get }
    var inputChannels: Int { get }
    /// Per-channel scale of the space SGLD steps in: the model's input std (its normalisation);
    /// all ones for a model whose normalisation, if any, is inside an imported graph.
    var inputScale: [Float] { get }
    /// E.g. "wrn-10-2" or "onnx: resnet18.onnx (54 nodes)".
    var architectureName: String { get }
    var parameterCount: Int { get }
    // One share of a batch, on the calling thread: the implementations. Callers use `logits`,
    // `inputGradient`, `logDensityHVP` and `features` (below), which split a batch into one share
    // per core (BatchShares.swift).
    /// Logits (N, K) of pixels x (N, C, H, W) in [0, 1], no gradient work.
    func shareLogits(_ x: Tensor) throws -> Tensor
    /// The logits and the gradient with respect to the input of a scalar function of the logits,
    /// `seed` mapping the logits to d(objective)/d(logits). No weight-gradient work is done.
    func shareInputGradient(_ x: Tensor, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor)
    /// Hessian–vector product of Σₙ logsumexp f(xₙ) with respect to x, applied to u (per example).
    func shareLogDensityHVP(_ x: Tensor, _ u: Tensor) throws -> Tensor
    /// The penultimate layer (N, D): what the final linear layer maps to the logits.
    func shareFeatures(_ x: Tensor) throws -> Tensor
}

extension Network {
    /// Logits (N, K) of pixels x (N, C, H, W) in [0, 1], no gradient work.
    public func logits(_ x: Tensor) throws -> Tensor {
        try Runtime.concatShares(x) { part, _ in try shareLogits(part) }
    }

    /// The gradient with respect to the input of a scalar function of the logits.
    /// - Parameters:
    ///   - seed: given the logits of the whole batch, returns d(objective)/d(logits), (N, K).
    /// - Returns: the logits and d(objective)/dx, (N, C, H, W). No weight-gradient work is done.
    public func inputGradient(_ x: Tensor, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
        let parts = try Runtime.seededShares(x, seed: seed) { _, part, seed in try shareInputGradient(part, seed: seed) }
        if parts.count == 1 { return parts[0] }
        return (try Tensor.concat(parts.map(\.logits)), try Tensor.concat(parts.map(\.gradient)))
    }

    /// Hessian–vector product of Σₙ logsumexp f(xₙ) with respect to x, applied to u (per example).
    public func logDensityHVP(_ x: Tensor, _ u: Tensor) throws -> Tensor {
        guard u.shape == x.shape else { throw JEMError.shapeMismatch(what: "Hessian–vector product direction", expected: x.shape, found: u.shape) }
        let n = x.shape.first ?? 0
        return try Runtime.concatShares(x) { part, r in try shareLogDensityHVP(part, r.count == n ? u : u.rows(r.lowerBound, r.count)) }
    }

    /// The penultimate layer (N, D): what the final linear layer maps to the logits, the feature
    /// space of the domain FID.
    public func features(_ x: Tensor) throws -> Tensor {
        try Runtime.concatShares(x) { part, _ in try shareFeatures(part) }
    }
}

extension WideResNet: Network {
    public var numClasses: Int { config.numClasses }
    public var inputChannels: Int { config.inChannels }
    public var inputScale: [Float] { config.inputStd }
    public var architectureName: String { config.archName }

    public func shareLogits(_ x: Tensor) throws -> Tensor {
        try forward(Variable(x), training: false, tape: nil).value
    }

    /// The pooled features (N, 64k) that `class_output` maps to the logits.
    public func shareFeatures(_ x: Tensor) throws -> Tensor {
        try pooledFeatures(Variable(x), training: false, tape: nil).value
    }

    public func shareInputGradient(_ x: Tensor, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
        let input = Variable(x, requiresGrad: true)
        let logits = try pass(input, training: false, tape: Tape(parameterGradients: false), seed: seed)
        return (logits, input.grad ?? Tensor(shape: x.shape))
    }

    /// One training pass: forward in the given mode, seed from the logits, backward into the
    /// parameter gradients (which the caller zeroes). Returns the logits. The batch runs as one
    /// share per core unless batch norm in training mode needs its statistics over the whole batch;
    /// the shares after the first add into private buffers, added in afterwards in share order.
    public func accumulateParameterGradients(_ x: Tensor, training: Bool, seed: (Tensor) throws -> Tensor) throws -> Tensor {
        if training && config.norm == .batch {
            return try pass(Variable(x), training: true, tape: Tape(parameterGradients: true), seed: seed)
        }
        let params = trainableParameters
        let parts = try Runtime.seededShares(x, seed: seed) { i, part, seed -> (Tensor, Tape) in
            let tape = i == 0 ? Tape(parameterGradients: true) : Tape(privateGradientsFor: params)
            return (try pass(Variable(part), training: training, tape: tape, seed: seed), tape)
        }
        for (_, tape) in parts.dropFirst() { tape.addPrivateGradients(params) }
        return parts.count == 1 ? parts[0].0 : try Tensor.concat(parts.map(\.0))
    }

    /// Forward on `tape`, the seed from the logits, backward; returns the logits.
    private func pass(_ input: Variable, training: Bool, tape: Tape, seed: (Tensor) throws -> Tensor) throws -> Tensor {
        let out = try forward(input, training: training, tape: tape)
        try tape.backward(from: out, seed: try seed(out.value))
        return out.value
    }

    public func zeroGradients() { for p in trainableParameters { p.zeroGrad() } }
}

extension Network {
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

    /// The second factor of ∇²ₓ logsumexp f · u at the logits: (diag p − p pᵀ)·(J u), p = softmax f.
    public static func logsumexpCurvature(logits z: Tensor, tangent ju: Tensor) -> Tensor {
        let p = Losses.softmax(z)
        let k = z.shape[1]
        let w = Tensor(shape: z.shape)
        for i in 0..<z.shape[0] {
            var dotp: Float = 0
            for j in 0..<k { dotp += p.data[i * k + j] * ju.data[i * k + j] }
            for j in 0..<k { w.data[i * k + j] = p.data[i * k + j] * (ju.data[i * k + j] - dotp) }
        }
        return w
    }
}
