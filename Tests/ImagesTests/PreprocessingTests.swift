import Foundation
import Tensors
import XCTest
@testable import Images

/// Size rules, validation and the training augmentation's sampling.
final class PreprocessingTests: XCTestCase {
    /// transformers' get_resize_output_image_size(default_to_square=False): short side → size,
    /// long side → int(size · long / short) (values from Python: int(256 * 500 / 375) == 341).
    func testResizedSizeRule() {
        XCTAssertTrue(Recipe.resizedSize(width: 500, height: 375, shortestEdge: 256) == (341, 256))
        XCTAssertTrue(Recipe.resizedSize(width: 375, height: 500, shortestEdge: 256) == (256, 341))
        XCTAssertTrue(Recipe.resizedSize(width: 300, height: 300, shortestEdge: 256) == (256, 256))
        XCTAssertTrue(Recipe.resizedSize(width: 7, height: 900, shortestEdge: 256) == (256, 32914))
        XCTAssertTrue(Recipe.resizedSize(width: 640, height: 427, shortestEdge: 224) == (335, 224))
    }

    /// numpy center_crop: top = (H − crop) // 2 (floor), so ⌈d/2⌉ rows of padding before when H < crop.
    func testCropOrigin() {
        XCTAssertTrue(Recipe.cropOrigin(resizedWidth: 341, resizedHeight: 256, crop: 224) == (58, 16))
        XCTAssertTrue(Recipe.cropOrigin(resizedWidth: 49, resizedHeight: 33, crop: 40) == (4, -4))
        XCTAssertTrue(Recipe.cropOrigin(resizedWidth: 40, resizedHeight: 39, crop: 40) == (0, -1))
    }

    func testInvalidSettingsThrowAndNameTheSetting() {
        XCTAssertThrowsError(try Recipe.dinov2(resize: 0, crop: 224)) { e in
            XCTAssertTrue("\(e)".contains("resize size"), "\(e)")
        }
        XCTAssertThrowsError(try Recipe.clip(size: -3)) { e in XCTAssertTrue("\(e)".contains("size"), "\(e)") }
        XCTAssertThrowsError(try Recipe.dinov2(resize: 256, crop: 100_000))
        XCTAssertThrowsError(try RandomResizedCrop(size: 224, scale: 0...1))
        XCTAssertThrowsError(try RandomResizedCrop(size: 224, flipProbability: 1.5))
        XCTAssertThrowsError(try Normalization(mean: [0, 0], std: [1, 1, 1]))
        XCTAssertThrowsError(try Normalization(mean: [0, 0, 0], std: [1, 0, 1]))
    }

    /// The zero padding is applied to levels before normalization: a padded pixel is (0 − mean) / std.
    func testPaddingIsNormalizedZero() throws {
        let img = RGBImage(width: 4, height: 2, pixels: [UInt8](repeating: 200, count: 24))
        // Resized 4×2 (the identity); crop 5 at origin ((4 − 5) // 2, (2 − 5) // 2) = (−1, −2): padding is column 0
        // (⌈1/2⌉ before, none after) and rows 0, 1 and 4 (⌈3/2⌉ before, ⌊3/2⌋ after).
        let r = try Recipe.dinov2(resize: 2, crop: 5)
        var out = [Float](repeating: .nan, count: r.floatsPerImage)
        out.withUnsafeMutableBufferPointer { r.apply(img, into: $0.baseAddress!) }
        let zero0 = (0 - Float(0.485)) / Float(0.229)
        let level200 = (Float(Double(200) * (1.0 / 255.0)) - Float(0.485)) / Float(0.229)
        for y in 0..<5 {
            for x in 0..<5 {
                let inside = x >= 1 && (y == 2 || y == 3)
                XCTAssertEqual(out[y * 5 + x], inside ? level200 : zero0, "(\(x), \(y))")
            }
        }
        XCTAssertFalse(out.contains { $0.isNaN })
    }

