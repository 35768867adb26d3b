// ByteStream.swift: sequential reading of a file's bytes, stored plainly or compressed (gzip, zlib),
// for the readers of untrusted files. Compressed data is inflated only as far as the reader asks,
// straight into the caller's buffer, so a small file cannot expand to gigabytes before the sizes it
// declares have been checked. `finish()` checks the end of the stream: no bytes beyond what the
// format declared, and for gzip the trailer's CRC-32 and length (zlib verifies them when the stream
// ends); for zlib streams, the Adler-32 checksum.
import CZlib
import Foundation

public final class ByteStream {
    public enum Encoding: Sendable { case plain, gzip, zlib }

    public let path: String
    public let encoding: Encoding
    /// The size the stream says it decodes to: the byte count for plain data, the gzip trailer's
    /// ISIZE (the length modulo 2^32) for gzip, nil for zlib.
    public let declaredSize: Int?
    /// Bytes of input (compressed size for gzip and zlib).
    public let inputSize: Int
    /// Bytes delivered so far.
    public private(set) var position = 0

    private let input: UnsafeMutableRawBufferPointer
    private var z = z_stream()
    private var ended = false

    /// deflate's best case is about 1032:1; a declared size beyond that cannot be genuine.
    public static let maxRatio = 1032

    /// Reads `path`, detecting gzip by its magic number.
    public convenience init(path: String) throws {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw JEMError.io(path: path, reason: "cannot read file (missing or not readable)")
        }
        try self.init(data: d, path: path)
    }

    /// The bytes of a file named `path`, detecting gzip by its magic number.
    public convenience init(data d: Data, path: String) throws {
        let gz = d.count >= 2 && d[d.startIndex] == 0x1F && d[d.startIndex + 1] == 0x8B
        try self.init(bytes: d, encoding: gz ? .gzip : .plain, path: path)
    }

    public init<C: Collection>(bytes: C, encoding: Encoding, path: String) throws where C.Element == UInt8 {
        self.path = path
        self.encoding = encoding
        input = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        _ = input.initializeMemory(as: UInt8.self, from: bytes)
        inputSize = bytes.count
        switch encoding {
        case .plain:
            declaredSize = bytes.count
        case .gzip:
            guard inputSize >= 18 else {
                input.deallocate()
                throw JEMError.badFile(path: path, reason: "truncated gzip file (\(inputSize) bytes; a gzip stream needs at least 18)")
            }
            let t = inputSize - 4
            declaredSize = Int(input[t]) | Int(input[t + 1]) << 8 | Int(input[t + 2]) << 16 | Int(input[t + 3]) << 24
        case .zlib:
            declaredSize = nil
        }
        if encoding != .plain {
            let rc = inflateInit2_(&z, encoding == .gzip ? 15 + 16 : 15, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
            guard rc == Z_OK else {
                input.deallocate()
                throw JEMError.badFile(path: path, reason: "cannot initialise zlib (error \(rc))")
            }
            z.next_in = input.baseAddress!.assumingMemoryBound(to: UInt8.self)
            z.avail_in = uInt(inputSize)
        }
    }

    deinit {
        if encoding != .plain { inflateEnd(&z) }
        input.deallocate()
    }

    private var zlibMessage: String { z.msg.map { String(cString: $0) } ?? "no detail" }

    private var kind: String { encoding == .gzip ? "gzip" : "compressed" }

    /// Throws unless `bytes` more bytes can plausibly follow (plain: they are there; compressed:
    /// within the gzip trailer's size and deflate's maximum ratio). Call before allocating for them.
    public func require(_ bytes: Int, what: String) throws {
        let (end, o) = position.addingReportingOverflow(bytes)
        guard !o else { throw JEMError.badFile(path: path, reason: "\(what): size overflows") }
        switch encoding {
        case .plain:
            guard end <= inputSize else {
                throw JEMError.badFile(path: path, reason: "\(what) needs \(bytes) bytes at byte \(position), the file has \(inputSize - position) left (truncated?)")
            }
        case .gzip, .zlib:
            let (bound, o2) = inputSize.multipliedReportingOverflow(by: Self.maxRatio)
            guard o2 || end <= bound + 1024 else {
                throw JEMError.badFile(path: path, reason: "\(what) needs \(bytes) bytes, more than \(inputSize) \(kind) bytes can hold")
            }
            if encoding == .gzip, let s = declaredSize, end < (1 << 32), end > s {   // ISIZE is the length mod 2^32
                throw JEMError.badFile(path: path, reason: "\(what) needs \(end) bytes in all, the gzip trailer says the data is \(s) bytes")
            }
        }
    }

    /// Fills `buffer` with the next bytes, or throws if the stream ends first.
    public func read(into buffer: UnsafeMutableRawBufferPointer, what: String) throws {
        if buffer.count == 0 { return }
        switch encoding {
        case .plain:
            try require(buffer.count, what: what)
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: input[position..<(position + buffer.count)]))
        case .gzip, .zlib:
            guard !ended else {
                throw JEMError.badFile(path: path, reason: "\(what): the \(kind) data ends after \(position) bytes (truncated?)")
            }
            z.next_out = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
            z.avail_out = uInt(buffer.count)
            while z.avail_out > 0 {
                let rc = inflate(&z, Z_NO_FLUSH)
                if rc == Z_STREAM_END { ended = true; break }
                if rc == Z_BUF_ERROR && z.avail_in == 0 {
                    throw JEMError.badFile(path: path, reason: "\(what): the \(kind) data is truncated after \(position + buffer.count - Int(z.avail_out)) bytes")
                }
                guard rc == Z_OK else {
                    throw JEMError.badFile(path: path, reason: "corrupt \(kind) data near byte \(position + buffer.count - Int(z.avail_out)) of its contents (\(zlibMessage))")
                }
            }
            if z.avail_out > 0 {
                throw JEMError.badFile(path: path, reason: "\(what): the \(kind) data ends after \(position + buffer.count - Int(z.avail_out)) bytes, \(buffer.count) were needed at byte \(position)")
            }
        }
        position += buffer.count
    }

    /// The next `count` bytes.
    public func read(_ count: Int, what: String) throws -> [UInt8] {
        try require(count, what: what)
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try read(into: $0, what: what) }
        return out
    }

    /// Skips `count` bytes (plain data: without reading them).
    public func skip(_ count: Int, what: String) throws {
        try require(count, what: what)
        if encoding == .plain { position += count; return }
        var left = count
        var chunk = [UInt8](repeating: 0, count: min(count, 1 << 16))
        while left > 0 {
            let n = min(left, chunk.count)
            try chunk.withUnsafeMutableBytes { try read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n]), what: what) }
            left -= n
        }
    }

    /// Reads `count` bytes in chunks of at most 1 MiB, handing each to `body` with its offset.
    public func forEachChunk(_ count: Int, what: String, _ body: (UnsafeRawBufferPointer, Int) throws -> Void) throws {
        try require(count, what: what)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: min(max(count, 1), 1 << 20), alignment: 16)
        defer { buf.deallocate() }
        var done = 0
        while done < count {
            let n = min(count - done, buf.count)
            let part = UnsafeMutableRawBufferPointer(rebasing: buf[0..<n])
            try read(into: part, what: what)
            try body(UnsafeRawBufferPointer(part), done)
            done += n
        }
    }

    /// Checks that the stream ends here: at most `slack` further bytes (format padding), then the
    /// end of the data, its checksum (and for gzip the length) verified, and no bytes after it.
    public func finish(what: String, slack: Int = 0) throws {
        switch encoding {
        case .plain:
            guard inputSize - position <= slack else {
                throw JEMError.badFile(path: path, reason: "\(inputSize - position) unexpected bytes after \(what) (the header declares \(position) bytes)")
            }
        case .gzip, .zlib:
            var extra = [UInt8](repeating: 0, count: slack + 1)
            var produced = 0
            if !ended {
                try extra.withUnsafeMutableBytes { b in
                    z.next_out = b.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    z.avail_out = uInt(b.count)
                    while true {
                        let rc = inflate(&z, Z_NO_FLUSH)
                        produced = b.count - Int(z.avail_out)
                        if rc == Z_STREAM_END { ended = true; break }
                        if produced > slack { break }
                        if rc == Z_BUF_ERROR && z.avail_in == 0 {
                            throw JEMError.badFile(path: path, reason: "the \(kind) data is truncated (no end-of-stream marker or trailer after \(what))")
                        }
                        guard rc == Z_OK else {
                            throw JEMError.badFile(path: path, reason: "corrupt \(kind) data after \(what) (\(zlibMessage))")
                        }
                    }
                }
            }
            guard produced <= slack else {
                throw JEMError.badFile(path: path, reason: "the \(kind) data holds more than the \(position) bytes \(what) declares")
            }
            if z.avail_in > 0 {
                throw JEMError.badFile(path: path, reason: "\(z.avail_in) unexpected bytes after the end of the \(kind) data")
            }
        }
    }
}
