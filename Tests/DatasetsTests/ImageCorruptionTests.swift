import XCTest
import Tensors
@testable import Datasets

final class ImageCorruptionTests: XCTestCase {
    /// `count` seeded random images of `height × width`, pixels in `0 ... maxValue`, labels `i % numClasses`.
    private func randomImages(count: Int, height: Int, width: Int, maxValue: Int = 255, numClasses: Int = 3,
                              seed: UInt64 = 42) throws -> ImageDataset {
        var rng = SeededRandom(seed: seed)
        let pixels = (0..<(count * height * width)).map { _ in UInt8(rng.next() % UInt64(maxValue + 1)) }
        return try ImageDataset(height: height, width: width, pixels: pixels,
                                labels: (0..<count).map { Int32($0 % numClasses) }, numClasses: numClasses,
                                maxPixelValue: maxValue)
    }

    private func constantImages(_ value: UInt8, count: Int, side: Int, maxValue: Int = 255) throws -> ImageDataset {
        try ImageDataset(height: side, width: side, pixels: [UInt8](repeating: value, count: count * side * side),
                         labels: [Int32](repeating: 0, count: count), numClasses: 1, maxPixelValue: maxValue)
    }

    /// Runs one image through `c` with the given angle / contrast factor (noise from image 0's draws).
    private func corrupt(_ c: ImageCorruption, _ ds: ImageDataset, image: Int = 0, degrees: Float? = nil,
                         factor: Float? = nil) throws -> [UInt8] {
        var p = c.parameters(forImage: image)
        if let degrees { p.rotationDegrees = degrees }
        if let factor { p.contrastFactor = factor }
        return try c.corruptImage(ds.image(image), height: ds.height, width: ds.width,
                                  maxPixelValue: ds.maxPixelValue, parameters: p)
    }

    // MARK: parameters

    func testParametersAreTheDocumentedDraws() throws {
        let c = try ImageCorruption(seed: 9)
        for i in [0, 4, 12345] {
            var rng = SeededRandom(seed: 9, stream: "corruption-\(i)")
            let angle = rng.uniform(-25, 25)
            let factor = rng.uniform(0.35, 0.65)
            XCTAssertEqual(c.parameters(forImage: i), ImageCorruption.Parameters(rotationDegrees: angle, contrastFactor: factor, noise: rng))
        }
        var angles = [Float](), factors = [Float]()
        for i in 0..<2000 {
            let p = c.parameters(forImage: i)
            angles.append(p.rotationDegrees); factors.append(p.contrastFactor)
        }
        XCTAssertTrue(angles.allSatisfy { $0 >= -25 && $0 < 25 })
        XCTAssertTrue(factors.allSatisfy { $0 >= 0.35 && $0 < 0.65 })
        // Spread over the whole range, both signs.
        XCTAssertLessThan(angles.min()!, -24); XCTAssertGreaterThan(angles.max()!, 24)
        XCTAssertLessThan(factors.min()!, 0.36); XCTAssertGreaterThan(factors.max()!, 0.64)
        // Switching effects off changes no draw; the seed changes them.
        XCTAssertEqual(try ImageCorruption(seed: 9, effects: [.noise]).parameters(forImage: 4), c.parameters(forImage: 4))
        XCTAssertNotEqual(try ImageCorruption(seed: 10).parameters(forImage: 4), c.parameters(forImage: 4))
    }

    // MARK: identity

    func testNoEffectsIsBitwiseIdentity() throws {
        for maxValue in [255, 16] {
            let ds = try randomImages(count: 6, height: 9, width: 7, maxValue: maxValue)
            XCTAssertEqual(try ImageCorruption(seed: 3, effects: []).apply(ds), ds)
        }
    }

    func testZeroSizedEffectsAreIdentity() throws {
        let ds = try randomImages(count: 5, height: 8, width: 8)
        // Rotation range 0, contrast factor exactly 1, noise 0: every effect on, nothing changes.
        let c = try ImageCorruption(seed: 3, maxRotationDegrees: 0, minContrast: 1, maxContrast: 1, noiseStd: 0)
        XCTAssertEqual(c.parameters(forImage: 2).contrastFactor, 1)
        XCTAssertEqual(c.apply(ds), ds)
    }

