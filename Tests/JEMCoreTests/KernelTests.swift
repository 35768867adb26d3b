// KernelTests.swift: every fast C kernel against its naive oracle on random shapes
// (odd sizes, stride 2, 1×1 and 3×3 kernels, batch 1).
import CJEMKernels
import XCTest
@testable import JEMCore

final class KernelTests: XCTestCase {
    override func setUp() { Runtime.configure(threads: 2) }

    struct ConvCase { let n, c, h, w, oc, k, stride, pad: Int }

    let convCases = [
        ConvCase(n: 1, c: 1, h: 5, w: 5, oc: 2, k: 3, stride: 1, pad: 1),
        ConvCase(n: 3, c: 3, h: 7, w: 9, oc: 5, k: 3, stride: 2, pad: 1),
        ConvCase(n: 2, c: 4, h: 6, w: 6, oc: 3, k: 1, stride: 1, pad: 0),
        ConvCase(n: 2, c: 4, h: 9, w: 7, oc: 6, k: 1, stride: 2, pad: 0),
        ConvCase(n: 5, c: 2, h: 11, w: 11, oc: 4, k: 5, stride: 2, pad: 2),
        ConvCase(n: 1, c: 3, h: 4, w: 3, oc: 2, k: 3, stride: 1, pad: 0),
        ConvCase(n: 4, c: 16, h: 14, w: 14, oc: 32, k: 3, stride: 1, pad: 1),
        ConvCase(n: 7, c: 4, h: 5, w: 5, oc: 3, k: 1, stride: 1, pad: 0),   // grouped 1×1 path
        ConvCase(n: 9, c: 24, h: 4, w: 4, oc: 2, k: 3, stride: 1, pad: 1),  // K > OC·G: scratch sizing
        ConvCase(n: 3, c: 5, h: 6, w: 9, oc: 7, k: 5, stride: 1, pad: 2),   // same-size backward path, 5×5, non-square
        ConvCase(n: 6, c: 17, h: 7, w: 5, oc: 20, k: 3, stride: 1, pad: 1),  // Winograd, odd sizes (cropped edge tiles)
        ConvCase(n: 19, c: 16, h: 4, w: 4, oc: 24, k: 3, stride: 1, pad: 1), // Winograd, a full chunk of 16 images and a partial one
        ConvCase(n: 3, c: 16, h: 11, w: 13, oc: 18, k: 3, stride: 1, pad: 1), // Winograd's plane-wise transforms (≥ 32 tiles), odd sizes
        ConvCase(n: 2, c: 16, h: 6, w: 27, oc: 16, k: 3, stride: 1, pad: 1),  // Winograd, rows of 13 tile pairs (the output rows' 8- and 4-pair blocks), odd width
        ConvCase(n: 1, c: 16, h: 14, w: 14, oc: 16, k: 3, stride: 1, pad: 1), // too few tiles for Winograd: im2col
        ConvCase(n: 1, c: 64, h: 14, w: 14, oc: 64, k: 3, stride: 1, pad: 1), // one image, GEMM big enough for OpenBLAS's threads
        // The direct stride-2 kernels: output channels not a multiple of 16 and
        // across blocks of 64, pixel counts not a multiple of 6, several chunks of 36 taps and a
        // partial one, pad 0, fewer images than threads.
        ConvCase(n: 3, c: 9, h: 9, w: 7, oc: 20, k: 3, stride: 2, pad: 1),
        ConvCase(n: 4, c: 8, h: 6, w: 6, oc: 70, k: 3, stride: 2, pad: 0),
        ConvCase(n: 1, c: 16, h: 14, w: 14, oc: 64, k: 3, stride: 2, pad: 1),
        ConvCase(n: 2, c: 12, h: 8, w: 11, oc: 16, k: 3, stride: 2, pad: 1),
        // Pixel counts of 35 and 9: blocks of 5 and 3 pixels at the end (every block size 1–6 is then run).
        ConvCase(n: 2, c: 8, h: 10, w: 13, oc: 24, k: 3, stride: 2, pad: 1),
        ConvCase(n: 2, c: 10, h: 6, w: 6, oc: 16, k: 3, stride: 2, pad: 1),
    ]

