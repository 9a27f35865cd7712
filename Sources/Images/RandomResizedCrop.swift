import Foundation
import Tensors

/// Training augmentation: torchvision's `RandomResizedCrop(size, scale, ratio, interpolation=BICUBIC)` on a PIL
/// image, then `RandomHorizontalFlip(p)`, then rescale 1/255 and normalize (as ``Normalization``).
///
/// - The crop rectangle is drawn by ``cropRect(width:height:scale:ratio:using:)`` (torchvision's
///   `RandomResizedCrop.get_params`, same algorithm, our generator).
/// - The crop is resized to `size × size` with **PIL bicubic** (a = −0.5, antialiased, 8-bit:
///   ``RGBImage/resized(width:height:filter:from:)``), as torchvision's `resized_crop` does for PIL images when given
///   `InterpolationMode.BICUBIC` (DINOv2's training recipe; torchvision's default would be bilinear).
/// - The flip is drawn after the crop: `u < flipProbability` with `u` uniform in [0, 1).
///
/// Randomness: one ``SeededRandom`` per (seed, epoch, sample index) — ``generator(seed:epoch:index:)`` — so what an
/// image gets depends on nothing else: not on the rank that loads it, the batch it lands in, the order of calls or
/// a resume.
public struct RandomResizedCrop: Equatable, Sendable {
    /// The output side (square).
    public let size: Int
    /// Range of the crop's area as a fraction of the image's (torchvision's `scale`).
    public let scale: ClosedRange<Double>
    /// Range of the crop's aspect ratio width / height (torchvision's `ratio`), sampled log-uniformly.
    public let ratio: ClosedRange<Double>
    public let flipProbability: Double
    public let filter: ResampleFilter
    public let normalization: Normalization

    public init(size: Int, scale: ClosedRange<Double> = 0.08...1, ratio: ClosedRange<Double> = (3.0 / 4.0)...(4.0 / 3.0),
                flipProbability: Double = 0.5, filter: ResampleFilter = .bicubic,
                normalization: Normalization = .imageNet) throws {
        try checkSize("image size", size)
        guard scale.lowerBound > 0, scale.upperBound.isFinite else {
            throw PreprocessingError.invalidRange(setting: "crop scale", lower: scale.lowerBound, upper: scale.upperBound)
        }
        guard ratio.lowerBound > 0, ratio.upperBound.isFinite else {
            throw PreprocessingError.invalidRange(setting: "crop ratio", lower: ratio.lowerBound, upper: ratio.upperBound)
        }
        guard flipProbability >= 0 && flipProbability <= 1 else {
            throw PreprocessingError.invalidProbability(setting: "flip probability", value: flipProbability)
        }
        self.size = size; self.scale = scale; self.ratio = ratio; self.flipProbability = flipProbability
        self.filter = filter; self.normalization = normalization
    }

    /// What was drawn for one image: the crop in the source image and whether the result is mirrored.
    public struct Draw: Equatable, Hashable, Sendable {
        public let crop: PixelRect
        public let flipped: Bool
    }

    /// Floats written per image: `3 · size · size`.
    public var floatsPerImage: Int { 3 * size * size }

    /// The generator for sample `index` of `epoch` under `seed`: the named stream `"random-resized-crop"` of
    /// `seed`, then mixed with the epoch, then with the index, each step a SplitMix64 output of the previous value
    /// XOR the new number (a bijection for a fixed prefix, so distinct (epoch, index) never share a stream start).
    public static func generator(seed: UInt64, epoch: Int, index: Int) -> SeededRandom {
        var base = SeededRandom(seed: seed, stream: "random-resized-crop")
        var e = SeededRandom(seed: base.next() ^ UInt64(bitPattern: Int64(epoch)))
        var i = SeededRandom(seed: e.next() ^ UInt64(bitPattern: Int64(index)))
        return SeededRandom(seed: i.next())
    }

    /// Uniform Double in [0, 1) with 53 random bits.
    @inline(__always)
    static func unit(_ rng: inout SeededRandom) -> Double { Double(rng.next() >> 11) * 0x1p-53 }

