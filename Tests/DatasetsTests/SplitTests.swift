import XCTest
import Tensors
@testable import Datasets

final class SubsetAndSplitTests: XCTestCase {
    /// `labels.count` images of 2×3 whose every pixel is the image's own index (so a copied image is identifiable).
    private func indexed(_ labels: [Int32], numClasses: Int) throws -> ImageDataset {
        try ImageDataset(height: 2, width: 3, pixels: labels.indices.flatMap { [UInt8](repeating: UInt8($0), count: 6) },
                         labels: labels, numClasses: numClasses)
    }

    func testSubsetCopiesImagesAndLabelsInOrder() throws {
        let pixels: [UInt8] = (0..<30).map { UInt8($0 * 7 % 251) }
        let ds = try ImageDataset(height: 2, width: 3, pixels: pixels, labels: [4, 0, 2, 1, 3], numClasses: 5, maxPixelValue: 250)
        let s = try ds.subset([3, 0, 3])
        XCTAssertEqual(s.count, 3)
        XCTAssertEqual(s.labels, [1, 4, 1])
        XCTAssertEqual(s.pixels, Array(pixels[18..<24]) + Array(pixels[0..<6]) + Array(pixels[18..<24]))
        XCTAssertEqual([s.height, s.width, s.numClasses, s.maxPixelValue], [2, 3, 5, 250])
        let empty = try ds.subset([])
        XCTAssertEqual(empty.count, 0)
        XCTAssertEqual(empty.pixels, [])
        XCTAssertEqual(try ds.subset(Array(0..<5)), ds)
    }

    func testSubsetRejectsOutOfRangeIndices() throws {
        let ds = try indexed([0, 1, 0], numClasses: 2)
        XCTAssertThrowsError(try ds.subset([0, 2, 3, -1])) { error in
            XCTAssertEqual(error as? DatasetError, DatasetError(path: "ImageDataset.subset", .invalidArgument(
                "indices[2] is 3; expected every index in 0 ..< 3 (the dataset's count)")))
        }
        XCTAssertThrowsError(try ds.subset([-1])) { error in
            XCTAssertTrue("\(error)".contains("indices[0] is -1"), "\(error)")
        }
    }

    /// Class counts 7, 5, 9, the labels interleaved.
    private func threeClasses() throws -> ImageDataset {
        var labels = [Int32]()
        var remaining = [7, 5, 9]
        var c = 0
        while remaining.reduce(0, +) > 0 {
            if remaining[c] > 0 { labels.append(Int32(c)); remaining[c] -= 1 }
            c = (c + 2) % 3
        }
        return try indexed(labels, numClasses: 3)
    }

    func testStratifiedSplitCountsAndPartition() throws {
        let ds = try threeClasses()
        XCTAssertEqual(ds.classCounts(), [7, 5, 9])
        let (train, test) = try ds.stratifiedSplit(testPerClass: 2, seed: 11)
        XCTAssertEqual(test.classCounts(), [2, 2, 2])
        XCTAssertEqual(train.classCounts(), [5, 3, 7])
        // Pixels carry the original index: together the two sides are every image exactly once, in dataset order.
        let trainIdx = (0..<train.count).map { Int(train.image($0).first!) }
        let testIdx = (0..<test.count).map { Int(test.image($0).first!) }
        XCTAssertEqual(trainIdx, trainIdx.sorted())
        XCTAssertEqual(testIdx, testIdx.sorted())
        XCTAssertEqual(Set(trainIdx).intersection(testIdx), [])
        XCTAssertEqual((trainIdx + testIdx).sorted(), Array(0..<ds.count))
        for (k, i) in testIdx.enumerated() { XCTAssertEqual(test.labels[k], ds.labels[i]) }
        for (k, i) in trainIdx.enumerated() { XCTAssertEqual(train.labels[k], ds.labels[i]) }
        let (trainI, testI) = try ds.stratifiedSplitIndices(testPerClass: 2, seed: 11)
        XCTAssertEqual(trainI, trainIdx)
        XCTAssertEqual(testI, testIdx)
    }

    func testStratifiedSplitFollowsItsDefinition() throws {
        let ds = try threeClasses()
        var expected = [Int]()
        for c in 0..<3 {
            let members = ds.labels.indices.filter { ds.labels[$0] == Int32(c) }
            var rng = SeededRandom(seed: 5, stream: "stratified-split-\(c)")
            expected += rng.permutation(members.count).prefix(3).map { members[$0] }
        }
        XCTAssertEqual(try ds.stratifiedSplitIndices(testPerClass: 3, seed: 5).test, expected.sorted())
    }

    func testStratifiedSplitIsDeterministicPerSeed() throws {
        let ds = try threeClasses()
        let a = try ds.stratifiedSplit(testPerClass: 2, seed: 1)
        let b = try ds.stratifiedSplit(testPerClass: 2, seed: 1)
        XCTAssertEqual(a.train, b.train)
        XCTAssertEqual(a.test, b.test)
        let tests = try (1...4).map { try ds.stratifiedSplitIndices(testPerClass: 2, seed: $0).test }
        XCTAssertEqual(Set(tests).count, 4, "four seeds should give four different test sets: \(tests)")
    }

    func testStratifiedSplitErrors() throws {
        let ds = try threeClasses()
        XCTAssertThrowsError(try ds.stratifiedSplit(testPerClass: 0, seed: 0)) { error in
            XCTAssertEqual(error as? DatasetError, DatasetError(path: "ImageDataset.stratifiedSplit",
                                                               .invalidArgument("testPerClass must be >= 1, got 0")))
        }
        // Class 1 has 5 images: 5 test images would leave it no training image.
        XCTAssertThrowsError(try ds.stratifiedSplit(testPerClass: 5, seed: 0)) { error in
            XCTAssertEqual(error as? DatasetError, DatasetError(path: "ImageDataset.stratifiedSplit", .invalidArgument(
                "class 1 has 5 images; testPerClass 5 needs at least 6 per class (every class keeps one or more training images)")))
        }
        XCTAssertNoThrow(try ds.stratifiedSplit(testPerClass: 4, seed: 0))
        // A class with no image at all cannot be represented.
        let missing = try indexed([0, 1, 0, 1, 0, 1], numClasses: 3)
        XCTAssertThrowsError(try missing.stratifiedSplit(testPerClass: 1, seed: 0)) { error in
            XCTAssertTrue("\(error)".contains("class 2 has 0 images"), "\(error)")
        }
    }
}
