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
        assertFails(try PGDCommand.parse(["--steps", "0"]).attack.config(), "--steps must be in 1...100000")
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

    func testProgressLineOfAResumedSlowRun() {
        let p = Progress(total: 673, label: "apgd-t")
        p.base = 256  // resumed: 256 points were attacked by an earlier process
        XCTAssertEqual(p.line(256, elapsed: 5, extra: "broken 3"), "apgd-t 256/673  0.0/s  ETA --  broken 3")
        XCTAssertEqual(p.line(257, elapsed: 25), "apgd-t 257/673  0.040/s  ETA 2h53m  ")
        XCTAssertEqual(p.line(400, elapsed: 72), "apgd-t 400/673  2.0/s  ETA 2m17s  ")
        XCTAssertEqual(p.line(673, elapsed: 100), "apgd-t 673/673  4.2/s  ETA 0m00s  ")
    }

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
            XCTAssertTrue(self.message($0).contains("--chains must be in 1...1000"), self.message($0))
        }
        for (args, text) in [(["--sgld-steps=-1"], "--sgld-steps must be in 0...100000"), (["--eot", "0"], "--eot must be in 1...10000"),
                             (["--eval-runs", "0"], "--eval-runs must be in 1...1000"), (["--attack-sgld-steps", "11"], "--attack-sgld-steps must be in 0...10"),
                             (["--attacks", "apgd-ce,pgd"], "unknown attack 'pgd'"), (["--n-queries", "0"], "--n-queries must be in 1...10000000"),
                             (["--attack-chains", "0"], "--attack-chains must be in 1...1000"),
                             (["--judge-runs", "0"], "--judge-runs (at most --eval-runs) must be in 1...5, got 0"),
                             (["--judge-runs", "6"], "--judge-runs (at most --eval-runs) must be in 1...5, got 6"),
                             (["--eval-runs", "2", "--judge-runs", "3"], "--judge-runs (at most --eval-runs) must be in 1...2, got 3"),
                             (["--transfer-attacks", "apgd-ce,fgsm"], "--transfer-attacks: unknown attack 'fgsm'")] {
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
        assertFails(try AutoAttackCommand.parse(["--n-queries", "0"]).validate(), "--n-queries must be in 1...10000000")
        assertFails(try AutoAttackCommand.parse(["--attacks", "apgd-ce,pgd"]).validate(), "unknown attack 'pgd'")
        assertFails(try AutoAttackCommand.parse(["--version", "custom"]).validate(), "--version must be standard or rand")
        assertFails(try AutoAttackCommand.parse(["--version", "rand", "--rescale-schedule"]).validate(), "--rescale-schedule changes Square's schedule, but this run's attacks (apgd-ce,apgd-dlr) do not include square")
        assertFails(try AutoAttackCommand.parse(["--attacks", "apgd-ce", "--rescale-schedule"]).validate(), "do not include square")
        XCTAssertNoThrow(try AutoAttackCommand.parse(["--rescale-schedule"]).validate())
        assertFails(try AutoAttackCommand.parse(["--judge-runs", "1"]).validate(), "--judge-runs sets the SGLD defense's evaluation runs: give --sgld-steps K too")
        assertFails(try AutoAttackCommand.parse(["--eval-runs", "3"]).validate(), "--eval-runs sets the SGLD defense's evaluation runs: give --sgld-steps K too")
        assertFails(try AutoAttackCommand.parse(["--sgld-steps", "2", "--eval-runs", "2", "--judge-runs", "3"]).validate(), "--judge-runs (at most --eval-runs) must be in 1...2")
        assertFails(try AutoAttackCommand.parse(["--sgld-steps", "2", "--judge-runs", "0"]).validate(), "--judge-runs (at most --eval-runs) must be in 1...5")
        assertFails(try SquareCommand.parse(["--n-queries", "0"]).validate(), "--n-queries must be in 1...10000000")
        assertFails(try APGDCommand.parse(["--steps", "0"]).validate(), "--steps must be in 1...100000")
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
        // --loss dlr-targeted (a listed value) is APGD-T too, with the same result; --targeted with --loss dlr is refused.
        let jt = d + "/apgd-loss.json"
        try APGDCommand.parse(["--model", a, "--limit", "4", "--json", jt, "--no-checks", "--steps", "2", "--loss", "dlr-targeted", "--n-target-classes", "1"]).run()
        let rt = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: jt))) as! [String: Any]
        let r0 = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: d + "/apgd.json"))) as! [String: Any]
        XCTAssertEqual((rt["per_attack"] as! [[String: Any]]).map { $0["name"] as! String }, ["apgd-t"])
        XCTAssertEqual(rt["robust_accuracy"] as! Double, r0["robust_accuracy"] as! Double)
        assertFails(try APGDCommand.parse(["--model", a, "--targeted", "--loss", "dlr"]).run(), "--targeted uses the targeted DLR loss")
        // Unwritable outputs are refused before any work.
        assertFails(try AutoAttackCommand.parse(["--model", a, "--json", "/nonexistent-dir/x.json"] + common).run(), "/nonexistent-dir")
    }

    /// autoattack through the defense with --judge-runs: the attacks' points judged by J runs, each
    /// example's final point by the other M − J (the final-runs row), stated in the JSON.
    func testAutoAttackThroughTheDefenseJudgesWithJRuns() throws {
        let d = dir()
        try AutoAttackCommand.parse(["--model", "jem", "--sgld-steps", "1", "--eval-runs", "2", "--judge-runs", "1", "--attacks", "apgd-ce",
                                     "--n-iter", "1", "--eot", "1", "--limit", "3", "--threads", "2", "--no-checks", "--json", d + "/aa.json"]).run()
        let j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: d + "/aa.json"))) as! [String: Any]
        XCTAssertEqual(j["eval_runs"] as? Int, 2)
        XCTAssertEqual(j["judge_runs"] as? Int, 1)
        XCTAssertEqual((j["per_attack"] as! [[String: Any]]).map { $0["name"] as! String }, ["apgd-ce", "final-runs"])
        let all = ["--model", "jem", "--sgld-steps", "1", "--eval-runs", "2", "--attacks", "apgd-ce", "--n-iter", "1", "--eot", "1",
                   "--limit", "3", "--threads", "2", "--no-checks", "--state", d + "/all_state.json"]
        try? FileManager.default.removeItem(atPath: d + "/all_state.json")
        try AutoAttackCommand.parse(all + ["--json", d + "/all.json"]).run()
        let j2 = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: d + "/all.json"))) as! [String: Any]
        XCTAssertEqual(j2["judge_runs"] as? Int, 2)
        XCTAssertEqual((j2["per_attack"] as! [[String: Any]]).map { $0["name"] as! String }, ["apgd-ce"])
        // --judge-runs M is the default spelled out: the same run, so its state file is accepted.
        try AutoAttackCommand.parse(all + ["--judge-runs", "2"]).run()
    }
}

