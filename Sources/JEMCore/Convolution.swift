// Convolution.swift: the 2-D convolution layer (NCHW, weight (OC, C, KH, KW), bias (OC)) and its
// gradient rule. Shapes are checked here, before any kernel call.
import CJEMKernels

public final class Conv2d {
    public let weight: Parameter
    public let bias: Parameter?
    public let inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int, padding: Int

    /// - Parameters:
    ///   - name: the PyTorch module path, e.g. `f.layer1.0.conv1`.
    public init(name: String, inputChannels: Int, outputChannels: Int, kernelSize: Int,
                stride: Int = 1, padding: Int = 0, bias: Bool = true) {
        self.inputChannels = inputChannels; self.outputChannels = outputChannels
        self.kernelSize = kernelSize; self.stride = stride; self.padding = padding
        weight = Parameter(name: name + ".weight", shape: [outputChannels, inputChannels, kernelSize, kernelSize])
        self.bias = bias ? Parameter(name: name + ".bias", shape: [outputChannels]) : nil
    }

    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    /// PyTorch's default initialisation (kaiming-uniform with a = √5): U(±1/√fan_in) for both.
    public func initialize(_ rng: inout SeededRandom) {
        let fanIn = Float(inputChannels * kernelSize * kernelSize)
        let bound = 1 / fanIn.squareRoot()
        rng.fillUniform(weight.value, lo: -bound, hi: bound)
        if let bias { rng.fillUniform(bias.value, lo: -bound, hi: bound) }
    }

    public func outputSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h + 2 * padding - kernelSize) / stride + 1, (w + 2 * padding - kernelSize) / stride + 1)
    }

    /// Floats of scratch the kernels need for an output of oh × ow (forward and both backward passes).
    func workspace(_ oh: Int, _ ow: Int) -> Int {
        jem_conv2d_workspace(Int32(inputChannels), Int32(kernelSize), Int32(kernelSize), Int32(oh), Int32(ow), Int32(outputChannels), Int32(Runtime.threads))
    }

    /// The convolution of a checked (N, C, H, W) input, untaped; `bias: false` leaves the bias out
    /// (the tangent pass of a Hessian–vector product); `leakyReLU: slope` applies a LeakyReLU in the
    /// kernel's epilogue (the same bits as a separate `leakyReLU` of the output).
    func forward(_ x: Tensor, bias withBias: Bool, leakyReLU slope: Float? = nil) -> Tensor {
        let s = x.shape, (oh, ow) = outputSize(s[2], s[3]), k = Int32(kernelSize)
        let out = Tensor(uninitialized: [s[0], outputChannels, oh, ow])   // written in full by the kernel
        let work = Tensor(uninitialized: [workspace(oh, ow)])
        jem_conv2d_forward_act(out.data, x.data, weight.value.data, withBias ? bias?.value.data : nil,
                               Int32(s[0]), Int32(s[1]), Int32(s[2]), Int32(s[3]), Int32(outputChannels), k, k,
                               Int32(stride), Int32(padding), Int32(oh), Int32(ow), work.data, slope == nil ? 0 : 1, slope ?? 0)
        return out
    }

    /// The convolution, recorded on `tape`; with `leakyReLU: slope` (≥ 0) followed by a LeakyReLU fused
    /// into the kernel (one pass less over the output; its gradient rule reads the sign of the output,
    /// which a non-negative slope keeps).
    public func callAsFunction(_ x: Variable, leakyReLU slope: Float? = nil, tape: Tape?) throws -> Variable {
        if let slope, !(slope >= 0) {   // a negative slope flips signs: unfused
            return leakyReLU(try self(x, tape: tape), slope: slope, tape: tape)
        }
        let s = x.shape
        guard s.count == 4, s[1] == inputChannels else {
            throw JEMError.shapeMismatch(what: weight.name + " input", expected: [-1, inputChannels, -1, -1], found: s)
        }
        let (n, c, h, w) = (s[0], s[1], s[2], s[3])
        let (oh, ow) = outputSize(h, w)
        guard oh > 0, ow > 0 else {
            throw JEMError.invalidArgument("\(weight.name): input \(h)×\(w) is too small for a \(kernelSize)×\(kernelSize) kernel")
        }
        let oc = outputChannels, k = kernelSize, st = stride, pad = padding
        let y = Variable(forward(x.value, bias: true, leakyReLU: slope), requiresGrad: needsGrad(tape, x))
        if let tape, y.requiresGrad {
            let weight = self.weight, bias = self.bias
            tape.record {
                guard var dy = y.grad else { return }
                let work = Tensor(uninitialized: [self.workspace(oh, ow)])
                let dx = x.requiresGrad ? Tensor(uninitialized: [n, c, h, w]) : nil
                if let slope {   // through the fused LeakyReLU: y > 0 exactly where its input is
                    // The input gradient alone (SGLD, attacks): the Winograd path reads the mask as it
                    // loads dy; the weight gradient needs dz itself.
                    if !tape.parameterGradients, let dx,
                       jem_conv2d_backward_input_act(dx.data, dy.data, y.value.data, slope, weight.value.data,
                                                     Int32(n), Int32(c), Int32(h), Int32(w), Int32(oc), Int32(k), Int32(k),
                                                     Int32(st), Int32(pad), Int32(oh), Int32(ow), work.data) != 0 {
                        x.accumulate(dx)
                        return
                    }
                    let dz = Tensor(uninitialized: dy.shape)
                    jem_leaky_relu_backward(dz.data, dy.data, y.value.data, slope, dz.count)
                    dy = dz
                }
                if tape.parameterGradients {
                    jem_conv2d_backward_weight(tape.gradient(weight).data, bias.map { tape.gradient($0).data }, dy.data, x.value.data,
                                               Int32(n), Int32(c), Int32(h), Int32(w), Int32(oc), Int32(k), Int32(k),
                                               Int32(st), Int32(pad), Int32(oh), Int32(ow), work.data)
                }
                if let dx {
                    jem_conv2d_backward_input(dx.data, dy.data, weight.value.data,
                                              Int32(n), Int32(c), Int32(h), Int32(w), Int32(oc), Int32(k), Int32(k),
                                              Int32(st), Int32(pad), Int32(oh), Int32(ow), work.data)
                    x.accumulate(dx)
                }
            }
        }
        return y
    }
}
