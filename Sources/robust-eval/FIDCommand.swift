// FIDCommand.swift: `robust-eval fid`: sample quality in a classifier's feature space: the Fréchet
// distance between Gaussians fitted to the penultimate-layer features of the images and of a
// reference set (a domain FID, not Inception-v3's), and the Inception-style score of the images.
import ArgumentParser
import Attacks
import Foundation
import JEMCore
import JEMRobust

struct FIDReport: Codable {
    var images: String
    var n_images: Int
    var reference: String
    var n_reference: Int
    var features_model: String
    var feature_dim: Int
    var fid: Double
    var inception_score: Double
    var seconds: Double
}

struct FIDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fid",
        abstract: "Sample quality: FID against a reference set and the Inception-style score, in a classifier's feature space.",
        discussion: """
        The features are the penultimate layer of --features (default: the bundled baseline classifier), so the FID is a \
        domain FID, comparable only between runs with the same feature model and reference; it is not Inception-v3's FID. \
        The score is exp(E KL(p(y|x) ‖ p(y))) under the same classifier. --images takes a .npy file (e.g. `sample --out S.npy`), \
        a data SPEC (its --images-split, default train) or noise:N (N uniform-noise images of the reference's shape).
        """)
    @Option(name: .long, help: "Images: FILE.npy, a data SPEC, or noise:N.") var images: String
    @Option(name: .long, help: "Split of --images when it is a data SPEC: train or test.") var imagesSplit: String = "train"
    @Option(name: .long, help: "Reference data SPEC (default: the Fashion-MNIST test split).") var reference: String = "fashion-mnist"
    @Option(name: .long, help: "Split of the reference: train or test.") var referenceSplit: String = "test"
    @Option(name: .long, help: "Feature model: baseline (default), jem, jem-k5, jem-k10, a .safetensors or .onnx file.") var features: String = "baseline"
    @Option(name: .long, parsing: .unconditional, help: "Use at most N images of each set.") var limit: Int?
    @Option(name: .long, parsing: .unconditional, help: "Batch size.") var batchSize: Int = 256
    @Option(name: .long, help: "Write the report as JSON.") var json: String?
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        try Check.range(limit, 2...10_000_000, "--limit")
        try Check.range(batchSize, 1...maxBatchSize, "--batch-size")
        for (flag, s) in [("--images-split", imagesSplit), ("--reference-split", referenceSplit)] where Split(rawValue: s) == nil {
            throw ValidationError("\(flag) must be train or test, got '\(s)'")
        }
        _ = try DataSpec.parse(reference)
        if !images.hasSuffix(".npy") && !images.hasPrefix("noise:") { _ = try DataSpec.parse(images) }
        if images.hasPrefix("noise:") {
            guard let n = Int(images.dropFirst(6)), (2...1_000_000).contains(n) else {
                throw ValidationError("--images \(images): expected noise:N with N in 2...1000000")
            }
        }
        try Check.writable(json, "--json")
    }

    func limited(_ d: Dataset) throws -> Dataset { try limit.map { try d.subset(offset: 0, limit: $0, shuffleSeed: nil) } ?? d }

    func run() throws {
        runtime.apply()
        let l = try BundledModels.load(features)
        let ref = try limited(try DataSpec.parse(reference).load(split: Split(rawValue: referenceSplit)!))
        let x: Tensor
        var name = images
        if images.hasPrefix("noise:") {
            let n = min(Int(images.dropFirst(6))!, limit ?? .max)
            var rng = SeededRandom(seed: runtime.seed)
            x = Tensor(shape: [n] + Array(ref.images.shape.dropFirst()))
            for i in 0..<x.count { x.data[i] = rng.uniform() }
            name = "uniform noise, \(n) images (seed \(runtime.seed))"
        } else if images.hasSuffix(".npy") {
            x = try limited(try NpyImages.load(images: images, labels: nil, layout: nil, defaultClasses: l.model.numClasses)).images
        } else {
            let d = try limited(try DataSpec.parse(images).load(split: Split(rawValue: imagesSplit)!))
            x = d.images; name = d.name
        }
        guard Array(x.shape.dropFirst()) == Array(ref.images.shape.dropFirst()) else {
            throw ValidationError("--images are \(x.shape.dropFirst().map(String.init).joined(separator: "×")), the reference \(ref.name) \(ref.images.shape.dropFirst().map(String.init).joined(separator: "×")); adapt one to the other")
        }
        guard x.shape[0] >= 2 else { throw ValidationError("--images: FID needs at least 2 images, got \(x.shape[0])") }
        print("images:    \(name), \(x.shape[0])\nreference: \(ref.name), \(ref.count)\nfeatures:  penultimate layer of \(l.path) (\(l.model.architectureName))")
        fflush(stdout)
        let t0 = Date()
        func featuresAndProbabilities(_ t: Tensor) throws -> (Tensor, Tensor) {
            var f: [Tensor] = [], p: [Tensor] = []
            var i = 0
            while i < t.shape[0] {
                let b = t.rows(i, min(batchSize, t.shape[0] - i))
                f.append(try l.model.features(b))
                p.append(Losses.softmax(try l.model.logits(b)))
                i += b.shape[0]
            }
            return (try Tensor.concat(f), try Tensor.concat(p))
        }
        let (fx, px) = try featuresAndProbabilities(x)
        let (fr, _) = try featuresAndProbabilities(ref.images)
        let fid = try SampleQuality.frechetDistance(try FeatureStatistics(fx), try FeatureStatistics(fr))
        let score = SampleQuality.inceptionScore(probabilities: px)
        let secs = Date().timeIntervalSince(t0)
        print(String(format: "FID %.3f (feature dimension %d)   Inception-style score %.3f   (%.1f s)", fid, fx.shape[1], score, secs))
        if let json {
            try writeJSON(FIDReport(images: name, n_images: x.shape[0], reference: ref.name, n_reference: ref.count, features_model: l.path,
                                    feature_dim: fx.shape[1], fid: fid, inception_score: score, seconds: secs), to: json)
        }
    }
}