/// Every command that takes a model runs an imported ONNX graph; an exported Wide-ResNet attacks
/// like the same weights loaded from safetensors; bad graphs and flags are refused with reasons.
final class CLIONNXTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("JEMCoreTests/Fixtures").path
    var onnx: String { fixtures + "/onnx/wrn10_1_batch.onnx" }
    var safetensors: String { fixtures + "/wrn10_1_batch_model.safetensors" }
    var images: String { fixtures + "/wrn10_1_batch_input.npy" }
    var labels: String { fixtures + "/wrn10_1_batch_labels.npy" }

    func dir() -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("robust-eval-onnx-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func json(_ p: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: p))) as! [String: Any]
    }

    func testPGDThroughTheGraphEqualsTheSameWeightsFromSafetensors() throws {
        let d = dir()
        var reports: [[String: Any]] = []
        var rows: [[Substring]] = []
        for (tag, m) in [("onnx", onnx), ("st", safetensors)] {
            let j = d + "/pgd_\(tag).json", c = d + "/pgd_\(tag).csv"
            try PGDCommand.parse(["--model", m, "--images", images, "--labels", labels, "--eps", "8/255", "--json", j, "--per-example", c, "--threads", "2"]).run()
            reports.append(try json(j))
            rows.append(try String(contentsOfFile: c, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",")[3] })
        }
        XCTAssertEqual(reports[0]["clean_accuracy"] as! Double, reports[1]["clean_accuracy"] as! Double)
        XCTAssertEqual(reports[0]["robust_accuracy"] as! Double, reports[1]["robust_accuracy"] as! Double)
        XCTAssertEqual(rows[0], rows[1], "adversarial predictions per example")
    }

    /// A defended curve series runs defend's protocol: its point at ε (the first and only ε, so the
    /// same seed) equals defend's headline on the same images and settings.
    func testCurveDefendedPointIsDefendsHeadline() throws {
        let d = dir()
        let inp = ["--limit", "6", "--threads", "2", "--eps", "8/255"]
        let common = ["--model", "jem", "--sgld-steps", "1", "--chains", "2", "--eval-runs", "2", "--steps", "2", "--attacks", "apgd-ce,bpda,square",
                      "--n-queries", "3", "--attack-chains", "1"]
        try Defend.parse(["--no-checks", "--json", d + "/def.json"] + common + inp).run()
        try Curve.parse(["--out", d + "/dc"] + common + inp).run()
        let series = (try json(d + "/dc.json")["series"] as! [[String: Any]])[0]
        XCTAssertTrue((series["attack"] as! String).contains("defend's protocol: apgd-ce, bpda, square"), series["attack"] as! String)
        XCTAssertTrue((series["gradient"] as! String).contains("full chain"), series["gradient"] as! String)
        let point = (series["points"] as! [[String: Any]])[0]
        XCTAssertEqual(point["accuracy"] as! Double, try json(d + "/def.json")["robust_accuracy"] as! Double)
    }

    func testEveryModelCommandRunsAnONNXModel() throws {
        let d = dir()
        let data = ["--data", "npy:\(images),\(labels)"]
        let inp = ["--images", images, "--labels", labels]
        try Info.parse(["--model", onnx]).run()
        try Predict.parse(["--model", onnx, "--images", images, "--out", d + "/z.npy", "--gradients", d + "/g.npy"]).run()
        XCTAssertEqual(try NpyArray.read(path: d + "/g.npy").shape, [4, 3, 9, 9])
        try Eval.parse(["--model", onnx] + data).run()
        try Transfer.parse(["--source", onnx, "--target", safetensors] + inp).run()
        let small = ["--no-checks", "--threads", "2"]
        try AutoAttackCommand.parse(["--model", onnx, "--attacks", "apgd-ce,fab-t,square", "--n-iter", "2", "--n-queries", "3", "--n-target-classes", "1", "--json", d + "/aa.json"] + inp + small).run()
        XCTAssertEqual((try json(d + "/aa.json")["n"]) as? Int, 4)
        try APGDCommand.parse(["--model", onnx, "--steps", "2"] + inp + small).run()
        try SquareCommand.parse(["--model", onnx, "--n-queries", "3"] + inp + small).run()
        try Defend.parse(["--model", onnx, "--sgld-steps", "1", "--chains", "1", "--eval-runs", "1", "--steps", "1", "--attacks", "apgd-ce,square",
                          "--n-queries", "2", "--json", d + "/def.json"] + inp + small).run()
        XCTAssertNotNil(try json(d + "/def.json")["robust_accuracy"])
        try Curve.parse(["--series", "\(onnx):none", "--series", "\(onnx):1", "--eps", "0,8/255", "--out", d + "/curve", "--steps", "2"] + inp).run()
        try Calibrate.parse(["--model", onnx, "--refine", "1"] + inp).run()
        try OODCommand.parse(["--model", onnx, "--ood", "uniform"] + inp).run()
        try Sample.parse(["--model", onnx, "--count", "2", "--steps", "2", "--out", d + "/s.png"]).run()
        try Bench.parse(["--model", onnx, "--batch", "2", "--repeats", "1"]).run()
    }

    func testBadGraphsAndFlagsAreRefused() throws {
        let d = dir()
        let zoo = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/onnx/zoo.onnx"))
        let bad = d + "/erf.onnx"
        try zoo.replacing(Data("Tanh".utf8), with: Data("Erfx".utf8)).write(to: URL(fileURLWithPath: bad))
        func fails(_ args: [String], _ text: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try { let c = try Info.parse(args); try c.run() }(), file: file, line: line) { e in
                let msg = (e as? ValidationError)?.message ?? RobustEval.message(for: e)
                XCTAssertTrue(msg.contains(text), "'\(msg)' lacks '\(text)'", file: file, line: line)
            }
        }
        fails(["--model", bad], "unsupported op Erfx (node")
        fails(["--model", bad], "supported: Add")
        fails(["--model", onnx, "--arch", "wrn-10-1"], "an ONNX graph states its own architecture")
        fails(["--model", onnx, "--output", "nope"], "--output nope: the graph's outputs are")
        let trunc = d + "/trunc.onnx"
        try zoo.prefix(zoo.count / 3).write(to: URL(fileURLWithPath: trunc))
        fails(["--model", trunc], "corrupt or truncated")
        // Images of another size than the graph declares.
        XCTAssertThrowsError(try Eval.parse(["--model", fixtures + "/onnx/zoo.onnx", "--images", images, "--labels", labels]).run()) { e in
            XCTAssertTrue(RobustEval.message(for: e).contains("images are 9×9, but \(fixtures)/onnx/zoo.onnx expects 16×16 (its graph's declared input)"), RobustEval.message(for: e))
        }
    }
}

