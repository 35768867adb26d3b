// DataCommand.swift: `robust-eval data --data SPEC`: count, shape, pixel range, class histogram.
import ArgumentParser
import Foundation
import JEMCore

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Describe a data set: count, shape, pixel range and class histogram.")
    @OptionGroup var data: DataOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        runtime.apply()
        let t0 = Date()
        let d = try data.load()
        let secs = Date().timeIntervalSince(t0)
        var lo = Float.infinity, hi = -Float.infinity
        for i in 0..<d.images.count { lo = min(lo, d.images[i]); hi = max(hi, d.images[i]) }
        for n in d.notes { print(n) }
        print("data:    \(d.name)")
        print("count:   \(d.count)")
        print("shape:   \(d.channels)×\(d.height)×\(d.width)")
        print(String(format: "pixels:  [%.4f, %.4f]", lo, hi))
        print("classes: \(d.numClasses); histogram \(d.classHistogram)")
        print(String(format: "read in %.3f s", secs))
    }
}
