// BatchShares.swift: a batch split into one share of rows per core, each share's whole pass
// (every layer, forward and backward) on its own thread with single-threaded kernels (with fewer
// rows than cores, each share's kernels get the cores left over). Splitting every kernel over the
// cores instead meets the other thread at the end of every layer; on 2 cores the shares ran a
// training iteration 1.12×, PGD-10 1.05× and SGLD-20 1.18× as fast (docs/PERFORMANCE.md).
// In batch-invariant mode an image's results are bitwise the same either way.
import CJEMKernels
import Foundation

extension Runtime {
    nonisolated(unsafe) private static var splitSetting: Bool? = nil
    /// Whether batches are split into shares (default on; `JEM_SPLIT=0` turns it off, for A/B runs).
    public static var splitsBatches: Bool {
        get {
            if let s = splitSetting { return s }
            let s = ProcessInfo.processInfo.environment["JEM_SPLIT"] != "0"
            splitSetting = s
            return s
        }
        set { splitSetting = newValue }
    }

    /// The row shares an n-row batch is split into: one per thread, contiguous, in order; a single
    /// share when one thread runs, the batch has one row, or the caller already runs in a share.
    public static func shares(rows n: Int) -> [Range<Int>] {
        let t = threads
        guard t > 1, n > 1, splitsBatches, jem_thread_in_share() == 0 else { return [0..<n] }
        let parts = min(t, n)
        return (0..<parts).map { (n * $0 / parts)..<(n * ($0 + 1) / parts) }
    }

    /// `body(i, rows)` for every share of an n-row batch, each share on its own core; the results
    /// in share order. Rethrows the first share's error.
    public static func mapShares<R>(rows n: Int, _ body: (Int, Range<Int>) throws -> R) throws -> [R] {
        let shares = shares(rows: n)
        if shares.count == 1 { return [try body(0, shares[0])] }
        var results = [Result<R, Error>?](repeating: nil, count: shares.count)
        // Fewer rows than threads (a small batch on a many-core machine): each share's kernels
        // get the threads left over.
        SharePool.shared.run(shares.count, kernelThreads: max(1, threads / shares.count)) { i in
            results[i] = Result { try body(i, shares[i]) }
        }
        // A share that stopped because another one failed reports that failure, not its own.
        if let real = results.lazy.compactMap({ r -> Error? in
            if case .failure(let e)? = r, !(e is ShareAbandoned) { return e } else { return nil }
        }).first { throw real }
        return try results.map { try $0!.get() }
    }

    /// The rows of `x` as shares, `body` on each, the results concatenated along the first axis.
    public static func concatShares(_ x: Tensor, _ body: (Tensor, Range<Int>) throws -> Tensor) throws -> Tensor {
        let n = x.shape.first ?? 0
        let parts = try mapShares(rows: n) { _, r in try body(r.count == n ? x : x.rows(r.lowerBound, r.count), r) }
        return parts.count == 1 ? parts[0] : try Tensor.concat(parts)
    }

    /// A pass whose backward seed depends on the logits of the whole batch (a loss over the batch):
    /// each share runs `body(i, rows of x, seed)`, and the seed it is given, called once with the
    /// share's logits, waits for every share's logits, calls `seed` once on all of them, and
    /// returns the share's rows of the result.
    public static func seededShares<R>(_ x: Tensor, seed: (Tensor) throws -> Tensor,
                                       _ body: (Int, Tensor, (Tensor) throws -> Tensor) throws -> R) throws -> [R] {
        let n = x.shape.first ?? 0
        let shares = shares(rows: n)
        return try withoutActuallyEscaping(seed) { seed in
            if shares.count == 1 { return [try body(0, x, seed)] }
            let exchange = SeedExchange(shares: shares, seed: seed)
            return try mapShares(rows: n) { i, r in
                defer { exchange.leave(i) }
                return try body(i, x.rows(r.lowerBound, r.count)) { try exchange.seed(share: i, logits: $0) }
            }
        }
    }
}

/// Thrown in a share that waited for the logits of a share that failed.
struct ShareAbandoned: Error {}

/// The meeting point of the shares' logits: the last share to arrive computes the seed of the
/// whole batch; a share that leaves without arriving (an error) releases the others.
private final class SeedExchange: @unchecked Sendable {
    private let shares: [Range<Int>]
    private let seedOfAll: (Tensor) throws -> Tensor
    private let cond = NSCondition()
    private var logits: [Tensor?]
    private var arrived = 0
    private var result: Result<Tensor, Error>?
    private var abandoned = false

    init(shares: [Range<Int>], seed: @escaping (Tensor) throws -> Tensor) {
        self.shares = shares
        seedOfAll = seed
        logits = Array(repeating: nil, count: shares.count)
    }

    func seed(share i: Int, logits z: Tensor) throws -> Tensor {
        cond.lock(); defer { cond.unlock() }
        guard logits[i] == nil, !abandoned else { throw ShareAbandoned() }
        guard z.shape.first == shares[i].count else {
            throw JEMError.shapeMismatch(what: "logits of a batch share", expected: [shares[i].count, -1], found: z.shape)
        }
        logits[i] = z
        arrived += 1
        if arrived == shares.count {
            result = Result {
                let d = try seedOfAll(try Tensor.concat(logits.map { $0! }))
                let expected = [shares.last!.upperBound] + Array(z.shape.dropFirst())
                guard d.shape == expected else { throw JEMError.shapeMismatch(what: "backward seed", expected: expected, found: d.shape) }
                return d
            }
            cond.broadcast()
        }
        while result == nil && !abandoned { cond.wait() }
        guard let result else { throw ShareAbandoned() }
        let d = try result.get()
        return d.rows(shares[i].lowerBound, shares[i].count)
    }

    func leave(_ i: Int) {
        cond.lock(); defer { cond.unlock() }
        if logits[i] == nil && result == nil { abandoned = true; cond.broadcast() }
    }
}

/// Persistent worker threads, one per share after the first (the caller runs share 0), each
/// share's kernels on `kernelThreads` threads. One batch at a time.
private final class SharePool: @unchecked Sendable {
    static let shared = SharePool()

    private final class Worker: @unchecked Sendable {
        let start = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        var job: (() -> Void)?
        var kernelThreads = 1
        init() {
            let t = Thread { [unowned self] in
                while true {
                    self.start.wait()
                    jem_set_thread_threads(Int32(self.kernelThreads))
                    self.job?()
                    self.done.signal()
                }
            }
            t.stackSize = 8 << 20
            t.start()
        }
    }

    private let lock = NSLock()
    private var workers: [Worker] = []

    func run(_ count: Int, kernelThreads: Int, _ body: (Int) -> Void) {
        lock.lock(); defer { lock.unlock() }
        while workers.count < count - 1 { workers.append(Worker()) }
        withoutActuallyEscaping(body) { body in
            for i in 1..<count {
                workers[i - 1].job = { body(i) }
                workers[i - 1].kernelThreads = kernelThreads
                workers[i - 1].start.signal()
            }
            jem_set_thread_threads(Int32(kernelThreads))
            body(0)
            jem_set_thread_threads(0)
            for i in 1..<count {
                workers[i - 1].done.wait()
                workers[i - 1].job = nil
            }
        }
    }
}
