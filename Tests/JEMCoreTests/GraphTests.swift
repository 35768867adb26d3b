// GraphTests.swift: the ONNX graph executor. Golden files (scripts/make_onnx_fixtures.py: models
// exported by PyTorch, logits from onnxruntime, gradients and HVPs from PyTorch in float64); the
// executor against the hand-written Wide-ResNet on the same weights; every op's forward against a
// naive oracle and its three derivative rules against finite differences; bad files refused.
import Foundation
import XCTest
import CJEMKernels
@testable import JEMCore

final class GraphTests: XCTestCase {
    override func setUp() { Runtime.configure(threads: 2) }

    func onnx(_ name: String) -> String { Bundle.module.path(forResource: name, ofType: nil, inDirectory: "Fixtures/onnx")! }
    func npy(_ name: String) throws -> Tensor { try NpyArray.read(path: onnx(name + ".npy")).tensor() }

    func runGolden(_ stem: String, hvpTol: Float = 1e-3) throws {
        let m = try GraphModel(path: onnx(stem + ".onnx"))
        let x = try npy(stem + "_input")
        assertClose(try m.logits(x), try npy(stem + "_logits_ort"), tol: 1e-4, "\(stem) logits vs onnxruntime")
        let w = try npy(stem + "_weights")
        let (z, g) = try m.inputGradient(x) { _ in w }
        assertClose(z, try npy(stem + "_logits_ort"), tol: 1e-4, "\(stem) logits of the gradient pass")
        assertClose(g, try npy(stem + "_grad"), tol: 1e-4, "\(stem) input gradient vs PyTorch")
        let hvp = try m.logDensityHVP(x, try npy(stem + "_tangent"))
        assertClose(hvp, try npy(stem + "_hvp"), tol: hvpTol, "\(stem) Hessian–vector product vs PyTorch")
        // A different batch size compiles its own plan and gives the same rows.
        let one = try m.logits(x.rows(1, 1))
        assertClose(one, try m.logits(x).rows(1, 1), tol: 1e-5, "\(stem) batch 1 vs batch \(x.shape[0])")
    }

    func testResNet18() throws { try runGolden("resnet18_tiny") }
    func testPreActResNetWithSiLUAndPad() throws { try runGolden("preact_silu_tiny") }
    func testRobustBenchWideResNet() throws { try runGolden("rbwrn_tiny") }
    func testLeNetWithMaxPool() throws { try runGolden("lenet") }
    func testEveryOtherOp() throws { try runGolden("zoo") }

    /// The same weights through the executor and through the hand-written Wide-ResNet.
    func testGraphEqualsWideResNet() throws {
        let g = try GraphModel(path: onnx("wrn10_1_batch.onnx"))
        let w = try ModelIO.load(path: fixture("wrn10_1_batch_model.safetensors")).model
        let x = try NpyArray.read(path: fixture("wrn10_1_batch_input.npy")).tensor()
        XCTAssertEqual(g.numClasses, w.numClasses)
        assertClose(try g.logits(x), try w.logits(x), tol: 1e-5, "logits")
        assertClose(try g.logDensityGradient(x).gradient, try w.logDensityGradient(x).gradient, tol: 1e-4, "∇ logsumexp")
        assertClose(try g.features(x), try w.features(x), tol: 1e-5, "penultimate features")
        var rng = SeededRandom(seed: 3)
        let u = randomTensor(x.shape, &rng)
        assertClose(try g.logDensityHVP(x, u), try w.logDensityHVP(x, u), tol: 1e-3, "HVP")
    }

    func testInputNormalisationInFront() throws {
        let plain = try GraphModel(path: onnx("lenet.onnx"))
        let norm = try GraphModel(path: onnx("lenet.onnx"), inputMean: [0.25], inputStd: [0.5])
        let x = try npy("lenet_input")
        let shifted = Tensor(shape: x.shape)
        for i in 0..<x.count { shifted.data[i] = (x.data[i] - 0.25) / 0.5 }
        assertClose(try norm.logits(x), try plain.logits(shifted), tol: 1e-6, "normalised input")
        XCTAssertEqual(norm.inputScale, [0.5])
        XCTAssertEqual(plain.inputScale, [1])
    }

