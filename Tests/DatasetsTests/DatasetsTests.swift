import CZlib
import Foundation
import XCTest
@testable import Datasets

class DatasetsTestCase: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "datasets-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = dir + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Writes `bytes` gzip-compressed with zlib's gzopen/gzwrite.
    func writeGzip(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = dir + "/" + name
        guard let f = gzopen(path, "wb") else { throw XCTSkip("gzopen failed for \(path)") }
        let n = bytes.withUnsafeBytes { gzwrite(f, $0.baseAddress, UInt32($0.count)) }
        XCTAssertEqual(Int(n), bytes.count)
        XCTAssertEqual(gzclose(f), Z_OK)
        return path
    }

    func be32(_ values: [UInt32]) -> [UInt8] {
        values.flatMap { v in [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
    }

    func idxImages(count: UInt32, rows: UInt32, cols: UInt32, _ pixels: [UInt8], magic: UInt32 = 0x803) -> [UInt8] {
        be32([magic, count, rows, cols]) + pixels
    }

    func idxLabels(_ labels: [UInt8], count: UInt32? = nil, magic: UInt32 = 0x801) -> [UInt8] {
        be32([magic, count ?? UInt32(labels.count)]) + labels
    }

    /// Asserts `body` throws a DatasetError equal to `expected` whose description starts with the path.
    func assertThrows(_ expected: DatasetError, file: StaticString = #filePath, line: UInt = #line,
                      _ body: () throws -> ImageDataset) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? DatasetError, expected, file: file, line: line)
            XCTAssertTrue("\(error)".hasPrefix(expected.path + ": "), "\(error)", file: file, line: line)
        }
    }

    func reasonOf(_ body: () throws -> ImageDataset) -> DatasetError? {
        do { _ = try body(); return nil } catch { return error as? DatasetError }
    }
}

final class IDXTests: DatasetsTestCase {
    // Three 2×3 images.
    let pixels: [UInt8] = [0, 1, 2, 3, 4, 5,
                           255, 128, 64, 32, 16, 8,
                           9, 8, 7, 6, 5, 4]
    let labels: [UInt8] = [3, 0, 9]

    func plainFiles() throws -> (String, String) {
        (try write(idxImages(count: 3, rows: 2, cols: 3, pixels), "img-idx3-ubyte"),
         try write(idxLabels(labels), "lbl-idx1-ubyte"))
    }

    func testPlainIDXExactValues() throws {
        let (i, l) = try plainFiles()
        let d = try ImageDataset.loadIDX(images: i, labels: l)
        XCTAssertEqual(d.count, 3)
        XCTAssertEqual(d.height, 2)
        XCTAssertEqual(d.width, 3)
        XCTAssertEqual(d.pixels, pixels)
        XCTAssertEqual(d.labels, [3, 0, 9])
        XCTAssertEqual(d.numClasses, 10)
        XCTAssertEqual(d.maxPixelValue, 255)
        XCTAssertEqual(Array(d.image(1)), [255, 128, 64, 32, 16, 8])
        XCTAssertEqual(d.normalizedImage(1), [1, Float(128) / 255, Float(64) / 255, Float(32) / 255, Float(16) / 255, Float(8) / 255])
        XCTAssertEqual(d.normalizedPixels().count, 18)
        XCTAssertEqual(d.normalizedPixels()[6], 1)
        XCTAssertEqual(d.classCounts(), [1, 0, 0, 1, 0, 0, 0, 0, 0, 1])
    }

