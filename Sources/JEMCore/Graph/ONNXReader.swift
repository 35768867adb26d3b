// ONNXReader.swift: an ONNX file (protobuf ModelProto, parsed by swift-protobuf from the generated
// ONNXProto) turned into the executor's graph: nodes in file order, constant tensors (initializers,
// external data included) and the one image input and output. Every size read from the file is
// checked with overflow-safe arithmetic against the bytes actually present before anything is
// allocated from it.
import Foundation
import ONNXProto
import SwiftProtobuf

/// A tensor known at load or plan time: float data, or integers (int64/int32/bool, shapes and
/// indices). `ints` of shape [] is a scalar.
public enum GraphValue {
    case float(Tensor)
    case ints([Int], shape: [Int])

    public var shape: [Int] {
        switch self {
        case .float(let t): return t.shape
        case .ints(_, let s): return s
        }
    }

    var intValues: [Int]? {
        if case .ints(let v, _) = self { return v }
        return nil
    }
}

/// One ONNX node with its attributes.
public struct GraphNode {
    public let op: String
    public let name: String
    public let inputs: [String]
    public let outputs: [String]
    let attributes: [String: Onnx_AttributeProto]

    /// "Conv 'layer1.0.conv1'" (or the first output's name when the node is unnamed).
    public var label: String { "\(op) '\(name.isEmpty ? (outputs.first ?? "?") : name)'" }

    func has(_ key: String) -> Bool { attributes[key] != nil }

    func int(_ key: String, _ def: Int) -> Int { attributes[key].map { Int($0.i) } ?? def }
    func float(_ key: String, _ def: Float) -> Float { attributes[key].map { $0.f } ?? def }
    func ints(_ key: String) -> [Int]? { attributes[key].map { $0.ints.map { Int($0) } } }
    func string(_ key: String) -> String? { attributes[key].map { String(decoding: $0.s, as: UTF8.self) } }
    func tensor(_ key: String, path: String) throws -> GraphValue? {
        guard let a = attributes[key], a.hasT else { return nil }
        return try ONNXReader.value(a.t, path: path, baseDirectory: nil)
    }
}

/// A parsed ONNX model.
public struct GraphDefinition {
    public let path: String
    public let opset: Int
    public let producer: String
    public let nodes: [GraphNode]
    public let constants: [String: GraphValue]
    public let inputName: String
    /// N, C, H, W; nil where the file leaves a dimension symbolic.
    public let inputShape: [Int?]
    public let outputName: String
}

public enum ONNXReader {
    public static let supportedOpsets = 11...21
    /// The largest tensor the reader accepts (elements): 2³¹ − 1, far above any CNN's layer.
    static let maxElements = Checked.maxElements

