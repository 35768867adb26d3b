// Options.swift: flags shared by several subcommands (model, data, runtime).
import ArgumentParser
import Foundation
import Attacks
import JEMCore

/// Parses "8/255", "0.03" or "1e-2".
func parseFraction(_ s: String) -> Double? {
    let parts = s.split(separator: "/", omittingEmptySubsequences: false)
    if parts.count == 2, let a = Double(parts[0]), let b = Double(parts[1]), b != 0 { return a / b }
    if parts.count == 1 { return Double(s) }
    return nil
}

struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model: 'jem' (bundled, default), 'baseline' (bundled), 'jem-k5' (bundled: the earlier default JEM, trained with 5 SGLD steps: more accurate, far less robust), 'jem-k10' (bundled: the earlier, more robust and less accurate JEM), a .safetensors Wide-ResNet, or any CNN exported to .onnx.")
    var model: String = "jem"
    @Option(name: .long, help: "Architecture of a bare state dict, wrn-D-K (overrides metadata).")
    var arch: String?
    @Option(name: .long, parsing: .unconditional, help: "Input channels (overrides metadata).")
    var inChannels: Int?
    @Option(name: .long, parsing: .unconditional, help: "Class count (overrides metadata).")
    var classes: Int?
    @Flag(name: .long, help: "The model uses batch norm (overrides metadata).")
    var batchNorm = false
    @Option(name: .long, parsing: .unconditional, help: "Per-channel input mean, comma-separated (overrides metadata; for an ONNX model, adds (x − mean)/std in front of the graph).")
    var inputMean: String?
    @Option(name: .long, parsing: .unconditional, help: "Per-channel input std, comma-separated (overrides metadata; see --input-mean).")
    var inputStd: String?
    @Option(name: .long, help: "ONNX: the graph output that holds the logits, when the graph has several.")
    var output: String?

    func validate() throws {
        try Check.range(classes, 2...WRNConfig.maxClasses, "--classes")
        try Check.range(inChannels, 1...WRNConfig.maxInChannels, "--in-channels")
        if let arch {
            let (d, k) = try WRNConfig.parseArch(arch)
            try WRNConfig(depth: d, width: k, inChannels: 1, numClasses: 2).validate()
        }
        let o = try overrides()
        if let m = o.inputMean, !m.allSatisfy({ $0.isFinite }) { throw ValidationError("--input-mean must be finite, got \(inputMean!)") }
        if let s = o.inputStd, !s.allSatisfy({ $0.isFinite && $0 > 0 }) { throw ValidationError("--input-std must be positive and finite, got \(inputStd!)") }
    }

    func overrides() throws -> ModelOverrides {
        ModelOverrides(arch: arch, inChannels: inChannels, classes: classes, batchNorm: batchNorm ? true : nil,
                       inputMean: try inputMean.map { try ModelIO.parseFloats($0, what: "--input-mean") },
                       inputStd: try inputStd.map { try ModelIO.parseFloats($0, what: "--input-std") }, output: output)
    }

    func load() throws -> LoadedModel {
        try BundledModels.load(model, overrides: try overrides())
    }
}

/// The models shipped with the toolkit, found next to the executable from any working directory.
enum BundledModels {
    /// `jem` is the default JEM (10 SGLD steps, 8 epochs); `jem-k5` and `jem-k10` the earlier ones
    /// (5 steps for 9 epochs, 10 steps for 6), kept so published comparisons stay reproducible.
    static let names = ["jem": "jem-fmnist.safetensors", "baseline": "baseline-fmnist.safetensors",
                        "jem-k5": "jem-k5-fmnist.safetensors", "jem-k10": "jem-k10-fmnist.safetensors"]

    static func directory() -> String? {
        if let env = ProcessInfo.processInfo.environment["ROBUST_EVAL_MODELS"] { return env }
        return Bundle.module.resourcePath.map { ($0 as NSString).appendingPathComponent("Models") }
    }

    static func resolve(_ name: String) throws -> String {
        guard let file = names[name.lowercased()] else {
            if !FileManager.default.fileExists(atPath: name) {
                throw ValidationError("unknown model '\(name)': expected jem, baseline, jem-k5, jem-k10 or an existing .safetensors or .onnx file")
            }
            return name
        }
        guard let dir = directory() else { throw JEMError.io(path: name, reason: "cannot locate the bundled models directory") }
        let p = (dir as NSString).appendingPathComponent(file)
        guard FileManager.default.fileExists(atPath: p) else {
            throw JEMError.io(path: p, reason: "bundled model '\(name)' is not present in this build (see README: Bundled models)")
        }
        return p
    }

    static func load(_ name: String, overrides: ModelOverrides = ModelOverrides()) throws -> LoadedModel {
        try ModelIO.load(path: try resolve(name), overrides: overrides)
    }
}