    // MARK: rotation

    /// numpy.rot90(k=1): out[y][x] = in[x][n − 1 − y].
    private func rot90(_ image: ArraySlice<UInt8>, _ n: Int) -> [UInt8] {
        let a = Array(image)
        return (0..<(n * n)).map { k in a[(k % n) * n + (n - 1 - k / n)] }
    }

    func testRotationBy90IsExactlyRot90() throws {
        let c = try ImageCorruption(seed: 0, effects: [.rotation])
        for n in [7, 28] {  // odd (centre on a pixel) and even (centre between pixels): both map grid to grid
            let ds = try randomImages(count: 3, height: n, width: n)
            for i in 0..<ds.count {
                let once = rot90(ds.image(i), n)
                XCTAssertEqual(try corrupt(c, ds, image: i, degrees: 90), once, "n = \(n), image \(i)")
                let twice = rot90(once[...], n)
                XCTAssertEqual(try corrupt(c, ds, image: i, degrees: 180), twice, "n = \(n), image \(i)")
                XCTAssertEqual(try corrupt(c, ds, image: i, degrees: -90), rot90(twice[...], n), "n = \(n), image \(i)")
                XCTAssertEqual(try corrupt(c, ds, image: i, degrees: 360), Array(ds.image(i)), "n = \(n), image \(i)")
            }
        }
    }

    func testRotationIsCounterClockwiseAsDisplayed() throws {
        // 5×5, one bright pixel right of the centre (row 2, column 4): +90° moves it to the top (row 0, column 2).
        var pixels = [UInt8](repeating: 0, count: 25)
        pixels[2 * 5 + 4] = 200
        let ds = try ImageDataset(height: 5, width: 5, pixels: pixels, labels: [0], numClasses: 1)
        var expected = [UInt8](repeating: 0, count: 25)
        expected[0 * 5 + 2] = 200
        XCTAssertEqual(try corrupt(try ImageCorruption(seed: 0, effects: [.rotation]), ds, degrees: 90), expected)
    }

    /// Independent reference: scipy 1.17.1 `ndimage.affine_transform(img, M, offset=ctr − M·ctr, order=1,
    /// mode="grid-constant", cval=0, prefilter=False)` with M = [[cos θ, sin θ], [−sin θ, cos θ]] (row, column),
    /// ctr = ((h−1)/2, (w−1)/2), on the 5×7 image `((r·7 + c·13) mod 17) / 16`; printed to 6 decimals.
    func testRotationMatchesScipyAtNonGridAngles() throws {
        let h = 5, w = 7
        let image = (0..<(h * w)).map { Double(((($0 / w) * 7 + ($0 % w) * 13) % 17)) / 16 }
        let expected: [Double: [Double]] = [
            30: [0.000000, 0.132772, 0.214263, 0.179728, 0.395493, 0.184215, 0.135037, 0.464585, 0.646095, 0.681370,
                 0.612440, 0.685858, 0.578785, 0.644753, 0.331791, 0.405209, 0.654006, 0.125000, 0.587320, 0.129487,
                 0.449459, 0.539022, 0.624399, 0.484294, 0.628886, 0.631130, 0.633373, 0.301443, 0.293392, 0.350481,
                 0.177345, 0.354968, 0.684355, 0.218911, 0.000000],
            -17.5: [0.233879, 0.340525, 0.641377, 0.503351, 0.177712, 0.152819, 0.154276, 0.714455, 0.522901, 0.670213,
                    0.796250, 0.475437, 0.463312, 0.644785, 0.276464, 0.285126, 0.494988, 0.125000, 0.783124, 0.447524,
                    0.077536, 0.514539, 0.330441, 0.660538, 0.481862, 0.465762, 0.493186, 0.385609, 0.095688, 0.129668,
                    0.565192, 0.809149, 0.439161, 0.444371, 0.468472],
        ]
        for (degrees, want) in expected {
            let got = ImageCorruption.rotated(image, height: h, width: w, degrees: degrees)
            XCTAssertEqual(got.count, want.count)
            for k in 0..<want.count { XCTAssertEqual(got[k], want[k], accuracy: 1e-6, "θ = \(degrees)°, pixel \(k)") }
        }
    }

