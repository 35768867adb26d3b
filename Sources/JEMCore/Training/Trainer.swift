// Trainer.swift: JEM training as the reference does it (train_wrn_ebm.py): per iteration, a
// labelled batch for the p(y|x) term, persistent-buffer SGLD samples x_q for the p(x) term,
//   loss = px·(−mean lse f(x) + mean lse f(x_q)) + pyx·CE(f(x), y) + pxy·(…) + l2·mean(lse² …),
// one forward/backward of data and samples together, then the optimiser step. Deterministic for a
// given seed and thread count: every iteration's randomness is derived from (seed, restarts,
// iteration), so a resumed run reproduces the uninterrupted one. A divergence guard rolls back
// to the last checkpoint.
import Foundation

/// The ranks of a data-parallel run (MPI): each takes its slice of every global batch of data and
/// of SGLD samples; gradients and statistics are summed across ranks every iteration. Rank 0
/// writes checkpoints, logs and the model.
public protocol TrainingGroup: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// In-place sums over ranks.
    func sum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws
    func sum(_ buf: UnsafeMutablePointer<Double>, count: Int) throws
    /// Every rank's rows (rank r sends counts[r] rows of `rowSize` floats), in rank order, on every rank.
    func allgather(_ send: Tensor, counts: [Int], rowSize: Int) throws -> Tensor
}

/// Draws a whole global batch's noise from one generator and keeps rows lo..<lo+n of it, so every
/// rank consumes the generator exactly as a single process would.
struct SliceNoise: NoiseSource {
    var rng: SeededRandom
    let globalRows: Int
    let lo: Int

    mutating func fillNormal(_ t: Tensor, std: Float) {
        if lo == 0 && t.shape[0] == globalRows { rng.fillNormal(t, std: std); return }
        let g = Tensor(shape: [globalRows] + Array(t.shape.dropFirst()))
        rng.fillNormal(g, std: std)
        t.assign(g.rows(lo, t.shape[0]))
    }
}

/// What is saved in a checkpoint besides tensors.
public struct TrainState: Codable, Equatable, Sendable {
    public var iteration: Int = 0
    public var restarts: Int = 0
    public var lrScale: Float = 1
    public var secondsTrained: Double = 0
    /// The log line of the epoch this checkpoint ends (nil mid-epoch): written to log.jsonl after
    /// the checkpoint lands, and again on resume if the run was killed in between.
    public var pendingLog: EpochLog? = nil
}

/// One epoch's log line (JSON lines in DIR/log.jsonl).
public struct EpochLog: Codable, Equatable, Sendable {
    public var epoch: Int
    public var iteration: Int
    public var ce: Double
    public var px_term: Double
    public var energy_gap: Double
    public var train_accuracy: Double
    public var validation_accuracy: Double?
    public var seconds: Double
    public var restarts: Int
    public var lr: Double
}

/// Live statistics for the progress line.
public struct TrainProgress: Sendable {
    public var iteration: Int, totalIterations: Int, epoch: Int
    public var ce: Double, pxTerm: Double, energyGap: Double, accuracy: Double
}

public final class Trainer {
    public let config: TrainConfig
    public let model: WideResNet
    let optimizer: Optimizer
    let train: Dataset
    let validation: Dataset?
    let outDir: String
    public private(set) var state = TrainState()
    /// The replay buffer of SGLD samples, pixels (bufferSize, C, H, W).
    public let buffer: Tensor?
    var classGaussians: ClassGaussians?
    /// Snapshot at the last good checkpoint (in memory) for roll-back.
    var snapshot: (params: [Tensor], optim: [Tensor], buffer: Tensor?, state: TrainState)?
    /// Fault injection for tests: (iteration, lr multiplier) applied while restarts == 0.
    public var injectLRSpike: (from: Int, to: Int, factor: Float)?
    /// The data-parallel group (nil: one process).
    public var group: TrainingGroup?
    /// Whether this process writes checkpoints, logs and the model (rank 0).
    public var isWriter: Bool { (group?.rank ?? 0) == 0 }

    public var itersPerEpoch: Int { (train.count) / config.batchSize }
    public var totalIterations: Int { itersPerEpoch * config.epochs }

