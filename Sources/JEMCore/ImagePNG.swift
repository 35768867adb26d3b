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

    /// A grid of images (N, C, H, W) in [0, 1] (clamped), `columns` per row, 2-pixel white gutters.
    public static func writeGrid(_ x: Tensor, columns: Int, to path: String, scale: Int = 2) throws {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard n > 0, c == 1 || c == 3 else { throw JEMError.invalidArgument("image grid needs 1 or 3 channels and at least one image, got \(x.shape)") }
        let cols = max(1, min(columns, n)), rows = (n + cols - 1) / cols, g = 2
        let W = cols * (w * scale + g) + g, H = rows * (h * scale + g) + g
        var px = [UInt8](repeating: 255, count: W * H * c)
        for i in 0..<n {
            let oy = g + (i / cols) * (h * scale + g), ox = g + (i % cols) * (w * scale + g)
            for y in 0..<(h * scale) { for q in 0..<(w * scale) { for k in 0..<c {
                let v = x.data[((i * c + k) * h + y / scale) * w + q / scale]
                px[((oy + y) * W + ox + q) * c + k] = UInt8((min(max(v, 0), 1) * 255).rounded())
            } } }
        }
        try AtomicFile.write(try encode(width: W, height: H, channels: c, pixels: px), to: path)
    }
}