    // MARK: contrast

    func testContrastFactorOneIsIdentityAndZeroIsTheRoundedMean() throws {
        let ds = try randomImages(count: 4, height: 9, width: 9)
        let c = try ImageCorruption(seed: 0, effects: [.contrast])
        for i in 0..<ds.count {
            XCTAssertEqual(try corrupt(c, ds, image: i, factor: 1), Array(ds.image(i)))
            let n = ds.pixelsPerImage
            let sum = ds.image(i).reduce(0) { $0 + Int($1) }
            XCTAssertNotEqual((2 * sum) % (2 * n), n, "test image \(i) must not have a mean ending in .5")
            let roundedMean = UInt8((2 * sum + n) / (2 * n))
            XCTAssertEqual(try corrupt(c, ds, image: i, factor: 0), [UInt8](repeating: roundedMean, count: n))
        }
        // Through the settings too: minContrast = maxContrast = 0.
        let flat = try ImageCorruption(seed: 0, effects: [.contrast], minContrast: 0, maxContrast: 0).apply(ds)
        for i in 0..<ds.count { XCTAssertEqual(Set(flat.image(i)).count, 1) }
    }

    func testContrastExactValuesAndClamping() throws {
        // maxPixelValue 10, pixels 0, 2, 5, 9, 4: mean 4 (0.4). Factor 2: −0.4, 0, 0.6, 1.4, 0.4 → 0, 0, 6, 10, 4.
        // Factor 3: −0.8, −0.2, 0.7, 1.9, 0.4 → 0, 0, 7, 10, 4.
        let ds = try ImageDataset(height: 1, width: 5, pixels: [0, 2, 5, 9, 4], labels: [0], numClasses: 1, maxPixelValue: 10)
        let c = try ImageCorruption(seed: 0, effects: [.contrast])
        XCTAssertEqual(try corrupt(c, ds, factor: 2), [0, 0, 6, 10, 4])
        XCTAssertEqual(try corrupt(c, ds, factor: 3), [0, 0, 7, 10, 4])
    }

    // MARK: noise

    func testNoiseHasTheRequestedStandardDeviation() throws {
        let grey: UInt8 = 128
        let ds = try constantImages(grey, count: 4, side: 64)
        for sigma: Float in [0.08, 0.02] {
            let out = try ImageCorruption(seed: 1, effects: [.noise], noiseStd: sigma).apply(ds)
            let d = out.pixels.map { (Double($0) - Double(grey)) / 255 }
            let mean = d.reduce(0, +) / Double(d.count)
            let std = (d.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(d.count - 1)).squareRoot()
            XCTAssertEqual(std, Double(sigma), accuracy: 0.05 * Double(sigma), "σ = \(sigma)")
            XCTAssertEqual(mean, 0, accuracy: 0.05 * Double(sigma), "σ = \(sigma)")
            // Every image gets its own noise.
            XCTAssertNotEqual(out.image(0), out.image(1))
        }
        XCTAssertEqual(try ImageCorruption(seed: 1, effects: [.noise], noiseStd: 0).apply(ds), ds)
    }

