import Foundation
import XCTest
@testable import SafeTensors

/// Shared helpers: a fresh temporary directory per test, and raw-byte file builders.
class SafeTensorsTestCase: XCTestCase {
    var dir: String = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "safetensors-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// 8-byte little-endian length (default: the header's own length) + header + data.
    func image(_ header: String, _ data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
        image(headerBytes: Array(header.utf8), data, declaredLength: declaredLength)
    }

    func image(headerBytes: [UInt8], _ data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
        var out = [UInt8]()
        withUnsafeBytes(of: (declaredLength ?? UInt64(headerBytes.count)).littleEndian) { out.append(contentsOf: $0) }
        return out + headerBytes + data
    }

    func writeFile(_ bytes: [UInt8], name: String = "t.safetensors") throws -> String {
        let path = dir + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Asserts that opening `bytes` (written to a file) fails with exactly `kind`, and that the description names the file.
    func assertRejects(_ bytes: [UInt8], _ kind: SafeTensorsError.Kind, file: StaticString = #filePath, line: UInt = #line) throws {
        let path = try writeFile(bytes)
        XCTAssertThrowsError(try SafeTensorsFile(path: path), file: file, line: line) { error in
            guard let e = error as? SafeTensorsError else {
                return XCTFail("unexpected error type \(error)", file: file, line: line)
            }
            XCTAssertEqual(e.kind, kind, file: file, line: line)
            XCTAssertEqual(e.path, path, file: file, line: line)
            XCTAssertTrue(e.description.hasPrefix(path + ": "), e.description, file: file, line: line)
        }
    }

    func bytes(_ hex: String) -> [UInt8] {
        var out = [UInt8]()
        var it = hex.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16) ?? 0) }
        return out
    }

    func le<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    }
}

final class SafeTensorsRoundTripTests: SafeTensorsTestCase {
    /// Exactly what Python's `safetensors.numpy.save` (0.8.0) writes for
    /// {"w": float32 [[1,-2.5],[0.5,3]], "ids": int64 [7,-1,0]} with metadata {"format": "pt"}.
    let pythonReference = """
        98000000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a227074227d2c22696473223a7b\
        226474797065223a22493634222c227368617065223a5b335d2c22646174615f6f666673657473223a5b302c32345d\
        7d2c2277223a7b226474797065223a22463332222c227368617065223a5b322c325d2c22646174615f6f6666736574\
        73223a5b32342c34305d7d7d202020202020200700000000000000ffffffffffffffff000000000000000000008\
        03f000020c00000003f00004040
        """