    func testGzipIDXEqualsPlain() throws {
        let (i, l) = try plainFiles()
        let gi = try writeGzip(idxImages(count: 3, rows: 2, cols: 3, pixels), "img.gz")
        let gl = try writeGzip(idxLabels(labels), "lbl.gz")
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: gi)).prefix(2)), [0x1f, 0x8b])
        let gz = try ImageDataset.loadIDX(images: gi, labels: gl)
        XCTAssertEqual(gz, try ImageDataset.loadIDX(images: i, labels: l))
        XCTAssertEqual(gz.pixels, pixels)
        XCTAssertEqual(gz.labels, [3, 0, 9])
        // Mixed: compressed images, plain labels.
        XCTAssertEqual(try ImageDataset.loadIDX(images: gi, labels: l).labels, [3, 0, 9])
    }

    func testLimitReadsOnlyFirstItems() throws {
        let (i, l) = try plainFiles()
        let two = try ImageDataset.loadIDX(images: i, labels: l, limit: 2)
        XCTAssertEqual(two.count, 2)
        XCTAssertEqual(two.pixels, Array(pixels[0..<12]))
        XCTAssertEqual(two.labels, [3, 0])
        XCTAssertEqual(try ImageDataset.loadIDX(images: i, labels: l, limit: 0).count, 0)
        XCTAssertEqual(try ImageDataset.loadIDX(images: i, labels: l, limit: 99).count, 3)
        // With a limit, bytes beyond the items read are not examined: a file truncated in image 3 still loads 2.
        let cut = try write(idxImages(count: 3, rows: 2, cols: 3, Array(pixels[0..<15])), "cut")
        XCTAssertEqual(try ImageDataset.loadIDX(images: cut, labels: l, limit: 2).labels, [3, 0])
        assertThrows(DatasetError(path: i, .invalidArgument("limit must be >= 0, got -1"))) {
            try ImageDataset.loadIDX(images: i, labels: l, limit: -1)
        }
    }

    func testWrongMagic() throws {
        let (i, l) = try plainFiles()
        let swapped = DatasetError(path: l, .wrongMagic(expected: 0x803, found: 0x801))
        assertThrows(swapped) { try ImageDataset.loadIDX(images: l, labels: i) }
        XCTAssertEqual(swapped.description, l + ": wrong IDX magic number: expected 0x00000803 (IDX unsigned-byte images, 3 dimensions)"
                       + ", found 0x00000801 (IDX unsigned-byte labels, 1 dimension)")
        let text = try write(Array("hello, world, this is text".utf8), "text")
        assertThrows(DatasetError(path: text, .wrongMagic(expected: 0x803, found: 0x6865_6c6c))) {
            try ImageDataset.loadIDX(images: text, labels: l)
        }
        let badLabels = try write(idxLabels(labels, magic: 0x0000_0901), "badlabels")
        assertThrows(DatasetError(path: badLabels, .wrongMagic(expected: 0x801, found: 0x901))) {
            try ImageDataset.loadIDX(images: i, labels: badLabels)
        }
        XCTAssertEqual(DatasetError.magicName(0x901), "IDX with element type 0x9 and 1 dimension(s)")
    }

    func testTruncatedFiles() throws {
        let (i, l) = try plainFiles()
        let shortHeader = try write(be32([0x803, 3]) + [0, 0], "shorthdr")
        assertThrows(DatasetError(path: shortHeader, .truncated(what: "the 16-byte IDX header", expectedBytes: 16, foundBytes: 10))) {
            try ImageDataset.loadIDX(images: shortHeader, labels: l)
        }
        let cut = try write(idxImages(count: 3, rows: 2, cols: 3, Array(pixels[0..<15])), "cut")
        let e = DatasetError(path: cut, .truncated(what: "image 2 of 3 (2×3 bytes each)", expectedBytes: 34, foundBytes: 31))
        assertThrows(e) { try ImageDataset.loadIDX(images: cut, labels: l) }
        XCTAssertEqual(e.description, cut + ": truncated: image 2 of 3 (2×3 bytes each) needs the file to hold at least 34 bytes"
                       + ", but it ends after 31 bytes")
        let cutLabels = try write(idxLabels([3, 0], count: 3), "cutlabels")
        assertThrows(DatasetError(path: cutLabels, .truncated(what: "label 2 of 3", expectedBytes: 11, foundBytes: 10))) {
            try ImageDataset.loadIDX(images: i, labels: cutLabels)
        }
        // Same truncation inside an intact gzip stream.
        let gzCut = try writeGzip(idxImages(count: 3, rows: 2, cols: 3, Array(pixels[0..<15])), "cut.gz")
        assertThrows(DatasetError(path: gzCut, .truncated(what: "image 2 of 3 (2×3 bytes each)", expectedBytes: 34, foundBytes: 31))) {
            try ImageDataset.loadIDX(images: gzCut, labels: l)
        }
    }

    func testHugeDeclaredCountFailsWithoutHugeAllocation() throws {
        let big = try write(idxImages(count: 0xffff_ffff, rows: 1000, cols: 1000, [1, 2, 3]), "big")
        let bigLabels = try write(idxLabels([1], count: 0xffff_ffff), "biglabels")
        assertThrows(DatasetError(path: big, .truncated(what: "image 0 of 4294967295 (1000×1000 bytes each)", expectedBytes: 1_000_016, foundBytes: 19))) {
            try ImageDataset.loadIDX(images: big, labels: bigLabels)
        }
    }

    func testCorruptAndTruncatedGzipStreams() throws {
        let (_, l) = try plainFiles()
        let gz = try writeGzip(idxImages(count: 3, rows: 2, cols: 3, pixels), "img.gz")
        let full = [UInt8](try Data(contentsOf: URL(fileURLWithPath: gz)))
        let truncated = try write(Array(full.prefix(full.count - 10)), "trunc.gz")
        let t = reasonOf { try ImageDataset.loadIDX(images: truncated, labels: l) }
        XCTAssertEqual(t?.path, truncated)
        guard case .gzip(let reason)? = t?.kind else { return XCTFail("\(String(describing: t))") }
        XCTAssertEqual(reason, "unexpected end of file: the compressed stream is truncated after 33 decompressed bytes")

        var badCRC = full
        badCRC[full.count - 8] ^= 0xff  // first byte of the CRC-32 trailer
        let corrupt = try write(badCRC, "crc.gz")
        let c = reasonOf { try ImageDataset.loadIDX(images: corrupt, labels: l) }
        XCTAssertEqual(c?.kind, .gzip(reason: "incorrect data check"))
        XCTAssertEqual(c?.description, corrupt + ": corrupt gzip data: incorrect data check")
    }

    func testCountMismatchLabelRangeTrailingDataAndDimensions() throws {
        let (i, l) = try plainFiles()
        let four = try write(idxLabels([1, 2, 3, 4]), "four")
        assertThrows(DatasetError(path: i, .countMismatch(count: 3, otherPath: four, otherCount: 4))) {
            try ImageDataset.loadIDX(images: i, labels: four)
        }
        let outOfRange = try write(idxLabels([3, 10, 1]), "range")
        let e = DatasetError(path: outOfRange, .labelOutOfRange(index: 1, location: "byte offset 9", label: 10, numClasses: 10))
        assertThrows(e) { try ImageDataset.loadIDX(images: i, labels: outOfRange) }
        XCTAssertEqual(e.description, outOfRange + ": item 1 (byte offset 9): label 10 is out of range; expected 0 ..< 10")
        // The same labels are valid with 11 classes; and 3 classes reject label 3.
        XCTAssertEqual(try ImageDataset.loadIDX(images: i, labels: outOfRange, numClasses: 11).labels, [3, 10, 1])
        assertThrows(DatasetError(path: l, .labelOutOfRange(index: 0, location: "byte offset 8", label: 3, numClasses: 3))) {
            try ImageDataset.loadIDX(images: i, labels: l, numClasses: 3)
        }
        let trailing = try write(idxImages(count: 3, rows: 2, cols: 3, pixels + [0]), "trailing")
        assertThrows(DatasetError(path: trailing, .trailingData(expectedBytes: 34))) {
            try ImageDataset.loadIDX(images: trailing, labels: l)
        }
        let trailingLabels = try write(idxLabels(labels, count: 3) + [7], "trailinglabels")
        assertThrows(DatasetError(path: trailingLabels, .trailingData(expectedBytes: 11))) {
            try ImageDataset.loadIDX(images: i, labels: trailingLabels)
        }
        let zeroRows = try write(idxImages(count: 3, rows: 0, cols: 3, []), "zero")
        assertThrows(DatasetError(path: zeroRows, .invalidDimensions(count: 3, rows: 0, columns: 3))) {
            try ImageDataset.loadIDX(images: zeroRows, labels: l)
        }
        let overflow = try write(idxImages(count: 0xffff_ffff, rows: 0xffff_ffff, cols: 0xffff_ffff, []), "overflow")
        assertThrows(DatasetError(path: overflow, .invalidDimensions(count: 4294967295, rows: 4294967295, columns: 4294967295))) {
            try ImageDataset.loadIDX(images: overflow, labels: l)
        }
    }

    func testMissingFile() throws {
        let (i, _) = try plainFiles()
        let missing = dir + "/nope.gz"
        assertThrows(DatasetError(path: missing, .unreadable(reason: "No such file or directory"))) {
            try ImageDataset.loadIDX(images: i, labels: missing)
        }
        assertThrows(DatasetError(path: dir, .unreadable(reason: "is a directory; expected a file"))) {
            try ImageDataset.loadIDX(images: dir, labels: i)
        }
    }
}

