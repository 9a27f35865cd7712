/// The resampling filters of Pillow's `Image.resize` that this module reproduces (`PIL.Image.Resampling`).
///
/// Kernels (Pillow 13, `src/libImaging/Resample.c`):
/// - `bilinear`: triangle, support 1: `w(x) = max(0, 1 − |x|)`.
/// - `bicubic`: Keys' cubic convolution with **a = −0.5** (PIL's; PyTorch's `interpolate(mode="bicubic")` uses
///   −0.75), support 2: `w(x) = ((a+2)|x| − (a+3))|x|² + 1` for |x| < 1, `a(|x|³ − 5|x|² + 8|x| − 4)` for
///   1 ≤ |x| < 2, else 0.
public enum ResampleFilter: String, Sendable, CaseIterable {
    case bilinear
    case bicubic

    /// Half-width of the kernel at scale 1 (PIL's `filter.support`).
    public var support: Double {
        switch self {
        case .bilinear: return 1
        case .bicubic: return 2
        }
    }

    /// The kernel, evaluated in Double with the same operation order as PIL's C code.
    @inline(__always)
    func weight(_ x: Double) -> Double {
        let x = x < 0 ? -x : x
        switch self {
        case .bilinear:
            return x < 1 ? 1 - x : 0
        case .bicubic:
            let a = -0.5
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
    }
}

/// A rectangle of pixels: columns `x ..< x + width`, rows `y ..< y + height`.
public struct PixelRect: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = width; self.height = height
    }
    public var area: Int { width * height }
    public var description: String { "\(width)×\(height)+\(x)+\(y)" }
}

/// PIL's fixed-point precision for 8-bit resampling: `PRECISION_BITS = 32 − 8 − 2`.
let resamplePrecisionBits: Int32 = 22

/// The fixed-point taps of one axis for a range of output indices, computed exactly as Pillow 13's
/// `precompute_coeffs` + `normalize_coeffs_8bpc` do for a box `(0, inSize)`:
/// `scale = inSize / outSize`, `filterscale = max(scale, 1)`, `support = filter.support · filterscale`;
/// for output `o`: `center = (o + 0.5) · scale`, `xmin = max(Int(center − support + 0.5), 0)`,
/// `xmax = min(Int(center + support + 0.5), inSize)`, weights `w(x) = filter((x − center + 0.5) / filterscale)`
/// for `x` in `xmin ..< xmax`, divided by their sum, then `Int(±0.5 + w · 2²²)` (rounded half away from zero).
struct ResampleTaps {
    let outputs: Range<Int>
    let ksize: Int
    /// Per output in `outputs` (indexed from 0): first input index and number of taps.
    let first: [Int]
    let count: [Int]
    /// `[outputs.count, ksize]`, zero past `count`.
    let weights: [Int32]

    init(inSize: Int, outSize: Int, filter: ResampleFilter, outputs: Range<Int>) {
        self.outputs = outputs
        let scale = Double(inSize) / Double(outSize)
        let filterscale = max(scale, 1)
        let support = filter.support * filterscale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        self.ksize = ksize
        let invFilterscale = 1.0 / filterscale
        var first = [Int](), count = [Int](), weights = [Int32](repeating: 0, count: outputs.count * ksize)
        first.reserveCapacity(outputs.count); count.reserveCapacity(outputs.count)
        var k = [Double](repeating: 0, count: ksize)
        let one = Double(1 << resamplePrecisionBits)
        for (row, o) in outputs.enumerated() {
            let center = (Double(o) + 0.5) * scale
            // C's (int) cast truncates toward zero; the clamp makes it equal to PIL's for negative values too.
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var ww = 0.0
            for x in 0..<xmax {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * invFilterscale)
                k[x] = w
                ww += w
            }
            for x in 0..<xmax {
                let w = ww != 0 ? k[x] / ww : k[x]
                weights[row * ksize + x] = w < 0 ? Int32(-0.5 + w * one) : Int32(0.5 + w * one)
            }
            first.append(xmin); count.append(max(xmax, 0))
        }
        self.first = first; self.count = count; self.weights = weights
    }

    /// Input indices `lo ..< hi` that the outputs read.
    var inputSpan: Range<Int> {
        guard !first.isEmpty else { return 0..<0 }
        var lo = Int.max, hi = Int.min
        for i in 0..<first.count { lo = min(lo, first[i]); hi = max(hi, first[i] + count[i]) }
        return lo..<hi
    }
}

@inline(__always)
private func clip8(_ ss: Int32) -> UInt8 { UInt8(clamping: ss >> resamplePrecisionBits) }