/// The rough edges of issue-level reliability: image sizes, round trips, conflicting and out-of-range flags.
final class CLIReliabilityTests: XCTestCase {
    func dir() -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("robust-eval-cli3-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func message(_ e: Error) -> String { (e as? ValidationError)?.message ?? "\(e)" }

    func testImagesOfAnotherSizeThanTrainedOnAreRefusedUnlessAllowed() throws {
        let d = dir()
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 3))
        m.initialize(seed: 1)
        let mp = d + "/sized.safetensors"
        try ModelIO.save(m, to: mp, extra: ["image_size": "4x4"])
        let x = d + "/x5.npy", y = d + "/y.npy"
        try NpyArray.write(Tensor(shape: [2, 1, 5, 5], repeating: 0.5), to: x)
        try NpyArray.write([0, 1], to: y)
        XCTAssertThrowsError(try Eval.parse(["--model", mp, "--images", x, "--labels", y]).run()) {
            XCTAssertTrue(self.message($0).contains("images are 5×5, but \(mp) expects 4×4"), self.message($0))
        }
        XCTAssertNoThrow(try Eval.parse(["--model", mp, "--images", x, "--labels", y, "--allow-any-size"]).run())
    }

    func testSavedAdversarialsRoundTripWithTheirLabels() throws {
        let d = dir()
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 3))
        m.initialize(seed: 2)
        let mp = d + "/m.safetensors"
        try ModelIO.save(m, to: mp)
        let x = d + "/x.npy", y = d + "/y.npy", adv = d + "/adv.npy"
        try NpyArray.write(Tensor(shape: [3, 1, 6, 6], repeating: 0.25), to: x)
        try NpyArray.write([0, 1, 2], to: y)
        try PGDCommand.parse(["--model", mp, "--images", x, "--labels", y, "--steps", "2", "--save-adversarials", adv, "--threads", "1"]).run()
        let labels = try NpyArray.read(path: d + "/adv.labels.npy")
        XCTAssertEqual(labels.values, [0, 1, 2])
        XCTAssertNoThrow(try Eval.parse(["--model", mp, "--images", adv, "--labels", d + "/adv.labels.npy"]).run())
    }

    func testFlagsAreRangeCheckedBeforeWork() {
        for (args, text) in [(["--batch-size", "0"], "--batch-size must be in 1...65536, got 0"),
                             (["--limit", "-5"], "--limit must be positive, got -5"),
                             (["--threads", "100000"], "--threads"),
                             (["--to-channels", "-1"], "--to-channels must be in 1...64, got -1"),
                             (["--step-size", "0"], "--step-size '0' is not a positive number"),
                             (["--eps", "nan"], "is not a number"),
                             (["--labels", "y.npy"], "--labels needs --images"),
                             (["--json", "/nonexistent-dir/r.json"], "directory /nonexistent-dir does not exist"),
                             (["--data", "fashion-mnist:"], "empty path after ':'")] {
            XCTAssertThrowsError(try { let c = try PGDCommand.parse(args); try c.run() }()) {
                XCTAssertTrue(PGDCommand.message(for: $0).contains(text), "\(args): \(PGDCommand.message(for: $0))")
            }
        }
        XCTAssertThrowsError(try Sample.parse(["--class", "3", "--per-class", "--out", "/tmp/g.png"])) {
            XCTAssertTrue(Sample.message(for: $0).contains("give one"), Sample.message(for: $0))
        }
        for (args, text) in [(["--momentum=-1"], "--momentum must be a finite number in 0.0...1.0"), (["--lr", "nan"], "--lr must be a positive finite number"),
                             (["--arch", "wrn-6000004-2"], "implausible")] {
            XCTAssertThrowsError(try Train.parse(["--out", "/tmp/x-run"] + args)) {
                XCTAssertTrue(Train.message(for: $0).contains(text), "\(args): \(Train.message(for: $0))")
            }
        }
    }
}

