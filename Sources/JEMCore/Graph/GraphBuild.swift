// GraphBuild.swift: one ONNX node → one executable op (OpBuilder), and the evaluation of nodes
// whose inputs are all known at plan time (Fold). Attributes follow the ONNX operator
// specification for opsets 11–21 as torch.onnx.export writes them; anything else is refused with
// the op, the node, the attribute and the value.

enum OpBuilder {
    struct Built {
        let op: GraphOp
        /// Node input indices that become step inputs, in the op's order.
        let operands: [Int]
    }

    static func build(_ n: GraphNode, ins: [Operand], path: String, opset: Int) throws -> Built {
        func fail(_ why: String) -> JEMError { .badFile(path: path, reason: "node \(n.label) (opset \(opset)): \(why)") }
        func input(_ i: Int) -> Operand { i < ins.count ? ins[i] : .absent }
        func floatConst(_ i: Int, _ what: String) throws -> Tensor {
            guard case .constant(.float(let t)) = input(i) else { throw fail("\(what) must be a constant float tensor (an initializer)") }
            return t
        }
        func intsConst(_ i: Int, _ what: String) throws -> [Int] {
            guard case .constant(.ints(let v, _)) = input(i) else { throw fail("\(what) must be a constant integer tensor") }
            return v
        }
        func dataShape() throws -> [Int] {
            guard case .variable(let s) = input(0) else { throw fail("the data input must depend on the model input") }
            return s
        }
        func axis(_ a: Int, rank: Int) throws -> Int {
            let r = a < 0 ? a + rank : a
            guard r >= 0 && r < rank else { throw fail("axis \(a) out of range for rank \(rank)") }
            return r
        }
        func pair(_ v: [Int]?, _ def: Int, _ what: String) throws -> (Int, Int) {
            guard let v else { return (def, def) }
            guard v.count == 2, v.allSatisfy({ $0 >= 1 }) else { throw fail("\(what) \(v) not supported (expected 2 positive values for a 2-D op)") }
            return (v[0], v[1])
        }
        /// Explicit pads (top, left, bottom, right) from `pads` or `auto_pad` for input (h, w).
        func pads4(kernel: (Int, Int), strides: (Int, Int), dilations: (Int, Int), h: Int, w: Int) throws -> (Int, Int, Int, Int) {
            let auto = n.string("auto_pad") ?? "NOTSET"
            switch auto {
            case "NOTSET", "":
                guard let p = n.ints("pads") else { return (0, 0, 0, 0) }
                guard p.count == 4, p.allSatisfy({ $0 >= 0 && $0 < 1 << 16 }) else { throw fail("pads \(p) not supported (expected 4 non-negative values)") }
                return (p[0], p[1], p[2], p[3])
            case "VALID": return (0, 0, 0, 0)
            case "SAME_UPPER", "SAME_LOWER":
                func total(_ size: Int, _ k: Int, _ s: Int, _ d: Int) -> Int {
                    let out = (size + s - 1) / s
                    return max((out - 1) * s + (k - 1) * d + 1 - size, 0)
                }
                let th = total(h, kernel.0, strides.0, dilations.0), tw = total(w, kernel.1, strides.1, dilations.1)
                return auto == "SAME_UPPER" ? (th / 2, tw / 2, th - th / 2, tw - tw / 2) : (th - th / 2, tw - tw / 2, th / 2, tw / 2)
            default: throw fail("auto_pad \(auto) not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER)")
            }
        }

        switch n.op {
        case "Conv":
            let x = try dataShape()
            let w = try floatConst(1, "the weight (input 1)")
            guard w.shape.count == 4, x.count == 4 else { throw fail("only 2-D convolution is supported (weight \(w.shape), input \(x))") }
            let b = input(2).shape == nil ? nil : try floatConst(2, "the bias (input 2)")
            if let b, b.shape != [w.shape[0]] { throw fail("bias shape \(b.shape), expected [\(w.shape[0])]") }
            let groups = n.int("group", 1)
            guard groups >= 1, w.shape[0] % groups == 0, x[1] == w.shape[1] * groups else {
                throw fail("group \(groups) does not fit weight \(w.shape) and input channels \(x[1])")
            }
            if let k = n.ints("kernel_shape"), k != [w.shape[2], w.shape[3]] { throw fail("kernel_shape \(k) disagrees with the weight \(w.shape)") }
            let st = try pair(n.ints("strides"), 1, "strides"), dl = try pair(n.ints("dilations"), 1, "dilations")
            let p = try pads4(kernel: (w.shape[2], w.shape[3]), strides: st, dilations: dl, h: x[2], w: x[3])
            return Built(op: ConvOp(weight: w, bias: b, strides: st, pads: p, dilations: dl, groups: groups), operands: [0])

        case "BatchNormalization":
            _ = try dataShape()
            if n.int("training_mode", 0) != 0 { throw fail("BatchNormalization in training mode (training_mode=1); export the model in eval mode") }
            let scale = try floatConst(1, "scale"), bias = try floatConst(2, "B"), mean = try floatConst(3, "mean"), v = try floatConst(4, "var")
            let c = scale.count
            guard bias.count == c, mean.count == c, v.count == c else { throw fail("scale/B/mean/var sizes differ") }
            let eps = n.float("epsilon", 1e-5)
            var sc = [Float](repeating: 0, count: c), sh = [Float](repeating: 0, count: c)
            for i in 0..<c {
                sc[i] = scale.data[i] / (v.data[i] + eps).squareRoot()
                sh[i] = bias.data[i] - mean.data[i] * sc[i]
            }
            guard sc.allSatisfy(\.isFinite), sh.allSatisfy(\.isFinite) else { throw fail("non-finite batch-norm statistics") }
            return Built(op: ChannelAffineOp(scale: sc, shift: sh), operands: [0])

        case "Relu":
            _ = try dataShape()
            return Built(op: PiecewiseLinearOp(kind: .leaky(0)), operands: [0])
        case "LeakyRelu":
            _ = try dataShape()
            return Built(op: PiecewiseLinearOp(kind: .leaky(n.float("alpha", 0.01))), operands: [0])
        case "Clip":
            _ = try dataShape()
            var lo = -Float.infinity, hi = Float.infinity
            if opset < 11 { lo = n.float("min", lo); hi = n.float("max", hi) }
            if input(1).shape != nil { let t = try floatConst(1, "min"); guard t.count == 1 else { throw fail("min must be a scalar") }; lo = t.data[0] }
            if input(2).shape != nil { let t = try floatConst(2, "max"); guard t.count == 1 else { throw fail("max must be a scalar") }; hi = t.data[0] }
            return Built(op: PiecewiseLinearOp(kind: .clip(lo, hi)), operands: [0])
        case "Sigmoid", "Tanh", "Softplus":
            _ = try dataShape()
            let k: SmoothOp.Kind = n.op == "Sigmoid" ? .sigmoid : n.op == "Tanh" ? .tanh : .softplus
            return Built(op: SmoothOp(kind: k), operands: [0])

        case "Add", "Sub", "Mul", "Div":
            for i in 0..<2 {
                if case .constant(.ints) = input(i) { throw fail("integer operand \(i) mixed with float data") }
                if input(i).shape == nil { throw fail("input \(i) is missing") }
            }
            return Built(op: BinaryOp(kind: BinaryOp.Kind(rawValue: n.op)!), operands: [0, 1])

        case "Gemm":
            let a = try dataShape()
            guard a.count == 2 else { throw fail("input A must be 2-D, found \(a)") }
            if n.int("transA", 0) != 0 { throw fail("transA=1 on the data input is not supported") }
            let bt = try floatConst(1, "B")
            guard bt.shape.count == 2 else { throw fail("B must be 2-D, found \(bt.shape)") }
            let alpha = n.float("alpha", 1), beta = n.float("beta", 1)
            var w = n.int("transB", 0) != 0 ? bt.copy() : TransposeOp.permute(bt, [1, 0])
            if alpha != 1 { w = Broadcast.scaled(w, alpha) }
            guard w.shape[1] == a[1] else { throw fail("B \(bt.shape) does not match A \(a)") }
            var bias: Tensor?
            if input(2).shape != nil {
                let c = try floatConst(2, "C")
                let out = w.shape[0]
                if c.count == out && (c.shape == [out] || c.shape == [1, out]) {
                    bias = try Broadcast.scaled(c, beta).reshaped([out])
                } else if c.count == 1 {
                    bias = Tensor(shape: [out], repeating: c.data[0] * beta)
                } else { throw fail("C of shape \(c.shape) not supported (expected [\(out)] or [1,\(out)])") }
            }
            return Built(op: LinearOp(weight: w, bias: bias, op: "Gemm"), operands: [0])
        case "MatMul":
            _ = try dataShape()
            let b = try floatConst(1, "the right-hand side (input 1)")
            guard b.shape.count == 2 else { throw fail("the right-hand side must be a 2-D constant, found \(b.shape)") }
            return Built(op: LinearOp(weight: TransposeOp.permute(b, [1, 0]), bias: nil, op: "MatMul"), operands: [0])

        case "Flatten":
            let x = try dataShape()
            let ax = n.int("axis", 1)
            let a = ax < 0 ? ax + x.count : ax
            guard a >= 0 && a <= x.count else { throw fail("axis \(ax) out of range for rank \(x.count)") }
            return Built(op: ViewOp(shape: [x[..<a].reduce(1, *), x[a...].reduce(1, *)]), operands: [0])
        case "Reshape":
            let x = try dataShape()
            let spec = try intsConst(1, "the shape (input 1)")
            return Built(op: ViewOp(shape: try Fold.reshape(x, spec, allowZero: n.int("allowzero", 0) != 0, fail: fail)), operands: [0])
        case "Squeeze", "Unsqueeze":
            let x = try dataShape()
            let axes = opset >= 13 ? (input(1).shape == nil ? nil : try intsConst(1, "axes")) : n.ints("axes")
            return Built(op: ViewOp(shape: try Fold.squeeze(x, axes: axes, unsqueeze: n.op == "Unsqueeze", fail: fail)), operands: [0])
        case "Cast":   // float-to-float casts of image data never reach here (the plan passes them through)
            _ = try dataShape()
            throw fail("Cast of image data to type \(n.int("to", 1)) is not supported")
        case "Transpose":
            let x = try dataShape()
            let perm = n.ints("perm") ?? Array((0..<x.count).reversed())
            guard perm.sorted() == Array(0..<x.count) else { throw fail("perm \(perm) is not a permutation of 0..<\(x.count)") }
            return Built(op: TransposeOp(perm: perm), operands: [0])
        case "Concat":
            guard let r = ins.first?.shape?.count else { throw fail("no inputs") }
            for (i, o) in ins.enumerated() {
                if case .constant(.ints) = o { throw fail("integer input \(i) mixed with float data") }
            }
            return Built(op: ConcatOp(axis: try axis(n.int("axis", 0), rank: r)), operands: Array(0..<ins.count))
        case "GlobalAveragePool":
            _ = try dataShape()
            return Built(op: GlobalAveragePoolOp(), operands: [0])
        case "MaxPool", "AveragePool":
            let x = try dataShape()
            guard x.count == 4 else { throw fail("only 2-D pooling is supported (input \(x))") }
            guard let ks = n.ints("kernel_shape") else { throw fail("kernel_shape is required") }
            let k = try pair(ks, 1, "kernel_shape"), st = try pair(n.ints("strides"), 1, "strides")
            let dl = n.op == "MaxPool" ? try pair(n.ints("dilations"), 1, "dilations") : (1, 1)
            if n.int("storage_order", 0) != 0 { throw fail("storage_order=1 not supported") }
            let p = try pads4(kernel: k, strides: st, dilations: dl, h: x[2], w: x[3])
            guard p.0 < k.0, p.2 < k.0, p.1 < k.1, p.3 < k.1 else { throw fail("pads \(p) must be smaller than the window \(k)") }
            return Built(op: PoolOp(isMax: n.op == "MaxPool", kernel: k, strides: st, pads: p, dilations: dl,
                                    ceilMode: n.int("ceil_mode", 0) != 0, countIncludePad: n.int("count_include_pad", 0) != 0), operands: [0])
        case "Pad":
            let x = try dataShape()
            let mode = n.string("mode") ?? "constant"
            guard mode == "constant" else { throw fail("mode \(mode) not supported (only constant)") }
            var pads = opset >= 11 ? try intsConst(1, "pads") : (n.ints("pads") ?? [])
            var value: Float = 0
            if opset >= 11, input(2).shape != nil {
                let v = try floatConst(2, "constant_value")
                guard v.count == 1 else { throw fail("constant_value must be a scalar") }
                value = v.data[0]
            }
            if opset >= 18, input(3).shape != nil {
                let axes = try intsConst(3, "axes")
                guard pads.count == 2 * axes.count else { throw fail("pads \(pads) do not match axes \(axes)") }
                var full = [Int](repeating: 0, count: 2 * x.count)
                for (i, a) in axes.enumerated() {
                    let r = try axis(a, rank: x.count)
                    full[r] = pads[i]; full[r + x.count] = pads[i + axes.count]
                }
                pads = full
            }
            guard x.count == 4, pads.count == 8 else { throw fail("pads \(pads) for input \(x): only 4-D inputs are supported") }
            guard pads[0] == 0, pads[1] == 0, pads[4] == 0, pads[5] == 0 else { throw fail("padding of the batch or channel axis (pads \(pads)) is not supported") }
            guard pads.allSatisfy({ $0 >= 0 && $0 < 1 << 16 }) else { throw fail("pads \(pads): negative or huge pads are not supported") }
            return Built(op: PadOp(top: pads[2], left: pads[3], bottom: pads[6], right: pads[7], value: value), operands: [0])
        default:
            throw fail("\(n.op) is supported only on shape computations known at load time, not on data that depends on the image")
        }
    }
}

