// WideResNet.swift: the JEM's classifier, exactly the reference `wideresnet.py` + `CCF` head:
// depth 6n+4, widen factor k, stage widths [16, 16k, 32k, 64k], n pre-activation blocks per stage
// (strides 1/2/2, the stride on conv2), LeakyReLU, optional batch norm, global average pooling and
// `class_output` = Linear(64k, K). Input normalisation (x − mean)/std is part of the model, so
// callers pass pixels in [0, 1]. Parameter names are the PyTorch state-dict names.

public enum NormKind: String, Codable, CaseIterable, Sendable {
    case none, batch
}

public struct WRNConfig: Codable, Equatable, Sendable {
    public var depth: Int
    public var width: Int
    public var inChannels: Int
    public var numClasses: Int
    public var norm: NormKind
    public var leak: Float
    public var inputMean: [Float]
    public var inputStd: [Float]

    public init(depth: Int, width: Int, inChannels: Int, numClasses: Int, norm: NormKind = .none,
                leak: Float = 0.2, inputMean: [Float]? = nil, inputStd: [Float]? = nil) {
        self.depth = depth; self.width = width; self.inChannels = inChannels; self.numClasses = numClasses
        self.norm = norm; self.leak = leak
        self.inputMean = inputMean ?? Array(repeating: 0.5, count: inChannels)
        self.inputStd = inputStd ?? Array(repeating: 0.5, count: inChannels)
    }

    /// "wrn-D-K".
    public var archName: String { "wrn-\(depth)-\(width)" }

    /// Parses "wrn-D-K" into (D, K).
    public static func parseArch(_ s: String) throws -> (depth: Int, width: Int) {
        let parts = s.lowercased().split(separator: "-")
        guard parts.count == 3, parts[0] == "wrn", let d = Int(parts[1]), let k = Int(parts[2]) else {
            throw JEMError.invalidArgument("unknown architecture '\(s)': expected wrn-D-K, e.g. wrn-16-4")
        }
        return (d, k)
    }

    public func validate() throws {
        guard depth >= 10, (depth - 4) % 6 == 0 else {
            throw JEMError.invalidArgument("Wide-ResNet depth must be 6n+4 with n ≥ 1 (10, 16, 22, 28, ...), got \(depth)")
        }
        guard depth <= Self.maxDepth else { throw JEMError.invalidArgument("Wide-ResNet depth \(depth) is implausible (at most \(Self.maxDepth))") }
        guard width >= 1, width <= Self.maxWidth else { throw JEMError.invalidArgument("Wide-ResNet widen factor must be in 1...\(Self.maxWidth), got \(width)") }
        guard inChannels >= 1, inChannels <= Self.maxInChannels else { throw JEMError.invalidArgument("input channels must be in 1...\(Self.maxInChannels), got \(inChannels)") }
        guard numClasses >= 2, numClasses <= Self.maxClasses else { throw JEMError.invalidArgument("class count must be in 2...\(Self.maxClasses), got \(numClasses)") }
        guard inputMean.allSatisfy({ $0.isFinite }) else { throw JEMError.invalidArgument("input_mean must be finite, got \(inputMean)") }
        guard inputMean.count == inChannels, inputStd.count == inChannels else {
            throw JEMError.invalidArgument("input_mean and input_std need \(inChannels) values (one per channel), got \(inputMean.count) and \(inputStd.count)")
        }
        guard inputStd.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw JEMError.invalidArgument("input_std must be positive, got \(inputStd)") }
        guard leak.isFinite, leak >= 0, leak <= 1 else { throw JEMError.invalidArgument("leak must be in [0, 1], got \(leak)") }
    }

    public var stageWidths: [Int] { [16, 16 * width, 32 * width, 64 * width] }

    /// Plausibility bounds for architectures read from files and flags (WRN-70-16, the largest
    /// RobustBench Wide-ResNet, is well inside them).
    public static let maxDepth = 202, maxWidth = 32, maxInChannels = 64, maxClasses = 100_000

    /// Values in the state dict (parameters and batch-norm buffers), without allocating it.
    public var stateElementCount: Int {
        let w = stageWidths, n = (depth - 4) / 6
        let bn = norm == .batch ? 4 : 0
        var total = 16 * inChannels * 9 + 16
        var inPlanes = w[0]
        for (stage, stride) in [(1, 1), (2, 2), (3, 2)] {
            for i in 0..<n {
                let planes = w[stage]
                total += bn * inPlanes + planes * inPlanes * 9 + planes + bn * planes + planes * planes * 9 + planes
                if (i == 0 ? stride : 1) != 1 || inPlanes != planes { total += planes * inPlanes + planes }
                inPlanes = planes
            }
        }
        return total + bn * w[3] + numClasses * w[3] + numClasses
    }
}

/// One pre-activation block: conv1(lrelu(bn1(x))) → conv2(lrelu(bn2(·))) + shortcut(x).
final class WideBasic {
    let bn1: BatchNorm2d?, bn2: BatchNorm2d?
    let conv1: Conv2d, conv2: Conv2d
    let shortcut: Conv2d?

