// TrainingTests.swift: JEM training on a tiny model and synthetic data: the loss falls and
// accuracy beats chance; resume-after-kill equals the uninterrupted run bit for bit; the
// divergence guard rolls back and recovers; bad settings get clear errors.
import XCTest
@testable import JEMCore

final class TrainingTests: XCTestCase {
    override func setUp() { Runtime.configure(threads: 2) }

    /// Two classes of 1×8×8 images: a bright top half or a bright bottom half, plus noise.
    func toyData(n: Int = 96, seed: UInt64 = 3) throws -> Dataset {
        var rng = SeededRandom(seed: seed)
        let x = Tensor(shape: [n, 1, 8, 8])
        var y: [Int] = []
        for i in 0..<n {
            let c = i % 2
            y.append(c)
            for r in 0..<8 { for q in 0..<8 {
                let bright = (r < 4) == (c == 0)
                x.data[i * 64 + r * 8 + q] = min(max((bright ? 0.7 : 0.3) + 0.15 * (rng.uniform() - 0.5), 0), 1)
            } }
        }
        return try Dataset(images: x, labels: y, numClasses: 2, name: "toy")
    }

    func toyConfig() -> TrainConfig {
        var c = TrainConfig()
        c.arch = "wrn-10-1"; c.epochs = 3; c.batchSize = 8; c.lr = 1e-3; c.warmupIterations = 5
        c.sgld.steps = 2; c.bufferSize = 32; c.validationSize = 16; c.checkpointEvery = 4; c.seed = 5
        c.energyL2 = 0.1; c.sgld.clampSamples = true
        return c
    }

    func tempDir(_ name: String) -> String {
        let d = tempPath(name)
        try? FileManager.default.removeItem(atPath: d)
        return d
    }

    /// The JEM++ chain start: the Cholesky factor reproduces the covariance, and draws of a class
    /// have that class's mean and covariance (full), or its per-pixel spread (diagonal).
    func testClassGaussiansMatchTheData() throws {
        // 2 classes of 1×2×2 images whose pixels are correlated: p1 = p0 + small noise, p2 = 1 − p0.
        var rng = SeededRandom(seed: 11)
        let n = 4000
        let x = Tensor(shape: [n, 1, 2, 2]); var y: [Int] = []
        for i in 0..<n {
            let c = i % 2; y.append(c)
            let a = Float(c == 0 ? 0.3 : 0.6) + 0.1 * (rng.uniform() - 0.5) * 2
            let v: [Float] = [a, a + 0.02 * (rng.uniform() - 0.5), 1 - a, 0.5 + 0.05 * (rng.uniform() - 0.5)]
            for j in 0..<4 { x.data[i * 4 + j] = v[j] }
        }
        let data = try Dataset(images: x, labels: y, numClasses: 2, name: "corr")
        let g = ClassGaussians(fitting: data)
        XCTAssertTrue(g.isFull)
        let a: [Double] = [4, 2, 0.6, 2, 5, 1.2, 0.6, 1.2, 3]
        let l = ClassGaussians.cholesky(a, 3, jitter: 0)
        for i in 0..<3 { for j in 0..<3 {
            var s = 0.0; for t in 0..<3 { s += l[i * 3 + t] * l[j * 3 + t] }
            XCTAssertEqual(s, a[i * 3 + j], accuracy: 1e-12)
        } }
        let m = 20000
        let draws = Tensor(shape: [m, 1, 2, 2])
        var r2 = SeededRandom(seed: 12)
        for i in 0..<m { g.draw(into: draws, row: i, label: 1, rng: &r2) }
        var mean = [Double](repeating: 0, count: 4), dmean = [Double](repeating: 0, count: 4)
        for i in 0..<m { for j in 0..<4 { mean[j] += Double(draws.data[i * 4 + j]) / Double(m) } }
        var cnt = 0
        for i in 0..<n where y[i] == 1 { cnt += 1; for j in 0..<4 { dmean[j] += Double(x.data[i * 4 + j]) } }
        for j in 0..<4 { XCTAssertEqual(mean[j], dmean[j] / Double(cnt), accuracy: 0.003, "mean of pixel \(j)") }
        // Pixels 0 and 2 are perfectly anti-correlated in the data: their draws must be too.
        var c02 = 0.0, v0 = 0.0, v2 = 0.0
        for i in 0..<m {
            let a0 = Double(draws.data[i * 4]) - mean[0], a2 = Double(draws.data[i * 4 + 2]) - mean[2]
            c02 += a0 * a2; v0 += a0 * a0; v2 += a2 * a2
        }
        XCTAssertLessThan(c02 / (v0 * v2).squareRoot(), -0.95)
        XCTAssertEqual((v0 / Double(m)).squareRoot(), 0.1 / 3.0.squareRoot(), accuracy: 0.003)
        // The diagonal fallback keeps the spread but drops the correlation.
        let gd = ClassGaussians(fitting: data, full: false)
        XCTAssertFalse(gd.isFull)
        var cd = 0.0
        for i in 0..<m { gd.draw(into: draws, row: i, label: 1, rng: &r2) }
        for i in 0..<m { cd += (Double(draws.data[i * 4]) - mean[0]) * (Double(draws.data[i * 4 + 2]) - mean[2]) }
        XCTAssertEqual(cd / Double(m) / (v0 / Double(m)), 0, accuracy: 0.05)
    }