    func testKnownGoodBytesAreReadExactly() throws {
        XCTAssertEqual(bytes(pythonReference).count, 200)
        let path = try writeFile(bytes(pythonReference))
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.headerLength, 152)
        XCTAssertEqual(f.names, ["ids", "w"])
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertEqual(try f.info("ids"), TensorInfo(name: "ids", dtype: .I64, shape: [3], byteRange: 0..<24))
        XCTAssertEqual(try f.info("w"), TensorInfo(name: "w", dtype: .F32, shape: [2, 2], byteRange: 24..<40))
        XCTAssertEqual(try f.floats("w", expectShape: [2, 2]), [1, -2.5, 0.5, 3])
        XCTAssertEqual(try f.int64s("ids", expectShape: [3]), [7, -1, 0])
        XCTAssertEqual(try f.rawBytes("w"), bytes("0000803f000020c00000003f00004040"))
    }

    func testWriterIsByteIdenticalToReference() throws {
        var w = SafeTensorsWriter()
        try w.add("w", floats: [1, -2.5, 0.5, 3], shape: [2, 2])
        try w.add("ids", int64s: [7, -1, 0], shape: [3])
        XCTAssertEqual(w.serialized(metadata: ["format": "pt"]), bytes(pythonReference))
    }

    func testRoundTripExactValuesAndMetadata() throws {
        var w = SafeTensorsWriter()
        let weights: [Float] = [0, -0.0, 1.5, -3.25, .greatestFiniteMagnitude, .leastNonzeroMagnitude]
        try w.add("layer.0.weight", floats: weights, shape: [2, 3])
        try w.add("scale", floats: [0.1], shape: [])
        try w.add("empty", floats: [], shape: [0, 4])
        try w.add("ids", int64s: [.min, -1, 0, .max], shape: [4])
        try w.add("d", doubles: [Double.pi, -1e300], shape: [2])
        try w.add("quote\"new\nline é", int64s: [5], shape: [1])
        let path = dir + "/model.safetensors"
        try w.write(to: path, metadata: ["format": "pt", "note": "tab\there \"q\""])

        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.names, ["d", "empty", "ids", "layer.0.weight", "quote\"new\nline é", "scale"])
        XCTAssertEqual(f.metadata, ["format": "pt", "note": "tab\there \"q\""])
        let read = try f.floats("layer.0.weight", expectShape: [2, 3])
        XCTAssertEqual(read.map(\.bitPattern), weights.map(\.bitPattern))  // -0.0 and denormals bit-exact
        XCTAssertEqual(try f.floats("scale", expectShape: []), [0.1])
        XCTAssertEqual(try f.floats("empty", expectShape: [0, 4]), [])
        XCTAssertEqual(try f.int64s("ids"), [.min, -1, 0, .max])
        XCTAssertEqual(try f.doubles("d"), [Double.pi, -1e300])
        XCTAssertEqual(try f.int64s("quote\"new\nline é"), [5])
        // Layout: I64 / F64 (8-byte) before F32, then by name; every tensor aligned to its element size.
        XCTAssertEqual(try f.info("ids").byteRange, 0..<32)
        XCTAssertEqual(try f.info("quote\"new\nline é").byteRange, 32..<40)
        XCTAssertEqual(try f.info("d").byteRange, 40..<56)
        XCTAssertEqual(try f.info("empty").byteRange, 56..<56)
        XCTAssertEqual(try f.info("layer.0.weight").byteRange, 56..<80)
        XCTAssertEqual(try f.info("scale").byteRange, 80..<84)
        XCTAssertEqual(try f.info("scale").elementCount, 1)
    }

    func testHeaderIsPaddedWithSpacesToMultipleOf8() throws {
        var w = SafeTensorsWriter()
        try w.add("a", floats: [1], shape: [1])
        let out = w.serialized()
        let json = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#  // 54 bytes -> padded to 56
        XCTAssertEqual(json.utf8.count, 54)
        XCTAssertEqual(Array(out.prefix(8)), [56, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(Array(out[8..<62]), Array(json.utf8))
        XCTAssertEqual(Array(out[62..<64]), [0x20, 0x20])
        XCTAssertEqual(Array(out[64...]), [0, 0, 0x80, 0x3f])
        XCTAssertEqual(out.count, 68)

        // An empty writer still produces a valid (padded) file.
        let empty = SafeTensorsWriter().serialized()
        XCTAssertEqual(empty, [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
        let f = try SafeTensorsFile(path: try writeFile(empty))
        XCTAssertEqual(f.names, [])
        XCTAssertEqual(f.metadata, [:])
    }

    func testWriterOutputDoesNotDependOnInsertionOrder() throws {
        var a = SafeTensorsWriter(), b = SafeTensorsWriter()
        try a.add("x", floats: [1, 2], shape: [2]); try a.add("y", int64s: [3], shape: [1]); try a.add("z", floats: [4], shape: [1])
        try b.add("z", floats: [4], shape: [1]); try b.add("y", int64s: [3], shape: [1]); try b.add("x", floats: [1, 2], shape: [2])
        XCTAssertEqual(a.serialized(metadata: ["m": "1", "a": "2"]), b.serialized(metadata: ["a": "2", "m": "1"]))
        let header = String(decoding: a.serialized(metadata: ["m": "1", "a": "2"])[8...], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix(#"{"__metadata__":{"a":"2","m":"1"},"y":"#), header)
    }

    func testHalfAndBFloat16AndNarrowIntegersConvertExactly() throws {
        var w = SafeTensorsWriter()
        // F16: 1.0, -2.0, smallest subnormal 2^-24, largest finite 65504, +inf, -0.0
        try w.add("h", dtype: .F16, rawBytes: le([UInt16(0x3c00), 0xc000, 0x0001, 0x7bff, 0x7c00, 0x8000]), shape: [6])
        // BF16: 1.0, -3.0, 2^-133 (subnormal), 0x4049 = 3.140625
        try w.add("bf", dtype: .BF16, rawBytes: le([UInt16(0x3f80), 0xc040, 0x0001, 0x4049]), shape: [2, 2])
        try w.add("i32", dtype: .I32, rawBytes: le([Int32.min, -7, 9]), shape: [3])
        try w.add("i8", dtype: .I8, rawBytes: [0xff, 0x80, 0x7f], shape: [3])
        try w.add("u8", dtype: .U8, rawBytes: [0xff, 0x00], shape: [2])
        try w.add("u16", dtype: .U16, rawBytes: le([UInt16(65535)]), shape: [1])
        try w.add("mask", dtype: .BOOL, rawBytes: [1, 0], shape: [2])
        let f = try SafeTensorsFile(path: try writeFile(w.serialized()))
        let h = try f.floats("h")
        XCTAssertEqual(Array(h[0..<4]), [1, -2, Float(sign: .plus, exponent: -24, significand: 1), 65504])
        XCTAssertEqual(h[4], .infinity)
        XCTAssertEqual(h[5].bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertEqual(try f.doubles("h")[3], 65504)
        XCTAssertEqual(try f.floats("bf", expectShape: [2, 2]), [1, -3, Float(bitPattern: 0x0001_0000), 3.140625])
        XCTAssertEqual(try f.int64s("i32"), [Int64(Int32.min), -7, 9])
        XCTAssertEqual(try f.int64s("i8"), [-1, -128, 127])
        XCTAssertEqual(try f.int64s("u8"), [255, 0])
        XCTAssertEqual(try f.int64s("u16"), [65535])
        XCTAssertEqual(try f.rawBytes("mask"), [1, 0])
        XCTAssertEqual(try f.info("mask").dtype, .BOOL)
        // F16 conversion agrees with Swift's own Float16 on every bit pattern.
        #if !(os(macOS) && arch(x86_64))
        for bits in UInt16.min...UInt16.max {
            let mine = SafeTensorsFile.halfToFloat(bits), swift = Float(Float16(bitPattern: bits))
            if mine.isNaN { XCTAssertTrue(swift.isNaN); continue }
            XCTAssertEqual(mine.bitPattern, swift.bitPattern, "F16 0x\(String(bits, radix: 16))")
        }
        #endif
    }

    func testF64NarrowsToNearestFloat() throws {
        var w = SafeTensorsWriter()
        try w.add("d", doubles: [0.1, 1e300, -1e-300], shape: [3])
        let f = try SafeTensorsFile(path: try writeFile(w.serialized()))
        XCTAssertEqual(try f.floats("d"), [Float(0.1), .infinity, -0.0])
    }
}

final class SafeTensorsAccessorErrorTests: SafeTensorsTestCase {
    func makeFile() throws -> SafeTensorsFile {
        var w = SafeTensorsWriter()
        for i in 0..<12 { try w.add("t\(String(format: "%02d", i))", floats: [Float(i)], shape: [1]) }
        try w.add("ids", int64s: [1, 2], shape: [2])
        try w.add("u64", dtype: .U64, rawBytes: le([UInt64.max]), shape: [1])
        return try SafeTensorsFile(path: try writeFile(w.serialized()))
    }

    func testMissingTensorNamesFileAndListsAvailable() throws {
        let f = try makeFile()
        XCTAssertThrowsError(try f.floats("nope")) { error in
            let e = error as? SafeTensorsError
            XCTAssertEqual(e?.kind, .tensorNotFound(name: "nope", available: ["ids", "t00", "t01", "t02", "t03", "t04", "t05", "t06", "t07", "t08"], total: 14))
            XCTAssertEqual(e?.description, f.path + #": no tensor named "nope"; available: "ids", "t00", "t01", "t02", "t03", "t04", "t05", "t06", "t07", "t08", … (14 in all)"#)
        }
        XCTAssertFalse(f.contains("nope"))
        XCTAssertTrue(f.contains("t11"))
    }

    func testWrongDTypeAndWrongShape() throws {
        let f = try makeFile()
        XCTAssertThrowsError(try f.floats("ids")) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .dtypeMismatch(tensor: "ids", requested: "Float (F32/F16/BF16/F64)", found: .I64))
        }
        XCTAssertThrowsError(try f.int64s("t00")) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .dtypeMismatch(tensor: "t00", requested: "Int64 (I64/I32/I16/I8/U32/U16/U8)", found: .F32))
        }
        XCTAssertThrowsError(try f.int64s("u64")) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .dtypeMismatch(tensor: "u64", requested: "Int64 (I64/I32/I16/I8/U32/U16/U8)", found: .U64))
        }
        XCTAssertThrowsError(try f.floats("t03", expectShape: [1, 1])) { error in
            let e = error as? SafeTensorsError
            XCTAssertEqual(e?.kind, .shapeMismatch(tensor: "t03", expected: [1, 1], found: [1]))
            XCTAssertEqual(e?.description, f.path + #": tensor "t03": expected shape [1, 1], found [1]"#)
        }
        XCTAssertThrowsError(try f.int64s("ids", expectShape: [3])) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .shapeMismatch(tensor: "ids", expected: [3], found: [2]))
        }
    }

    func testUnreadableFile() throws {
        let path = dir + "/missing.safetensors"
        XCTAssertThrowsError(try SafeTensorsFile(path: path)) { error in
            XCTAssertEqual(error as? SafeTensorsError, SafeTensorsError(path: path, .unreadable(reason: "No such file or directory")))
            XCTAssertEqual("\(error)", path + ": cannot read safetensors file: No such file or directory")
        }
        XCTAssertThrowsError(try SafeTensorsFile(path: dir)) { error in
            XCTAssertEqual(error as? SafeTensorsError, SafeTensorsError(path: dir, .unreadable(reason: "is a directory; expected a file")))
        }
    }
}

