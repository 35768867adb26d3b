// AnalysisTests.swift: calibration, OOD metrics and scores, sampling, curves and the written
// artefacts (PNG decodes, SVG parses as XML, CSV/JSON well formed).
import Attacks
import CZlib
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import JEMCore
import JEMRobust
import XCTest

/// Decodes a PNG written by this toolkit far enough to check it: signature, IHDR, CRCs, and that
/// the inflated IDAT holds exactly height rows of 1 + width·channels bytes.
func decodePNG(_ path: String) throws -> (width: Int, height: Int, channels: Int) {
    let b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    guard b.count > 8, Array(b[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else { throw JEMError.badFile(path: path, reason: "PNG signature") }
    func be(_ o: Int) -> Int { Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3]) }
    var o = 8, w = 0, h = 0, ch = 0, idat = [UInt8]()
    while o + 12 <= b.count {
        let n = be(o), type = String(bytes: b[(o + 4)..<(o + 8)], encoding: .ascii)!
        let crc = b[(o + 4)..<(o + 8 + n)].withContiguousStorageIfAvailable { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) } ?? 0
        guard UInt32(be(o + 8 + n)) == crc else { throw JEMError.badFile(path: path, reason: "CRC of \(type)") }
        if type == "IHDR" {
            w = be(o + 8); h = be(o + 12)
            let colorType = b[o + 17]
            ch = colorType == 0 ? 1 : colorType == 2 ? 3 : colorType == 6 ? 4 : colorType == 4 ? 2 : 0
        }
        if type == "IDAT" { idat += b[(o + 8)..<(o + 8 + n)] }
        o += 12 + n
    }
    var outLen = uLong((w * ch + 1) * h + 16)
    var out = [UInt8](repeating: 0, count: Int(outLen))
    guard uncompress(&out, &outLen, idat, uLong(idat.count)) == Z_OK, Int(outLen) == (w * ch + 1) * h else {
        throw JEMError.badFile(path: path, reason: "IDAT does not inflate to \(h) rows of \(w)×\(ch)")
    }
    return (w, h, ch)
}

func parsesAsXML(_ path: String) -> Bool {
    guard let p = XMLParser(contentsOf: URL(fileURLWithPath: path)) else { return false }
    return p.parse()
}

final class AnalysisTests: XCTestCase {
    override func setUp() { Runtime.configure(threads: 2) }

    func testECEMatchesHandComputation() throws {
        // Confidences 0.95 (right), 0.75 (wrong), 0.55 (right), 0.65 for class 1 (right): none on a bin edge.
        let p = try Tensor(shape: [4, 2], values: [0.95, 0.05, 0.75, 0.25, 0.55, 0.45, 0.35, 0.65])
        let y = [0, 1, 0, 1]
        let r = try Calibration.report(probabilities: p, labels: y, bins: 2)
        // One bin (0.5, 1]: accuracy 3/4, mean confidence 0.725.
        XCTAssertEqual(r.ece, 0.025, accuracy: 1e-6)
        let r5 = try Calibration.report(probabilities: p, labels: y, bins: 5)
        // (0.4,0.6]: {0.55 ✓}; (0.6,0.8]: {0.75 ✗, 0.65 ✓}; (0.8,1]: {0.95 ✓}.
        let hand = 0.25 * abs(1 - 0.55) + 0.5 * abs(0.5 - 0.7) + 0.25 * abs(1 - 0.95)
        XCTAssertEqual(r5.ece, hand, accuracy: 1e-6)
        XCTAssertEqual(r5.mce, 0.45, accuracy: 1e-6)
        XCTAssertEqual(r5.nll, -(log(0.95) + log(0.25) + log(0.55) + log(0.65)) / 4, accuracy: 1e-6)
        XCTAssertEqual(r5.bins.map(\.count), [0, 0, 1, 2, 1])
        XCTAssertEqual(r5.accuracy, 0.75)
    }