/// Plan-time evaluation of nodes with constant inputs.
enum Fold {
    /// Values as doubles with a shape, for data movement on either element type.
    struct Values {
        var shape: [Int]
        var v: [Double]
        var isFloat: Bool

        init(shape: [Int], v: [Double], isFloat: Bool) { self.shape = shape; self.v = v; self.isFloat = isFloat }
        init(_ g: GraphValue) {
            switch g {
            case .float(let t): self.init(shape: t.shape, v: t.array.map(Double.init), isFloat: true)
            case .ints(let a, let s): self.init(shape: s, v: a.map(Double.init), isFloat: false)
            }
        }
        func value() throws -> GraphValue {
            if isFloat { return .float(try Tensor(shape: shape, values: v.map { Float($0) })) }
            guard v.allSatisfy({ $0.isFinite && abs($0) < 9.2e18 }) else { throw JEMError.invalidArgument("integer value out of range") }
            return .ints(v.map { Int($0) }, shape: shape)
        }
    }

    static func shapeOf(_ s: [Int], node: GraphNode) throws -> GraphValue {
        var start = node.int("start", 0), end = node.int("end", s.count)
        if start < 0 { start += s.count }
        if end < 0 { end += s.count }
        start = min(max(start, 0), s.count); end = min(max(end, start), s.count)
        return .ints(Array(s[start..<end]), shape: [end - start])
    }

