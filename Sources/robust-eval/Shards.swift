// Shards.swift: one run split across processes. `--shard I/N` runs the I-th of N contiguous
// slices of the selected images and writes a part file; `robust-eval merge` combines the parts
// into exactly the outputs the unsharded run writes. Under an MPI launcher each rank runs its
// slice and rank 0 gathers the parts and writes the outputs. Because every random choice about an
// example is keyed by its index in the whole selection, the slices add up to the single run.
import ArgumentParser
import Attacks
import Foundation
import JEMCore

/// The I-th (1-based) of N contiguous slices.
struct ShardSpec: Codable, Equatable {
    var index: Int
    var count: Int

    static func parse(_ s: String) throws -> ShardSpec {
        let p = s.split(separator: "/", omittingEmptySubsequences: false)
        guard p.count == 2, let i = Int(p[0]), let n = Int(p[1]) else {
            throw ValidationError("--shard must be I/N (the I-th of N slices, 1-based, e.g. 2/4), got '\(s)'")
        }
        guard n >= 1 else { throw ValidationError("--shard \(s): N must be ≥ 1, got \(n)") }
        guard (1...n).contains(i) else { throw ValidationError("--shard \(s): I must be in 1...\(n) (1-based), got \(i)") }
        guard n <= 1_000_000 else { throw ValidationError("--shard \(s): N must be at most 1000000, got \(n)") }
        return ShardSpec(index: i, count: n)
    }

    /// The slice of n images: [⌊(I−1)·n/N⌋, ⌊I·n/N⌋).
    func range(_ n: Int) -> Range<Int> { ((index - 1) * n / count)..<(index * n / count) }
}

struct ShardOptions: ParsableArguments {
    @Option(name: .long, help: "Run only the I-th of N contiguous slices of the selected images (1-based, e.g. 2/4) and write a part file with --json; `robust-eval merge` combines the parts.")
    var shard: String?

    func validate() throws { if let shard { _ = try ShardSpec.parse(shard) } }

    /// How this process takes part: a --shard, an MPI rank, or the whole run.
    func plan(n: Int, json: String?) throws -> ShardPlan {
        if let w = MPIWorld.current {
            guard shard == nil else { throw ValidationError("--shard and an MPI launch both split the run; use one") }
            guard n >= w.size else { throw ValidationError("\(w.size) MPI ranks but only \(n) images: every rank needs at least one (use fewer ranks)") }
            return ShardPlan(spec: ShardSpec(index: w.rank + 1, count: w.size), mpi: true, n: n)
        }
        guard let shard else { return ShardPlan(spec: nil, mpi: false, n: n) }
        let s = try ShardSpec.parse(shard)
        guard n >= s.count else { throw ValidationError("--shard \(shard): \(s.count) shards but only \(n) images selected; every shard needs at least one") }
        guard json != nil else { throw ValidationError("--shard \(shard) writes its part with --json PART.json; give --json") }
        return ShardPlan(spec: s, mpi: false, n: n)
    }
}

/// The images this process works on and where its results go.
struct ShardPlan {
    let spec: ShardSpec?
    let mpi: Bool
    let n: Int

    var range: Range<Int> { spec?.range(n) ?? 0..<n }
    var indices: [Int] { Array(range) }
    var isPart: Bool { spec != nil }
    /// "shard 2/4: images 500..<1000 of 2000", for the header lines.
    var note: String? {
        guard let s = spec else { return nil }
        return "\(mpi ? "rank \(s.index - 1) of \(s.count)" : "shard \(s.index)/\(s.count)"): images \(range.lowerBound)..<\(range.upperBound) of \(n)"
    }

    /// Hands this process's outcome on. Returns the whole run's (context, outcome, adversarials)
    /// to report, or nil when this process only contributed a part (written to --json, or sent to
    /// rank 0).
    func complete<C: Codable, O: Mergeable>(command: String, fingerprint: [String: String], context: C, outcome: O,
                                            adversarials: Tensor?, labels: [Int], json: String?,
                                            saveAdversarials: String?) throws -> (C, O, Tensor?)? {
        guard let spec else { return (context, outcome, adversarials) }
        var part = Part(command: command, shard: spec.index, shards: spec.count, n: n, first: range.lowerBound, count: range.count,
                        fingerprint: fingerprint, adversarials: nil, context: context, outcome: outcome)
        if mpi {
            let enc = JSONEncoder()
            let payload = try enc.encode(part)
            let advBytes = adversarials.map { Data(bytes: $0.data, count: $0.count * 4) } ?? Data()
            let parts = try MPIWorld.gather(payload), advs = try MPIWorld.gather(advBytes)
            guard let parts, let advs else { return nil }        // ranks > 0 are done
            let decoded = try parts.enumerated().map { r, d in
                do { return try JSONDecoder().decode(Part<C, O>.self, from: d) } catch {
                    throw JEMError.invalidArgument("rank \(r) sent an unreadable part (\(error.localizedDescription))")
                }
            }
            var merged = try Part<C, O>.merge(decoded, sources: (0..<decoded.count).map { "rank \($0)" })
            merged.outcome.seconds = decoded.map(\.outcome.seconds).max() ?? 0
            var adv: Tensor? = nil
            if let a = adversarials {
                let whole = Tensor(shape: [n] + Array(a.shape.dropFirst()))
                let per = a.count / max(a.shape[0], 1)
                for (p, bytes) in zip(decoded, advs) {
                    guard bytes.count == p.count * per * 4 else { throw JEMError.invalidArgument("rank \(p.shard - 1) sent \(bytes.count) adversarial bytes, expected \(p.count * per * 4)") }
                    bytes.withUnsafeBytes { (whole.data + p.first * per).update(from: $0.bindMemory(to: Float.self).baseAddress!, count: p.count * per) }
                }
                adv = whole
            }
            return (merged.context, merged.outcome, adv)
        }
        guard let json else { throw ValidationError("--shard writes its part with --json PART.json; give --json") }
        if let p = saveAdversarials, let a = adversarials {
            try writeAdversarials(a, labels: labels, to: p)
            part.adversarials = URL(fileURLWithPath: p).standardizedFileURL.path
        }
        try writeJSON(part, to: json)
        print("part \(spec.index)/\(spec.count) (images \(range.lowerBound)..<\(range.upperBound) of \(n)) → \(json); combine the parts with robust-eval merge")
        return nil
    }
}

