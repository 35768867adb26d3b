// Merge.swift: `robust-eval merge`: combines the part files of a sharded run (`--shard I/N
// --json PART.json`) into the report, per-example CSV and adversarial set the unsharded run writes.
import ArgumentParser
import Foundation
import JEMCore

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine the part files of a sharded run (--shard I/N --json PART.json) into the single run's outputs.",
        discussion: "The parts must be the shards 1..N of one run: the same command, model, data, seed and settings. The report is recomputed from the merged per-example results, never averaged, so it equals what one process writes.")
    @Argument(help: "Part files written by --shard I/N --json PART.json.") var parts: [String] = []
    @Option(name: .long, help: "Write the merged report as JSON.") var json: String?
    @Option(name: .long, help: "Write the merged per-example results as CSV.") var perExample: String?
    @Option(name: .long, help: "Write the merged adversarial set (every part must have saved its own with --save-adversarials).") var saveAdversarials: String?
    @Option(name: .long, help: "calibrate: reliability diagram stem (STEM.svg, STEM.png).") var diagram: String?
    @Option(name: .long, help: "ood: write each set's per-example scores as DIR/SET_SCORE.npy.") var scoresOut: String?
    @Option(name: .long, help: "ood: histogram stem (STEM_SCORE.svg/.png).") var histograms: String?
    @Option(name: .long, help: "curve: output stem (STEM.csv, STEM.json, STEM.svg, STEM.png).") var out: String?

    func validate() throws {
        guard !parts.isEmpty else { throw ValidationError("merge needs the part files (robust-eval merge PART1.json PART2.json ... --json OUT.json)") }
        try Check.writable(json, "--json")
        try Check.writable(perExample, "--per-example")
        try Check.writable(saveAdversarials, "--save-adversarials")
        try Check.writable(saveAdversarials.map(adversarialLabelsPath), "--save-adversarials (labels)")
        try Check.writable(diagram.map { $0 + ".svg" }, "--diagram")
        if let dir = scoresOut { try Check.outputDirectory(dir, "--scores-out") }
        for ext in ["csv", "json", "svg", "png"] { try Check.writable(out.map { "\($0).\(ext)" }, "--out") }
    }

    func run() throws {
        var data: [Data] = [], headers: [PartHeader] = []
        for p in parts {
            guard let d = FileManager.default.contents(atPath: p) else { throw ValidationError("merge: \(p): cannot be read") }
            do { headers.append(try JSONDecoder().decode(PartHeader.self, from: d)) } catch {
                throw ValidationError("merge: \(p) is not a robust-eval part file (written by --shard I/N --json): \(describe(error))")
            }
            data.append(d)
        }
        _ = try checkParts(headers, sources: parts)
        let command = headers[0].command
        print("merging \(parts.count) part(s) of a \(command) run over \(headers[0].n) images")
        var args: [String] = []
        if let json { args += ["--json", json] }
        if let perExample { args += ["--per-example", perExample] }
        if let saveAdversarials { args += ["--save-adversarials", saveAdversarials] }
        switch command {
        case "pgd", "transfer":
            let (c, o, a) = try combine(AttackContext.self, AttackOutcome.self, data)
            try PGDCommand.report(c, o, adversarials: a, output: try OutputOptions.parse(args))
        case "autoattack", "apgd", "square":
            let (c, o, a) = try combine(EnsembleContext.self, EnsembleOutcome.self, data)
            try reportEnsemble(c, o, adversarials: a, output: try EnsembleOutputOptions.parse(args))
        case "defend":
            let (c, o, a) = try combine(DefendContext.self, EnsembleOutcome.self, data)
            try Defend.report(c, o, adversarials: a, output: try EnsembleOutputOptions.parse(args))
        case "eval":
            let (c, o, _) = try combine(EvalContext.self, EvalOutcome.self, data)
            try Eval.report(c, o, json: json)
        case "calibrate":
            let (c, o, _) = try combine(CalibrateContext.self, LogitsOutcome.self, data)
            try Calibrate.report(c, o, json: json, diagram: diagram)
        case "ood":
            let (c, o, _) = try combine(OODContext.self, OODOutcome.self, data)
            try OODCommand.report(c, o, json: json, scoresOut: scoresOut, histograms: histograms)
        case "curve":
            guard let out else { throw ValidationError("merge: parts of curve need --out STEM (writes STEM.csv, .json, .svg, .png)") }
            let (c, o, _) = try combine(CurveContext.self, CurveOutcome.self, data)
            try Curve.report(c, o, out: out)
        default:
            throw ValidationError("merge: parts of '\(command)' cannot be merged by this version")
        }
    }

    func describe(_ e: Error) -> String {
        if case DecodingError.keyNotFound(let k, _) = e { return "no '\(k.stringValue)' field" }
        if case DecodingError.dataCorrupted(let c) = e { return c.debugDescription }
        if case DecodingError.typeMismatch(_, let c) = e { return "'\(c.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type" }
        return e.localizedDescription
    }

    /// The typed parts merged, and their adversarial sets joined when --save-adversarials asks for them.
    func combine<C: Codable, O: Mergeable>(_: C.Type, _: O.Type, _ data: [Data]) throws -> (C, O, Tensor?) {
        let typed = try zip(parts, data).map { p, d in
            do { return try JSONDecoder().decode(Part<C, O>.self, from: d) } catch {
                throw ValidationError("merge: \(p): unreadable part (\(describe(error)))")
            }
        }
        let merged = try Part<C, O>.merge(typed, sources: parts)
        guard saveAdversarials != nil else { return (merged.context, merged.outcome, nil) }
        var pieces: [Tensor] = []
        for (p, part) in zip(parts, typed).sorted(by: { $0.1.shard < $1.1.shard }) {
            guard let a = part.adversarials else {
                throw ValidationError("merge --save-adversarials: \(p) saved no adversarials (run its shard with --save-adversarials)")
            }
            let t = try NpyArray.read(path: a).tensor()
            guard t.shape.first == part.count else {
                throw ValidationError("merge: \(a) (adversarials of \(p)) holds \(t.shape.first ?? 0) images, the part \(part.count)")
            }
            if let f = pieces.first, Array(f.shape.dropFirst()) != Array(t.shape.dropFirst()) {
                throw ValidationError("merge: \(a) holds images of shape \(Array(t.shape.dropFirst())), the other parts \(Array(f.shape.dropFirst()))")
            }
            pieces.append(t)
        }
        return (merged.context, merged.outcome, try Tensor.concat(pieces))
    }
}
