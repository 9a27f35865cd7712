/// The corrupted (OOD) copy of any ``ImageSource``: ``ImageCorruption``'s recipe applied to each image as the
/// source loads it, at the model's input resolution.
///
/// Exact definition, for image `i` (its index in `base`) and every channel `c` of the loaded tensor:
///  1. un-normalise: `x = out · std_c + mean_c` — the image in `[0, 1]` units again (the source's rescale and
///     normalisation inverted; exact up to float rounding, ~1e-7);
///  2. ``ImageCorruption/corrupt(_:height:width:parameters:)`` with ``ImageCorruption/parameters(forImage:)`` of `i`
///     — the same angle, contrast factor and noise draws on every channel, so a gray image stays gray; the
///     contrast mean is the channel's own;
///  3. `x ← min(max(round(255·x), 0), 255) / 255` — the 8-bit rounding ``ImageCorruption`` ends with
///     (`maxPixelValue` 255), so a corrupted file is what an 8-bit corrupted file would load as;
///  4. re-normalise: `(x − mean_c) / std_c`.
///
/// Why invert the normalisation instead of corrupting the files' pixels: every ``ImageSource`` hands out normalised
/// tensors only, and the evaluation transform (resize, crop) differs between sources; corrupting the loaded tensor
/// works for any source without touching how it decodes. The price: for an in-memory gray set the corruption acts
/// after the resize, not on the stored 28×28 pixels as `ImageCorruption.apply` does; at equal sizes (no resize) the
/// two agree to within one 8-bit level (tested). Deterministic per (seed, index): independent of batch, order and rank.
public final class CorruptedImageSource: ImageSource {
    public let base: ImageSource
    public let corruption: ImageCorruption
    public let mean: [Float]
    public let std: [Float]

    /// `mean` / `std`: the per-channel normalisation `base` applies (in `[0, 1]` units), one entry per channel.
    public init(_ base: ImageSource, corruption: ImageCorruption, mean: [Float], std: [Float]) throws {
        guard mean.count == base.channels, std.count == base.channels, std.allSatisfy({ $0 > 0 && $0.isFinite }),
              mean.allSatisfy(\.isFinite) else {
            throw DatasetError(path: "CorruptedImageSource", .invalidArgument(
                "expected \(base.channels) finite means and \(base.channels) positive stds, got \(mean) / \(std)"))
        }
        self.base = base; self.corruption = corruption; self.mean = mean; self.std = std
    }

    public var count: Int { base.count }
    public var numClasses: Int { base.numClasses }
    public var labels: [Int32] { base.labels }
    public var channels: Int { base.channels }
    public var height: Int { base.height }
    public var width: Int { base.width }

    public func load(_ indices: [Int], epoch: Int?, into out: UnsafeMutablePointer<Float>) throws {
        try base.load(indices, epoch: nil, into: out)
        let plane = height * width
        var x = [Double](repeating: 0, count: plane)
        for (k, index) in indices.enumerated() {
            let p = corruption.parameters(forImage: index)
            for c in 0..<channels {
                let dst = out + (k * channels + c) * plane
                let m = Double(mean[c]), s = Double(std[c])
                for j in 0..<plane { x[j] = Double(dst[j]) * s + m }
                corruption.corrupt(&x, height: height, width: width, parameters: p)
                for j in 0..<plane {
                    let q = min(max((x[j] * 255).rounded(), 0), 255) / 255
                    dst[j] = Float((q - m) / s)
                }
            }
        }
    }

    public func identify(_ add: (UnsafeRawBufferPointer) -> Void) {
        base.identify(add)
        [corruption.seed].withUnsafeBytes(add)
        (mean + std + [corruption.maxRotationDegrees, corruption.minContrast, corruption.maxContrast,
                       corruption.noiseStd, Float(corruption.effects.rawValue)]).withUnsafeBytes(add)
    }

    public var summary: String { "\(base.summary), corrupted (seed \(corruption.seed))" }
}
