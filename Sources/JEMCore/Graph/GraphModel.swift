// GraphModel.swift: the graph executor: an imported ONNX classifier as a `Network`. A plan is
// compiled per input shape (the exporter's shape subgraphs fold differently for each batch size)
// and cached. Three passes run over a plan's steps: forward; reverse (input gradients); and
// forward-with-tangents followed by the dual reverse pass (Hessian–vector products of the log
// density, what the exact attack through SGLD chains needs).
import Foundation

public final class GraphModel: Network {
    public let definition: GraphDefinition
    /// Input normalisation added in front (--input-mean/--input-std), if any.
    public let normalization: (mean: [Float], std: [Float])?
    public private(set) var numClasses: Int
    public let inputChannels: Int
    private var plans: [[Int]: GraphPlan] = [:]
    private let lock = NSLock()

    /// Loads `path`, checks it compiles for the declared input shape (a probe with batch 1), and
    /// reads the class count from the output.
    public convenience init(path: String, output: String? = nil, inputMean: [Float]? = nil, inputStd: [Float]? = nil) throws {
        try self.init(definition: try ONNXReader.read(path: path, output: output), inputMean: inputMean, inputStd: inputStd)
    }

    /// A model of an already-read graph definition (the file named by `definition.path`).
    public init(definition: GraphDefinition, inputMean: [Float]? = nil, inputStd: [Float]? = nil) throws {
        self.definition = definition
        let path = definition.path
        let s = definition.inputShape
        guard let c = s[1] else {
            throw JEMError.badFile(path: path, reason: "input '\(definition.inputName)' leaves its channel count symbolic; re-export with a fixed C×H×W")
        }
        inputChannels = c
        if inputMean != nil || inputStd != nil {
            func perChannel(_ v: [Float]?, _ def: Float, _ flag: String) throws -> [Float] {
                guard let v else { return Array(repeating: def, count: c) }
                if v.count == 1 { return Array(repeating: v[0], count: c) }
                guard v.count == c else { throw JEMError.invalidArgument("\(flag): \(v.count) values for a model with \(c) input channels") }
                return v
            }
            let m = try perChannel(inputMean, 0, "--input-mean"), sd = try perChannel(inputStd, 1, "--input-std")
            guard sd.allSatisfy({ $0 > 0 && $0.isFinite }), m.allSatisfy(\.isFinite) else {
                throw JEMError.invalidArgument("--input-std must be positive and --input-mean finite, got \(m) and \(sd)")
            }
            normalization = (m, sd)
        } else {
            normalization = nil
        }
        for (name, v) in definition.constants {
            if case .float(let t) = v, !t.isFinite {
                throw JEMError.badFile(path: path, reason: "initializer '\(name)' holds non-finite values")
            }
        }
        guard let h = s[2], let w = s[3] else {
            throw JEMError.badFile(path: path, reason: "input '\(definition.inputName)' leaves its height or width symbolic; re-export with a fixed input size")
        }
        numClasses = 0
        let probe = try plan(for: [1, c, h, w])
        numClasses = probe.outputShape[1]
        guard numClasses >= 2 else { throw JEMError.badFile(path: path, reason: "the output has \(numClasses) class(es); expected logits over ≥ 2 classes") }
    }

    public var inputScale: [Float] { normalization?.std ?? Array(repeating: 1, count: inputChannels) }
    /// C, H, W the graph declares.
    public var imageShape: [Int] { definition.inputShape.dropFirst().map { $0 ?? -1 } }
    public var architectureName: String { "onnx:" + ((definition.path as NSString).lastPathComponent as NSString).deletingPathExtension }

    public var parameterCount: Int {
        definition.constants.values.reduce(0) { acc, v in if case .float(let t) = v { return acc + t.count }; return acc }
    }

    /// Op type → node count, for `info`.
    public var opCounts: [(String, Int)] {
        var c: [String: Int] = [:]
        for n in definition.nodes { c[n.op, default: 0] += 1 }
        return c.sorted { $0.key < $1.key }
    }

    func plan(for shape: [Int]) throws -> GraphPlan {
        lock.lock(); defer { lock.unlock() }
        if let p = plans[shape] { return p }
        let declared = definition.inputShape
        guard shape.count == 4 else { throw JEMError.shapeMismatch(what: "model input", expected: [-1, inputChannels, -1, -1], found: shape) }
        for i in 1..<4 {
            if let d = declared[i], d != shape[i] {
                throw JEMError.invalidArgument("\(definition.path): the model takes \(declared.dropFirst().map { $0.map(String.init) ?? "?" }.joined(separator: "×")) images (input '\(definition.inputName)'), the data are \(shape.dropFirst().map(String.init).joined(separator: "×")); use --pad-to/--to-channels or a matching data set")
            }
        }
        let p = try GraphPlan.compile(definition, inputShape: shape, normalization: normalization)
        if plans.count > 8 { plans.removeAll() }
        plans[shape] = p
        return p
    }