final class CSVTests: DatasetsTestCase {
    let lastCSV = "0,1,2,3,7\n10,20,30,255,0\n"

    func testLabelLastExactValues() throws {
        let p = try write(Array(lastCSV.utf8), "a.csv")
        let d = try ImageDataset.loadCSV(path: p, side: 2, labelColumn: .last)
        XCTAssertEqual(d.count, 2)
        XCTAssertEqual(d.height, 2)
        XCTAssertEqual(d.width, 2)
        XCTAssertEqual(d.pixels, [0, 1, 2, 3, 10, 20, 30, 255])
        XCTAssertEqual(d.labels, [7, 0])
        XCTAssertEqual(d.maxPixelValue, 255)
        XCTAssertEqual(d.normalizedImage(1), [Float(10) / 255, Float(20) / 255, Float(30) / 255, 1])
    }

    func testLabelFirstGzipHeaderCRLFBlankLinesAndNoFinalNewline() throws {
        let text = "label,p0,p1,p2,p3\r\n5, 0,1 ,2,3\r\n\r\n   \n9,4,5,6,7"
        let p = try writeGzip(Array(text.utf8), "b.csv.gz")
        let d = try ImageDataset.loadCSV(path: p, side: 2, labelColumn: .first, hasHeader: true)
        XCTAssertEqual(d.pixels, [0, 1, 2, 3, 4, 5, 6, 7])
        XCTAssertEqual(d.labels, [5, 9])
        // Without hasHeader, line 1 is data and fails.
        assertThrows(DatasetError(path: p, .notAnInteger(line: 1, column: 1, text: "label"))) {
            try ImageDataset.loadCSV(path: p, side: 2, labelColumn: .first)
        }
    }

