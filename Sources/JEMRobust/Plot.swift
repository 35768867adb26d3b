// Plot.swift: line charts (robustness curves, reliability diagrams, histograms) as SVG, and PNG
// through librsvg's rsvg-convert. One small chart model; callers give series of points.
import Foundation
import JEMCore

public struct Chart {
    public struct Series {
        public var label: String
        public var points: [(Double, Double)]
        public var style: Style = .line
        public init(label: String, points: [(Double, Double)], style: Style = .line) { self.label = label; self.points = points; self.style = style }
    }
    public enum Style { case line, bars, dashed }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var xRange: (Double, Double)?
    public var yRange: (Double, Double)?
    /// Optional annotations drawn at points (e.g. bin counts).
    public var notes: [(Double, Double, String)] = []

    public init(title: String, xLabel: String, yLabel: String, series: [Series], xRange: (Double, Double)? = nil, yRange: (Double, Double)? = nil) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series; self.xRange = xRange; self.yRange = yRange
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func tick(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) < 0.01 || abs(v) >= 1000 { return String(format: "%.2g", v) }
        return String(format: "%.3g", v)
    }

    public func svg(width: Int = 720, height: Int = 480) -> String {
        let (l, r, t, b) = (70.0, 190.0, 40.0, 55.0)
        let pw = Double(width) - l - r, ph = Double(height) - t - b
        let xs = series.flatMap { $0.points.map(\.0) }, ys = series.flatMap { $0.points.map(\.1) }
        let (x0, x1Raw) = xRange ?? (xs.min() ?? 0, xs.max() ?? 1)
        let y0: Double
        var y1: Double
        (y0, y1) = yRange ?? (min(ys.min() ?? 0, 0), ys.max() ?? 1)
        let x1 = x1Raw > x0 ? x1Raw : x0 + 1
        if y1 <= y0 { y1 = y0 + 1 }
        func px(_ x: Double) -> Double { l + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { t + ph - (y - y0) / (y1 - y0) * ph }
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(Double(width) / 2 - r / 2 + l / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">\(Chart.esc(title))</text>\n"
        for i in 0...5 {
            let fx = x0 + (x1 - x0) * Double(i) / 5, fy = y0 + (y1 - y0) * Double(i) / 5
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", l, py(fy), l + pw, py(fy))
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%@</text>\n", l - 6, py(fy) + 4, Chart.tick(fy) as NSString)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">%@</text>\n", px(fx), t + ph + 16, Chart.tick(fx) as NSString)
        }
        s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", l, t, pw, ph)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">%@</text>\n", l + pw / 2, Double(height) - 14, Chart.esc(xLabel) as NSString)
        s += String(format: "<text transform=\"translate(18,%.1f) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">%@</text>\n", t + ph / 2, Chart.esc(yLabel) as NSString)
        for (i, se) in series.enumerated() {
            let col = Chart.palette[i % Chart.palette.count]
            switch se.style {
            case .bars:
                let n = max(se.points.count, 1)
                let bw = pw / Double(n) * 0.9 / Double(max(series.filter { $0.style == .bars }.count, 1))
                let k = series[..<i].filter { $0.style == .bars }.count
                for (x, y) in se.points {
                    let xx = px(x) - pw / Double(n) * 0.45 + Double(k) * bw
                    s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\" fill-opacity=\"0.6\"/>\n", xx, py(y), bw, max(py(y0) - py(y), 0), col as NSString)
                }
            case .line, .dashed:
                let pts = se.points.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ")
                s += "<polyline points=\"\(pts)\" fill=\"none\" stroke=\"\(col)\" stroke-width=\"2\"\(se.style == .dashed ? " stroke-dasharray=\"6,4\"" : "")/>\n"
                if se.style == .line {
                    for (x, y) in se.points { s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>\n", px(x), py(y), col as NSString) }
                }
            }
            let ly = t + 14 + Double(i) * 20
            s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"4\" fill=\"%@\"/>\n", l + pw + 12, ly - 4, col as NSString)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">%@</text>\n", l + pw + 32, ly + 1, Chart.esc(se.label) as NSString)
        }
        for (x, y, text) in notes {
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"9\" fill=\"#444444\">%@</text>\n", px(x), py(y) - 4, Chart.esc(text) as NSString)
        }
        s += "</svg>\n"
        return s
    }

    /// Writes the SVG, and the PNG beside it (same stem) when `png` is given.
    public func write(svg svgPath: String, png pngPath: String?) throws {
        try AtomicFile.group { try stage(in: $0, svg: svgPath, png: pngPath) }
    }

    /// Stages the SVG and the PNG in an all-or-none group of files.
    public func stage(in g: AtomicFile.Group, svg svgPath: String, png pngPath: String?) throws {
        try g.write(svg(), to: svgPath)
        if let pngPath, let staged = g.stagedPath(for: svgPath) {
            try g.produce(pngPath) { tmp in try PNG.render(staged, into: tmp, reportingAs: pngPath) }
        }
    }
}

public enum PNG {
    /// Renders an SVG file to PNG with rsvg-convert (Debian: librsvg2-bin; scripts/setup.sh installs it).
    public static func fromSVG(_ svg: String, to png: String) throws {
        try AtomicFile.group { g in try g.produce(png) { try render(svg, into: $0, reportingAs: png) } }
    }

    /// Renders `svg` into the file `out` (no rename); errors name `png`.
    public static func render(_ svg: String, into tmp: String, reportingAs png: String) throws {
        let candidates = ["/usr/bin/rsvg-convert", "/usr/local/bin/rsvg-convert"]
        guard let tool = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw JEMError.io(path: png, reason: "cannot write PNG: rsvg-convert not found (install Debian's librsvg2-bin, e.g. bash scripts/setup.sh); the SVG is at \(svg)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = ["-b", "white", "-o", tmp, svg]
        let err = Pipe()
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            unlink(tmp)
            let msg = String(data: err.fileHandleForReading.readDataToEndOfFile(), encoding: .utf8) ?? ""
            throw JEMError.io(path: png, reason: "rsvg-convert failed: \(msg)")
        }
    }
}