    func testDrawIsDeterministicAndIndependentOfCallOrder() throws {
        let t = try RandomResizedCrop(size: 32)
        let img = RGBImage(width: 67, height: 45, pixels: (0..<(67 * 45 * 3)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let indices = Array(0..<200)
        let forward = indices.map { t.draw(width: 67, height: 45, seed: 7, epoch: 3, index: $0) }
        var order = SeededRandom(seed: 1)
        let shuffled = order.permutation(indices.count)
        var backward = [RandomResizedCrop.Draw?](repeating: nil, count: indices.count)
        for i in shuffled { backward[i] = t.draw(width: 67, height: 45, seed: 7, epoch: 3, index: i) }
        XCTAssertEqual(forward, backward.compactMap { $0 })
        // Different epoch, seed or index → a different stream (crops differ for most samples).
        let otherEpoch = indices.map { t.draw(width: 67, height: 45, seed: 7, epoch: 4, index: $0) }
        let otherSeed = indices.map { t.draw(width: 67, height: 45, seed: 8, epoch: 3, index: $0) }
        XCTAssertGreaterThan(zip(forward, otherEpoch).filter { $0 != $1 }.count, 180)
        XCTAssertGreaterThan(zip(forward, otherSeed).filter { $0 != $1 }.count, 180)
        XCTAssertGreaterThan(Set(forward.map(\.crop)).count, 180)
        // The floats follow the draw: apply twice → identical; equal to normalize(resize(crop)) flipped as drawn.
        var a = [Float](repeating: 0, count: t.floatsPerImage), b = a, c = a
        let da = a.withUnsafeMutableBufferPointer { t.apply(img, seed: 7, epoch: 3, index: 5, into: $0.baseAddress!) }
        b.withUnsafeMutableBufferPointer { _ = t.apply(img, seed: 7, epoch: 3, index: 5, into: $0.baseAddress!) }
        XCTAssertEqual(a, b)
        XCTAssertEqual(da, forward[5])
        let (aug, _) = t.augmented(img, seed: 7, epoch: 3, index: 5)
        c.withUnsafeMutableBufferPointer { t.normalization.write(aug, into: $0.baseAddress!) }
        XCTAssertEqual(a, c)
    }

    /// Statistics of the sampled crops on a square 1000×1000 image. An attempt (s ~ U(0.08, 1), log r ~
    /// U(log ¾, log 4⁄3)) is accepted iff s·max(r, 1/r) ≤ 1 (up to rounding), so the accepted scale's mean is
    /// E[s | accept], integrated numerically below; the fallback (10 rejections) is rare here.
    func testCropStatistics() throws {
        let t = try RandomResizedCrop(size: 224)
        let n = 20_000, side = 1000
        var sumS = 0.0, sumLogR = 0.0, flips = 0, minS = 1.0, maxS = 0.0, minR = 10.0, maxR = 0.0
        for i in 0..<n {
            let d = t.draw(width: side, height: side, seed: 42, epoch: 0, index: i)
            let r = d.crop
            XCTAssertTrue(r.x >= 0 && r.y >= 0 && r.x + r.width <= side && r.y + r.height <= side, "\(r)")
            let s = Double(r.area) / Double(side * side), ratio = Double(r.width) / Double(r.height)
            sumS += s; sumLogR += log(ratio); if d.flipped { flips += 1 }
            minS = min(minS, s); maxS = max(maxS, s); minR = min(minR, ratio); maxR = max(maxR, ratio)
        }
        // E[s | s·m ≤ 1], m = max(r, 1/r), log r uniform: numeric integration on a fine grid.
        let lo = log(3.0 / 4.0), hi = log(4.0 / 3.0)
        var num = 0.0, den = 0.0
        let k = 4000
        for a in 0..<k {
            let m = exp(abs(lo + (hi - lo) * (Double(a) + 0.5) / Double(k)))
            let top = min(1.0, 1.0 / m)       // s ranges over [0.08, top]
            num += (top * top - 0.08 * 0.08) / 2; den += top - 0.08
        }
        let expected = num / den
        let meanS = sumS / Double(n)
        print("crop statistics (n = \(n), 1000×1000): mean area fraction \(meanS) (expected \(expected)), "
              + "range [\(minS), \(maxS)], ratio range [\(minR), \(maxR)], mean log ratio \(sumLogR / Double(n)), "
              + "flips \(flips)")
        // σ of s ≈ 0.26 → standard error ≈ 0.0019; allow 4σ.
        XCTAssertEqual(meanS, expected, accuracy: 0.008)
        XCTAssertGreaterThanOrEqual(minS, 0.079); XCTAssertLessThanOrEqual(maxS, 1)
        XCTAssertLessThan(minS, 0.085); XCTAssertGreaterThan(maxS, 0.95)
        // w and h are rounded: on crops of ≥ 0.08 · 10⁶ px (sides ≥ 244) the ratio moves by ≤ 0.5/244 + 0.5/244.
        XCTAssertGreaterThanOrEqual(minR, 0.75 * (1 - 0.0041)); XCTAssertLessThanOrEqual(maxR, 4.0 / 3.0 * (1 + 0.0041))
        XCTAssertEqual(sumLogR / Double(n), 0, accuracy: 0.005)   // symmetric on a square image
        XCTAssertEqual(Double(flips) / Double(n), 0.5, accuracy: 4 * 0.5 / Double(n).squareRoot())
    }

    /// A 400×13 image: every attempt needs s ≤ 13²·r / 5200 < 0.08, so all 10 fail and the fallback applies:
    /// h = 13, w = round(13 · 4/3) = 17, at ((13 − 13) // 2, (400 − 17) // 2) = (0, 191).
    func testFallbackCenterCrop() throws {
        let t = try RandomResizedCrop(size: 16)
        for i in 0..<50 {
            XCTAssertEqual(t.draw(width: 400, height: 13, seed: 1, epoch: 0, index: i).crop,
                           PixelRect(x: 191, y: 0, width: 17, height: 13))
            XCTAssertEqual(t.draw(width: 13, height: 400, seed: 1, epoch: 0, index: i).crop,
                           PixelRect(x: 0, y: 191, width: 13, height: 17))
        }
    }

    func testFlipMirrorsColumns() {
        let img = RGBImage(width: 3, height: 1, pixels: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        XCTAssertEqual(img.flippedHorizontally().pixels, [7, 8, 9, 4, 5, 6, 1, 2, 3])
        var out = [Float](repeating: 0, count: 9)
        out.withUnsafeMutableBufferPointer { Normalization.imageNet.write(img, flipped: true, into: $0.baseAddress!) }
        let t = Normalization.imageNet.table
        XCTAssertEqual(out, [t[7], t[4], t[1], t[256 + 8], t[256 + 5], t[256 + 2], t[512 + 9], t[512 + 6], t[512 + 3]])
    }
}
