// GradientTests.swift: a finite-difference check for every backward rule, through the tape
// (so the rule's wiring is tested along with its kernel), and for the whole model.
import CJEMKernels
import XCTest
@testable import JEMCore

final class GradientTests: XCTestCase {
    override func setUp() { Runtime.configure(threads: 2) }

    /// Runs `op` on x with a tape, back-propagates a random dout, and checks d/dx and d/dparams of
    /// sum(op(x) * dout) by central differences.
    func check(_ what: String, input shape: [Int], params: [Parameter] = [], eps: Float = 1e-2, tol: Double = 2e-2,
               kinkAtZero: Bool = false, op: (Variable, Tape?) throws -> Variable) throws {
        var rng = SeededRandom(seed: 11)
        let x = randomTensor(shape, &rng)
        for p in params { p.zeroGrad() }
        let tape = Tape(parameterGradients: true)
        let xv = Variable(x, requiresGrad: true)
        let y = try op(xv, tape)
        let dout = randomTensor(y.shape, &rng)
        try tape.backward(from: y, seed: dout)
        let f = { dot(try op(Variable(x), nil).value, dout) }
        try checkGradient(x, analytic: xv.grad!, eps: eps, tol: tol, skip: { kinkAtZero && abs(x[$0]) < 2 * eps },
                          "\(what) d/dinput", f: f)
        for p in params where !p.isBuffer {
            try checkGradient(p.value, analytic: p.grad, eps: eps, tol: tol, "\(what) d/d\(p.name)", f: f)
        }
    }

    func testConvolutionGradients() throws {
        var rng = SeededRandom(seed: 3)
        for (k, s, p) in [(3, 1, 1), (3, 2, 1), (1, 2, 0), (1, 1, 0)] {
            let conv = Conv2d(name: "c", inputChannels: 3, outputChannels: 4, kernelSize: k, stride: s, padding: p)
            conv.initialize(&rng)
            try check("conv k\(k) s\(s)", input: [2, 3, 7, 5], params: conv.parameters) { try conv($0, tape: $1) }
        }
        // Enough channels for the direct stride-2 kernels.
        let conv = Conv2d(name: "c", inputChannels: 8, outputChannels: 16, kernelSize: 3, stride: 2, padding: 1)
        conv.initialize(&rng)
        XCTAssertEqual(jem_conv2d_uses_direct(8, 16, 3, 3, 2, 1) != 0, ProcessInfo.processInfo.environment["JEM_DIRECT_CONV"] != "0")
        try check("conv k3 s2, 8 → 16 channels", input: [2, 8, 7, 5], params: conv.parameters) { try conv($0, tape: $1) }
    }

    /// A LeakyReLU fused into the convolution (the Wide-ResNet's conv1 without batch norm) gives the
    /// bits of the separate convolution and LeakyReLU: output, input gradient and parameter gradients,
    /// on the im2col, Winograd and direct stride-2 paths, for a LeakyReLU, a ReLU and (unfused) a
    /// negative slope.
    func testConvolutionWithFusedLeakyReLUMatchesSeparateOps() throws {
        var rng = SeededRandom(seed: 12)
        for (c, oc, k, s, p, hw) in [(3, 4, 3, 1, 1, 7), (16, 16, 3, 1, 1, 14), (8, 16, 3, 2, 1, 9), (4, 6, 1, 1, 0, 5)] {
            let conv = Conv2d(name: "c", inputChannels: c, outputChannels: oc, kernelSize: k, stride: s, padding: p)
            conv.initialize(&rng)
            let x = randomTensor([3, c, hw, hw], &rng)
            for slope: Float in [0.2, 0, -0.5] {
                func run(fused: Bool) throws -> (y: Tensor, dx: Tensor, grads: [Tensor]) {
                    for q in conv.parameters { q.zeroGrad() }
                    let tape = Tape(parameterGradients: true), xv = Variable(x, requiresGrad: true)
                    let y = fused ? try conv(xv, leakyReLU: slope, tape: tape) : leakyReLU(try conv(xv, tape: tape), slope: slope, tape: tape)
                    var r = SeededRandom(seed: 13)
                    try tape.backward(from: y, seed: randomTensor(y.shape, &r))
                    return (y.value, xv.grad!, conv.parameters.map { $0.grad.copy() })
                }
                let a = try run(fused: true), b = try run(fused: false)
                let what = "conv \(c)→\(oc) k\(k) s\(s) \(hw)×\(hw), slope \(slope)"
                XCTAssertEqual(a.y.array.map(\.bitPattern), b.y.array.map(\.bitPattern), "\(what): output")
                XCTAssertEqual(a.dx.array.map(\.bitPattern), b.dx.array.map(\.bitPattern), "\(what): input gradient")
                for (g, h) in zip(a.grads, b.grads) { XCTAssertEqual(g.array.map(\.bitPattern), h.array.map(\.bitPattern), "\(what): parameter gradient") }
            }
        }
        // Finite differences of the input (those of the parameters move outputs across the kink at 0;
        // the bitwise equality above ties them to the separately checked rules).
        let conv = Conv2d(name: "c", inputChannels: 3, outputChannels: 4, kernelSize: 3, stride: 1, padding: 1)
        conv.initialize(&rng)
        try check("conv + fused LeakyReLU", input: [2, 3, 6, 5]) { try conv($0, leakyReLU: 0.2, tape: $1) }
    }

