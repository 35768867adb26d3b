// IDXReader.swift: MNIST / Fashion-MNIST IDX files, gzip-compressed or raw, with their standard
// names (train-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz], ...). The header's magic and
// dimensions are checked against the data before any pixel is read.
import CZlib
import Foundation

public enum IDXReader {
    /// The whole file, gunzipped if it starts with the gzip magic.
    static func readMaybeGzip(_ path: String) throws -> [UInt8] {
        guard let raw = FileManager.default.contents(atPath: path) else {
            throw JEMError.io(path: path, reason: "cannot read file (missing or not readable)")
        }
        if raw.count >= 2 && raw[raw.startIndex] == 0x1F && raw[raw.startIndex + 1] == 0x8B {
            guard let gz = gzopen(path, "rb") else { throw JEMError.io(path: path, reason: "cannot open gzip stream") }
            defer { gzclose(gz) }
            var out = [UInt8]()
            out.reserveCapacity(raw.count * 4)
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = chunk.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32($0.count)) }
                if n < 0 { throw JEMError.badFile(path: path, reason: "corrupt gzip data") }
                if n == 0 { break }
                out.append(contentsOf: chunk[0..<Int(n)])
            }
            return out
        }
        return [UInt8](raw)
    }

    static func be32(_ b: [UInt8], _ o: Int) -> Int { Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3]) }

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
        let x = try parseImages(try readMaybeGzip(ip), path: ip)
        let y = try parseLabels(try readMaybeGzip(lp), path: lp)
        guard x.shape[0] == y.count else {
            throw JEMError.badFile(path: lp, reason: "\(y.count) labels for \(x.shape[0]) images in \(ip)")
        }
        if let bad = y.first(where: { $0 > 9 }) { throw JEMError.badFile(path: lp, reason: "label \(bad) out of range 0..<10") }
        return try Dataset(images: x, labels: y, numClasses: 10, name: "\(name) \(split.rawValue)")
    }
}
