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
        assertFails(try Train.parse(["--resume", "/tmp/x", "--init-from", "baseline"]), "--init-from starts a new run")
    }

    func tmp(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("robust-eval-cli-\(getpid())")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d.appendingPathComponent(name).path
    }
}

final class CLIAnalysisTests: XCTestCase {
    func model(classes: Int, dir: String) throws -> String {
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: classes))
        m.initialize(seed: 1)
        let p = (dir as NSString).appendingPathComponent("m\(classes).safetensors")
        try ModelIO.save(m, to: p)
        return p
    }

    func dir() -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("robust-eval-cli2-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func message(_ e: Error) -> String { (e as? ValidationError)?.message ?? "\(e)" }

    func testUnknownModel() {
        XCTAssertThrowsError(try PGDCommand.parse(["--model", "resnet"]).run()) { XCTAssertTrue(self.message($0).contains("unknown model 'resnet'"), self.message($0)) }
    }

    func testBundledModelsLoad() throws {
        // Every bundled name resolves to a file shipped with the executable and loads as a 10-class WRN-10-2.
        for name in BundledModels.names.keys.sorted() {
            let m = try BundledModels.load(name)
            XCTAssertEqual(m.model.numClasses, 10, name)
            XCTAssertTrue(try BundledModels.resolve(name).hasSuffix(BundledModels.names[name]!), name)
        }
    }

    func testClassCountMismatch() throws {
        let d = dir()
        let m = try model(classes: 3, dir: d)
        // Fashion-MNIST has 10 classes, the model 3.
        XCTAssertThrowsError(try Calibrate.parse(["--model", m, "--limit", "5"]).run()) {
            XCTAssertTrue(self.message($0).contains("10 classes but the model has 3"), self.message($0))
        }
    }

    func testOODShapeMismatch() throws {
        let d = dir()
        let m = try model(classes: 10, dir: d)
        let img = (d as NSString).appendingPathComponent("ood.npy")
        try NpyArray.write(Tensor(shape: [4, 1, 8, 8], repeating: 0.5), to: img)
        XCTAssertThrowsError(try OODCommand.parse(["--model", m, "--limit", "4", "--ood", "npy:\(img)"]).run()) {
            XCTAssertTrue(self.message($0).contains("1×8×8") && self.message($0).contains("1×28×28"), self.message($0))
        }
    }

    func testUnwritableOutputPath() throws {
        let d = dir()
        let m = try model(classes: 10, dir: d)
        XCTAssertThrowsError(try Calibrate.parse(["--model", m, "--limit", "5", "--json", "/nonexistent-dir/x.json"]).run()) {
            XCTAssertTrue(self.message($0).contains("/nonexistent-dir/x.json"), self.message($0))
        }
        XCTAssertThrowsError(try Sample.parse(["--model", m, "--steps", "1", "--count", "1", "--out", "/nonexistent-dir/g.png"]).run()) {
            XCTAssertTrue(self.message($0).contains("/nonexistent-dir/g.png"), self.message($0))
        }
    }

    func testSampleStartErrors() throws {
        let d = dir()
        let m = try model(classes: 10, dir: d)
        for (args, text) in [(["--init", "bogus"], "--init must be uniform or gaussian, got 'bogus'"),
                             (["--init", "gaussian", "--buffer", "b.safetensors"], "--init and --buffer both choose"),
                             (["--init", "uniform", "--data", "fashion-mnist"], "--data is only used with --init gaussian")] {
            XCTAssertThrowsError(try Sample.parse(["--model", m, "--steps", "1", "--count", "1", "--out", d + "/g.png"] + args).run()) {
                XCTAssertTrue(self.message($0).contains(text), self.message($0))
            }
        }
    }

    func testCurveAndDefendFlagErrors() throws {
        let d = dir()
        let m = try model(classes: 10, dir: d)
        XCTAssertThrowsError(try Curve.parse(["--model", m, "--eps", "0,8/255,4/255", "--limit", "2"]).run()) {
            XCTAssertTrue(self.message($0).contains("strictly increasing"), self.message($0))
        }
        XCTAssertThrowsError(try Curve.parse(["--model", m, "--sgld-steps=-2", "--limit", "2"]).run()) {
            XCTAssertTrue(self.message($0).contains("--sgld-steps must be ≥ 0"), self.message($0))
        }
        XCTAssertThrowsError(try Defend.parse(["--model", m, "--chains", "0", "--limit", "2"]).run()) {
            XCTAssertTrue(self.message($0).contains("--chains must be ≥ 1"), self.message($0))
        }
        for (args, text) in [(["--sgld-steps=-1"], "--sgld-steps must be ≥ 0"), (["--eot", "0"], "--eot must be ≥ 1"),
                             (["--eval-runs", "0"], "--eval-runs must be ≥ 1"), (["--attack-sgld-steps", "11"], "--attack-sgld-steps must be in 0...10"),
                             (["--attacks", "apgd-ce,pgd"], "unknown attack 'pgd'"), (["--n-queries", "0"], "--n-queries must be ≥ 1")] {
            XCTAssertThrowsError(try Defend.parse(["--model", m, "--limit", "2"] + args).validate()) {
                XCTAssertTrue(self.message($0).contains(text), self.message($0))
            }
        }
    }
}

