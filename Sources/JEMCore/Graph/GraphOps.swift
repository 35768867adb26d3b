// GraphOps.swift: the executable ops of the ONNX graph executor. Each op computes its forward on
// the C kernels and gives three derivative rules:
//   vjp      — reverse mode: d(out) → d(inputs)                         (input gradients);
//   jvp      — forward mode: tangents of the inputs → tangent of the out (J·u);
//   dualVJP  — reverse mode over a tangent: (g, ġ) → (gᵢ, ġᵢ), where ġ carries the tangent of the
//              adjoint; ġ at the input is the Hessian–vector product.
// The default dualVJP applies vjp to g and ġ separately, which is exact for every op whose vjp
// does not depend on its inputs except through piecewise-constant choices (linear ops, ReLU-like
// masks, max-pool routing); the smooth activations and products of two variables override it.
import CJEMKernels

protocol GraphOp {
    /// Output shape for these input shapes; throws for a combination the op cannot run.
    func outputShape(_ inputs: [[Int]]) throws -> [Int]
    func forward(_ xs: [Tensor]) throws -> Tensor
    /// Gradients of the inputs marked in `needs` (nil elsewhere).
    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?]
    /// Tangent of the output; `ts[i]` nil means input i is constant.
    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor
    func dualVJP(_ g: Tensor, _ h: Tensor, _ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor, _ needs: [Bool]) -> [(Tensor, Tensor)?]
}

extension GraphOp {
    func dualVJP(_ g: Tensor, _ h: Tensor, _ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor, _ needs: [Bool]) -> [(Tensor, Tensor)?] {
        let a = vjp(g, xs, y, needs), b = vjp(h, xs, y, needs)
        return zip(a, b).map { p in p.0.map { ($0, p.1!) } }
    }
}

/// Conv2d with the node's attributes resolved. The im2col/Winograd kernels take groups 1,
/// dilation 1, one stride and one symmetric pad; anything else runs the direct kernel.
struct ConvOp: GraphOp {
    let weight: Tensor           // (OC, C/groups, KH, KW)
    let bias: Tensor?
    let strides: (Int, Int), pads: (Int, Int, Int, Int), dilations: (Int, Int), groups: Int

    var oc: Int { weight.shape[0] }
    var kh: Int { weight.shape[2] }
    var kw: Int { weight.shape[3] }

    var fast: Bool {
        groups == 1 && dilations == (1, 1) && strides.0 == strides.1
            && pads.0 == pads.1 && pads.1 == pads.2 && pads.2 == pads.3
    }

    func outputShape(_ s: [[Int]]) throws -> [Int] {
        let x = s[0]
        guard x.count == 4, x[1] == weight.shape[1] * groups else {
            throw JEMError.shapeMismatch(what: "Conv input", expected: [-1, weight.shape[1] * groups, -1, -1], found: x)
        }
        let oh = (x[2] + pads.0 + pads.2 - dilations.0 * (kh - 1) - 1) / strides.0 + 1
        let ow = (x[3] + pads.1 + pads.3 - dilations.1 * (kw - 1) - 1) / strides.1 + 1
        guard oh > 0, ow > 0 else { throw JEMError.invalidArgument("Conv: input \(x[2])×\(x[3]) is too small for a \(kh)×\(kw) kernel") }
        return [x[0], oc, oh, ow]
    }

    /// The convolution, with a LeakyReLU of `activation`'s slope fused into the epilogue if given.
    func run(_ x: Tensor, bias b: Tensor?, activation: Float? = nil) -> Tensor {
        let s = x.shape
        let (n, c, h, w) = (s[0], s[1], s[2], s[3])
        let os = try! outputShape([s])
        let out = Tensor(uninitialized: os)
        if fast {
            let ws = Tensor(uninitialized: [jem_conv2d_workspace(Int32(c), Int32(kh), Int32(kw), Int32(os[2]), Int32(os[3]), Int32(oc), Int32(Runtime.threads))])
            jem_conv2d_forward_act(out.data, x.data, weight.data, b?.data, Int32(n), Int32(c), Int32(h), Int32(w), Int32(oc), Int32(kh), Int32(kw),
                                   Int32(strides.0), Int32(pads.0), Int32(os[2]), Int32(os[3]), ws.data, activation == nil ? 0 : 1, activation ?? 0)
        } else {
            jem_conv2d_general_forward(out.data, x.data, weight.data, b?.data, Int32(n), Int32(c), Int32(h), Int32(w), Int32(oc), Int32(kh), Int32(kw),
                                       Int32(strides.0), Int32(strides.1), Int32(pads.0), Int32(pads.1), Int32(dilations.0), Int32(dilations.1),
                                       Int32(groups), Int32(os[2]), Int32(os[3]))
            if let a = activation { jem_leaky_relu_forward(out.data, out.data, a, out.count) }
        }
        return out
    }