    func testDigitsStyleFloatNotationAndMaxValue16() throws {
        // scikit-learn's digits.csv.gz is written by numpy.savetxt: "%.18e" fields, label last, pixels 0...16.
        let row1 = (0..<64).map { i in i == 5 ? "1.600000000000000000e+01" : "0.000000000000000000e+00" } + ["3.000000000000000000e+00"]
        let row2 = (0..<64).map { String($0 % 17) } + ["9"]
        let p = try writeGzip(Array((row1.joined(separator: ",") + "\n" + row2.joined(separator: ",") + "\n").utf8), "digits.csv.gz")
        let d = try ImageDataset.loadCSV(path: p, side: 8, labelColumn: .last, maxValue: 16)
        XCTAssertEqual(d.count, 2)
        XCTAssertEqual(Array(d.image(0)), (0..<64).map { $0 == 5 ? 16 : 0 })
        XCTAssertEqual(Array(d.image(1)), (0..<64).map { UInt8($0 % 17) })
        XCTAssertEqual(d.labels, [3, 9])
        XCTAssertEqual(d.normalizedImage(0)[5], 1)
        XCTAssertEqual(d.normalizedImage(1)[8], 0.5)
        // 17 exceeds maxValue 16.
        let bad = try write(Array((["1", "17"] + Array(repeating: "0", count: 62) + ["0"]).joined(separator: ",").utf8), "bad.csv")
        let e = DatasetError(path: bad, .pixelOutOfRange(line: 1, column: 2, value: "17", maxValue: 16))
        assertThrows(e) { try ImageDataset.loadCSV(path: bad, side: 8, labelColumn: .last, maxValue: 16) }
        XCTAssertEqual(e.description, bad + ": line 1, field 2: pixel value 17 is out of range; expected 0 ... 16")
    }

    func testLimit() throws {
        let p = try write(Array((lastCSV + "1,1,1,1,x\n").utf8), "c.csv")
        let one = try ImageDataset.loadCSV(path: p, side: 2, labelColumn: .last, limit: 1)
        XCTAssertEqual(one.pixels, [0, 1, 2, 3])
        XCTAssertEqual(one.labels, [7])
        // Line 3 is never parsed with limit 2, but is with no limit.
        XCTAssertEqual(try ImageDataset.loadCSV(path: p, side: 2, labelColumn: .last, limit: 2).count, 2)
        assertThrows(DatasetError(path: p, .notAnInteger(line: 3, column: 5, text: "x"))) {
            try ImageDataset.loadCSV(path: p, side: 2, labelColumn: .last)
        }
        XCTAssertEqual(try ImageDataset.loadCSV(path: p, side: 2, labelColumn: .last, limit: 0).count, 0)
    }

