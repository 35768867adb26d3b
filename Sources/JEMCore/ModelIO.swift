// ModelIO.swift: Wide-ResNet JEMs in safetensors files. Written files carry the architecture as
// metadata (arch, depth, width, in_channels, num_classes, norm, leak, input_mean, input_std) and
// use the reference's PyTorch names, including the unused `f.linear` and `energy_output` heads so
// `load_state_dict(strict=True)` accepts them. Bare PyTorch exports load when the architecture is
// given as overrides (which win over metadata); a `module.` prefix is stripped.
import Foundation

/// Architecture fields given on the command line; each non-nil field overrides the file's metadata.
public struct ModelOverrides: Sendable {
    public var arch: String?
    public var inChannels: Int?
    public var classes: Int?
    public var batchNorm: Bool?
    public var inputMean: [Float]?
    public var inputStd: [Float]?
    public var leak: Float?
    /// The graph output holding the logits (ONNX models with several outputs).
    public var output: String?

    public init(arch: String? = nil, inChannels: Int? = nil, classes: Int? = nil, batchNorm: Bool? = nil,
                inputMean: [Float]? = nil, inputStd: [Float]? = nil, leak: Float? = nil, output: String? = nil) {
        self.arch = arch; self.inChannels = inChannels; self.classes = classes; self.batchNorm = batchNorm
        self.inputMean = inputMean; self.inputStd = inputStd; self.leak = leak; self.output = output
    }

    public var isEmpty: Bool {
        arch == nil && inChannels == nil && classes == nil && batchNorm == nil && inputMean == nil && inputStd == nil && leak == nil
    }
}

/// A loaded model with where it came from.
public struct LoadedModel {
    public let model: any Network
    public let path: String
    public let metadata: [String: String]

    public init(model: any Network, path: String, metadata: [String: String]) {
        self.model = model; self.path = path; self.metadata = metadata
    }

    /// The Wide-ResNet, for what only it can do (training, its architecture metadata).
    public var wideResNet: WideResNet? { model as? WideResNet }
}

public enum ModelIO {
    /// Parses "0.5,0.5,0.5" (or a single value, repeated per channel).
    public static func parseFloats(_ s: String, what: String) throws -> [Float] {
        let v = s.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard !v.isEmpty, v.allSatisfy({ $0 != nil }) else {
            throw JEMError.invalidArgument("\(what): expected comma-separated numbers, got '\(s)'")
        }
        return v.map { $0! }
    }

    static func floatsString(_ v: [Float]) -> String { v.map { "\($0)" }.joined(separator: ",") }

    public static func metadata(for c: WRNConfig) -> [String: String] {
        ["arch": "wrn", "depth": "\(c.depth)", "width": "\(c.width)", "in_channels": "\(c.inChannels)",
         "num_classes": "\(c.numClasses)", "norm": c.norm.rawValue, "leak": "\(c.leak)",
         "input_mean": floatsString(c.inputMean), "input_std": floatsString(c.inputStd)]
    }

    /// Saves atomically. `extra` metadata (e.g. the training recipe) is added to the architecture's.
    public static func save(_ model: WideResNet, to path: String, extra: [String: String] = [:]) throws {
        for p in model.parameters where !p.value.isFinite {
            throw JEMError.invalidArgument("refusing to save \(path): tensor `\(p.name)` holds non-finite values")
        }
        var tensors = model.parameters.map { ($0.name, $0.value) }
        let feat = model.config.stageWidths[3]
        tensors.append(("f.linear.weight", Tensor(shape: [model.config.numClasses, feat])))
        tensors.append(("f.linear.bias", Tensor(shape: [model.config.numClasses])))
        tensors.append(("energy_output.weight", Tensor(shape: [1, feat])))
        tensors.append(("energy_output.bias", Tensor(shape: [1])))
        var meta = extra
        for (k, v) in metadata(for: model.config) { meta[k] = v }
        try SafeTensors.write(path: path, tensors: tensors, metadata: meta)
    }

    /// Resolves the architecture from metadata and overrides.
    public static func config(metadata m: [String: String], overrides o: ModelOverrides, path: String) throws -> WRNConfig {
        func int(_ key: String) throws -> Int? {
            guard let s = m[key] else { return nil }
            guard let v = Int(s) else { throw JEMError.badFile(path: path, reason: "metadata `\(key)` is '\(s)', expected an integer") }
            return v
        }
        var depth = try int("depth"), width = try int("width")
        if let arch = m["arch"], arch != "wrn", o.arch == nil {
            throw JEMError.badFile(path: path, reason: "metadata arch is '\(arch)'; only 'wrn' is supported")
        }
        if let a = o.arch { (depth, width) = try WRNConfig.parseArch(a) }
        let missing = "\(path): the file does not state its architecture; give it with --arch wrn-D-K --in-channels C --classes K [--batch-norm] --input-mean M --input-std S"
        guard let d = depth, let w = width else { throw JEMError.invalidArgument(missing) }
        guard let inC = try o.inChannels ?? int("in_channels"), let k = try o.classes ?? int("num_classes") else {
            throw JEMError.invalidArgument(missing)
        }
        guard (1...WRNConfig.maxInChannels).contains(inC) else {
            throw JEMError.badFile(path: path, reason: "in_channels \(inC) is implausible (expected 1...\(WRNConfig.maxInChannels))")
        }
        var norm = NormKind.none
        if let n = m["norm"] {
            guard let v = NormKind(rawValue: n) else { throw JEMError.badFile(path: path, reason: "metadata norm is '\(n)', expected none or batch") }
            norm = v
        }
        if let b = o.batchNorm { norm = b ? .batch : .none }
        var leak: Float = 0.2
        if let l = m["leak"] {
            guard let v = Float(l) else { throw JEMError.badFile(path: path, reason: "metadata leak is '\(l)', expected a number") }
            leak = v
        }
        if let l = o.leak { leak = l }
        func perChannel(_ v: [Float]?) -> [Float]? {
            guard let v else { return nil }
            return v.count == 1 ? Array(repeating: v[0], count: inC) : v
        }
        let mean = try perChannel(o.inputMean ?? m["input_mean"].map { try parseFloats($0, what: "\(path) metadata input_mean") })
        let std = try perChannel(o.inputStd ?? m["input_std"].map { try parseFloats($0, what: "\(path) metadata input_std") })
        let c = WRNConfig(depth: d, width: w, inChannels: inC, numClasses: k, norm: norm, leak: leak, inputMean: mean, inputStd: std)
        do { try c.validate() } catch let e as JEMError {
            throw JEMError.badFile(path: path, reason: "\(e) (from the file's metadata\(o.isEmpty ? "" : " and the flags"))")
        }
        return c
    }