    init(name: String, inPlanes: Int, planes: Int, stride: Int, norm: NormKind) {
        bn1 = norm == .batch ? BatchNorm2d(name: name + ".bn1", channels: inPlanes) : nil
        conv1 = Conv2d(name: name + ".conv1", inputChannels: inPlanes, outputChannels: planes, kernelSize: 3, padding: 1)
        bn2 = norm == .batch ? BatchNorm2d(name: name + ".bn2", channels: planes) : nil
        conv2 = Conv2d(name: name + ".conv2", inputChannels: planes, outputChannels: planes, kernelSize: 3, stride: stride, padding: 1)
        shortcut = (stride != 1 || inPlanes != planes)
            ? Conv2d(name: name + ".shortcut.0", inputChannels: inPlanes, outputChannels: planes, kernelSize: 1, stride: stride)
            : nil
    }

    var parameters: [Parameter] {
        (bn1?.parameters ?? []) + conv1.parameters + (bn2?.parameters ?? []) + conv2.parameters + (shortcut?.parameters ?? [])
    }

    func callAsFunction(_ x: Variable, leak: Float, training: Bool, tape: Tape?) throws -> Variable {
        var out = x
        if let bn1 { out = try bn1(out, training: training, tape: tape) }
        out = leakyReLU(out, slope: leak, tape: tape)
        if let bn2 {
            out = leakyReLU(try bn2(try conv1(out, tape: tape), training: training, tape: tape), slope: leak, tape: tape)
        } else {
            out = try conv1(out, leakyReLU: leak, tape: tape)   // in the convolution's epilogue
        }
        out = try conv2(out, tape: tape)
        let skip = try shortcut.map { try $0(x, tape: tape) } ?? x
        return try add(out, skip, tape: tape)
    }
}

public final class WideResNet {
    public let config: WRNConfig
    let stem: Conv2d
    let blocks: [WideBasic]
    let finalNorm: BatchNorm2d?
    public let classOutput: Linear

    public init(config: WRNConfig) throws {
        try config.validate()
        self.config = config
        let w = config.stageWidths
        let n = (config.depth - 4) / 6
        stem = Conv2d(name: "f.conv1", inputChannels: config.inChannels, outputChannels: w[0], kernelSize: 3, padding: 1)
        var blocks: [WideBasic] = []
        var inPlanes = w[0]
        for (stage, stride) in [(1, 1), (2, 2), (3, 2)] {
            for i in 0..<n {
                blocks.append(WideBasic(name: "f.layer\(stage).\(i)", inPlanes: inPlanes, planes: w[stage],
                                        stride: i == 0 ? stride : 1, norm: config.norm))
                inPlanes = w[stage]
            }
        }
        self.blocks = blocks
        finalNorm = config.norm == .batch ? BatchNorm2d(name: "f.bn1", channels: w[3]) : nil
        classOutput = Linear(name: "class_output", inputFeatures: w[3], outputFeatures: config.numClasses)
    }

    /// Every tensor of the state dict, trainable parameters and batch-norm buffers, in a fixed order.
    public var parameters: [Parameter] {
        stem.parameters + blocks.flatMap(\.parameters) + (finalNorm?.parameters ?? []) + classOutput.parameters
    }

    public var trainableParameters: [Parameter] { parameters.filter { !$0.isBuffer } }

    public var parameterCount: Int { trainableParameters.reduce(0) { $0 + $1.value.count } }

    /// PyTorch default initialisation, seeded.
    public func initialize(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        stem.initialize(&rng)
        for b in blocks {
            b.conv1.initialize(&rng); b.conv2.initialize(&rng); b.shortcut?.initialize(&rng)
        }
        classOutput.initialize(&rng)
    }

    /// Logits (N, K) of pixels x (N, C, H, W) in [0, 1]. `training` selects batch statistics in
    /// batch norm; the tape, if given, records the backward rules.
    public func forward(_ x: Variable, training: Bool = false, tape: Tape? = nil) throws -> Variable {
        try classOutput(try pooledFeatures(x, training: training, tape: tape), tape: tape)
    }

    /// Everything before `class_output`: the globally pooled activations (N, 64k).
    func pooledFeatures(_ x: Variable, training: Bool, tape: Tape?) throws -> Variable {
        let s = x.shape
        guard s.count == 4, s[1] == config.inChannels else {
            throw JEMError.shapeMismatch(what: "model input", expected: [-1, config.inChannels, -1, -1], found: s)
        }
        var out = try normalizeChannels(x, mean: config.inputMean, std: config.inputStd, tape: tape)
        out = try stem(out, tape: tape)
        for b in blocks { out = try b(out, leak: config.leak, training: training, tape: tape) }
        if let finalNorm { out = try finalNorm(out, training: training, tape: tape) }
        out = leakyReLU(out, slope: config.leak, tape: tape)
        return try globalAveragePool(out, tape: tape)
    }

    /// Multiply–accumulate count of one forward pass for an input of H×W (for GFLOP/s reports).
    public func forwardMACs(height: Int, width: Int) -> Int {
        var h = height, w = width, macs = 0
        func conv(_ c: Conv2d) {
            let (oh, ow) = c.outputSize(h, w)
            macs += oh * ow * c.outputChannels * c.inputChannels * c.kernelSize * c.kernelSize
        }
        conv(stem)
        for b in blocks {
            conv(b.conv1)
            let (h0, w0) = (h, w)
            conv(b.conv2)
            if let s = b.shortcut { conv(s) }
            (h, w) = b.conv2.outputSize(h0, w0)
        }
        macs += classOutput.inputFeatures * classOutput.outputFeatures
        return macs
    }
}
