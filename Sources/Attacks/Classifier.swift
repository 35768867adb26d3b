// Classifier.swift: what an attack needs from a model: logits and input gradients of a function
// of the logits, with the randomness of stochastic models (the SGLD defense) drawn from a seeded
// generator the caller passes. A bare network (`Network`: the Wide-ResNet or an imported ONNX
// graph) is the deterministic case.
import JEMCore

public protocol Classifier: AnyObject {
    var numClasses: Int { get }
    /// How the attacker differentiates this classifier (stated in every report).
    var gradientDescription: String { get }
    /// Whether logits depend on the random generator (then attacks judge success on final iterates).
    var isStochastic: Bool { get }
    /// Logits (N, K) of pixels in [0, 1].
    func logits(_ x: Tensor, rng: inout RowStreams) throws -> Tensor
    /// Logits and d(objective)/dx, where `seed` maps the logits to d(objective)/d(logits).
    func inputGradient(_ x: Tensor, rng: inout RowStreams, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor)
}

/// A deterministic network attacked white-box: exact gradients by backpropagation.
extension Classifier where Self: Network {
    public var gradientDescription: String { "exact (white-box backpropagation)" }
    public var isStochastic: Bool { false }
    public func logits(_ x: Tensor, rng: inout RowStreams) throws -> Tensor { try logits(x) }
    public func inputGradient(_ x: Tensor, rng: inout RowStreams, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
        try inputGradient(x, seed: seed)
    }
}

extension WideResNet: Classifier {}
extension GraphModel: Classifier {}

/// Any network as a classifier (for code that holds it as `any Network`).
public func classifier(_ network: any Network) -> any Classifier {
    if let c = network as? any Classifier { return c }
    return NetworkClassifier(network)
}

final class NetworkClassifier: Classifier {
    let network: any Network
    init(_ network: any Network) { self.network = network }
    var numClasses: Int { network.numClasses }
    var gradientDescription: String { "exact (white-box backpropagation)" }
    var isStochastic: Bool { false }
    func logits(_ x: Tensor, rng: inout RowStreams) throws -> Tensor { try network.logits(x) }
    func inputGradient(_ x: Tensor, rng: inout RowStreams, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
        try network.inputGradient(x, seed: seed)
    }
}
