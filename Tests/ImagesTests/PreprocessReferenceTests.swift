import Foundation
import SafeTensors
import XCTest
@testable import Images

/// Resizing and the evaluation recipes against Pillow 13.0.0 and transformers 5.23.0's PIL-backend processors
/// (`BitImageProcessorPil`, `CLIPImageProcessorPil`): tools/make_image_reference.py →
/// Tests/Fixtures/preprocess_ref.safetensors (synthetic images: odd sizes, portrait and landscape, smaller than the
/// crop, large downscale, > 100× taller than wide, 1×1).
final class PreprocessReferenceTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let fixture = root.appendingPathComponent("Tests/Fixtures/preprocess_ref.safetensors").path

    func load() throws -> SafeTensorsFile { try SafeTensorsFile(path: Self.fixture) }

    func image(_ f: SafeTensorsFile, _ name: String) throws -> RGBImage {
        let info = try f.info(name)
        XCTAssertEqual(info.dtype, .U8)
        return RGBImage(width: info.shape[1], height: info.shape[0], pixels: try f.rawBytes(name))
    }

    /// `img3.resize.bicubic.133x6` → every level of ours equals Pillow's.
    func testResizeIsExactAgainstPillow() throws {
        let f = try load()
        var cases = 0, values = 0, mismatches = 0, worst = 0
        var seen = Set<ResampleFilter>()
        for name in f.names where name.contains(".resize.") {
            let parts = name.split(separator: ".")
            guard parts.count == 4, let filter = ResampleFilter(rawValue: String(parts[2])) else {
                XCTFail("unexpected name \(name)"); continue
            }
            let size = parts[3].split(separator: "x").compactMap { Int($0) }
            let source = try image(f, String(parts[0]))
            let want = try image(f, name)
            XCTAssertEqual([want.width, want.height], size)
            let got = source.resized(width: size[0], height: size[1], filter: filter)
            for (a, b) in zip(got.pixels, want.pixels) where a != b {
                mismatches += 1; worst = max(worst, abs(Int(a) - Int(b)))
            }
            values += want.pixels.count; cases += 1; seen.insert(filter)
        }
        print("resize vs Pillow: \(cases) cases, \(values) values, \(mismatches) differ, max |Δ| = \(worst) levels")
        XCTAssertEqual(seen, [.bilinear, .bicubic])
        XCTAssertGreaterThanOrEqual(cases, 40)
        XCTAssertEqual(mismatches, 0, "max |Δ| = \(worst) levels")
    }

    struct RecipeStats {
        var cases = 0, values = 0, exact = 0, sum = 0.0, worst = 0.0, cropExact = 0, cropCases = 0
        var mean: Double { sum / Double(max(values, 1)) }
        var summary: String {
            "\(cases) cases, \(values) values, \(exact) bit-identical, max |Δ| = \(worst) levels, mean |Δ| = \(mean) "
                + "levels; 8-bit crops identical in \(cropExact)/\(cropCases)"
        }
    }

    /// Runs every `<image>.<family>.<resize>.<crop>.{pixel_values|levels}` of `f` whose image passes `include`
    /// through our recipe. Differences are measured in levels (|Δ| · std_c · 255, i.e. before normalization).
    /// `source` gives the image a key names (default: the fixture's stored tensor of that name).
    func compareRecipes(_ f: SafeTensorsFile, include: (String) -> Bool = { _ in true },
                        source: ((String) throws -> RGBImage)? = nil) throws -> RecipeStats {
        var st = RecipeStats()
        for name in f.names where name.hasSuffix(".pixel_values") || name.hasSuffix(".levels") {
            let parts = name.split(separator: ".")
            guard parts.count == 5, let resize = Int(parts[2]), let crop = Int(parts[3]) else {
                XCTFail("unexpected name \(name)"); continue
            }
            guard include(String(parts[0])) else { continue }
            let recipe: Recipe
            switch parts[1] {
            case "dinov2": recipe = try .dinov2(resize: resize, crop: crop)
            case "clip": recipe = try .clip(resize: resize, crop: crop)
            default: XCTFail("unknown family in \(name)"); continue
            }
            let source = try source?(String(parts[0])) ?? image(f, String(parts[0]))
            let n = recipe.floatsPerImage, plane = crop * crop
            var want = [Float](repeating: 0, count: n)
            if parts[4] == "levels" {
                let levels = try f.rawBytes(name)
                XCTAssertEqual(levels.count, n)
                // The 8-bit crop itself (CHW levels) must equal ours exactly.
                let ours = recipe.resizedCrop(source)
                var same = true
                for c in 0..<3 {
                    for i in 0..<plane where ours.pixels[i * 3 + c] != levels[c * plane + i] { same = false }
                }
                st.cropCases += 1; if same { st.cropExact += 1 }
                for c in 0..<3 {
                    for i in 0..<plane {
                        want[c * plane + i] = recipe.normalization.table[c * 256 + Int(levels[c * plane + i])]
                    }
                }
            } else {
                want = try f.floats(name, expectShape: [3, crop, crop])
            }
            var got = [Float](repeating: .nan, count: n)
            got.withUnsafeMutableBufferPointer { recipe.apply(source, into: $0.baseAddress!) }
            for c in 0..<3 {
                let toLevels = Double(recipe.normalization.std[c]) * 255
                for i in 0..<plane {
                    let d = abs(Double(got[c * plane + i]) - Double(want[c * plane + i])) * toLevels
                    if got[c * plane + i] == want[c * plane + i] { st.exact += 1 }
                    st.sum += d; st.worst = max(st.worst, d)
                }
            }
            st.values += n; st.cases += 1
        }
        return st
    }

    /// `img2.dinov2.256.224.levels` / `img0.clip.33.33.pixel_values` → our recipe's floats.
    func testRecipesMatchHuggingFace() throws {
        let st = try compareRecipes(try load())
        print("recipes vs HF: " + st.summary)
        XCTAssertGreaterThanOrEqual(st.cases, 30)
        XCTAssertLessThanOrEqual(st.worst, 2, "max |Δ| in levels (1/255)")
        XCTAssertLessThanOrEqual(st.mean, 0.5, "mean |Δ| in levels (1/255)")
        XCTAssertEqual(st.cropExact, st.cropCases)
    }

    /// Image files run through `tools/make_image_reference.py --images DIR --out F`, with F given in the
    /// environment as PREPROCESS_REF_FILES. The images are PIL's decoded `fileN` tensors (a decoder test can swap in
    /// its own). Files with transparency (`fileN.alpha` in the metadata) are left out and counted: transformers 5.x
    /// composites them onto white, `convert("RGB")` (our RGBImage) drops alpha.
    func testImageFilesMatchHuggingFace() throws {
        guard let path = ProcessInfo.processInfo.environment["PREPROCESS_REF_FILES"] else {
            throw XCTSkip("set PREPROCESS_REF_FILES to a file written by make_image_reference.py --images")
        }
        let f = try SafeTensorsFile(path: path)
        let alpha = Set(f.metadata.keys.filter { $0.hasSuffix(".alpha") }.map { String($0.dropLast(6)) })
        let st = try compareRecipes(f) { !alpha.contains($0) }
        print("files vs HF (\(alpha.count) with alpha left out: \(alpha.sorted().map { f.metadata[$0] ?? $0 })): "
              + st.summary)
        XCTAssertGreaterThan(st.cases, 0)
        XCTAssertLessThanOrEqual(st.worst, 2, "max |Δ| in levels (1/255)")
        XCTAssertLessThanOrEqual(st.mean, 0.5, "mean |Δ| in levels (1/255)")
    }

    /// End to end, as `selora pixels` runs: the fixture FILES of Tests/Fixtures/images (JPEG 4:2:0 / 4:2:2 / 4:4:4,
    /// progressive, gray, CMYK, EXIF; PNG gray 1–16 bit, RGB, 16-bit RGB, palette, interlaced; odd sizes, portrait
    /// and landscape) decoded by our decoder and preprocessed by our recipes, against PIL + transformers 5.23's
    /// processors on the same files (tools/make_image_reference.py --images Tests/Fixtures/images --recipes
    /// dinov2:32:28,clip:28:28,dinov2:20:14 → Tests/Fixtures/images_hf_reference.safetensors). Files with
    /// transparency are left out and counted: transformers 5 composites them onto white, we drop alpha as
    /// PIL's `convert("RGB")` and torchvision's loader do.
    func testDecodedFilesMatchHuggingFace() throws {
        let f = try SafeTensorsFile(path: Self.root.appendingPathComponent("Tests/Fixtures/images_hf_reference.safetensors").path)
        let alpha = Set(f.metadata.keys.filter { $0.hasSuffix(".alpha") }.map { String($0.dropLast(6)) })
        let dir = Self.root.appendingPathComponent("Tests/Fixtures/images").path
        let st = try compareRecipes(f, include: { !alpha.contains($0) }) { key in
            guard let rel = f.metadata[key] else { throw ImageFileError(path: key, .empty) }
            return try RGBImage.decode(path: dir + "/" + rel)
        }
        print("decoded files vs HF (\(alpha.count) with alpha left out): " + st.summary)
        XCTAssertGreaterThanOrEqual(st.cases, 3 * 20)
        XCTAssertLessThanOrEqual(st.worst, 2, "max |Δ| in levels (1/255)")
        XCTAssertLessThanOrEqual(st.mean, 0.5, "mean |Δ| in levels (1/255)")
    }

    /// Crop-then-resize through `from:` equals resizing a copied crop (the crop's borders clamp the kernel).
    func testResizeFromRectEqualsResizeOfCopiedCrop() throws {
        let f = try load()
        let img = try image(f, "img2")
        for (rect, w, h) in [(PixelRect(x: 17, y: 40, width: 151, height: 97), 48, 48),
                             (PixelRect(x: 0, y: 0, width: 9, height: 263), 20, 20),
                             (PixelRect(x: 290, y: 250, width: 11, height: 13), 64, 31)] {
            var px = [UInt8]()
            for y in rect.y..<(rect.y + rect.height) {
                let s = (y * img.width + rect.x) * 3
                px += img.pixels[s..<(s + rect.width * 3)]
            }
            let copy = RGBImage(width: rect.width, height: rect.height, pixels: px)
            for filter in ResampleFilter.allCases {
                XCTAssertEqual(img.resized(width: w, height: h, filter: filter, from: rect),
                               copy.resized(width: w, height: h, filter: filter), "\(rect) \(filter)")
            }
        }
    }
}