    public var checkpointPath: String { (outDir as NSString).appendingPathComponent("checkpoint.safetensors") }
    public var modelPath: String { (outDir as NSString).appendingPathComponent("model.safetensors") }
    /// Also keep each epoch's model as model-epochN.safetensors (model.safetensors is overwritten
    /// at every epoch end): for choosing the epoch with the best accuracy/robustness trade-off.
    /// A run-time choice, not part of the recipe, so it may change on --resume.
    public var keepEpochModels = false
    public func epochModelPath(_ epoch: Int) -> String {
        (outDir as NSString).appendingPathComponent("model-epoch\(epoch).safetensors")
    }
    public var logPath: String { (outDir as NSString).appendingPathComponent("log.jsonl") }

    /// - Parameters:
    ///   - data: the training split; the first `validationSize` examples of a seeded shuffle are held out.
    public init(config: TrainConfig, data: Dataset, outDir: String, inputMean: [Float]? = nil, inputStd: [Float]? = nil) throws {
        try config.validate(trainCount: data.count)
        self.config = config
        self.outDir = outDir
        var splitRng = SeededRandom(seed: config.seed ^ 0x5EED_DA7A)
        var perm = splitRng.permutation(data.count)
        let valIdx = perm[0..<config.validationSize]
        perm.removeFirst(config.validationSize)
        let (tx, ty) = data.batch(perm[...])
        train = try Dataset(images: tx, labels: ty, numClasses: data.numClasses, name: data.name)
        if config.validationSize > 0 {
            let (vx, vy) = data.batch(valIdx)
            validation = try Dataset(images: vx, labels: vy, numClasses: data.numClasses, name: data.name + " (held out)")
        } else { validation = nil }
        if let n = config.labelsPerClass {
            // The first n images of each class in a seeded order of the training images.
            var counts = [Int](repeating: 0, count: train.numClasses)
            for y in train.labels { counts[y] += 1 }
            let smallest = counts.min() ?? 0
            guard n <= smallest else {
                throw JEMError.invalidArgument("--labels-per-class \(n) is more than the smallest class of the training images holds (\(smallest), class \(counts.firstIndex(of: smallest)!)); use 1...\(smallest)")
            }
            var r = SeededRandom(seed: config.seed ^ 0x1AB_E1ED)
            var taken = [Int](repeating: 0, count: train.numClasses), picked: [Int] = []
            for i in r.permutation(train.count) where taken[train.labels[i]] < n { taken[train.labels[i]] += 1; picked.append(i) }
            labelled = picked.sorted()
        } else { labelled = nil }
        let (d, k) = try WRNConfig.parseArch(config.arch)
        model = try WideResNet(config: WRNConfig(depth: d, width: k, inChannels: data.channels, numClasses: data.numClasses,
                                                 norm: config.norm, inputMean: inputMean, inputStd: inputStd))
        model.initialize(seed: config.seed)
        optimizer = Optimizer(parameters: model.trainableParameters, config: config.optimizer)
        if config.pxWeight > 0 || config.pxyWeight > 0 {
            buffer = Tensor(shape: [config.bufferSize, data.channels, data.height, data.width])
        } else { buffer = nil }
        if config.bufferInit == .gaussian { classGaussians = ClassGaussians(fitting: train) }
        if let buffer {
            var rng = SeededRandom(seed: config.seed ^ 0xB0FF)
            for i in 0..<config.bufferSize { initSample(buffer, row: i, label: i * data.numClasses / config.bufferSize, rng: &rng) }
        }
    }

    /// Semi-supervised runs: the training images whose labels p(y|x) may see.
    public let labelled: [Int]?

    /// Starts a new run from another model's weights (e.g. a trained classifier, to fine-tune it
    /// as a JEM). The architectures must agree exactly.
    public func initializeWeights(from other: WideResNet, source: String) throws {
        let a = model.config, b = other.config
        guard a.depth == b.depth, a.width == b.width, a.inChannels == b.inChannels, a.numClasses == b.numClasses, a.norm == b.norm else {
            throw JEMError.invalidArgument("--init-from \(source): architecture \(b.archName) (\(b.inChannels) channel(s), \(b.numClasses) classes, norm \(b.norm)) does not match the run's \(a.archName) (\(a.inChannels) channel(s), \(a.numClasses) classes, norm \(a.norm))")
        }
        guard state.iteration == 0 else { throw JEMError.invalidArgument("--init-from applies to a new run only") }
        for (p, q) in zip(model.parameters, other.parameters) {
            guard p.value.shape == q.value.shape else {
                throw JEMError.shapeMismatch(what: "--init-from \(source): tensor \(q.name)", expected: p.value.shape, found: q.value.shape)
            }
            p.value.assign(q.value)
        }
    }

