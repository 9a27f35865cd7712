import ArgumentParser
import Communication
import Datasets
import Foundation
import Images
import Logging
import Tensors
import Training
import VisionTransformer

/// Image-set options shared by commands that read a labelled image set: IDX files (optionally gzipped; default
/// Fashion-MNIST from Debian), or image FILES — an ImageFolder directory or a CSV / JSONL manifest of JPEG / PNG
/// photos (`--train-data`, `--test-data`), preprocessed as the model's Hugging Face image processor does.
struct DataOptions: ParsableArguments {
    static let fashion = "/usr/share/datasets/fashion-mnist"

    @Option(help: "Training images (IDX, .gz allowed). Default: Fashion-MNIST from Debian's dataset-fashion-mnist.")
    var trainImages = "\(fashion)/train-images-idx3-ubyte.gz"
    @Option(help: "Training labels (IDX).")
    var trainLabels = "\(fashion)/train-labels-idx1-ubyte.gz"
    @Option(help: "Test images (IDX).")
    var testImages = "\(fashion)/t10k-images-idx3-ubyte.gz"
    @Option(help: "Test labels (IDX).")
    var testLabels = "\(fashion)/t10k-labels-idx1-ubyte.gz"
    @Option(help: "Use the first N training images (IDX / CSV sets).")
    var trainCount = 1000
    @Option(help: "Use the first N test images (IDX / CSV sets).")
    var testCount = 500
    @Option(help: "Model input side in pixels (a multiple of the model's patch size: 14 for DINOv2 ViT-S/14); for image files, the center crop.")
    var imageSize = 224

    @Option(help: "Training images as files instead of IDX: an ImageFolder directory (ROOT/<class>/<image>, classes sorted by name as torchvision does) or a manifest, .csv (`path,label`) or .jsonl ({\"path\": …, \"label\": …}), paths relative to it.")
    var trainData: String?
    @Option(help: "Test images as files (same forms as --train-data; the class list must be the training set's).")
    var testData: String?
    @Option(help: "Image files: resize the shorter side to this before the center crop. Default: --image-size × 256/224 for DINOv2 (its processor's 256 → 224), --image-size for CLIP.")
    var resizeSize: Int?
    @Option(help: "Image files: training augmentation, random-resized-crop (torchvision's RandomResizedCrop(scale 0.08–1, ratio 3/4–4/3) + horizontal flip, drawn from seed, epoch and image) or none (the evaluation transform).")
    var augment: Augmentation = .randomResizedCrop
    @Option(help: "Image files: MiB of decoded images each rank keeps in memory so later epochs skip decoding (0: decode every time).")
    var cacheMb = 1024
    @Flag(help: "Image files: skip images that do not decode (checked once at start: a warning per file, a count in the summary) instead of stopping with an error naming the file.")
    var skipBadImages = false
    @Flag(help: "Image files: apply the EXIF orientation (PIL's ImageOps.exif_transpose). Default: ignored, as PIL's open/convert, torchvision and Hugging Face's processors do.")
    var exifOrientation = false

    enum Augmentation: String, ExpressibleByArgument, CaseIterable {
        case randomResizedCrop = "random-resized-crop"
        case none
    }

    func validate() throws {
        guard trainCount > 0 else { throw ValidationError("--train-count must be positive, got \(trainCount)") }
        guard testCount > 0 else { throw ValidationError("--test-count must be positive, got \(testCount)") }
        guard imageSize > 0 else { throw ValidationError("--image-size must be positive, got \(imageSize)") }
        if let r = resizeSize, r < imageSize {
            throw ValidationError("--resize-size \(r) must be at least --image-size \(imageSize) (the center crop)")
        }
        guard cacheMb >= 0 else { throw ValidationError("--cache-mb must be ≥ 0, got \(cacheMb)") }
        if (trainData == nil) != (testData == nil) {
            throw ValidationError("--train-data and --test-data go together (image files for both sets)")
        }
    }

    /// Whether the sets are image files (`--train-data` / `--test-data`).
    var filesGiven: Bool { trainData != nil }

    /// The image size against the loaded model's patch size (the model is known only after parsing).
    func check(model c: ViTConfig) throws {
        guard imageSize % c.patchSize == 0 else {
            let p = c.patchSize
            throw ValidationError("--image-size \(imageSize): expected a positive multiple of the model's patch size \(p) "
                + "(e.g. \(4 * p), \(8 * p), \(16 * p))")
        }
    }

