// Pointwise.swift: LeakyReLU, residual add and global average pooling with their gradient rules.
import CJEMKernels

public func leakyReLU(_ x: Variable, slope: Float, tape: Tape?) -> Variable {
    let out = Tensor(uninitialized: x.shape)
    jem_leaky_relu_forward(out.data, x.value.data, slope, out.count)
    let y = Variable(out, requiresGrad: needsGrad(tape, x))
    if let tape, y.requiresGrad, x.requiresGrad {
        tape.record {
            guard let dy = y.grad else { return }
            let dx = Tensor(uninitialized: x.shape)
            jem_leaky_relu_backward(dx.data, dy.data, x.value.data, slope, dx.count)
            x.accumulate(dx)
        }
    }
    return y
}

public func add(_ a: Variable, _ b: Variable, tape: Tape?) throws -> Variable {
    guard a.shape == b.shape else { throw JEMError.shapeMismatch(what: "residual add", expected: a.shape, found: b.shape) }
    let out = Tensor(uninitialized: a.shape)
    jem_add_forward(out.data, a.value.data, b.value.data, out.count)
    let y = Variable(out, requiresGrad: needsGrad(tape, a, b))
    if let tape, y.requiresGrad {
        tape.record {
            guard let dy = y.grad else { return }
            // dy is handed over (not copied) to the last taker; only a second taker needs a copy.
            if a.requiresGrad { a.accumulate(b.requiresGrad ? dy.copy() : dy) }
            if b.requiresGrad { b.accumulate(dy) }
        }
    }
    return y
}

/// (N, C, H, W) → (N, C): the mean over the spatial map.
public func globalAveragePool(_ x: Variable, tape: Tape?) throws -> Variable {
    let s = x.shape
    guard s.count == 4 else { throw JEMError.shapeMismatch(what: "global average pool input", expected: [-1, -1, -1, -1], found: s) }
    let out = Tensor(shape: [s[0], s[1]])
    jem_global_avg_pool_forward(out.data, x.value.data, Int32(s[0]), Int32(s[1]), Int32(s[2] * s[3]))
    let y = Variable(out, requiresGrad: needsGrad(tape, x))
    if let tape, y.requiresGrad, x.requiresGrad {
        tape.record {
            guard let dy = y.grad else { return }
            let dx = Tensor(uninitialized: s)
            jem_global_avg_pool_backward(dx.data, dy.data, Int32(s[0]), Int32(s[1]), Int32(s[2] * s[3]))
            x.accumulate(dx)
        }
    }
    return y
}