    func forward(_ xs: [Tensor]) throws -> Tensor { run(xs[0], bias: bias) }

    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] {
        guard needs[0] else { return [nil] }
        let s = xs[0].shape
        let (n, c, h, w) = (s[0], s[1], s[2], s[3])
        let (oh, ow) = (g.shape[2], g.shape[3])
        let dx = Tensor(uninitialized: s)
        if fast {
            let ws = Tensor(uninitialized: [jem_conv2d_workspace(Int32(c), Int32(kh), Int32(kw), Int32(oh), Int32(ow), Int32(oc), Int32(Runtime.threads))])
            jem_conv2d_backward_input(dx.data, g.data, weight.data, Int32(n), Int32(c), Int32(h), Int32(w), Int32(oc), Int32(kh), Int32(kw),
                                      Int32(strides.0), Int32(pads.0), Int32(oh), Int32(ow), ws.data)
        } else {
            jem_conv2d_general_backward_input(dx.data, g.data, weight.data, Int32(n), Int32(c), Int32(h), Int32(w), Int32(oc), Int32(kh), Int32(kw),
                                              Int32(strides.0), Int32(strides.1), Int32(pads.0), Int32(pads.1), Int32(dilations.0), Int32(dilations.1),
                                              Int32(groups), Int32(oh), Int32(ow))
        }
        return [dx]
    }

    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor { run(ts[0]!, bias: nil) }
}

/// y = x·scale[c] + shift[c] over NCHW channels: eval-mode BatchNormalization and the input
/// normalisation added by --input-mean/--input-std.
struct ChannelAffineOp: GraphOp {
    let scale: [Float], shift: [Float]

    func outputShape(_ s: [[Int]]) throws -> [Int] {
        guard s[0].count >= 2, s[0][1] == scale.count else {
            throw JEMError.shapeMismatch(what: "BatchNormalization input", expected: [-1, scale.count, -1, -1], found: s[0])
        }
        return s[0]
    }

    private func apply(_ x: Tensor, shift sh: [Float]?) -> Tensor {
        let s = x.shape
        let hw = s.dropFirst(2).reduce(1, *)
        let out = Tensor(uninitialized: s)
        jem_channel_affine(out.data, x.data, scale, sh, Int32(s[0]), Int32(s[1]), Int32(hw))
        return out
    }

    func forward(_ xs: [Tensor]) throws -> Tensor { apply(xs[0], shift: shift) }
    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] { [needs[0] ? apply(g, shift: nil) : nil] }
    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor { apply(ts[0]!, shift: nil) }
}

/// ReLU, LeakyReLU and Clip: piecewise linear, y = x·slope(x) inside [lo, hi], the bound outside.
struct PiecewiseLinearOp: GraphOp {
    enum Kind { case leaky(Float), clip(Float, Float) }
    let kind: Kind

    func outputShape(_ s: [[Int]]) throws -> [Int] { s[0] }

    func forward(_ xs: [Tensor]) throws -> Tensor {
        let x = xs[0], out = Tensor(uninitialized: x.shape)
        switch kind {
        case .leaky(let a): jem_leaky_relu_forward(out.data, x.data, a, x.count)
        case let .clip(lo, hi):
            for i in 0..<x.count { let v = x.data[i]; out.data[i] = v < lo ? lo : (v > hi ? hi : v) }
        }
        return out
    }

    /// g masked by the local slope at x.
    func masked(_ g: Tensor, _ x: Tensor) -> Tensor {
        let out = Tensor(uninitialized: g.shape)
        switch kind {
        case .leaky(let a): jem_leaky_relu_backward(out.data, g.data, x.data, a, g.count)
        case let .clip(lo, hi):
            for i in 0..<g.count { let v = x.data[i]; out.data[i] = (v > lo && v < hi) ? g.data[i] : 0 }
        }
        return out
    }

    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] { [needs[0] ? masked(g, xs[0]) : nil] }
    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor { masked(ts[0]!, xs[0]) }
}

