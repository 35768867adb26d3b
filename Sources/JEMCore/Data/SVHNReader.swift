// SVHNReader.swift: the cropped-digits SVHN files (train_32x32.mat, test_32x32.mat): MATLAB
// level-5 MAT-files holding X (32×32×3×N uint8, column-major) and y (N×1, label 10 meaning
// digit 0), with elements stored plainly or zlib-compressed (miCOMPRESSED).
// Every tag's size is checked against what is left of the file (or of the compressed element's
// plausible contents) before it is read; a compressed variable is inflated only as far as its
// name when it is not one of the variables wanted, and only up to its declared size when it is.
import Foundation

public enum SVHNReader {
    static let miINT8: UInt32 = 1, miUINT8: UInt32 = 2, miINT16: UInt32 = 3, miUINT16: UInt32 = 4, miINT32: UInt32 = 5,
               miUINT32: UInt32 = 6, miSINGLE: UInt32 = 7, miDOUBLE: UInt32 = 9, miINT64: UInt32 = 12, miUINT64: UInt32 = 13,
               miMATRIX: UInt32 = 14, miCOMPRESSED: UInt32 = 15

    /// A numeric MATLAB array: dimensions (column-major), element type and raw little-endian bytes.
    struct MatArray {
        var dims: [Int]; var type: UInt32; var raw: [UInt8]
        var count: Int { raw.count / SVHNReader.size(of: type)! }