    func testMalformedLines() throws {
        func check(_ text: String, _ kind: DatasetError.Kind, maxValue: Int = 255, line: UInt = #line) throws {
            let p = try write(Array(text.utf8), "m\(line).csv")
            assertThrows(DatasetError(path: p, kind), line: line) {
                try ImageDataset.loadCSV(path: p, side: 2, labelColumn: .last, maxValue: maxValue)
            }
        }
        try check("0,1,2,3,7\n0,1,2,3\n", .wrongFieldCount(line: 2, expected: 5, found: 4))
        try check("0,1,2,3,7,8\n", .wrongFieldCount(line: 1, expected: 5, found: 6))
        try check("\n\n0,1,2,3,7,8\n", .wrongFieldCount(line: 3, expected: 5, found: 6))
        try check("0,1,2.5,3,7\n", .notAnInteger(line: 1, column: 3, text: "2.5"))
        try check("0,1,,3,7\n", .notAnInteger(line: 1, column: 3, text: ""))
        try check("0,1,2,3,seven\n", .notAnInteger(line: 1, column: 5, text: "seven"))
        try check("0,1,2,3,1e\n", .notAnInteger(line: 1, column: 5, text: "1e"))
        try check("0,1,2,0x3,7\n", .notAnInteger(line: 1, column: 4, text: "0x3"))
        try check("0,1,2,nan,7\n", .notAnInteger(line: 1, column: 4, text: "nan"))
        try check("0,256,2,3,7\n", .pixelOutOfRange(line: 1, column: 2, value: "256", maxValue: 255))
        try check("0,-1,2,3,7\n", .pixelOutOfRange(line: 1, column: 2, value: "-1", maxValue: 255))
        try check("0,99999999999999999999,2,3,7\n", .pixelOutOfRange(line: 1, column: 2, value: "99999999999999999999", maxValue: 255))
        try check("0,1,2,3,7\n0,1,2,3,10\n", .labelOutOfRange(index: 1, location: "line 2", label: 10, numClasses: 10))
        try check("0,1,2,3,-1\n", .labelOutOfRange(index: 0, location: "line 1", label: -1, numClasses: 10))
        try check("", .empty)
        try check("\n  \n", .empty)
        try check("0,1,2,3,7\n", .invalidArgument("maxValue must be in 1 ... 255, got 300"), maxValue: 300)
        let p = try write(Array(lastCSV.utf8), "ok.csv")
        assertThrows(DatasetError(path: p, .invalidArgument("side must be in 1 ... 4096, got 0"))) {
            try ImageDataset.loadCSV(path: p, side: 0, labelColumn: .last)
        }
        let e = DatasetError(path: p, .wrongFieldCount(line: 1, expected: 10, found: 5))
        assertThrows(e) { try ImageDataset.loadCSV(path: p, side: 3, labelColumn: .first) }
        XCTAssertEqual(e.description, p + ": line 1: expected 10 comma-separated fields, found 5")
    }

    func testLinesSpanningReadChunks() throws {
        // 3000 lines of 785 fields (~2.9 MB) cross the 1 MiB read boundary several times.
        var text = ""
        for i in 0..<3000 {
            text += (0..<784).map { String(($0 + i) % 256) }.joined(separator: ",") + ",\(i % 10)\n"
        }
        let p = try writeGzip(Array(text.utf8), "mnist-like.csv.gz")
        let d = try ImageDataset.loadCSV(path: p, side: 28, labelColumn: .last)
        XCTAssertEqual(d.count, 3000)
        XCTAssertEqual(d.classCounts(), Array(repeating: 300, count: 10))
        for i in [0, 1, 1337, 2999] {
            XCTAssertEqual(Array(d.image(i)), (0..<784).map { UInt8(($0 + i) % 256) })
            XCTAssertEqual(d.labels[i], Int32(i % 10))
        }
    }