extension CLIReliabilityTests {
    func testFIDOfASetWithItselfIsZeroAndOfNoiseIsLarge() throws {
        let d = dir()
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 3))
        m.initialize(seed: 5)
        let mp = d + "/fidmodel.safetensors"
        try ModelIO.save(m, to: mp)
        var rng = SeededRandom(seed: 6)
        let x = Tensor(shape: [40, 1, 6, 6])
        for i in 0..<x.count { x.data[i] = 0.3 + 0.2 * rng.uniform() }
        let xp = d + "/fidx.npy", yp = d + "/fidy.npy", j1 = d + "/fid1.json", j2 = d + "/fid2.json"
        try NpyArray.write(x, to: xp)
        try NpyArray.write((0..<40).map { $0 % 3 }, to: yp)
        try FIDCommand.parse(["--images", xp, "--reference", "npy:\(xp),\(yp)", "--features", mp, "--json", j1, "--threads", "1"]).run()
        try FIDCommand.parse(["--images", "noise:40", "--reference", "npy:\(xp),\(yp)", "--features", mp, "--json", j2, "--threads", "1"]).run()
        let same = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: j1))) as! [String: Any]
        let noise = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: j2))) as! [String: Any]
        XCTAssertEqual(same["fid"] as! Double, 0, accuracy: 1e-4)
        XCTAssertGreaterThan(noise["fid"] as! Double, 10 * max(same["fid"] as! Double, 1e-6))
        XCTAssertEqual(same["feature_dim"] as? Int, 64)
        XCTAssertThrowsError(try FIDCommand.parse(["--images", "noise:1"])) { XCTAssertTrue(FIDCommand.message(for: $0).contains("noise:N")) }
    }
}
