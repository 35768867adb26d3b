// Tensor.swift: the float32 tensor that owns its memory (64-byte aligned, zero-initialised).
// Shapes are NCHW for images, (N, K) for logits. Tensors are reference types: kernels write into
// them in place; `copy()` makes an independent tensor.
import Foundation

public final class Tensor {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>

    /// A zero-filled tensor of the given shape.
    public convenience init(shape: [Int]) {
        self.init(uninitialized: shape)
        data.initialize(repeating: 0, count: max(count, 1))
    }

    /// A tensor whose contents are unspecified: only for outputs and scratch space that a kernel
    /// writes in full before anything reads them (saves a memset per op in every pass).
    public init(uninitialized shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { fatalError("out of memory allocating \(bytes) bytes") }
        self.data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// A tensor holding `values` (row-major) with the given shape.
    public convenience init(shape: [Int], values: [Float]) throws {
        let n = shape.reduce(1, *)
        guard n == values.count else {
            throw JEMError.shapeMismatch(what: "tensor values", expected: shape, found: [values.count])
        }
        self.init(shape: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: n) }
    }

    /// A tensor filled with `value`.
    public convenience init(shape: [Int], repeating value: Float) {
        self.init(shape: shape)
        data.update(repeating: value, count: count)
    }

    deinit { free(data) }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }
    public var array: [Float] { Array(buffer) }

    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    public func copy() -> Tensor {
        let t = Tensor(shape: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// A copy with a new shape of the same element count.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard newShape.reduce(1, *) == count else {
            throw JEMError.shapeMismatch(what: "reshape", expected: newShape, found: shape)
        }
        let t = Tensor(shape: newShape)
        t.data.update(from: data, count: count)
        return t
    }

    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    /// Copies all of `other` (same element count) into this tensor.
    public func assign(_ other: Tensor) {
        precondition(other.count == count, "assign: \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    /// Rows [start, start+n) along the first axis, copied.
    public func rows(_ start: Int, _ n: Int) -> Tensor {
        precondition(start >= 0 && n >= 0 && start + n <= shape[0])
        let per = count / max(shape[0], 1)
        var s = shape; s[0] = n
        let t = Tensor(shape: s)
        t.data.update(from: data + start * per, count: n * per)
        return t
    }

    /// Writes `src` into rows [start, start + src.shape[0]).
    public func setRows(_ start: Int, _ src: Tensor) {
        let per = count / max(shape[0], 1)
        precondition(src.count == src.shape[0] * per && start + src.shape[0] <= shape[0])
        (data + start * per).update(from: src.data, count: src.count)
    }

    /// Rows `idx` along the first axis, in that order.
    public func gather(rows idx: [Int]) -> Tensor {
        let per = count / max(shape[0], 1)
        var s = shape; s[0] = idx.count
        let t = Tensor(shape: s)
        for (j, i) in idx.enumerated() { (t.data + j * per).update(from: data + i * per, count: per) }
        return t
    }

    /// Writes row j of `src` into row idx[j].
    public func scatter(rows idx: [Int], from src: Tensor) {
        let per = count / max(shape[0], 1)
        for (j, i) in idx.enumerated() { (data + i * per).update(from: src.data + j * per, count: per) }
    }

    /// Concatenation along the first axis.
    public static func concat(_ parts: [Tensor]) throws -> Tensor {
        guard let first = parts.first else { throw JEMError.invalidArgument("concat of no tensors") }
        let tail = Array(first.shape.dropFirst())
        var n = 0
        for p in parts {
            guard Array(p.shape.dropFirst()) == tail else {
                throw JEMError.shapeMismatch(what: "concat", expected: [-1] + tail, found: p.shape)
            }
            n += p.shape[0]
        }
        let out = Tensor(shape: [n] + tail)
        var row = 0
        for p in parts { out.setRows(row, p); row += p.shape[0] }
        return out
    }

    public var isFinite: Bool {
        for i in 0..<count where !data[i].isFinite { return false }
        return true
    }

    public var sum: Double {
        var s = 0.0
        for i in 0..<count { s += Double(data[i]) }
        return s
    }

    public var maxAbs: Float {
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(data[i])) }
        return m
    }

    /// Argmax along the last axis of an (N, K) tensor.
    public func argmaxRows() -> [Int] {
        let k = shape.last ?? 1
        let n = count / max(k, 1)
        return (0..<n).map { r in
            var best = 0
            var bv = data[r * k]
            for j in 1..<k where data[r * k + j] > bv { bv = data[r * k + j]; best = j }
            return best
        }
    }

    public var shapeDescription: String { "[" + shape.map(String.init).joined(separator: ",") + "]" }
}
