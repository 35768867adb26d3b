// Classifier.swift: what an attack needs from a model: logits and input gradients of a function
// of the logits, with the randomness of stochastic models (the SGLD defense) drawn from a seeded
// generator the caller passes. A bare WideResNet is the deterministic case.
import JEMCore

public protocol Classifier: AnyObject {
    var numClasses: Int { get }
    /// How the attacker differentiates this classifier (stated in every report).
    var gradientDescription: String { get }
    /// Whether logits depend on the random generator (then attacks judge success on final iterates).
    var isStochastic: Bool { get }
    /// Logits (N, K) of pixels in [0, 1].
    func logits(_ x: Tensor, rng: inout SeededRandom) throws -> Tensor
    /// Logits and d(objective)/dx, where `seed` maps the logits to d(objective)/d(logits).
    func inputGradient(_ x: Tensor, rng: inout SeededRandom, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor)
}

extension WideResNet: Classifier {
    public var numClasses: Int { config.numClasses }
    public var gradientDescription: String { "exact (white-box backpropagation)" }
    public var isStochastic: Bool { false }
    public func logits(_ x: Tensor, rng: inout SeededRandom) throws -> Tensor { try logits(x) }
    public func inputGradient(_ x: Tensor, rng: inout SeededRandom, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
        try inputGradient(x, seed: seed)
    }
}
