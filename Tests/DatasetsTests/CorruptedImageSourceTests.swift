import Datasets
import Tensors
import XCTest

final class CorruptedImageSourceTests: XCTestCase {
    func images(_ count: Int, side: Int = 12) throws -> ImageDataset {
        var rng = SeededRandom(seed: 11)
        var px: [UInt8] = []
        for i in 0..<count {   // a bright square on a dark background, so rotation and contrast change something
            for y in 0..<side { for x in 0..<side {
                let inside = abs(x - side / 2 + i % 3) < side / 4 && abs(y - side / 2) < side / 3
                px.append(UInt8(clamping: (inside ? 200 : 30) + Int(rng.next() % 20)))
            } }
        }
        return try ImageDataset(height: side, width: side, pixels: px, labels: (0..<count).map { Int32($0 % 2) }, numClasses: 2)
    }

    func load(_ s: ImageSource, _ indices: [Int]) throws -> [Float] {
        var out = [Float](repeating: 0, count: indices.count * s.floatsPerImage)
        try out.withUnsafeMutableBufferPointer { try s.load(indices, epoch: nil, into: $0.baseAddress!) }
        return out
    }

    /// At the stored size (no resize), corrupting the loaded tensor equals ImageCorruption.apply on the stored
    /// pixels followed by the transform, to within one 8-bit level (the un-normalised input differs by float rounding,
    /// which can move a value across a rounding boundary) — and almost everywhere exactly.
    func testMatchesImageCorruptionThenTransformAtNativeSize() throws {
        let d = try images(6)
        let t = ImageTransform(height: 12, width: 12)
        let c = try ImageCorruption(seed: 5)
        let wrapped = try CorruptedImageSource(TransformedImageSet(d, transform: t), corruption: c, mean: t.mean, std: t.std)
        let got = try load(wrapped, Array(0..<6))
        let want = try load(TransformedImageSet(c.apply(d), transform: t), Array(0..<6))
        var worst: Float = 0, off = 0
        for i in got.indices {
            let e = abs(got[i] - want[i])
            worst = max(worst, e)
            if e > 1e-5 { off += 1 }
        }
        XCTAssertLessThanOrEqual(worst, 1 / (255 * 0.224) + 1e-4)
        XCTAssertLessThan(off, got.count / 100)
    }

    /// Deterministic per (seed, index): the same image twice, in any batch and order, is identical; it differs from
    /// the clean image; another seed differs.
    func testDeterministicAndRankIndependent() throws {
        let d = try images(5)
        let t = ImageTransform(height: 24, width: 24)   // resized: the corruption acts at the model's resolution
        let clean = TransformedImageSet(d, transform: t)
        let s = try CorruptedImageSource(clean, corruption: ImageCorruption(seed: 1), mean: t.mean, std: t.std)
        let all = try load(s, [0, 1, 2, 3, 4])
        let again = try load(s, [3, 3, 0])   // other order, a repeat, another batch
        let n = s.floatsPerImage
        XCTAssertEqual(Array(again[0..<n]), Array(all[(3 * n)..<(4 * n)]))
        XCTAssertEqual(Array(again[n..<(2 * n)]), Array(all[(3 * n)..<(4 * n)]))
        XCTAssertEqual(Array(again[(2 * n)..<(3 * n)]), Array(all[0..<n]))
        let plain = try load(clean, [0, 1, 2, 3, 4])
        XCTAssertGreaterThan(zip(all, plain).map { abs($0 - $1) }.max() ?? 0, 0.5)
        let other = try load(try CorruptedImageSource(clean, corruption: ImageCorruption(seed: 2), mean: t.mean, std: t.std), [0])
        XCTAssertNotEqual(other, Array(all[0..<n]))
        // Gray in, gray out: the three channels carry the same [0, 1] image.
        let plane = 24 * 24
        for j in 0..<plane {
            let r = all[j] * t.std[0] + t.mean[0], g = all[plane + j] * t.std[1] + t.mean[1]
            XCTAssertEqual(r, g, accuracy: 1e-5)
        }
        XCTAssertThrowsError(try CorruptedImageSource(clean, corruption: ImageCorruption(seed: 1), mean: [0], std: [1]))
    }
}
