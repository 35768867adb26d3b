// Checked.swift: sizes read from files are untrusted. Every product of dimensions, element sizes
// and offsets taken from a file goes through these helpers, which throw a `badFile` error naming
// the file and the field instead of trapping on overflow, before anything is allocated.
import Foundation

public enum Checked {
    /// The largest element count any reader accepts for one array (2^31 − 1, 8 GiB of float32).
    public static let maxElements = Int(Int32.max)

    /// Element count of `dims`, overflow-checked and at most `maxElements`.
    public static func elementCount(_ dims: [Int], what: String, path: String) throws -> Int {
        var n = 1
        for d in dims {
            guard d >= 0 else { throw JEMError.badFile(path: path, reason: "\(what) has a negative dimension \(d) in \(dims)") }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            guard !o, p <= maxElements else {
                throw JEMError.badFile(path: path, reason: "\(what) has shape \(dims), whose element count overflows or exceeds \(maxElements)")
            }
            n = p
        }
        return n
    }

    /// Byte count of `dims` elements of `elementSize` bytes, checked as above.
    public static func byteCount(_ dims: [Int], elementSize: Int, what: String, path: String) throws -> Int {
        let n = try elementCount(dims, what: what, path: path)
        let (b, o) = n.multipliedReportingOverflow(by: elementSize)
        guard !o else { throw JEMError.badFile(path: path, reason: "\(what) has shape \(dims), whose byte count overflows") }
        return b
    }

    /// `a + b` for offsets read from a file.
    public static func add(_ a: Int, _ b: Int, what: String, path: String) throws -> Int {
        let (s, o) = a.addingReportingOverflow(b)
        guard !o else { throw JEMError.badFile(path: path, reason: "\(what): offset \(a) + \(b) overflows") }
        return s
    }
}
