// Optimizers.swift: SGD (momentum, weight decay, Nesterov) and Adam, as in torch.optim, over a
// model's trainable parameters. Their state is a list of named tensors so checkpoints can hold it.
import Foundation

public enum OptimizerKind: String, Codable, CaseIterable, Sendable { case sgd, adam }

public struct OptimizerConfig: Codable, Equatable, Sendable {
    public var kind: OptimizerKind = .adam
    public var momentum: Float = 0.9
    public var weightDecay: Float = 0
    public var nesterov: Bool = false
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public init() {}
}

public final class Optimizer {
    public let config: OptimizerConfig
    let params: [Parameter]
    /// SGD: momentum buffers. Adam: first and second moments.
    var m: [Tensor], v: [Tensor]
    public internal(set) var step: Int = 0

    public init(parameters: [Parameter], config: OptimizerConfig) {
        self.config = config
        self.params = parameters.filter { !$0.isBuffer }
        m = params.map { Tensor(shape: $0.value.shape) }
        v = config.kind == .adam ? params.map { Tensor(shape: $0.value.shape) } : []
    }

    /// One update with learning rate `lr` from the accumulated gradients.
    public func update(lr: Float) {
        step += 1
        let c = config
        switch c.kind {
        case .sgd:
            for (i, p) in params.enumerated() {
                let w = p.value.data, g = p.grad.data, b = m[i].data
                for j in 0..<p.value.count {
                    var d = g[j] + c.weightDecay * w[j]
                    if c.momentum != 0 {
                        b[j] = step == 1 ? d : c.momentum * b[j] + d
                        d = c.nesterov ? d + c.momentum * b[j] : b[j]
                    }
                    w[j] -= lr * d
                }
            }
        case .adam:
            let bc1 = 1 - powf(c.beta1, Float(step)), bc2 = 1 - powf(c.beta2, Float(step))
            let stepSize = lr / bc1, bc2s = bc2.squareRoot()
            for (i, p) in params.enumerated() {
                let w = p.value.data, g = p.grad.data, m1 = m[i].data, m2 = v[i].data
                for j in 0..<p.value.count {
                    let d = g[j] + c.weightDecay * w[j]
                    m1[j] = c.beta1 * m1[j] + (1 - c.beta1) * d
                    m2[j] = c.beta2 * m2[j] + (1 - c.beta2) * d * d
                    w[j] -= stepSize * m1[j] / (m2[j].squareRoot() / bc2s + c.eps)
                }
            }
        }
    }

    /// Named state tensors for checkpoints.
    public var state: [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        for (i, p) in params.enumerated() {
            out.append(("optim.m." + p.name, m[i]))
            if config.kind == .adam { out.append(("optim.v." + p.name, v[i])) }
        }
        out.append(("optim.step", Tensor(shape: [1], repeating: Float(step))))
        return out
    }

    public func load(state file: SafeTensorsFile) throws {
        for (i, p) in params.enumerated() {
            m[i].assign(try file.tensor("optim.m." + p.name))
            if config.kind == .adam { v[i].assign(try file.tensor("optim.v." + p.name)) }
        }
        step = Int(try file.tensor("optim.step")[0])
    }
}

extension Optimizer {
    func setStep(_ s: Int) { step = s }
}
