// TestSupport.swift: helpers shared by the JEMCore tests: random tensors, closeness checks and
// the central-difference gradient check (asymmetric relative error, kinks skipped by the caller).
import Foundation
import XCTest
@testable import JEMCore

func randomTensor(_ shape: [Int], _ rng: inout SeededRandom, lo: Float = -1, hi: Float = 1) -> Tensor {
    let t = Tensor(shape: shape)
    rng.fillUniform(t, lo: lo, hi: hi)
    return t
}

/// max |a−b| / max(|b|_∞, floor)
func relativeError(_ a: Tensor, _ b: Tensor, floor: Float = 1e-6) -> Float {
    precondition(a.count == b.count)
    var num: Float = 0
    for i in 0..<a.count { num = max(num, abs(a[i] - b[i])) }
    return num / max(b.maxAbs, floor)
}

func assertClose(_ a: Tensor, _ b: Tensor, tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, "\(what): shapes differ", file: file, line: line)
    guard a.count == b.count else { return }
    let e = relativeError(a, b)
    XCTAssertLessThan(e, tol, "\(what): relative error \(e)", file: file, line: line)
}

/// Central differences of `f` with respect to sampled coordinates of `x`, against `analytic`.
/// The error of a coordinate is |num − ana| / max(|num|, |ana|, floor · max|analytic|): f is
/// computed in float32, so coordinates with gradients far below the tensor's scale are compared
/// against that scale. `skip` excludes coordinates at a kink.
func checkGradient(_ x: Tensor, analytic: Tensor, eps: Float = 1e-2, tol: Double = 2e-2, samples: Int = 25,
                   floor: Double = 0.02, seed: UInt64 = 7, skip: (Int) -> Bool = { _ in false }, useMean: Bool = false,
                   _ what: String, file: StaticString = #filePath, line: UInt = #line,
                   f: () throws -> Double) rethrows {
    let scale = max(Double(analytic.maxAbs) * floor, 1e-7)
    var rng = SeededRandom(seed: seed)
    let idx = x.count <= samples ? Array(0..<x.count) : (0..<samples).map { _ in Int(rng.next() % UInt64(x.count)) }
    var worst = 0.0, total = 0.0, counted = 0
    for i in idx where !skip(i) {
        let v = x[i]
        x[i] = v + eps; let fp = try f()
        x[i] = v - eps; let fm = try f()
        x[i] = v
        let num = (fp - fm) / (2 * Double(eps))
        let ana = Double(analytic[i])
        let err = abs(num - ana) / max(abs(num), abs(ana), scale)
        worst = max(worst, err); total += err; counted += 1
    }
    if useMean { worst = total / Double(max(counted, 1)) }
    XCTAssertLessThan(worst, tol, "\(what): finite-difference relative error (\(useMean ? "mean" : "max")) \(worst)", file: file, line: line)
}

func dot(_ a: Tensor, _ b: Tensor) -> Double {
    var s = 0.0
    for i in 0..<a.count { s += Double(a[i]) * Double(b[i]) }
    return s
}

func fixture(_ name: String) -> String {
    Bundle.module.path(forResource: name, ofType: nil, inDirectory: "Fixtures")!
}

func tempPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("robust-eval-tests-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}