    /// Python's `round()` on a float (half to even), then `int`.
    @inline(__always)
    static func pythonRound(_ x: Double) -> Int { Int(x.rounded(.toNearestOrEven)) }

    /// torchvision's `RandomResizedCrop.get_params(img, scale, ratio)`:
    /// up to 10 attempts of `target_area = area · U(scale)`, `aspect = exp(U(log ratio.lower, log ratio.upper))`,
    /// `w = round(√(target_area · aspect))`, `h = round(√(target_area / aspect))`; the first with `0 < w ≤ width`
    /// and `0 < h ≤ height` is placed at `top = randint(0, height − h)`, `left = randint(0, width − w)` (inclusive).
    /// Otherwise the fallback center crop: if `width / height < ratio.lower`, `w = width`,
    /// `h = round(w / ratio.lower)`; if `> ratio.upper`, `h = height`, `w = round(h · ratio.upper)`; else the whole
    /// image; at `((height − h) // 2, (width − w) // 2)`. (torchvision draws in float32; this draws in Double.)
    public static func cropRect(width: Int, height: Int, scale: ClosedRange<Double>, ratio: ClosedRange<Double>,
                                using rng: inout SeededRandom) -> PixelRect {
        let area = Double(width * height)
        let logLo = log(ratio.lowerBound), logHi = log(ratio.upperBound)
        for _ in 0..<10 {
            let targetArea = area * (scale.lowerBound + (scale.upperBound - scale.lowerBound) * unit(&rng))
            let aspect = exp(logLo + (logHi - logLo) * unit(&rng))
            let w = pythonRound((targetArea * aspect).squareRoot())
            let h = pythonRound((targetArea / aspect).squareRoot())
            if w > 0 && w <= width && h > 0 && h <= height {
                let top = Int.random(in: 0...(height - h), using: &rng)
                let left = Int.random(in: 0...(width - w), using: &rng)
                return PixelRect(x: left, y: top, width: w, height: h)
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio.lowerBound {
            h = pythonRound(Double(w) / ratio.lowerBound)
        } else if inRatio > ratio.upperBound {
            w = pythonRound(Double(h) * ratio.upperBound)
        }
        // Rounding cannot exceed the image (w / lower < height there), but keep the rectangle valid regardless.
        w = min(max(w, 1), width); h = min(max(h, 1), height)
        return PixelRect(x: (width - w) / 2, y: (height - h) / 2, width: w, height: h)
    }

    /// The crop and flip for sample `index` of `epoch` on an image of `width × height`.
    public func draw(width: Int, height: Int, seed: UInt64, epoch: Int, index: Int) -> Draw {
        var rng = Self.generator(seed: seed, epoch: epoch, index: index)
        let crop = Self.cropRect(width: width, height: height, scale: scale, ratio: ratio, using: &rng)
        let flipped = Self.unit(&rng) < flipProbability
        return Draw(crop: crop, flipped: flipped)
    }

    /// The augmented image, 8-bit `size × size` (crop, resize, flip), before rescale / normalize.
    public func augmented(_ image: RGBImage, seed: UInt64, epoch: Int, index: Int) -> (image: RGBImage, draw: Draw) {
        let d = draw(width: image.width, height: image.height, seed: seed, epoch: epoch, index: index)
        let resized = image.resized(width: size, height: size, filter: filter, from: d.crop)
        return (d.flipped ? resized.flippedHorizontally() : resized, d)
    }

    /// Writes the model input for sample `index` of `epoch` — `[3, size, size]` floats, channel-planar — to `out`
    /// and returns what was drawn.
    @discardableResult
    public func apply(_ image: RGBImage, seed: UInt64, epoch: Int, index: Int,
                      into out: UnsafeMutablePointer<Float>) -> Draw {
        let d = draw(width: image.width, height: image.height, seed: seed, epoch: epoch, index: index)
        let resized = image.resized(width: size, height: size, filter: filter, from: d.crop)
        normalization.write(resized, flipped: d.flipped, into: out)
        return d
    }
}
