// SVHNReader.swift: the cropped-digits SVHN files (train_32x32.mat, test_32x32.mat): MATLAB
// level-5 MAT-files holding X (32×32×3×N uint8, column-major) and y (N×1, label 10 meaning
// digit 0), with elements stored plainly or zlib-compressed (miCOMPRESSED).
import CZlib
import Foundation

public enum SVHNReader {
    static let miINT8: UInt32 = 1, miUINT8: UInt32 = 2, miINT16: UInt32 = 3, miUINT16: UInt32 = 4, miINT32: UInt32 = 5,
               miUINT32: UInt32 = 6, miSINGLE: UInt32 = 7, miDOUBLE: UInt32 = 9, miINT64: UInt32 = 12, miUINT64: UInt32 = 13,
               miMATRIX: UInt32 = 14, miCOMPRESSED: UInt32 = 15

    /// A numeric MATLAB array: dimensions (column-major) and values.
    struct MatArray { var dims: [Int]; var values: [Double] }

    struct Reader {
        let b: [UInt8]; var pos: Int; let path: String
        func u32(_ o: Int) -> UInt32 { UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24 }

        /// Reads one element tag: (type, byte count, data offset, offset after padding).
        func tag(at o: Int) throws -> (type: UInt32, n: Int, data: Int, next: Int) {
            guard o + 8 <= b.count else { throw JEMError.badFile(path: path, reason: "truncated element tag at byte \(o)") }
            let t = u32(o)
            if t >> 16 != 0 {   // small data element: 2-byte count, 2-byte type, 4 bytes of data
                return (t & 0xFFFF, Int(t >> 16), o + 4, o + 8)
            }
            let n = Int(u32(o + 4))
            guard o + 8 + n <= b.count else {
                throw JEMError.badFile(path: path, reason: "element at byte \(o) declares \(n) bytes, only \(b.count - o - 8) remain (truncated?)")
            }
            return (t, n, o + 8, t == miCOMPRESSED ? o + 8 + n : o + 8 + (n + 7) / 8 * 8)
        }
    }

    static func inflate(_ data: ArraySlice<UInt8>, path: String) throws -> [UInt8] {
        var stream = z_stream()
        guard inflateInit_(&stream, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw JEMError.badFile(path: path, reason: "cannot initialise zlib")
        }
        defer { inflateEnd(&stream) }
        var input = Array(data)
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var status: Int32 = Z_OK
        try input.withUnsafeMutableBufferPointer { inp in
            stream.next_in = inp.baseAddress
            stream.avail_in = uInt(inp.count)
            repeat {
                try chunk.withUnsafeMutableBufferPointer { c in
                    stream.next_out = c.baseAddress
                    stream.avail_out = uInt(c.count)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    guard status == Z_OK || status == Z_STREAM_END else {
                        throw JEMError.badFile(path: path, reason: "corrupt compressed element (zlib error \(status))")
                    }
                    out.append(contentsOf: c[0..<(c.count - Int(stream.avail_out))])
                }
            } while status != Z_STREAM_END && (stream.avail_in > 0 || stream.avail_out == 0)
        }
        guard status == Z_STREAM_END else { throw JEMError.badFile(path: path, reason: "truncated compressed element") }
        return out
    }

