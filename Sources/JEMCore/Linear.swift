// Linear.swift: the fully connected layer, out (N, OUT) = x (N, IN) · Wᵀ + b, and its gradient rule.
import CJEMKernels

public final class Linear {
    public let weight: Parameter
    public let bias: Parameter
    public let inputFeatures: Int, outputFeatures: Int

    public init(name: String, inputFeatures: Int, outputFeatures: Int) {
        self.inputFeatures = inputFeatures; self.outputFeatures = outputFeatures
        weight = Parameter(name: name + ".weight", shape: [outputFeatures, inputFeatures])
        bias = Parameter(name: name + ".bias", shape: [outputFeatures])
    }

    public var parameters: [Parameter] { [weight, bias] }

    public func initialize(_ rng: inout SeededRandom) {
        let bound = 1 / Float(inputFeatures).squareRoot()
        rng.fillUniform(weight.value, lo: -bound, hi: bound)
        rng.fillUniform(bias.value, lo: -bound, hi: bound)
    }

    public func callAsFunction(_ x: Variable, tape: Tape?) throws -> Variable {
        let s = x.shape
        guard s.count == 2, s[1] == inputFeatures else {
            throw JEMError.shapeMismatch(what: weight.name + " input", expected: [-1, inputFeatures], found: s)
        }
        let n = s[0], fin = inputFeatures, fout = outputFeatures
        let out = Tensor(shape: [n, fout])
        jem_linear_forward(out.data, x.value.data, weight.value.data, bias.value.data, Int32(n), Int32(fin), Int32(fout))
        let y = Variable(out, requiresGrad: needsGrad(tape, x))
        if let tape, y.requiresGrad {
            let weight = self.weight, bias = self.bias
            tape.record {
                guard let dy = y.grad else { return }
                let dx = x.requiresGrad ? Tensor(shape: [n, fin]) : nil
                let p = tape.parameterGradients
                jem_linear_backward(dx?.data, p ? tape.gradient(weight).data : nil, p ? tape.gradient(bias).data : nil,
                                    dy.data, x.value.data, weight.value.data, Int32(n), Int32(fin), Int32(fout))
                if let dx { x.accumulate(dx) }
            }
        }
        return y
    }
}
