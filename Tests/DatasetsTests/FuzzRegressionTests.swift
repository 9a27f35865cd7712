import Foundation
import XCTest
@testable import Datasets

/// Inputs found while fuzzing the IDX and CSV loaders (launch/fuzz, targets `idx` and `csv`); each must fail with
/// a clean error naming the file, and without allocating for what the header only claims.
final class DatasetsFuzzRegressionTests: DatasetsTestCase {
    /// An images file that is only its 16-byte header, claiming 4,294,967,295 images of 1×1, with a labels file
    /// claiming as many. The loader used to reserve 64 MiB (and read a 4 MiB chunk) before finding the file short:
    /// an out-of-memory report under `-malloc_limit_mb=32`. An uncompressed file is now checked against its size
    /// first; the error is the one reading gave.
    static let billionsOfImages: [UInt8] = [0x00, 0x00, 0x08, 0x03, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01,
                                            0x00, 0x00, 0x00, 0x01]
    static let billionsOfLabels: [UInt8] = [0x00, 0x00, 0x08, 0x01, 0xff, 0xff, 0xff, 0xff]

    func testFuzzRegressionIDXHeaderClaimingBillionsOfImages() throws {
        let images = try write(Self.billionsOfImages, "images-idx3-ubyte")
        let labels = try write(Self.billionsOfLabels, "labels-idx1-ubyte")
        let expected = DatasetError(path: images, .truncated(what: "image 0 of 4294967295 (1×1 bytes each)",
                                                             expectedBytes: 17, foundBytes: 16))
        assertThrows(expected) { try ImageDataset.loadIDX(images: images, labels: labels) }
        assertThrows(expected) { try ImageDataset.loadIDX(images: images, labels: labels, limit: 1_000_000) }
        // The same header gzip-compressed: the stream's length is unknown until read; same error, same values.
        let gz = try writeGzip(Self.billionsOfImages, "images-idx3-ubyte.gz")
        assertThrows(DatasetError(path: gz, .truncated(what: "image 0 of 4294967295 (1×1 bytes each)",
                                                       expectedBytes: 17, foundBytes: 16))) {
            try ImageDataset.loadIDX(images: gz, labels: labels)
        }
    }

    /// A header whose count × rows × columns (65535³ ≈ 2.8e14) fits in an Int, over 5 pixels of data: rejected
    /// from the file size, naming the image the data ends in.
    func testFuzzRegressionIDXHugeImagesOverAFewBytes() throws {
        let images = try write(be32([0x803, 0xffff, 0xffff, 0xffff]) + [1, 2, 3, 4, 5], "huge")
        let labels = try write(idxLabels([], count: 0xffff), "huge-labels")
        assertThrows(DatasetError(path: images, .truncated(what: "image 0 of 65535 (65535×65535 bytes each)",
                                                           expectedBytes: 16 + 65535 * 65535, foundBytes: 21))) {
            try ImageDataset.loadIDX(images: images, labels: labels)
        }
    }

    /// Exact-size and one-short files around the new size check: the check must not reject what loads.
    func testFuzzRegressionIDXSizeCheckBoundary() throws {
        let pixels: [UInt8] = Array(0..<12)
        let labels = try write(idxLabels([1, 2]), "labels")
        let exact = try write(idxImages(count: 2, rows: 2, cols: 3, pixels), "exact")
        XCTAssertEqual(try ImageDataset.loadIDX(images: exact, labels: labels).pixels, pixels)
        let short = try write(idxImages(count: 2, rows: 2, cols: 3, Array(pixels.prefix(11))), "short")
        assertThrows(DatasetError(path: short, .truncated(what: "image 1 of 2 (2×3 bytes each)", expectedBytes: 28, foundBytes: 27))) {
            try ImageDataset.loadIDX(images: short, labels: labels)
        }
        // With a limit only the items read must be present.
        XCTAssertEqual(try ImageDataset.loadIDX(images: short, labels: labels, limit: 1).pixels, Array(pixels.prefix(6)))
    }
}
