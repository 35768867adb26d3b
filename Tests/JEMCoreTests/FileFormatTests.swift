// FileFormatTests.swift: safetensors and .npy round trips, and a clear error (naming the file and
// the problem) for every kind of bad file.
import XCTest
@testable import JEMCore

final class FileFormatTests: XCTestCase {
    func smallModel() throws -> WideResNet {
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 3))
        m.initialize(seed: 1)
        return m
    }

    func assertError(_ body: @autoclosure () throws -> Any, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            let msg = "\(e)"
            for p in parts { XCTAssertTrue(msg.contains(p), "'\(msg)' should contain '\(p)'", file: file, line: line) }
        }
    }

    func testModelRoundTripKeepsWeightsAndMetadata() throws {
        let m = try smallModel()
        let path = tempPath("rt.safetensors")
        try ModelIO.save(m, to: path, extra: ["note": "x"])
        let l = try ModelIO.load(path: path)
        XCTAssertEqual(l.wideResNet!.config, m.config)
        XCTAssertEqual(l.metadata["arch"], "wrn"); XCTAssertEqual(l.metadata["input_std"], "0.5")
        XCTAssertEqual(l.metadata["note"], "x")
        for (a, b) in zip(m.parameters, l.wideResNet!.parameters) { XCTAssertEqual(a.value.array, b.value.array, a.name) }
        let f = try SafeTensorsFile(path: path)
        XCTAssertNotNil(f.entries["energy_output.weight"]); XCTAssertNotNil(f.entries["f.linear.weight"])
    }

    func testBareStateDictNeedsArchitectureAndAcceptsModulePrefix() throws {
        let m = try smallModel()
        let path = tempPath("bare.safetensors")
        try SafeTensorsFile.write(path: path, tensors: m.parameters.map { ("module." + $0.name, $0.value) }
            + [("module.energy_output.weight", Tensor(shape: [1, 64]))], metadata: [:])
        assertError(try ModelIO.load(path: path), contains: [path, "--arch"])
        let l = try ModelIO.load(path: path, overrides: ModelOverrides(arch: "wrn-10-1", inChannels: 1, classes: 3, inputMean: [0.5], inputStd: [0.5]))
        XCTAssertEqual(l.wideResNet!.parameters[0].value.array, m.parameters[0].value.array)
    }

    func testWrongArchitectureNamesTensorAndBothShapes() throws {
        let path = tempPath("arch.safetensors")
        try ModelIO.save(try smallModel(), to: path)
        assertError(try ModelIO.load(path: path, overrides: ModelOverrides(arch: "wrn-10-2")),
                    contains: [path, "f.layer1.0.conv1.weight", "[32,16,3,3]", "[16,16,3,3]"])
        assertError(try ModelIO.load(path: path, overrides: ModelOverrides(arch: "wrn-11-2")), contains: ["6n+4"])
    }

    func testMissingTensor() throws {
        let m = try smallModel()
        let path = tempPath("missing.safetensors")
        try SafeTensorsFile.write(path: path, tensors: m.parameters.dropLast().map { ($0.name, $0.value) }, metadata: ModelIO.metadata(for: m.config))
        assertError(try ModelIO.load(path: path), contains: [path, "missing tensor", "class_output.bias"])
    }

    func header(_ json: String, declaredLength: UInt64? = nil, data: [UInt8] = []) -> Data {
        var d = Data()
        withUnsafeBytes(of: (declaredLength ?? UInt64(json.utf8.count)).littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array(json.utf8)); d.append(contentsOf: data)
        return d
    }

    func testBadSafetensorsFiles() throws {
        let p = "bad.safetensors"
        assertError(try SafeTensorsFile(data: header("{}", declaredLength: 1000), path: p), contains: [p, "past the end"])
        assertError(try SafeTensorsFile(data: header("{not json"), path: p), contains: [p, "malformed JSON"])
        assertError(try SafeTensorsFile(data: header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0]), path: p),
                    contains: [p, "`a`", "out of range"])
        assertError(try SafeTensorsFile(data: header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: Array(repeating: 0, count: 12)), path: p),
                    contains: [p, "overlapping"])
        assertError(try SafeTensorsFile(data: header(#"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)), path: p),
                    contains: [p, "unsupported dtype C64"])
        assertError(try SafeTensorsFile(data: header(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)), path: p),
                    contains: [p, "needs 12 bytes"])
        assertError(try SafeTensorsFile(data: Data([1, 2]), path: p), contains: [p, "8-byte"])
        assertError(try SafeTensorsFile(path: "/nonexistent/m.safetensors"), contains: ["/nonexistent/m.safetensors", "cannot read"])
    }

    func testTruncatedModelFile() throws {
        let path = tempPath("trunc.safetensors")
        try ModelIO.save(try smallModel(), to: path)
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        try d.prefix(d.count - 100).write(to: URL(fileURLWithPath: path))
        assertError(try ModelIO.load(path: path), contains: [path, "out of range"])
    }

    func testNpyRoundTripAndDtypes() throws {
        let t = try Tensor(shape: [2, 3], values: [0, 1, 2, 3, 4.5, -1])
        let path = tempPath("a.npy")
        try NpyArray.write(t, to: path)
        let r = try NpyArray.read(path: path)
        XCTAssertEqual(r.shape, [2, 3]); XCTAssertEqual(r.dtype, .f4); XCTAssertEqual(r.tensor().array, t.array)
        try NpyArray.write([3, -2, 7], to: path)
        let i = try NpyArray.read(path: path)
        XCTAssertEqual(i.dtype, .i8); XCTAssertEqual(i.values, [3, -2, 7])
        for dt in [NpyArray.DType.f4, .f8, .u1, .i4, .i8] {
            try NpyArray.write([0, 1, 200, 7], shape: [2, 2], dtype: dt, to: path)
            let a = try NpyArray.read(path: path)
            XCTAssertEqual(a.dtype, dt); XCTAssertEqual(a.shape, [2, 2]); XCTAssertEqual(a.values, [0, 1, 200, 7])
        }
        XCTAssertThrowsError(try NpyArray.write([300], shape: [1], dtype: .u1, to: path))
        for (descr, bytes, expect) in [("|u1", [UInt8]([200]), 200.0), ("<i4", [255, 255, 255, 255], -1.0),
                                       ("<f8", [0, 0, 0, 0, 0, 0, 0xF8, 0x3F], 1.5)] {
            let d = npyData(descr: descr, fortran: false, shape: "(1,)", payload: bytes)
            XCTAssertEqual(try NpyArray.parse(d, path: "x.npy").values, [expect], descr)
        }
    }

    func npyData(descr: String, fortran: Bool, shape: String, payload: [UInt8], magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) -> Data {
        var h = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
        while (10 + h.count + 1) % 64 != 0 { h += " " }
        h += "\n"
        var d = Data(magic + [1, 0, UInt8(h.utf8.count & 0xFF), UInt8(h.utf8.count >> 8)])
        d.append(contentsOf: Array(h.utf8)); d.append(contentsOf: payload)
        return d
    }

    func testBadNpyFiles() {
        let p = "bad.npy"
        assertError(try NpyArray.parse(npyData(descr: "<f4", fortran: false, shape: "(1,)", payload: [0, 0, 0, 0], magic: Array("NUMPY!".utf8)), path: p),
                    contains: [p, "bad magic"])
        assertError(try NpyArray.parse(npyData(descr: "<f4", fortran: true, shape: "(1,)", payload: [0, 0, 0, 0]), path: p), contains: [p, "Fortran"])
        assertError(try NpyArray.parse(npyData(descr: "<c8", fortran: false, shape: "(1,)", payload: Array(repeating: 0, count: 8)), path: p),
                    contains: [p, "unsupported .npy dtype '<c8'"])
        assertError(try NpyArray.parse(npyData(descr: "<f4", fortran: false, shape: "(3,)", payload: [0, 0, 0, 0]), path: p), contains: [p, "truncated"])
    }
}

