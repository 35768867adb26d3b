// Bench.swift: `robust-eval bench`: images per second of forward, training step (forward +
// backward to the weights) and input-gradient step (backward of Σ logsumexp to the input) for the
// reference Wide-ResNets at batch 64; with --workload, the end-to-end workloads on the bundled JEM
// (SGLD chain, PGD, a JEM training iteration, the defense, batch-1 latency).
// scripts/bench_torch.py runs the same rows in PyTorch.
import ArgumentParser
import Attacks
import Foundation
import JEMCore
import JEMRobust

struct BenchRow: Codable {
    var model: String
    var input: String
    var batch: Int
    var op: String
    var images_per_second: Double
    var gflops: Double?
}

struct BenchReport: Codable {
    var threads: Int
    var rows: [BenchRow]
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time forward, training step and input gradient of the reference Wide-ResNets, or end-to-end workloads (--workload).")
    @Option(name: .long, parsing: .unconditional, help: "Batch size.") var batch: Int = 64
    @Option(name: .long, parsing: .unconditional, help: "Timed repetitions per row (median reported).") var repeats: Int = 5
    @Option(name: .long, help: "Only rows whose model matches (e.g. wrn-16-4).") var only: String?
    @Option(name: .long, help: "Write the rows as JSON.") var json: String?
    @Option(name: .long, help: """
        End-to-end workloads on the bundled JEM (WRN-10-2, 1×28×28) instead of the layer rows, comma-separated: \
        sgld (20 SGLD steps, batch 64), pgd (PGD-L∞ 8/255, 10 steps, batch 128), train (one iteration of the bundled \
        JEM's training recipe, batch 64), train10 (the same with 10 SGLD steps), defend (the defense at its defaults under 10-step BPDA PGD, batch 16, as \
        `defend` runs it), defend_full (the same PGD with the exact gradient through all chains and steps), \
        latency (batch-1 forward and input gradient).
        """) var workload: String?
    @Option(name: .long, help: "An ONNX (or .safetensors) model: time its forward and input gradient on random images of its input size instead of the layer rows.") var model: String?
    @Flag(name: .long, help: "Run in batch-invariant mode, as the attacks, eval and the defense's evaluation run (an image's result independent of its batch).")
    var batchInvariant = false
    @OptionGroup var runtime: RuntimeOptions

    static let cases: [(String, Int, Int)] = [("wrn-10-2", 1, 28), ("wrn-10-2", 3, 32), ("wrn-16-4", 1, 28), ("wrn-16-4", 3, 32), ("wrn-28-10", 3, 32)]

    /// Median seconds of `repeats` timed runs after one warm-up.
    func median(_ repeats: Int, _ body: () throws -> Void) rethrows -> Double {
        try body()
        var times: [Double] = []
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return times.sorted()[times.count / 2]
    }