    /// The IDX sets (in memory, gray).
    func load() throws -> (train: ImageDataset, test: ImageDataset) {
        guard !filesGiven else {
            throw ValidationError("--train-data / --test-data (image files) are read by train, test, pixels and embed; "
                + "this command reads IDX / CSV sets")
        }
        for (flag, path) in [("--train-images", trainImages), ("--train-labels", trainLabels),
                             ("--test-images", testImages), ("--test-labels", testLabels)]
        where !FileManager.default.fileExists(atPath: path) {
            throw ValidationError("\(flag) \(path): no such file (launch/setup installs Debian's dataset-fashion-mnist)")
        }
        let train = try ImageDataset.loadIDX(images: trainImages, labels: trainLabels, limit: trainCount)
        let test = try ImageDataset.loadIDX(images: testImages, labels: testLabels, limit: testCount)
        guard train.count == trainCount, test.count == testCount else {
            throw ValidationError("asked for \(trainCount) training and \(testCount) test images; the files hold \(train.count) and \(test.count)")
        }
        return (train, test)
    }

    /// The evaluation recipe of image files for `model`: CLIP's for a CLIP image tower, DINOv2's otherwise.
    func recipe(for model: ViTConfig) throws -> Recipe {
        try imageRecipe(clip: model.projectionDim != nil, imageSize: imageSize, resizeSize: resizeSize)
    }

    /// The training and test sets as the trainer and evaluator read them, and whether to prefetch (image files).
    /// With `--skip-bad-images` every file is decoded once at start, each rank checking a slice, and the files that
    /// fail on any rank are dropped on every rank (`skipped` counts them).
    func sources(model: ViTConfig, seed: UInt64, comm: Communicator, log: Logger) throws
        -> (train: ImageSource, test: ImageSource, prefetch: Bool, skipped: Int) {
        guard let trainData, let testData else {
            let (train, test) = try load()
            let t = ImageTransform(model: model, size: imageSize)
            return (TransformedImageSet(train, transform: t), TransformedImageSet(test, transform: t), false, 0)
        }
        var trainList = try Self.fileList(trainData, flag: "--train-data")
        var testList = try Self.fileList(testData, flag: "--test-data")
        try testList.checkSameClasses(as: trainList)
        let recipe = try recipe(for: model)
        let augmentation = augment == .none ? nil
            : try RandomResizedCrop(size: imageSize, normalization: recipe.normalization)
        let options = ImageDecodeOptions(applyEXIFOrientation: exifOrientation)
        func make(_ list: ImageFileList, _ aug: RandomResizedCrop?) throws -> ImageFileSource {
            try ImageFileSource(list: list, recipe: recipe, augmentation: aug, seed: seed, decodeOptions: options,
                                cacheBytes: cacheMb << 20, threads: Parallel.workers)
        }
        var skipped = 0
        if skipBadImages {
            trainList = try dropBad(trainList, make(trainList, augmentation), comm: comm, log: log, skipped: &skipped)
            testList = try dropBad(testList, make(testList, nil), comm: comm, log: log, skipped: &skipped)
        }
        let train = try make(trainList, augmentation), test = try make(testList, nil)
        log.info("training data: \(train.summary) (\(trainData)); test data: \(test.count) images (\(testData))")
        return (train, test, true, skipped)
    }

    /// `list` without the files that do not decode (each rank decodes a slice; the verdicts are summed).
    func dropBad(_ list: ImageFileList, _ source: ImageFileSource, comm: Communicator, log: Logger,
                 skipped: inout Int) throws -> ImageFileList {
        let lo = list.count * comm.rank / comm.size, hi = list.count * (comm.rank + 1) / comm.size
        var bad = [Double](repeating: 0, count: list.count)
        for (i, error) in source.check(lo..<hi) {
            bad[i] = 1
            log.warning("skipping an image that does not decode: \(error)")
        }
        try comm.allSum(&bad)
        let keep = list.paths.indices.filter { bad[$0] == 0 }
        skipped += list.count - keep.count
        guard !keep.isEmpty else { throw ValidationError("\(list.source): no image decodes") }
        return try ImageFileList(root: list.root, paths: keep.map { list.paths[$0] }, labels: keep.map { list.labels[$0] },
                                 classNames: list.classNames, source: list.source)
    }

    /// An ImageFolder directory or a CSV / JSONL manifest.
    static func fileList(_ path: String, flag: String) throws -> ImageFileList {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ValidationError("\(flag) \(path): no such file or directory (an ImageFolder directory or a .csv / .jsonl manifest)")
        }
        return isDir.boolValue ? try ImageFileList.imageFolder(root: path) : try ImageFileList.manifest(at: path)
    }
}