/// Horizontal 8-bit pass (PIL's `_ImagingResampleHorizontal_8bpc`, 3 bands): for every row in `0 ..< rows` and every
/// output column in `taps.outputs`, `clip8(2²¹ + Σ_t src[row][first + t − columnOffset] · k_t)`.
private func horizontalPass(src: UnsafePointer<UInt8>, srcRowBytes: Int, columnOffset: Int, rows: Int,
                            taps: ResampleTaps, dst: UnsafeMutablePointer<UInt8>, dstRowBytes: Int) {
    let half: Int32 = 1 << (resamplePrecisionBits - 1)
    let ksize = taps.ksize
    taps.weights.withUnsafeBufferPointer { w in
        taps.first.withUnsafeBufferPointer { first in
            taps.count.withUnsafeBufferPointer { count in
                for r in 0..<rows {
                    let line = src + r * srcRowBytes
                    let out = dst + r * dstRowBytes
                    for o in 0..<first.count {
                        let k = w.baseAddress! + o * ksize
                        var p = line + (first[o] - columnOffset) * 3
                        var s0 = half, s1 = half, s2 = half
                        for t in 0..<count[o] {
                            let kt = k[t]
                            s0 &+= Int32(p[0]) &* kt
                            s1 &+= Int32(p[1]) &* kt
                            s2 &+= Int32(p[2]) &* kt
                            p += 3
                        }
                        out[o * 3] = clip8(s0); out[o * 3 + 1] = clip8(s1); out[o * 3 + 2] = clip8(s2)
                    }
                }
            }
        }
    }
}

/// Vertical 8-bit pass (PIL's `_ImagingResampleVertical_8bpc`): for every output row in `taps.outputs` and every byte
/// `i` in `0 ..< rowBytes`, `clip8(2²¹ + Σ_t src[first + t − rowOffset][i] · k_t)`.
private func verticalPass(src: UnsafePointer<UInt8>, srcRowBytes: Int, rowOffset: Int, rowBytes: Int,
                          taps: ResampleTaps, dst: UnsafeMutablePointer<UInt8>, dstRowBytes: Int) {
    let half: Int32 = 1 << (resamplePrecisionBits - 1)
    let acc = UnsafeMutablePointer<Int32>.allocate(capacity: max(rowBytes, 1))
    defer { acc.deallocate() }
    taps.weights.withUnsafeBufferPointer { w in
        for o in 0..<taps.first.count {
            acc.update(repeating: half, count: rowBytes)
            let k = w.baseAddress! + o * taps.ksize
            let first = taps.first[o] - rowOffset
            for t in 0..<taps.count[o] {
                let line = src + (first + t) * srcRowBytes
                let kt = k[t]
                for i in 0..<rowBytes { acc[i] &+= Int32(line[i]) &* kt }
            }
            let out = dst + o * dstRowBytes
            for i in 0..<rowBytes { out[i] = clip8(acc[i]) }
        }
    }
}

extension RGBImage {
    /// The whole image as a rectangle.
    public var bounds: PixelRect { PixelRect(x: 0, y: 0, width: width, height: height) }

    /// Pillow 13's `Image.resize((width, height), resample=filter)` of an RGB image, exactly (every level equal).
    ///
    /// Antialiased separable convolution (the kernel widens by the downscale factor), 8-bit fixed point with
    /// `PRECISION_BITS = 22` and a clip to 0...255 after each pass: horizontal pass first, then vertical — except
    /// that, as in `Image.resize`, an image more than 100 times taller than wide that is being shortened is resized
    /// vertically first. A pass whose size does not change is skipped (it would be the identity). See
    /// ``ResampleFilter`` for the kernels. Precondition: `width > 0`, `height > 0`.
    public func resized(width: Int, height: Int, filter: ResampleFilter) -> RGBImage {
        resized(width: width, height: height, filter: filter, from: bounds)
    }

    /// `Image.crop((x, y, x + w, y + h)).resize((width, height), resample=filter)` — the crop is treated as a whole
    /// image (its borders clamp the kernel), as torchvision's `resized_crop` on a PIL image does. It is not PIL's
    /// `resize(box=...)`, which reads pixels outside the box. Preconditions: `source` inside the image, sizes > 0.
    public func resized(width: Int, height: Int, filter: ResampleFilter, from source: PixelRect) -> RGBImage {
        let px = resample(source: source, width: width, height: height, filter: filter,
                          columns: 0..<width, rows: 0..<height)
        return RGBImage(width: width, height: height, pixels: px)
    }