    func workloads(_ names: [String]) throws -> [BenchRow] {
        let known = ["sgld", "pgd", "train", "train10", "defend", "defend_full", "latency"]
        for n in names where !known.contains(n) {
            throw ValidationError("--workload '\(n)' is unknown; expected one of \(known.joined(separator: ", "))")
        }
        let m = try BundledModels.load("jem").wideResNet!
        var rng = SeededRandom(seed: runtime.seed)
        func images(_ n: Int) -> Tensor { let x = Tensor(shape: [n, 1, 28, 28]); rng.fillUniform(x, lo: 0, hi: 1); return x }
        var rows: [BenchRow] = []
        func add(_ op: String, _ n: Int, _ secs: Double) {
            rows.append(BenchRow(model: "jem-fmnist", input: "1x28x28", batch: n, op: op, images_per_second: Double(n) / secs, gflops: nil))
            print(String(format: "%-12@ batch %4d  %9.2f img/s  (%.3f s)", op as NSString, n, Double(n) / secs, secs))
        }
        for name in names {
            switch name {
            case "sgld":
                let x0 = images(64)
                let x = x0.copy()
                add("sgld20", 64, try median(repeats) { x.assign(x0); try SGLD.run(m, x, config: SGLDConfig(steps: 20), rng: &rng) })
            case "pgd":
                let x = images(128), y = (0..<128).map { $0 % 10 }
                let pgd = try PGD(config: PGDConfig())
                add("pgd10", 128, try median(repeats) {
                    var streams = (0..<128).map { ExampleStreams.stream(seed: runtime.seed, example: $0, purpose: "attack") }
                    var mr = RowStreams(seed: runtime.seed, examples: 0..<128, purpose: "model/attack")
                    _ = try pgd.attack(m, x, labels: y, streams: &streams, modelRng: &mr)
                })
            case "train", "train10":
                // train: the bundled recipe (5 SGLD steps); train10: the same with 10 (the K = 10 JEMs).
                let k = name == "train" ? 5 : 10
                var c = TrainConfig()
                c.arch = "wrn-10-2"; c.lr = 1e-3; c.warmupIterations = 300; c.augment = false; c.validationSize = 0
                c.sgld = SGLDConfig(steps: k, clampGradient: true, clampSamples: true); c.energyL2 = 0.1
                let data = try Dataset(images: images(1000), labels: (0..<1000).map { $0 % 10 }, numClasses: 10, name: "random")
                let dir = FileManager.default.temporaryDirectory.appendingPathComponent("robust-eval-bench-\(getpid())").path
                let t = try Trainer(config: c, data: data, outDir: dir, inputMean: m.config.inputMean, inputStd: m.config.inputStd)
                add(k == 5 ? "train_iter" : "train_iter_k10", c.batchSize, try median(repeats) { try t.benchmarkIteration() })
            case "defend":
                let x = images(16), y = (0..<16).map { $0 % 10 }
                let d = try SGLDDefense(model: m, config: DefenseConfig())
                let pgd = try PGD(config: PGDConfig())
                add("defend", 16, try median(repeats) {
                    _ = try Evaluation.run(d, attack: pgd, images: x, labels: y, batchSize: 16, seed: runtime.seed)
                })
            case "defend_full":
                // The same PGD through the whole chain (exact gradient, --gradient full).
                let x = images(16), y = (0..<16).map { $0 % 10 }
                let d = try SGLDDefense(model: m, config: DefenseConfig(gradient: .full))
                let pgd = try PGD(config: PGDConfig())
                add("defend_full", 16, try median(repeats) {
                    _ = try Evaluation.run(d, attack: pgd, images: x, labels: y, batchSize: 16, seed: runtime.seed)
                })
            default:
                let x = images(1)
                add("forward_b1", 1, try median(repeats * 20) { _ = try m.logits(x) })
                add("input_grad_b1", 1, try median(repeats * 20) { _ = try m.logDensityGradient(x) })
            }
        }
        return rows
    }

    /// Forward and input gradient (of Σ logsumexp) of any model at --batch.
    func modelRows(_ path: String) throws -> [BenchRow] {
        let l = try BundledModels.load(path)
        let shape: [Int]
        if let g = l.model as? GraphModel { shape = g.imageShape } else { shape = [l.model.inputChannels, 28, 28] }
        guard shape.allSatisfy({ $0 > 0 }) else { throw ValidationError("\(path): the input size is not fixed in the file") }
        var rng = SeededRandom(seed: runtime.seed)
        let x = Tensor(shape: [batch] + shape)
        rng.fillUniform(x, lo: 0, hi: 1)
        let input = shape.map(String.init).joined(separator: "x")
        var rows: [BenchRow] = []
        for (name, body) in [("forward", { _ = try l.model.logits(x) }), ("input_grad", { _ = try l.model.logDensityGradient(x) })] as [(String, () throws -> Void)] {
            let med = try median(repeats, body)
            rows.append(BenchRow(model: l.model.architectureName, input: input, batch: batch, op: name, images_per_second: Double(batch) / med, gflops: nil))
            print(String(format: "%-24@ %-8@ %-11@ %9.1f img/s", l.model.architectureName as NSString, input as NSString, name as NSString, Double(batch) / med))
        }
        return rows
    }

    func run() throws {
        runtime.apply()
        guard batch > 0, repeats > 0 else { throw ValidationError("--batch and --repeats must be positive") }
        if batchInvariant { Runtime.batchInvariant = true; print("batch-invariant mode") }
        if let workload {
            let rows = try workloads(workload.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) })
            if let json { try writeJSON(BenchReport(threads: Runtime.threads, rows: rows), to: json) }
            return
        }
        if let model {
            let rows = try modelRows(model)
            if let json { try writeJSON(BenchReport(threads: Runtime.threads, rows: rows), to: json) }
            return
        }
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
                let med = try median(repeats, body)
                let row = BenchRow(model: arch, input: "\(c)x\(s)x\(s)", batch: batch, op: name,
                                   images_per_second: Double(batch) / med, gflops: mult * fwdFlops * Double(batch) / med / 1e9)
                rows.append(row)
                print(String(format: "%-10@ %-8@ %-11@ %9.1f img/s  %6.1f GFLOP/s", arch as NSString, row.input as NSString, name as NSString, row.images_per_second, row.gflops ?? 0))
            }
        }
        if let json { try writeJSON(BenchReport(threads: Runtime.threads, rows: rows), to: json) }
    }
}