    static func reshape(_ x: [Int], _ spec: [Int], allowZero: Bool, fail: (String) -> JEMError) throws -> [Int] {
        let total = x.reduce(1, *)
        var out: [Int] = []
        var infer: Int?
        for (i, d) in spec.enumerated() {
            if d == 0 && !allowZero {
                guard i < x.count else { throw fail("shape \(spec): 0 at axis \(i) copies a dimension the input \(x) lacks") }
                out.append(x[i])
            } else if d == -1 {
                guard infer == nil else { throw fail("shape \(spec) has more than one -1") }
                infer = i; out.append(1)
            } else if d < 0 { throw fail("shape \(spec) has a negative dimension") } else { out.append(d) }
        }
        let known = out.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        if let i = infer {
            guard known > 0, total % known == 0 else { throw fail("shape \(spec) cannot hold the input \(x)") }
            out[i] = total / known
        }
        var product = 1, overflow = false
        for d in out { let (p, o) = product.multipliedReportingOverflow(by: d); overflow = overflow || o; product = p }
        guard !overflow, product == total else { throw fail("shape \(spec) resolves to \(out), which does not hold the input \(x)") }
        return out
    }

    static func squeeze(_ x: [Int], axes: [Int]?, unsqueeze: Bool, fail: (String) -> JEMError) throws -> [Int] {
        if unsqueeze {
            guard let axes else { throw fail("axes are required") }
            let r = x.count + axes.count
            let norm = axes.map { $0 < 0 ? $0 + r : $0 }
            guard norm.allSatisfy({ $0 >= 0 && $0 < r }), Set(norm).count == norm.count else { throw fail("axes \(axes) out of range for output rank \(r)") }
            var out: [Int] = []
            var it = x.makeIterator()
            for i in 0..<r { out.append(norm.contains(i) ? 1 : it.next()!) }
            return out
        }
        let norm = (axes ?? x.indices.filter { x[$0] == 1 }).map { $0 < 0 ? $0 + x.count : $0 }
        guard norm.allSatisfy({ $0 >= 0 && $0 < x.count && x[$0] == 1 }) else { throw fail("axes \(axes ?? []) do not name size-1 axes of \(x)") }
        return x.indices.filter { !norm.contains($0) }.map { x[$0] }
    }