    /// The block paths jem_sgemm_invariant can run here: AVX2, and AVX-512 where the CPU has it.
    func availableISAs() -> [Int32] {
        defer { jem_sgemm_invariant_set_isa(-1) }
        jem_sgemm_invariant_set_isa(1)
        return jem_sgemm_invariant_isa() == 1 ? [0, 1] : [0]
    }

    func testConvolutionMatchesNaive() throws {
        if ProcessInfo.processInfo.environment["JEM_DIRECT_CONV"] != "0" {
            XCTAssertNotEqual(jem_conv2d_uses_direct(16, 16, 3, 3, 2, 1), 0, "the direct kernels should be on")
        }
        try convolutionCasesMatchNaive()
        // The im2col path where the direct kernels would run, and OpenBLAS for the Winograd GEMMs (the
        // Winograd GEMMs' default on CPUs without AVX-512; on CPUs with it the default is the invariant GEMM).
        jem_conv2d_set_direct(0)
        jem_winograd_set_gemm(0)
        defer { jem_conv2d_set_direct(-1); jem_winograd_set_gemm(-1) }
        try convolutionCasesMatchNaive()
        jem_conv2d_set_direct(-1)
        jem_winograd_set_gemm(-1)
        // Batch-invariant mode (the attacks, eval): per-image kernel choices, Winograd GEMMs through
        // jem_sgemm_invariant and the direct kernels, on each of their block paths (AVX2, AVX-512).
        Runtime.batchInvariant = true
        defer { Runtime.batchInvariant = false; jem_sgemm_invariant_set_isa(-1) }
        for isa in availableISAs() {
            jem_sgemm_invariant_set_isa(isa)
            try convolutionCasesMatchNaive()
        }
    }

