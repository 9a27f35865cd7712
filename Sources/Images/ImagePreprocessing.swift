/// A setting of the image preprocessing that cannot work (a size ≤ 0 or absurdly large, an empty range).
/// Messages name the setting so the command line can map it to its flag.
public enum PreprocessingError: Error, Equatable, CustomStringConvertible {
    case invalidSize(setting: String, value: Int)
    case invalidRange(setting: String, lower: Double, upper: Double)
    case invalidProbability(setting: String, value: Double)
    case invalidNormalization(String)

    public var description: String {
        switch self {
        case let .invalidSize(setting, value):
            return "\(setting) must be between 1 and \(maxPreprocessingSize), got \(value)"
        case let .invalidRange(setting, lower, upper):
            return "\(setting) must be a range 0 < lower ≤ upper, got (\(lower), \(upper))"
        case let .invalidProbability(setting, value):
            return "\(setting) must be in [0, 1], got \(value)"
        case let .invalidNormalization(message):
            return message
        }
    }
}

/// The largest resize / crop side a recipe accepts (a guard against typos such as `--image-size 2240000`).
public let maxPreprocessingSize = 8192

func checkSize(_ setting: String, _ value: Int) throws {
    guard value >= 1 && value <= maxPreprocessingSize else {
        throw PreprocessingError.invalidSize(setting: setting, value: value)
    }
}

/// Rescale then normalize, per channel, the way Hugging Face's PIL-backend image processors compute it:
/// `v = Float(Double(p) · rescaleFactor)` (numpy: uint8 → float64 × 1/255 → float32), then `(v − mean_c) / std_c`
/// in Float32 (numpy float32 arithmetic). Evaluated once per level into a 3 × 256 table, so every output value is
/// bit-identical to that formula.
public struct Normalization: Equatable, Sendable {
    public let mean: [Float]
    public let std: [Float]
    public let rescaleFactor: Double
    /// `[3, 256]`: the output value of level p in channel c is `table[c * 256 + p]`.
    let table: [Float]

    public init(mean: [Float], std: [Float], rescaleFactor: Double = 1.0 / 255.0) throws {
        guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 > 0 && $0.isFinite }),
              mean.allSatisfy({ $0.isFinite }), rescaleFactor.isFinite, rescaleFactor > 0 else {
            throw PreprocessingError.invalidNormalization(
                "normalization needs 3 finite means, 3 positive stds and a positive rescale factor")
        }
        self.init(validMean: mean, std: std, rescaleFactor: rescaleFactor)
    }

    private init(validMean mean: [Float], std: [Float], rescaleFactor: Double = 1.0 / 255.0) {
        self.mean = mean; self.std = std; self.rescaleFactor = rescaleFactor
        var t = [Float](repeating: 0, count: 3 * 256)
        for c in 0..<3 {
            for p in 0..<256 { t[c * 256 + p] = (Float(Double(p) * rescaleFactor) - mean[c]) / std[c] }
        }
        table = t
    }

    /// ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) (`IMAGENET_DEFAULT_MEAN/STD`), what
    /// DINOv2's `preprocessor_config.json` sets.
    public static let imageNet = Normalization(validMean: float32([0.485, 0.456, 0.406]),
                                               std: float32([0.229, 0.224, 0.225]))
    /// OpenAI CLIP's mean (0.48145466, 0.4578275, 0.40821073) and std (0.26862954, 0.26130258, 0.27577711)
    /// (`OPENAI_CLIP_MEAN/STD`).
    public static let clip = Normalization(validMean: float32([0.48145466, 0.4578275, 0.40821073]),
                                           std: float32([0.26862954, 0.26130258, 0.27577711]))

    /// Python floats → numpy float32: Double first, then Float (a decimal literal typed as Float directly could
    /// round differently in rare cases).
    private static func float32(_ v: [Double]) -> [Float] { v.map { Float($0) } }

    /// Writes `image` as `[3, height, width]` channel-planar floats to `out`; `flipped` mirrors it left–right.
    public func write(_ image: RGBImage, flipped: Bool = false, into out: UnsafeMutablePointer<Float>) {
        let w = image.width, h = image.height, plane = w * h
        image.pixels.withUnsafeBufferPointer { px in
            table.withUnsafeBufferPointer { lut in
                let l0 = lut.baseAddress!, l1 = l0 + 256, l2 = l0 + 512
                let o0 = out, o1 = out + plane, o2 = out + 2 * plane
                for y in 0..<h {
                    let row = px.baseAddress! + y * w * 3
                    for x in 0..<w {
                        let p = row + (flipped ? w - 1 - x : x) * 3
                        let d = y * w + x
                        o0[d] = l0[Int(p[0])]; o1[d] = l1[Int(p[1])]; o2[d] = l2[Int(p[2])]
                    }
                }
            }
        }
    }
}

