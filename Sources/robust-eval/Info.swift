// Info.swift: `robust-eval info --model M`: architecture, parameter count and metadata of a
// Wide-ResNet JEM; for an ONNX graph, its ops, parameter count, input shape, output and opset.
import ArgumentParser
import Foundation
import JEMCore

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a model's architecture, parameter count and metadata (ONNX: ops, input shape, opset).")
    @OptionGroup var model: ModelOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        runtime.apply()
        let l = try model.load()
        print("file:        \(l.path)")
        if let g = l.model as? GraphModel {
            let d = g.definition
            print("format:      ONNX, opset \(d.opset), produced by \(d.producer.trimmingCharacters(in: .whitespaces).isEmpty ? "unknown" : d.producer)")
            print("input:       '\(d.inputName)' N×\(d.inputShape.dropFirst().map { $0.map(String.init) ?? "?" }.joined(separator: "×")), pixels in [0, 1]")
            if let n = g.normalization { print("normalise:   (x − \(n.mean)) / \(n.std) added in front (--input-mean/--input-std)") }
            print("output:      '\(d.outputName)', \(g.numClasses) classes")
            print("parameters:  \(g.parameterCount)")
            print("nodes:       \(d.nodes.count): " + g.opCounts.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
            return
        }
        guard let w = l.wideResNet else { return }
        let c = w.config
        print("arch:        \(c.archName) (norm \(c.norm.rawValue), LeakyReLU \(c.leak))")
        print("input:       \(c.inChannels) channel(s), mean \(c.inputMean), std \(c.inputStd)")
        print("classes:     \(c.numClasses)")
        print("parameters:  \(w.parameterCount)")
        for k in l.metadata.keys.sorted() where !ModelIO.metadata(for: c).keys.contains(k) {
            print("meta \(k): \(l.metadata[k]!)")
        }
    }
}
