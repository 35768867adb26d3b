// Predict.swift: `robust-eval predict --model M --images X.npy --out LOGITS.npy [--labels Y.npy]`.
import ArgumentParser
import Foundation
import JEMCore

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a model's logits for images in a .npy file.")
    @OptionGroup var model: ModelOptions
    @Option(name: .long, help: "Images, .npy (N×C×H×W or N×H×W×C; float in [0,1] or uint8).") var images: String
    @Option(name: .long, help: "Labels, .npy (optional): prints the accuracy.") var labels: String?
    @Option(name: .long, help: "Output logits, N×K float32 .npy.") var out: String
    @Option(name: .long, help: "Also write the input gradient of the cross-entropy at --labels (at the predicted class without labels), N×C×H×W float32 .npy: a saliency map.") var gradients: String?
    @Option(name: .long, help: "Layout when ambiguous: nchw or nhwc.") var layout: String?
    @Option(name: .long, parsing: .unconditional, help: "Batch size.") var batchSize: Int = 256
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        try Check.range(batchSize, 1...maxBatchSize, "--batch-size")
        try Check.writable(out, "--out")
        try Check.writable(gradients, "--gradients")
    }

    func run() throws {
        runtime.apply()
        let m = try model.load().model
        let d = try NpyImages.load(images: images, labels: labels, layout: layout.flatMap { NpyLayout(rawValue: $0) }, defaultClasses: m.numClasses)
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        try Check.writable(out, "--out")
        try Check.writable(gradients, "--gradients")
        let z = try m.logits(d.images, batchSize: batchSize)
        try NpyArray.write(z, to: out)
        if let gradients {
            let target = labels != nil ? d.labels : z.argmaxRows()
            var parts: [Tensor] = []
            var i = 0
            while i < d.count {
                let k = min(batchSize, d.count - i)
                parts.append(try m.crossEntropyGradient(d.images.rows(i, k), labels: Array(target[i..<(i + k)])).gradient)
                i += k
            }
            try NpyArray.write(try Tensor.concat(parts), to: gradients)
            print("input gradients of the cross-entropy at the \(labels != nil ? "given labels" : "predicted classes") → \(gradients)")
        }
        let pred = z.argmaxRows()
        var hist = [Int](repeating: 0, count: m.numClasses)
        for p in pred { hist[p] += 1 }
        print("\(d.count) images → \(out) (\(z.shape[0])×\(z.shape[1]) logits); predicted class counts \(hist)")
        if labels != nil {
            let acc = Double(zip(pred, d.labels).filter { $0 == $1 }.count) / Double(max(d.count, 1))
            print(String(format: "accuracy: %.2f%%", 100 * acc))
        }
    }
}