    static func evaluate(_ n: GraphNode, _ ins: [GraphValue?], path: String, opset: Int) throws -> GraphValue {
        func fail(_ why: String) -> JEMError { .badFile(path: path, reason: "node \(n.label) (opset \(opset)): \(why)") }
        func input(_ i: Int) throws -> GraphValue {
            guard i < ins.count, let v = ins[i] else { throw fail("input \(i) is missing") }
            return v
        }
        func ints(_ i: Int) throws -> [Int] {
            guard let v = try input(i).intValues else { throw fail("input \(i) must be an integer tensor") }
            return v
        }
        let maxFolded = 1 << 26
        switch n.op {
        case "Constant":
            if let t = try n.tensor("value", path: path) { return t }
            if n.has("value_float") { return .float(Tensor(shape: [], repeating: n.float("value_float", 0))) }
            if let f = n.attributes["value_floats"] { return .float(try Tensor(shape: [f.floats.count], values: f.floats)) }
            if n.has("value_int") { return .ints([n.int("value_int", 0)], shape: []) }
            if let v = n.ints("value_ints") { return .ints(v, shape: [v.count]) }
            throw fail("Constant without a supported value attribute")
        case "Identity", "Dropout":
            return try input(0)
        case "Cast":
            var v = Values(try input(0))
            switch n.int("to", 1) {
            case 1, 10, 11: v.isFloat = true
            case 6, 7: v.v = v.v.map { $0.rounded(.towardZero) }; v.isFloat = false
            case 9: v.v = v.v.map { $0 != 0 ? 1 : 0 }; v.isFloat = false
            default: throw fail("Cast to type \(n.int("to", 1)) not supported")
            }
            return try v.value()
        case "Shape":
            return try shapeOf(try input(0).shape, node: n)
        case "ConstantOfShape":
            let s = try ints(0)
            let count = try ONNXReader.elementCount(s, what: "ConstantOfShape output", path: path)
            guard count <= maxFolded else { throw fail("ConstantOfShape of \(s) is too large") }
            let fill = try n.tensor("value", path: path) ?? .float(Tensor(shape: [1]))
            var v = Values(fill)
            guard v.v.count == 1 else { throw fail("value must hold one element") }
            v.v = Array(repeating: v.v[0], count: count); v.shape = s
            return try v.value()
        case "Reshape":
            var v = Values(try input(0))
            v.shape = try reshape(v.shape, try ints(1), allowZero: n.int("allowzero", 0) != 0, fail: fail)
            return try v.value()
        case "Flatten":
            var v = Values(try input(0))
            let ax = n.int("axis", 1), a = ax < 0 ? ax + v.shape.count : ax
            guard a >= 0 && a <= v.shape.count else { throw fail("axis \(ax) out of range") }
            v.shape = [v.shape[..<a].reduce(1, *), v.shape[a...].reduce(1, *)]
            return try v.value()
        case "Squeeze", "Unsqueeze":
            var v = Values(try input(0))
            let axes = opset >= 13 ? (ins.count > 1 && ins[1] != nil ? try ints(1) : nil) : n.ints("axes")
            v.shape = try squeeze(v.shape, axes: axes, unsqueeze: n.op == "Unsqueeze", fail: fail)
            return try v.value()
        case "Transpose":
            var v = Values(try input(0))
            let perm = n.ints("perm") ?? Array((0..<v.shape.count).reversed())
            guard perm.sorted() == Array(0..<v.shape.count) else { throw fail("perm \(perm) is not a permutation") }
            var out = [Double](repeating: 0, count: v.v.count)
            v.v.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { dst in
                if let s = src.baseAddress, let d = dst.baseAddress { Layout.permute(src: s, dst: d, shape: v.shape, perm: perm) }
            } }
            v.v = out; v.shape = perm.map { v.shape[$0] }
            return try v.value()
        case "Concat":
            let vs = try (0..<ins.count).map { Values(try input($0)) }
            guard let first = vs.first else { throw fail("no inputs") }
            let r = first.shape.count
            var ax = n.int("axis", 0); if ax < 0 { ax += r }
            guard ax >= 0 && ax < r, vs.allSatisfy({ $0.shape.count == r }) else { throw fail("axis \(n.int("axis", 0)) or ranks do not fit") }
            var shape = first.shape; shape[ax] = vs.reduce(0) { $0 + $1.shape[ax] }
            let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
            var out: [Double] = []
            for o in 0..<outer { for v in vs { let c = v.shape[ax] * inner; out += v.v[(o * c)..<((o + 1) * c)] } }
            return try Values(shape: shape, v: out, isFloat: vs.contains { $0.isFloat }).value()
        case "Gather":
            let d = Values(try input(0)), idx = try ints(1)
            let r = d.shape.count
            var ax = n.int("axis", 0); if ax < 0 { ax += r }
            guard ax >= 0 && ax < r else { throw fail("axis out of range") }
            let outer = d.shape[..<ax].reduce(1, *), inner = d.shape[(ax + 1)...].reduce(1, *), dim = d.shape[ax]
            var out: [Double] = []
            for o in 0..<outer {
                for i in idx {
                    let j = i < 0 ? i + dim : i
                    guard j >= 0 && j < dim else { throw fail("index \(i) out of range for axis of size \(dim)") }
                    out += d.v[((o * dim + j) * inner)..<((o * dim + j + 1) * inner)]
                }
            }
            let ishape = try input(1).shape
            return try Values(shape: Array(d.shape[..<ax]) + ishape + Array(d.shape[(ax + 1)...]), v: out, isFloat: d.isFloat).value()
        case "Slice":
            let d = Values(try input(0))
            let starts = try ints(1), ends = try ints(2)
            let r = d.shape.count
            let axes = ins.count > 3 && ins[3] != nil ? try ints(3) : Array(0..<starts.count)
            let steps = ins.count > 4 && ins[4] != nil ? try ints(4) : Array(repeating: 1, count: starts.count)
            guard ends.count == starts.count, axes.count == starts.count, steps.count == starts.count else { throw fail("starts/ends/axes/steps lengths differ") }
            var lo = [Int](repeating: 0, count: r), st = [Int](repeating: 1, count: r), cnt = d.shape
            for (k, a0) in axes.enumerated() {
                let a = a0 < 0 ? a0 + r : a0
                guard a >= 0 && a < r, steps[k] != 0 else { throw fail("axis \(a0) or step \(steps[k]) invalid") }
                let dim = d.shape[a], s = steps[k]
                func clampIdx(_ v: Int, _ lo: Int, _ hi: Int) -> Int { min(max(v < 0 ? v + dim : v, lo), hi) }
                let b = s > 0 ? clampIdx(starts[k], 0, dim) : clampIdx(starts[k], -1, dim - 1)
                let e = s > 0 ? clampIdx(ends[k], 0, dim) : clampIdx(ends[k], -1, dim - 1)
                lo[a] = b; st[a] = s
                cnt[a] = s > 0 ? max(0, (e - b + s - 1) / s) : max(0, (b - e + (-s) - 1) / (-s))
            }
            var strides = [Int](repeating: 1, count: r)
            for i in stride(from: r - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * d.shape[i + 1] }
            let total = cnt.reduce(1, *)
            var out: [Double] = []
            out.reserveCapacity(total)
            var idx = [Int](repeating: 0, count: r)
            for _ in 0..<total {
                var off = 0
                for a in 0..<r { off += (lo[a] + idx[a] * st[a]) * strides[a] }
                out.append(d.v[off])
                var a = r - 1
                while a >= 0 { idx[a] += 1; if idx[a] < cnt[a] { break }; idx[a] = 0; a -= 1 }
            }
            return try Values(shape: cnt, v: out, isFloat: d.isFloat).value()
        case "Add", "Sub", "Mul", "Div":
            let a = try input(0), b = try input(1)
            if case .float(let x) = a, case .float(let y) = b {
                return .float(try BinaryOp(kind: BinaryOp.Kind(rawValue: n.op)!).forward([x, y]))
            }
            guard case .ints(let x, let sx) = a, case .ints(let y, let sy) = b else { throw fail("mixed integer and float operands") }
            guard let o = Broadcast.shape(sx, sy) else { throw fail("shapes \(sx) and \(sy) do not broadcast") }
            let fx = try Tensor(shape: sx, values: x.map(Float.init)), fy = try Tensor(shape: sy, values: y.map(Float.init))
            let r: Tensor
            switch n.op {
            case "Add": r = Broadcast.map(fx, fy, o) { $0 + $1 }
            case "Sub": r = Broadcast.map(fx, fy, o) { $0 - $1 }
            case "Mul": r = Broadcast.map(fx, fy, o) { $0 * $1 }
            default:
                guard !y.contains(0) else { throw fail("integer division by zero") }
                r = Broadcast.map(fx, fy, o) { ($0 / $1).rounded(.down) }
            }
            return .ints(r.array.map { Int($0) }, shape: o)
        case "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softplus", "Clip", "Gemm", "MatMul", "Conv", "BatchNormalization",
             "GlobalAveragePool", "MaxPool", "AveragePool", "Pad":
            // A float subgraph on constants: run the op itself once.
            let operands: [Operand] = ins.enumerated().map { i, v in
                guard let v else { return .absent }
                if i == 0, case .float(let t) = v { return .variable(t.shape) }
                return .constant(v)
            }
            let built = try OpBuilder.build(n, ins: operands, path: path, opset: opset)
            let xs: [Tensor] = try built.operands.map { i in
                guard case .float(let t)? = ins[i] else { throw fail("input \(i) must be a float tensor") }
                return t
            }
            let shape: [Int]
            do { shape = try built.op.outputShape(xs.map(\.shape)) } catch { throw fail("\(error)") }
            guard try ONNXReader.elementCount(shape, what: "\(n.op) output", path: path) <= maxFolded else {
                throw fail("\(n.op) on constants of shape \(shape) is too large to fold")
            }
            return .float(try built.op.forward(xs))
        default:
            throw fail("\(n.op) on constants is not supported")
        }
    }
}
