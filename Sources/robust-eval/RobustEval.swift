// RobustEval.swift: the `robust-eval` command: subcommands, one file each. Every `run()` parses,
// builds a library configuration, makes the library calls and prints. Errors from the library
// reach the user as one clear line and a non-zero exit.
import ArgumentParser
import Foundation
import JEMCore

@main
struct RobustEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "robust-eval",
        abstract: "Read a classifier as a Joint Energy-based Model and measure how robust it is.",
        subcommands: [Info.self, Predict.self, Eval.self, DataCommand.self, Train.self, PGDCommand.self, AutoAttackCommand.self, APGDCommand.self, SquareCommand.self, Transfer.self, Defend.self, Merge.self, Curve.self, Calibrate.self, OODCommand.self, Sample.self, FIDCommand.self, Bench.self]
    )

    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
        Foundation.exit(code)
    }

    /// Parses and runs like ArgumentParser's own `main`, with two differences: an unknown
    /// subcommand is named as such, and an error found while running (after the flags were
    /// accepted) is one line, without the usage text.
    static func main() {
        MPIWorld.startIfLaunched()
        let args = Array(CommandLine.arguments.dropFirst())
        if let first = args.first, !first.hasPrefix("-") {
            let names = configuration.subcommands.map { $0._commandName } + ["help"]
            if !names.contains(first) {
                fail("unknown command '\(first)'; the commands are \(names.dropLast().joined(separator: ", ")) (robust-eval --help)", code: 64)
            }
        }
        var command: ParsableCommand
        do { command = try parseAsRoot(args) } catch {
            // Help and version requests exit normally; a rejected flag is one line.
            if exitCode(for: error) == .success { exit(withError: error) }
            let sub = args.first.flatMap { a in configuration.subcommands.contains { $0._commandName == a } ? a : nil }
            MPIWorld.fail("\(message(for: error)) (see robust-eval \(sub.map { $0 + " " } ?? "")--help)", code: exitCode(for: error).rawValue)
        }
        // Under MPI only the commands that split their work across ranks run.
        if let w = MPIWorld.current {
            let name = type(of: command)._commandName
            if !["eval", "pgd", "apgd", "square", "autoattack", "transfer", "defend", "curve", "calibrate", "ood", "train"].contains(name) {
                if w.rank == 0 { FileHandle.standardError.write(Data("Error: '\(name)' does not split across MPI ranks; run it as one process (without mpirun)\n".utf8)) }
                MPIWorld.finish()
                Foundation.exit(64)
            }
        }
        do {
            try command.run()
        } catch let e as ValidationError {
            MPIWorld.fail(e.message, code: 64)
        } catch {
            if MPIWorld.current != nil { MPIWorld.fail(message(for: error), code: exitCode(for: error).rawValue) }
            exit(withError: error)
        }
        MPIWorld.finish()
    }
}
