// GraphPlan.swift: an ONNX graph compiled for one input shape. Walking the nodes in order, every
// node whose inputs are all known at plan time (initializers, Constant nodes and the shapes of
// variable tensors) is evaluated now — this folds the exporter's shape subgraphs (Shape → Gather →
// Unsqueeze → Concat → Reshape; ConstantOfShape/Slice/Transpose/Cast before Pad) — and every other
// node becomes one executable step with its constant operands resolved.
import Foundation

struct PlanStep {
    let op: GraphOp
    let inputs: [Int]
    let output: Int
    let label: String
}

final class GraphPlan {
    let steps: [PlanStep]
    /// Slot values fixed at plan time (constants that steps read).
    let constants: [Int: Tensor]
    let slotCount: Int
    let outputSlot: Int
    let outputShape: [Int]
    /// For each step, the variable slots it reads for the last time (freed after it in
    /// forward-only passes).
    let lastReads: [[Int]]

    private init(steps: [PlanStep], constants: [Int: Tensor], slotCount: Int, outputSlot: Int, outputShape: [Int]) {
        self.steps = steps; self.constants = constants; self.slotCount = slotCount
        self.outputSlot = outputSlot; self.outputShape = outputShape
        var last = [Int](repeating: -1, count: slotCount)
        for (i, s) in steps.enumerated() { for j in s.inputs { last[j] = i } }
        var reads = [[Int]](repeating: [], count: steps.count)
        for (slot, i) in last.enumerated() where i >= 0 && constants[slot] == nil && slot != 0 && slot != outputSlot {
            reads[i].append(slot)
        }
        lastReads = reads
    }

    /// Values of all intermediate tensors of one image, summed over the graph (2^28: 1 GiB of
    /// float32; ImageNet ResNet-50 needs about 2^25).
    static let maxActivationsPerImage = 1 << 28

    /// The op types the executor runs (shape-only ops are folded at plan time).
    static let supportedOps = ["Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape",
                               "Conv", "Div", "Dropout", "Flatten", "Gather", "Gemm", "GlobalAveragePool", "Identity", "LeakyRelu",
                               "MatMul", "MaxPool", "Mul", "Pad", "Relu", "Reshape", "Shape", "Sigmoid", "Slice", "Softplus",
                               "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze"]

    private enum Known {
        case constant(GraphValue)
        case variable(slot: Int, shape: [Int])
    }