/// Replays the fuzz seeds and every input a fuzzer once crashed on (Fuzz/corpus, Fuzz/regressions):
/// each must be read or refused with an error, never crash.
final class FuzzCorpusTests: XCTestCase {
    func testFuzzCorpusAndRegressionsAreReadOrRefused() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var replayed = 0
        for dir in ["Fuzz/corpus", "Fuzz/regressions"] {
            for format in FileFormat.allCases {
                let d = root.appendingPathComponent(dir).appendingPathComponent(format.rawValue)
                guard let files = try? FileManager.default.contentsOfDirectory(atPath: d.path) else { continue }
                for f in files.sorted() {
                    let data = try Data(contentsOf: d.appendingPathComponent(f))
                    do { _ = try FileProbe.read(format, data: data, path: "\(dir)/\(format.rawValue)/\(f)") } catch is JEMError {}
                    replayed += 1
                }
            }
        }
        XCTAssertGreaterThanOrEqual(replayed, 25, "the seed corpus is missing")
    }
}

final class ByteStreamAndAtomicFileTests: XCTestCase {
    func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        let p = tempPath("gz-\(bytes.count)")
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: "/bin/gzip")
        proc.arguments = ["-kf", p]
        try proc.run(); proc.waitUntilExit()
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: p + ".gz")))
    }

    func testGzipIsInflatedOnlyAsFarAsAsked() throws {
        // 50 MB of zeros compress to about 50 KB; reading a 16-byte header inflates little of it.
        let gz = try gzip([UInt8](repeating: 0, count: 50_000_000))
        let s = try ByteStream(bytes: gz, encoding: .gzip, path: "bomb.gz")
        XCTAssertEqual(s.declaredSize, 50_000_000)
        XCTAssertEqual(try s.read(16, what: "header"), [UInt8](repeating: 0, count: 16))
        XCTAssertThrowsError(try s.finish(what: "16 bytes")) { XCTAssertTrue("\($0)".contains("holds more than"), "\($0)") }
        XCTAssertThrowsError(try s.require(1 << 40, what: "a huge array")) { XCTAssertTrue("\($0)".contains("gzip bytes can hold"), "\($0)") }
    }

    func testGzipTrailerIsChecked() throws {
        var gz = try gzip(Array(0..<200).map { UInt8($0) })
        let s0 = try ByteStream(bytes: gz, encoding: .gzip, path: "ok.gz")
        XCTAssertEqual(try s0.read(200, what: "data"), Array(0..<200).map { UInt8($0) })
        XCTAssertNoThrow(try s0.finish(what: "data"))
        gz[gz.count - 8] ^= 0xFF                          // CRC-32
        let s = try ByteStream(bytes: gz, encoding: .gzip, path: "crc.gz")
        XCTAssertThrowsError(try { _ = try s.read(200, what: "data"); try s.finish(what: "data") }()) {
            XCTAssertTrue("\($0)".contains("crc.gz") && "\($0)".contains("incorrect data check"), "\($0)")
        }
    }

    func testGroupWritesAllOrNone() throws {
        let a = tempPath("group-a.txt")
        XCTAssertThrowsError(try AtomicFile.group { g in
            try g.write("a", to: a)
            try g.write("b", to: "/nonexistent-dir/b.txt")
        })
        XCTAssertFalse(FileManager.default.fileExists(atPath: a))
        let dir = (a as NSString).deletingLastPathComponent
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.hasPrefix("group-a.txt.tmp-") })
        try AtomicFile.group { g in try g.write("a", to: a) }
        XCTAssertEqual(try String(contentsOfFile: a, encoding: .utf8), "a")
    }

    func testStaleTemporaryFilesOfDeadProcessesAreRemoved() throws {
        let p = tempPath("stale.json")
        var dead: Int32 = 4_000_000
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        let stale = p + ".tmp-\(dead)", live = p + ".tmp-1"    // pid 1 is always running
        XCTAssertTrue(FileManager.default.createFile(atPath: stale, contents: Data("x".utf8)))
        XCTAssertTrue(FileManager.default.createFile(atPath: live, contents: Data("x".utf8)))
        try AtomicFile.write("{}", to: p)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
        XCTAssertTrue(FileManager.default.fileExists(atPath: live))
        unlink(live)
    }
}
