// SafeTensors.swift: reading and writing the safetensors format
// (8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}} with an
// optional "__metadata__" string map, then the raw little-endian data). Every header field is
// validated against the file before any tensor is read.
import Foundation

public enum SafeDType: String, Sendable {
    case F32, F64, F16, BF16, I64, I32, U8, I8, I16, BOOL

    var size: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .U8, .I8, .BOOL: return 1
        }
    }
}

public struct SafeTensorEntry: Sendable {
    public let dtype: SafeDType
    public let shape: [Int]
    /// Byte range within the data section.
    public let begin: Int, end: Int
}

public struct SafeTensorsFile {
    public let path: String
    public let metadata: [String: String]
    public let entries: [String: SafeTensorEntry]
    let data: Data
    let dataStart: Int

    /// Reads and validates a safetensors file.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw JEMError.io(path: path, reason: "cannot read file (missing or not readable)")
        }
        try self.init(data: data, path: path)
    }

    public init(data: Data, path: String) throws {
        self.path = path
        self.data = data
        guard data.count >= 8 else {
            throw JEMError.badFile(path: path, reason: "not a safetensors file: \(data.count) bytes, expected at least an 8-byte header length")
        }
        let headerLen = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian }
        guard headerLen <= UInt64(data.count - 8) else {
            throw JEMError.badFile(path: path, reason: "header length \(headerLen) runs past the end of the file (\(data.count) bytes)")
        }
        let hl = Int(headerLen)
        dataStart = 8 + hl
        let headerData = data.subdata(in: 8..<(8 + hl))
        guard let json = try? JSONSerialization.jsonObject(with: headerData), let dict = json as? [String: Any] else {
            throw JEMError.badFile(path: path, reason: "malformed JSON header")
        }
        var meta: [String: String] = [:]
        var entries: [String: SafeTensorEntry] = [:]
        let dataLen = data.count - dataStart
        for (name, value) in dict {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw JEMError.badFile(path: path, reason: "__metadata__ is not a string map") }
                for (k, v) in m {
                    guard let s = v as? String else { throw JEMError.badFile(path: path, reason: "metadata `\(k)` is not a string") }
                    meta[k] = s
                }
                continue
            }
            guard let e = value as? [String: Any], let dt = e["dtype"] as? String,
                  let shapeAny = e["shape"] as? [Any], let offAny = e["data_offsets"] as? [Any], offAny.count == 2 else {
                throw JEMError.badFile(path: path, reason: "tensor `\(name)`: header entry needs dtype, shape and two data_offsets")
            }
            guard let dtype = SafeDType(rawValue: dt) else {
                throw JEMError.badFile(path: path, reason: "tensor `\(name)`: unsupported dtype \(dt)")
            }
            let shape = try shapeAny.map { v -> Int in
                guard let i = Self.nonNegativeInteger(v, max: Checked.maxElements) else {
                    throw JEMError.badFile(path: path, reason: "tensor `\(name)`: bad shape \(shapeAny)")
                }
                return i
            }
            let offs = try offAny.map { v -> Int in
                guard let i = Self.nonNegativeInteger(v, max: 1 << 53) else {
                    throw JEMError.badFile(path: path, reason: "tensor `\(name)`: bad data_offsets \(offAny)")
                }
                return i
            }
            guard offs[0] <= offs[1], offs[1] <= dataLen else {
                throw JEMError.badFile(path: path, reason: "tensor `\(name)`: data_offsets [\(offs[0]), \(offs[1])] out of range (data section is \(dataLen) bytes; file truncated?)")
            }
            let bytes = try Checked.byteCount(shape, elementSize: dtype.size, what: "tensor `\(name)`", path: path)
            guard offs[1] - offs[0] == bytes else {
                throw JEMError.badFile(path: path, reason: "tensor `\(name)`: shape \(shape) of \(dt) needs \(bytes) bytes, data_offsets span \(offs[1] - offs[0])")
            }
            entries[name] = SafeTensorEntry(dtype: dtype, shape: shape, begin: offs[0], end: offs[1])
        }
        let sorted = entries.sorted { $0.value.begin < $1.value.begin }
        for i in sorted.indices.dropFirst() where sorted[i].value.begin < sorted[i - 1].value.end && sorted[i].value.end > sorted[i].value.begin {
            throw JEMError.badFile(path: path, reason: "tensors `\(sorted[i - 1].key)` and `\(sorted[i].key)` have overlapping data_offsets")
        }
        self.metadata = meta
        self.entries = entries
    }

    /// A JSON number that is an integer in 0...max (JSON numbers may be fractional or huge).
    private static func nonNegativeInteger(_ v: Any, max: Int) -> Int? {
        guard let n = v as? NSNumber else { return nil }
        let d = n.doubleValue
        guard d.isFinite, d >= 0, d <= Double(max), d == d.rounded() else { return nil }
        return Int(d)
    }

    /// The tensor `name` converted to float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else { throw JEMError.missingTensor(path: path, name: name) }
        let t = Tensor(shape: e.shape)
        let n = t.count
        try data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + dataStart + e.begin
            switch e.dtype {
            case .F32:
                for i in 0..<n { t.data[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            case .F64:
                for i in 0..<n { t.data[i] = Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
            case .F16:
                for i in 0..<n { t.data[i] = Float(Float16(bitPattern: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
            case .BF16:
                for i in 0..<n { t.data[i] = Float(bitPattern: UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
            default:
                throw JEMError.badFile(path: path, reason: "tensor `\(name)`: dtype \(e.dtype.rawValue) cannot be read as floating point")
            }
        }
        return t
    }

    /// Writes float32 tensors and string metadata atomically (temporary file, then rename).
    public static func write(path: String, tensors: [(String, Tensor)], metadata: [String: String]) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for (name, t) in tensors {
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]] as [String: Any]
            offset += 4 * t.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, t) in tensors {
            out.append(UnsafeBufferPointer(start: t.data, count: t.count))
        }
        try AtomicFile.write(out, to: path)
    }
}

/// Writes files atomically: a temporary file beside the target (`PATH.tmp-PID`), then rename.
/// Temporary files that a killed run of ours left beside a target are removed on the next write.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let tmp = try temporaryPath(for: path)
        guard FileManager.default.createFile(atPath: tmp, contents: data) else {
            throw JEMError.io(path: path, reason: "cannot write (permission denied or disk full)")
        }
        if rename(tmp, path) != 0 {
            unlink(tmp)
            throw JEMError.io(path: path, reason: "cannot move the temporary file into place")
        }
    }

    public static func write(_ string: String, to path: String) throws {
        try write(Data(string.utf8), to: path)
    }

    /// Writes several files all or none: each is written to its temporary file first; only when
    /// every one is written are they moved into place. `body` stages them.
    public static func group(_ body: (Group) throws -> Void) throws {
        let g = Group()
        do {
            try body(g)
            for (tmp, path) in g.staged where rename(tmp, path) != 0 {
                throw JEMError.io(path: path, reason: "cannot move the temporary file into place")
            }
        } catch {
            for (tmp, _) in g.staged { unlink(tmp) }
            throw error
        }
    }

    public final class Group {
        var staged: [(String, String)] = []

        /// Stages `data` for `path`.
        public func write(_ data: Data, to path: String) throws {
            let tmp = try temporaryPath(for: path)
            staged.append((tmp, path))
            guard FileManager.default.createFile(atPath: tmp, contents: data) else {
                throw JEMError.io(path: path, reason: "cannot write (permission denied or disk full)")
            }
        }

        public func write(_ string: String, to path: String) throws { try write(Data(string.utf8), to: path) }

        /// Stages a file that `make` writes at the temporary path it is given.
        public func produce(_ path: String, _ make: (String) throws -> Void) throws {
            let tmp = try temporaryPath(for: path)
            staged.append((tmp, path))
            try make(tmp)
        }

        /// The temporary file staged for `path` (to read back, e.g. an SVG to render).
        public func stagedPath(for path: String) -> String? { staged.first { $0.1 == path }?.0 }
    }

    /// `PATH.tmp-PID` for this process, after checking the directory and removing the temporary
    /// files of `PATH` that processes no longer running left behind.
    static func temporaryPath(for path: String) throws -> String {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.isEmpty ? "." : dir, isDirectory: &isDir), isDir.boolValue else {
            throw JEMError.io(path: path, reason: "cannot write: directory \(dir) does not exist")
        }
        let prefix = url.lastPathComponent + ".tmp-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix(prefix) {
            let digits = name.dropFirst(prefix.count).prefix { $0.isNumber }
            guard let pid = Int32(digits), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            unlink((dir as NSString).appendingPathComponent(name))
        }
        return path + ".tmp-\(getpid())"
    }
}
