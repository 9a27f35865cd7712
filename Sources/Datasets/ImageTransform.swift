/// Turns stored gray images into a vision model's input tensor [N, channels, height, width]:
/// pixel / maxPixelValue → bilinear resize → the gray plane repeated on every channel → (x − mean_c) / std_c.
///
/// The resize is PyTorch's `interpolate(mode="bilinear", align_corners=False, antialias=False)` (torchvision's
/// `Resize` when enlarging): for output index i, source s = max((i + 0.5)·in/out − 0.5, 0), i0 = ⌊s⌋,
/// i1 = min(i0 + 1, in − 1), weights (1 − (s − i0), s − i0), separable in rows and columns.
/// Defaults are ImageNet's mean and std, which DINOv2 was trained with.
public struct ImageTransform: Equatable, Sendable {
    public var height: Int
    public var width: Int
    public var mean: [Float]
    public var std: [Float]

    public static let imageNetMean: [Float] = [0.485, 0.456, 0.406]
    public static let imageNetStd: [Float] = [0.229, 0.224, 0.225]

    public init(height: Int, width: Int, mean: [Float] = imageNetMean, std: [Float] = imageNetStd) {
        self.height = height; self.width = width; self.mean = mean; self.std = std
    }

    public var channels: Int { mean.count }
    public var floatsPerImage: Int { channels * height * width }

    /// 1-D bilinear taps (i0, i1, w1) for every output index.
    static func taps(input: Int, output: Int) -> [(Int, Int, Float)] {
        let scale = Float(input) / Float(output)
        return (0..<output).map { i in
            let s = max((Float(i) + 0.5) * scale - 0.5, 0)
            let i0 = min(Int(s), input - 1)
            let i1 = min(i0 + 1, input - 1)
            return (i0, i1, s - Float(i0))
        }
    }

    /// What ``apply(_:indices:into:scratch:)`` reuses for one dataset shape: the taps and one plane. Build it once
    /// (``scratch(for:)``) and a training step transforms its batch without allocating.
    public final class Scratch {
        let inputHeight, inputWidth: Int
        let rows, cols: [(Int, Int, Float)]
        var plane: [Float]
        init(_ t: ImageTransform, inputHeight: Int, inputWidth: Int) {
            self.inputHeight = inputHeight; self.inputWidth = inputWidth
            rows = ImageTransform.taps(input: inputHeight, output: t.height)
            cols = ImageTransform.taps(input: inputWidth, output: t.width)
            plane = [Float](repeating: 0, count: t.height * t.width)
        }
    }

    public func scratch(for dataset: ImageDataset) -> Scratch {
        Scratch(self, inputHeight: dataset.height, inputWidth: dataset.width)
    }

    /// Writes images `indices` of `dataset`, in that order, to `out` ([indices.count, channels, height, width]).
    public func apply(_ dataset: ImageDataset, indices: [Int], into out: UnsafeMutablePointer<Float>) {
        apply(dataset, indices: indices, into: out, scratch: scratch(for: dataset))
    }

    /// ``apply(_:indices:into:)`` with reused taps and plane (`scratch` from ``scratch(for:)`` of this dataset).
    public func apply(_ dataset: ImageDataset, indices: [Int], into out: UnsafeMutablePointer<Float>, scratch: Scratch) {
        precondition(scratch.inputHeight == dataset.height && scratch.inputWidth == dataset.width
                     && scratch.plane.count == height * width, "ImageTransform: scratch built for another shape")
        let scale = 1 / Float(dataset.maxPixelValue)
        let width = self.width, height = self.height
        dataset.pixels.withUnsafeBufferPointer { px in
            scratch.plane.withUnsafeMutableBufferPointer { plane in
                for (k, index) in indices.enumerated() {
                    let img = px.baseAddress! + index * dataset.pixelsPerImage
                    for (y, (r0, r1, wy)) in scratch.rows.enumerated() {
                        for (x, (c0, c1, wx)) in scratch.cols.enumerated() {
                            func p(_ r: Int, _ c: Int) -> Float { Float(img[r * dataset.width + c]) * scale }
                            let top = p(r0, c0) * (1 - wx) + p(r0, c1) * wx
                            let bottom = p(r1, c0) * (1 - wx) + p(r1, c1) * wx
                            plane[y * width + x] = top * (1 - wy) + bottom * wy
                        }
                    }
                    for c in 0..<channels {
                        let dst = out + (k * channels + c) * height * width
                        let m = mean[c], inv = 1 / std[c]
                        for i in 0..<(height * width) { dst[i] = (plane[i] - m) * inv }
                    }
                }
            }
        }
    }

    /// Convenience: the transformed images as an array.
    public func apply(_ dataset: ImageDataset, indices: [Int]) -> [Float] {
        guard !indices.isEmpty else { return [] }
        var out = [Float](repeating: 0, count: indices.count * floatsPerImage)
        out.withUnsafeMutableBufferPointer { apply(dataset, indices: indices, into: $0.baseAddress!) }
        return out
    }
}