    func testNoiseIsClampedToTheValidRange() throws {
        for maxValue in [255, 16] {
            let ds = try constantImages(UInt8(maxValue / 2), count: 2, side: 32, maxValue: maxValue)
            let out = try ImageCorruption(seed: 2, effects: [.noise], noiseStd: 1).apply(ds)
            XCTAssertTrue(out.pixels.allSatisfy { Int($0) <= maxValue }, "maxPixelValue \(maxValue)")
            // σ = 1 around 0.5: P(x < 0) = P(x > 1) ≈ 0.31, so both bounds are hit often.
            let zeros = out.pixels.filter { $0 == 0 }.count, tops = out.pixels.filter { Int($0) == maxValue }.count
            XCTAssertGreaterThan(zeros, out.pixels.count / 5, "maxPixelValue \(maxValue)")
            XCTAssertGreaterThan(tops, out.pixels.count / 5, "maxPixelValue \(maxValue)")
            XCTAssertEqual(out.maxPixelValue, maxValue)
        }
    }

    // MARK: determinism

    func testResultDoesNotDependOnProcessingOrder() throws {
        let ds = try randomImages(count: 5, height: 9, width: 9)
        let c = try ImageCorruption(seed: 7)
        let all = c.apply(ds)
        XCTAssertEqual(all.labels, ds.labels)
        XCTAssertEqual([all.count, all.height, all.width, all.numClasses, all.maxPixelValue], [5, 9, 9, 3, 255])
        for i in [3, 1, 2] {
            XCTAssertEqual(try c.apply(ds, indices: [i]), try all.subset([i]), "image \(i)")
        }
        XCTAssertEqual(try c.apply(ds, indices: [3, 1, 2]), try all.subset([3, 1, 2]))
        XCTAssertEqual(c.apply(ds), all)
        for i in 0..<ds.count { XCTAssertNotEqual(all.image(i), ds.image(i), "the default corruption changes image \(i)") }
        XCTAssertNotEqual(try ImageCorruption(seed: 8).apply(ds), all)
    }

    // MARK: errors

    func testInvalidSettingsAndInputsAreReported() throws {
        func check(_ message: String, _ body: () throws -> Any) {
            XCTAssertThrowsError(try body()) { error in
                XCTAssertEqual(error as? DatasetError, DatasetError(path: "ImageCorruption", .invalidArgument(message)))
            }
        }
        check("maxRotationDegrees must be in 0 ... 180, got -1.0") { try ImageCorruption(seed: 0, maxRotationDegrees: -1) }
        check("maxRotationDegrees must be in 0 ... 180, got nan") { try ImageCorruption(seed: 0, maxRotationDegrees: .nan) }
        check("expected 0 <= minContrast <= maxContrast (finite), got minContrast 0.7, maxContrast 0.6") {
            try ImageCorruption(seed: 0, minContrast: 0.7, maxContrast: 0.6)
        }
        check("expected 0 <= minContrast <= maxContrast (finite), got minContrast -0.1, maxContrast 0.6") {
            try ImageCorruption(seed: 0, minContrast: -0.1, maxContrast: 0.6)
        }
        check("noiseStd must be finite and >= 0, got inf") { try ImageCorruption(seed: 0, noiseStd: .infinity) }

        let c = try ImageCorruption(seed: 0)
        let ds = try randomImages(count: 2, height: 3, width: 3)
        XCTAssertThrowsError(try c.apply(ds, indices: [1, 2])) { error in
            XCTAssertEqual(error as? DatasetError, DatasetError(path: "ImageCorruption.apply", .invalidArgument(
                "indices[1] is 2; expected every index in 0 ..< 2 (the dataset's count)")))
        }
        XCTAssertThrowsError(try c.corruptImage(ds.image(0), height: 3, width: 4, maxPixelValue: 255,
                                                parameters: c.parameters(forImage: 0))) { error in
            XCTAssertEqual(error as? DatasetError, DatasetError(path: "ImageCorruption.corruptImage", .invalidArgument(
                "image has 9 pixels; expected height × width = 3 × 4 with both >= 1")))
        }
        XCTAssertThrowsError(try c.corruptImage(ds.image(0), height: 3, width: 3, maxPixelValue: 0,
                                                parameters: c.parameters(forImage: 0))) { error in
            XCTAssertEqual(error as? DatasetError, DatasetError(path: "ImageCorruption.corruptImage", .invalidArgument(
                "maxPixelValue must be in 1 ... 255, got 0")))
        }
    }
}
