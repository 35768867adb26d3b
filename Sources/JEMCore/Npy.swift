// Npy.swift: NumPy .npy arrays (format versions 1–3, C order) of float32, float64, uint8, int32
// and int64, little-endian, read into float or integer storage and written as float32/int64.
import Foundation

public struct NpyArray {
    public enum DType: String { case f4 = "<f4", f8 = "<f8", u1 = "|u1", i4 = "<i4", i8 = "<i8" }
    public let shape: [Int]
    public let dtype: DType
    /// Values as Double (exact for every supported dtype's range used here).
    public let values: [Double]

    public var count: Int { values.count }

    public init(shape: [Int], dtype: DType, values: [Double]) {
        self.shape = shape; self.dtype = dtype; self.values = values
    }

    public static func read(path: String) throws -> NpyArray {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw JEMError.io(path: path, reason: "cannot read file (missing or not readable)")
        }
        return try parse(data, path: path)
    }

    public static func parse(_ data: Data, path: String) throws -> NpyArray {
        let bytes = [UInt8](data)
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw JEMError.badFile(path: path, reason: "not a .npy file (bad magic; expected \\x93NUMPY)")
        }
        let major = bytes[6]
        var headerLen: Int, start: Int
        switch major {
        case 1: headerLen = Int(bytes[8]) | Int(bytes[9]) << 8; start = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw JEMError.badFile(path: path, reason: "truncated .npy header") }
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24; start = 12
        default: throw JEMError.badFile(path: path, reason: "unsupported .npy format version \(major)")
        }
        guard start + headerLen <= bytes.count, let header = String(bytes: bytes[start..<(start + headerLen)], encoding: .utf8) else {
            throw JEMError.badFile(path: path, reason: "truncated .npy header")
        }
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descrF = field("descr"), let q1 = descrF.firstIndex(of: "'"),
              let q2 = descrF[descrF.index(after: q1)...].firstIndex(of: "'") else {
            throw JEMError.badFile(path: path, reason: "malformed .npy header: no descr")
        }
        var descr = String(descrF[descrF.index(after: q1)..<q2])
        if descr == "<u1" || descr == "u1" { descr = "|u1" }
        guard let dtype = DType(rawValue: descr) else {
            throw JEMError.badFile(path: path, reason: "unsupported .npy dtype '\(descr)' (supported: float32, float64, uint8, int32, int64, little-endian)")
        }
        guard let fo = field("fortran_order") else { throw JEMError.badFile(path: path, reason: "malformed .npy header: no fortran_order") }
        if fo.hasPrefix("True") {
            throw JEMError.badFile(path: path, reason: "Fortran-ordered .npy arrays are not supported; save with np.ascontiguousarray")
        }
        guard let sf = field("shape"), let p1 = sf.firstIndex(of: "("), let p2 = sf[p1...].firstIndex(of: ")") else {
            throw JEMError.badFile(path: path, reason: "malformed .npy header: no shape")
        }
        let dims = try sf[sf.index(after: p1)..<p2].split(separator: ",").map { s -> Int in
            guard let v = Int(s.trimmingCharacters(in: .whitespaces)), v >= 0 else {
                throw JEMError.badFile(path: path, reason: "malformed .npy shape \(sf[p1...p2])")
            }
            return v
        }
        let size: Int = [.f4: 4, .f8: 8, .u1: 1, .i4: 4, .i8: 8][dtype]!
        let need = try Checked.byteCount(dims, elementSize: size, what: "array", path: path)
        let n = need / size
        let dataStart = start + headerLen
        guard bytes.count - dataStart >= need else {
            throw JEMError.badFile(path: path, reason: "truncated data: shape \(dims) of \(descr) needs \(need) bytes, file has \(bytes.count - dataStart)")
        }
        var values = [Double](repeating: 0, count: n)
        bytes.withUnsafeBytes { raw in
            let b = raw.baseAddress! + dataStart
            switch dtype {
            case .f4: for i in 0..<n { values[i] = Double(Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))) }
            case .f8: for i in 0..<n { values[i] = Double(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) }
            case .u1: for i in 0..<n { values[i] = Double(b.load(fromByteOffset: i, as: UInt8.self)) }
            case .i4: for i in 0..<n { values[i] = Double(Int32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
            case .i8: for i in 0..<n { values[i] = Double(Int64(littleEndian: b.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
            }
        }
        return NpyArray(shape: dims, dtype: dtype, values: values)
    }

    /// The array as a float32 tensor of the same shape.
    public func tensor() -> Tensor {
        let t = Tensor(shape: shape)
        for i in 0..<values.count { t.data[i] = Float(values[i]) }
        return t
    }

    /// Serialises (version 1.0 header padded to 64 bytes).
    public static func encode(shape: [Int], dtype: DType, writeValues: (inout Data) -> Void) -> Data {
        let shapeStr = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeStr), }"
        while (10 + header.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var d = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        d.append(UInt8(header.utf8.count & 0xFF)); d.append(UInt8(header.utf8.count >> 8))
        d.append(contentsOf: Array(header.utf8))
        writeValues(&d)
        return d
    }

    /// A float32 tensor as .npy bytes.
    public static func encode(_ t: Tensor) -> Data {
        encode(shape: t.shape, dtype: .f4) { $0.append(UnsafeBufferPointer(start: t.data, count: t.count)) }
    }

    /// Integers as int64 .npy bytes.
    public static func encode(_ ints: [Int]) -> Data {
        let v = ints.map { Int64($0).littleEndian }
        return encode(shape: [ints.count], dtype: .i8) { data in v.withUnsafeBufferPointer { data.append($0) } }
    }

    /// Writes a float32 tensor atomically.
    public static func write(_ t: Tensor, to path: String) throws {
        let d = encode(shape: t.shape, dtype: .f4) { $0.append(UnsafeBufferPointer(start: t.data, count: t.count)) }
        try AtomicFile.write(d, to: path)
    }

    /// Writes values in any supported dtype (values are rounded and range-checked for integer dtypes).
    public static func write(_ values: [Double], shape: [Int], dtype: DType, to path: String) throws {
        guard shape.reduce(1, *) == values.count else {
            throw JEMError.shapeMismatch(what: "npy values for \(path)", expected: shape, found: [values.count])
        }
        let range: ClosedRange<Double>? = [.u1: 0...255, .i4: -2147483648...2147483647, .i8: -9.2e18...9.2e18][dtype]
        if let range, let bad = values.first(where: { !range.contains($0.rounded()) }) {
            throw JEMError.invalidArgument("\(path): value \(bad) does not fit \(dtype.rawValue)")
        }
        let d = encode(shape: shape, dtype: dtype) { data in
            for v in values {
                switch dtype {
                case .f4: withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { data.append(contentsOf: $0) }
                case .f8: withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) }
                case .u1: data.append(UInt8(v.rounded()))
                case .i4: withUnsafeBytes(of: Int32(v.rounded()).littleEndian) { data.append(contentsOf: $0) }
                case .i8: withUnsafeBytes(of: Int64(v.rounded()).littleEndian) { data.append(contentsOf: $0) }
                }
            }
        }
        try AtomicFile.write(d, to: path)
    }

    /// Writes integers as int64 atomically.
    public static func write(_ ints: [Int], shape: [Int]? = nil, to path: String) throws {
        let v = ints.map { Int64($0).littleEndian }
        let d = encode(shape: shape ?? [ints.count], dtype: .i8) { data in v.withUnsafeBufferPointer { data.append($0) } }
        try AtomicFile.write(d, to: path)
    }
}