    func testLinearGradients() throws {
        var rng = SeededRandom(seed: 4)
        let lin = Linear(name: "l", inputFeatures: 6, outputFeatures: 3)
        lin.initialize(&rng)
        try check("linear", input: [4, 6], params: lin.parameters) { try lin($0, tape: $1) }
    }

    func testBatchNormGradients() throws {
        let bn = BatchNorm2d(name: "bn", channels: 3)
        var rng = SeededRandom(seed: 5)
        rng.fillUniform(bn.weight.value, lo: 0.5, hi: 1.5)
        rng.fillUniform(bn.bias.value, lo: -0.5, hi: 0.5)
        rng.fillUniform(bn.runningMean.value, lo: -0.2, hi: 0.2)
        rng.fillUniform(bn.runningVar.value, lo: 0.5, hi: 1.5)
        try check("batchnorm eval", input: [3, 3, 4, 5], params: bn.parameters) { try bn($0, training: false, tape: $1) }
        try check("batchnorm train", input: [3, 3, 4, 5], params: bn.parameters, eps: 3e-3, tol: 3e-2) {
            try bn($0, training: true, tape: $1)
        }
    }

    func testPointwiseGradients() throws {
        try check("leaky relu", input: [2, 3, 4, 4], eps: 1e-3, kinkAtZero: true) { leakyReLU($0, slope: 0.2, tape: $1) }
        try check("global average pool", input: [2, 3, 4, 5]) { try globalAveragePool($0, tape: $1) }
        try check("normalize", input: [2, 3, 4, 4]) { try normalizeChannels($0, mean: [0.1, 0.2, 0.3], std: [0.5, 0.25, 2], tape: $1) }
        try check("residual add (x + x)", input: [2, 3, 2, 2]) { try add($0, $0, tape: $1) }
    }

    func testLogitLossGradients() throws {
        var rng = SeededRandom(seed: 6)
        let z = randomTensor([4, 5], &rng, lo: -3, hi: 3)
        let w: [Float] = [1, -0.5, 2, 0.25]
        let labels = [0, 4, 2, 1]
        let g = Tensor(shape: z.shape)
        Losses.addLogsumexpGradient(g, logits: z, weights: w)
        checkGradient(z, analytic: g, eps: 1e-2, "logsumexp") {
            zip(Losses.logsumexp(z), w).reduce(0.0) { $0 + Double($1.0 * $1.1) }
        }
        let gc = Tensor(shape: z.shape)
        try Losses.addCrossEntropyGradient(gc, logits: z, labels: labels, weights: w)
        try checkGradient(z, analytic: gc, eps: 1e-2, "cross-entropy") {
            zip(try Losses.crossEntropy(z, labels: labels), w).reduce(0.0) { $0 + Double($1.0 * $1.1) }
        }
    }

    /// The whole model: sum(logits · r) is piecewise linear in the input and in each weight
    /// tensor. Float32 rounding of the forward and the odd crossed kink limit single coordinates,
    /// so the mean asymmetric error over 60 coordinates is checked (as ggml's test-backend-ops).
    func testWholeModelInputAndWeightGradients() throws {
        for norm in NormKind.allCases {
            let model = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 2, numClasses: 3, norm: norm))
            model.initialize(seed: 9)
            var rng = SeededRandom(seed: 10)
            let x = randomTensor([2, 2, 8, 8], &rng, lo: 0, hi: 1)
            let r = randomTensor([2, 3], &rng)
            let objective = { dot(try model.logits(x), r) }
            let (_, g) = try model.inputGradient(x) { _ in r.copy() }
            try checkGradient(x, analytic: g, eps: 1e-2, tol: 6e-2, samples: 60, floor: 0.05, useMean: true, "model d(r·f)/dx (\(norm))", f: objective)
            model.zeroGradients()
            _ = try model.accumulateParameterGradients(x, training: false) { _ in r.copy() }
            for p in model.trainableParameters where p.name.hasSuffix("conv1.weight") || p.name.hasSuffix("bn2.weight") {
                try checkGradient(p.value, analytic: p.grad, eps: 1e-2, tol: 6e-2, samples: 60, floor: 0.05, useMean: true, "model d(r·f)/d\(p.name) (\(norm))", f: objective)
            }
        }
    }
}