    func testParseIntegerDirectly() {
        func p(_ s: String) -> Int? { ImageDataset.parseInteger(Array(s.utf8)[...]) }
        XCTAssertEqual(p("42"), 42)
        XCTAssertEqual(p(" +7\t"), 7)
        XCTAssertEqual(p("-0"), 0)
        XCTAssertEqual(p("16.0"), 16)
        XCTAssertEqual(p("1.6e+01"), 16)
        XCTAssertEqual(p("1600E-2"), 16)
        XCTAssertEqual(p(".5e1"), 5)
        XCTAssertEqual(p("16."), 16)
        XCTAssertNil(p("1.25"))
        XCTAssertNil(p("."))
        XCTAssertNil(p("e5"))
        XCTAssertNil(p("inf"))
        XCTAssertNil(p("1 2"))
        XCTAssertNil(p("--1"))
        XCTAssertEqual(p("12345678901234567890"), 1_000_000_001)
        XCTAssertEqual(p("-1e300"), -1_000_000_001)
    }
}

final class ImageDatasetInitTests: DatasetsTestCase {
    func testInMemoryInitValidates() throws {
        let d = try ImageDataset(height: 1, width: 2, pixels: [1, 2, 3, 4], labels: [0, 1], numClasses: 2, maxPixelValue: 4)
        XCTAssertEqual(d.normalizedPixels(), [0.25, 0.5, 0.75, 1])
        XCTAssertEqual(d.classCounts(), [1, 1])
        let src = "<in-memory dataset>"
        XCTAssertThrowsError(try ImageDataset(height: 1, width: 2, pixels: [1, 2, 3], labels: [0, 1], numClasses: 2)) {
            XCTAssertEqual($0 as? DatasetError, DatasetError(path: src, .invalidArgument("2 labels of 1×2 images need 2 × 1 × 2 pixels, got 3")))
        }
        XCTAssertThrowsError(try ImageDataset(height: 1, width: 2, pixels: [1, 2, 3, 5], labels: [0, 1], numClasses: 2, maxPixelValue: 4)) {
            XCTAssertEqual($0 as? DatasetError, DatasetError(path: src, .invalidArgument("pixel 3 is 5; expected at most maxPixelValue 4")))
        }
        XCTAssertThrowsError(try ImageDataset(height: 1, width: 2, pixels: [1, 2, 3, 4], labels: [0, 2], numClasses: 2)) {
            XCTAssertEqual($0 as? DatasetError, DatasetError(path: src, .labelOutOfRange(index: 1, location: "label 1", label: 2, numClasses: 2)))
        }
    }
}

/// The real Fashion-MNIST files from Debian's dataset-fashion-mnist package.
final class FashionMNISTTests: DatasetsTestCase {
    let root = "/usr/share/datasets/fashion-mnist"

    func requireFiles() throws {
        guard FileManager.default.fileExists(atPath: root + "/t10k-images-idx3-ubyte.gz") else {
            throw XCTSkip("\(root) not present (apt-get install dataset-fashion-mnist)")
        }
    }

    func testTestSet() throws {
        try requireFiles()
        let d = try ImageDataset.loadIDX(images: root + "/t10k-images-idx3-ubyte.gz", labels: root + "/t10k-labels-idx1-ubyte.gz")
        XCTAssertEqual(d.count, 10000)
        XCTAssertEqual(d.height, 28)
        XCTAssertEqual(d.width, 28)
        XCTAssertEqual(d.pixels.count, 7_840_000)
        XCTAssertTrue(d.labels.allSatisfy { (0..<10).contains($0) })
        XCTAssertEqual(d.classCounts(), Array(repeating: 1000, count: 10))
        XCTAssertEqual(d.labels[0], 9)  // ankle boot
        XCTAssertEqual(Array(d.labels.prefix(10)), [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
        // Checked independently with Python's gzip module.
        XCTAssertEqual(d.image(0).reduce(0) { $0 + Int($1) }, 33456)
        XCTAssertEqual(d.pixels.reduce(0) { $0 + Int($1) }, 573_469_082)
    }

    func testTrainSetPrefix() throws {
        try requireFiles()
        let d = try ImageDataset.loadIDX(images: root + "/train-images-idx3-ubyte.gz", labels: root + "/train-labels-idx1-ubyte.gz", limit: 10)
        XCTAssertEqual(d.count, 10)
        XCTAssertEqual(d.labels, [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    }
}