/// What one shard computed, as written to its --json file.
struct Part<C: Codable, O: Codable>: Codable {
    var format = "robust-eval part 1"
    var command: String
    var shard: Int
    var shards: Int
    /// Images in the whole selection, and this part's slice of it.
    var n: Int
    var first: Int
    var count: Int
    /// What every part of one run shares: model and data hashes, the seed and the settings.
    var fingerprint: [String: String]
    /// This part's adversarial rows (.npy), if it saved them.
    var adversarials: String?
    var context: C
    var outcome: O

    /// The fields merge checks before it knows the command.
    var header: PartHeader {
        PartHeader(format: format, command: command, shard: shard, shards: shards, n: n, first: first, count: count,
                   fingerprint: fingerprint, adversarials: adversarials)
    }
}

/// A per-example outcome that parts can be combined into (in shard order).
protocol Mergeable: Codable {
    static func merge(_ parts: [Self]) throws -> Self
    /// Compute seconds: summed over shard files; under MPI the slowest rank's (the wall time).
    var seconds: Double { get set }
}

/// The fields every part has, read before the command is known.
struct PartHeader: Codable {
    var format: String
    var command: String
    var shard: Int
    var shards: Int
    var n: Int
    var first: Int
    var count: Int
    var fingerprint: [String: String]
    var adversarials: String?
}

extension Part where O: Mergeable {
    /// Checks that the parts are the shards 1...N of one run, each once, and combines them.
    static func merge(_ parts: [Part], sources: [String]) throws -> Part {
        let headers = parts.map(\.header)
        let order = try checkParts(headers, sources: sources)
        var out = parts[order[0]]
        out.outcome = try O.merge(order.map { parts[$0].outcome })
        out.shard = 1; out.shards = 1; out.first = 0; out.count = out.n; out.adversarials = nil
        return out
    }
}

/// The parts' order by shard, after checking they belong to one run and cover it exactly once.
func checkParts(_ h: [PartHeader], sources: [String]) throws -> [Int] {
    guard let a = h.first else { throw ValidationError("merge: no part files given") }
    for (p, s) in zip(h, sources) {
        guard p.format == a.format else { throw ValidationError("merge: \(s) is a '\(p.format)' file, \(sources[0]) a '\(a.format)' one") }
        guard p.command == a.command else { throw ValidationError("merge: \(s) is a part of '\(p.command)', \(sources[0]) of '\(a.command)'") }
        guard p.shards == a.shards, p.n == a.n else {
            throw ValidationError("merge: \(s) is shard \(p.shard)/\(p.shards) of \(p.n) images, \(sources[0]) shard \(a.shard)/\(a.shards) of \(a.n): not one run")
        }
        for key in RunFingerprint.differences(p.fingerprint, a.fingerprint) {
            throw ValidationError("merge: \(s) and \(sources[0]) come from different runs: \(key) is \(p.fingerprint[key] ?? "missing") vs \(a.fingerprint[key] ?? "missing")")
        }
        let r = ShardSpec(index: p.shard, count: p.shards).range(p.n)
        guard p.first == r.lowerBound, p.count == r.count else {
            throw ValidationError("merge: \(s) claims images \(p.first)..<\(p.first + p.count), but shard \(p.shard)/\(p.shards) of \(p.n) is \(r.lowerBound)..<\(r.upperBound)")
        }
    }
    var byShard: [Int: Int] = [:]
    for (i, p) in h.enumerated() {
        if let j = byShard[p.shard] { throw ValidationError("merge: shard \(p.shard)/\(p.shards) given twice: \(sources[j]) and \(sources[i])") }
        byShard[p.shard] = i
    }
    let missing = (1...a.shards).filter { byShard[$0] == nil }
    guard missing.isEmpty else {
        throw ValidationError("merge: missing shard(s) \(missing.map { "\($0)/\(a.shards)" }.joined(separator: ", ")) of this \(a.command) run (\(h.count) of \(a.shards) parts given)")
    }
    return (1...a.shards).map { byShard[$0]! }
}

/// Concatenation of per-example arrays, the merge of most outcome fields.
func joined<T>(_ parts: [[T]]) -> [T] { parts.flatMap { $0 } }
