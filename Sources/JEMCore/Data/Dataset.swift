// Dataset.swift: an in-memory labelled image set (float32 NCHW pixels in [0, 1], integer labels)
// and the data-set specification `--data SPEC` that every command shares.
import Foundation

public struct Dataset {
    public var images: Tensor
    public var labels: [Int]
    public var numClasses: Int
    public var name: String
    /// How the source was read (e.g. the detected .npy layout), for the user.
    public var notes: [String] = []

    public init(images: Tensor, labels: [Int], numClasses: Int, name: String) throws {
        guard images.shape.count == 4 else {
            throw JEMError.shapeMismatch(what: "\(name) images", expected: [-1, -1, -1, -1], found: images.shape)
        }
        guard labels.count == images.shape[0] else {
            throw JEMError.invalidArgument("\(name): \(images.shape[0]) images but \(labels.count) labels")
        }
        if let bad = labels.first(where: { $0 < 0 || $0 >= numClasses }) {
            throw JEMError.invalidArgument("\(name): label \(bad) is out of range 0..<\(numClasses)")
        }
        self.images = images; self.labels = labels; self.numClasses = numClasses; self.name = name
    }

    public var count: Int { labels.count }
    public var channels: Int { images.shape[1] }
    public var height: Int { images.shape[2] }
    public var width: Int { images.shape[3] }

    /// Images and labels of rows `idx` (in that order).
    public func batch(_ idx: ArraySlice<Int>) -> (Tensor, [Int]) {
        let per = channels * height * width
        let t = Tensor(shape: [idx.count, channels, height, width])
        for (j, i) in idx.enumerated() { (t.data + j * per).update(from: images.data + i * per, count: per) }
        return (t, idx.map { labels[$0] })
    }

    /// Rows [offset, offset+limit), optionally after a seeded shuffle.
    public func subset(offset: Int, limit: Int?, shuffleSeed: UInt64?) throws -> Dataset {
        guard offset >= 0, offset <= count else {
            throw JEMError.invalidArgument("--offset \(offset) is outside the \(count) examples of \(name)")
        }
        var order = Array(0..<count)
        if let s = shuffleSeed { var r = SeededRandom(seed: s); order = r.permutation(count) }
        let end = limit.map { min(count, offset + $0) } ?? count
        let (x, y) = batch(order[offset..<end])
        var d = try Dataset(images: x, labels: y, numClasses: numClasses, name: name)
        d.notes = notes
        return d
    }

    /// Pads spatially with zeros (centred) and/or repeats a grey channel to `channels`.
    public func adapted(toChannels c: Int?, toSize size: Int?) throws -> Dataset {
        var x = images
        if let c, c != channels {
            guard channels == 1 else {
                throw JEMError.invalidArgument("\(name): cannot convert \(channels)-channel images to \(c) channels (only grey → colour)")
            }
            let n = count, hw = height * width
            let t = Tensor(shape: [n, c, height, width])
            for i in 0..<n { for k in 0..<c { (t.data + (i * c + k) * hw).update(from: x.data + i * hw, count: hw) } }
            x = t
        }
        if let size, size != height || size != width {
            guard size >= height, size >= width else {
                throw JEMError.invalidArgument("\(name): cannot pad \(height)×\(width) images to \(size)×\(size) (smaller)")
            }
            let (n, cc) = (x.shape[0], x.shape[1])
            let t = Tensor(shape: [n, cc, size, size])
            let top = (size - height) / 2, left = (size - width) / 2
            for p in 0..<(n * cc) {
                for r in 0..<height {
                    (t.data + p * size * size + (r + top) * size + left).update(from: x.data + p * height * width + r * width, count: width)
                }
            }
            x = t
        }
        var d = try Dataset(images: x, labels: labels, numClasses: numClasses, name: name)
        d.notes = notes
        return d
    }