/// A linear op (Conv, Add, Sub) with the ReLU/LeakyReLU that is its only consumer applied in
/// place on its output: one pass and one tensor fewer. The slope mask is read from the output
/// (its sign is the pre-activation's for any slope ≥ 0).
struct ActivatedOp: GraphOp {
    let inner: GraphOp
    let slope: Float

    func outputShape(_ s: [[Int]]) throws -> [Int] { try inner.outputShape(s) }

    func forward(_ xs: [Tensor]) throws -> Tensor {
        if let c = inner as? ConvOp { return c.run(xs[0], bias: c.bias, activation: slope) }
        if let b = inner as? BinaryOp, b.kind == .add, xs[0].shape == xs[1].shape {
            let out = Tensor(uninitialized: xs[0].shape)
            jem_add_leaky_forward(out.data, xs[0].data, xs[1].data, slope, out.count)
            return out
        }
        let y = try inner.forward(xs)
        jem_leaky_relu_forward(y.data, y.data, slope, y.count)
        return y
    }

    func mask(_ g: Tensor, _ y: Tensor) -> Tensor {
        let out = Tensor(uninitialized: g.shape)
        jem_leaky_relu_backward(out.data, g.data, y.data, slope, g.count)
        return out
    }

    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] { inner.vjp(mask(g, y), xs, y, needs) }
    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor { mask(inner.jvp(xs, ts, y), y) }
    func dualVJP(_ g: Tensor, _ h: Tensor, _ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor, _ needs: [Bool]) -> [(Tensor, Tensor)?] {
        inner.dualVJP(mask(g, y), mask(h, y), xs, ts, y, needs)
    }
}

/// Sigmoid, Tanh, Softplus.
struct SmoothOp: GraphOp {
    enum Kind: Int32 { case sigmoid = 0, tanh = 1, softplus = 2 }
    let kind: Kind

    func outputShape(_ s: [[Int]]) throws -> [Int] { s[0] }

    func forward(_ xs: [Tensor]) throws -> Tensor {
        let out = Tensor(uninitialized: xs[0].shape)
        jem_smooth_forward(out.data, xs[0].data, kind.rawValue, out.count)
        return out
    }

    func derivative(_ g: Tensor, _ x: Tensor) -> Tensor {
        let out = Tensor(uninitialized: g.shape)
        jem_smooth_backward(out.data, g.data, x.data, kind.rawValue, g.count)
        return out
    }

    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] { [needs[0] ? derivative(g, xs[0]) : nil] }
    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor { derivative(ts[0]!, xs[0]) }

    func dualVJP(_ g: Tensor, _ h: Tensor, _ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor, _ needs: [Bool]) -> [(Tensor, Tensor)?] {
        guard needs[0] else { return [nil] }
        let a = Tensor(uninitialized: g.shape), b = Tensor(uninitialized: g.shape)
        jem_smooth_dual_backward(a.data, b.data, g.data, h.data, xs[0].data, ts[0]!.data, kind.rawValue, g.count)
        return [(a, b)]
    }
}

/// Add, Sub, Mul, Div with NumPy broadcasting; either side may be a constant.
struct BinaryOp: GraphOp {
    enum Kind: String { case add = "Add", sub = "Sub", mul = "Mul", div = "Div" }
    let kind: Kind

    func outputShape(_ s: [[Int]]) throws -> [Int] {
        guard let o = Broadcast.shape(s[0], s[1]) else {
            throw JEMError.invalidArgument("\(kind.rawValue): shapes \(s[0]) and \(s[1]) do not broadcast")
        }
        return o
    }