    func convolutionCasesMatchNaive() throws {
        let mode = Runtime.batchInvariant ? " (batch-invariant, \(jem_sgemm_invariant_isa() == 1 ? "AVX-512" : "AVX2") GEMM)" : ""
        var rng = SeededRandom(seed: 1)
        for cc in convCases {
            let oh = (cc.h + 2 * cc.pad - cc.k) / cc.stride + 1, ow = (cc.w + 2 * cc.pad - cc.k) / cc.stride + 1
            let x = randomTensor([cc.n, cc.c, cc.h, cc.w], &rng)
            let w = randomTensor([cc.oc, cc.c, cc.k, cc.k], &rng)
            let b = randomTensor([cc.oc], &rng)
            let dy = randomTensor([cc.n, cc.oc, oh, ow], &rng)
            let ws = Tensor(shape: [jem_conv2d_workspace(Int32(cc.c), Int32(cc.k), Int32(cc.k), Int32(oh), Int32(ow), Int32(cc.oc), 2)])
            let args = (Int32(cc.n), Int32(cc.c), Int32(cc.h), Int32(cc.w), Int32(cc.oc), Int32(cc.k), Int32(cc.stride), Int32(cc.pad), Int32(oh), Int32(ow))
            let fast = Tensor(shape: dy.shape), slow = Tensor(shape: dy.shape)
            jem_conv2d_forward(fast.data, x.data, w.data, b.data, args.0, args.1, args.2, args.3, args.4, args.5, args.5, args.6, args.7, args.8, args.9, ws.data)
            jem_conv2d_forward_naive(slow.data, x.data, w.data, b.data, args.0, args.1, args.2, args.3, args.4, args.5, args.5, args.6, args.7, args.8, args.9)
            assertClose(fast, slow, tol: 1e-5, "conv forward \(cc)\(mode)")
            let dxF = Tensor(shape: x.shape), dxS = Tensor(shape: x.shape)
            let dwF = randomTensor(w.shape, &rng), dbF = randomTensor([cc.oc], &rng)
            let dwS = dwF.copy(), dbS = dbF.copy()   // accumulation (+=) contract
            jem_conv2d_backward_input(dxF.data, dy.data, w.data, args.0, args.1, args.2, args.3, args.4, args.5, args.5, args.6, args.7, args.8, args.9, ws.data)
            jem_conv2d_backward_weight(dwF.data, dbF.data, dy.data, x.data, args.0, args.1, args.2, args.3, args.4, args.5, args.5, args.6, args.7, args.8, args.9, ws.data)
            jem_conv2d_backward_naive(dxS.data, dwS.data, dbS.data, dy.data, x.data, w.data, args.0, args.1, args.2, args.3, args.4, args.5, args.5, args.6, args.7, args.8, args.9)
            assertClose(dxF, dxS, tol: 1e-5, "conv dinput \(cc)\(mode)")
            assertClose(dwF, dwS, tol: 1e-5, "conv dweight \(cc)\(mode)")
            assertClose(dbF, dbS, tol: 1e-5, "conv dbias \(cc)\(mode)")
            // Through a fused LeakyReLU (act: a LeakyReLU output, signs mixed): the Winograd path applies
            // its derivative as it loads dy, bit for bit the separate pass and the plain input gradient.
            let act = randomTensor(dy.shape, &rng), dz = Tensor(shape: dy.shape), dxSep = Tensor(shape: x.shape)
            let dxAct = Tensor(shape: x.shape)
            let fused = jem_conv2d_backward_input_act(dxAct.data, dy.data, act.data, 0.2, w.data, args.0, args.1, args.2, args.3, args.4, args.5, args.5, args.6, args.7, args.8, args.9, ws.data)
            let onWinograd = jem_conv2d_uses_winograd(args.0, args.1, args.2, args.3, args.4, args.5, args.5, args.6, args.7)
            XCTAssertEqual(fused, onWinograd, "the fused LeakyReLU input gradient runs exactly on the Winograd path \(cc)\(mode)")
            if fused != 0 {
                jem_leaky_relu_backward(dz.data, dy.data, act.data, 0.2, dz.count)
                jem_conv2d_backward_input(dxSep.data, dz.data, w.data, args.0, args.1, args.2, args.3, args.4, args.5, args.5, args.6, args.7, args.8, args.9, ws.data)
                XCTAssertTrue(dxAct.array == dxSep.array, "fused LeakyReLU input gradient: not the bits of the two passes \(cc)\(mode)")
            }
        }
        // The Winograd F(2×2, 3×3) path is among the cases checked (unless JEM_WINOGRAD=0): planes
        // of fewer and of at least 32 tiles (the two input transforms), even and odd sizes.
        let wino = convCases.filter { jem_conv2d_uses_winograd(Int32($0.n), Int32($0.c), Int32($0.h), Int32($0.w), Int32($0.oc), Int32($0.k), Int32($0.k), Int32($0.stride), Int32($0.pad)) != 0 }
        if ProcessInfo.processInfo.environment["JEM_WINOGRAD"] != "0" && !Runtime.batchInvariant { XCTAssertEqual(wino.count, 5) }
        // So are the direct kernels (six cases) whenever they are on.
        let direct = convCases.filter { jem_conv2d_uses_direct(Int32($0.c), Int32($0.oc), Int32($0.k), Int32($0.k), Int32($0.stride), Int32($0.pad)) != 0 }
        XCTAssertEqual(direct.count, jem_conv2d_uses_direct(16, 16, 3, 3, 2, 1) != 0 ? 6 : 0)
    }

    func testInvariantGEMMMatchesItsOracleAndIgnoresTheCallShape() {
        // Both block paths: AVX2, and AVX-512 where the CPU has it (chosen at run time).
        defer { jem_sgemm_invariant_set_isa(-1) }
        for isa in availableISAs() {
            jem_sgemm_invariant_set_isa(isa)
            invariantGEMMCases(isa)
        }
    }

