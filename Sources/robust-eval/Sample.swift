// Sample.swift: `robust-eval sample`: SGLD samples from the JEM, unconditional or class-conditional,
// from U(−1, 1) noise (in the model's normalised space), from JEM++'s class-conditional Gaussians
// fitted to the training data, or from a training checkpoint's replay buffer, as a PNG grid.
import ArgumentParser
import Foundation
import JEMCore

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Draw SGLD samples from a JEM and save them as a PNG grid.")
    @OptionGroup var model: ModelOptions
    @Option(name: .long, help: "Class for class-conditional sampling (p(x|y) ∝ exp f(x)[y]).") var `class`: Int?
    @Flag(name: .long, help: "One row per class (class-conditional), --count samples each.") var perClass = false
    @Option(name: .long, parsing: .unconditional, help: "Samples (per class with --per-class).") var count: Int = 16
    @Option(name: .long, parsing: .unconditional, help: "SGLD steps.") var steps: Int = 200
    @Option(name: .long, parsing: .unconditional, help: "SGLD step size α (reference 1).") var stepSize: Float = 1
    @Option(name: .long, parsing: .unconditional, help: "SGLD noise σ (reference 0.01).") var noise: Float = 0.01
    @Flag(name: .long, inversion: .prefixedNo, help: "JEM++ clamping (gradients to [−1,1], samples to [0,1]). Default: as the model was trained (its train_config metadata), else off (the reference).")
    var clamp: Bool? = nil
    @Option(name: .long, help: "Chain start: uniform (U(−1,1) noise in the model's normalised space, the reference) or gaussian (JEM++: per-class Gaussian noise fitted to the training images; unconditional chains draw their class at random). Default: as the model's replay buffer was initialised in training (its train_config metadata), else uniform.")
    var `init`: String?
    @Option(name: .long, help: "Training data SPEC the Gaussians of --init gaussian are fitted to (train split). Default: the model's training data (train_config metadata), else fashion-mnist.")
    var data: String?
    @Option(name: .long, help: "Start from this training checkpoint's replay buffer instead of noise.") var buffer: String?
    @Option(name: .long, parsing: .unconditional, help: "Image height/width when starting from noise (default 28 for 1 channel, 32 otherwise).") var size: Int?
    @Option(name: .long, help: "Output: a PNG grid, or the samples as a float32 N×C×H×W array when the name ends in .npy.") var out: String
    @Option(name: .long, help: "Also save the samples as float32 .npy.") var npy: String?
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if let k = `class` {
            guard k >= 0 else { throw ValidationError("--class must be ≥ 0, got \(k)") }
            if perClass { throw ValidationError("--class \(k) and --per-class both choose the classes; give one") }
        }
        try Check.range(count, 1...10_000, "--count")
        try Check.range(steps, 0...1_000_000, "--steps")
        try Check.positive(stepSize, "--step-size")
        try Check.finite(noise, 0...10, "--noise")
        try Check.range(size, 1...1024, "--size")
        try Check.writable(out, "--out")
        try Check.writable(npy, "--npy")
    }

    func run() throws {
        runtime.apply()
        guard steps >= 0 else { throw ValidationError("--steps must be ≥ 0, got \(steps)") }
        guard count >= 1 else { throw ValidationError("--count must be ≥ 1, got \(count)") }
        let l = try model.load()
        let net = l.model
        let c = (numClasses: net.numClasses, inChannels: net.inputChannels)
        if let k = `class`, !(0..<c.numClasses).contains(k) { throw ValidationError("--class \(k) is out of range 0..<\(c.numClasses)") }
        var labels: [Int]? = `class`.map { Array(repeating: $0, count: count) }
        if perClass { labels = (0..<c.numClasses).flatMap { Array(repeating: $0, count: count) } }
        let n = labels?.count ?? count
        var rng = SeededRandom(seed: runtime.seed)
        let trained = TrainConfig.fromMetadata(l.metadata)
        if let i = `init`, BufferInit(rawValue: i) == nil { throw ValidationError("--init must be uniform or gaussian, got '\(i)'") }
        if `init` != nil, buffer != nil { throw ValidationError("--init and --buffer both choose the chain start; give one") }
        let start = `init`.flatMap(BufferInit.init(rawValue:)) ?? trained?.bufferInit ?? .uniform
        if data != nil, start != .gaussian { throw ValidationError("--data is only used with --init gaussian") }
        let x: Tensor
        if let buffer {
            let f = try SafeTensorsFile(path: buffer)
            let b = try f.tensor("buffer")
            guard b.shape.count == 4, b.shape[1] == c.inChannels else {
                throw ValidationError("\(buffer): buffer has shape \(b.shape), expected N×\(c.inChannels)×H×W")
            }
            x = b.gather(rows: (0..<n).map { _ in Int(rng.next() % UInt64(b.shape[0])) })
        } else if start == .gaussian {
            // The model's own training data (adapted as in training) unless --data names other data.
            var source = trained ?? TrainConfig()
            if let data { source.data = data; source.padTo = nil; source.toChannels = nil }
            let specText = source.data
            let train = try source.trainingData()
            guard train.channels == c.inChannels, train.numClasses == c.numClasses else {
                throw ValidationError("--init gaussian: data \(specText) has \(train.channels) channel(s) and \(train.numClasses) classes; the model expects \(c.inChannels) and \(c.numClasses)")
            }
            if let size, size != train.height { throw ValidationError("--size \(size) does not match the \(train.height)×\(train.width) images of \(specText) that --init gaussian draws from") }
            let g = ClassGaussians(fitting: train)
            x = Tensor(shape: [n, c.inChannels, train.height, train.width])
            for i in 0..<n { g.draw(into: x, row: i, label: labels?[i] ?? Int(rng.next() % UInt64(c.numClasses)), rng: &rng) }
        } else {
            let declared = (net as? GraphModel)?.imageShape
            let s = size ?? declared.map { $0[1] } ?? (c.inChannels == 1 ? 28 : 32)
            let sw = size ?? declared.map { $0[2] } ?? s
            x = Tensor(shape: [n, c.inChannels, s, sw])
            // Uniform over the model's input range: [mean − std, mean + std] for a Wide-ResNet JEM
            // (its normalised space [−1, 1]), [0, 1] for an imported graph.
            let mean = l.wideResNet?.config.inputMean ?? Array(repeating: 0.5, count: c.inChannels)
            let half = l.wideResNet?.config.inputStd ?? Array(repeating: 0.5, count: c.inChannels)
            let hw = s * sw
            for i in 0..<x.count { x.data[i] = mean[(i / hw) % c.inChannels] + half[(i / hw) % c.inChannels] * (2 * rng.uniform() - 1) }
        }
        let t0 = Date()
        var clampOn = clamp
        if clampOn == nil, let tc = trained {
            clampOn = tc.sgld.clampGradient || tc.sgld.clampSamples
        }
        let cfg = SGLDConfig(stepSize: stepSize, noise: noise, steps: steps, clampGradient: clampOn ?? false, clampSamples: clampOn ?? false)
        try cfg.validate()
        print("sampling \(n) image(s) \(perClass ? "(\(count) per class)" : `class`.map { "of class \($0)" } ?? "unconditionally") from \(l.path): \(steps) SGLD steps from \(buffer != nil ? "the replay buffer" : start == .gaussian ? "class Gaussians" : "uniform noise")")
        fflush(stdout)
        let noiseT = Tensor(shape: x.shape)
        let prog = Progress(total: steps, label: "sgld")
        for s in 0..<steps { try SGLD.step(l.model, x, config: cfg, labels: labels, noise: noiseT, rng: &rng); prog.update(s + 1) }
        prog.finish()
        // Rows of a class-conditional grid are labelled with their class.
        let cols = perClass ? count : min(8, n)
        let rowClasses: [Int]? = labels.map { l in stride(from: 0, to: n, by: cols).map { l[$0] } }
        if out.lowercased().hasSuffix(".npy") {
            try NpyArray.write(x, to: out)      // the samples as an array, e.g. for `fid --images`
        } else {
            try ImagePNG.writeGrid(x, columns: cols, to: out, rowLabels: rowClasses)
        }
        if let npy { try NpyArray.write(x, to: npy) }
        let pred = try l.model.logits(x).argmaxRows()
        var hist = [Int](repeating: 0, count: c.numClasses)
        for p in pred { hist[p] += 1 }
        print(String(format: "%d samples from %@, %d SGLD steps (α %g, σ %g%@) in %.1f s → %@; samples per predicted class %@", n,
                     (buffer != nil ? "the replay buffer" : start == .gaussian ? "class Gaussians" : "uniform noise") as NSString, steps, stepSize, noise,
                     (cfg.clampGradient ? ", clamped" : "") as NSString,
                     Date().timeIntervalSince(t0), out as NSString, "\(hist)" as NSString))
    }
}
