// NpyImages.swift: image sets stored as NumPy arrays: N×C×H×W or N×H×W×C (or N×H×W), float in
// [0, 1] or uint8 in 0–255, with an optional labels array of the same length.
import Foundation

public enum NpyLayout: String, CaseIterable, Sendable { case nchw, nhwc }

public enum NpyImages {
    /// Reads images (and labels) into a data set; the detected layout is recorded in `notes`.
    public static func load(images: String, labels: String?, layout: NpyLayout?, defaultClasses: Int?) throws -> Dataset {
        let a = try NpyArray.read(path: images)
        let t = try toNCHW(a, path: images, layout: layout)
        let n = t.images.shape[0]
        guard n > 0 else { throw JEMError.badFile(path: images, reason: "holds no images (shape \(a.shape))") }
        var y: [Int]
        var classes = defaultClasses ?? 10
        if let labels {
            let l = try NpyArray.read(path: labels)
            guard l.shape.count == 1 || (l.shape.count == 2 && l.shape[1] == 1) else {
                throw JEMError.badFile(path: labels, reason: "labels must be a 1-D array, found shape \(l.shape)")
            }
            guard l.count == n else {
                throw JEMError.badFile(path: labels, reason: "\(l.count) labels for \(n) images in \(images)")
            }
            let limit = Double(defaultClasses ?? 100_000)
            y = try l.values.enumerated().map { i, v in
                guard v >= 0, v == v.rounded() else { throw JEMError.badFile(path: labels, reason: "label \(v) at index \(i) is not a non-negative integer") }
                guard v < limit else {
                    let shown = v < 1e18 ? String(Int64(v)) : "\(v)"
                    throw JEMError.badFile(path: labels, reason: "label \(shown) at index \(i) is out of range 0..<\(Int(limit))\(defaultClasses != nil ? " (the model's class count)" : "")")
                }
                return Int(v)
            }
            if defaultClasses == nil { classes = max(classes, (y.max() ?? 0) + 1) }
            if let bad = y.first(where: { $0 >= classes }) {
                throw JEMError.badFile(path: labels, reason: "label \(bad) out of range 0..<\(classes)")
            }
        } else {
            y = Array(repeating: 0, count: n)
        }
        var d = try Dataset(images: t.images, labels: y, numClasses: classes, name: images)
        d.notes = [t.note] + (labels == nil ? ["no labels given: accuracy is not meaningful"] : [])
        return d
    }

    /// The array as N×C×H×W pixels in [0, 1], with a note on the layout found.
    public static func toNCHW(_ a: NpyArray, path: String, layout: NpyLayout?) throws -> (images: Tensor, note: String) {
        var shape = a.shape
        if shape.count == 3 { shape = [shape[0], 1, shape[1], shape[2]] }
        guard shape.count == 4 else {
            throw JEMError.badFile(path: path, reason: "images must be N×C×H×W, N×H×W×C or N×H×W, found shape \(a.shape)")
        }
        let chanFirst = [1, 3].contains(shape[1]), chanLast = [1, 3].contains(shape[3])
        let lay: NpyLayout
        if let layout { lay = layout }
        else if chanFirst && !chanLast { lay = .nchw }
        else if chanLast && !chanFirst { lay = .nhwc }
        else if chanFirst && chanLast {
            throw JEMError.badFile(path: path, reason: "layout of shape \(a.shape) is ambiguous; give --layout nchw or --layout nhwc")
        } else {
            throw JEMError.badFile(path: path, reason: "cannot tell the channel axis of shape \(a.shape) (1 or 3 channels expected); give --layout")
        }
        let scale: Double = a.dtype == .u1 ? 1.0 / 255.0 : 1.0
        if a.dtype != .u1 {
            let bad = a.values.first { !($0 >= 0 && $0 <= 1) }
            if let bad {
                throw JEMError.badFile(path: path, reason: "float images must lie in [0, 1]; found \(bad)")
            }
        }
        let (n, c, h, w) = lay == .nchw ? (shape[0], shape[1], shape[2], shape[3]) : (shape[0], shape[3], shape[1], shape[2])
        let t = Tensor(shape: [n, c, h, w])
        if lay == .nchw {
            for i in 0..<t.count { t.data[i] = Float(a.values[i] * scale) }
        } else {
            for i in 0..<n { for y in 0..<h { for x in 0..<w { for k in 0..<c {
                t.data[((i * c + k) * h + y) * w + x] = Float(a.values[((i * h + y) * w + x) * c + k] * scale)
            } } } }
        }
        return (t, "\(path): read as \(lay.rawValue.uppercased()) \(a.dtype == .u1 ? "uint8 0–255" : "float in [0,1]"), \(n)×\(c)×\(h)×\(w)")
    }
}