    func forward(_ xs: [Tensor]) throws -> Tensor {
        let o = try outputShape([xs[0].shape, xs[1].shape])
        if kind == .add && xs[0].shape == o && xs[1].shape == o {
            let out = Tensor(uninitialized: o)
            jem_add_forward(out.data, xs[0].data, xs[1].data, out.count)
            return out
        }
        switch kind {
        case .add: return Broadcast.map(xs[0], xs[1], o) { $0 + $1 }
        case .sub: return Broadcast.map(xs[0], xs[1], o) { $0 - $1 }
        case .mul: return Broadcast.map(xs[0], xs[1], o) { $0 * $1 }
        case .div: return Broadcast.map(xs[0], xs[1], o) { $0 / $1 }
        }
    }

    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] {
        let (a, b) = (xs[0], xs[1])
        var ga: Tensor?, gb: Tensor?
        switch kind {
        case .add:
            if needs[0] { ga = Broadcast.reduce(g, to: a.shape) }
            if needs[1] { gb = Broadcast.reduce(g, to: b.shape) }
        case .sub:
            if needs[0] { ga = Broadcast.reduce(g, to: a.shape) }
            if needs[1] { gb = Broadcast.reduce(Broadcast.scaled(g, -1), to: b.shape) }
        case .mul:
            if needs[0] { ga = Broadcast.reduce(Broadcast.map(g, b, g.shape) { $0 * $1 }, to: a.shape) }
            if needs[1] { gb = Broadcast.reduce(Broadcast.map(g, a, g.shape) { $0 * $1 }, to: b.shape) }
        case .div:
            if needs[0] { ga = Broadcast.reduce(Broadcast.map(g, b, g.shape) { $0 / $1 }, to: a.shape) }
            if needs[1] {   // −g·a/b² = −g·y/b
                let gy = Broadcast.map(g, y, g.shape) { $0 * $1 }
                gb = Broadcast.reduce(Broadcast.map(gy, b, g.shape) { -$0 / $1 }, to: b.shape)
            }
        }
        return [ga, gb]
    }

    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor {
        let (a, b) = (xs[0], xs[1])
        let o = y.shape
        var out = Tensor(shape: o)
        func add(_ t: Tensor) { out = Broadcast.map(out, t, o) { $0 + $1 } }
        switch kind {
        case .add:
            if let ta = ts[0] { add(ta) }
            if let tb = ts[1] { add(tb) }
        case .sub:
            if let ta = ts[0] { add(ta) }
            if let tb = ts[1] { out = Broadcast.map(out, tb, o) { $0 - $1 } }
        case .mul:
            if let ta = ts[0] { add(Broadcast.map(ta, b, o) { $0 * $1 }) }
            if let tb = ts[1] { add(Broadcast.map(a, tb, o) { $0 * $1 }) }
        case .div:
            if let ta = ts[0] { add(Broadcast.map(ta, b, o) { $0 / $1 }) }
            if let tb = ts[1] {   // −y·ḃ/b
                let yt = Broadcast.map(y, tb, o) { $0 * $1 }
                out = Broadcast.map(out, Broadcast.map(yt, b, o) { $0 / $1 }, o) { $0 - $1 }
            }
        }
        return out
    }

    func dualVJP(_ g: Tensor, _ h: Tensor, _ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor, _ needs: [Bool]) -> [(Tensor, Tensor)?] {
        // Add/Sub, and Mul/Div by a constant, are linear in the variable input.
        let bothVariable = ts[0] != nil && ts[1] != nil
        if kind == .add || kind == .sub || (kind == .mul && !bothVariable) || (kind == .div && ts[1] == nil) {
            let p = vjp(g, xs, y, needs), q = vjp(h, xs, y, needs)
            return zip(p, q).map { r in r.0.map { ($0, r.1!) } }
        }
        let (a, b) = (xs[0], xs[1])
        let o = g.shape
        let first = vjp(g, xs, y, needs), hFirst = vjp(h, xs, y, needs)
        var out: [(Tensor, Tensor)?] = [nil, nil]
        if kind == .mul {
            // ġa = ġ·b + g·ḃ, ġb = ġ·a + g·ȧ
            if needs[0] {
                let extra = ts[1].map { Broadcast.reduce(Broadcast.map(g, $0, o) { $0 * $1 }, to: a.shape) }
                out[0] = (first[0]!, extra.map { Broadcast.map(hFirst[0]!, $0, a.shape) { $0 + $1 } } ?? hFirst[0]!)
            }
            if needs[1] {
                let extra = ts[0].map { Broadcast.reduce(Broadcast.map(g, $0, o) { $0 * $1 }, to: b.shape) }
                out[1] = (first[1]!, extra.map { Broadcast.map(hFirst[1]!, $0, b.shape) { $0 + $1 } } ?? hFirst[1]!)
            }
            return out
        }
        // Div with a variable denominator: y = a/b.
        //   ga = g/b,        ġa = ġ/b − g·ḃ/b²
        //   gb = −g·y/b,     ġb = −ġ·y/b − g·(ẏ·b − y·ḃ)/b²,  ẏ = ȧ/b − y·ḃ/b
        let tb = ts[1]!
        let yDot = jvp(xs, ts, y)
        if needs[0] {
            let gtb = Broadcast.map(g, tb, o) { $0 * $1 }
            let corr = Broadcast.map(Broadcast.map(gtb, b, o) { $0 / $1 }, b, o) { $0 / $1 }
            out[0] = (first[0]!, Broadcast.map(hFirst[0]!, Broadcast.reduce(corr, to: a.shape), a.shape) { $0 - $1 })
        }
        if needs[1] {
            let num = Broadcast.map(Broadcast.map(yDot, b, o) { $0 * $1 }, Broadcast.map(y, tb, o) { $0 * $1 }, o) { $0 - $1 }
            let corr = Broadcast.map(Broadcast.map(Broadcast.map(g, num, o) { $0 * $1 }, b, o) { $0 / $1 }, b, o) { $0 / $1 }
            out[1] = (first[1]!, Broadcast.map(hFirst[1]!, Broadcast.reduce(corr, to: b.shape), b.shape) { $0 - $1 })
        }
        return out
    }
}

