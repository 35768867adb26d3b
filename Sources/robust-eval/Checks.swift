// Checks.swift: range checks of flags and checks of output paths, run by each option group's
// `validate()` before any work starts (ArgumentParser calls them after parsing).
import ArgumentParser
import Foundation
import JEMCore

/// The largest batch any command accepts.
let maxBatchSize = 65_536

enum Check {
    static func range<T: Comparable>(_ v: T, _ r: ClosedRange<T>, _ flag: String) throws {
        guard r.contains(v) else { throw ValidationError("\(flag) must be in \(r.lowerBound)...\(r.upperBound), got \(v)") }
    }

    static func range<T: Comparable>(_ v: T?, _ r: ClosedRange<T>, _ flag: String) throws {
        if let v { try range(v, r, flag) }
    }

    /// A finite value in `r` (NaN fails every comparison, so it is caught here too).
    static func finite(_ v: Float, _ r: ClosedRange<Float>, _ flag: String) throws {
        guard v.isFinite, r.contains(v) else { throw ValidationError("\(flag) must be a finite number in \(r.lowerBound)...\(r.upperBound), got \(v)") }
    }

    static func finite(_ v: Float?, _ r: ClosedRange<Float>, _ flag: String) throws {
        if let v { try finite(v, r, flag) }
    }

    /// A strictly positive finite value.
    static func positive(_ v: Float, _ flag: String) throws {
        guard v.isFinite, v > 0 else { throw ValidationError("\(flag) must be a positive finite number, got \(v)") }
    }

    /// An output file that can be written: its directory exists and is writable, the path is not a
    /// directory, and (when `bytes` is known) the file system has room for it.
    static func writable(_ path: String?, _ flag: String, bytes: Int? = nil) throws {
        guard let path else { return }
        guard !path.isEmpty else { throw ValidationError("\(flag): empty path") }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw ValidationError("\(flag) \(path): is a directory; expected a file path")
        }
        let dir = (path as NSString).deletingLastPathComponent
        try directory(dir.isEmpty ? "." : dir, flag: flag, for: path, bytes: bytes)
    }

    /// A directory that exists (or, with `create`, whose parent exists) and can be written.
    static func directory(_ dir: String, flag: String, for path: String, bytes: Int? = nil) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) else {
            throw ValidationError("\(flag) \(path): directory \(dir) does not exist")
        }
        guard isDir.boolValue else { throw ValidationError("\(flag) \(path): \(dir) is not a directory") }
        guard access(dir, W_OK) == 0 else { throw ValidationError("\(flag) \(path): directory \(dir) is not writable") }
        if let bytes {
            var s = statvfs()
            if statvfs(dir, &s) == 0 {
                let free = Double(s.f_bavail) * Double(s.f_frsize)
                guard free >= Double(bytes) else {
                    throw ValidationError("\(flag) \(path): needs about \(bytes / 1_000_000) MB, the file system has \(Int(free) / 1_000_000) MB free")
                }
            }
        }
    }

    /// A directory the command will create or write into: it exists and is writable, or its
    /// parent does.
    static func outputDirectory(_ dir: String, _ flag: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
            guard isDir.boolValue else { throw ValidationError("\(flag) \(dir) is a file; expected a directory") }
            try directory(dir, flag: flag, for: dir)
        } else {
            let parent = (dir as NSString).deletingLastPathComponent
            try directory(parent.isEmpty ? "." : parent, flag: flag, for: dir)
        }
    }

    /// Threads: 0 (all cores) up to 16 per core.
    static func threads(_ t: Int) throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        try range(t, 0...(16 * max(cores, 1)), "--threads (0: all \(cores) cores)")
    }
}
