// OptimizerTests.swift: SGD (momentum, weight decay, Nesterov) and Adam against hand-computed
// torch.optim updates.
import XCTest
@testable import JEMCore

final class OptimizerTests: XCTestCase {
    func param(_ w: Float) -> Parameter {
        let p = Parameter(name: "w", shape: [1]); p.value[0] = w; return p
    }

    func testSGDMomentumWeightDecayNesterov() {
        let p = param(1)
        var c = OptimizerConfig(); c.kind = .sgd; c.momentum = 0.9; c.weightDecay = 0.1; c.nesterov = true
        let o = Optimizer(parameters: [p], config: c)
        // torch: d = g + wd·w; buf = d (first step) else μ·buf + d; step = d + μ·buf (Nesterov).
        var w: Float = 1, buf: Float = 0
        for (i, g) in [Float(0.5), -0.25, 1.0].enumerated() {
            p.grad[0] = g
            o.update(lr: 0.1)
            let d = g + 0.1 * w
            buf = i == 0 ? d : 0.9 * buf + d
            w -= 0.1 * (d + 0.9 * buf)
            XCTAssertEqual(p.value[0], w, accuracy: 1e-6)
        }
    }

    func testAdam() {
        let p = param(0.5)
        let o = Optimizer(parameters: [p], config: OptimizerConfig())
        var w: Double = 0.5, m = 0.0, v = 0.0
        for (t, g) in [0.3, -0.1, 0.2].enumerated() {
            p.grad[0] = Float(g)
            o.update(lr: 1e-2)
            m = 0.9 * m + 0.1 * g; v = 0.999 * v + 0.001 * g * g
            let mh = m / (1 - pow(0.9, Double(t + 1))), vh = v / (1 - pow(0.999, Double(t + 1)))
            w -= 1e-2 * mh / (vh.squareRoot() + 1e-8)
            XCTAssertEqual(Double(p.value[0]), w, accuracy: 1e-6)
        }
    }
}