/// Gemm and MatMul with a constant right-hand side: y (M, OUT) = x (M, IN)·Wᵀ + bias, x flattened
/// to rows over its leading dimensions.
struct LinearOp: GraphOp {
    let weight: Tensor   // (OUT, IN)
    let bias: Tensor?    // (OUT)
    let op: String

    var fin: Int { weight.shape[1] }
    var fout: Int { weight.shape[0] }

    func outputShape(_ s: [[Int]]) throws -> [Int] {
        guard s[0].count >= 2, s[0].last == fin else {
            throw JEMError.shapeMismatch(what: "\(op) input", expected: [-1, fin], found: s[0])
        }
        return Array(s[0].dropLast()) + [fout]
    }

    /// The convolution, with a LeakyReLU of `activation`'s slope fused into the epilogue if given.
    func run(_ x: Tensor, bias b: Tensor?, activation: Float? = nil) -> Tensor {
        let rows = x.count / fin
        let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [fout])
        jem_linear_forward(out.data, x.data, weight.data, b?.data, Int32(rows), Int32(fin), Int32(fout))
        return out
    }

    func forward(_ xs: [Tensor]) throws -> Tensor { run(xs[0], bias: bias) }

    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] {
        guard needs[0] else { return [nil] }
        let dx = Tensor(uninitialized: xs[0].shape)
        jem_linear_backward(dx.data, nil, nil, g.data, xs[0].data, weight.data, Int32(xs[0].count / fin), Int32(fin), Int32(fout))
        return [dx]
    }

    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor { run(ts[0]!, bias: nil) }
}

/// Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout (inference): the same data, new shape.
struct ViewOp: GraphOp {
    let shape: [Int]

    func outputShape(_ s: [[Int]]) throws -> [Int] {
        guard s[0].reduce(1, *) == shape.reduce(1, *) else { throw JEMError.shapeMismatch(what: "Reshape", expected: shape, found: s[0]) }
        return shape
    }

    func view(_ x: Tensor, _ s: [Int]) -> Tensor {
        let out = Tensor(uninitialized: s)
        out.data.update(from: x.data, count: x.count)
        return out
    }

    func forward(_ xs: [Tensor]) throws -> Tensor { view(xs[0], shape) }
    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] { [needs[0] ? view(g, xs[0].shape) : nil] }
    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor { view(ts[0]!, shape) }
}

struct TransposeOp: GraphOp {
    let perm: [Int]

    func outputShape(_ s: [[Int]]) throws -> [Int] {
        guard s[0].count == perm.count else { throw JEMError.invalidArgument("Transpose: perm \(perm) for a rank-\(s[0].count) tensor") }
        return perm.map { s[0][$0] }
    }

    static func permute(_ x: Tensor, _ perm: [Int]) -> Tensor {
        let s = x.shape
        let out = Tensor(uninitialized: perm.map { s[$0] })
        Layout.permute(src: UnsafePointer(x.data), dst: out.data, shape: s, perm: perm)
        return out
    }

    var inverse: [Int] {
        var inv = [Int](repeating: 0, count: perm.count)
        for (i, p) in perm.enumerated() { inv[p] = i }
        return inv
    }