    /// Parses a miMATRIX element's payload into (name, array), or nil for non-numeric classes.
    static func parseMatrix(_ b: [UInt8], from start: Int, path: String) throws -> (String, MatArray)? {
        let r = Reader(b: b, pos: start, path: path)
        var o = start
        let flags = try r.tag(at: o); o = flags.next
        guard flags.n >= 8 else { throw JEMError.badFile(path: path, reason: "bad array flags") }
        let cls = r.u32(flags.data) & 0xFF
        let dimsTag = try r.tag(at: o); o = dimsTag.next
        let dims = (0..<(dimsTag.n / 4)).map { Int(Int32(bitPattern: r.u32(dimsTag.data + 4 * $0))) }
        let nameTag = try r.tag(at: o); o = nameTag.next
        let name = String(decoding: b[nameTag.data..<(nameTag.data + nameTag.n)], as: UTF8.self)
        guard (6...15).contains(cls) else { return nil }   // numeric classes only (double ... uint64)
        let re = try r.tag(at: o)
        let count = dims.reduce(1, *)
        guard dims.allSatisfy({ $0 >= 0 }) else { throw JEMError.badFile(path: path, reason: "variable \(name): negative dimension \(dims)") }
        let size: Int
        switch re.type {
        case miINT8, miUINT8: size = 1
        case miINT16, miUINT16: size = 2
        case miINT32, miUINT32, miSINGLE: size = 4
        case miDOUBLE, miINT64, miUINT64: size = 8
        default: throw JEMError.badFile(path: path, reason: "variable \(name): unsupported data type \(re.type)")
        }
        guard re.n == count * size else {
            throw JEMError.badFile(path: path, reason: "variable \(name): dimensions \(dims) need \(count * size) bytes, element holds \(re.n)")
        }
        var v = [Double](repeating: 0, count: count)
        b.withUnsafeBytes { raw in
            let p = raw.baseAddress! + re.data
            for i in 0..<count {
                switch re.type {
                case miUINT8: v[i] = Double(p.load(fromByteOffset: i, as: UInt8.self))
                case miINT8: v[i] = Double(p.load(fromByteOffset: i, as: Int8.self))
                case miINT16: v[i] = Double(Int16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
                case miUINT16: v[i] = Double(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                case miINT32: v[i] = Double(Int32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                case miUINT32: v[i] = Double(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                case miSINGLE: v[i] = Double(Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))))
                case miDOUBLE: v[i] = Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                case miINT64: v[i] = Double(Int64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                default: v[i] = Double(UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                }
            }
        }
        return (name, MatArray(dims: dims, values: v))
    }

    /// All numeric variables of a level-5 MAT-file.
    static func variables(path: String) throws -> [String: MatArray] {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw JEMError.io(path: path, reason: "cannot read file (missing or not readable)")
        }
        let b = [UInt8](d)
        guard b.count >= 128 else { throw JEMError.badFile(path: path, reason: "not a MATLAB v5 file (\(b.count) bytes, header is 128)") }
        guard b[126] == UInt8(ascii: "I") && b[127] == UInt8(ascii: "M") else {
            throw JEMError.badFile(path: path, reason: "not a little-endian MATLAB v5 file (bad endian indicator; v7.3/HDF5 files are not supported)")
        }
        var vars: [String: MatArray] = [:]
        func walk(_ buf: [UInt8], from start: Int) throws {
            let r = Reader(b: buf, pos: start, path: path)
            var o = start
            while o + 8 <= buf.count {
                let t = try r.tag(at: o)
                if t.type == miCOMPRESSED {
                    try walk(try inflate(buf[t.data..<(t.data + t.n)], path: path), from: 0)
                } else if t.type == miMATRIX, t.n > 0 {
                    if let (name, a) = try parseMatrix(buf, from: t.data, path: path) { vars[name] = a }
                }
                o = t.next
            }
        }
        try walk(b, from: 128)
        return vars
    }

    public static func load(path: String) throws -> Dataset {
        let v = try variables(path: path)
        guard let x = v["X"] else { throw JEMError.badFile(path: path, reason: "no variable X (expected the 32×32×3×N image array of the cropped-digits format)") }
        guard let y = v["y"] else { throw JEMError.badFile(path: path, reason: "no variable y (expected the N×1 label array)") }
        guard x.dims.count == 4, x.dims[2] == 3 || x.dims[2] == 1 else {
            throw JEMError.badFile(path: path, reason: "X has dimensions \(x.dims), expected H×W×C×N")
        }
        let (h, w, c, n) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3])
        guard y.values.count == n else { throw JEMError.badFile(path: path, reason: "\(y.values.count) labels in y for \(n) images in X") }
        let t = Tensor(shape: [n, c, h, w])
        // Column-major: element (r, q, k, i) sits at r + h·(q + w·(k + c·i)).
        for i in 0..<n { for k in 0..<c { for q in 0..<w { for r in 0..<h {
            t.data[((i * c + k) * h + r) * w + q] = Float(x.values[r + h * (q + w * (k + c * i))] / 255)
        } } } }
        let labels = try y.values.map { v -> Int in
            guard v == v.rounded(), v >= 0, v <= 10 else { throw JEMError.badFile(path: path, reason: "label \(v) out of range 0…10") }
            return Int(v) % 10
        }
        return try Dataset(images: t, labels: labels, numClasses: 10, name: "svhn \((path as NSString).lastPathComponent)")
    }
}
