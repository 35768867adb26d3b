// JEMError.swift: the typed errors of the library. Every message names the file, flag or tensor,
// what was expected and what was found. The library throws; only the CLI prints and exits.
import Foundation

public enum JEMError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(what: String, expected: [Int], found: [Int])
    case invalidArgument(String)
    case badFile(path: String, reason: String)
    case missingTensor(path: String, name: String)
    case io(path: String, reason: String)
    case diverged(String)

    public var description: String {
        func s(_ a: [Int]) -> String { "[" + a.map { $0 < 0 ? "*" : String($0) }.joined(separator: ",") + "]" }
        switch self {
        case let .shapeMismatch(what, expected, found):
            return "Shape mismatch in `\(what)`: expected \(s(expected)), found \(s(found))"
        case let .invalidArgument(m): return m
        case let .badFile(path, reason): return "\(path): \(reason)"
        case let .missingTensor(path, name): return "\(path): missing tensor `\(name)`"
        case let .io(path, reason): return "\(path): \(reason)"
        case let .diverged(m): return "training diverged: \(m)"
        }
    }
}

extension JEMError: LocalizedError {
    public var errorDescription: String? { description }
}
