// ImagePNG.swift: writing raster images as PNG (8-bit grey or RGB, zlib-compressed with the
// system zlib), and image grids of N×C×H×W pixel tensors (sample grids).
import CZlib
import Foundation

public enum ImagePNG {
    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let t = Array(type.utf8)
        var c = [UInt8]()
        let n = UInt32(data.count)
        c += [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
        c += t + data
        let crc = (t + data).withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
        c += [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)]
        return c
    }

    /// Encodes 8-bit pixels, row-major, `channels` 1 (grey) or 3 (RGB) per pixel.
    public static func encode(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws -> Data {
        guard channels == 1 || channels == 3, pixels.count == width * height * channels, width > 0, height > 0 else {
            throw JEMError.invalidArgument("PNG: \(width)×\(height)×\(channels) needs \(width * height * channels) bytes, got \(pixels.count)")
        }
        var raw = [UInt8](); raw.reserveCapacity((width * channels + 1) * height)
        for r in 0..<height { raw.append(0); raw += pixels[(r * width * channels)..<((r + 1) * width * channels)] }
        var len = compressBound(uLong(raw.count))
        var z = [UInt8](repeating: 0, count: Int(len))
        guard compress2(&z, &len, raw, uLong(raw.count), 6) == Z_OK else { throw JEMError.invalidArgument("PNG: zlib compression failed") }
        func be(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        out += chunk("IHDR", be(width) + be(height) + [8, channels == 1 ? 0 : 2, 0, 0, 0])
        out += chunk("IDAT", Array(z[0..<Int(len)]))
        out += chunk("IEND", [])
        return Data(out)
    }

    /// 3×5 pixel glyphs of the digits 0–9 (rows top to bottom, 3 bits each, high bit left).
    static let digitGlyphs: [[UInt8]] = [
        [7, 5, 5, 5, 7], [2, 6, 2, 2, 7], [7, 1, 7, 4, 7], [7, 1, 7, 1, 7], [5, 5, 7, 1, 1],
        [7, 4, 7, 1, 7], [7, 4, 7, 5, 7], [7, 1, 1, 1, 1], [7, 5, 7, 5, 7], [7, 5, 7, 1, 7],
    ]

    /// A grid of images (N, C, H, W) in [0, 1] (clamped), `columns` per row, 2-pixel white gutters.
    /// `rowLabels` (one number per row, e.g. the class a row was sampled from) are drawn in a
    /// margin on the left.
    public static func writeGrid(_ x: Tensor, columns: Int, to path: String, scale: Int = 2, rowLabels: [Int]? = nil) throws {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard n > 0, c == 1 || c == 3 else { throw JEMError.invalidArgument("image grid needs 1 or 3 channels and at least one image, got \(x.shape)") }
        let cols = max(1, min(columns, n)), rows = (n + cols - 1) / cols, g = 2
        let digits = (rowLabels ?? []).map { String(max($0, 0)).count }.max() ?? 0
        let margin = rowLabels == nil ? 0 : digits * 4 * scale + g
        let W = margin + cols * (w * scale + g) + g, H = rows * (h * scale + g) + g
        var px = [UInt8](repeating: 255, count: W * H * c)
        for i in 0..<n {
            let oy = g + (i / cols) * (h * scale + g), ox = margin + g + (i % cols) * (w * scale + g)
            for y in 0..<(h * scale) { for q in 0..<(w * scale) { for k in 0..<c {
                let v = x.data[((i * c + k) * h + y / scale) * w + q / scale]
                px[((oy + y) * W + ox + q) * c + k] = UInt8((min(max(v, 0), 1) * 255).rounded())
            } } }
        }
        if let rowLabels {
            for (r, label) in rowLabels.prefix(rows).enumerated() {
                let text = Array(String(max(label, 0)))
                let oy = g + r * (h * scale + g) + max(0, (h * scale - 5 * scale) / 2)
                for (j, ch) in text.enumerated() {
                    guard let d = ch.wholeNumberValue else { continue }
                    let ox = g + j * 4 * scale
                    for gy in 0..<5 { for gx in 0..<3 where digitGlyphs[d][gy] >> (2 - gx) & 1 == 1 {
                        for sy in 0..<scale { for sx in 0..<scale {
                            let y = oy + gy * scale + sy, q = ox + gx * scale + sx
                            guard y < H, q < W else { continue }
                            for k in 0..<c { px[(y * W + q) * c + k] = 0 }
                        } }
                    } }
                }
            }
        }
        try AtomicFile.write(try encode(width: W, height: H, channels: c, pixels: px), to: path)
    }
}