/// An evaluation preprocessing recipe: Hugging Face's PIL-backend image processor pipeline
/// `resize(shortest_edge) → center_crop(crop) → rescale(1/255) → normalize(mean, std)`.
///
/// - `.dinov2(resize: 256, crop: 224)`: `BitImageProcessor` as configured by `facebook/dinov2-small`'s
///   `preprocessor_config.json` (shortest edge 256, PIL bicubic, center crop 224, ImageNet mean / std).
/// - `.clip(size: 224)`: `CLIPImageProcessor` as configured by `openai/clip-vit-base-patch32` (shortest edge 224,
///   PIL bicubic, center crop 224, CLIP mean / std).
///
/// In transformers 5.x these are the `…ImageProcessorPil` classes (`PilBackend`); the classes without the suffix are
/// the torchvision backend, which `AutoImageProcessor` picks when torchvision is installed: it resizes tensors with
/// PyTorch's antialiased bicubic (a = −0.75, float) and pads small images differently (⌊d/2⌋ before instead of
/// ⌈d/2⌉), so it does not match this recipe exactly.
public struct Recipe: Equatable, Sendable, CustomStringConvertible {
    public enum Family: String, Sendable { case dinov2, clip }
    public let family: Family
    /// The resized image's shorter side.
    public let resize: Int
    /// The (square) center crop's side: the model's input size.
    public let crop: Int
    public let filter: ResampleFilter
    public let normalization: Normalization

    public init(family: Family, resize: Int, crop: Int, filter: ResampleFilter = .bicubic,
                normalization: Normalization) throws {
        try checkSize("resize size", resize)
        try checkSize("image size", crop)
        self.family = family; self.resize = resize; self.crop = crop; self.filter = filter
        self.normalization = normalization
    }

    /// DINOv2's evaluation transform (`BitImageProcessor`, `facebook/dinov2-small`): defaults 256 / 224.
    public static func dinov2(resize: Int = 256, crop: Int = 224) throws -> Recipe {
        try Recipe(family: .dinov2, resize: resize, crop: crop, normalization: .imageNet)
    }

    /// CLIP's evaluation transform (`CLIPImageProcessor`, `openai/clip-vit-base-patch32`): shortest edge = crop.
    public static func clip(size: Int = 224) throws -> Recipe { try clip(resize: size, crop: size) }

    public static func clip(resize: Int, crop: Int) throws -> Recipe {
        try Recipe(family: .clip, resize: resize, crop: crop, normalization: .clip)
    }

    public var description: String { "\(family.rawValue)(resize: \(resize), crop: \(crop), \(filter.rawValue))" }

    /// Floats written per image: `3 · crop · crop`.
    public var floatsPerImage: Int { 3 * crop * crop }

    /// transformers' `get_resize_output_image_size(image, size, default_to_square=False)`: the shorter side
    /// (the width when `width ≤ height`) becomes `shortestEdge`, the longer `int(shortestEdge · long / short)`
    /// (truncated; computed here in integers, which equals Python's float expression for any realistic size).
    public static func resizedSize(width: Int, height: Int, shortestEdge: Int) -> (width: Int, height: Int) {
        if width <= height { return (shortestEdge, shortestEdge * height / width) }
        return (shortestEdge * width / height, shortestEdge)
    }

    /// The crop's top-left corner in the resized image: transformers' `center_crop`
    /// `top = (H − crop) // 2`, `left = (W − crop) // 2` (floor division, so negative when the image is smaller
    /// than the crop). Crop pixel (x, y) is resized pixel (left + x, top + y), or level 0 in every channel where
    /// that is outside the image: the numpy `center_crop` pads with zeros, ⌈d/2⌉ before and ⌊d/2⌋ after,
    /// *before* rescale / normalize, so a padded pixel becomes `(0 − mean) / std`.
    public static func cropOrigin(resizedWidth: Int, resizedHeight: Int, crop: Int) -> (x: Int, y: Int) {
        func floorHalf(_ d: Int) -> Int { d >= 0 ? d / 2 : -((-d + 1) / 2) }
        return (floorHalf(resizedWidth - crop), floorHalf(resizedHeight - crop))
    }

    /// The resized and center-cropped image, 8-bit (`crop × crop`), before rescale / normalize. Only the rows and
    /// columns inside the crop are resampled; they are identical to the full resize's.
    public func resizedCrop(_ image: RGBImage) -> RGBImage {
        let size = Self.resizedSize(width: image.width, height: image.height, shortestEdge: resize)
        let origin = Self.cropOrigin(resizedWidth: size.width, resizedHeight: size.height, crop: crop)
        let cols = max(origin.x, 0)..<min(origin.x + crop, size.width)
        let rows = max(origin.y, 0)..<min(origin.y + crop, size.height)
        let window = image.resample(source: image.bounds, width: size.width, height: size.height, filter: filter,
                                    columns: cols, rows: rows)
        if cols.count == crop && rows.count == crop {
            return RGBImage(width: crop, height: crop, pixels: window)
        }
        var px = [UInt8](repeating: 0, count: crop * crop * 3)
        let dx = cols.lowerBound - origin.x, dy = rows.lowerBound - origin.y
        for r in 0..<rows.count {
            let d = ((dy + r) * crop + dx) * 3
            px.replaceSubrange(d..<(d + cols.count * 3), with: window[(r * cols.count * 3)..<((r + 1) * cols.count * 3)])
        }
        return RGBImage(width: crop, height: crop, pixels: px)
    }

    /// Writes the model input for `image` — `[3, crop, crop]` floats, channel-planar — to `out`.
    public func apply(_ image: RGBImage, into out: UnsafeMutablePointer<Float>) {
        normalization.write(resizedCrop(image), into: out)
    }
}