    /// Compiles `g` for input shape `inputShape`; `normalization` (mean, std) is applied in front.
    static func compile(_ g: GraphDefinition, inputShape: [Int], normalization: (mean: [Float], std: [Float])?) throws -> GraphPlan {
        var known: [String: Known] = [:]
        for (k, v) in g.constants { known[k] = .constant(v) }
        var steps: [PlanStep] = []
        var constSlots: [Int: Tensor] = [:]
        var slots = 1
        var activations = try Checked.elementCount(inputShape, what: "the input", path: g.path) / max(inputShape[0], 1)
        known[g.inputName] = .variable(slot: 0, shape: inputShape)
        if let (mean, std) = normalization {
            let op = ChannelAffineOp(scale: std.map { 1 / $0 }, shift: zip(mean, std).map { -$0 / $1 })
            _ = try op.outputShape([inputShape])
            steps.append(PlanStep(op: op, inputs: [0], output: slots, label: "input normalisation"))
            known[g.inputName] = .variable(slot: slots, shape: inputShape)
            slots += 1
        }
        let path = g.path
        for node in g.nodes {
            func fail(_ why: String) -> JEMError { .badFile(path: path, reason: "node \(node.label): \(why)") }
            guard supportedOps.contains(node.op) else {
                throw JEMError.badFile(path: path, reason: "unsupported op \(node.op) (node '\(node.name)', opset \(g.opset)); supported: \(supportedOps.joined(separator: ", "))")
            }
            var ins: [Known?] = []
            for name in node.inputs {
                if name.isEmpty { ins.append(nil); continue }
                guard let k = known[name] else { throw fail("input '\(name)' is not produced by any earlier node or initializer") }
                ins.append(k)
            }
            let outputs = node.outputs.filter { !$0.isEmpty }
            guard let outName = outputs.first else { throw fail("the node has no output") }
            // Extra outputs are allowed only where they are optional and unused (Dropout's mask).
            if outputs.count > 1 && !(node.op == "Dropout") {
                if node.op == "BatchNormalization" { throw fail("BatchNormalization in training mode (it has running-statistics outputs); export the model in eval mode") }
                if node.op == "MaxPool" { throw fail("MaxPool's indices output is not supported") }
                throw fail("\(outputs.count) outputs; the executor supports one")
            }
            let allConstant = ins.allSatisfy { k in if case .variable = k { return false }; return true }
            if node.op == "Shape", case .variable(_, let s)? = ins.first {
                known[outName] = .constant(try Fold.shapeOf(s, node: node))
                continue
            }
            if allConstant {
                let consts = ins.map { k -> GraphValue? in if case .constant(let v)? = k { return v }; return nil }
                known[outName] = .constant(try Fold.evaluate(node, consts, path: path, opset: g.opset))
                continue
            }
            // Identity, Dropout (inference) and a float-to-float Cast pass their input through: no step.
            if ["Identity", "Dropout"].contains(node.op) || (node.op == "Cast" && node.int("to", 1) == 1),
               case .variable(let slot, let shape)? = ins.first {
                if node.op == "Dropout", case .constant(.ints(let v, _))? = ins.count > 2 ? ins[2] : nil, v.first ?? 0 != 0 {
                    throw fail("Dropout with training_mode=true; export the model in eval mode")
                }
                known[outName] = .variable(slot: slot, shape: shape)
                continue
            }
            // Executable: variable inputs by slot, constant inputs resolved into the op or a const slot.
            let built = try OpBuilder.build(node, ins: ins.map { k in
                switch k {
                case .constant(let v)?: return .constant(v)
                case .variable(_, let s)?: return .variable(s)
                case nil: return .absent
                }
            }, path: path, opset: g.opset)
            var inSlots: [Int] = []
            var shapes: [[Int]] = []
            for i in built.operands {
                switch ins[i] {
                case .variable(let slot, let s)?:
                    inSlots.append(slot); shapes.append(s)
                case .constant(let v)?:
                    guard case .float(let t) = v else { throw fail("input \(i) is an integer tensor where a float tensor is needed") }
                    constSlots[slots] = t
                    inSlots.append(slots); shapes.append(t.shape)
                    slots += 1
                case nil:
                    throw fail("input \(i) is missing")
                }
            }
            let shape: [Int]
            do { shape = try built.op.outputShape(shapes) } catch { throw fail("\(error)") }
            // A tiny file can declare enormous activations (a wide 1×1 convolution of a large map):
            // bounded per image before anything runs.
            activations += try Checked.elementCount(shape, what: "the output of \(node.label)", path: path) / max(inputShape[0], 1)
            guard activations <= GraphPlan.maxActivationsPerImage else {
                throw fail("the graph's activations reach \(activations) values per image here, more than the \(GraphPlan.maxActivationsPerImage) supported")
            }
            steps.append(PlanStep(op: built.op, inputs: inSlots, output: slots, label: node.label))
            known[outName] = .variable(slot: slots, shape: shape)
            slots += 1
        }
        steps = fuseActivations(steps, keep: [known[g.outputName]].compactMap { k in if case .variable(let s, _)? = k { return s }; return nil })
        guard let out = known[g.outputName] else { throw JEMError.badFile(path: path, reason: "the graph output '\(g.outputName)' is never computed") }
        guard case .variable(let slot, let shape) = out else {
            throw JEMError.badFile(path: path, reason: "the graph output '\(g.outputName)' does not depend on the input")
        }
        guard shape.count == 2, shape[0] == inputShape[0] else {
            throw JEMError.badFile(path: path, reason: "the graph output '\(g.outputName)' has shape \(shape) for a batch of \(inputShape[0]); expected logits N×K")
        }
        return GraphPlan(steps: steps, constants: constSlots, slotCount: slots, outputSlot: slot, outputShape: shape)
    }
}

/// Folds each ReLU/LeakyReLU into the Conv, Add or Sub that feeds it when it is that op's only
/// consumer (and the op's output is not the graph's): the fused step writes the activation's slot.
func fuseActivations(_ steps: [PlanStep], keep: [Int]) -> [PlanStep] {
    var uses: [Int: Int] = [:]
    for s in steps { for i in s.inputs { uses[i, default: 0] += 1 } }
    var producer: [Int: Int] = [:]
    for (i, s) in steps.enumerated() { producer[s.output] = i }
    var out = steps.map { Optional($0) }
    for (i, s) in steps.enumerated() {
        guard let act = s.op as? PiecewiseLinearOp, case .leaky(let slope) = act.kind, slope >= 0,
              let src = s.inputs.first, let j = producer[src], let p = out[j], uses[src] == 1, !keep.contains(src) else { continue }
        let linear = p.op is ConvOp || (p.op as? BinaryOp).map { $0.kind == .add || $0.kind == .sub } == true
        guard linear else { continue }
        out[j] = nil
        out[i] = PlanStep(op: ActivatedOp(inner: p.op, slope: slope), inputs: p.inputs, output: s.output, label: p.label + " + " + s.label)
    }
    return out.compactMap { $0 }
}

/// Operands of a node while it is being built: known constant, variable of a shape, or absent.
enum Operand {
    case constant(GraphValue)
    case variable([Int])
    case absent

    var shape: [Int]? {
        switch self {
        case .constant(let v): return v.shape
        case .variable(let s): return s
        case .absent: return nil
        }
    }
    var value: GraphValue? { if case .constant(let v) = self { return v }; return nil }
    var isVariable: Bool { if case .variable = self { return true }; return false }
}
