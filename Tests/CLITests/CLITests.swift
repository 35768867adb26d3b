// CLITests.swift: the command line's handling of bad input: each bad flag or file gets a clear
// error naming it.
import ArgumentParser
import Foundation
import JEMCore
import XCTest
@testable import robust_eval

final class CLITests: XCTestCase {
    func assertFails<T>(_ body: @autoclosure () throws -> T, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            let msg = (e as? ValidationError)?.message ?? RobustEval.message(for: e)
            XCTAssertTrue(msg.contains(text), "'\(msg)' lacks '\(text)'", file: file, line: line)
        }
    }

    func testPGDFlagErrors() throws {
        assertFails(try PGDCommand.parse(["--eps", "abc"]).attack.config(), "--eps 'abc' is not a number")
        assertFails(try PGDCommand.parse(["--eps=-1/255"]).attack.config(), "non-negative")
        assertFails(try PGDCommand.parse(["--eps", "1.5"]).attack.config(), "above 1")
        assertFails(try PGDCommand.parse(["--steps", "0"]).attack.config(), "--steps must be ≥ 1")
        assertFails(try PGDCommand.parse(["--norm", "l3"]), "l3")
        XCTAssertEqual(try PGDCommand.parse(["--eps", "8/255"]).attack.config().stepSize, 2 / 255, accuracy: 1e-7)
        XCTAssertEqual(try PGDCommand.parse(["--norm", "l2", "--eps", "0.5", "--steps", "20"]).attack.config().stepSize, 2.5 * 0.5 / 20, accuracy: 1e-7)
    }

    func testImagesAndLabelsMustAgree() throws {
        let img = tmp("x.npy"), lab = tmp("y.npy"), bad = tmp("bad.npy")
        try NpyArray.write(Tensor(shape: [4, 1, 2, 2], repeating: 0.5), to: img)
        try NpyArray.write([0, 1, 2], to: lab)
        try NpyArray.write(Tensor(shape: [3, 1, 2, 2], repeating: 2), to: bad)
        assertFails(try InputOptions.parse(["--images", img, "--labels", lab]).load(classes: 10), "3 labels for 4 images")
        assertFails(try InputOptions.parse(["--images", bad, "--labels", lab]).load(classes: 10), "must lie in [0, 1]")
    }

    func testTrainFlagErrors() throws {
        assertFails(try Train.parse(["--out", "/tmp/x", "--sgld-steps=-1"]), "--sgld-steps must be ≥ 0")
        assertFails(try Train.parse([]), "give --out DIR")
    }

    func tmp(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("robust-eval-cli-\(getpid())")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d.appendingPathComponent(name).path
    }
}