    // MARK: buffer

    /// A fresh chain start in row `row` of t: U(−1,1) in normalised space, or the class Gaussian.
    func initSample(_ t: Tensor, row: Int, label: Int, rng: inout SeededRandom) {
        let c = model.config
        let per = t.count / t.shape[0], hw = per / c.inChannels
        let p = t.data + row * per
        switch config.bufferInit {
        case .uniform:
            for k in 0..<c.inChannels { for j in 0..<hw { p[k * hw + j] = c.inputMean[k] + c.inputStd[k] * (2 * rng.uniform() - 1) } }
        case .gaussian:
            classGaussians!.draw(into: t, row: row, label: label, rng: &rng)
        }
    }

    // MARK: schedule

    public func learningRate(iteration it: Int) -> Float {
        var lr = config.lr * state.lrScale
        if it < config.warmupIterations { lr *= Float(it + 1) / Float(config.warmupIterations) }
        let epoch = it / max(itersPerEpoch, 1)
        for e in config.decayEpochs where epoch >= e { lr *= config.decayRate }
        if let s = injectLRSpike, state.restarts == 0, it >= s.from, it < s.to { lr *= s.factor }
        return lr
    }

    // MARK: one iteration

    struct StepStats { var loss: Double, ce: Double, px: Double, gap: Double, correct: Int, n: Int }

    static func mix(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
        var r = SeededRandom(seed: a &* 0x9E37_79B9_7F4A_7C15 ^ b &* 0xC2B2_AE3D_27D4_EB4F ^ c &* 0x1656_67B1_9E37_79F9)
        return r.next()
    }

    var epochPermCache: (epoch: Int, perm: [Int])?

    func permutation(epoch: Int) -> [Int] {
        if let c = epochPermCache, c.epoch == epoch { return c.perm }
        var r = SeededRandom(seed: Trainer.mix(config.seed, 0xE90C, UInt64(epoch)))
        let p = r.permutation(train.count)
        epochPermCache = (epoch, p)
        return p
    }