    func invariantGEMMCases(_ isa: Int32) {
        var rng = SeededRandom(seed: 5)
        for (m, n, k) in [(1, 1, 1), (4, 24, 16), (7, 53, 9), (13, 100, 32), (32, 196, 16), (128, 40, 128), (5, 64, 3), (9, 129, 20)] {
            let a = randomTensor([m, k], &rng), b = randomTensor([k, n], &rng), c0 = randomTensor([m, n], &rng)
            // C holds garbage before the call: the kernel writes C = A·B without reading it.
            let fast = c0.copy(), slow = Tensor(shape: [m, n])
            jem_sgemm_invariant(Int32(m), Int32(n), Int32(k), a.data, Int32(k), b.data, Int32(n), fast.data, Int32(n))
            jem_sgemm_invariant_reference(Int32(m), Int32(n), Int32(k), a.data, Int32(k), b.data, Int32(n), slow.data, Int32(n))
            XCTAssertEqual(fast.array.map(\.bitPattern), slow.array.map(\.bitPattern), "kernel (\(isa == 1 ? "AVX-512" : "AVX2")) vs oracle, bitwise, \(m)×\(n)×\(k)")
            // Any block of columns, computed alone, gives the same bits as inside the whole call.
            for (j0, w) in [(0, 1), (n / 3, max(1, n / 2)), (max(0, n - 5), min(5, n))] where j0 + w <= n {
                let part = Tensor(shape: [m, w])
                for i in 0..<m { for j in 0..<w { part.data[i * w + j] = c0.data[i * n + j0 + j] } }
                jem_sgemm_invariant(Int32(m), Int32(w), Int32(k), a.data, Int32(k), b.data + j0, Int32(n), part.data, Int32(w))
                for i in 0..<m { for j in 0..<w where part.data[i * w + j].bitPattern != fast.data[i * n + j0 + j].bitPattern {
                    return XCTFail("column \(j0 + j) of \(m)×\(n)×\(k) differs when computed in a call of \(w) columns (\(isa == 1 ? "AVX-512" : "AVX2"))")
                } }
            }
        }
    }

    func testConvolutionInBatchInvariantModeIsPerImage() throws {
        Runtime.batchInvariant = true
        defer { Runtime.batchInvariant = false }
        var rng = SeededRandom(seed: 6)
        // Winograd at 14×14 (49 tiles per image, chunks of 6 images) and 7×7 (16 tiles, chunks of 16), im2col at 4×4,
        // the direct stride-2 kernels (one image alone takes their path for fewer images than threads).
        for cc in [ConvCase(n: 9, c: 16, h: 14, w: 14, oc: 20, k: 3, stride: 1, pad: 1),
                   ConvCase(n: 19, c: 24, h: 7, w: 7, oc: 16, k: 3, stride: 1, pad: 1),
                   ConvCase(n: 5, c: 16, h: 4, w: 4, oc: 16, k: 3, stride: 1, pad: 1),
                   ConvCase(n: 5, c: 16, h: 14, w: 14, oc: 80, k: 3, stride: 2, pad: 1),
                   ConvCase(n: 3, c: 8, h: 9, w: 9, oc: 20, k: 3, stride: 2, pad: 1)] {
            let oh = (cc.h + 2 * cc.pad - 3) / cc.stride + 1, ow = (cc.w + 2 * cc.pad - 3) / cc.stride + 1
            let sp = (Int32(cc.stride), Int32(cc.pad), Int32(oh), Int32(ow))
            let x = randomTensor([cc.n, cc.c, cc.h, cc.w], &rng), w = randomTensor([cc.oc, cc.c, 3, 3], &rng), b = randomTensor([cc.oc], &rng)
            let ws = Tensor(shape: [jem_conv2d_workspace(Int32(cc.c), 3, 3, sp.2, sp.3, Int32(cc.oc), 2)])
            func forward(_ xs: Tensor) -> Tensor {
                let y = Tensor(shape: [xs.shape[0], cc.oc, oh, ow])
                jem_conv2d_forward(y.data, xs.data, w.data, b.data, Int32(xs.shape[0]), Int32(cc.c), Int32(cc.h), Int32(cc.w), Int32(cc.oc), 3, 3, sp.0, sp.1, sp.2, sp.3, ws.data)
                return y
            }
            func backward(_ dy: Tensor) -> Tensor {
                let dx = Tensor(shape: [dy.shape[0], cc.c, cc.h, cc.w])
                jem_conv2d_backward_input(dx.data, dy.data, w.data, Int32(dy.shape[0]), Int32(cc.c), Int32(cc.h), Int32(cc.w), Int32(cc.oc), 3, 3, sp.0, sp.1, sp.2, sp.3, ws.data)
                return dx
            }
            let y = forward(x)
            let slow = Tensor(shape: y.shape)
            jem_conv2d_forward_naive(slow.data, x.data, w.data, b.data, Int32(cc.n), Int32(cc.c), Int32(cc.h), Int32(cc.w), Int32(cc.oc), 3, 3, sp.0, sp.1, sp.2, sp.3)
            assertClose(y, slow, tol: 1e-5, "invariant conv forward \(cc)")
            let dx = backward(y)
            for i in [0, cc.n / 2, cc.n - 1] {
                XCTAssertEqual(forward(x.rows(i, 1)).array, y.rows(i, 1).array, "forward of image \(i) alone vs in a batch of \(cc.n), \(cc)")
                XCTAssertEqual(backward(y.rows(i, 1)).array, dx.rows(i, 1).array, "input gradient of image \(i) alone vs in the batch, \(cc)")
            }
            // The direct kernels' AVX2 and AVX-512 blocks give the same bits (where the CPU has both).
            if cc.stride == 2 && availableISAs().contains(1) {
                defer { jem_sgemm_invariant_set_isa(-1) }
                jem_sgemm_invariant_set_isa(0)
                let y2 = forward(x), dx2 = backward(y)
                jem_sgemm_invariant_set_isa(1)
                XCTAssertEqual(y2.array.map(\.bitPattern), forward(x).array.map(\.bitPattern), "direct forward, AVX2 vs AVX-512 blocks, \(cc)")
                XCTAssertEqual(dx2.array.map(\.bitPattern), backward(y).array.map(\.bitPattern), "direct input gradient, AVX2 vs AVX-512 blocks, \(cc)")
            }
        }
    }