    func forward(_ xs: [Tensor]) throws -> Tensor { Self.permute(xs[0], perm) }
    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] { [needs[0] ? Self.permute(g, inverse) : nil] }
    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor { Self.permute(ts[0]!, perm) }
}

struct ConcatOp: GraphOp {
    let axis: Int

    func outputShape(_ s: [[Int]]) throws -> [Int] {
        var o = s[0]
        for t in s.dropFirst() {
            guard t.count == o.count, (0..<o.count).allSatisfy({ $0 == axis || t[$0] == o[$0] }) else {
                throw JEMError.invalidArgument("Concat on axis \(axis): shapes \(s) differ off the axis")
            }
            o[axis] += t[axis]
        }
        return o
    }

    func forward(_ xs: [Tensor]) throws -> Tensor {
        let o = try outputShape(xs.map(\.shape))
        let out = Tensor(uninitialized: o)
        let outer = o[..<axis].reduce(1, *), inner = o[(axis + 1)...].reduce(1, *)
        var off = 0
        for x in xs {
            let chunk = x.shape[axis] * inner
            for r in 0..<outer { (out.data + r * o[axis] * inner + off).update(from: x.data + r * chunk, count: chunk) }
            off += chunk
        }
        return out
    }

    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] {
        let o = g.shape
        let outer = o[..<axis].reduce(1, *), inner = o[(axis + 1)...].reduce(1, *)
        var off = 0
        var res: [Tensor?] = []
        for (i, x) in xs.enumerated() {
            let chunk = x.shape[axis] * inner
            if needs[i] {
                let d = Tensor(uninitialized: x.shape)
                for r in 0..<outer { (d.data + r * chunk).update(from: g.data + r * o[axis] * inner + off, count: chunk) }
                res.append(d)
            } else { res.append(nil) }
            off += chunk
        }
        return res
    }

    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor {
        try! forward(zip(xs, ts).map { $1 ?? Tensor(shape: $0.shape) })
    }
}

/// GlobalAveragePool: (N, C, H, W) → (N, C, 1, 1).
struct GlobalAveragePoolOp: GraphOp {
    func outputShape(_ s: [[Int]]) throws -> [Int] {
        guard s[0].count == 4 else { throw JEMError.shapeMismatch(what: "GlobalAveragePool input", expected: [-1, -1, -1, -1], found: s[0]) }
        return [s[0][0], s[0][1], 1, 1]
    }

    func forward(_ xs: [Tensor]) throws -> Tensor {
        let s = xs[0].shape
        let out = Tensor(uninitialized: [s[0], s[1], 1, 1])
        jem_global_avg_pool_forward(out.data, xs[0].data, Int32(s[0]), Int32(s[1]), Int32(s[2] * s[3]))
        return out
    }

    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] {
        guard needs[0] else { return [nil] }
        let s = xs[0].shape
        let dx = Tensor(uninitialized: s)
        jem_global_avg_pool_backward(dx.data, g.data, Int32(s[0]), Int32(s[1]), Int32(s[2] * s[3]))
        return [dx]
    }

    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor { try! forward([ts[0]!]) }
}

/// MaxPool and AveragePool over H, W.
struct PoolOp: GraphOp {
    let isMax: Bool
    let kernel: (Int, Int), strides: (Int, Int), pads: (Int, Int, Int, Int), dilations: (Int, Int)
    let ceilMode: Bool, countIncludePad: Bool

    func outputShape(_ s: [[Int]]) throws -> [Int] {
        let x = s[0]
        guard x.count == 4 else { throw JEMError.shapeMismatch(what: "pool input", expected: [-1, -1, -1, -1], found: x) }
        func size(_ n: Int, _ p0: Int, _ p1: Int, _ k: Int, _ s: Int, _ d: Int) -> Int {
            let span = n + p0 + p1 - d * (k - 1) - 1
            var o = (ceilMode ? (span + s - 1) / s : span / s) + 1
            if ceilMode && (o - 1) * s >= n + p0 { o -= 1 }   // the last window must start inside
            return o
        }
        let oh = size(x[2], pads.0, pads.2, kernel.0, strides.0, dilations.0)
        let ow = size(x[3], pads.1, pads.3, kernel.1, strides.1, dilations.1)
        guard oh > 0, ow > 0 else { throw JEMError.invalidArgument("pool: input \(x[2])×\(x[3]) is too small for a \(kernel.0)×\(kernel.1) window") }
        return [x[0], x[1], oh, ow]
    }

