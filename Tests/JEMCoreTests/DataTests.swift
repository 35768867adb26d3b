// DataTests.swift: every data-set format on small files written here in its real layout (gzip and
// raw IDX, CIFAR-10/100 binaries, MATLAB v5 with plain and zlib-compressed elements, .npy), the
// real Fashion-MNIST test split, and a clear error for each kind of bad file.
import CZlib
import Foundation
import XCTest
@testable import JEMCore

final class DataTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = tempPath("data-\(name.filter { $0.isLetter })")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func p(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    /// Writes a fixture file, failing the test if it cannot.
    func save(atPath path: String, contents: Data?) {
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: contents), "cannot write \(path)")
    }

    func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    func le32(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }

    func writeGzip(_ bytes: [UInt8], to path: String) {
        let gz = gzopen(path, "wb")!
        _ = bytes.withUnsafeBytes { gzwrite(gz, $0.baseAddress, UInt32($0.count)) }
        gzclose(gz)
    }

    /// n images of h×w with pixel (i, j) = (i*7 + j) % 256, labels i % 10.
    func writeIDX(split: String, n: Int, h: Int = 3, w: Int = 2, gzip: Bool, labelCount: Int? = nil, magic: Int = 0x803) {
        var img = be32(magic) + be32(n) + be32(h) + be32(w)
        for i in 0..<n { for j in 0..<(h * w) { img.append(UInt8((i * 7 + j) % 256)) } }
        let ln = labelCount ?? n
        let lab = be32(0x801) + be32(ln) + (0..<ln).map { UInt8($0 % 10) }
        let pre = split == "train" ? "train" : "t10k"
        if gzip {
            writeGzip(img, to: p("\(pre)-images-idx3-ubyte.gz")); writeGzip(lab, to: p("\(pre)-labels-idx1-ubyte.gz"))
        } else {
            save(atPath: p("\(pre)-images-idx3-ubyte"), contents: Data(img))
            save(atPath: p("\(pre)-labels-idx1-ubyte"), contents: Data(lab))
        }
    }

    func assertError(_ body: @autoclosure () throws -> Any, _ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            for s in parts { XCTAssertTrue("\(e)".contains(s), "'\(e)' lacks '\(s)'", file: file, line: line) }
        }
    }

    // MARK: formats

    func testIDXGzipAndRaw() throws {
        for gz in [true, false] {
            try setUpWithError()
            writeIDX(split: "test", n: 5, gzip: gz)
            let d = try DataSpec.parse("mnist:\(dir)").load(split: .test)
            XCTAssertEqual(d.images.shape, [5, 1, 3, 2]); XCTAssertEqual(d.labels, [0, 1, 2, 3, 4])
            XCTAssertEqual(d.images[6 + 1], Float(8) / 255, accuracy: 1e-7)   // image 1, pixel 1
        }
    }

    func testCIFAR10And100() throws {
        var rec: [UInt8] = []
        for i in 0..<3 { rec.append(UInt8(i)); rec += (0..<3072).map { UInt8(($0 + i) % 256) } }
        for b in 1...5 { save(atPath: p("data_batch_\(b).bin"), contents: Data(rec)) }
        save(atPath: p("test_batch.bin"), contents: Data(rec))
        let tr = try DataSpec.parse("cifar10:\(dir)").load(split: .train)
        XCTAssertEqual(tr.images.shape, [15, 3, 32, 32]); XCTAssertEqual(tr.labels.prefix(3), [0, 1, 2])
        XCTAssertEqual(tr.images[3072 + 1024], Float(1025 % 256) / 255, accuracy: 1e-7)   // image 1, channel 1, pixel 0
        var rec100: [UInt8] = []
        for i in 0..<2 { rec100 += [UInt8(i + 3), UInt8(i + 50)]; rec100 += [UInt8](repeating: 9, count: 3072) }
        save(atPath: p("test.bin"), contents: Data(rec100))
        XCTAssertEqual(try DataSpec.parse("cifar100:\(dir)").load(split: .test).labels, [50, 51])
        let coarse = try DataSpec.parse("cifar100:\(dir):coarse").load(split: .test)
        XCTAssertEqual(coarse.labels, [3, 4]); XCTAssertEqual(coarse.numClasses, 20)
    }

    /// A level-5 MAT-file with X (h×w×3×n uint8) and y (n×1 double), elements optionally compressed.
    func matFile(n: Int, h: Int = 2, w: Int = 2, compressed: Bool, names: (String, String) = ("X", "y"), labels: [Double]? = nil) -> Data {
        func element(_ type: Int, _ payload: [UInt8]) -> [UInt8] {
            var e = le32(type) + le32(payload.count) + payload
            while e.count % 8 != 0 { e.append(0) }
            return e
        }
        func matrix(_ name: String, cls: Int, dims: [Int], type: Int, data: [UInt8]) -> [UInt8] {
            let body = element(6, le32(cls) + le32(0)) + element(5, dims.flatMap { le32($0) }) + element(1, Array(name.utf8)) + element(type, data)
            return element(14, body)
        }
        var x: [UInt8] = []
        // Column-major values: element (r,q,k,i) = r + 2q + 4k + 16i.
        for idx in 0..<(h * w * 3 * n) {
            let r = idx % h, q = (idx / h) % w, k = (idx / (h * w)) % 3, i = idx / (h * w * 3)
            x.append(UInt8(r + 2 * q + 4 * k + 16 * i))
        }
        let ys = labels ?? (0..<n).map { Double($0 == 0 ? 10 : $0) }
        let y = ys.flatMap { v -> [UInt8] in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        var out = [UInt8](repeating: 0x20, count: 116) + [UInt8](repeating: 0, count: 8) + [0x00, 0x01, UInt8(ascii: "I"), UInt8(ascii: "M")]
        for m in [matrix(names.0, cls: 9, dims: [h, w, 3, n], type: 2, data: x), matrix(names.1, cls: 6, dims: [ys.count, 1], type: 9, data: y)] {
            if compressed {
                var len = compressBound(uLong(m.count))
                var buf = [UInt8](repeating: 0, count: Int(len))
                _ = compress2(&buf, &len, m, uLong(m.count), 6)
                out += le32(15) + le32(Int(len)) + buf[0..<Int(len)]
            } else { out += m }
        }
        return Data(out)
    }

    func testSVHNPlainAndCompressed() throws {
        for c in [false, true] {
            let path = p("s\(c).mat")
            save(atPath: path, contents: matFile(n: 3, compressed: c))
            let d = try DataSpec.parse("svhn:\(path)").load(split: .test)
            XCTAssertEqual(d.images.shape, [3, 3, 2, 2])
            XCTAssertEqual(d.labels, [0, 1, 2], "label 10 is digit 0")
            // image 1, channel 2, row 1, col 0 = 1 + 0 + 8 + 16
            XCTAssertEqual(d.images[((1 * 3 + 2) * 2 + 1) * 2 + 0], Float(25) / 255, accuracy: 1e-7)
        }
    }

    func testNpyLayoutsAndDtypes() throws {
        let nchw = p("a.npy"), nhwc = p("b.npy"), lab = p("l.npy")
        let t = Tensor(shape: [2, 3, 2, 2]); for i in 0..<t.count { t[i] = Float(i) / 23 }
        try NpyArray.write(t, to: nchw)
        let u8 = NpyArray.encode(shape: [2, 2, 2, 3], dtype: .u1) { d in for i in 0..<24 { d.append(UInt8(i * 10)) } }
        try AtomicFile.write(u8, to: nhwc)
        try NpyArray.write([1, 0], to: lab)
        let a = try DataSpec.parse("npy:\(nchw),\(lab)").load(split: .test)
        XCTAssertEqual(a.images.array, t.array); XCTAssertEqual(a.labels, [1, 0])
        XCTAssertTrue(a.notes[0].contains("NCHW"))
        let b = try DataSpec.parse("npy:\(nhwc)").load(split: .test)
        XCTAssertEqual(b.images.shape, [2, 3, 2, 2]); XCTAssertTrue(b.notes[0].contains("NHWC"))
        XCTAssertEqual(b.images[1 * 4], Float(10) / 255, accuracy: 1e-7)   // channel 1 of pixel 0 = element 1
    }

    func testRealFashionMNISTTestSplit() throws {
        let t0 = Date()
        let d = try DataSpec.parse("fashion-mnist").load(split: .test)
        XCTAssertEqual(d.images.shape, [10000, 1, 28, 28])
        XCTAssertEqual(d.classHistogram, Array(repeating: 1000, count: 10))
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10, "debug-build read")
    }

    func testSubsetPadAndChannels() throws {
        writeIDX(split: "test", n: 6, gzip: true)
        let d = try DataSpec.parse("mnist:\(dir)").load(split: .test)
        XCTAssertEqual(try d.subset(offset: 2, limit: 3, shuffleSeed: nil).labels, [2, 3, 4])
        XCTAssertEqual(try d.subset(offset: 0, limit: 6, shuffleSeed: 4).labels.sorted(), [0, 1, 2, 3, 4, 5])
        let a = try d.adapted(toChannels: 3, toSize: 5)
        XCTAssertEqual(a.images.shape, [6, 3, 5, 5])
        XCTAssertEqual(a.images[1 * 5 + 1], d.images[0])   // top-left pixel moved by the centred pad
    }

    // MARK: bad files

    func testBadIDX() throws {
        writeIDX(split: "test", n: 4, gzip: false, magic: 0x802)
        assertError(try DataSpec.parse("mnist:\(dir)").load(split: .test), ["t10k-images-idx3-ubyte", "wrong magic"])
        try setUpWithError()
        writeIDX(split: "test", n: 4, gzip: true, labelCount: 3)
        assertError(try DataSpec.parse("mnist:\(dir)").load(split: .test), ["3 labels for 4 images"])
        try setUpWithError()
        writeIDX(split: "test", n: 4, gzip: false)
        let ip = p("t10k-images-idx3-ubyte")
        let full = try Data(contentsOf: URL(fileURLWithPath: ip))
        try full.prefix(full.count - 5).write(to: URL(fileURLWithPath: ip))
        assertError(try DataSpec.parse("mnist:\(dir)").load(split: .test), [ip, "header says 4 images"])
        try setUpWithError()
        writeIDX(split: "test", n: 12, gzip: false)
        var lab = be32(0x801) + be32(12) + [UInt8](repeating: 0, count: 12); lab[10] = 11
        save(atPath: p("t10k-labels-idx1-ubyte"), contents: Data(lab))
        assertError(try DataSpec.parse("mnist:\(dir)").load(split: .test), ["label 11 at index 2 is out of range"])
        try FileManager.default.removeItem(atPath: p("t10k-labels-idx1-ubyte"))
        assertError(try DataSpec.parse("mnist:\(dir)").load(split: .test), [dir, "missing t10k-labels-idx1-ubyte"])
    }

    func testBadCIFARAndSVHNAndNpy() throws {
        save(atPath: p("test_batch.bin"), contents: Data(repeating: 0, count: 3073 * 2 + 5))
        assertError(try DataSpec.parse("cifar10:\(dir)").load(split: .test), ["test_batch.bin", "not a whole number of 3073-byte records"])
        assertError(try DataSpec.parse("cifar10:\(dir)").load(split: .train), [dir, "missing data_batch_1.bin"])
        var rec = [UInt8](repeating: 0, count: 3073); rec[0] = 12
        save(atPath: p("test_batch.bin"), contents: Data(rec))
        assertError(try DataSpec.parse("cifar10:\(dir)").load(split: .test), ["label 12 out of range"])
        let m = p("noX.mat")
        save(atPath: m, contents: matFile(n: 2, compressed: true, names: ("Z", "y")))
        assertError(try DataSpec.parse("svhn:\(m)").load(split: .test), [m, "no variable X"])
        save(atPath: m, contents: matFile(n: 2, compressed: false, labels: [1, 2, 3]))
        assertError(try DataSpec.parse("svhn:\(m)").load(split: .test), [m, "3 labels in y for 2 images"])
        let whole = matFile(n: 2, compressed: false)
        save(atPath: m, contents: whole.prefix(200))
        assertError(try DataSpec.parse("svhn:\(m)").load(split: .test), [m, "truncated"])
        let img = p("i.npy"), lab = p("l.npy")
        try NpyArray.write(Tensor(shape: [3, 1, 2, 2], repeating: 0.5), to: img)
        try NpyArray.write([0, 1], to: lab)
        assertError(try DataSpec.parse("npy:\(img),\(lab)").load(split: .test), [lab, "2 labels for 3 images"])
        try NpyArray.write(Tensor(shape: [2, 3, 4, 3], repeating: 0.5), to: img)
        assertError(try DataSpec.parse("npy:\(img)").load(split: .test), ["ambiguous", "--layout"])
        assertError(try DataSpec.parse("imagenet:/x"), ["unknown data set 'imagenet'"])
    }
}