    func testLinearMatchesNaive() {
        var rng = SeededRandom(seed: 2)
        for (n, i, o) in [(1, 3, 2), (7, 13, 5), (64, 128, 10)] {
            let x = randomTensor([n, i], &rng), w = randomTensor([o, i], &rng), b = randomTensor([o], &rng)
            let f = Tensor(shape: [n, o]), s = Tensor(shape: [n, o])
            jem_linear_forward(f.data, x.data, w.data, b.data, Int32(n), Int32(i), Int32(o))
            jem_linear_forward_naive(s.data, x.data, w.data, b.data, Int32(n), Int32(i), Int32(o))
            assertClose(f, s, tol: 1e-5, "linear forward")
            let dy = randomTensor([n, o], &rng)
            let dxF = Tensor(shape: x.shape), dxS = Tensor(shape: x.shape)
            let dwF = randomTensor(w.shape, &rng), dbF = randomTensor([o], &rng)
            let dwS = dwF.copy(), dbS = dbF.copy()
            jem_linear_backward(dxF.data, dwF.data, dbF.data, dy.data, x.data, w.data, Int32(n), Int32(i), Int32(o))
            jem_linear_backward_naive(dxS.data, dwS.data, dbS.data, dy.data, x.data, w.data, Int32(n), Int32(i), Int32(o))
            assertClose(dxF, dxS, tol: 1e-5, "linear dinput")
            assertClose(dwF, dwS, tol: 1e-5, "linear dweight")
            assertClose(dbF, dbS, tol: 1e-5, "linear dbias")
        }
    }

    func testLogitReductionsMatchHandComputation() throws {
        let z = try Tensor(shape: [2, 3], values: [1, 2, 3, -1000, 0, 1000])
        let lse = Losses.logsumexp(z)
        XCTAssertEqual(lse[0], Float(log(exp(1.0) + exp(2.0) + exp(3.0))), accuracy: 1e-5)
        XCTAssertEqual(lse[1], 1000, accuracy: 1e-3)   // stable for large logits
        let ce = try Losses.crossEntropy(z, labels: [0, 2])
        XCTAssertEqual(ce[0], lse[0] - 1, accuracy: 1e-5)
        XCTAssertEqual(ce[1], 0, accuracy: 1e-4)
        XCTAssertThrowsError(try Losses.crossEntropy(z, labels: [0, 3]))
    }
}