    func args(_ s: [Int], _ o: [Int]) -> (Int32, Int32, Int32) { (Int32(s[0] * s[1]), Int32(s[2]), Int32(s[3])) }

    func forward(_ xs: [Tensor]) throws -> Tensor {
        let s = xs[0].shape, o = try outputShape([s])
        let out = Tensor(uninitialized: o)
        let (nc, h, w) = args(s, o)
        if isMax {
            jem_maxpool_forward(out.data, xs[0].data, nc, h, w, Int32(kernel.0), Int32(kernel.1), Int32(strides.0), Int32(strides.1),
                                Int32(pads.0), Int32(pads.1), Int32(dilations.0), Int32(dilations.1), Int32(o[2]), Int32(o[3]))
        } else {
            jem_avgpool_forward(out.data, xs[0].data, nc, h, w, Int32(kernel.0), Int32(kernel.1), Int32(strides.0), Int32(strides.1),
                                Int32(pads.0), Int32(pads.1), countIncludePad ? 1 : 0, Int32(o[2]), Int32(o[3]))
        }
        return out
    }

    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] {
        guard needs[0] else { return [nil] }
        let s = xs[0].shape, o = g.shape
        let dx = Tensor(uninitialized: s)
        let (nc, h, w) = args(s, o)
        if isMax {
            jem_maxpool_backward(dx.data, g.data, xs[0].data, nc, h, w, Int32(kernel.0), Int32(kernel.1), Int32(strides.0), Int32(strides.1),
                                 Int32(pads.0), Int32(pads.1), Int32(dilations.0), Int32(dilations.1), Int32(o[2]), Int32(o[3]))
        } else {
            jem_avgpool_backward(dx.data, g.data, nc, h, w, Int32(kernel.0), Int32(kernel.1), Int32(strides.0), Int32(strides.1),
                                 Int32(pads.0), Int32(pads.1), countIncludePad ? 1 : 0, Int32(o[2]), Int32(o[3]))
        }
        return [dx]
    }

    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor {
        guard isMax else { return try! forward([ts[0]!]) }
        let s = xs[0].shape, o = y.shape
        let out = Tensor(uninitialized: o)
        let (nc, h, w) = args(s, o)
        jem_maxpool_tangent(out.data, ts[0]!.data, xs[0].data, nc, h, w, Int32(kernel.0), Int32(kernel.1), Int32(strides.0), Int32(strides.1),
                            Int32(pads.0), Int32(pads.1), Int32(dilations.0), Int32(dilations.1), Int32(o[2]), Int32(o[3]))
        return out
    }
}

/// Pad, constant mode, on the two spatial axes of NCHW (pads ≥ 0).
struct PadOp: GraphOp {
    let top: Int, left: Int, bottom: Int, right: Int
    let value: Float

    func outputShape(_ s: [[Int]]) throws -> [Int] {
        guard s[0].count == 4 else { throw JEMError.shapeMismatch(what: "Pad input", expected: [-1, -1, -1, -1], found: s[0]) }
        return [s[0][0], s[0][1], s[0][2] + top + bottom, s[0][3] + left + right]
    }

    func pad(_ x: Tensor, fill: Float) -> Tensor {
        let s = x.shape, o = try! outputShape([s])
        let out = Tensor(shape: o, repeating: fill)
        let (h, w, ow) = (s[2], s[3], o[3])
        for p in 0..<(s[0] * s[1]) {
            for r in 0..<h { (out.data + p * o[2] * ow + (r + top) * ow + left).update(from: x.data + p * h * w + r * w, count: w) }
        }
        return out
    }

    func forward(_ xs: [Tensor]) throws -> Tensor { pad(xs[0], fill: value) }

    func vjp(_ g: Tensor, _ xs: [Tensor], _ y: Tensor, _ needs: [Bool]) -> [Tensor?] {
        guard needs[0] else { return [nil] }
        let s = xs[0].shape, o = g.shape
        let dx = Tensor(uninitialized: s)
        let (h, w, ow) = (s[2], s[3], o[3])
        for p in 0..<(s[0] * s[1]) {
            for r in 0..<h { (dx.data + p * h * w + r * w).update(from: g.data + p * o[2] * ow + (r + top) * ow + left, count: w) }
        }
        return [dx]
    }

