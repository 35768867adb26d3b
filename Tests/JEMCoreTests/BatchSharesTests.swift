// BatchSharesTests.swift: a batch split into one share per core gives what one share gives:
// the same bits in batch-invariant mode for every view, the same parameter gradients up to the
// order of the sums, one call of a seed that sees the whole batch, and errors (never a hang) when
// a share or the seed fails.
import XCTest
@testable import JEMCore

final class BatchSharesTests: XCTestCase {
    override func setUp() { Runtime.configure(threads: 2) }
    override func tearDown() { Runtime.splitsBatches = true; Runtime.batchInvariant = false }

    private func model(_ norm: NormKind) throws -> WideResNet {
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 4, norm: norm))
        m.initialize(seed: 5)
        return m
    }

    private struct Views { var logits, gradient, hvp, features: [Float]; var seedCalls: [Int] }

    private func views(_ m: WideResNet, _ x: Tensor, _ u: Tensor, split: Bool) throws -> Views {
        Runtime.splitsBatches = split
        var calls: [Int] = []
        let (z, g) = try m.inputGradient(x) { z in
            calls.append(z.shape[0])
            let d = Tensor(shape: z.shape)
            Losses.addLogsumexpGradient(d, logits: z, weights: (0..<z.shape[0]).map { Float($0 + 1) })
            return d
        }
        XCTAssertEqual(try m.logits(x).array, z.array)
        return Views(logits: z.array, gradient: g.array, hvp: try m.logDensityHVP(x, u).array,
                     features: try m.features(x).array, seedCalls: calls)
    }

    func testSharesGiveTheBitsOfOneShare() throws {
        XCTAssertEqual(Runtime.shares(rows: 7), [0..<3, 3..<7])
        XCTAssertEqual(Runtime.shares(rows: 1), [0..<1])
        Runtime.batchInvariant = true
        for norm in NormKind.allCases {
            let m = try model(norm)
            var rng = SeededRandom(seed: 3)
            let x = randomTensor([7, 1, 12, 12], &rng, lo: 0, hi: 1), u = randomTensor([7, 1, 12, 12], &rng)
            let one = try views(m, x, u, split: false), two = try views(m, x, u, split: true)
            XCTAssertEqual(one.seedCalls, [7]); XCTAssertEqual(two.seedCalls, [7], "the seed sees the whole batch once")
            XCTAssertEqual(two.logits, one.logits, "logits (\(norm))")
            XCTAssertEqual(two.gradient, one.gradient, "input gradient (\(norm))")
            XCTAssertEqual(two.hvp, one.hvp, "Hessian–vector product (\(norm))")
            XCTAssertEqual(two.features, one.features, "features (\(norm))")
        }
    }

    func testFewerRowsThanThreadsShareTheLeftoverThreads() throws {
        Runtime.configure(threads: 4)   // 2 rows: two shares whose kernels run on 2 threads each
        defer { Runtime.configure(threads: 2) }
        XCTAssertEqual(Runtime.shares(rows: 2), [0..<1, 1..<2])
        Runtime.batchInvariant = true
        let m = try model(.none)
        var rng = SeededRandom(seed: 8)
        for n in [2, 5] {
            let x = randomTensor([n, 1, 12, 12], &rng, lo: 0, hi: 1), u = randomTensor([n, 1, 12, 12], &rng)
            let one = try views(m, x, u, split: false), two = try views(m, x, u, split: true)
            XCTAssertEqual(two.seedCalls, [n])
            XCTAssertEqual(two.gradient, one.gradient, "input gradient, \(n) rows on 4 threads")
            XCTAssertEqual(two.hvp, one.hvp, "Hessian–vector product, \(n) rows on 4 threads")
        }
    }

    func testSplitTrainingPassAddsEveryShare() throws {
        for norm in NormKind.allCases {
            let m = try model(norm)
            var rng = SeededRandom(seed: 4)
            let x = randomTensor([6, 1, 12, 12], &rng, lo: 0, hi: 1), r = randomTensor([6, 4], &rng)
            var grads: [[Tensor]] = []
            for split in [false, true] {
                Runtime.splitsBatches = split
                m.zeroGradients()
                var calls = 0
                _ = try m.accumulateParameterGradients(x, training: true) { z in calls += 1; XCTAssertEqual(z.shape, [6, 4]); return r.copy() }
                XCTAssertEqual(calls, 1)
                grads.append(m.trainableParameters.map { $0.grad.copy() })
            }
            for (a, b) in zip(grads[1], grads[0]) {
                // Batch norm in training mode keeps one share (its statistics span the batch): same bits.
                if norm == .batch { XCTAssertEqual(a.array, b.array) } else { assertClose(a, b, tol: 1e-5, "parameter gradient") }
            }
        }
    }

    func testAFailingShareOrSeedIsAnErrorNotAHang() throws {
        let m = try model(.none)
        var rng = SeededRandom(seed: 6)
        let x = randomTensor([4, 1, 12, 12], &rng, lo: 0, hi: 1)
        struct SeedFailed: Error {}
        XCTAssertThrowsError(try m.inputGradient(x) { _ in throw SeedFailed() }) { XCTAssertTrue($0 is SeedFailed, "\($0)") }
        XCTAssertThrowsError(try m.inputGradient(x) { _ in Tensor(shape: [3, 4]) }) { error in
            XCTAssertTrue("\(error)".contains("backward seed"), "\(error)")
        }
        XCTAssertThrowsError(try m.accumulateParameterGradients(x, training: true) { _ in throw SeedFailed() }) { XCTAssertTrue($0 is SeedFailed, "\($0)") }
        // An input the model refuses (2 channels for a 1-channel model) fails in every share.
        XCTAssertThrowsError(try m.inputGradient(Tensor(shape: [4, 2, 12, 12])) { $0.copy() }) { error in
            XCTAssertTrue("\(error)".contains("input"), "\(error)")
        }
        XCTAssertThrowsError(try m.logDensityHVP(x, Tensor(shape: [3, 1, 12, 12])))
        // One share fails before its logits while the other waits for them: the caller gets that
        // share's error, not the waiting share's.
        let failing = FailingShare()
        XCTAssertThrowsError(try failing.inputGradient(Tensor.rowNumbered([4, 1, 2, 2])) { $0.copy() }) { error in
            XCTAssertTrue(error is FailingShare.Refused, "\(error)")
        }
        XCTAssertEqual(failing.seen.sorted(), [0, 2], "both shares ran")
        // The workers are still there afterwards.
        XCTAssertEqual(try m.logits(x).shape, [4, 4])
    }
}