final class CLIAdaptTests: XCTestCase {
    func testModelMetadataPadsAndReplicatesChannelsUnlessFlagsSayOtherwise() throws {
        let x = Tensor(shape: [2, 1, 28, 28], repeating: 0.5)
        let d = try Dataset(images: x, labels: [0, 1], numClasses: 10, name: "t")
        let meta = ["pad_to": "32", "to_channels": "3"]
        XCTAssertEqual(try adaptToModel(d, metadata: meta, padTo: nil, toChannels: nil).images.shape, [2, 3, 32, 32])
        XCTAssertEqual(try adaptToModel(d, metadata: meta, padTo: 30, toChannels: 1).images.shape, [2, 1, 28, 28])
        XCTAssertEqual(try adaptToModel(d, metadata: [:], padTo: nil, toChannels: nil).images.shape, [2, 1, 28, 28])
    }
}

final class CLIAutoAttackTests: XCTestCase {
    func message(_ e: Error) -> String { (e as? ValidationError)?.message ?? "\(e)" }

    func dir() -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("robust-eval-cli3-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func model(seed: UInt64, dir: String) throws -> String {
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 10))
        m.initialize(seed: seed)
        let p = (dir as NSString).appendingPathComponent("aa\(seed).safetensors")
        try ModelIO.save(m, to: p)
        return p
    }

    func assertFails(_ body: @autoclosure () throws -> Void, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { XCTAssertTrue(self.message($0).contains(text), "'\(self.message($0))' lacks '\(text)'", file: file, line: line) }
    }

    func testFlagErrors() throws {
        assertFails(try AutoAttackCommand.parse(["--eps", "1.5"]).validate(), "above 1")
        assertFails(try AutoAttackCommand.parse(["--eps", "0"]).validate(), "--eps must be positive")
        assertFails(try AutoAttackCommand.parse(["--n-queries", "0"]).validate(), "--n-queries must be ≥ 1")
        assertFails(try AutoAttackCommand.parse(["--attacks", "apgd-ce,pgd"]).validate(), "unknown attack 'pgd'")
        assertFails(try AutoAttackCommand.parse(["--version", "custom"]).validate(), "--version must be standard or rand")
        assertFails(try SquareCommand.parse(["--n-queries", "0"]).validate(), "--n-queries must be ≥ 1")
        assertFails(try APGDCommand.parse(["--steps", "0"]).validate(), "--steps must be ≥ 1")
        // Parsing runs validate(): the whole command line is rejected before any work.
        XCTAssertThrowsError(try AutoAttackCommand.parseAsRoot(["--eps", "2"]))
    }

    func testRunWritesConsistentOutputsAndRefusesAForeignState() throws {
        let d = dir()
        let a = try model(seed: 1, dir: d), b = try model(seed: 2, dir: d)
        let state = d + "/state.json", json = d + "/aa.json", csv = d + "/aa.csv", adv = d + "/adv.npy"
        try? FileManager.default.removeItem(atPath: state)
        let common = ["--limit", "6", "--n-iter", "2", "--n-queries", "3", "--n-target-classes", "1", "--no-checks"]
        try AutoAttackCommand.parse(["--model", a, "--state", state, "--json", json, "--per-example", csv, "--save-adversarials", adv] + common).run()
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as! [String: Any]
        for key in ["clean_accuracy", "robust_accuracy", "n", "per_attack", "eps", "norm", "version", "robustbench", "flags"] {
            XCTAssertNotNil(report[key], key)
        }
        XCTAssertEqual((report["per_attack"] as! [Any]).count, 4)
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.first, "index,label,clean_prediction,broken_by,adversarial_prediction")
        XCTAssertEqual(lines.count, 7)
        // The saved worst-case points re-check to exactly the robust accuracy.
        let ej = d + "/eval.json"
        try Eval.parse(["--model", a, "--images", adv, "--labels", d + "/adv.labels.npy", "--json", ej]).run()
        let ev = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: ej))) as! [String: Any]
        XCTAssertEqual(ev["accuracy"] as! Double, report["robust_accuracy"] as! Double, accuracy: 1e-12)
        // Another model with the same state file: refused, naming what differs.
        assertFails(try AutoAttackCommand.parse(["--model", b, "--state", state] + common).run(), "--state was written by a different run")
        // The single-attack commands run through the same outputs.
        for (cmd, args) in [("apgd", ["--steps", "2", "--targeted", "--n-target-classes", "1"]), ("square", ["--n-queries", "3"])] {
            let j = d + "/\(cmd).json"
            if cmd == "apgd" { try APGDCommand.parse(["--model", a, "--limit", "4", "--json", j, "--no-checks"] + args).run() }
            else { try SquareCommand.parse(["--model", a, "--limit", "4", "--json", j, "--no-checks"] + args).run() }
            let r = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: j))) as! [String: Any]
            XCTAssertEqual((r["per_attack"] as! [[String: Any]]).map { $0["name"] as! String }, [cmd == "apgd" ? "apgd-t" : "square"])
        }
        // Unwritable outputs are refused before any work.
        assertFails(try AutoAttackCommand.parse(["--model", a, "--json", "/nonexistent-dir/x.json"] + common).run(), "/nonexistent-dir")
    }
}
