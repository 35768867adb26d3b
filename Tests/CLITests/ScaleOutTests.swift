// ScaleOutTests.swift: a sharded or multi-rank run gives the single run's answer. Runs the built
// robust-eval binary as separate processes: shards + merge, and MPI ranks on this machine talking
// over TCP (`--mca btl tcp,self`), for evaluation and for data-parallel JEM training.
import ArgumentParser
import Foundation
import XCTest
@testable import robust_eval

final class ScaleOutTests: XCTestCase {
    /// The robust-eval binary built beside the test bundle.
    var binary: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return dir.appendingPathComponent("robust-eval").path
    }

    func workDir(_ name: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("robust-eval-scale-\(getpid())/\(name)").path
        try? FileManager.default.removeItem(atPath: d)
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @discardableResult
    func run(_ args: [String], in dir: String, ranks: Int? = nil) throws -> (code: Int32, out: String, err: String) {
        let p = Process()
        if let ranks {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
            p.arguments = ["-n", String(ranks), "--mca", "btl", "tcp,self", binary] + args
        } else {
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = args
        }
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        p.environment = env
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let o = Pipe(), e = Pipe()
        p.standardOutput = o; p.standardError = e
        try p.run()
        let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    func read(_ dir: String, _ f: String) -> String { (try? String(contentsOfFile: "\(dir)/\(f)", encoding: .utf8)) ?? "missing \(f)" }

    /// The report without its timings.
    func report(_ dir: String, _ f: String) throws -> NSDictionary {
        let d = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(f)"))) as! [String: Any]
        func strip(_ v: Any) -> Any {
            if let m = v as? [String: Any] { return m.filter { !$0.key.contains("second") }.mapValues(strip) }
            if let a = v as? [Any] { return a.map(strip) }
            return v
        }
        return strip(d) as! NSDictionary
    }

    func testShardFlagErrors() {
        for (s, text) in [("0/2", "I must be in 1...2"), ("3/2", "I must be in 1...2"), ("1/0", "N must be ≥ 1"), ("a/b", "must be I/N"), ("2", "must be I/N")] {
            XCTAssertThrowsError(try ShardSpec.parse(s)) { e in
                XCTAssertTrue((e as! ValidationError).message.contains(text), "\(s): \((e as! ValidationError).message)")
            }
        }
        XCTAssertEqual(ShardSpec(index: 2, count: 3).range(10), 3..<6)
        // The slices of any n cover it exactly once.
        for n in [1, 7, 200] { for k in 1...min(n, 5) {
            XCTAssertEqual((1...k).flatMap { Array(ShardSpec(index: $0, count: k).range(n)) }, Array(0..<n))
        } }
    }

    func testShardsAndMergeEqualOneRun() throws {
        let d = workDir("shards")
        let common = ["pgd", "--limit", "12", "--steps", "2", "--seed", "4"]
        XCTAssertEqual(try run(common + ["--json", "one.json", "--per-example", "one.csv", "--save-adversarials", "one.npy"], in: d).code, 0)
        XCTAssertEqual(try run(common + ["--batch-size", "5", "--threads", "1", "--per-example", "b5.csv"], in: d).code, 0)
        XCTAssertEqual(read(d, "one.csv"), read(d, "b5.csv"))
        for i in 1...3 {
            XCTAssertEqual(try run(common + ["--shard", "\(i)/3", "--json", "p\(i).json", "--save-adversarials", "p\(i).npy"], in: d).code, 0)
        }
        let m = try run(["merge", "p3.json", "p1.json", "p2.json", "--json", "m.json", "--per-example", "m.csv", "--save-adversarials", "m.npy"], in: d)
        XCTAssertEqual(m.code, 0, m.err)
        XCTAssertEqual(read(d, "one.csv"), read(d, "m.csv"))
        XCTAssertEqual(try report(d, "one.json"), try report(d, "m.json"))
        XCTAssertEqual(FileManager.default.contents(atPath: "\(d)/one.npy"), FileManager.default.contents(atPath: "\(d)/m.npy"))

        // Bad parts: one line naming the problem, nothing written.
        var r = try run(["merge", "p1.json", "p3.json", "--json", "bad.json"], in: d)
        XCTAssertNotEqual(r.code, 0); XCTAssertTrue(r.err.contains("missing shard(s) 2/3"), r.err)
        r = try run(["merge", "p1.json", "p2.json", "p2.json", "--json", "bad.json"], in: d)
        XCTAssertTrue(r.err.contains("shard 2/3 given twice"), r.err)
        XCTAssertEqual(try run(common.map { $0 == "4" ? "5" : $0 } + ["--shard", "2/3", "--json", "other.json"], in: d).code, 0)
        r = try run(["merge", "p1.json", "other.json", "p3.json", "--json", "bad.json"], in: d)
        XCTAssertTrue(r.err.contains("different runs: seed is 5 vs 4"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(d)/bad.json"))
        r = try run(common + ["--shard", "3/2", "--json", "x.json"], in: d)
        XCTAssertNotEqual(r.code, 0); XCTAssertTrue(r.err.contains("--shard 3/2: I must be in 1...2"), r.err)
        r = try run(common + ["--shard", "1/13", "--json", "x.json"], in: d)
        XCTAssertTrue(r.err.contains("13 shards but only 12 images"), r.err)
    }

    var haveMPI: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun") }

    func testMPIRanksEqualOneProcess() throws {
        try XCTSkipUnless(haveMPI, "Open MPI is not installed (scripts/setup.sh installs it)")
        let d = workDir("mpi")
        let common = ["autoattack", "--limit", "10", "--n-iter", "3", "--n-queries", "10", "--n-target-classes", "2", "--seed", "2"]
        XCTAssertEqual(try run(common + ["--json", "one.json", "--per-example", "one.csv"], in: d).code, 0)
        let r = try run(common + ["--json", "mpi.json", "--per-example", "mpi.csv"], in: d, ranks: 2)
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertEqual(read(d, "one.csv"), read(d, "mpi.csv"))
        XCTAssertEqual(try report(d, "one.json"), try report(d, "mpi.json"))
        // More ranks than images: one clear line, naming the count.
        let bad = try run(["pgd", "--limit", "1", "--steps", "1"], in: d, ranks: 2)
        XCTAssertNotEqual(bad.code, 0)
        XCTAssertTrue(bad.err.contains("2 MPI ranks but only 1 images"), bad.err)
        // A command that does not split across ranks says so instead of running N times.
        let info = try run(["info"], in: d, ranks: 2)
        XCTAssertNotEqual(info.code, 0)
        XCTAssertTrue(info.err.contains("'info' does not split across MPI ranks"), info.err)
    }

    func testKilledRankEndsTheJobWithNothingWritten() throws {
        try XCTSkipUnless(haveMPI, "Open MPI is not installed (scripts/setup.sh installs it)")
        let d = workDir("kill")
        let marker = "\(d)/killed.json"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
        p.arguments = ["-n", "2", "--mca", "btl", "tcp,self", binary, "pgd", "--limit", "2000", "--threads", "1", "--json", marker]
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        p.environment = env
        let e = Pipe(), o = Pipe()
        p.standardError = e; p.standardOutput = o
        try p.run()
        // Wait for both ranks, then kill the newest one (a rank, not mpirun).
        var pids: [String] = []
        for _ in 0..<100 where pids.count < 2 {
            Thread.sleep(forTimeInterval: 0.2)
            let q = Process(), out = Pipe()
            q.executableURL = URL(fileURLWithPath: "/usr/bin/pgrep")
            q.arguments = ["-f", "^\(binary) pgd --limit 2000 --threads 1 --json \(marker)"]
            q.standardOutput = out
            try q.run(); q.waitUntilExit()
            pids = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").map(String.init)
        }
        XCTAssertEqual(pids.count, 2, "both ranks should be running")
        Thread.sleep(forTimeInterval: 1)
        kill(pid_t(pids.last!)!, SIGKILL)
        let err = String(decoding: e.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        _ = o.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(err.contains("rank"), err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "a killed job must not leave a report")
    }

    /// Iteration, CE and p(x) term of each `--log-every 1` line.
    func losses(_ out: String) -> [(Int, Double, Double)] {
        out.split(separator: "\n").compactMap { l in
            let f = l.split(separator: " ", omittingEmptySubsequences: true)
            guard f.first == "iter", f.count > 9, let it = Int(f[1].split(separator: "/")[0]), let ce = Double(f[7]), let px = Double(f[9]) else { return nil }
            return (it, ce, px)
        }
    }

    func testDataParallelTrainingFollowsOneProcess() throws {
        try XCTSkipUnless(haveMPI, "Open MPI is not installed (scripts/setup.sh installs it)")
        let d = workDir("train")
        let args = ["train", "--arch", "wrn-10-1", "--batch-size", "32", "--lr", "1e-3", "--no-augment", "--sgld-steps", "2", "--sgld-clamp",
                    "--energy-l2", "0.1", "--seed", "3", "--epochs", "1", "--log-every", "1", "--threads", "1", "--checkpoint-every", "25"]
        let one = try run(args + ["--max-iters", "50", "--out", "one"], in: d)
        XCTAssertEqual(one.code, 0, one.err)
        let two = try run(args + ["--max-iters", "50", "--out", "two"], in: d, ranks: 2)
        XCTAssertEqual(two.code, 0, two.err)
        let a = losses(one.out), b = losses(two.out)
        XCTAssertEqual(a.count, 50); XCTAssertEqual(b.count, 50)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.0, y.0)
            XCTAssertEqual(x.1, y.1, accuracy: 0.002, "CE at iteration \(x.0)")
            XCTAssertEqual(x.2, y.2, accuracy: 0.002, "p(x) term at iteration \(x.0)")
        }
        // A two-rank checkpoint continues in one process.
        let resumed = try run(["train", "--resume", "two", "--max-iters", "5", "--threads", "1"], in: d)
        XCTAssertEqual(resumed.code, 0, resumed.err)
        XCTAssertTrue(resumed.out.contains("at iteration 55/"), resumed.out)
    }
}
