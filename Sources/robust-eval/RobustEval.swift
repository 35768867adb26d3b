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
        subcommands: [Info.self, Predict.self, Eval.self, DataCommand.self, Train.self, PGDCommand.self, AutoAttackCommand.self, APGDCommand.self, SquareCommand.self, Transfer.self, Defend.self, Curve.self, Calibrate.self, OODCommand.self, Sample.self, Bench.self]
    )
}

