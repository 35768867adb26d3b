// Calibration.swift: expected and maximum calibration error over equal-width confidence bins
// (the reference uses 20), negative log-likelihood, and the per-bin table of the reliability
// diagram. Confidence is max p(y|x); bin b holds confidences in (b/B, (b+1)/B] (bin 0 includes 0).
import JEMCore

public struct CalibrationBin: Codable, Sendable {
    public var lower: Double, upper: Double
    public var count: Int
    public var accuracy: Double
    public var confidence: Double
}

public struct CalibrationReport: Codable, Sendable {
    public var n: Int
    public var accuracy: Double
    public var ece: Double
    public var mce: Double
    public var nll: Double
    public var bins: [CalibrationBin]
}

public enum Calibration {
    /// - Parameters:
    ///   - probabilities: (N, K) rows summing to 1.
    public static func report(probabilities p: Tensor, labels: [Int], bins: Int = 20) throws -> CalibrationReport {
        let n = p.shape[0], k = p.shape[1]
        guard labels.count == n else { throw JEMError.shapeMismatch(what: "calibration labels", expected: [n], found: [labels.count]) }
        guard bins >= 1 else { throw JEMError.invalidArgument("--bins must be ≥ 1, got \(bins)") }
        var cnt = [Int](repeating: 0, count: bins), cor = [Int](repeating: 0, count: bins), conf = [Double](repeating: 0, count: bins)
        var nll = 0.0, correct = 0
        for i in 0..<n {
            var best = 0
            for j in 1..<k where p.data[i * k + j] > p.data[i * k + best] { best = j }
            let c = Double(p.data[i * k + best])
            let b = min(max(Int((c * Double(bins)).rounded(.up)) - 1, 0), bins - 1)
            cnt[b] += 1; conf[b] += c
            if best == labels[i] { cor[b] += 1; correct += 1 }
            nll -= log(max(Double(p.data[i * k + labels[i]]), 1e-12))
        }
        var ece = 0.0, mce = 0.0
        var table: [CalibrationBin] = []
        for b in 0..<bins {
            let acc = cnt[b] > 0 ? Double(cor[b]) / Double(cnt[b]) : 0, cf = cnt[b] > 0 ? conf[b] / Double(cnt[b]) : 0
            if cnt[b] > 0 {
                ece += Double(cnt[b]) / Double(n) * abs(acc - cf)
                mce = max(mce, abs(acc - cf))
            }
            table.append(CalibrationBin(lower: Double(b) / Double(bins), upper: Double(b + 1) / Double(bins), count: cnt[b], accuracy: acc, confidence: cf))
        }
        return CalibrationReport(n: n, accuracy: Double(correct) / Double(max(n, 1)), ece: ece, mce: mce, nll: nll / Double(max(n, 1)), bins: table)
    }

    /// The reliability diagram: accuracy per confidence bin against the diagonal, with counts.
    public static func diagram(_ r: CalibrationReport, title: String) -> Chart {
        var c = Chart(title: title, xLabel: "confidence (max p(y|x))", yLabel: "accuracy",
                      series: [Chart.Series(label: "accuracy per bin", points: r.bins.map { (($0.lower + $0.upper) / 2, $0.accuracy) }, style: .bars),
                               Chart.Series(label: "perfect calibration", points: [(0, 0), (1, 1)], style: .dashed)],
                      xRange: (0, 1), yRange: (0, 1))
        c.notes = r.bins.filter { $0.count > 0 }.map { (($0.lower + $0.upper) / 2, $0.accuracy, "\($0.count)") }
        return c
    }
}

#if canImport(Glibc)
import Glibc
#endif
