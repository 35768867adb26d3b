// TestStreams.swift: a test convenience: run an attack with per-example streams split from one
// seeded generator (the command paths key them by example instead).
import Attacks
import JEMCore

extension Attack {
    func attack(_ model: Classifier, _ x: Tensor, labels: [Int], targets: [Int]? = nil, rng: inout SeededRandom) throws -> Tensor {
        var streams = (0..<x.shape[0]).map { _ in rng.split() }
        var modelRng = RowStreams((0..<x.shape[0]).map { _ in rng.split() })
        return try attack(model, x, labels: labels, targets: targets, streams: &streams, modelRng: &modelRng)
    }
}
