/// A labelled set of single-channel (grayscale) images of one size.
///
/// Image `i` occupies `pixels[i * height * width ..< (i + 1) * height * width]`, row-major (row 0 first,
/// left to right). Pixel values are stored as read, in `0 ... maxPixelValue`; the normalized value of a
/// pixel `p` is exactly `Float(p) / Float(maxPixelValue)`, in `[0, 1]`.
public struct ImageDataset: Equatable, Sendable {
    /// Number of images (= `labels.count`).
    public let count: Int
    /// Rows per image.
    public let height: Int
    /// Columns per image.
    public let width: Int
    /// `count * height * width` raw pixel values, image-major then row-major.
    public let pixels: [UInt8]
    /// The raw value that normalizes to 1.0 (255 for IDX files; the CSV loader's `maxValue`).
    public let maxPixelValue: Int
    /// Class of each image, each in `0 ..< numClasses`.
    public let labels: [Int32]
    /// Number of classes the labels were validated against.
    public let numClasses: Int

    /// Builds a dataset from memory, checking `pixels.count == labels.count * height * width`,
    /// `height, width >= 1`, `1 <= maxPixelValue <= 255`, every pixel `<= maxPixelValue`, and every label
    /// in `0 ..< numClasses`. Errors use `source` as the path.
    public init(height: Int, width: Int, pixels: [UInt8], labels: [Int32], numClasses: Int,
                maxPixelValue: Int = 255, source: String = "<in-memory dataset>") throws {
        func fail(_ text: String) -> DatasetError { DatasetError(path: source, .invalidArgument(text)) }
        guard height >= 1, width >= 1 else { throw fail("height and width must be >= 1, got \(height)×\(width)") }
        guard numClasses >= 1 else { throw fail("numClasses must be >= 1, got \(numClasses)") }
        guard (1...255).contains(maxPixelValue) else { throw fail("maxPixelValue must be in 1 ... 255, got \(maxPixelValue)") }
        let (perImage, o1) = height.multipliedReportingOverflow(by: width)
        let (expected, o2) = perImage.multipliedReportingOverflow(by: labels.count)
        guard !o1, !o2, expected == pixels.count else {
            throw fail("\(labels.count) labels of \(height)×\(width) images need \(labels.count) × \(height) × \(width) pixels"
                       + ", got \(pixels.count)")
        }
        if maxPixelValue < 255, let i = pixels.firstIndex(where: { Int($0) > maxPixelValue }) {
            throw fail("pixel \(i) is \(pixels[i]); expected at most maxPixelValue \(maxPixelValue)")
        }
        if let i = labels.firstIndex(where: { $0 < 0 || Int($0) >= numClasses }) {
            throw DatasetError(path: source, .labelOutOfRange(index: i, location: "label \(i)", label: Int(labels[i]), numClasses: numClasses))
        }
        self.init(unchecked: height, width, pixels, labels, numClasses, maxPixelValue)
    }

    init(unchecked height: Int, _ width: Int, _ pixels: [UInt8], _ labels: [Int32], _ numClasses: Int, _ maxPixelValue: Int) {
        self.count = labels.count
        self.height = height
        self.width = width
        self.pixels = pixels
        self.labels = labels
        self.numClasses = numClasses
        self.maxPixelValue = maxPixelValue
    }

    /// Pixels per image (`height * width`).
    public var pixelsPerImage: Int { height * width }

    /// The raw pixels of image `index` (must be in `0 ..< count`).
    public func image(_ index: Int) -> ArraySlice<UInt8> {
        pixels[(index * pixelsPerImage)..<((index + 1) * pixelsPerImage)]
    }

    /// Image `index` normalized: element `k` is `Float(image(index)[k]) / Float(maxPixelValue)`.
    public func normalizedImage(_ index: Int) -> [Float] {
        let scale = Float(maxPixelValue)
        return image(index).map { Float($0) / scale }
    }

    /// All pixels normalized to `[0, 1]`: element `k` is `Float(pixels[k]) / Float(maxPixelValue)`.
    public func normalizedPixels() -> [Float] {
        let scale = Float(maxPixelValue)
        return pixels.map { Float($0) / scale }
    }

    /// `classCounts()[c]` = number of images whose label is `c`, for `c` in `0 ..< numClasses`.
    public func classCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: numClasses)
        for l in labels { counts[Int(l)] += 1 }
        return counts
    }
}
