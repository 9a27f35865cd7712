/// A decoded image as 8-bit RGB, interleaved, row-major: pixel (x, y) channel c is `pixels[(y * width + x) * 3 + c]`.
///
/// Every file is brought to this form the way PIL's `Image.open(path).convert("RGB")` does (what Hugging Face image
/// processors and torchvision's `ImageFolder` loader do), so the transforms downstream see the same values as theirs.
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// `width * height * 3` values.
    public var pixels: [UInt8]

    /// Precondition: `pixels.count == width * height * 3` and both sides positive (decoders check files first).
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height * 3,
                     "RGBImage: \(pixels.count) values for \(width)×\(height)×3")
        self.width = width; self.height = height; self.pixels = pixels
    }
}