    func jvp(_ xs: [Tensor], _ ts: [Tensor?], _ y: Tensor) -> Tensor { pad(ts[0]!, fill: 0) }
}

/// NumPy broadcasting on float tensors.
enum Broadcast {
    static func shape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let r = max(a.count, b.count)
        let pa = [Int](repeating: 1, count: r - a.count) + a, pb = [Int](repeating: 1, count: r - b.count) + b
        var o: [Int] = []
        for (x, y) in zip(pa, pb) {
            if x == y || y == 1 { o.append(x) } else if x == 1 { o.append(y) } else { return nil }
        }
        return o
    }

    /// Strides of `s` read as shape `o` (0 along broadcast axes).
    static func strides(_ s: [Int], _ o: [Int]) -> [Int] {
        let p = [Int](repeating: 1, count: o.count - s.count) + s
        var st = [Int](repeating: 0, count: o.count)
        var acc = 1
        for i in stride(from: o.count - 1, through: 0, by: -1) {
            st[i] = p[i] == 1 ? 0 : acc
            acc *= p[i]
        }
        return st
    }

    /// out[i] = f(a[i], b[i]) over the broadcast shape `o`.
    static func map(_ a: Tensor, _ b: Tensor, _ o: [Int], _ f: (Float, Float) -> Float) -> Tensor {
        let out = Tensor(uninitialized: o)
        if a.shape == o && b.shape == o {
            for i in 0..<out.count { out.data[i] = f(a.data[i], b.data[i]) }
            return out
        }
        if a.shape == o && b.count == 1 {
            let v = b.data[0]
            for i in 0..<out.count { out.data[i] = f(a.data[i], v) }
            return out
        }
        let sa = strides(a.shape, o), sb = strides(b.shape, o)
        let r = o.count
        guard r > 0 else { out.data[0] = f(a.data[0], b.data[0]); return out }
        let inner = o[r - 1], ia = sa[r - 1], ib = sb[r - 1]
        let outer = out.count / max(inner, 1)
        var idx = [Int](repeating: 0, count: r)
        for row in 0..<outer {
            var rem = row, oa = 0, ob = 0
            for d in stride(from: r - 2, through: 0, by: -1) {
                idx[d] = rem % o[d]; rem /= o[d]
                oa += idx[d] * sa[d]; ob += idx[d] * sb[d]
            }
            let base = row * inner
            for j in 0..<inner { out.data[base + j] = f(a.data[oa + j * ia], b.data[ob + j * ib]) }
        }
        return out
    }

    /// Sums `g` (broadcast shape) down to shape `s`.
    static func reduce(_ g: Tensor, to s: [Int]) -> Tensor {
        if g.shape == s { return g }
        let o = g.shape
        let out = Tensor(shape: s)
        let st = strides(s, o)
        let r = o.count
        let inner = o[r - 1], ist = st[r - 1]
        let outer = g.count / max(inner, 1)
        for row in 0..<outer {
            var rem = row, off = 0
            for d in stride(from: r - 2, through: 0, by: -1) { off += (rem % o[d]) * st[d]; rem /= o[d] }
            for j in 0..<inner { out.data[off + j * ist] += g.data[row * inner + j] }
        }
        return out
    }

    static func scaled(_ g: Tensor, _ a: Float) -> Tensor {
        let out = Tensor(uninitialized: g.shape)
        for i in 0..<g.count { out.data[i] = g.data[i] * a }
        return out
    }
}

/// Index arithmetic shared by float and integer tensors.
enum Layout {
    static func permute<T>(src: UnsafePointer<T>, dst: UnsafeMutablePointer<T>, shape s: [Int], perm: [Int]) {
        let r = s.count
        let count = s.reduce(1, *)
        guard r > 0, count > 0 else { if count == 1 { dst[0] = src[0] }; return }
        var inStride = [Int](repeating: 1, count: r)
        for i in stride(from: r - 2, through: 0, by: -1) { inStride[i] = inStride[i + 1] * s[i + 1] }
        let os = perm.map { s[$0] }
        let srcStride = perm.map { inStride[$0] }
        var idx = [Int](repeating: 0, count: r)
        for o in 0..<count {
            var off = 0
            for d in 0..<r { off += idx[d] * srcStride[d] }
            dst[o] = src[off]
            var d = r - 1
            while d >= 0 { idx[d] += 1; if idx[d] < os[d] { break }; idx[d] = 0; d -= 1 }
        }
    }
}