    func testAUROCEqualsNaivePairwiseCountWithTies() {
        var rng = SeededRandom(seed: 3)
        let a = (0..<40).map { _ in Float(Int(rng.next() % 7)) }, b = (0..<30).map { _ in Float(Int(rng.next() % 5)) }
        var naive = 0.0
        for x in a { for y in b { naive += x > y ? 1 : (x == y ? 0.5 : 0) } }
        naive /= Double(a.count * b.count)
        let m = OOD.metrics(inScores: a, outScores: b)
        XCTAssertEqual(m.auroc, naive, accuracy: 1e-12)
        let perfect = OOD.metrics(inScores: [3, 4, 5], outScores: [0, 1, 2])
        XCTAssertEqual(perfect.auroc, 1); XCTAssertEqual(perfect.aupr, 1, accuracy: 1e-12); XCTAssertEqual(perfect.fpr_at_95_tpr, 0)
    }

    func testApproximateMassIsMinusGradientNormByFiniteDifferences() throws {
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 3, inputMean: [0.4], inputStd: [0.3]))
        m.initialize(seed: 2)
        var rng = SeededRandom(seed: 1)
        let x = Tensor(shape: [1, 1, 6, 6]); rng.fillUniform(x, lo: 0, hi: 1)
        let s = try OOD.scores(m, x, score: .pxgrad)[0]
        // Finite differences of logsumexp in the normalised space u = (x − 0.4)/0.3.
        var ss = 0.0
        let eps: Float = 1e-3
        for i in 0..<x.count {
            let v = x[i]
            x[i] = v + eps * 0.3; let fp = Double(try m.logDensity(x)[0])
            x[i] = v - eps * 0.3; let fm = Double(try m.logDensity(x)[0])
            x[i] = v
            let g = (fp - fm) / (2 * Double(eps))
            ss += g * g
        }
        XCTAssertEqual(Double(s), -ss.squareRoot(), accuracy: 0.03 * ss.squareRoot())
    }

    func testSamplingWithZeroStepsReturnsItsStart() throws {
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 3))
        m.initialize(seed: 1)
        var rng = SeededRandom(seed: 2)
        let x = Tensor(shape: [2, 1, 6, 6]); rng.fillUniform(x, lo: 0, hi: 1)
        let before = x.array
        try SGLD.run(m, x, config: SGLDConfig(steps: 0), rng: &rng)
        XCTAssertEqual(x.array, before)
        try SGLD.run(m, x, config: SGLDConfig(steps: 2), labels: [0, 2], rng: &rng)
        XCTAssertNotEqual(x.array, before)
    }

    func testBuiltinOODSetsHaveTheRightShapeAndRange() {
        var rng = SeededRandom(seed: 4)
        let ref = Tensor(shape: [5, 1, 4, 4]); rng.fillUniform(ref, lo: 0, hi: 1)
        for s in BuiltinOOD.allCases {
            let x = s.make(from: ref, count: 7, rng: &rng)
            XCTAssertEqual(x.shape, [7, 1, 4, 4], s.rawValue)
            XCTAssertTrue(x.array.allSatisfy { $0 >= 0 && $0 <= 1 }, s.rawValue)
        }
        let f = BuiltinOOD.flipped.make(from: ref, count: 1, rng: &rng)
        XCTAssertEqual(f[0], ref[12])   // row 0 of the flip is row 3 of the source
    }

    func testCurvesAreNonIncreasingAndArtefactsWellFormed() throws {
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 3))
        m.initialize(seed: 5)
        var rng = SeededRandom(seed: 6)
        let x = Tensor(shape: [12, 1, 8, 8]); rng.fillUniform(x, lo: 0, hi: 1)
        let y = try m.logits(x).argmaxRows()      // all clean-correct, so the curve starts at 1
        var t = PGDConfig(); t.steps = 5; t.epsilon = 0.1; t.stepSize = 0.05
        let pts = try RobustnessCurve.run(m, epsilons: [0, 0.01, 0.05, 0.1, 0.3, 1], template: t, images: x, labels: y, batchSize: 5, seed: 1)
        XCTAssertEqual(pts.first?.accuracy, 1)
        XCTAssertEqual(pts.first?.attacked, 12)
        for i in 1..<pts.count {
            XCTAssertLessThanOrEqual(pts[i].accuracy, pts[i - 1].accuracy)
            // only the survivors of the smaller ε are attacked again
            XCTAssertEqual(pts[i].attacked, Int((pts[i - 1].accuracy * 12).rounded()))
        }
        XCTAssertLessThan(pts.last!.accuracy, 1, "the largest ε should break something")
        XCTAssertThrowsError(try RobustnessCurve.run(m, epsilons: [0.1, 0.05], template: t, images: x, labels: y, batchSize: 5, seed: 1)) {
            XCTAssertTrue("\($0)".contains("strictly increasing"))
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("robust-eval-plot-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let chart = Chart(title: "t <&> \"q\"", xLabel: "ε", yLabel: "acc", series: [Chart.Series(label: "m", points: pts.map { ($0.eps, $0.accuracy) })], yRange: (0, 1))
        try chart.write(svg: dir + "/c.svg", png: dir + "/c.png")
        XCTAssertTrue(parsesAsXML(dir + "/c.svg"))
        let png = try decodePNG(dir + "/c.png")
        XCTAssertEqual(png.width, 720); XCTAssertEqual(png.height, 480)
        try ImagePNG.writeGrid(x, columns: 4, to: dir + "/g.png", scale: 1)
        let g = try decodePNG(dir + "/g.png")
        XCTAssertEqual(g.width, 4 * 10 + 2); XCTAssertEqual(g.height, 3 * 10 + 2); XCTAssertEqual(g.channels, 1)
        let diag = Calibration.diagram(try Calibration.report(probabilities: Losses.softmax(try m.logits(x)), labels: y), title: "r")
        try diag.write(svg: dir + "/r.svg", png: nil)
        XCTAssertTrue(parsesAsXML(dir + "/r.svg"))
    }
}

