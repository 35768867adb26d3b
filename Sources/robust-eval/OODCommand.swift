// OODCommand.swift: `robust-eval ood`: AUROC, AUPR and FPR at 95 % TPR of the JEM scores for
// in-distribution data against OOD sets (any SPEC, or the built-in ones), with histograms.
import ArgumentParser
import Attacks
import Foundation
import JEMCore
import JEMRobust

struct OODSetReport: Codable {
    var name: String
    var n: Int
    var metrics: [String: DetectionMetrics]
}

struct OODReport: Codable {
    var model: String
    var data: String
    var n: Int
    var sets: [OODSetReport]
}

struct OODCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ood",
        abstract: "Out-of-distribution detection with log p(x), max p(y|x) and the approximate mass −‖∇ₓ log p(x)‖.",
        discussion: "--ood takes a data SPEC (test split) or a built-in set: uniform, gaussian, constant, permuted, flipped, interp (mean of two in-distribution images). Default: all built-in sets.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions
    @Option(name: .long, help: "OOD set (repeatable): a SPEC or uniform|gaussian|constant|permuted|flipped|interp.") var ood: [String] = []
    @Option(name: .long, help: "Write every AUROC/AUPR/FPR95 by score and set as JSON.") var json: String?
    @Option(name: .long, help: "Write each set's per-example scores as DIR/SET_SCORE.npy.") var scoresOut: String?
    @Option(name: .long, help: "Histogram stem: writes STEM_SCORE.svg/.png per score.") var histograms: String?
    @OptionGroup var shard: ShardOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        try Check.writable(json, "--json")
        if let h = histograms { for s in OODScore.allCases { try Check.writable("\(h)_\(s.rawValue).svg", "--histograms") } }
        if let dir = scoresOut { try Check.outputDirectory(dir, "--scores-out") }
        for o in ood where BuiltinOOD(rawValue: o) == nil { _ = try DataSpec.parse(o) }
    }

    func run() throws {
        runtime.apply()
        let l = try model.load()
        let d = try input.load(for: l)
        let plan = try shard.plan(n: d.count, json: json)
        // Scores must not depend on how images are batched (shards and ranks batch differently).
        Runtime.batchInvariant = true
        var rng = SeededRandom(seed: runtime.seed)
        var sets: [(String, Tensor)] = []
        for o in (ood.isEmpty ? BuiltinOOD.allCases.map(\.rawValue) : ood) {
            if let b = BuiltinOOD(rawValue: o) {
                // Generated whole on every shard (the same set), then sliced like the in-distribution set.
                sets.append((o, b.make(from: d.images, count: d.count, rng: &rng)))
            } else {
                var od = try DataSpec.parse(o).load(split: .test, defaultClasses: l.model.numClasses)
                if let lim = input.data.limit { od = try od.subset(offset: 0, limit: lim, shuffleSeed: nil) }
                if input.data.padTo != nil || input.data.toChannels != nil { od = try od.adapted(toChannels: input.data.toChannels, toSize: input.data.padTo) }
                guard Array(od.images.shape.dropFirst()) == Array(d.images.shape.dropFirst()) else {
                    throw ValidationError("OOD set \(o) has images of \(od.channels)×\(od.height)×\(od.width), the in-distribution set \(d.channels)×\(d.height)×\(d.width); use --pad-to / --to-channels")
                }
                if let s = plan.spec, od.count < s.count { throw ValidationError("OOD set \(o) holds \(od.count) images, fewer than the \(s.count) shards") }
                sets.append((o, od.images))
            }
        }
        print("model: \(l.path)\nin-distribution: \(d.name), \(d.count) images (positive)\nOOD sets: \(sets.map { "\($0.0) (\($0.1.shape[0]))" }.joined(separator: ", "))")
        if let note = plan.note { print("part:  \(note) (and the same slice of each OOD set)") }
        fflush(stdout)
        let t0 = Date()
        func slice(_ x: Tensor) -> Tensor {
            guard let s = plan.spec else { return x }
            let r = s.range(x.shape[0])
            return x.rows(r.lowerBound, r.count)
        }
        var outcome = OODOutcome(sets: sets.map(\.0), setCounts: [], inScores: [:], outScores: [], seconds: 0)
        let xin = slice(d.images)
        for s in OODScore.allCases { outcome.inScores[s.rawValue] = try OOD.scores(l.model, xin, score: s, batchSize: input.batchSize) }
        for (_, x) in sets {
            let xs = slice(x)
            outcome.setCounts.append(xs.shape[0])
            var m: [String: [Float]] = [:]
            for s in OODScore.allCases { m[s.rawValue] = try OOD.scores(l.model, xs, score: s, batchSize: input.batchSize) }
            outcome.outScores.append(m)
        }
        outcome.seconds = Date().timeIntervalSince(t0)
        let fp = runFingerprint(command: "ood", modelPath: l.path, data: d, settings: ["seed": String(runtime.seed), "sets": outcome.sets.joined(separator: ",")])
        let context = OODContext(model: l.path, data: d.name, n: d.count)
        guard let (c, o, _) = try plan.complete(command: "ood", fingerprint: fp, context: context, outcome: outcome,
                                                adversarials: nil, labels: Array(d.labels[plan.range]), json: json, saveAdversarials: nil) else { return }
        try OODCommand.report(c, o, json: json, scoresOut: scoresOut, histograms: histograms)
    }

    static func report(_ c: OODContext, _ o: OODOutcome, json: String?, scoresOut: String?, histograms: String?) throws {
        if let dir = scoresOut { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        var inScores: [OODScore: [Float]] = [:]
        for s in OODScore.allCases {
            inScores[s] = o.inScores[s.rawValue] ?? []
            if let dir = scoresOut { try NpyArray.write(try Tensor(shape: [inScores[s]!.count], values: inScores[s]!), to: "\(dir)/in-distribution_\(s.rawValue).npy") }
        }
        var reports: [OODSetReport] = []
        func pad(_ t: String, _ n: Int) -> String { t.count >= n ? t + " " : t.padding(toLength: n, withPad: " ", startingAt: 0) }
        print(pad("", 30) + OODScore.allCases.map { pad($0.rawValue + ": AUROC / AUPR / FPR95", 36) }.joined())
        for (k, name) in o.sets.enumerated() {
            var m: [String: DetectionMetrics] = [:]
            for s in OODScore.allCases {
                let sc = o.outScores[k][s.rawValue] ?? []
                m[s.rawValue] = OOD.metrics(inScores: inScores[s]!, outScores: sc)
                if let dir = scoresOut {
                    let safe = name.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: ":", with: "_")
                    try NpyArray.write(try Tensor(shape: [sc.count], values: sc), to: "\(dir)/\(safe)_\(s.rawValue).npy")
                }
            }
            reports.append(OODSetReport(name: name, n: o.setCounts[k], metrics: m))
            print(pad(name, 30) + OODScore.allCases.map { s -> String in
                let v = m[s.rawValue]!
                return pad(String(format: "%.3f / %.3f / %.3f", v.auroc, v.aupr, v.fpr_at_95_tpr), 36)
            }.joined())
        }
        if let json { try writeJSON(OODReport(model: c.model, data: c.data, n: c.n, sets: reports), to: json) }
        if let stem = histograms {
            for s in OODScore.allCases {
                let all = (inScores[s]! + o.outScores.flatMap { $0[s.rawValue] ?? [] }).filter(\.isFinite)
                let lo = Double(all.min() ?? 0), hi = Double(all.max() ?? 1)
                let bins = 30, width = max((hi - lo) / Double(bins), 1e-9)
                func hist(_ v: [Float]) -> [(Double, Double)] {
                    var h = [Double](repeating: 0, count: bins)
                    for x in v where x.isFinite { h[max(0, min(Int((Double(x) - lo) / width), bins - 1))] += 1 }
                    return h.enumerated().map { (lo + (Double($0.offset) + 0.5) * width, $0.element / Double(max(v.count, 1))) }
                }
                let series = [Chart.Series(label: "in: \(c.data)", points: hist(inScores[s]!))] +
                    o.sets.enumerated().map { Chart.Series(label: $0.element, points: hist(o.outScores[$0.offset][s.rawValue] ?? [])) }
                try Chart(title: "\(s.rawValue) scores, \((c.model as NSString).lastPathComponent)", xLabel: s.rawValue, yLabel: "fraction of images", series: series)
                    .write(svg: "\(stem)_\(s.rawValue).svg", png: "\(stem)_\(s.rawValue).png")
            }
        }
    }
}

/// Per-example OOD scores of the in-distribution set and each OOD set (a shard's slice of each).
struct OODOutcome: Mergeable {
    var sets: [String]
    var setCounts: [Int]
    var inScores: [String: [Float]]
    var outScores: [[String: [Float]]]
    var seconds: Double

    static func merge(_ p: [OODOutcome]) throws -> OODOutcome {
        guard p.allSatisfy({ $0.sets == p[0].sets }) else { throw ValidationError("merge: the parts scored different OOD sets") }
        var m = p[0]
        m.setCounts = p[0].sets.indices.map { k in p.map { $0.setCounts[k] }.reduce(0, +) }
        for s in OODScore.allCases.map(\.rawValue) {
            m.inScores[s] = joined(p.map { $0.inScores[s] ?? [] })
            for k in m.sets.indices { m.outScores[k][s] = joined(p.map { $0.outScores[k][s] ?? [] }) }
        }
        m.seconds = p.map(\.seconds).reduce(0, +)
        return m
    }
}

struct OODContext: Codable {
    var model: String
    var data: String
    var n: Int
}