struct DataOptions: ParsableArguments {
    @Option(name: .long, help: "Data set: fashion-mnist[:DIR] (default), mnist:DIR, cifar10:DIR, cifar100:DIR[:coarse], svhn:FILE.mat, npy:IMAGES.npy[,LABELS.npy].")
    var data: String = "fashion-mnist"
    @Option(name: .long, help: "Split: train or test.")
    var split: String = "test"
    @Option(name: .long, parsing: .unconditional, help: "Use at most N examples.")
    var limit: Int?
    @Option(name: .long, parsing: .unconditional, help: "Skip the first K examples.")
    var offset: Int = 0
    @Option(name: .long, parsing: .unconditional, help: "Shuffle with this seed before --offset/--limit.")
    var shuffle: UInt64?
    @Option(name: .long, help: "Layout of .npy images when ambiguous: nchw or nhwc.")
    var layout: String?
    @Option(name: .long, parsing: .unconditional, help: "Pad images (zeros, centred) to S×S.")
    var padTo: Int?
    @Option(name: .long, parsing: .unconditional, help: "Repeat grey images to C channels.")
    var toChannels: Int?
    @Flag(name: .long, help: "Accept images whose size differs from the size the model was trained on.")
    var allowAnySize = false

    func validate() throws { try validateFlags() }

    func validateFlags() throws {
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive, got \(limit)") }
        if offset < 0 { throw ValidationError("--offset must be ≥ 0, got \(offset)") }
        if let padTo, !(1...4096).contains(padTo) { throw ValidationError("--pad-to must be in 1...4096, got \(padTo)") }
        if let toChannels, !(1...WRNConfig.maxInChannels).contains(toChannels) {
            throw ValidationError("--to-channels must be in 1...\(WRNConfig.maxInChannels), got \(toChannels)")
        }
        if Split(rawValue: split) == nil { throw ValidationError("--split must be train or test, got '\(split)'") }
        if let layout, NpyLayout(rawValue: layout.lowercased()) == nil { throw ValidationError("--layout must be nchw or nhwc, got '\(layout)'") }
    }

    func load(defaultClasses: Int? = nil) throws -> Dataset {
        try validateFlags()
        let spec = try DataSpec.parse(data)
        var d = try spec.load(split: Split(rawValue: split)!, layout: layout.flatMap { NpyLayout(rawValue: $0.lowercased()) },
                              defaultClasses: defaultClasses)
        if limit != nil || offset > 0 || shuffle != nil { d = try d.subset(offset: offset, limit: limit, shuffleSeed: shuffle) }
        if padTo != nil || toChannels != nil { d = try d.adapted(toChannels: toChannels, toSize: padTo) }
        guard d.count > 0 else {
            throw ValidationError("--data \(data): no images selected (the \(split) split holds none after --offset \(offset)\(limit.map { " --limit \($0)" } ?? ""))")
        }
        return d
    }
}

struct RuntimeOptions: ParsableArguments {
    @Option(name: .long, parsing: .unconditional, help: "Threads (0: all cores).")
    var threads: Int = 0
    @Option(name: .long, parsing: .unconditional, help: "Seed for every random choice.")
    var seed: UInt64 = 0

    func validate() throws { try Check.threads(threads) }

    /// Under MPI, `--threads 0` means this node's cores divided by the ranks on it.
    func apply() {
        if threads == 0, let w = MPIWorld.current {
            Runtime.configure(threads: max(1, ProcessInfo.processInfo.activeProcessorCount / w.localSize))
        } else {
            Runtime.configure(threads: threads)
        }
    }
}

/// A progress line on a terminal (rate and ETA), nothing otherwise.
final class Progress {
    let total: Int, label: String
    let start = Date()
    let tty = isatty(STDERR_FILENO) != 0
    /// Under MPI only rank 0 reports progress.
    let quiet = (MPIWorld.current?.rank ?? 0) != 0
    var last = Date.distantPast
    /// The count at the first update: a resumed run's work done before it does not enter the rate.
    var base: Int? = nil

    init(total: Int, label: String) { self.total = total; self.label = label }

    /// On a terminal, a line redrawn at most 4 times a second; otherwise a plain line at the start,
    /// about every 10 s, and at the end.
    func update(_ done: Int, extra: String = "") {
        if base == nil { base = done }
        let since = Date().timeIntervalSince(last)
        guard !quiet, since > (tty ? 0.25 : 10) || done == total || last == .distantPast else { return }
        last = Date()
        let line = self.line(done, elapsed: Date().timeIntervalSince(start), extra: extra)
        FileHandle.standardError.write((tty ? "\r\u{1B}[K" + line : line + "\n").data(using: .utf8)!)
    }

    /// The line for `done` of `total` after `elapsed` seconds (the rate counts from the first update).
    func line(_ done: Int, elapsed: Double, extra: String = "") -> String {
        let rate = Double(done - (base ?? 0)) / max(elapsed, 1e-9)
        // Slow work (an APGD-T batch on a robust model: a few points a minute) keeps its digits; no
        // ETA until something has been done.
        let rateText = String(format: rate >= 1 || rate == 0 ? "%.1f" : "%.3f", rate)
        let etaText = done >= total ? "0m00s" : rate > 0 ? formatDuration(Double(total - done) / rate) : "--"
        return "\(label) \(done)/\(total)  \(rateText)/s  ETA \(etaText)  \(extra)"
    }

    func finish() { if tty { FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!) } }
}

func formatDuration(_ s: Double) -> String {
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, (t % 3600) / 60) : String(format: "%dm%02ds", t / 60, t % 60)
}

func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    try AtomicFile.write(try enc.encode(value), to: path)
}

extension LoadedModel {
    /// The model attacked white-box (exact gradients).
    var classifier: any Classifier { Attacks.classifier(model) }
}