    /// The image size (height, width) a model expects, where it is known: a static ONNX input, the
    /// `image_size` metadata `train` writes, or the data set and padding of its training recipe.
    public static func expectedImageSize(_ l: LoadedModel) -> (Int, Int)? {
        if let g = l.model as? GraphModel {
            let s = g.imageShape
            return s.count == 3 && s[1] > 0 && s[2] > 0 ? (s[1], s[2]) : nil
        }
        let m = l.metadata
        if let s = m["image_size"] {
            let p = s.split(separator: "x").compactMap { Int($0) }
            if p.count == 2 { return (p[0], p[1]) }
        }
        guard let c = TrainConfig.fromMetadata(m) else { return nil }
        if let p = c.padTo { return (p, p) }
        switch try? DataSpec.parse(c.data) {
        case .fashionMNIST, .mnist: return (28, 28)
        case .cifar10, .cifar100, .svhn: return (32, 32)
        default: return nil
        }
    }

    /// Refuses images whose size differs from the size the model expects (unless `allowAnySize`).
    public static func checkImageSize(_ d: Dataset, for l: LoadedModel, allowAnySize: Bool) throws {
        guard !allowAnySize, let (h, w) = expectedImageSize(l), (h, w) != (d.height, d.width) else { return }
        let why = l.model is GraphModel ? "its graph's declared input" : "the size it was trained on"
        throw JEMError.invalidArgument("\(d.name): images are \(d.height)×\(d.width), but \(l.path) expects \(h)×\(w) (\(why)); adapt the data (--pad-to) or pass --allow-any-size to evaluate anyway")
    }

    /// Loads a model file: a Wide-ResNet JEM (.safetensors) or any CNN exported to ONNX (.onnx).
    public static func load(path: String, overrides: ModelOverrides = ModelOverrides()) throws -> LoadedModel {
        if path.lowercased().hasSuffix(".onnx") {
            let o = overrides
            if o.arch != nil || o.inChannels != nil || o.classes != nil || o.batchNorm != nil || o.leak != nil {
                throw JEMError.invalidArgument("\(path): --arch, --in-channels, --classes and --batch-norm describe a Wide-ResNet state dict; an ONNX graph states its own architecture")
            }
            let g = try GraphModel(path: path, output: o.output, inputMean: o.inputMean, inputStd: o.inputStd)
            return LoadedModel(model: g, path: path, metadata: ["format": "onnx", "in_channels": "\(g.inputChannels)", "num_classes": "\(g.numClasses)"])
        }
        if overrides.output != nil {
            throw JEMError.invalidArgument("--output names an ONNX graph output; \(path) is not an .onnx file")
        }
        return try load(file: try SafeTensorsFile(path: path), overrides: overrides)
    }

    /// A Wide-ResNet from an already-read safetensors file.
    public static func load(file: SafeTensorsFile, overrides: ModelOverrides = ModelOverrides()) throws -> LoadedModel {
        let path = file.path
        let config = try config(metadata: file.metadata, overrides: overrides, path: path)
        // The architecture comes from metadata or flags: a large one must be held by the file before
        // it is allocated (a hostile width or depth must not exhaust memory first); a small one is
        // allocated and each tensor's shape compared, which names the tensor that differs.
        let held = file.entries.values.reduce(0) { $0 + $1.shape.reduce(1, *) }
        guard held >= config.stateElementCount || config.stateElementCount <= 50_000_000 else {
            throw JEMError.badFile(path: path, reason: "the architecture \(config.archName) (\(config.inChannels) input channels, \(config.numClasses) classes\(config.norm == .batch ? ", batch norm" : "")) has \(config.stateElementCount) values, the file's tensors hold only \(held)")
        }
        let model = try WideResNet(config: config)
        let prefix = file.entries.keys.contains { $0.hasPrefix("module.") } ? "module." : ""
        for p in model.parameters {
            let name = prefix + p.name
            guard let e = file.entries[name] else { throw JEMError.missingTensor(path: path, name: name) }
            guard e.shape == p.value.shape else {
                throw JEMError.badFile(path: path, reason: "Shape mismatch in `\(name)`: expected \(p.value.shapeDescription) for \(config.archName), found [\(e.shape.map(String.init).joined(separator: ","))]")
            }
            let t = try file.tensor(name)
            guard t.isFinite else {
                throw JEMError.badFile(path: path, reason: "tensor `\(name)` holds non-finite values (NaN or infinity)")
            }
            p.value.assign(t)
        }
        return LoadedModel(model: model, path: path, metadata: file.metadata)
    }
}

public typealias SafeTensors = SafeTensorsFile
