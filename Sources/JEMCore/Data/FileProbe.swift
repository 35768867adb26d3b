// FileProbe.swift: one entry point per file format robust-eval reads, taking the file's bytes:
// what the fuzz targets (Sources/fuzz-readers) and the corpus replay test feed untrusted input to.
// Each reads the bytes the way the commands do and returns a one-line summary, or throws the
// reader's error. A crash, hang or runaway allocation here is a bug.
import Foundation

public enum FileFormat: String, CaseIterable, Sendable {
    case safetensors, npy, idx, cifar, svhn, onnx
}

public enum FileProbe {
    public static func read(_ format: FileFormat, data: Data, path: String) throws -> String {
        switch format {
        case .safetensors:
            let f = try SafeTensorsFile(data: data, path: path)
            for name in f.entries.keys.sorted() where [.F32, .F64, .F16, .BF16].contains(f.entries[name]!.dtype) {
                _ = try f.tensor(name)
            }
            let m = try ModelIO.load(file: f)
            return "model \(m.model.architectureName), \(m.model.parameterCount) parameters"
        case .npy:
            let a = try NpyArray.parse(data, path: path)
            let (t, note) = try NpyImages.toNCHW(a, path: path, layout: nil)
            return "\(note), \(t.count) values"
        case .idx:
            // Plain label files start 00 00 08 01; gzip files go to the image parser, which checks.
            let s = try ByteStream(data: data, path: path)
            if data.starts(with: [0, 0, 8, 1]) { return "\(try IDXReader.parseLabels(s).count) labels" }
            return "images \(try IDXReader.parseImages(s).shape)"
        case .cifar:
            let (x, y) = try CIFARReader.parse(data, path: path, labelBytes: 1, labelIndex: 0, classes: 10)
            return "\(y.count) records, \(x.shape)"
        case .svhn:
            let d = try SVHNReader.parse(bytes: [UInt8](data), path: path)
            return "\(d.count) images \(d.channels)×\(d.height)×\(d.width)"
        case .onnx:
            let g = try GraphModel(definition: try ONNXReader.read(data: data, path: path))
            let c = g.imageShape
            let x = Tensor(shape: [1] + c)
            let z = try g.logits(x)
            return "graph \(g.opCounts.count) op types, logits \(z.shape)"
        }
    }
}