/// A network whose second share (rows from 2 on) throws before it has logits.
private final class FailingShare: Network, @unchecked Sendable {
    struct Refused: Error {}
    let lock = NSLock()
    var seen: [Int] = []
    var numClasses: Int { 2 }
    var inputChannels: Int { 1 }
    var inputScale: [Float] { [1] }
    var architectureName: String { "failing-share" }
    var parameterCount: Int { 0 }
    func shareLogits(_ x: Tensor) throws -> Tensor { Tensor(shape: [x.shape[0], 2]) }
    func shareInputGradient(_ x: Tensor, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
        let first = Int(x[0])
        lock.lock(); seen.append(first); lock.unlock()
        if first > 0 { throw Refused() }
        let z = Tensor(shape: [x.shape[0], 2])
        _ = try seed(z)
        return (z, Tensor(shape: x.shape))
    }
    func shareLogDensityHVP(_ x: Tensor, _ u: Tensor) throws -> Tensor { Tensor(shape: x.shape) }
    func shareFeatures(_ x: Tensor) throws -> Tensor { Tensor(shape: [x.shape[0], 1]) }
}

private extension Tensor {
    /// Row i's first value set to i (FailingShare tells its shares apart by it).
    static func rowNumbered(_ shape: [Int]) -> Tensor {
        let t = Tensor(shape: shape)
        let per = t.count / shape[0]
        for i in 0..<shape[0] { t.data[i * per] = Float(i) }
        return t
    }
}
