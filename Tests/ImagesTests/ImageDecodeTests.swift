import Foundation
import Images
import SafeTensors
import XCTest

/// `RGBImage.decode` against Pillow 13.0.0: Tests/Fixtures/images/expected.safetensors holds
/// `np.asarray(Image.open(f).convert("RGB"))` for every good fixture (and `ImageOps.exif_transpose` of it under
/// "NAME#exif_transpose"), written by tools/make_image_fixtures.py with PIL's bundled libjpeg-turbo 3.x; we decode
/// with Debian's libjpeg-turbo 2.1.5 and libspng. Every comparison is exact (max difference 0).
final class ImageDecodeTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let dir = root.appendingPathComponent("Tests/Fixtures/images").path

    func expected() throws -> SafeTensorsFile {
        try SafeTensorsFile(path: Self.dir + "/expected.safetensors")
    }

    /// The reference pixels of `key` as an RGBImage (U8 [H, W, 3]).
    func reference(_ f: SafeTensorsFile, _ key: String) throws -> RGBImage {
        let info = try f.info(key)
        XCTAssertEqual(info.shape.count, 3)
        return RGBImage(width: info.shape[1], height: info.shape[0], pixels: try f.rawBytes(key))
    }

    func assertSame(_ got: RGBImage, _ want: RGBImage, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.width, want.width, "\(what): width", file: file, line: line)
        XCTAssertEqual(got.height, want.height, "\(what): height", file: file, line: line)
        guard got.pixels.count == want.pixels.count else { return }
        let diffs = zip(got.pixels, want.pixels).map { abs(Int($0) - Int($1)) }
        let worst = diffs.max() ?? 0, count = diffs.filter { $0 != 0 }.count
        XCTAssertEqual(worst, 0, "\(what): max |difference| \(worst) over \(count) of \(diffs.count) values",
                       file: file, line: line)
    }

    var goodNames: [String] {
        get throws { try expected().names.filter { !$0.contains("#") } }
    }

    func testEveryGoodFileMatchesPIL() throws {
        let f = try expected()
        let names = try goodNames
        XCTAssertGreaterThanOrEqual(names.count, 30)
        for name in names {
            let got = try RGBImage.decode(path: Self.dir + "/" + name)
            assertSame(got, try reference(f, name), name)
        }
    }

    func testEXIFOrientationIgnoredByDefaultAndAppliedAsExifTranspose() throws {
        let f = try expected()
        let keys = f.names.filter { $0.hasSuffix("#exif_transpose") }
        XCTAssertEqual(keys.count, 10, "orientations 1…8 in JPEG EXIF, one XMP, one PNG eXIf")
        for key in keys {
            let name = String(key.dropLast("#exif_transpose".count))
            let path = Self.dir + "/" + name
            let plain = try RGBImage.decode(path: path)
            let turned = try RGBImage.decode(path: path, options: ImageDecodeOptions(applyEXIFOrientation: true))
            assertSame(plain, try reference(f, name), name)
            assertSame(turned, try reference(f, key), key)
        }
        // Orientation 6 is a quarter turn: the default keeps the stored 30×18, the option gives 18×30.
        let o6 = try RGBImage.decode(path: Self.dir + "/jpeg_exif6_30x18.jpg",
                                     options: ImageDecodeOptions(applyEXIFOrientation: true))
        XCTAssertEqual([o6.width, o6.height], [18, 30])
    }

    func testBytesAndPathAgreeAndTheNameIsNotTheFormat() throws {
        let path = Self.dir + "/png_rgb8_portrait_19x33.png"
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let a = try RGBImage.decode(path: path)
        let b = try RGBImage.decode(bytes, path: "misnamed.jpg")
        let c = try bytes.withUnsafeBytes { try RGBImage.decode($0, path: "x") }
        XCTAssertEqual(a, b)
        XCTAssertEqual(a, c)
        XCTAssertEqual(bytes.withUnsafeBytes { ImageFileFormat.detect($0) }, .png)
    }

    /// The broken fixtures (PIL refuses each; the generator checks it) and the error each gives here.
    func testBrokenFilesGiveErrorsNamingTheFile() throws {
        let f = try expected()
        let broken = (f.metadata["broken"] ?? "").split(separator: ",").map(String.init)
        XCTAssertEqual(broken.count, 9)
        for name in broken {
            let path = Self.dir + "/" + name
            XCTAssertThrowsError(try RGBImage.decode(path: path), name) { error in
                guard let e = error as? ImageFileError else { return XCTFail("\(name): \(type(of: error)) \(error)") }
                XCTAssertEqual(e.path, path)
                XCTAssertTrue(e.description.hasPrefix(path + ": "), e.description)
                let ok: Bool
                switch (name, e.kind) {
                case ("broken_zero_bytes.jpg", .empty): ok = true
                case ("broken_text.jpg", .unknownFormat(let lead)): ok = lead == Array("this is ".utf8)
                case ("broken_truncated_half.jpg", .truncated), ("broken_no_eoi.jpg", .truncated),
                     ("broken_header_only.jpg", .truncated), ("broken_truncated.png", .truncated): ok = true
                case ("broken_bad_crc.png", .corrupt): ok = true
                case ("broken_huge_100000x100000.png", .invalidDimensions(100000, 100000, ImageDecodeOptions.pilMaxPixels)),
                     ("broken_huge_60000x60000.jpg", .invalidDimensions(60000, 60000, ImageDecodeOptions.pilMaxPixels)):
                    ok = true
                default: ok = false
                }
                XCTAssertTrue(ok, "\(name): unexpected \(e)")
            }
        }
    }

    func testPixelLimitIsCheckedBeforeDecoding() throws {
        for name in ["jpeg_rgb_420_37x23.jpg", "png_gray8_30x20.png"] {
            let path = Self.dir + "/" + name
            let limit = name.hasPrefix("jpeg") ? 37 * 23 : 30 * 20
            XCTAssertNoThrow(try RGBImage.decode(path: path, options: ImageDecodeOptions(maxPixels: limit)))
            XCTAssertThrowsError(try RGBImage.decode(path: path, options: ImageDecodeOptions(maxPixels: limit - 1))) {
                guard case .invalidDimensions(_, _, limit - 1)? = ($0 as? ImageFileError)?.kind else {
                    return XCTFail("\(name): \($0)")
                }
            }
        }
    }

    func testUnreadablePaths() {
        for path in ["/nonexistent/cat.jpg", Self.dir] {
            XCTAssertThrowsError(try RGBImage.decode(path: path)) {
                guard let e = $0 as? ImageFileError, case .unreadable = e.kind else { return XCTFail("\(path): \($0)") }
                XCTAssertTrue(e.description.hasPrefix(path + ": cannot read"), e.description)
            }
        }
    }

    /// Cutting a JPEG anywhere gives an error (never a crash or a partial image), as PIL raises.
    func testEveryPrefixOfAJPEGIsRefused() throws {
        for name in ["jpeg_progressive_45x31.jpg", "jpeg_rgb_420_37x23.jpg", "jpeg_cmyk_33x21.jpg"] {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.dir + "/" + name)))
            var cut = bytes.count - 1
            while cut >= 0 {
                XCTAssertThrowsError(try RGBImage.decode(Array(bytes[..<cut]), path: name), "\(name) cut at \(cut)") {
                    XCTAssertTrue($0 is ImageFileError, "\(name) cut at \(cut): \($0)")
                }
                cut -= cut > 64 ? 7 : 1
            }
        }
    }

    /// A PNG cut before the last IDAT chunk's data ends is refused; cut after it (inside that chunk's CRC, IEND
    /// missing or partial) it decodes whole, as PIL 13 does (PIL ignores a missing IEND). PIL accepts a few bytes
    /// earlier still: it stops reading once every row is inflated, before the zlib stream's Adler-32 (here: cuts
    /// 1724…1728 of the Adam7 file decode in PIL and are refused by libspng, which wants the whole IDAT data).
    func testPrefixesOfAPNG() throws {
        for name in ["png_rgb8_adam7_29x19.png", "png_palette_27x15.png", "png_gray16_24x16.png"] {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.dir + "/" + name)))
            let whole = try RGBImage.decode(bytes, path: name)
            let iend = bytes.count - 12
            XCTAssertEqual(Array(bytes[(iend + 4)..<(iend + 8)]), Array("IEND".utf8))
            for cut in 0..<bytes.count {
                if cut < iend - 4 {
                    XCTAssertThrowsError(try RGBImage.decode(Array(bytes[..<cut]), path: name), "\(name) cut at \(cut)") {
                        XCTAssertTrue($0 is ImageFileError, "\(name) cut at \(cut): \($0)")
                    }
                } else {
                    XCTAssertEqual(try RGBImage.decode(Array(bytes[..<cut]), path: name), whole, "\(name) cut at \(cut)")
                }
            }
        }
    }
}
