import Datasets
import Dispatch
import Foundation
import Tensors

/// A folder (or manifest) of JPEG / PNG files as an ``ImageSource``: each image is decoded
/// (``RGBImage/decode(path:options:)``, PIL's `convert("RGB")`), then either
///
/// - the evaluation ``Recipe`` (Hugging Face's DINOv2 or CLIP processor: resize the shorter side, center crop,
///   rescale, normalize), or
/// - with `epoch` given and an `augmentation`, torchvision's `RandomResizedCrop` + horizontal flip drawn from
///   (seed, epoch, image index) only — the same stream on any number of ranks and after a resume.
///
/// The set is never held as float32: an optional in-memory cache keeps uint8 images (the evaluation crop, or the
/// decoded image when augmenting) up to `cacheBytes`, so later epochs skip decoding; past the budget, images are
/// decoded every time. A batch's images are decoded and transformed on `threads` threads.
public final class ImageFileSource: ImageSource {
    public let list: ImageFileList
    public let recipe: Recipe
    public let augmentation: RandomResizedCrop?
    public let seed: UInt64
    public let decodeOptions: ImageDecodeOptions
    public let cacheBytes: Int
    public let threads: Int

    let lock = NSLock()
    var cache: [RGBImage?]
    var cachedBytes = 0
    /// Images decoded (not served from the cache) so far, for the loader's statistics.
    public private(set) var decodedCount = 0

    /// `augmentation` nil: every read uses the evaluation recipe. Its output size must equal the recipe's crop.
    public init(list: ImageFileList, recipe: Recipe, augmentation: RandomResizedCrop? = nil, seed: UInt64 = 0,
                decodeOptions: ImageDecodeOptions = ImageDecodeOptions(), cacheBytes: Int = 1 << 30,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        if let a = augmentation, a.size != recipe.crop {
            throw PreprocessingError.invalidSize(setting: "training crop (must equal the evaluation crop \(recipe.crop))", value: a.size)
        }
        self.list = list; self.recipe = recipe; self.augmentation = augmentation; self.seed = seed
        self.decodeOptions = decodeOptions; self.cacheBytes = max(0, cacheBytes); self.threads = max(1, threads)
        cache = [RGBImage?](repeating: nil, count: list.count)
    }

    public var count: Int { list.count }
    public var numClasses: Int { list.numClasses }
    public var labels: [Int32] { list.labels }
    public var channels: Int { 3 }
    public var height: Int { recipe.crop }
    public var width: Int { recipe.crop }

    /// What is cached of an image: the 8-bit evaluation crop, or the decoded image when augmenting.
    func prepared(_ index: Int) throws -> RGBImage {
        lock.lock()
        let hit = cache[index]
        lock.unlock()
        if let hit { return hit }
        let decoded = try RGBImage.decode(path: list.path(at: index), options: decodeOptions)
        let image = augmentation == nil ? recipe.resizedCrop(decoded) : decoded
        lock.lock()
        decodedCount += 1
        if cache[index] == nil, cachedBytes + image.pixels.count <= cacheBytes {
            cache[index] = image
            cachedBytes += image.pixels.count
        }
        lock.unlock()
        return image
    }

    public func load(_ indices: [Int], epoch: Int?, into out: UnsafeMutablePointer<Float>) throws {
        let per = floatsPerImage
        var failures = [Error?](repeating: nil, count: indices.count)
        let n = min(threads, indices.count)
        failures.withUnsafeMutableBufferPointer { errors in
            DispatchQueue.concurrentPerform(iterations: n) { worker in
                for k in stride(from: worker, to: indices.count, by: n) {
                    let index = indices[k]
                    do {
                        let image = try prepared(index)
                        if let a = augmentation, let epoch {
                            _ = a.apply(image, seed: seed, epoch: epoch, index: index, into: out + k * per)
                        } else if augmentation == nil {
                            recipe.normalization.write(image, into: out + k * per)   // already the crop
                        } else {
                            recipe.apply(image, into: out + k * per)
                        }
                    } catch {
                        errors[k] = error
                    }
                }
            }
        }
        if let e = failures.lazy.compactMap({ $0 }).first { throw e }
    }

    /// Decodes every image of `indices` once (filling the cache) and returns those that fail, with their errors:
    /// the start-up check behind `--skip-bad-images`.
    public func check(_ indices: Range<Int>) -> [(index: Int, error: Error)] {
        var bad: [(Int, Error)] = []
        let badLock = NSLock()
        let all = Array(indices)
        let n = max(1, min(threads, all.count))
        DispatchQueue.concurrentPerform(iterations: n) { worker in
            for k in stride(from: worker, to: all.count, by: n) {
                do { _ = try prepared(all[k]) } catch {
                    badLock.lock(); bad.append((all[k], error)); badLock.unlock()
                }
            }
        }
        return bad.sorted { $0.0 < $1.0 }
    }

    public func identify(_ add: (UnsafeRawBufferPointer) -> Void) {
        [list.count, list.numClasses, recipe.resize, recipe.crop, augmentation?.size ?? 0].withUnsafeBytes(add)
        list.labels.withUnsafeBytes(add)
        for p in list.paths { Array(p.utf8).withUnsafeBytes(add) }
        Array("\(recipe)".utf8).withUnsafeBytes(add)
    }

    public var summary: String {
        "\(list.count) image files, \(list.numClasses) classes, \(recipe)"
            + (augmentation.map { ", RandomResizedCrop(\($0.size)) + flip when training" } ?? "")
    }
}
