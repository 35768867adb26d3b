// TrainConfig.swift: every knob of JEM training, with the reference's defaults
// (train_wrn_ebm.py) unless stated, and the options from later work (JEM++: clamped steps,
// class-conditional Gaussian buffer initialisation; an L2 penalty on the energies).

import Foundation

public enum BufferInit: String, Codable, CaseIterable, Sendable {
    /// U(−1, 1) in the model's normalised space (the reference).
    case uniform
    /// Per-class Gaussian fitted to the training images (JEM++).
    case gaussian
}

public struct TrainConfig: Codable, Equatable, Sendable {
    /// The data-set SPEC (training split), recorded so `--resume DIR` needs no other flag.
    public var data: String = "fashion-mnist"
    /// Input adaptation applied to the data and recorded in the model (metadata pad_to, to_channels).
    public var padTo: Int? = nil
    public var toChannels: Int? = nil
    public var arch: String = "wrn-28-10"
    public var norm: NormKind = .none
    public var epochs: Int = 200
    public var batchSize: Int = 64
    public var optimizer = OptimizerConfig()
    public var lr: Float = 1e-4
    public var warmupIterations: Int = 1000
    public var decayEpochs: [Int] = [160, 180]
    public var decayRate: Float = 0.3
    /// Weight of the p(x) term; 0 trains a plain classifier (the baseline).
    public var pxWeight: Float = 1
    public var pyxWeight: Float = 1
    public var pxyWeight: Float = 0
    /// L2 penalty on the energies of data and samples (0: off).
    public var energyL2: Float = 0
    public var sgld = SGLDConfig()
    public var bufferSize: Int = 10_000
    public var reinitFrequency: Float = 0.05
    public var bufferInit: BufferInit = .uniform
    /// Gaussian noise σ on training inputs, in the normalised space (reference 0.03).
    public var dataNoise: Float = 0.03
    public var augment: Bool = true
    public var flip: Bool = true
    public var validationSize: Int = 1000
    public var seed: UInt64 = 1
    public var checkpointEvery: Int = 200
    /// Divergence guard: |loss| above this (or non-finite) rolls back to the last checkpoint.
    public var lossBound: Float = 1e8
    public var maxRestarts: Int = 5
    /// Learning-rate factor applied at each roll-back.
    public var restartLRFactor: Float = 0.5
    /// The model file a new run's weights were initialised from (nil: random initialisation).
    public var initFrom: String? = nil
    /// Semi-supervised training (the reference's labels_per_class): p(y|x) sees only this many
    /// labelled images per class, p(x) every training image (nil: every image is labelled).
    public var labelsPerClass: Int? = nil

    public init() {}

    /// The settings a model or checkpoint was trained with (its `train_config` metadata), if any.
    public static func fromMetadata(_ metadata: [String: String]) -> TrainConfig? {
        guard let j = metadata["train_config"] else { return nil }
        return try? JSONDecoder().decode(TrainConfig.self, from: Data(j.utf8))
    }

    /// The training split of `data`, adapted as the run records it (pad_to, to_channels): what
    /// `train` trains on and what `sample --init gaussian` fits its class Gaussians to.
    public func trainingData() throws -> Dataset {
        let d = try DataSpec.parse(data).load(split: .train)
        return padTo != nil || toChannels != nil ? try d.adapted(toChannels: toChannels, toSize: padTo) : d
    }

    public func validate(trainCount: Int) throws {
        func bad(_ m: String) -> JEMError { .invalidArgument(m) }
        _ = try WRNConfig.parseArch(arch)
        guard epochs >= 1 else { throw bad("--epochs must be ≥ 1, got \(epochs)") }
        guard batchSize >= 1 else { throw bad("--batch-size must be ≥ 1, got \(batchSize)") }
        guard lr > 0, lr.isFinite else { throw bad("--lr must be positive, got \(lr)") }
        guard warmupIterations >= 0 else { throw bad("--warmup-iters must be ≥ 0, got \(warmupIterations)") }
        guard decayRate > 0 else { throw bad("--decay-rate must be positive, got \(decayRate)") }
        guard pxWeight >= 0, pyxWeight >= 0, pxyWeight >= 0, pxWeight + pyxWeight + pxyWeight > 0 else {
            throw bad("loss weights must be ≥ 0 and not all 0 (p(x) \(pxWeight), p(y|x) \(pyxWeight), p(x|y) \(pxyWeight))")
        }
        guard energyL2 >= 0 else { throw bad("--energy-l2 must be ≥ 0, got \(energyL2)") }
        try sgld.validate()
        if pxWeight > 0 || pxyWeight > 0 {
            guard sgld.steps >= 1 else { throw bad("--sgld-steps must be ≥ 1 when the p(x) or p(x|y) term is on, got \(sgld.steps)") }
            guard bufferSize >= batchSize else { throw bad("--buffer-size \(bufferSize) is smaller than a batch (\(batchSize))") }
        }
        guard reinitFrequency >= 0, reinitFrequency <= 1 else { throw bad("--reinit-freq must be in [0, 1], got \(reinitFrequency)") }
        guard dataNoise >= 0 else { throw bad("--data-noise must be ≥ 0, got \(dataNoise)") }
        guard validationSize >= 0, validationSize < trainCount else { throw bad("--val-size \(validationSize) must be in [0, \(trainCount))") }
        guard trainCount - validationSize >= batchSize else { throw bad("--batch-size \(batchSize) is larger than the \(trainCount - validationSize) training examples") }
        guard checkpointEvery >= 1 else { throw bad("--checkpoint-every must be ≥ 1, got \(checkpointEvery)") }
        guard maxRestarts >= 0 else { throw bad("--max-restarts must be ≥ 0") }
        if let n = labelsPerClass {
            guard n >= 1 else { throw bad("--labels-per-class must be ≥ 1, got \(n)") }
            guard pxyWeight == 0 else { throw bad("--labels-per-class trains p(y|x) and p(x); the p(x|y) term (--pxy-weight) is not supported with it") }
        }
    }
}