        func value(_ i: Int) -> Double {
            raw.withUnsafeBytes { p in
                switch type {
                case miUINT8: return Double(p[i])
                case miINT8: return Double(Int8(bitPattern: p[i]))
                case miINT16: return Double(Int16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
                case miUINT16: return Double(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                case miINT32: return Double(Int32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                case miUINT32: return Double(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                case miSINGLE: return Double(Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))))
                case miDOUBLE: return Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                case miINT64: return Double(Int64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                default: return Double(UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                }
            }
        }
    }

    static func size(of type: UInt32) -> Int? {
        switch type {
        case miINT8, miUINT8: return 1
        case miINT16, miUINT16: return 2
        case miINT32, miUINT32, miSINGLE: return 4
        case miDOUBLE, miINT64, miUINT64: return 8
        default: return nil
        }
    }

    static func u32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }

    /// An element tag: the type, the byte count, and the data itself when it is a small element
    /// (2-byte count, 2-byte type, up to 4 bytes of data in the tag).
    struct Tag { var type: UInt32; var n: Int; var small: [UInt8]? }

    static func readTag(_ s: ByteStream, what: String) throws -> Tag {
        let b = try s.read(8, what: "\(what) tag")
        let t = u32(b, 0)
        if t >> 16 != 0 {
            let n = Int(t >> 16)
            guard n <= 4 else { throw JEMError.badFile(path: s.path, reason: "\(what): small element claims \(n) bytes (at most 4)") }
            return Tag(type: t & 0xFFFF, n: n, small: Array(b[4..<(4 + n)]))
        }
        return Tag(type: t, n: Int(u32(b, 4)), small: nil)
    }

    /// A short element's data (array flags, dimensions, name), at most `limit` bytes, then its padding.
    static func readShort(_ s: ByteStream, _ tag: Tag, limit: Int, what: String) throws -> [UInt8] {
        if let small = tag.small { return small }
        guard tag.n <= limit else { throw JEMError.badFile(path: s.path, reason: "\(what) is \(tag.n) bytes (at most \(limit) expected)") }
        let d = try s.read(tag.n, what: what)
        try s.skip((8 - tag.n % 8) % 8, what: "\(what) padding")
        return d
    }

    /// Parses one miMATRIX element (its tag already read, payload `n` bytes) from the stream.
    /// Returns nil, having read only its header, when it is not numeric or not in `wanted`.
    static func parseMatrix(_ s: ByteStream, n: Int, wanted: Set<String>) throws -> (String, MatArray)? {
        let start = s.position
        let flagsTag = try readTag(s, what: "array flags")
        let flags = try readShort(s, flagsTag, limit: 16, what: "array flags")
        guard flags.count >= 4 else { throw JEMError.badFile(path: s.path, reason: "array flags hold \(flags.count) bytes, expected 8") }
        let cls = u32(flags, 0) & 0xFF
        let dimsTag = try readTag(s, what: "dimensions")
        let dimBytes = try readShort(s, dimsTag, limit: 4 * 32, what: "dimensions")
        guard dimBytes.count % 4 == 0, dimBytes.count >= 8 else {
            throw JEMError.badFile(path: s.path, reason: "dimensions element holds \(dimBytes.count) bytes, expected at least two int32")
        }
        let dims = (0..<(dimBytes.count / 4)).map { Int(Int32(bitPattern: u32(dimBytes, 4 * $0))) }
        let nameTag = try readTag(s, what: "array name")
        let name = String(decoding: try readShort(s, nameTag, limit: 4096, what: "array name"), as: UTF8.self)
        guard (6...15).contains(cls), wanted.contains(name) else { return nil }   // numeric classes: double ... uint64
        let count = try Checked.elementCount(dims, what: "variable \(name)", path: s.path)
        let re = try readTag(s, what: "variable \(name) data")
        guard let size = size(of: re.type) else {
            throw JEMError.badFile(path: s.path, reason: "variable \(name): unsupported data type \(re.type)")
        }
        let need = try Checked.byteCount(dims, elementSize: size, what: "variable \(name)", path: s.path)
        guard re.n == need else {
            throw JEMError.badFile(path: s.path, reason: "variable \(name): dimensions \(dims) need \(need) bytes, element holds \(re.n)")
        }
        guard s.position - start + need <= n else {
            throw JEMError.badFile(path: s.path, reason: "variable \(name): its data (\(need) bytes) runs past the \(n)-byte array element")
        }
        let raw = try re.small ?? s.read(need, what: "variable \(name) (\(count) values)")
        return (name, MatArray(dims: dims, type: re.type, raw: raw))
    }

    /// The numeric variables named in `wanted` of a level-5 MAT-file held in `bytes`.
    static func variables(bytes: [UInt8], path: String, wanted: Set<String>) throws -> [String: MatArray] {
        guard bytes.count >= 128 else { throw JEMError.badFile(path: path, reason: "not a MATLAB v5 file (\(bytes.count) bytes, header is 128)") }
        guard bytes[126] == UInt8(ascii: "I") && bytes[127] == UInt8(ascii: "M") else {
            throw JEMError.badFile(path: path, reason: "not a little-endian MATLAB v5 file (bad endian indicator; v7.3/HDF5 files are not supported)")
        }
        var vars: [String: MatArray] = [:]
        var o = 128
        while o + 8 <= bytes.count {
            let type = u32(bytes, o)
            guard type >> 16 == 0 else { throw JEMError.badFile(path: path, reason: "unexpected small element at byte \(o) (top-level elements are arrays)") }
            let n = Int(u32(bytes, o + 4))
            guard n <= bytes.count - o - 8 else {
                throw JEMError.badFile(path: path, reason: "element at byte \(o) declares \(n) bytes, only \(bytes.count - o - 8) remain (truncated?)")
            }
            let payload = bytes[(o + 8)..<(o + 8 + n)]
            if type == miCOMPRESSED {
                let s = try ByteStream(bytes: payload, encoding: .zlib, path: path)
                let inner = try readTag(s, what: "compressed element at byte \(o)")
                if inner.type == miMATRIX, inner.small == nil, inner.n > 0 {
                    try s.require(inner.n, what: "compressed array at byte \(o)")
                    if let (name, a) = try parseMatrix(s, n: inner.n, wanted: wanted) {
                        vars[name] = a
                        try s.finish(what: "variable \(name)", slack: max(0, inner.n - (s.position - 8)) + 7)
                    }
                }
                o += 8 + n
            } else {
                if type == miMATRIX, n > 0 {
                    let s = try ByteStream(bytes: payload, encoding: .plain, path: path)
                    if let (name, a) = try parseMatrix(s, n: n, wanted: wanted) { vars[name] = a }
                }
                let (next, ovf) = (o + 8).addingReportingOverflow((n + 7) / 8 * 8)
                guard !ovf else { break }
                o = next
            }
        }
        return vars
    }

    public static func parse(bytes: [UInt8], path: String) throws -> Dataset {
        let v = try variables(bytes: bytes, path: path, wanted: ["X", "y"])
        guard let x = v["X"] else { throw JEMError.badFile(path: path, reason: "no variable X (expected the 32×32×3×N image array of the cropped-digits format)") }
        guard let y = v["y"] else { throw JEMError.badFile(path: path, reason: "no variable y (expected the N×1 label array)") }
        guard x.dims.count == 4, x.dims[2] == 3 || x.dims[2] == 1 else {
            throw JEMError.badFile(path: path, reason: "X has dimensions \(x.dims), expected H×W×C×N")
        }
        let (h, w, c, n) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3])
        guard h > 0, w > 0 else { throw JEMError.badFile(path: path, reason: "X has dimensions \(x.dims): images of size 0") }
        guard y.count == n else { throw JEMError.badFile(path: path, reason: "\(y.count) labels in y for \(n) images in X") }
        let labels = try (0..<n).map { i -> Int in
            let v = y.value(i)
            guard v == v.rounded(), v >= 0, v <= 10 else { throw JEMError.badFile(path: path, reason: "label \(v) at index \(i) is out of range 0…10") }
            return Int(v) % 10
        }
        let t = Tensor(uninitialized: [n, c, h, w])
        // Column-major: element (r, q, k, i) sits at r + h·(q + w·(k + c·i)).
        if x.type == miUINT8 {
            x.raw.withUnsafeBufferPointer { p in
                for i in 0..<n { for k in 0..<c { for q in 0..<w { for r in 0..<h {
                    t.data[((i * c + k) * h + r) * w + q] = Float(p[r + h * (q + w * (k + c * i))]) * (1.0 / 255.0)
                } } } }
            }
        } else {
            for i in 0..<n { for k in 0..<c { for q in 0..<w { for r in 0..<h {
                let v = x.value(r + h * (q + w * (k + c * i)))
                guard v >= 0, v <= 255 else { throw JEMError.badFile(path: path, reason: "X holds \(v) at image \(i); pixels must lie in 0…255") }
                t.data[((i * c + k) * h + r) * w + q] = Float(v / 255)
            } } } }
        }
        return try Dataset(images: t, labels: labels, numClasses: 10, name: "svhn \((path as NSString).lastPathComponent)")
    }

    public static func load(path: String) throws -> Dataset {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw JEMError.io(path: path, reason: "cannot read file (missing or not readable)")
        }
        return try parse(bytes: [UInt8](d), path: path)
    }
}