    /// Reflect-pad 4, random crop, optional horizontal flip, in place.
    func augment(_ x: Tensor, rng: inout SeededRandom) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var src = [Float](repeating: 0, count: h * w)
        for i in 0..<n {
            let dy = Int(rng.next() % 9) - 4, dx = Int(rng.next() % 9) - 4
            let flip = config.flip && rng.next() & 1 == 1
            for k in 0..<c {
                let p = x.data + (i * c + k) * h * w
                for j in 0..<(h * w) { src[j] = p[j] }
                for r in 0..<h {
                    var sr = r + dy; if sr < 0 { sr = -sr } else if sr >= h { sr = 2 * h - 2 - sr }
                    for q in 0..<w {
                        var sq = (flip ? w - 1 - q : q) + dx; if sq < 0 { sq = -sq } else if sq >= w { sq = 2 * w - 2 - sq }
                        p[r * w + q] = src[sr * w + sq]
                    }
                }
            }
        }
    }

    /// The training images `idx`, augmented and with the data noise added (the global batch: every
    /// rank draws the same randomness).
    func inputBatch(_ idx: ArraySlice<Int>, rng: inout SeededRandom) -> (Tensor, [Int]) {
        let (x, y) = train.batch(idx)
        if config.augment { augment(x, rng: &rng) }
        if config.dataNoise > 0 {
            let noise = Tensor(shape: x.shape); rng.fillNormal(noise, std: config.dataNoise)
            let c = model.config, hw = x.shape[2] * x.shape[3]
            for i in 0..<x.count { x.data[i] += c.inputStd[(i / hw) % c.inChannels] * noise.data[i] }
        }
        return (x, y)
    }

    func step(iteration it: Int) throws -> StepStats {
        let b = config.batchSize
        // This process's slice of the global batch (the whole batch without a group).
        let ranks = group?.size ?? 1, rank = group?.rank ?? 0
        let lo = rank * b / ranks, m = (rank + 1) * b / ranks - lo
        let epoch = it / itersPerEpoch, pos = it % itersPerEpoch
        let perm = permutation(epoch: epoch)
        // Every rank draws the whole global batch's randomness from the same generator and keeps its slice.
        var rng = SeededRandom(seed: Trainer.mix(config.seed, UInt64(state.restarts), UInt64(it)))
        var (x, y) = inputBatch(perm[(pos * b)..<((pos + 1) * b)], rng: &rng)
        if m != b { x = x.rows(lo, m); y = Array(y[lo..<(lo + m)]) }
        // Semi-supervised: p(y|x) takes a batch of the labelled images (drawn with replacement,
        // from a generator of its own), p(x) the batch of all images above.
        var xl: Tensor? = nil, yl: [Int] = []
        if let labelled {
            var lr = SeededRandom(seed: Trainer.mix(config.seed ^ 0x1AB_E1ED, UInt64(state.restarts), UInt64(it)))
            let pick = (0..<b).map { _ in labelled[Int(lr.next() % UInt64(labelled.count))] }
            var (a, ay) = inputBatch(pick[...], rng: &lr)
            if m != b { a = a.rows(lo, m); ay = Array(ay[lo..<(lo + m)]) }
            xl = a; yl = ay
        }
        var input = x
        var qIdx: [Int] = [], qLabels: [Int]? = nil
        let useSamples = buffer != nil
        if let buffer {
            qIdx = (0..<b).map { _ in Int(rng.next() % UInt64(config.bufferSize)) }
            var xq = buffer.gather(rows: qIdx)
            let k = train.numClasses
            // Class of each chain: its buffer chunk (the reference splits the buffer into K chunks).
            var chainLabels = qIdx.map { min($0 * k / config.bufferSize, k - 1) }
            for i in 0..<b where rng.uniform() < config.reinitFrequency { initSample(xq, row: i, label: chainLabels[i], rng: &rng) }
            if m != b { xq = xq.rows(lo, m); chainLabels = Array(chainLabels[lo..<(lo + m)]) }
            if config.pxyWeight > 0 { qLabels = chainLabels }
            var noise = SliceNoise(rng: rng, globalRows: b, lo: lo)
            try SGLD.run(model, xq, config: config.sgld, labels: qLabels, rng: &noise)
            rng = noise.rng
            // The replicated buffer takes every rank's new samples, in global order.
            let all = m == b ? xq : try group!.allgather(xq, counts: (0..<ranks).map { (($0 + 1) * b / ranks) - ($0 * b / ranks) },
                                                           rowSize: xq.count / max(m, 1))
            buffer.scatter(rows: qIdx, from: all)
            input = try Tensor.concat([x, xq])
        }
        // Rows of the batch: data (p(x), and p(y|x) unless semi-supervised), samples, labelled.
        let useData = xl == nil || useSamples
        if let xl { input = useData ? try Tensor.concat([input, xl]) : xl }
        let qOff = m, lOff = useData ? (useSamples ? 2 * m : m) : 0
        model.zeroGradients()
        // Sums over this slice: CE, correct, Σ lse f(x), Σ lse f(x_q), the p(x|y) and energy-L2 terms.
        var sums = [Double](repeating: 0, count: 6)
        let c = config
        _ = try model.accumulateParameterGradients(input, training: true) { z in
            let k = z.shape[1]
            let d = Tensor(shape: z.shape)
            let semi = xl != nil
            // The p(y|x) rows: the data batch, or the labelled batch of a semi-supervised run.
            let zc = z.rows(semi ? lOff : 0, m), yc = semi ? yl : y
            let zd = semi && useData ? z.rows(0, m) : zc
            let ce = try Losses.crossEntropy(zc, labels: yc)
            let lseD = Losses.logsumexp(zd)
            let pred = zc.argmaxRows()
            sums[0] = Double(ce.reduce(0, +))
            sums[1] = Double(zip(pred, yc).filter { $0 == $1 }.count)
            sums[2] = Double(lseD.reduce(0, +))
            let inv = 1 / Float(b)
            let dd = Tensor(shape: [m, k])
            let dc = semi ? Tensor(shape: [m, k]) : dd
            try Losses.addCrossEntropyGradient(dc, logits: zc, labels: yc, weights: Array(repeating: c.pyxWeight * inv, count: m))
            if semi { d.setRows(lOff, dc) }
            if useSamples {
                let zq = z.rows(qOff, m)
                let lseQ = Losses.logsumexp(zq)
                sums[3] = Double(lseQ.reduce(0, +))
                let dq = Tensor(shape: [m, k])
                if c.pxWeight > 0 {
                    Losses.addLogsumexpGradient(dd, logits: zd, weights: Array(repeating: -c.pxWeight * inv, count: m))
                    Losses.addLogsumexpGradient(dq, logits: zq, weights: Array(repeating: c.pxWeight * inv, count: m))
                }
                if c.pxyWeight > 0, let ql = qLabels {
                    // p(x|y) term: −(mean f(x)[y] − mean f(x_q)[y_q]).
                    for i in 0..<m {
                        sums[4] += Double(zd.data[i * k + y[i]] - zq.data[i * k + ql[i]])
                        dd.data[i * k + y[i]] -= c.pxyWeight * inv
                        dq.data[i * k + ql[i]] += c.pxyWeight * inv
                    }
                }
                if c.energyL2 > 0 {
                    sums[5] = zip(lseD, lseQ).reduce(0.0) { $0 + Double($1.0 * $1.0 + $1.1 * $1.1) }
                    Losses.addLogsumexpGradient(dd, logits: zd, weights: lseD.map { 2 * c.energyL2 * $0 * inv })
                    Losses.addLogsumexpGradient(dq, logits: zq, weights: lseQ.map { 2 * c.energyL2 * $0 * inv })
                }
                d.setRows(qOff, dq)
            }
            if !semi || useData { d.setRows(0, dd) }
            return d
        }
        if let group {
            try sumGradients(group)
            try sums.withUnsafeMutableBufferPointer { try group.sum($0.baseAddress!, count: 6) }
        }
        // The global batch's statistics (each term a mean over b).
        let n = Double(b)
        var stats = StepStats(loss: 0, ce: sums[0] / n, px: 0, gap: 0, correct: Int(sums[1].rounded()), n: b)
        var loss = Double(c.pyxWeight) * stats.ce
        if useSamples {
            let mD = sums[2] / n, mQ = sums[3] / n
            stats.px = -(mD - mQ); stats.gap = mD - mQ
            if c.pxWeight > 0 { loss += Double(c.pxWeight) * stats.px }
            if c.pxyWeight > 0 { loss -= Double(c.pxyWeight) * sums[4] / n }
            if c.energyL2 > 0 { loss += Double(c.energyL2) * sums[5] / n }
        } else {
            stats.gap = sums[2] / n
        }
        stats.loss = loss
        return stats
    }

    /// Sums every trainable parameter's gradient over the ranks (one message).
    func sumGradients(_ group: TrainingGroup) throws {
        let ps = model.trainableParameters
        let total = ps.reduce(0) { $0 + $1.grad.count }
        let flat = UnsafeMutablePointer<Float>.allocate(capacity: total)
        defer { flat.deallocate() }
        var at = 0
        for p in ps { (flat + at).update(from: p.grad.data, count: p.grad.count); at += p.grad.count }
        try group.sum(flat, count: total)
        at = 0
        for p in ps { p.grad.data.update(from: flat + at, count: p.grad.count); at += p.grad.count }
    }

    /// Bytes each rank sends per iteration: the gradient sum and its share of the new samples.
    public var bytesPerIteration: Int {
        let grads = model.trainableParameters.reduce(0) { $0 + $1.grad.count } * 4
        let samples = buffer.map { $0.count / max($0.shape[0], 1) * config.batchSize * 4 } ?? 0
        return grads + samples
    }

    // MARK: checkpoints

    func takeSnapshot() {
        snapshot = (model.parameters.map { $0.value.copy() }, optimizer.state.map { $0.1.copy() }, buffer?.copy(), state)
    }

    func restoreSnapshot() {
        guard let s = snapshot else { return }
        for (p, t) in zip(model.parameters, s.params) { p.value.assign(t) }
        for (o, t) in zip(optimizer.state, s.optim) { o.1.assign(t) }
        if let b = buffer, let sb = s.buffer { b.assign(sb) }
        // optimizer.step lives in the state tensor "optim.step"; reload it through load(state:) semantics
        optimizer.setStep(Int(s.optim.last![0]))
        let keepRestarts = state.restarts, keepScale = state.lrScale, keepSecs = state.secondsTrained
        state = s.state
        state.restarts = keepRestarts; state.lrScale = keepScale; state.secondsTrained = keepSecs
    }

    public func saveCheckpoint() throws {
        guard isWriter else { takeSnapshot(); return }
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        var tensors = model.parameters.map { ("model." + $0.name, $0.value) } + optimizer.state
        if let buffer { tensors.append(("buffer", buffer)) }
        let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
        var meta = ModelIO.metadata(for: model.config)
        meta["train_state"] = String(data: try enc.encode(state), encoding: .utf8)!
        meta["train_config"] = String(data: try enc.encode(config), encoding: .utf8)!
        try SafeTensorsFile.write(path: checkpointPath, tensors: tensors, metadata: meta)
        takeSnapshot()
    }

    /// Restores model, optimiser, buffer and state from DIR/checkpoint.safetensors.
    public func resume() throws {
        let f = try SafeTensorsFile(path: checkpointPath)
        guard let saved = TrainConfig.fromMetadata(f.metadata) else {
            throw JEMError.badFile(path: checkpointPath, reason: "not a robust-eval training checkpoint (no train_config)")
        }
        var comparable = saved
        comparable.epochs = config.epochs; comparable.decayEpochs = config.decayEpochs
        guard comparable == config else {
            throw JEMError.invalidArgument("--resume \(outDir): the checkpoint was made with different settings; resume with the same flags (saved: \(f.metadata["train_config"] ?? ""))")
        }
        guard let sj = f.metadata["train_state"], let st = try? JSONDecoder().decode(TrainState.self, from: Data(sj.utf8)) else {
            throw JEMError.badFile(path: checkpointPath, reason: "missing train_state")
        }
        for p in model.parameters { p.value.assign(try f.tensor("model." + p.name)) }
        try optimizer.load(state: f)
        if let buffer { buffer.assign(try f.tensor("buffer")) }
        state = st
        guard state.iteration <= totalIterations else {
            throw JEMError.invalidArgument("--epochs \(config.epochs) ends before the checkpoint's iteration \(state.iteration)")
        }
        // Killed after an epoch's checkpoint landed but before its log line (and model) did.
        if isWriter, let e = state.pendingLog, !loggedEpochs().contains(e.epoch) {
            try appendLog(e)
            try saveModel()
        }
        takeSnapshot()
    }

    // MARK: the loop

    /// Trains to the end (or until `stopAfter` iterations in this call, for tests), checkpointing
    /// every `checkpointEvery` iterations and at each epoch end.
    public func run(stopAfter: Int? = nil, log: (String) -> Void = { _ in },
                    progress: (TrainProgress) -> Void = { _ in }) throws {
        if snapshot == nil { try saveCheckpoint() }
        var acc = (loss: 0.0, ce: 0.0, px: 0.0, gap: 0.0, correct: 0, n: 0)
        var done = 0
        var t0 = Date()
        while state.iteration < totalIterations {
            if let s = stopAfter, done >= s { break }
            let it = state.iteration
            let lr = learningRate(iteration: it)
            let s = try step(iteration: it)
            let finiteWeights = !s.loss.isNaN && model.trainableParameters.allSatisfy { $0.grad.isFinite }
            if !s.loss.isFinite || abs(s.loss) > Double(config.lossBound) || !finiteWeights {
                state.restarts += 1
                guard state.restarts <= config.maxRestarts else {
                    throw JEMError.diverged("loss \(s.loss) at iteration \(it); gave up after \(config.maxRestarts) roll-backs. The last good checkpoint is \(checkpointPath); try a lower --lr, more --sgld-steps or --energy-l2 0.1")
                }
                state.lrScale *= config.restartLRFactor
                let back = snapshot!.state.iteration
                restoreSnapshot()
                log("iteration \(it): loss \(s.loss) diverged; rolled back to iteration \(back), re-seeded (restart \(state.restarts)), learning rate × \(config.restartLRFactor) → \(config.lr * state.lrScale)")
                acc = (0, 0, 0, 0, 0, 0)
                continue
            }
            optimizer.update(lr: lr)
            state.iteration += 1
            done += 1
            acc.loss += s.loss; acc.ce += s.ce; acc.px += s.px; acc.gap += s.gap; acc.correct += s.correct; acc.n += s.n
            let steps = Double(max(acc.n / config.batchSize, 1))
            progress(TrainProgress(iteration: state.iteration, totalIterations: totalIterations, epoch: state.iteration / itersPerEpoch,
                                   ce: acc.ce / steps, pxTerm: acc.px / steps, energyGap: acc.gap / steps,
                                   accuracy: Double(acc.correct) / Double(max(acc.n, 1))))
            let epochEnd = state.iteration % itersPerEpoch == 0
            if epochEnd || state.iteration % config.checkpointEvery == 0 {
                state.secondsTrained += Date().timeIntervalSince(t0); t0 = Date()
                state.pendingLog = nil
                if epochEnd {
                    let val = try validation.map { try accuracy(of: $0) }
                    state.pendingLog = EpochLog(epoch: state.iteration / itersPerEpoch, iteration: state.iteration, ce: acc.ce / steps,
                                                px_term: acc.px / steps, energy_gap: acc.gap / steps,
                                                train_accuracy: Double(acc.correct) / Double(max(acc.n, 1)),
                                                validation_accuracy: val, seconds: state.secondsTrained, restarts: state.restarts, lr: Double(lr))
                }
                try saveCheckpoint()
            }
            if epochEnd, let e = state.pendingLog {
                let val = e.validation_accuracy
                if isWriter {
                    try appendLog(e)
                    try saveModel()
                    if keepEpochModels { try saveModel(to: epochModelPath(e.epoch)) }
                }
                log(String(format: "epoch %d: CE %.4f, p(x) term %.4f, train acc %.2f%%, validation acc %@, %.0f s",
                           e.epoch, e.ce, e.px_term, 100 * e.train_accuracy, val.map { String(format: "%.2f%%", 100 * $0) } ?? "n/a", e.seconds))
                acc = (0, 0, 0, 0, 0, 0)
            }
        }
        state.secondsTrained += Date().timeIntervalSince(t0)
    }

    public var finished: Bool { state.iteration >= totalIterations }

    /// One training iteration (sampling, loss, optimiser step) without checkpoints or the divergence
    /// guard: what `robust-eval bench --workload train` times.
    public func benchmarkIteration() throws {
        let it = state.iteration % totalIterations
        _ = try step(iteration: it)
        optimizer.update(lr: learningRate(iteration: it))
        state.iteration += 1
    }

    public func accuracy(of d: Dataset) throws -> Double {
        let pred = try model.logits(d.images, batchSize: 500).argmaxRows()
        return Double(zip(pred, d.labels).filter { $0 == $1 }.count) / Double(max(d.count, 1))
    }

    /// Epochs that have a line in log.jsonl.
    func loggedEpochs() -> Set<Int> {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return Set(text.split(separator: "\n").compactMap { try? JSONDecoder().decode(EpochLog.self, from: Data($0.utf8)).epoch })
    }

    func appendLog(_ e: EpochLog) throws {
        let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
        let line = String(data: try enc.encode(e), encoding: .utf8)! + "\n"
        let old = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        try AtomicFile.write(old + line, to: logPath)
    }

    /// Writes the final model (never a non-finite one), with the recipe in its metadata.
    public func saveModel(to path: String? = nil) throws {
        guard isWriter else { return }
        let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
        var extra = [
            "train_config": String(data: try enc.encode(config), encoding: .utf8)!,
            "train_iterations": "\(state.iteration)", "train_seconds": String(format: "%.0f", state.secondsTrained),
        ]
        extra["image_size"] = "\(train.height)x\(train.width)"
        if let p = config.padTo { extra["pad_to"] = "\(p)" }
        if let c = config.toChannels { extra["to_channels"] = "\(c)" }
        try ModelIO.save(model, to: path ?? modelPath, extra: extra)
    }
}
