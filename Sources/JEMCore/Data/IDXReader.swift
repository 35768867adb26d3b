// IDXReader.swift: MNIST / Fashion-MNIST IDX files, gzip-compressed or raw, with their standard
// names (train-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz], ...). The header's magic and
// dimensions are checked against the data before any pixel is read.
import Foundation

public enum IDXReader {
    static func be32(_ b: [UInt8], _ o: Int) -> Int { Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3]) }

    /// Checks that the stream holds exactly `bytes` after its header (plain: the file size; gzip:
    /// the trailer's length), before anything is allocated.
    static func checkDeclared(_ s: ByteStream, header: Int, bytes: Int, what: String) throws {
        guard let declared = s.declaredSize else { return }
        let total = header + bytes
        let matches = s.encoding == .gzip ? (total & 0xFFFF_FFFF) == declared : total == declared
        guard matches else {
            let holds = s.encoding == .gzip ? "the gzip trailer says the data is \(declared) bytes" : "the file holds \(declared - header)"
            throw JEMError.badFile(path: s.path, reason: "header says \(what) (\(bytes) bytes), \(holds)")
        }
        try s.require(bytes, what: what)
    }

    /// Parses an idx3 image file (plain or gzip) into (N, 1, H, W) pixels in [0, 1].
    public static func parseImages(_ s: ByteStream) throws -> Tensor {
        let b = try s.read(16, what: "IDX header")
        let magic = be32(b, 0)
        guard magic == 0x0000_0803 else {
            throw JEMError.badFile(path: s.path, reason: String(format: "wrong magic 0x%08X, expected 0x00000803 (unsigned-byte images, 3 dimensions)", magic))
        }
        let (n, h, w) = (be32(b, 4), be32(b, 8), be32(b, 12))
        guard h > 0, w > 0 else { throw JEMError.badFile(path: s.path, reason: "bad dimensions \(n)×\(h)×\(w)") }
        let bytes = try Checked.byteCount([n, h, w], elementSize: 1, what: "IDX images", path: s.path)
        try checkDeclared(s, header: 16, bytes: bytes, what: "\(n) images of \(h)×\(w)")
        let t = Tensor(uninitialized: [n, 1, h, w])
        try s.forEachChunk(bytes, what: "\(n) images of \(h)×\(w)") { chunk, offset in
            let p = chunk.bindMemory(to: UInt8.self)
            for i in 0..<p.count { t.data[offset + i] = Float(p[i]) * (1.0 / 255.0) }
        }
        try s.finish(what: "\(n) images of \(h)×\(w)")
        return t
    }

    /// Parses an idx1 label file (plain or gzip); every label must be below `classes`.
    public static func parseLabels(_ s: ByteStream, classes: Int = 256) throws -> [Int] {
        let b = try s.read(8, what: "IDX header")
        let magic = be32(b, 0)
        guard magic == 0x0000_0801 else {
            throw JEMError.badFile(path: s.path, reason: String(format: "wrong magic 0x%08X, expected 0x00000801 (unsigned-byte labels, 1 dimension)", magic))
        }
        let n = be32(b, 4)
        try checkDeclared(s, header: 8, bytes: n, what: "\(n) labels")
        let raw = try s.read(n, what: "\(n) labels")
        try s.finish(what: "\(n) labels")
        if let i = raw.firstIndex(where: { Int($0) >= classes }) {
            throw JEMError.badFile(path: s.path, reason: "label \(raw[i]) at index \(i) is out of range 0..<\(classes)")
        }
        return raw.map { Int($0) }
    }

    /// Finds `stem` or `stem.gz` in dir.
    static func find(_ dir: String, _ stem: String) throws -> String {
        for name in [stem + ".gz", stem, stem.replacingOccurrences(of: "-idx", with: ".idx") + ".gz", stem.replacingOccurrences(of: "-idx", with: ".idx")] {
            let p = (dir as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        throw JEMError.io(path: dir, reason: "missing \(stem)[.gz] (expected the standard IDX file names)")
    }

    /// Parses an idx3 image file into (N, 1, H, W) pixels in [0, 1].
    public static func parseImages(_ b: [UInt8], path: String) throws -> Tensor {
        guard b.count >= 16 else { throw JEMError.badFile(path: path, reason: "truncated IDX header (\(b.count) bytes)") }
        let magic = be32(b, 0)
        guard magic == 0x0000_0803 else {
            throw JEMError.badFile(path: path, reason: String(format: "wrong magic 0x%08X, expected 0x00000803 (unsigned-byte images, 3 dimensions)", magic))
        }
        let (n, h, w) = (be32(b, 4), be32(b, 8), be32(b, 12))
        guard h > 0, w > 0, n >= 0 else { throw JEMError.badFile(path: path, reason: "bad dimensions \(n)×\(h)×\(w)") }
        guard b.count - 16 == n * h * w else {
            throw JEMError.badFile(path: path, reason: "header says \(n) images of \(h)×\(w) (\(n * h * w) bytes), file holds \(b.count - 16) bytes")
        }
        let t = Tensor(shape: [n, 1, h, w])
        b.withUnsafeBufferPointer { p in
            for i in 0..<(n * h * w) { t.data[i] = Float(p[16 + i]) * (1.0 / 255.0) }
        }
        return t
    }

    public static func parseLabels(_ b: [UInt8], path: String) throws -> [Int] {
        guard b.count >= 8 else { throw JEMError.badFile(path: path, reason: "truncated IDX header (\(b.count) bytes)") }
        let magic = be32(b, 0)
        guard magic == 0x0000_0801 else {
            throw JEMError.badFile(path: path, reason: String(format: "wrong magic 0x%08X, expected 0x00000801 (unsigned-byte labels, 1 dimension)", magic))
        }
        let n = be32(b, 4)
        guard b.count - 8 == n else {
            throw JEMError.badFile(path: path, reason: "header says \(n) labels, file holds \(b.count - 8)")
        }
        return b[8...].map { Int($0) }
    }

    public static func load(dir: String, split: Split, name: String) throws -> Dataset {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            let hint = dir == DataSpec.fashionMNISTDefaultDir ? " (install Debian's dataset-fashion-mnist: bash scripts/setup.sh)" : ""
            throw JEMError.io(path: dir, reason: "not a directory\(hint)")
        }
        let prefix = split == .train ? "train" : "t10k"
        let ip = try find(dir, "\(prefix)-images-idx3-ubyte"), lp = try find(dir, "\(prefix)-labels-idx1-ubyte")
        let y = try parseLabels(try ByteStream(path: lp), classes: 10)
        let x = try parseImages(try ByteStream(path: ip))
        guard x.shape[0] == y.count else {
            throw JEMError.badFile(path: lp, reason: "\(y.count) labels for \(x.shape[0]) images in \(ip)")
        }
        return try Dataset(images: x, labels: y, numClasses: 10, name: "\(name) \(split.rawValue)")
    }
}
