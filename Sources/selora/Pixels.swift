import ArgumentParser
import Datasets
import Foundation
import Images
import SafeTensors

/// Image files named on the command line: one ImageFolder directory (labels from its class folders), one plain
/// directory of images, one CSV / JSONL manifest, or a list of files — always in sorted path order for folders and
/// file lists (byte order, as Python sorts), manifest order for manifests.
struct ImageInputs: ParsableArguments {
    @Option(parsing: .upToNextOption, help: "Images: an ImageFolder directory (ROOT/<class>/<image>), a directory of images, a .csv / .jsonl manifest, or image files.")
    var images: [String] = []

    @Option(help: "Preprocessing: dinov2 (Hugging Face BitImageProcessor: shorter side → --resize-size, bicubic, center crop, ImageNet statistics) or clip (CLIPImageProcessor: CLIP's statistics). Default: the model's (embed), dinov2 (pixels).")
    var recipe: RecipeName?

    @Option(help: "Center crop side (the model's input side).")
    var imageSize = 224

    @Option(help: "Shorter side after the resize. Default: --image-size × 256/224 for dinov2, --image-size for clip.")
    var resizeSize: Int?

    @Flag(help: "Apply the EXIF orientation (PIL's exif_transpose); default ignored, as Hugging Face's processors do.")
    var exifOrientation = false

    enum RecipeName: String, ExpressibleByArgument, CaseIterable { case dinov2, clip }

    func validate() throws {
        guard imageSize > 0 else { throw ValidationError("--image-size must be positive, got \(imageSize)") }
        if let r = resizeSize, r < imageSize { throw ValidationError("--resize-size \(r) must be at least --image-size \(imageSize)") }
    }

    func makeRecipe(_ name: RecipeName) throws -> Recipe {
        try imageRecipe(clip: name == .clip, imageSize: imageSize, resizeSize: resizeSize)
    }

    /// The files as an ``ImageFileList`` (paths absolute or as given), and whether its labels mean anything: an
    /// ImageFolder or a manifest (``DataOptions/fileList(_:flag:)``) has classes; a plain directory or a list of
    /// files is one unnamed class.
    func list() throws -> (files: ImageFileList, labelled: Bool) {
        guard !images.isEmpty else { throw ValidationError("--images: name a directory, a manifest or image files") }
        let fm = FileManager.default
        func sorted(_ paths: [String]) -> [String] { paths.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) } }
        func unlabelled(_ paths: [String]) throws -> (ImageFileList, Bool) {
            (try ImageFileList(root: "", paths: paths, labels: [Int32](repeating: 0, count: paths.count),
                               classNames: ["images"], source: "--images"), false)
        }
        if images.count == 1 {
            let path = images[0]
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw ValidationError("--images \(path): no such file or directory") }
            let entries = isDir.boolValue ? ((try? fm.contentsOfDirectory(atPath: path)) ?? []) : []
            let hasClassFolders = entries.contains { e in
                var d: ObjCBool = false
                return !e.hasPrefix(".") && fm.fileExists(atPath: path + "/" + e, isDirectory: &d) && d.boolValue
            }
            let lower = path.lowercased()
            if hasClassFolders || (!isDir.boolValue && [".csv", ".jsonl", ".ndjson"].contains(where: lower.hasSuffix)) {
                return (try DataOptions.fileList(path, flag: "--images"), true)
            }
            if isDir.boolValue {
                let files = entries.filter { e in
                    !e.hasPrefix(".") && ImageFileList.imageExtensions.contains { e.lowercased().hasSuffix($0) }
                }
                guard !files.isEmpty else { throw ValidationError("--images \(path): no image files (\(ImageFileList.imageExtensions.joined(separator: " ")))") }
                return try unlabelled(sorted(files).map { path + "/" + $0 })
            }
        }
        for p in images where !fm.fileExists(atPath: p) { throw ValidationError("--images \(p): no such file") }
        return try unlabelled(sorted(images))
    }

    /// pixel_values [N, 3, crop, crop] of every file of `files` under `recipe`: the evaluation path of
    /// ``ImageFileSource`` (decoded in parallel, no cache).
    func pixels(_ files: ImageFileList, recipe: Recipe) throws -> [Float] {
        let source = try ImageFileSource(list: files, recipe: recipe,
                                         decodeOptions: ImageDecodeOptions(applyEXIFOrientation: exifOrientation),
                                         cacheBytes: 0)
        var out = [Float](repeating: 0, count: files.count * recipe.floatsPerImage)
        try out.withUnsafeMutableBufferPointer { try source.load(Array(0..<files.count), epoch: nil, into: $0.baseAddress!) }
        return out
    }
}

/// The evaluation recipe of `--image-size` / `--resize-size`: CLIP's processor (shorter side → the crop unless
/// given) or DINOv2's (shorter side → crop · 256/224, as its processor's 256 → 224).
func imageRecipe(clip: Bool, imageSize: Int, resizeSize: Int?) throws -> Recipe {
    do {
        return clip ? try .clip(resize: resizeSize ?? imageSize, crop: imageSize)
            : try .dinov2(resize: resizeSize ?? Int((Double(imageSize) * 256 / 224).rounded()), crop: imageSize)
    } catch let e as PreprocessingError { throw ValidationError("--image-size / --resize-size: \(e)") }
}

struct Pixels: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode and preprocess image files as the model's Hugging Face image processor does; write `pixel_values` F32 [N, 3, H, W] (and `labels`) to safetensors.",
        discussion: """
        Decoding is PIL's Image.open(f).convert("RGB") (alpha dropped, palette expanded, gray replicated); the \
        dinov2 recipe is BitImageProcessor's (resize the shorter side with PIL bicubic, center crop, rescale 1/255, \
        ImageNet mean/std), the clip recipe CLIPImageProcessor's. Metadata `paths` lists the files in order (JSON).
        """)

    @OptionGroup var inputs: ImageInputs
    @Option(help: "Output safetensors (written atomically).")
    var out: String

    func run() throws {
        let (files, labelled) = try inputs.list()
        let paths = files.paths.indices.map(files.path(at:))
        try checkOutput(out, notOneOf: paths)
        let recipe = try inputs.makeRecipe(inputs.recipe ?? .dinov2)
        let t0 = Date()
        let px = try inputs.pixels(files, recipe: recipe)
        let s = Date().timeIntervalSince(t0)   // decode + preprocess (the write below is not timed)
        var w = SafeTensorsWriter()
        try w.add("pixel_values", floats: px, shape: [paths.count, 3, recipe.crop, recipe.crop])
        if labelled { try w.add("labels", int64s: files.labels.map(Int64.init), shape: [files.count]) }
        var meta = ["format": "pt", "source": "selora pixels", "recipe": "\(recipe)"]
        meta["paths"] = String(decoding: try JSONSerialization.data(withJSONObject: paths), as: UTF8.self)
        if labelled { meta["classes"] = String(decoding: try JSONSerialization.data(withJSONObject: files.classNames), as: UTF8.self) }
        try w.write(to: out, metadata: meta)
        print(String(format: "%d image(s) → %@ [%d, 3, %d, %d] (%@): decoded and preprocessed in %.2f s, %.0f images/s", paths.count, out, paths.count,
                     recipe.crop, recipe.crop, "\(recipe)", s, Double(paths.count) / max(s, 1e-9)))
    }
}
