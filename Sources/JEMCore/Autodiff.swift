// Autodiff.swift: reverse-mode automatic differentiation over a tape of tensor ops.
// Each op (Convolution.swift, Linear.swift, ...) computes its forward with a C kernel and, when a
// tape is given and a gradient is needed, records its backward rule beside it. `Tape.backward`
// replays the rules in reverse. A tape made with `parameterGradients: false` skips all
// weight-gradient work, so an input-gradient pass costs about two forwards, not three.

import CJEMKernels

/// A node of the computation: a value and, after backward, its gradient.
public final class Variable {
    public let value: Tensor
    /// d(output)/d(value), filled by `Tape.backward` when `requiresGrad`.
    public internal(set) var grad: Tensor?
    public let requiresGrad: Bool

    public init(_ value: Tensor, requiresGrad: Bool = false) {
        self.value = value
        self.requiresGrad = requiresGrad
    }

    public var shape: [Int] { value.shape }

    /// Adds `g` to the gradient (taking ownership of `g` when there is none yet).
    func accumulate(_ g: Tensor) {
        if let grad {
            jem_axpy(grad.data, g.data, 1, grad.count)
        } else {
            grad = g
        }
    }
}

/// A trainable tensor with its accumulated gradient and its PyTorch state-dict name.
public final class Parameter {
    public let name: String
    public let value: Tensor
    public let grad: Tensor
    /// Buffers (batch-norm running statistics) are saved but never optimised.
    public let isBuffer: Bool

    public init(name: String, shape: [Int], isBuffer: Bool = false) {
        self.name = name
        self.value = Tensor(shape: shape)
        self.grad = Tensor(shape: isBuffer ? [0] : shape)
        self.isBuffer = isBuffer
    }

    public func zeroGrad() { grad.fill(0) }
}

/// Records backward rules during a forward pass.
public final class Tape {
    /// Whether backward computes parameter gradients (training) or only input gradients (SGLD,
    /// attacks).
    public let parameterGradients: Bool
    private var rules: [() -> Void] = []
    /// Private parameter-gradient buffers (one share of a split batch), keyed by parameter.
    private var privateGradients: [ObjectIdentifier: Tensor] = [:]

    public init(parameterGradients: Bool) { self.parameterGradients = parameterGradients }

    /// A training tape whose rules add the gradients of `parameters` into zeroed buffers of its
    /// own instead of their `grad`, so shares of a batch can run backward at the same time;
    /// `addPrivateGradients` then adds them in.
    public init(privateGradientsFor parameters: [Parameter]) {
        parameterGradients = true
        for p in parameters { privateGradients[ObjectIdentifier(p)] = Tensor(shape: p.grad.shape) }
    }

    /// Where this tape's rules add the gradient of `p`.
    func gradient(_ p: Parameter) -> Tensor { privateGradients[ObjectIdentifier(p)] ?? p.grad }

    /// Adds the private buffers into the parameters' gradients (in the parameters' order).
    func addPrivateGradients(_ parameters: [Parameter]) {
        for p in parameters {
            guard let g = privateGradients[ObjectIdentifier(p)] else { continue }
            jem_axpy(p.grad.data, g.data, 1, g.count)
        }
    }

    func record(_ rule: @escaping () -> Void) { rules.append(rule) }

    /// Back-propagates `seed` = d(loss)/d(output) from `output` to every variable that requires a
    /// gradient and, if enabled, to parameter gradients (accumulated with `+=`).
    public func backward(from output: Variable, seed: Tensor) throws {
        guard seed.shape == output.shape else {
            throw JEMError.shapeMismatch(what: "backward seed", expected: output.shape, found: seed.shape)
        }
        output.grad = seed
        for rule in rules.reversed() { rule() }
        rules.removeAll()
    }
}

/// Whether an op's output needs a gradient: some input does, or parameters are being trained.
@inline(__always)
func needsGrad(_ tape: Tape?, _ inputs: Variable...) -> Bool {
    guard let tape else { return false }
    return tape.parameterGradients || inputs.contains { $0.requiresGrad }
}