    /// Count per class.
    public var classHistogram: [Int] {
        var h = [Int](repeating: 0, count: numClasses)
        for l in labels { h[l] += 1 }
        return h
    }
}

public enum Split: String, CaseIterable, Sendable { case train, test }

/// `--data SPEC`: fashion-mnist[:DIR], mnist:DIR, cifar10:DIR, cifar100:DIR[:coarse], svhn:FILE.mat,
/// npy:IMAGES.npy[,LABELS.npy].
public enum DataSpec: Equatable, Sendable {
    case fashionMNIST(dir: String)
    case mnist(dir: String)
    case cifar10(dir: String)
    case cifar100(dir: String, coarse: Bool)
    case svhn(file: String)
    case npy(images: String, labels: String?)

    public static let fashionMNISTDefaultDir = "/usr/share/datasets/fashion-mnist"

    public static func parse(_ s: String) throws -> DataSpec {
        let (kind, rest): (String, String) = {
            guard let i = s.firstIndex(of: ":") else { return (s, "") }
            return (String(s[..<i]), String(s[s.index(after: i)...]))
        }()
        if s.contains(":") && rest.isEmpty {
            throw JEMError.invalidArgument("--data \(s): empty path after ':'; give \(kind):PATH or just \(kind)")
        }
        func need(_ what: String) throws -> String {
            guard !rest.isEmpty else { throw JEMError.invalidArgument("--data \(s): \(kind) needs \(what), e.g. \(kind):\(what == "a directory" ? "/path/to/dir" : "/path/to/file")") }
            return rest
        }
        switch kind.lowercased() {
        case "fashion-mnist", "fashion_mnist", "fmnist": return .fashionMNIST(dir: rest.isEmpty ? fashionMNISTDefaultDir : rest)
        case "mnist": return .mnist(dir: try need("a directory"))
        case "cifar10": return .cifar10(dir: try need("a directory"))
        case "cifar100":
            let r = try need("a directory")
            if r.hasSuffix(":coarse") { return .cifar100(dir: String(r.dropLast(7)), coarse: true) }
            if r.hasSuffix(":fine") { return .cifar100(dir: String(r.dropLast(5)), coarse: false) }
            return .cifar100(dir: r, coarse: false)
        case "svhn": return .svhn(file: try need("a .mat file"))
        case "npy":
            let parts = try need("IMAGES.npy[,LABELS.npy]").split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard !parts[0].isEmpty, parts.count == 1 || !parts[1].isEmpty else {
                throw JEMError.invalidArgument("--data \(s): expected npy:IMAGES.npy[,LABELS.npy] with non-empty paths")
            }
            return .npy(images: parts[0], labels: parts.count > 1 ? parts[1] : nil)
        default:
            throw JEMError.invalidArgument("--data \(s): unknown data set '\(kind)'; expected fashion-mnist[:DIR], mnist:DIR, cifar10:DIR, cifar100:DIR[:coarse], svhn:FILE.mat or npy:IMAGES.npy[,LABELS.npy]")
        }
    }

    /// Loads the split. `layout` resolves ambiguous .npy layouts; `defaultClasses` is the class
    /// count assumed for unlabelled or npy data (e.g. the model's).
    public func load(split: Split, layout: NpyLayout? = nil, defaultClasses: Int? = nil) throws -> Dataset {
        switch self {
        case let .fashionMNIST(dir): return try IDXReader.load(dir: dir, split: split, name: "fashion-mnist")
        case let .mnist(dir): return try IDXReader.load(dir: dir, split: split, name: "mnist")
        case let .cifar10(dir): return try CIFARReader.loadCIFAR10(dir: dir, split: split)
        case let .cifar100(dir, coarse): return try CIFARReader.loadCIFAR100(dir: dir, split: split, coarse: coarse)
        case let .svhn(file): return try SVHNReader.load(path: file)
        case let .npy(images, labels): return try NpyImages.load(images: images, labels: labels, layout: layout, defaultClasses: defaultClasses)
        }
    }
}
