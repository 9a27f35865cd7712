import Datasets
import Foundation
import SafeTensors
import XCTest

/// The input pipeline against the committed reference fixtures, whose `pixel_values` were made from the same
/// real Fashion-MNIST test images by an independent numpy implementation in float64 (tools/make_reference.py);
/// float32 source coordinates account for the last few 1e-6 (a wrong convention is off by ≥ 1e-2).
final class ImageTransformTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let fashion = "/usr/share/datasets/fashion-mnist"

    func check(fixture: String, indices: [Int], height: Int, width: Int) throws {
        let images = "\(Self.fashion)/t10k-images-idx3-ubyte.gz", labels = "\(Self.fashion)/t10k-labels-idx1-ubyte.gz"
        guard FileManager.default.fileExists(atPath: images) else {
            XCTFail("\(images) is missing: launch/setup installs Debian's dataset-fashion-mnist")
            return
        }
        let data = try ImageDataset.loadIDX(images: images, labels: labels, limit: 16)
        let f = try SafeTensorsFile(path: Self.root.appendingPathComponent("Tests/Fixtures/\(fixture).safetensors").path)
        let want = try f.floats("pixel_values", expectShape: [indices.count, 3, height, width])
        let got = ImageTransform(height: height, width: width).apply(data, indices: indices)
        XCTAssertEqual(got.count, want.count)
        let worst = zip(got, want).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-5, "\(fixture): max abs difference \(worst)")
    }

    func testMatchesReference224() throws { try check(fixture: "dinov2_ref_224", indices: [0, 1], height: 224, width: 224) }
    func testMatchesReference56() throws { try check(fixture: "dinov2_ref_56", indices: [0, 1, 2, 3], height: 56, width: 56) }
    func testMatchesReferenceNonSquare() throws {
        try check(fixture: "dinov2_ref_70x42", indices: [4, 5], height: 70, width: 42)
    }

    /// Same-size "resize" is the identity, and normalization is exact: (p/255 − mean)/std per channel.
    func testIdentityResizeAndNormalization() throws {
        let d = try ImageDataset(height: 2, width: 3, pixels: [0, 51, 102, 153, 204, 255], labels: [1], numClasses: 2)
        let out = ImageTransform(height: 2, width: 3).apply(d, indices: [0])
        for c in 0..<3 {
            for k in 0..<6 {
                let p = Float(k * 51) / 255
                XCTAssertEqual(out[c * 6 + k], (p - ImageTransform.imageNetMean[c]) / ImageTransform.imageNetStd[c], accuracy: 1e-6)
            }
        }
    }
}
