// Info.swift: `robust-eval info --model M`: architecture, parameter count, metadata.
import ArgumentParser
import Foundation
import JEMCore

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a model's architecture, parameter count and metadata.")
    @OptionGroup var model: ModelOptions

    func run() throws {
        let l = try model.load()
        let c = l.model.config
        print("file:        \(l.path)")
        print("arch:        \(c.archName) (norm \(c.norm.rawValue), LeakyReLU \(c.leak))")
        print("input:       \(c.inChannels) channel(s), mean \(c.inputMean), std \(c.inputStd)")
        print("classes:     \(c.numClasses)")
        print("parameters:  \(l.model.parameterCount)")
        for k in l.metadata.keys.sorted() where !ModelIO.metadata(for: c).keys.contains(k) {
            print("meta \(k): \(l.metadata[k]!)")
        }
    }
}