    /// `--buffer-init gaussian`: the buffer's class chunks start at their class's images
    /// (bright top half for class 0, bright bottom half for class 1), inside [0, 1].
    func testGaussianBufferStartsNearEachClass() throws {
        var c = toyConfig(); c.bufferInit = .gaussian
        let t = try Trainer(config: c, data: try toyData(), outDir: tempDir("train-gauss"))
        let b = try XCTUnwrap(t.buffer)
        XCTAssertGreaterThanOrEqual(b.buffer.min()!, 0)
        XCTAssertLessThanOrEqual(b.buffer.max()!, 1)
        let rows = b.shape[0]
        for r in 0..<rows {
            var top: Float = 0, bottom: Float = 0
            for j in 0..<32 { top += b.data[r * 64 + j]; bottom += b.data[r * 64 + 32 + j] }
            let label = r * 2 / rows
            XCTAssertEqual(top > bottom, label == 0, "buffer row \(r) (class \(label)): top \(top), bottom \(bottom)")
        }
    }

    func testShortRunLowersLossAndBeatsChance() throws {
        let data = try toyData()
        let t = try Trainer(config: toyConfig(), data: data, outDir: tempDir("train-short"))
        t.keepEpochModels = true
        let val = try XCTUnwrap(t.validation)
        var firstCE: Double?, lastCE = 0.0
        try t.run(progress: { p in if firstCE == nil { firstCE = p.ce }; lastCE = p.ce })
        XCTAssertTrue(t.finished)
        XCTAssertLessThan(lastCE, try XCTUnwrap(firstCE))
        XCTAssertGreaterThan(try t.accuracy(of: val), 0.75)
        // Every epoch's model was kept, and the last one is the run's model.
        for e in 1...3 { XCTAssertTrue(FileManager.default.fileExists(atPath: t.epochModelPath(e)), "epoch \(e) model") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: t.epochModelPath(4)))
        XCTAssertEqual(FileManager.default.contents(atPath: t.epochModelPath(3)), FileManager.default.contents(atPath: t.modelPath))
        XCTAssertNotEqual(FileManager.default.contents(atPath: t.epochModelPath(1)), FileManager.default.contents(atPath: t.modelPath))
        try t.saveModel()
        XCTAssertEqual(try ModelIO.load(path: t.modelPath).wideResNet!.config.archName, "wrn-10-1")
    }

    /// Semi-supervised: p(y|x) sees exactly N labelled images per class, the run still learns from
    /// them, and a request for more labels than a class holds is refused before training.
    func testLabelsPerClassUsesOnlyTheLabelledSubset() throws {
        let data = try toyData()
        var c = toyConfig()
        c.labelsPerClass = 4
        let t = try Trainer(config: c, data: data, outDir: tempDir("train-semi"))
        let l = try XCTUnwrap(t.labelled)
        XCTAssertEqual(l.count, 8)
        XCTAssertEqual(Set(l).count, 8)
        XCTAssertEqual(l.filter { t.train.labels[$0] == 0 }.count, 4)
        try t.run()
        XCTAssertGreaterThan(try t.accuracy(of: try XCTUnwrap(t.validation)), 0.75)
        // The same seed picks the same labelled images.
        XCTAssertEqual(try Trainer(config: c, data: data, outDir: tempDir("train-semi2")).labelled, l)
        c.labelsPerClass = 60
        XCTAssertThrowsError(try Trainer(config: c, data: data, outDir: tempDir("train-semi3"))) { e in
            XCTAssertTrue("\(e)".contains("--labels-per-class 60 is more than the smallest class of the training images holds ("), "\(e)")
        }
        c.labelsPerClass = 0
        XCTAssertThrowsError(try c.validate(trainCount: 96)) { e in XCTAssertTrue("\(e)".contains("--labels-per-class must be ≥ 1"), "\(e)") }
    }

    func testResumeAfterKillEqualsUninterruptedRun() throws {
        let data = try toyData()
        let a = try Trainer(config: toyConfig(), data: data, outDir: tempDir("train-a"))
        try a.run()
        let dir = tempDir("train-b")
        let b1 = try Trainer(config: toyConfig(), data: data, outDir: dir)
        try b1.run(stopAfter: 7)                   // "killed" after iteration 7; last checkpoint at 4
        let b2 = try Trainer(config: toyConfig(), data: data, outDir: dir)
        try b2.resume()
        XCTAssertEqual(b2.state.iteration, 4)
        try b2.run()
        for (p, q) in zip(a.model.parameters, b2.model.parameters) {
            XCTAssertEqual(p.value.array, q.value.array, "\(p.name) differs after resume")
        }
        XCTAssertEqual(a.buffer!.array, b2.buffer!.array)
    }

    func testDivergenceGuardRollsBackAndRecovers() throws {
        var c = toyConfig()
        c.lossBound = 1e3
        let t = try Trainer(config: c, data: try toyData(), outDir: tempDir("train-guard"))
        t.injectLRSpike = (from: 5, to: 7, factor: 1e5)    // an absurd learning rate for two steps
        var messages: [String] = []
        try t.run(log: { messages.append($0) })
        XCTAssertTrue(t.finished)
        XCTAssertGreaterThanOrEqual(t.state.restarts, 1)
        XCTAssertTrue(messages.contains { $0.contains("rolled back") }, "\(messages)")
        XCTAssertTrue(t.model.parameters.allSatisfy { $0.value.isFinite })
    }

    func testGuardGivesUpWithClearMessage() throws {
        var c = toyConfig()
        c.lossBound = 1e-6     // every step "diverges"
        c.maxRestarts = 2
        let t = try Trainer(config: c, data: try toyData(), outDir: tempDir("train-giveup"))
        XCTAssertThrowsError(try t.run()) { e in
            XCTAssertTrue("\(e)".contains("gave up after 2 roll-backs"), "\(e)")
        }
    }

    func testNonFiniteModelIsNeverWritten() throws {
        let t = try Trainer(config: toyConfig(), data: try toyData(), outDir: tempDir("train-nan"))
        t.model.parameters[0].value[0] = .nan
        XCTAssertThrowsError(try t.saveModel()) { e in XCTAssertTrue("\(e)".contains("non-finite"), "\(e)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: t.modelPath))
    }

    func testInitFromCopiesWeightsAndRejectsAnotherArchitecture() throws {
        let data = try toyData()
        var cc = toyConfig(); cc.pxWeight = 0; cc.epochs = 1
        let classifier = try Trainer(config: cc, data: data, outDir: tempDir("init-src"))
        try classifier.run()
        let jem = try Trainer(config: toyConfig(), data: data, outDir: tempDir("init-jem"))
        try jem.initializeWeights(from: classifier.model, source: "classifier")
        for (p, q) in zip(jem.model.parameters, classifier.model.parameters) { XCTAssertEqual(p.value.array, q.value.array, p.name) }
        XCTAssertEqual(try jem.accuracy(of: XCTUnwrap(jem.validation)), try classifier.accuracy(of: XCTUnwrap(classifier.validation)))
        var wide = toyConfig(); wide.arch = "wrn-10-2"
        let other = try Trainer(config: wide, data: data, outDir: tempDir("init-wide"))
        XCTAssertThrowsError(try jem.initializeWeights(from: other.model, source: "wide.safetensors")) { e in
            XCTAssertTrue("\(e)".contains("wide.safetensors") && "\(e)".contains("does not match"), "\(e)")
        }
    }

    func testBadSettingsGetClearErrors() throws {
        let data = try toyData()
        func expect(_ edit: (inout TrainConfig) -> Void, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
            var c = toyConfig(); edit(&c)
            XCTAssertThrowsError(try Trainer(config: c, data: data, outDir: tempDir("bad")), file: file, line: line) { e in
                XCTAssertTrue("\(e)".contains(text), "'\(e)' lacks '\(text)'", file: file, line: line)
            }
        }
        expect({ $0.sgld.steps = -1 }, "SGLD steps must be ≥ 0")
        expect({ $0.bufferSize = 4 }, "--buffer-size 4 is smaller than a batch (8)")
        expect({ $0.arch = "resnet-50" }, "unknown architecture 'resnet-50'")
        expect({ $0.arch = "wrn-12-2" }, "6n+4")
        expect({ $0.lr = -1 }, "--lr must be positive")
    }
}

extension TrainingTests {
    /// Killed after an epoch's checkpoint landed but before its log line: resume writes the line.
    func testResumeWritesTheMissingEpochLogLine() throws {
        let dir = tempDir("train-log")
        let a = try Trainer(config: toyConfig(), data: try toyData(), outDir: dir)
        try a.run()
        let logPath = (dir as NSString).appendingPathComponent("log.jsonl")
        let lines = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 0)
        try (lines.dropLast().joined(separator: "\n") + (lines.count > 1 ? "\n" : "")).write(toFile: logPath, atomically: true, encoding: .utf8)
        let b = try Trainer(config: toyConfig(), data: try toyData(), outDir: dir)
        try b.resume()
        let after = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(after, lines)
        try b.resume()   // a second resume does not write it twice
        XCTAssertEqual(try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n").count, lines.count)
    }
}