    /// Forward values of every slot; with `keep` false each value is freed after its last read
    /// (a forward-only pass holds only live tensors).
    private func forwardValues(_ p: GraphPlan, _ x: Tensor, keep: Bool = true) throws -> [Tensor?] {
        var v = [Tensor?](repeating: nil, count: p.slotCount)
        v[0] = x
        for (k, t) in p.constants { v[k] = t }
        for (i, s) in p.steps.enumerated() {
            v[s.output] = try s.op.forward(s.inputs.map { v[$0]! })
            if !keep { for j in p.lastReads[i] { v[j] = nil } }
        }
        return v
    }

    public func shareLogits(_ x: Tensor) throws -> Tensor {
        let p = try plan(for: x.shape)
        return try forwardValues(p, x, keep: false)[p.outputSlot]!
    }

    /// The input of the graph's final linear layer (Gemm or MatMul producing the logits),
    /// flattened to (N, D).
    public func shareFeatures(_ x: Tensor) throws -> Tensor {
        let p = try plan(for: x.shape)
        guard let last = p.steps.last, last.output == p.outputSlot, last.op is LinearOp, let input = last.inputs.first else {
            throw JEMError.invalidArgument("\(definition.path): the logits do not come from a final Gemm or MatMul, so the graph has no penultimate layer to take features from")
        }
        let v = try forwardValues(p, x)
        let f = v[input]!
        return try f.reshaped([x.shape[0], f.count / max(x.shape[0], 1)])
    }

    private func isVariable(_ p: GraphPlan, _ slot: Int) -> Bool { p.constants[slot] == nil }

    private static func accumulate(_ acc: inout [Tensor?], _ slot: Int, _ t: Tensor) {
        if let a = acc[slot] {
            let s = Tensor(uninitialized: a.shape)
            for i in 0..<s.count { s.data[i] = a.data[i] + t.data[i] }
            acc[slot] = s
        } else {
            acc[slot] = t
        }
    }

    public func shareInputGradient(_ x: Tensor, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
        let p = try plan(for: x.shape)
        let v = try forwardValues(p, x)
        let z = v[p.outputSlot]!
        let dz = try seed(z)
        guard dz.shape == z.shape else { throw JEMError.shapeMismatch(what: "backward seed", expected: z.shape, found: dz.shape) }
        var g = [Tensor?](repeating: nil, count: p.slotCount)
        g[p.outputSlot] = dz
        for s in p.steps.reversed() {
            guard let gy = g[s.output] else { continue }
            g[s.output] = nil
            let needs = s.inputs.map { isVariable(p, $0) }
            let r = s.op.vjp(gy, s.inputs.map { v[$0]! }, v[s.output]!, needs)
            for (slot, t) in zip(s.inputs, r) { if let t { Self.accumulate(&g, slot, t) } }
        }
        return (z, g[0] ?? Tensor(shape: x.shape))
    }

    /// Logits and the Jacobian–vector product J(x)·u.
    public func jvp(_ x: Tensor, _ u: Tensor) throws -> (logits: Tensor, tangent: Tensor) {
        let p = try plan(for: x.shape)
        let (v, t) = try forwardTangents(p, x, u)
        return (v[p.outputSlot]!, t[p.outputSlot]!)
    }

    private func forwardTangents(_ p: GraphPlan, _ x: Tensor, _ u: Tensor) throws -> ([Tensor?], [Tensor?]) {
        guard u.shape == x.shape else { throw JEMError.shapeMismatch(what: "tangent", expected: x.shape, found: u.shape) }
        var v = [Tensor?](repeating: nil, count: p.slotCount), t = v
        v[0] = x; t[0] = u
        for (k, c) in p.constants { v[k] = c }
        for s in p.steps {
            let xs = s.inputs.map { v[$0]! }
            let y = try s.op.forward(xs)
            v[s.output] = y
            let ts = s.inputs.map { t[$0] }
            t[s.output] = ts.contains { $0 != nil } ? s.op.jvp(xs, ts, y) : nil
        }
        return (v, t)
    }

    public func shareLogDensityHVP(_ x: Tensor, _ u: Tensor) throws -> Tensor {
        let p = try plan(for: x.shape)
        let (v, t) = try forwardTangents(p, x, u)
        let z = v[p.outputSlot]!
        // d lse / dz = softmax p; its tangent is (diag p − p pᵀ)·ż.
        let gz = Losses.softmax(z)
        let hz = Self.logsumexpCurvature(logits: z, tangent: t[p.outputSlot]!)
        var g = [Tensor?](repeating: nil, count: p.slotCount), h = g
        g[p.outputSlot] = gz; h[p.outputSlot] = hz
        for s in p.steps.reversed() {
            guard let gy = g[s.output] else { continue }
            let hy = h[s.output] ?? Tensor(shape: gy.shape)
            g[s.output] = nil; h[s.output] = nil
            let needs = s.inputs.map { isVariable(p, $0) }
            let r = s.op.dualVJP(gy, hy, s.inputs.map { v[$0]! }, s.inputs.map { t[$0] }, v[s.output]!, needs)
            for (slot, pair) in zip(s.inputs, r) {
                if let (a, b) = pair { Self.accumulate(&g, slot, a); Self.accumulate(&h, slot, b) }
            }
        }
        return h[0] ?? Tensor(shape: x.shape)
    }
}