    /// Columns `columns` and rows `rows` of ``resized(width:height:filter:from:)``, as interleaved RGB rows of
    /// `columns.count` pixels. Every output pixel depends only on its own taps, so a window is computed exactly as
    /// the full resize would (this is how the center crop avoids resizing what it throws away).
    func resample(source: PixelRect, width: Int, height: Int, filter: ResampleFilter,
                  columns: Range<Int>, rows: Range<Int>) -> [UInt8] {
        precondition(width > 0 && height > 0, "resize to \(width)×\(height)")
        precondition(source.x >= 0 && source.y >= 0 && source.width > 0 && source.height > 0
                     && source.x + source.width <= self.width && source.y + source.height <= self.height,
                     "resize: source \(source) outside a \(self.width)×\(self.height) image")
        precondition(columns.lowerBound >= 0 && columns.upperBound <= width
                     && rows.lowerBound >= 0 && rows.upperBound <= height, "resize: window outside the output")
        let outRowBytes = columns.count * 3
        var out = [UInt8](repeating: 0, count: outRowBytes * rows.count)
        guard !columns.isEmpty, !rows.isEmpty else { return out }
        let needH = width != source.width, needV = height != source.height
        let rowBytes = self.width * 3
        let verticalFirst = source.height > source.width * 100 && height < source.height

        pixels.withUnsafeBufferPointer { buf in
            out.withUnsafeMutableBufferPointer { dstBuf in
                let dst = dstBuf.baseAddress!
                // Pixel (c, r) of the source rectangle.
                let origin = buf.baseAddress! + source.y * rowBytes + source.x * 3
                switch (needH, needV) {
                case (false, false):
                    for (i, r) in rows.enumerated() {
                        (dst + i * outRowBytes).update(from: origin + r * rowBytes + columns.lowerBound * 3,
                                                       count: outRowBytes)
                    }
                case (true, false):
                    let th = ResampleTaps(inSize: source.width, outSize: width, filter: filter, outputs: columns)
                    horizontalPass(src: origin + rows.lowerBound * rowBytes, srcRowBytes: rowBytes, columnOffset: 0,
                                   rows: rows.count, taps: th, dst: dst, dstRowBytes: outRowBytes)
                case (false, true):
                    let tv = ResampleTaps(inSize: source.height, outSize: height, filter: filter, outputs: rows)
                    verticalPass(src: origin + columns.lowerBound * 3, srcRowBytes: rowBytes, rowOffset: 0,
                                 rowBytes: outRowBytes, taps: tv, dst: dst, dstRowBytes: outRowBytes)
                case (true, true):
                    let th = ResampleTaps(inSize: source.width, outSize: width, filter: filter, outputs: columns)
                    let tv = ResampleTaps(inSize: source.height, outSize: height, filter: filter, outputs: rows)
                    if verticalFirst {
                        // Image.resize's tall-image path: im.resize((w, height)) then .resize((width, height)).
                        let span = th.inputSpan
                        let tempRowBytes = span.count * 3
                        var temp = [UInt8](repeating: 0, count: tempRowBytes * rows.count)
                        temp.withUnsafeMutableBufferPointer { t in
                            verticalPass(src: origin + span.lowerBound * 3, srcRowBytes: rowBytes, rowOffset: 0,
                                         rowBytes: tempRowBytes, taps: tv, dst: t.baseAddress!,
                                         dstRowBytes: tempRowBytes)
                            horizontalPass(src: t.baseAddress!, srcRowBytes: tempRowBytes,
                                           columnOffset: span.lowerBound, rows: rows.count, taps: th, dst: dst,
                                           dstRowBytes: outRowBytes)
                        }
                    } else {
                        // PIL's order: horizontal over the rows the vertical pass reads, then vertical.
                        let span = tv.inputSpan
                        var temp = [UInt8](repeating: 0, count: outRowBytes * span.count)
                        temp.withUnsafeMutableBufferPointer { t in
                            horizontalPass(src: origin + span.lowerBound * rowBytes, srcRowBytes: rowBytes,
                                           columnOffset: 0, rows: span.count, taps: th, dst: t.baseAddress!,
                                           dstRowBytes: outRowBytes)
                            verticalPass(src: t.baseAddress!, srcRowBytes: outRowBytes, rowOffset: span.lowerBound,
                                         rowBytes: outRowBytes, taps: tv, dst: dst, dstRowBytes: outRowBytes)
                        }
                    }
                }
            }
        }
        return out
    }

    /// The image mirrored left–right (PIL's `transpose(FLIP_LEFT_RIGHT)`, torchvision's `hflip`).
    public func flippedHorizontally() -> RGBImage {
        var px = pixels
        for y in 0..<height {
            for x in 0..<width {
                let s = (y * width + (width - 1 - x)) * 3, d = (y * width + x) * 3
                px[d] = pixels[s]; px[d + 1] = pixels[s + 1]; px[d + 2] = pixels[s + 2]
            }
        }
        return RGBImage(width: width, height: height, pixels: px)
    }
}