final class SampleQualityTests: XCTestCase {
    func testJacobiEigenReconstructsASymmetricMatrix() throws {
        var rng = SeededRandom(seed: 3)
        let n = 12
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in i..<n { let v = Double(2 * rng.uniform() - 1); a[i * n + j] = v; a[j * n + i] = v } }
        let (values, v) = try SampleQuality.symmetricEigen(a, n: n)
        for i in 0..<n { for j in 0..<n {
            var r = 0.0
            for k in 0..<n { r += v[i * n + k] * values[k] * v[j * n + k] }
            XCTAssertEqual(r, a[i * n + j], accuracy: 1e-9)
        } }
    }

    func testFrechetDistanceOfKnownGaussians() throws {
        // Two large samples of independent Gaussians: FID → ‖μ₁ − μ₂‖² + Σ (σ₁ − σ₂)².
        var rng = SeededRandom(seed: 4)
        let n = 20_000, d = 3
        let mu1: [Float] = [0, 1, 2], mu2: [Float] = [1, 1, 0], s1: [Float] = [1, 2, 0.5], s2: [Float] = [1, 1, 1.5]
        let a = Tensor(shape: [n, d]), b = Tensor(shape: [n, d])
        rng.fillNormal(a); rng.fillNormal(b)
        for i in 0..<n { for j in 0..<d {
            a.data[i * d + j] = mu1[j] + s1[j] * a.data[i * d + j]
            b.data[i * d + j] = mu2[j] + s2[j] * b.data[i * d + j]
        } }
        let fid = try SampleQuality.frechetDistance(try FeatureStatistics(a), try FeatureStatistics(b))
        var expected = 0.0
        for j in 0..<d {
            let dm = Double(mu1[j] - mu2[j]), ds = Double(s1[j] - s2[j])
            expected += dm * dm + ds * ds
        }
        XCTAssertEqual(fid, expected, accuracy: 0.05 * expected)
        XCTAssertEqual(try SampleQuality.frechetDistance(try FeatureStatistics(a), try FeatureStatistics(a)), 0, accuracy: 1e-6)
    }

    func testInceptionScoreBounds() throws {
        // One-hot predictions spread evenly over K classes score K; identical predictions score 1.
        let k = 4
        let onehot = Tensor(shape: [8, k]), same = Tensor(shape: [8, k])
        for i in 0..<8 { onehot.data[i * k + i % k] = 1; for c in 0..<k { same.data[i * k + c] = 0.25 } }
        XCTAssertEqual(SampleQuality.inceptionScore(probabilities: onehot), Double(k), accuracy: 1e-9)
        XCTAssertEqual(SampleQuality.inceptionScore(probabilities: same), 1, accuracy: 1e-9)
    }
}
