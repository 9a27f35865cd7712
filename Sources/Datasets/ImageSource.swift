/// A labelled image set read in a model's input form: image i becomes `channels × height × width` floats
/// (channel-planar), ready for the backbone. What trainers and evaluators read, whatever the files are: an in-memory
/// gray set (``TransformedImageSet``) or a folder of JPEG / PNG photos (module `Images`).
///
/// Sources are read by one thread at a time (a trainer's loader thread, or an evaluator); they may use more
/// threads inside ``load(_:epoch:into:)``.
public protocol ImageSource: AnyObject {
    /// Images in the set.
    var count: Int { get }
    /// Classes the labels index.
    var numClasses: Int { get }
    /// Class of each image, in `0 ..< numClasses`.
    var labels: [Int32] { get }
    var channels: Int { get }
    var height: Int { get }
    var width: Int { get }
    /// Writes images `indices`, in that order, to `out` ([indices.count, channels, height, width]). `epoch`: the
    /// training stream's epoch, for sources that augment (their randomness is a function of (seed, epoch, image
    /// index) only); nil: the evaluation transform.
    func load(_ indices: [Int], epoch: Int?, into out: UnsafeMutablePointer<Float>) throws
    /// Feeds what identifies the data (sizes, labels, and the pixels or the file list) to `add`: ranks compare it
    /// before training.
    func identify(_ add: (UnsafeRawBufferPointer) -> Void)
    /// A short description for logs ("2000 images, 10 classes, 56×56 from …").
    var summary: String { get }
}

extension ImageSource {
    /// Floats per image in the model's input form.
    public var floatsPerImage: Int { channels * height * width }
}

/// An in-memory gray set (IDX, CSV) under an ``ImageTransform``: bilinear resize, gray replicated on every channel,
/// normalized. Deterministic, no augmentation; loading allocates nothing (the transform's scratch is reused).
public final class TransformedImageSet: ImageSource {
    public let data: ImageDataset
    public let transform: ImageTransform
    let scratch: ImageTransform.Scratch

    public init(_ data: ImageDataset, transform: ImageTransform) {
        self.data = data
        self.transform = transform
        scratch = transform.scratch(for: data)
    }

    public var count: Int { data.count }
    public var numClasses: Int { data.numClasses }
    public var labels: [Int32] { data.labels }
    public var channels: Int { transform.channels }
    public var height: Int { transform.height }
    public var width: Int { transform.width }

    public func load(_ indices: [Int], epoch: Int?, into out: UnsafeMutablePointer<Float>) throws {
        transform.apply(data, indices: indices, into: out, scratch: scratch)
    }

    public func identify(_ add: (UnsafeRawBufferPointer) -> Void) {
        [data.count, data.height, data.width, data.numClasses, data.maxPixelValue].withUnsafeBytes(add)
        data.labels.withUnsafeBytes(add)
        data.pixels.withUnsafeBytes(add)
        (transform.mean + transform.std + [Float(transform.height), Float(transform.width)]).withUnsafeBytes(add)
    }

    public var summary: String {
        "\(data.count) gray \(data.height)×\(data.width) images, \(data.numClasses) classes, at \(height)×\(width)"
    }
}
