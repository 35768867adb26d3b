// CIFARReader.swift: the binary versions of CIFAR-10 (data_batch_1..5.bin, test_batch.bin; records
// of 1 label byte + 3072 pixel bytes) and CIFAR-100 (train.bin, test.bin; coarse + fine label bytes).
import Foundation

public enum CIFARReader {
    static func read(_ path: String, labelBytes: Int, labelIndex: Int, classes: Int) throws -> (Tensor, [Int]) {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw JEMError.io(path: path, reason: "cannot read file (missing or not readable)")
        }
        return try parse(d, path: path, labelBytes: labelBytes, labelIndex: labelIndex, classes: classes)
    }

    /// Parses the records of one binary CIFAR file (`labelBytes` label bytes, the one at
    /// `labelIndex` used, then 3072 pixel bytes).
    public static func parse(_ d: Data, path: String, labelBytes: Int, labelIndex: Int, classes: Int) throws -> (Tensor, [Int]) {
        let rec = labelBytes + 3072
        guard d.count > 0 else { throw JEMError.badFile(path: path, reason: "empty file (expected \(rec)-byte records)") }
        guard d.count % rec == 0 else {
            throw JEMError.badFile(path: path, reason: "size \(d.count) bytes is not a whole number of \(rec)-byte records")
        }
        let n = d.count / rec
        let t = Tensor(uninitialized: [n, 3, 32, 32])
        var labels = [Int](repeating: 0, count: n)
        try d.withUnsafeBytes { (p: UnsafeRawBufferPointer) in
            let b = p.bindMemory(to: UInt8.self)
            for i in 0..<n {
                let l = Int(b[i * rec + labelIndex])
                guard l < classes else { throw JEMError.badFile(path: path, reason: "record \(i): label \(l) out of range 0..<\(classes)") }
                labels[i] = l
                for j in 0..<3072 { t.data[i * 3072 + j] = Float(b[i * rec + labelBytes + j]) * (1.0 / 255.0) }
            }
        }
        return (t, labels)
    }

    static func path(_ dir: String, _ name: String) throws -> String {
        let p = (dir as NSString).appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: p) else { throw JEMError.io(path: dir, reason: "missing \(name)") }
        return p
    }

    public static func loadCIFAR10(dir: String, split: Split) throws -> Dataset {
        let names = split == .train ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"]
        let parts = try names.map { try read(try path(dir, $0), labelBytes: 1, labelIndex: 0, classes: 10) }
        return try Dataset(images: Tensor.concat(parts.map(\.0)), labels: parts.flatMap(\.1), numClasses: 10, name: "cifar10 \(split.rawValue)")
    }

    public static func loadCIFAR100(dir: String, split: Split, coarse: Bool) throws -> Dataset {
        let (x, y) = try read(try path(dir, split == .train ? "train.bin" : "test.bin"), labelBytes: 2,
                              labelIndex: coarse ? 0 : 1, classes: coarse ? 20 : 100)
        return try Dataset(images: x, labels: y, numClasses: coarse ? 20 : 100, name: "cifar100 \(split.rawValue)")
    }
}
