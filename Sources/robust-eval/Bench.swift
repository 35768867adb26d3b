// Bench.swift: `robust-eval bench`: images per second of forward, training step (forward +
// backward to the weights) and input-gradient step (backward of Σ logsumexp to the input) for the
// reference Wide-ResNets at batch 64. scripts/bench_torch.py runs the same rows in PyTorch.
import ArgumentParser
import Foundation
import JEMCore

struct BenchRow: Codable {
    var model: String
    var input: String
    var batch: Int
    var op: String
    var images_per_second: Double
    var gflops: Double
}

struct BenchReport: Codable {
    var threads: Int
    var rows: [BenchRow]
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time forward, training step and input gradient of the reference Wide-ResNets.")
    @Option(name: .long, help: "Batch size.") var batch: Int = 64
    @Option(name: .long, help: "Timed repetitions per row (median reported).") var repeats: Int = 5
    @Option(name: .long, help: "Only rows whose model matches (e.g. wrn-16-4).") var only: String?
    @Option(name: .long, help: "Write the rows as JSON.") var json: String?
    @OptionGroup var runtime: RuntimeOptions

    static let cases: [(String, Int, Int)] = [("wrn-10-2", 1, 28), ("wrn-10-2", 3, 32), ("wrn-16-4", 1, 28), ("wrn-16-4", 3, 32), ("wrn-28-10", 3, 32)]

    func run() throws {
        runtime.apply()
        guard batch > 0, repeats > 0 else { throw ValidationError("--batch and --repeats must be positive") }
        var rows: [BenchRow] = []
        for (arch, c, s) in Self.cases where only == nil || arch == only {
            let (d, k) = try WRNConfig.parseArch(arch)
            let m = try WideResNet(config: WRNConfig(depth: d, width: k, inChannels: c, numClasses: 10))
            m.initialize(seed: runtime.seed)
            var rng = SeededRandom(seed: runtime.seed)
            let x = Tensor(shape: [batch, c, s, s])
            rng.fillUniform(x, lo: 0, hi: 1)
            let labels = (0..<batch).map { $0 % 10 }
            let fwdFlops = 2.0 * Double(m.forwardMACs(height: s, width: s))
            let ops: [(String, Double, () throws -> Void)] = [
                ("forward", 1, { _ = try m.logits(x) }),
                ("train_step", 3, {
                    m.zeroGradients()
                    _ = try m.accumulateParameterGradients(x, training: true) { z in
                        let g = Tensor(shape: z.shape)
                        try Losses.addCrossEntropyGradient(g, logits: z, labels: labels, weights: Array(repeating: 1 / Float(batch), count: batch))
                        return g
                    }
                }),
                ("input_grad", 2, { _ = try m.logDensityGradient(x) }),
            ]
            for (name, mult, body) in ops {
                try body()   // warm-up
                var times: [Double] = []
                for _ in 0..<repeats {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try body()
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                }
                let med = times.sorted()[times.count / 2]
                let row = BenchRow(model: arch, input: "\(c)x\(s)x\(s)", batch: batch, op: name,
                                   images_per_second: Double(batch) / med, gflops: mult * fwdFlops * Double(batch) / med / 1e9)
                rows.append(row)
                print(String(format: "%-10@ %-8@ %-11@ %9.1f img/s  %6.1f GFLOP/s", arch as NSString, row.input as NSString, name as NSString, row.images_per_second, row.gflops))
            }
        }
        if let json { try writeJSON(BenchReport(threads: Runtime.threads, rows: rows), to: json) }
    }
}
