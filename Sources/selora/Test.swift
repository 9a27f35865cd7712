import ArgumentParser
import Datasets
import Communication
import Foundation
import Training
import VisionTransformer

struct Test: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a trained head (and adapter) on the target test set, clean and corrupted.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Adapter directory written by `selora train` (omit for linear-probe or merged / full weights).")
    var adapter: String?
    @Option(help: "Head safetensors written by `selora train`.")
    var head: String
    @Option(help: "Seed of the corrupted copy of the test set.")
    var oodSeed: UInt64 = 1

    func run() throws {
        let log = runtime.start("selora.test")
        let vit = try model.loadModel(log: log)
        try data.check(model: vit.config)
        let adapters = try adapter.map { try LoRAAdapters.load(directory: $0, model: vit.config).0 }
        let h = try ClassifierHead.load(path: head, hidden: vit.config.featureDim)
        let testSet = try data.sources(model: vit.config, seed: 0, comm: SingleProcessCommunicator(), log: log).test
        guard h.classes == testSet.numClasses else {
            throw ValidationError("--head \(head) has \(h.classes) classes; the test set has \(testSet.numClasses)")
        }
        let ev = try Evaluator(model: vit, adapters: adapters, size: data.imageSize, batch: 32)
        let clean = try ev.accuracy(testSet, head: h)
        // The corrupted copy is made of in-memory gray sets only (IDX / CSV).
        let ood = try (testSet as? TransformedImageSet).map {
            try ev.accuracy(try ImageCorruption(seed: oodSeed).apply($0.data), head: h)
        }
        print(String(format: "test accuracy %.1f%%, corrupted %@ (%d images at %d px; active blocks %d/%d)",
                     100 * clean, ood.map { String(format: "%.1f%%", 100 * $0) } ?? "n/a (image files)", testSet.count,
                     data.imageSize, adapters?.activeCount ?? 0, adapters?.blocks.count ?? 0))
    }
}