    // MARK: ops against oracles and finite differences

    /// Naive grouped, dilated, strided, padded convolution.
    func naiveConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, st: (Int, Int), p: (Int, Int, Int, Int), d: (Int, Int), groups: Int) -> Tensor {
        let (n, h, wd) = (x.shape[0], x.shape[2], x.shape[3])
        let (oc, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let oh = (h + p.0 + p.2 - d.0 * (kh - 1) - 1) / st.0 + 1, ow = (wd + p.1 + p.3 - d.1 * (kw - 1) - 1) / st.1 + 1
        let out = Tensor(shape: [n, oc, oh, ow])
        let ocg = oc / groups
        for i in 0..<n { for o in 0..<oc { for y in 0..<oh { for xx in 0..<ow {
            var s = b?.data[o] ?? 0
            let g = o / ocg
            for ci in 0..<cg { for ky in 0..<kh { for kx in 0..<kw {
                let iy = y * st.0 - p.0 + ky * d.0, ix = xx * st.1 - p.1 + kx * d.1
                if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                    s += w.data[((o * cg + ci) * kh + ky) * kw + kx] * x.data[((i * x.shape[1] + g * cg + ci) * h + iy) * wd + ix]
                }
            } } }
            out.data[((i * oc + o) * oh + y) * ow + xx] = s
        } } } }
        return out
    }

    func testConvolutionAgainstNaive() throws {
        var rng = SeededRandom(seed: 11)
        let cases: [(groups: Int, st: (Int, Int), p: (Int, Int, Int, Int), d: (Int, Int))] = [
            (1, (1, 1), (1, 1, 1, 1), (1, 1)),    // fast path
            (4, (1, 1), (1, 1, 1, 1), (1, 1)),    // depthwise
            (2, (2, 1), (0, 1, 2, 0), (2, 1)),    // grouped, strided, asymmetric, dilated
            (1, (2, 2), (1, 0, 1, 0), (1, 1)),    // asymmetric pads → direct kernel
        ]
        for cs in cases {
            let x = randomTensor([2, 4, 7, 6], &rng), w = randomTensor([4, 4 / cs.groups, 3, 3], &rng), b = randomTensor([4], &rng)
            let op = ConvOp(weight: w, bias: b, strides: cs.st, pads: cs.p, dilations: cs.d, groups: cs.groups)
            let y = try op.forward([x])
            assertClose(y, naiveConv(x, w, b, st: cs.st, p: cs.p, d: cs.d, groups: cs.groups), tol: 1e-5, "conv groups \(cs.groups)")
            try checkOp(op, [x], "conv groups \(cs.groups) strides \(cs.st)")
        }
    }

    /// The ReLU fused into the convolution's epilogue (im2col and Winograd paths) and into the
    /// residual add equals the two ops one after the other.
    func testFusedActivations() throws {
        var rng = SeededRandom(seed: 14)
        for (c, hw, st) in [(16, 8, 1), (16, 8, 2), (3, 5, 1)] {
            XCTAssertEqual(jem_conv2d_uses_winograd(4, Int32(c), Int32(hw), Int32(hw), 16, 3, 3, Int32(st), 1) != 0, c == 16 && st == 1)
            let x = randomTensor([4, c, hw, hw], &rng), w = randomTensor([16, c, 3, 3], &rng), b = randomTensor([16], &rng)
            let conv = ConvOp(weight: w, bias: b, strides: (st, st), pads: (1, 1, 1, 1), dilations: (1, 1), groups: 1)
            for slope: Float in [0, 0.2] {
                let fused = ActivatedOp(inner: conv, slope: slope)
                let want = try PiecewiseLinearOp(kind: .leaky(slope)).forward([try conv.forward([x])])
                assertClose(try fused.forward([x]), want, tol: 1e-6, "conv+leaky(\(slope)) C=\(c) stride \(st)")
                try checkOp(fused, [x], "fused conv C=\(c) stride \(st) slope \(slope)", piecewiseLinear: true)
            }
        }
        let a = randomTensor([2, 3, 4, 4], &rng), b = randomTensor([2, 3, 4, 4], &rng)
        let fused = ActivatedOp(inner: BinaryOp(kind: .add), slope: 0)
        assertClose(try fused.forward([a, b]), try PiecewiseLinearOp(kind: .leaky(0)).forward([try BinaryOp(kind: .add).forward([a, b])]), tol: 1e-7, "add+relu")
        try checkOp(fused, [a, b], "fused add", piecewiseLinear: true)
    }

    func testPoolingAgainstNaive() throws {
        var rng = SeededRandom(seed: 12)
        let x = randomTensor([2, 3, 7, 8], &rng)
        for isMax in [true, false] {
            for (k, st, p, ceil, inc) in [((3, 3), (2, 2), (1, 1, 1, 1), false, true), ((2, 3), (2, 1), (0, 1, 0, 1), true, false),
                                          ((3, 3), (1, 1), (1, 1, 1, 1), false, false)] {
                let op = PoolOp(isMax: isMax, kernel: k, strides: st, pads: p, dilations: (1, 1), ceilMode: ceil, countIncludePad: inc)
                let y = try op.forward([x])
                let (oh, ow) = (y.shape[2], y.shape[3])
                for pl in 0..<6 { for oy in 0..<oh { for ox in 0..<ow {
                    var best = -Float.infinity, sum: Float = 0, cnt = 0
                    for ky in 0..<k.0 { for kx in 0..<k.1 {
                        let iy = oy * st.0 - p.0 + ky, ix = ox * st.1 - p.1 + kx
                        if iy >= 0 && iy < 7 && ix >= 0 && ix < 8 { let v = x.data[pl * 56 + iy * 8 + ix]; best = max(best, v); sum += v; cnt += 1 }
                    } }
                    let y0 = oy * st.0 - p.0, x0 = ox * st.1 - p.1
                    let padded = min(y0 + k.0, 7 + p.2) - y0, paddedW = min(x0 + k.1, 8 + p.3) - x0
                    let div = inc ? Float(padded * paddedW) : Float(cnt)
                    let want = isMax ? best : sum / div
                    XCTAssertEqual(y.data[(pl * oh + oy) * ow + ox], want, accuracy: 1e-5, "pool max=\(isMax) k=\(k)")
                } } }
                try checkOp(op, [x], "pool max=\(isMax) k=\(k) st=\(st)")
            }
        }
    }

    func testElementwiseAndShapeOpsDerivatives() throws {
        var rng = SeededRandom(seed: 13)
        let a = randomTensor([2, 3, 4, 5], &rng, lo: 0.2, hi: 1.5), c = randomTensor([1, 3, 1, 1], &rng, lo: 0.5, hi: 1.5)
        let away = randomTensor([2, 3, 4, 5], &rng, lo: 0.1, hi: 1)
        for i in 0..<away.count where i % 2 == 0 { away.data[i] = -away.data[i] }   // both signs, away from kinks
        try checkOp(PiecewiseLinearOp(kind: .leaky(0.1)), [away], "LeakyRelu")
        try checkOp(PiecewiseLinearOp(kind: .clip(-0.05, 0.5)), [away], "Clip", skip: { abs(away.data[$0] - 0.5) < 0.03 })
        for k in [SmoothOp.Kind.sigmoid, .tanh, .softplus] { try checkOp(SmoothOp(kind: k), [away], "\(k)") }
        for k in [BinaryOp.Kind.add, .sub, .mul, .div] {
            try checkOp(BinaryOp(kind: k), [away, a], "\(k.rawValue) same shape")
            try checkOp(BinaryOp(kind: k), [away, c], "\(k.rawValue) broadcast [1,C,1,1]")
            try checkOp(BinaryOp(kind: k), [c, a], "\(k.rawValue) broadcast on the left")
        }
        try checkOp(ChannelAffineOp(scale: [0.5, -2, 1.5], shift: [0.1, 0.2, -0.3]), [away], "BatchNormalization (eval)")
        try checkOp(TransposeOp(perm: [0, 2, 3, 1]), [away], "Transpose")
        try checkOp(ConcatOp(axis: 1), [away, a], "Concat")
        try checkOp(GlobalAveragePoolOp(), [away], "GlobalAveragePool")
        try checkOp(PadOp(top: 1, left: 0, bottom: 2, right: 3, value: 0.7), [away], "Pad")
        try checkOp(ViewOp(shape: [2, 60]), [away], "Reshape")
        try checkOp(LinearOp(weight: randomTensor([7, 60], &rng), bias: randomTensor([7], &rng), op: "Gemm"), [try away.reshaped([2, 60])], "Gemm")
        // Forward oracles of the elementwise ops.
        let s = try SmoothOp(kind: .softplus).forward([away])
        for i in 0..<away.count { XCTAssertEqual(s.data[i], log1p(exp(away.data[i])), accuracy: 1e-6) }
        let t = try BinaryOp(kind: .div).forward([away, c])
        XCTAssertEqual(t.data[5 * 4 + 3], away.data[5 * 4 + 3] / c.data[1], accuracy: 1e-6)
        let tr = try TransposeOp(perm: [0, 2, 3, 1]).forward([away])
        XCTAssertEqual(tr.data[((1 * 4 + 2) * 5 + 3) * 3 + 1], away.data[((1 * 3 + 1) * 4 + 2) * 5 + 3])
    }

    /// vjp, jvp and the dual rule of `op` against central differences of its own forward, with the
    /// first input and all float inputs varied together along random directions.
    /// `piecewiseLinear`: the op is linear between kinks its inputs may straddle (fused ReLUs), so
    /// the dual rule is checked against its exact form (the tangent of the adjoint is the adjoint
    /// of the tangent, vjp(h)) instead of finite differences that would cross a kink.
    func checkOp(_ op: GraphOp, _ xs: [Tensor], _ what: String, piecewiseLinear: Bool = false, skip: @escaping (Int) -> Bool = { _ in false }) throws {
        var rng = SeededRandom(seed: 99)
        let y = try op.forward(xs)
        let w = randomTensor(y.shape, &rng)
        let needs = xs.map { _ in true }
        let grads = op.vjp(w, xs, y, needs)
        for (i, x) in xs.enumerated() {
            try checkGradient(x, analytic: grads[i]!, eps: 1e-3, tol: 2e-2, samples: 30, skip: i == 0 ? skip : { _ in false },
                              "\(what): vjp of input \(i)") { dot(try op.forward(xs), w) }
        }
        // jvp: ⟨w, J t⟩ = Σᵢ ⟨vjpᵢ(w), tᵢ⟩.
        let ts = xs.map { randomTensor($0.shape, &rng) }
        let jt = op.jvp(xs, ts, y)
        var lhs = dot(jt, w), rhs = 0.0
        for (g, t) in zip(grads, ts) { rhs += dot(g!, t) }
        XCTAssertEqual(lhs, rhs, accuracy: 1e-3 * max(1, abs(rhs)), "\(what): jvp disagrees with vjp")
        // Dual rule: ġ = d/dε vjp(w)(x + ε t) + vjp(h) for a random h.
        let h = randomTensor(y.shape, &rng)
        let dual = op.dualVJP(w, h, xs, ts, y, needs)
        let e: Float = 1e-3
        let plus = xs.enumerated().map { i, x in let c = x.copy(); for k in 0..<c.count { c.data[k] += e * ts[i].data[k] }; return c }
        let minus = xs.enumerated().map { i, x in let c = x.copy(); for k in 0..<c.count { c.data[k] -= e * ts[i].data[k] }; return c }
        let gp = op.vjp(w, plus, try op.forward(plus), needs), gm = op.vjp(w, minus, try op.forward(minus), needs)
        let hv = op.vjp(h, xs, y, needs)
        for i in 0..<xs.count {
            XCTAssertEqual(relativeError(dual[i]!.0, grads[i]!), 0, accuracy: 1e-6, "\(what): dual rule's first part")
            let want = Tensor(shape: xs[i].shape)
            for k in 0..<want.count { want.data[k] = (piecewiseLinear ? 0 : (gp[i]!.data[k] - gm[i]!.data[k]) / (2 * e)) + hv[i]!.data[k] }
            lhs = Double(relativeError(dual[i]!.1, want, floor: 1e-3))
            XCTAssertLessThan(lhs, 2e-2, "\(what): dual rule of input \(i) vs finite differences")
        }
    }

    func testLowestAndHighestOpsets() throws {
        for opset in [11, 20] {
            let m = try GraphModel(path: onnx("zoo_opset\(opset).onnx"))
            XCTAssertEqual(m.definition.opset, opset)
            assertClose(try m.logits(try npy("zoo_opset\(opset)_input")), try npy("zoo_opset\(opset)_logits_ort"), tol: 1e-4, "opset \(opset) logits")
        }
    }

    func testExternalData() throws {
        let x = try npy("lenet_input")
        let ext = try GraphModel(path: onnx("lenet_external.onnx"))
        assertClose(try ext.logits(x), try npy("lenet_logits_ort"), tol: 1e-4, "external-data LeNet")
        // Missing and truncated data files are named.
        let dir = (tempPath("ext") as NSString).appendingPathComponent("m")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let model = dir + "/lenet_external.onnx"
        try FileManager.default.copyItem(atPath: onnx("lenet_external.onnx"), toPath: model)
        XCTAssertThrowsError(try GraphModel(path: model)) { XCTAssertTrue("\($0)".contains("lenet_external.onnx.data") && "\($0)".contains("missing"), "\($0)") }
        let data = try Data(contentsOf: URL(fileURLWithPath: onnx("lenet_external.onnx.data")))
        try data.prefix(data.count - 100).write(to: URL(fileURLWithPath: dir + "/lenet_external.onnx.data"))
        XCTAssertThrowsError(try GraphModel(path: model)) { XCTAssertTrue("\($0)".contains("the file holds"), "\($0)") }
    }

    func testHandMadeBadGraphs() throws {
        func refuse(_ name: String, _ expect: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try GraphModel(path: onnx(name + ".onnx")), file: file, line: line) { e in
                XCTAssertTrue("\(e)".contains(expect), "\(e)", file: file, line: line)
            }
        }
        refuse("bad_bn_training", "BatchNormalization in training mode")
        refuse("two_outputs", "choose the logits with --output NAME")
        refuse("bad_pad_reflect", "mode reflect not supported")
        refuse("bad_reshape", "does not hold the input")
        refuse("bad_dims_overflow", "overflows")
        let two = try GraphModel(path: onnx("two_outputs.onnx"), output: "other")
        XCTAssertEqual(two.numClasses, 2)
        XCTAssertThrowsError(try GraphModel(path: onnx("two_outputs.onnx"), output: "nope")) { XCTAssertTrue("\($0)".contains("logits, other"), "\($0)") }
    }

    // MARK: bad files

    func testBadFilesAreRefusedWithTheirReason() throws {
        func refuse(_ data: Data, _ expect: String, file: StaticString = #filePath, line: UInt = #line) {
            let p = tempPath("bad-\(expect.hashValue).onnx")
            try? data.write(to: URL(fileURLWithPath: p))
            XCTAssertThrowsError(try GraphModel(path: p), file: file, line: line) { e in
                XCTAssertTrue("\(e)".contains(expect), "\(e)", file: file, line: line)
                XCTAssertTrue("\(e)".contains(p), "message names the file: \(e)", file: file, line: line)
            }
        }
        let good = try Data(contentsOf: URL(fileURLWithPath: onnx("zoo.onnx")))
        refuse(Data(), "empty file")
        refuse(good.prefix(good.count / 2), "not a valid ONNX protobuf")
        refuse(Data((0..<4000).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }), "not a valid ONNX protobuf")
        // Unsupported op: rename Tanh to Erf in the serialized graph (same length).
        refuse(good.replacing(Data("Tanh".utf8), with: Data("Erfx".utf8)), "unsupported op Erfx")
    }
}
