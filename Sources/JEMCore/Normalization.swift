// Normalization.swift: BatchNorm2d (train and eval, torch.nn.BatchNorm2d semantics) and the fixed
// per-channel input normalisation (x − mean)/std that lives inside the model.
import CJEMKernels

public final class BatchNorm2d {
    public let weight: Parameter, bias: Parameter
    public let runningMean: Parameter, runningVar: Parameter
    public let channels: Int
    public let eps: Float = 1e-5
    /// PyTorch momentum convention. The reference JEM builds its norm layers with momentum 0.9.
    public let momentum: Float

    public init(name: String, channels: Int, momentum: Float = 0.9) {
        self.channels = channels; self.momentum = momentum
        weight = Parameter(name: name + ".weight", shape: [channels])
        bias = Parameter(name: name + ".bias", shape: [channels])
        runningMean = Parameter(name: name + ".running_mean", shape: [channels], isBuffer: true)
        runningVar = Parameter(name: name + ".running_var", shape: [channels], isBuffer: true)
        weight.value.fill(1); runningVar.value.fill(1)
    }

    public var parameters: [Parameter] { [weight, bias, runningMean, runningVar] }

    public func callAsFunction(_ x: Variable, training: Bool, tape: Tape?) throws -> Variable {
        let s = x.shape
        guard s.count == 4, s[1] == channels else {
            throw JEMError.shapeMismatch(what: weight.name + " input", expected: [-1, channels, -1, -1], found: s)
        }
        let n = Int32(s[0]), c = Int32(s[1]), hw = Int32(s[2] * s[3])
        let out = Tensor(shape: s)
        let y = Variable(out, requiresGrad: needsGrad(tape, x))
        let (w, b, rm, rv, eps) = (weight, bias, runningMean, runningVar, self.eps)
        if training {
            let mean = Tensor(shape: [channels]), invstd = Tensor(shape: [channels])
            jem_batchnorm_train_forward(out.data, mean.data, invstd.data, rm.value.data, rv.value.data,
                                        x.value.data, w.value.data, b.value.data, eps, momentum, n, c, hw)
            if let tape, y.requiresGrad {
                tape.record {
                    guard let dy = y.grad else { return }
                    let dx = x.requiresGrad ? Tensor(shape: s) : nil
                    let p = tape.parameterGradients
                    jem_batchnorm_train_backward(dx?.data, p ? tape.gradient(w).data : nil, p ? tape.gradient(b).data : nil, dy.data,
                                                 x.value.data, mean.data, invstd.data, w.value.data, n, c, hw)
                    if let dx { x.accumulate(dx) }
                }
            }
        } else {
            jem_batchnorm_eval_forward(out.data, x.value.data, rm.value.data, rv.value.data,
                                       w.value.data, b.value.data, eps, n, c, hw)
            if let tape, y.requiresGrad {
                tape.record {
                    guard let dy = y.grad else { return }
                    let p = tape.parameterGradients
                    let dx = x.requiresGrad ? Tensor(shape: s) : nil
                    jem_batchnorm_eval_backward(dx?.data, p ? tape.gradient(w).data : nil, p ? tape.gradient(b).data : nil, dy.data,
                                                x.value.data, rm.value.data, rv.value.data, w.value.data, eps, n, c, hw)
                    if let dx { x.accumulate(dx) }
                }
            }
        }
        return y
    }
}

/// out[n,c] = (x[n,c] − mean[c]) / std[c]: the model's fixed input normalisation.
public func normalizeChannels(_ x: Variable, mean: [Float], std: [Float], tape: Tape?) throws -> Variable {
    let s = x.shape
    guard s.count == 4, s[1] == mean.count else {
        throw JEMError.shapeMismatch(what: "model input", expected: [-1, mean.count, -1, -1], found: s)
    }
    let scale = std.map { 1 / $0 }
    let shift = zip(mean, std).map { -$0 / $1 }
    let out = Tensor(shape: s)
    jem_channel_affine(out.data, x.value.data, scale, shift, Int32(s[0]), Int32(s[1]), Int32(s[2] * s[3]))
    let y = Variable(out, requiresGrad: x.requiresGrad && tape != nil)
    if let tape, y.requiresGrad {
        tape.record {
            guard let dy = y.grad else { return }
            let dx = Tensor(shape: s)
            jem_channel_affine(dx.data, dy.data, scale, nil, Int32(s[0]), Int32(s[1]), Int32(s[2] * s[3]))
            x.accumulate(dx)
        }
    }
    return y
}
