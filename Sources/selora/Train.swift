import ArgumentParser
import Datasets
import Foundation
import Logging
import Tensors
import Training
import VisionTransformer

/// Writes one JSON object per line (the metrics log), flushing each line.
final class JSONLWriter {
    let handle: FileHandle
    init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw ValidationError("cannot create \(path)")
        }
        handle = h
    }
    func write(_ record: [String: Any]) throws {
        var data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
        data.append(0x0A)
        handle.write(data)
    }
    deinit { try? handle.close() }
}

func stepRecord(_ s: StepStats) -> [String: Any] {
    ["step": s.step, "loss": s.loss, "lr": Double(s.lr), "active_blocks": s.activeBlocks, "grad_norm": s.gradNorm,
     "accuracy": Double(s.correct) / Double(max(1, s.count)), "compute_ms": 1000 * s.computeSeconds]
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune the backbone with one method on the target image set; write the adapter (PEFT layout), the head and per-step metrics.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var train: TrainOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Run directory: adapter/ (PEFT adapter_model.safetensors + adapter_config.json), head.safetensors, metrics.jsonl, summary.json.")
    var out: String

    @Option(help: "Start from this adapter directory (PEFT layout, e.g. a previous run's adapter/) instead of a fresh initialisation.")
    var initAdapter: String?

    @Option(help: "Log every N steps.")
    var logEvery = 10

    func validate() throws {
        guard logEvery > 0 else { throw ValidationError("--log-every must be positive, got \(logEvery)") }
    }

    func run() throws {
        let log = runtime.start("selora.train")
        let config = try train.config()
        try prepareRunDirectory(out)
        let vit = try model.loadModel(log: log)
        var adapters: LoRAAdapters?
        if let dir = initAdapter {
            guard config.method.usesAdapters else { throw ValidationError("--init-adapter needs --method selective or lora") }
            let a = try LoRAAdapters.load(directory: dir, model: vit.config, seed: config.seed).0
            guard a.config.rank == config.lora.rank, a.config.targets == config.lora.targets else {
                throw ValidationError("--init-adapter \(dir) has rank \(a.config.rank) and targets \(a.config.targets.map(\.rawValue)); "
                                      + "the run asks for rank \(config.lora.rank) and \(config.lora.targets.map(\.rawValue))")
            }
            adapters = a
        }
        let (trainSet, testSet) = try data.load()
        try checkBatch(config.batchSize, fits: trainSet.count)
        let metrics = try JSONLWriter(path: out + "/metrics.jsonl")
        let t0 = Date()
        var runConfig = config
        if let a = adapters { runConfig.lora = a.config }
        let trainer = try FineTune.run(model: vit, data: trainSet, size: data.imageSize, config: runConfig, adapters: adapters) { s in
            try? metrics.write(stepRecord(s))
            if s.step % logEvery == 0 || s.step == config.steps - 1 {
                let eta = Date().timeIntervalSince(t0) / Double(s.step + 1) * Double(config.steps - s.step - 1)
                log.info("step \(s.step + 1)/\(config.steps) loss \(String(format: "%.4f", s.loss)) lr \(String(format: "%.2e", s.lr)) active \(s.activeBlocks) ETA \(Int(eta)) s")
            }
        }
        let ev = try Evaluator(model: vit, adapters: trainer.adapters, size: data.imageSize, batch: min(32, config.batchSize))
        let accuracy = ev.accuracy(testSet, head: trainer.head)
        if let a = trainer.adapters {
            try a.save(directory: out + "/adapter", gated: config.method == .selective, baseModel: model.weights)
        }
        try trainer.head.save(path: out + "/head.safetensors")
        if config.method == .full { try vit.save(path: out + "/model.safetensors", metadata: ["source": "selora train --method full"]) }
        let summary: [String: Any] = [
            "method": config.method.rawValue, "test_accuracy": accuracy, "steps": config.steps,
            "active_blocks": trainer.adapters?.activeCount ?? 0, "total_blocks": trainer.adapters?.blocks.count ?? 0,
            "trainable_parameters": trainer.trainableParameterCount, "seconds": Date().timeIntervalSince(t0),
        ]
        let json = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
        try json.write(to: URL(fileURLWithPath: out + "/summary.json"), options: .atomic)
        print(String(format: "%@: test accuracy %.1f%% on %d images; active blocks %d/%d; run directory %@",
                     config.method.rawValue, 100 * accuracy, testSet.count, trainer.adapters?.activeCount ?? 0,
                     trainer.adapters?.blocks.count ?? 0, out))
    }
}

/// Creates the run directory, refusing one that already holds a finished run (nothing is overwritten).
func prepareRunDirectory(_ dir: String) throws {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    if fm.fileExists(atPath: dir, isDirectory: &isDir) {
        guard isDir.boolValue else { throw ValidationError("--out \(dir) exists and is not a directory") }
        for f in ["summary.json", "metrics.jsonl", "report.json"] where fm.fileExists(atPath: dir + "/" + f) {
            throw ValidationError("--out \(dir) already holds a run (\(f)): choose a new directory; nothing was overwritten")
        }
    }
    do { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
        throw ValidationError("--out \(dir): cannot create the directory (\(error.localizedDescription))")
    }
    guard fm.isWritableFile(atPath: dir) else { throw ValidationError("--out \(dir) is not writable") }
}

func checkBatch(_ batch: Int, fits count: Int) throws {
    guard batch <= count else {
        throw ValidationError("--batch-size \(batch) is larger than the \(count) training images (--train-count)")
    }
}
