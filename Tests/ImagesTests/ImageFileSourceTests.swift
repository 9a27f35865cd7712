import Foundation
import XCTest
@testable import Images

/// The file-backed image source: what it writes is the decoder + recipe (or the augmentation) for each image,
/// whatever the batch it comes in, the order, the cache, or the number of threads.
final class ImageFileSourceTests: XCTestCase {
    static let images = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images").path

    func list() throws -> ImageFileList {
        let files = ["jpeg_rgb_420_37x23.jpg", "png_rgb8_portrait_19x33.png", "jpeg_progressive_45x31.jpg",
                     "png_gray8_30x20.png", "jpeg_cmyk_33x21.jpg", "png_palette_27x15.png"]
        return try ImageFileList(root: Self.images, paths: files, labels: [0, 0, 0, 1, 1, 1], classNames: ["a", "b"],
                                 source: "fixtures")
    }

    func read(_ s: ImageFileSource, _ indices: [Int], epoch: Int?) throws -> [Float] {
        var out = [Float](repeating: .nan, count: indices.count * s.floatsPerImage)
        try out.withUnsafeMutableBufferPointer { try s.load(indices, epoch: epoch, into: $0.baseAddress!) }
        return out
    }

    /// Evaluation: image k of a batch is exactly recipe.apply(decode(file)) — an independent composition.
    func testEvaluationIsDecodeThenRecipe() throws {
        let recipe = try Recipe.dinov2(resize: 32, crop: 28)
        let s = try ImageFileSource(list: list(), recipe: recipe, cacheBytes: 0, threads: 3)
        let got = try read(s, [4, 0, 5], epoch: nil)
        let per = s.floatsPerImage
        for (k, i) in [4, 0, 5].enumerated() {
            var want = [Float](repeating: 0, count: per)
            want.withUnsafeMutableBufferPointer { recipe.apply(try! RGBImage.decode(path: Self.images + "/" + s.list.paths[i]), into: $0.baseAddress!) }
            XCTAssertEqual(Array(got[(k * per)..<((k + 1) * per)]), want, "image \(i)")
        }
    }

    /// Training: the augmentation is a function of (seed, epoch, image index) only — the same image in another
    /// batch, order, thread count or with the cache on gives the same floats; another epoch another crop.
    func testAugmentationDependsOnlyOnSeedEpochAndIndex() throws {
        let recipe = try Recipe.dinov2(resize: 32, crop: 28)
        let aug = try RandomResizedCrop(size: 28)
        let a = try ImageFileSource(list: list(), recipe: recipe, augmentation: aug, seed: 5, cacheBytes: 0, threads: 1)
        let b = try ImageFileSource(list: list(), recipe: recipe, augmentation: aug, seed: 5, cacheBytes: 1 << 20, threads: 4)
        let per = a.floatsPerImage
        let x = try read(a, [0, 1, 2, 3, 4, 5], epoch: 2)
        _ = try read(b, [5, 3], epoch: 2)                  // fills b's cache with decoded images
        let y = try read(b, [3, 5, 0, 1, 2, 4], epoch: 2)
        for (k, i) in [3, 5, 0, 1, 2, 4].enumerated() {
            XCTAssertEqual(Array(y[(k * per)..<((k + 1) * per)]), Array(x[(i * per)..<((i + 1) * per)]), "image \(i)")
        }
        XCTAssertNotEqual(try read(a, [0, 1, 2, 3, 4, 5], epoch: 3), x, "another epoch draws other crops")
        XCTAssertNotEqual(try read(a, [0], epoch: nil), Array(x[0..<per]), "evaluation is not augmented")
    }

    func testADecodeErrorNamesTheFile() throws {
        let l = try ImageFileList(root: Self.images, paths: ["png_gray8_30x20.png", "broken_truncated.png"], labels: [0, 1],
                                  classNames: ["a", "b"], source: "fixtures")
        let s = try ImageFileSource(list: l, recipe: .dinov2(resize: 32, crop: 28))
        XCTAssertThrowsError(try read(s, [0, 1], epoch: nil)) { XCTAssertTrue("\($0)".contains("broken_truncated.png"), "\($0)") }
        XCTAssertEqual(s.check(0..<2).map(\.index), [1])
    }
}