    /// Reads and checks `path`. `output` picks one of several graph outputs by name.
    public static func read(path: String, output: String? = nil) throws -> GraphDefinition {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw JEMError.io(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        return try read(data: data, path: path, output: output)
    }

    /// Parses and checks the bytes of an ONNX file; `path` names it in errors and locates its
    /// external data.
    public static func read(data: Data, path: String, output: String? = nil) throws -> GraphDefinition {
        guard !data.isEmpty else { throw JEMError.badFile(path: path, reason: "empty file; expected an ONNX model (protobuf)") }
        let model: Onnx_ModelProto
        do {
            var opts = BinaryDecodingOptions()
            opts.messageDepthLimit = 64
            model = try Onnx_ModelProto(serializedBytes: data, options: opts)
        } catch {
            throw JEMError.badFile(path: path, reason: "not a valid ONNX protobuf (corrupt or truncated): \(error)")
        }
        guard model.hasGraph else { throw JEMError.badFile(path: path, reason: "the ONNX model has no graph") }
        let defaultSets = model.opsetImport.filter { $0.domain == "" || $0.domain == "ai.onnx" }
        guard let opset = defaultSets.map({ Int($0.version) }).max() else {
            throw JEMError.badFile(path: path, reason: "the model imports no opset of the default ONNX domain")
        }
        guard supportedOpsets.contains(opset) else {
            throw JEMError.badFile(path: path, reason: "opset \(opset) is not supported; supported: \(supportedOpsets.lowerBound)–\(supportedOpsets.upperBound) (re-export with opset_version=17)")
        }
        let g = model.graph
        let base = (path as NSString).deletingLastPathComponent
        var constants: [String: GraphValue] = [:]
        for t in g.initializer {
            constants[t.name] = try value(t, path: path, baseDirectory: base.isEmpty ? "." : base)
        }
        var nodes: [GraphNode] = []
        nodes.reserveCapacity(g.node.count)
        for n in g.node {
            if n.domain != "" && n.domain != "ai.onnx" {
                throw JEMError.badFile(path: path, reason: "node \(n.opType) '\(n.name)' is in domain '\(n.domain)'; only the default ONNX domain is supported")
            }
            var attrs: [String: Onnx_AttributeProto] = [:]
            for a in n.attribute { attrs[a.name] = a }
            nodes.append(GraphNode(op: n.opType, name: n.name, inputs: n.input, outputs: n.output, attributes: attrs))
        }
        let inputs = g.input.filter { constants[$0.name] == nil }
        guard inputs.count == 1, let input = inputs.first else {
            throw JEMError.badFile(path: path, reason: "the graph has \(inputs.count) non-constant inputs (\(inputs.map(\.name).joined(separator: ", "))); expected one image input N×C×H×W")
        }
        let tt = input.type.tensorType
        guard case .tensorType? = input.type.value, tt.elemType == 1 else {
            throw JEMError.badFile(path: path, reason: "input '\(input.name)' must be a float32 tensor, found element type \(tt.elemType)")
        }
        var shape: [Int?] = []
        if tt.hasShape {
            shape = tt.shape.dim.map { d in d.dimValue > 0 ? Int(d.dimValue) : nil }
            guard shape.count == 4 else {
                throw JEMError.badFile(path: path, reason: "input '\(input.name)' has rank \(shape.count); expected N×C×H×W (rank 4)")
            }
            for v in shape.dropFirst() { if let v, v > 1 << 16 { throw JEMError.badFile(path: path, reason: "input '\(input.name)' dimension \(v) is implausibly large") } }
        } else {
            shape = [nil, nil, nil, nil]
        }
        let outs = g.output.map(\.name)
        let outName: String
        if let output {
            guard outs.contains(output) else {
                throw JEMError.invalidArgument("--output \(output): the graph's outputs are \(outs.joined(separator: ", "))")
            }
            outName = output
        } else {
            guard outs.count == 1 else {
                throw JEMError.badFile(path: path, reason: outs.isEmpty ? "the graph declares no output"
                    : "the graph has \(outs.count) outputs (\(outs.joined(separator: ", "))); choose the logits with --output NAME")
            }
            outName = outs[0]
        }
        return GraphDefinition(path: path, opset: opset, producer: model.producerName + " " + model.producerVersion,
                               nodes: nodes, constants: constants, inputName: input.name, inputShape: shape, outputName: outName)
    }

    /// Element count of `dims`, overflow-checked and bounded.
    static func elementCount(_ dims: [Int], what: String, path: String) throws -> Int {
        try Checked.elementCount(dims, what: what, path: path)
    }

    /// Decodes a TensorProto (raw, typed-field or external data) after checking its size.
    static func value(_ t: Onnx_TensorProto, path: String, baseDirectory: String?) throws -> GraphValue {
        let what = "tensor '\(t.name)'"
        guard t.dims.allSatisfy({ $0 >= 0 && $0 <= Int64(maxElements) }) else {
            throw JEMError.badFile(path: path, reason: "\(what) has dimensions \(t.dims) out of range")
        }
        let dims = t.dims.map { Int($0) }
        let n = try elementCount(dims, what: what, path: path)
        let type = Int(t.dataType)
        let width: Int
        switch type {
        case 1, 6: width = 4          // float, int32
        case 7, 11: width = 8         // int64, double
        case 9: width = 1             // bool
        case 10: width = 2            // float16
        default:
            throw JEMError.badFile(path: path, reason: "\(what) has data type \(type); supported: float32 (1), float16 (10), double (11), int64 (7), int32 (6), bool (9)")
        }
        var raw: Data?
        if t.dataLocation == .external {
            guard let base = baseDirectory else { throw JEMError.badFile(path: path, reason: "\(what): external data is not allowed here") }
            raw = try external(t, bytes: n * width, base: base, path: path)
        } else if t.hasRawData {
            raw = t.rawData
        }
        if let raw {
            guard raw.count == n * width else {
                throw JEMError.badFile(path: path, reason: "\(what) of shape \(dims) needs \(n * width) bytes, its data holds \(raw.count)")
            }
            return raw.withUnsafeBytes { (b: UnsafeRawBufferPointer) -> GraphValue in
                switch type {
                case 1:
                    let out = Tensor(uninitialized: dims)
                    if n > 0 { memcpy(out.data, b.baseAddress!, n * 4) }
                    return .float(out)
                case 11:
                    let out = Tensor(uninitialized: dims)
                    for i in 0..<n { out.data[i] = Float(b.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
                    return .float(out)
                case 10:
                    let out = Tensor(uninitialized: dims)
                    for i in 0..<n { out.data[i] = Float(Float16(bitPattern: b.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
                    return .float(out)
                case 7: return .ints((0..<n).map { Int(b.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }, shape: dims)
                case 6: return .ints((0..<n).map { Int(b.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }, shape: dims)
                default: return .ints((0..<n).map { Int(b[$0]) }, shape: dims)
                }
            }
        }
        func check(_ count: Int) throws {
            guard count == n else { throw JEMError.badFile(path: path, reason: "\(what) of shape \(dims) has \(count) values, expected \(n)") }
        }
        switch type {
        case 1:
            try check(t.floatData.count)
            return .float(try Tensor(shape: dims, values: t.floatData))
        case 11:
            try check(t.doubleData.count)
            return .float(try Tensor(shape: dims, values: t.doubleData.map { Float($0) }))
        case 10:
            try check(t.int32Data.count)
            return .float(try Tensor(shape: dims, values: t.int32Data.map { Float(Float16(bitPattern: UInt16(truncatingIfNeeded: $0))) }))
        case 7:
            try check(t.int64Data.count)
            return .ints(t.int64Data.map { Int($0) }, shape: dims)
        default:
            try check(t.int32Data.count)
            return .ints(t.int32Data.map { Int($0) }, shape: dims)
        }
    }

    /// Reads an external-data tensor's bytes from the file beside the model, after checking that
    /// the declared location, offset and length lie inside it.
    static func external(_ t: Onnx_TensorProto, bytes: Int, base: String, path: String) throws -> Data {
        var kv: [String: String] = [:]
        for e in t.externalData { kv[e.key] = e.value }
        let what = "tensor '\(t.name)'"
        guard let loc = kv["location"], !loc.isEmpty, !loc.hasPrefix("/"), !loc.split(separator: "/").contains("..") else {
            throw JEMError.badFile(path: path, reason: "\(what): external data needs a relative `location` inside the model's folder, found '\(kv["location"] ?? "")'")
        }
        let offset = Int(kv["offset"] ?? "0") ?? -1
        let length = kv["length"].map { Int($0) ?? -1 } ?? bytes
        guard offset >= 0, length >= 0 else { throw JEMError.badFile(path: path, reason: "\(what): external data offset/length are not non-negative integers") }
        guard length == bytes else {
            throw JEMError.badFile(path: path, reason: "\(what): external data length \(length) bytes, its shape needs \(bytes)")
        }
        let file = (base as NSString).appendingPathComponent(loc)
        guard let h = FileHandle(forReadingAtPath: file) else {
            throw JEMError.io(path: file, reason: "external data of \(what) (named in \(path)) is missing")
        }
        defer { try? h.close() }
        let size = Int((try? h.seekToEnd()) ?? 0)
        let (end, o) = offset.addingReportingOverflow(length)
        guard !o, end <= size else {
            throw JEMError.badFile(path: file, reason: "external data of \(what) (named in \(path)) declares bytes \(offset)..<\(offset &+ length), the file holds \(size)")
        }
        try h.seek(toOffset: UInt64(offset))
        let d = try h.read(upToCount: length) ?? Data()
        guard d.count == length else { throw JEMError.badFile(path: file, reason: "short read of external data for \(what)") }
        return d
    }
}
