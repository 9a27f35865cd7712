import ArgumentParser
import Datasets
import Foundation
import Images
import Tensors
import Training
import VisionTransformer

/// The source tasks of the forgetting protocol (`selora eval --sources`): named image sets whose pretrained
/// knowledge is measured after each fine-tune. Each is subsampled (stratified, seeded) so that evaluating it after
/// every run stays cheap: 1000 training images make a kNN memory and probe fit of ~100 per class on 10-class sets,
/// and 500 test images give accuracies with a binomial standard error of at most 2.2 points.
struct SourcesOptions: ParsableArguments {
    @Option(help: "Source tasks, comma-separated NAME=PATH: a directory with train/ and test/ ImageFolders (or train.csv / test.csv / .jsonl manifests), read with the model's evaluation recipe, no augmentation; or a .csv(.gz) of gray 28×28 images (784 pixels then the label) split by --source-test-per-class.")
    var sources = "animal-mnist=data/animal-mnist,mnist-5k=data/mnist_5k.csv.gz"
    @Option(help: "Deprecated: one CSV(.gz) source, named after its file (replaces --sources).")
    var sourceCsv: String?
    @Option(help: "CSV sources: test images per class (the rest is the training side).")
    var sourceTestPerClass = 50
    @Option(help: "Training images kept per source (stratified, seeded subsample; all when fewer).")
    var sourceTrainCount = 1000
    @Option(help: "Test images kept per source (stratified, seeded subsample; all when fewer).")
    var sourceTestCount = 500
    @Option(help: "Seed of the CSV split and of the subsamples.")
    var sourceSeed: UInt64 = 0

    struct Entry { let name: String; let path: String; let isDirectory: Bool }

    func validate() throws {
        guard sourceTestPerClass > 0 else { throw ValidationError("--source-test-per-class must be positive, got \(sourceTestPerClass)") }
        guard sourceTrainCount > 0 else { throw ValidationError("--source-train-count must be positive, got \(sourceTrainCount)") }
        guard sourceTestCount > 0 else { throw ValidationError("--source-test-count must be positive, got \(sourceTestCount)") }
        _ = try entries()
    }

    /// The parsed `--sources` (or the `--source-csv` alias), each path checked.
    func entries() throws -> [Entry] {
        let raw: [(String, String)]
        if let sourceCsv {
            var name = (sourceCsv as NSString).lastPathComponent
            for ext in [".gz", ".csv"] where name.hasSuffix(ext) { name = String(name.dropLast(ext.count)) }
            raw = [(name.isEmpty ? "source" : name, sourceCsv)]
        } else {
            raw = try sources.split(separator: ",", omittingEmptySubsequences: false).map { item in
                let t = item.trimmingCharacters(in: .whitespaces)
                guard let eq = t.firstIndex(of: "=") else {
                    throw ValidationError("--sources entry `\(t)`: expected NAME=PATH (e.g. mnist-5k=data/mnist_5k.csv.gz)")
                }
                let name = t[..<eq].trimmingCharacters(in: .whitespaces), path = t[t.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty, !path.isEmpty, !name.contains(" ") else {
                    throw ValidationError("--sources entry `\(t)`: expected NAME=PATH with a non-empty name (no spaces) and path")
                }
                return (name, path)
            }
        }
        guard !raw.isEmpty else { throw ValidationError("--sources is empty: expected NAME=PATH[,NAME=PATH…]") }
        var seen = Set<String>()
        return try raw.map { name, path in
            let flag = sourceCsv != nil ? "--source-csv \(path)" : "--sources \(name)=\(path)"
            guard seen.insert(name).inserted else { throw ValidationError("--sources: the name `\(name)` appears twice") }
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                throw ValidationError("\(flag): no such file or directory (launch/fetch-data writes data/mnist_5k.csv.gz and data/animal-mnist)")
            }
            if isDir.boolValue {
                for side in ["train", "test"] where Self.sidePath(path, side) == nil {
                    throw ValidationError("\(flag): expected \(side)/ (an ImageFolder) or \(side).csv / \(side).jsonl in the directory")
                }
            } else if !(path.hasSuffix(".csv") || path.hasSuffix(".csv.gz")) {
                throw ValidationError("\(flag): expected a directory with train/ and test/, or a .csv / .csv.gz file")
            }
            return Entry(name: name, path: path, isDirectory: isDir.boolValue)
        }
    }

    /// `root/side` (a folder) or `root/side.csv` / `root/side.jsonl` (a manifest), whichever exists first.
    static func sidePath(_ root: String, _ side: String) -> String? {
        ["\(root)/\(side)", "\(root)/\(side).csv", "\(root)/\(side).jsonl"].first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Every source, subsampled, as the model reads it: files through `recipe` (evaluation transform, no
    /// augmentation), CSV sets through the model's gray ``ImageTransform`` at `imageSize`.
    func load(model: ViTConfig, imageSize: Int, recipe: Recipe) throws -> [ForgettingSource] {
        try entries().map { e in
            if e.isDirectory {
                guard let trainPath = Self.sidePath(e.path, "train"), let testPath = Self.sidePath(e.path, "test") else {
                    throw ValidationError("--sources \(e.name)=\(e.path): expected train/ and test/ in the directory")
                }
                let train = try DataOptions.fileList(trainPath, flag: "--sources \(e.name)")
                let test = try DataOptions.fileList(testPath, flag: "--sources \(e.name)")
                try test.checkSameClasses(as: train)
                func make(_ l: ImageFileList, _ count: Int) throws -> ImageSource {
                    let keep = stratifiedSubsample(labels: l.labels, numClasses: l.numClasses, count: count, seed: sourceSeed)
                    let sub = try ImageFileList(root: l.root, paths: keep.map { l.paths[$0] }, labels: keep.map { l.labels[$0] },
                                                classNames: l.classNames, source: l.source)
                    return try ImageFileSource(list: sub, recipe: recipe, augmentation: nil, seed: 0,
                                               cacheBytes: 256 << 20, threads: Parallel.workers)
                }
                return ForgettingSource(name: e.name, train: try make(train, sourceTrainCount), test: try make(test, sourceTestCount))
            }
            let split = try SourceOptions.csvSplit(e.path, testPerClass: sourceTestPerClass, seed: sourceSeed)
            let t = ImageTransform(model: model, size: imageSize)
            func make(_ d: ImageDataset, _ count: Int) throws -> ImageSource {
                let keep = stratifiedSubsample(labels: d.labels, numClasses: d.numClasses, count: count, seed: sourceSeed)
                return TransformedImageSet(try d.subset(keep), transform: t)
            }
            return ForgettingSource(name: e.name, train: try make(split.train, sourceTrainCount), test: try make(split.test, sourceTestCount))
        }
    }
}