final class SafeTensorsMalformedTests: SafeTensorsTestCase {
    let entry = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
    let eight: [UInt8] = [0, 0, 128, 63, 0, 0, 0, 64]

    func testValidBaseline() throws {
        // The malformed cases below are all small edits of this valid file.
        let f = try SafeTensorsFile(path: try writeFile(image(entry, eight)))
        XCTAssertEqual(try f.floats("a"), [1, 2])
    }

    func testFileShorterThan8Bytes() throws {
        try assertRejects([1, 0, 0, 0, 0], .fileTooShort(size: 5))
        try assertRejects([], .fileTooShort(size: 0))
    }

    func testHeaderLengthBeyondFile() throws {
        try assertRejects(image(entry, eight, declaredLength: 100), .headerBeyondFile(declared: 100, fileSize: 8 + entry.utf8.count + 8))
    }

    func testAbsurdHeaderLength() throws {
        try assertRejects(image(entry, eight, declaredLength: 100_000_001), .headerTooLarge(declared: 100_000_001, limit: 100_000_000))
        try assertRejects(image(entry, eight, declaredLength: .max), .headerTooLarge(declared: .max, limit: 100_000_000))
    }

    func testHeaderNotUTF8() throws {
        try assertRejects(image(headerBytes: Array(#"{"a":""#.utf8) + [0xff, 0xfe] + Array(#""}"#.utf8)), .headerNotUTF8)
    }

    func testHeaderNotAnObject() throws {
        try assertRejects(image("[1, 2]"), .headerNotObject(firstByte: UInt8(ascii: "[")))
        try assertRejects(image(" {}"), .headerNotObject(firstByte: 0x20))
        try assertRejects(image(""), .headerNotObject(firstByte: nil))
    }

    func testHeaderInvalidJSON() throws {
        try assertRejects(image(#"{"a":"#), .headerInvalidJSON(offset: 5, message: "unexpected end of header; expected a JSON value"))
        try assertRejects(image(#"{"a":{}}x"#), .headerInvalidJSON(offset: 8, message: "unexpected character 'x' after the end of the JSON value"))
        try assertRejects(image(#"{"a":1,}"#), .headerInvalidJSON(offset: 7, message: "unexpected character '}'; expected a string key"))
        try assertRejects(image(#"{"a":01}"#), .headerInvalidJSON(offset: 5, message: "invalid number; leading zeros are not allowed"))
        try assertRejects(image(#"{"a":"\ud800"}"#), .headerInvalidJSON(offset: 6, message: "lone high surrogate in \\u escape"))
        let deep = #"{"__metadata__":"# + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "}"
        try assertRejects(image(deep), .headerInvalidJSON(offset: 16 + 127, message: "nesting deeper than 128 levels"))
    }

    func testDuplicateKeysRejected() throws {
        let h = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        try assertRejects(image(h, eight), .duplicateKey("a"))
    }

    func testEntryMissingOrMistypedFields() throws {
        try assertRejects(image(#"{"a":[1]}"#), .invalidEntry(tensor: "a", message: "entry is an array; expected an object"))
        try assertRejects(image(#"{"a":{"shape":[2],"data_offsets":[0,8]}}"#, eight), .invalidEntry(tensor: "a", message: #"missing "dtype""#))
        try assertRejects(image(#"{"a":{"dtype":"F32","data_offsets":[0,8]}}"#, eight), .invalidEntry(tensor: "a", message: #"missing "shape""#))
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":[2]}}"#, eight), .invalidEntry(tensor: "a", message: #"missing "data_offsets""#))
        try assertRejects(image(#"{"a":{"dtype":32,"shape":[2],"data_offsets":[0,8]}}"#, eight),
                          .invalidEntry(tensor: "a", message: #""dtype" is the integer 32; expected a string"#))
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#, eight),
                          .invalidEntry(tensor: "a", message: #""shape" is a string; expected an array of integers"#))
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, eight),
                          .invalidEntry(tensor: "a", message: #""shape" contains the number 2.0; expected integers"#))
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,8]}}"#, eight),
                          .invalidEntry(tensor: "a", message: #""shape" contains true; expected integers"#))
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}"#, eight),
                          .invalidEntry(tensor: "a", message: #""data_offsets" has 3 element(s); expected 2 [begin, end]"#))
    }

    func testUnknownDType() throws {
        try assertRejects(image(#"{"a":{"dtype":"F8","shape":[8],"data_offsets":[0,8]}}"#, eight), .unknownDType(tensor: "a", found: "F8"))
        try assertRejects(image(#"{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}"#, eight), .unknownDType(tensor: "a", found: "f32"))
    }

    func testNegativeAndOverflowingShapes() throws {
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, eight),
                          .invalidShape(tensor: "a", shape: [-2], message: "dimension -2 is negative"))
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, eight),
                          .invalidShape(tensor: "a", shape: [4294967296, 4294967296], message: "element count overflows a 64-bit integer"))
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,8]}}"#, eight),
                          .invalidShape(tensor: "a", shape: [2305843009213693952], message: "byte count overflows a 64-bit integer"))
        // Beyond Int64: not an integer we can hold.
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,8]}}"#, eight),
                          .invalidEntry(tensor: "a", message: #""shape" contains the number 18446744073709551616; expected integers"#))
    }

    func testBadDataOffsets() throws {
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, eight),
                          .invalidOffsets(tensor: "a", begin: 8, end: 0, dataLength: 8))
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, eight),
                          .invalidOffsets(tensor: "a", begin: 0, end: 16, dataLength: 8))
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#, eight),
                          .invalidOffsets(tensor: "a", begin: -8, end: 0, dataLength: 8))
    }

    func testShapeTimesDTypeSizeMustMatchOffsets() throws {
        try assertRejects(image(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, eight),
                          .sizeMismatch(tensor: "a", dtype: .F32, shape: [3], expectedBytes: 12, foundBytes: 8))
        try assertRejects(image(#"{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}"#, eight),
                          .sizeMismatch(tensor: "a", dtype: .F64, shape: [2], expectedBytes: 16, foundBytes: 8))
    }

    func testHolesOverlapsAndTrailingBytesRejected() throws {
        let twelve = eight + [0, 0, 0, 0]
        let hole = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        try assertRejects(image(hole, twelve), .notContiguous(tensor: "b", expectedBegin: 4, foundBegin: 8))
        let overlap = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        try assertRejects(image(overlap, eight), .notContiguous(tensor: "b", expectedBegin: 8, foundBegin: 4))
        let late = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        try assertRejects(image(late, eight), .notContiguous(tensor: "a", expectedBegin: 0, foundBegin: 4))
        try assertRejects(image(entry, twelve), .incompleteBuffer(tensorsEnd: 8, dataLength: 12))
        try assertRejects(image("{}", [0]), .incompleteBuffer(tensorsEnd: 0, dataLength: 1))
        // Out-of-order offsets and zero-size tensors are fine as long as the bytes are tiled.
        let shuffled = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        let f = try SafeTensorsFile(path: try writeFile(image(shuffled, eight)))
        XCTAssertEqual(try f.floats("a"), [2])
        XCTAssertEqual(try f.floats("b"), [1])
        XCTAssertEqual(try f.floats("z"), [])
    }

    func testMetadataMustBeStringToString() throws {
        try assertRejects(image(#"{"__metadata__":{"k":1}}"#), .invalidMetadata(message: #"value of "k" is the integer 1; expected a string"#))
        try assertRejects(image(#"{"__metadata__":["k"]}"#), .invalidMetadata(message: "found an array; expected an object of strings"))
        let f = try SafeTensorsFile(path: try writeFile(image(#"{"__metadata__":null}"#)))
        XCTAssertEqual(f.metadata, [:])
    }

    func testErrorDescriptionsNameFileExpectedAndFound() throws {
        let path = try writeFile(image(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, eight))
        XCTAssertThrowsError(try SafeTensorsFile(path: path)) {
            XCTAssertEqual("\($0)", path + #": tensor "a": dtype F32 with shape [3] needs 12 bytes but data_offsets span 8 bytes"#)
        }
        let short = try writeFile([1, 2, 3], name: "short.safetensors")
        XCTAssertThrowsError(try SafeTensorsFile(path: short)) {
            XCTAssertEqual($0.localizedDescription, short + ": file is 3 byte(s); expected at least 8 (the little-endian u64 header length)")
        }
    }
}

final class SafeTensorsWriterTests: SafeTensorsTestCase {
    func testAddValidatesCountShapeAndName() throws {
        var w = SafeTensorsWriter()
        XCTAssertThrowsError(try w.add("a", floats: [1, 2, 3], shape: [2, 2])) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .countMismatch(tensor: "a", shape: [2, 2], expected: 4, found: 3, unit: "values"))
            XCTAssertEqual("\($0)", #"cannot add tensor "a": shape [2, 2] needs 4 values but 3 were given"#)
        }
        XCTAssertThrowsError(try w.add("a", int64s: [], shape: [-1, 0])) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .invalidWriterShape(tensor: "a", shape: [-1, 0]))
        }
        XCTAssertThrowsError(try w.add("a", floats: [], shape: [Int.max, 2])) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .invalidWriterShape(tensor: "a", shape: [Int.max, 2]))
        }
        XCTAssertThrowsError(try w.add("a", dtype: .F16, rawBytes: [1, 2, 3], shape: [2])) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .countMismatch(tensor: "a", shape: [2], expected: 4, found: 3, unit: "bytes of F16"))
        }
        XCTAssertThrowsError(try w.add("__metadata__", floats: [1], shape: [1])) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .invalidTensorName(name: "__metadata__", reason: "\"__metadata__\" is reserved for the metadata"))
        }
        try w.add("a", floats: [1], shape: [1])
        XCTAssertThrowsError(try w.add("a", int64s: [1], shape: [1])) {
            XCTAssertEqual(($0 as? SafeTensorsError)?.kind, .invalidTensorName(name: "a", reason: "a tensor of that name was already added"))
        }
        XCTAssertEqual(w.names, ["a"])
    }

    func testWriteReplacesExistingFileAndLeavesNoTemporaries() throws {
        let path = dir + "/ckpt.safetensors"
        var first = SafeTensorsWriter()
        try first.add("a", floats: [1, 2], shape: [2])
        try first.write(to: path)
        var second = SafeTensorsWriter()
        try second.add("b", int64s: [3], shape: [1])
        try second.write(to: path, metadata: ["step": "2"])
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.names, ["b"])
        XCTAssertEqual(f.metadata, ["step": "2"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["ckpt.safetensors"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data(second.serialized(metadata: ["step": "2"])))
    }

    func testWriteIntoMissingDirectoryNamesPath() throws {
        let path = dir + "/no/such/dir/out.safetensors"
        XCTAssertThrowsError(try SafeTensorsWriter().write(to: path)) { error in
            let e = error as? SafeTensorsError
            XCTAssertEqual(e?.path, path)
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(path + ": cannot write safetensors file: cannot create temporary file " + dir + "/no/such/dir/.out.safetensors.tmp-"), text)
            XCTAssertTrue(text.hasSuffix(": No such file or directory"), text)
        }
    }

    func testFailedRenameKeepsTargetAndRemovesTemporary() throws {
        // The target is a non-empty directory: rename(2) fails after the temporary file was written and synced.
        let target = dir + "/target"
        try FileManager.default.createDirectory(atPath: target + "/inside", withIntermediateDirectories: true)
        var w = SafeTensorsWriter()
        try w.add("a", floats: [1], shape: [1])
        XCTAssertThrowsError(try w.write(to: target)) { error in
            guard case .writeFailed(let reason)? = (error as? SafeTensorsError)?.kind else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.hasPrefix("cannot rename " + dir + "/.target.tmp-"), reason)
            XCTAssertEqual((error as? SafeTensorsError)?.path, target)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["target"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: target), ["inside"])
    }
}

/// Interoperability with Hugging Face's Python `safetensors` package (the reference implementation).
final class SafeTensorsPythonInteropTests: SafeTensorsTestCase {
    /// The project's virtualenv, found relative to this source file (Tests/SafeTensorsTests/ → repo root).
    /// The project's virtualenv: `.venv/bin/python` at the package root, found from this source file
    /// (Tests/SafeTensorsTests/ → root) or from the current directory (`swift test` runs at the root).
    var python: String {
        let fromSource = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".venv/bin/python").path
        let fromCwd = FileManager.default.currentDirectoryPath + "/.venv/bin/python"
        return [fromSource, fromCwd].first { FileManager.default.isExecutableFile(atPath: $0) } ?? fromSource
    }

    func runPython(_ script: String) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw XCTSkip("no Python virtualenv at \(python) (needs numpy and safetensors)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", script]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let errText = String(decoding: stderr, as: UTF8.self)
        if errText.contains("ModuleNotFoundError") { throw XCTSkip("Python lacks a module: \(errText)") }
        XCTAssertEqual(p.terminationStatus, 0, errText)
        return String(decoding: stdout, as: UTF8.self)
    }

    func testReadsFileWrittenByPythonSafetensors() throws {
        let path = dir + "/py.safetensors"
        _ = try runPython("""
            import numpy as np
            from safetensors.numpy import save_file
            save_file({
                "f32": np.array([[0.5, -1.25, 3.0], [1e-3, 0.0, -7.0]], dtype=np.float32),
                "f16": np.array([1.0, -2.0, 0.5, 65504.0], dtype=np.float16),
                "f64": np.array([3.141592653589793, -2.5], dtype=np.float64),
                "i64": np.array([[1, -2], [3, -4]], dtype=np.int64),
                "i32": np.array([-2147483648, 5], dtype=np.int32),
                "u8": np.array([0, 255, 7], dtype=np.uint8),
                "scalar": np.array(42.0, dtype=np.float32),
            }, "\(path)", metadata={"format": "np", "source": "python"})
            """)
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.names, ["f16", "f32", "f64", "i32", "i64", "scalar", "u8"])
        XCTAssertEqual(f.metadata, ["format": "np", "source": "python"])
        XCTAssertEqual(f.headerLength % 8, 0)
        XCTAssertEqual(try f.floats("f32", expectShape: [2, 3]), [0.5, -1.25, 3.0, Float(1e-3), 0.0, -7.0])
        XCTAssertEqual(try f.floats("f16", expectShape: [4]), [1, -2, 0.5, 65504])
        XCTAssertEqual(try f.doubles("f64", expectShape: [2]), [3.141592653589793, -2.5])
        XCTAssertEqual(try f.int64s("i64", expectShape: [2, 2]), [1, -2, 3, -4])
        XCTAssertEqual(try f.int64s("i32"), [-2147483648, 5])
        XCTAssertEqual(try f.int64s("u8"), [0, 255, 7])
        XCTAssertEqual(try f.floats("scalar", expectShape: []), [42])
    }

    func testPythonReadsOurFileAndWritesIdenticalBytes() throws {
        let ours = dir + "/ours.safetensors", theirs = dir + "/theirs.safetensors"
        var w = SafeTensorsWriter()
        try w.add("b.weight", floats: [1.5, -2, 0.25, 8], shape: [2, 2])
        try w.add("a.bias", floats: [0.125], shape: [1])
        try w.add("pos", int64s: [0, 1, 2], shape: [1, 3])
        try w.add("d", doubles: [1e-300], shape: [])
        try w.write(to: ours, metadata: ["format": "pt"])
        let out = try runPython("""
            import numpy as np
            from safetensors.numpy import load_file, save_file
            from safetensors import safe_open
            t = load_file("\(ours)")
            with safe_open("\(ours)", "np") as f:
                print(f.metadata())
            for k in sorted(t):
                print(k, t[k].dtype, list(t[k].shape), t[k].ravel().tolist())
            save_file(t, "\(theirs)", metadata={"format": "pt"})
            """)
        XCTAssertEqual(out, """
            {'format': 'pt'}
            a.bias float32 [1] [0.125]
            b.weight float32 [2, 2] [1.5, -2.0, 0.25, 8.0]
            d float64 [] [1e-300]
            pos int64 [1, 3] [0, 1, 2]

            """)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: theirs)), try Data(contentsOf: URL(fileURLWithPath: ours)))
    }
}
