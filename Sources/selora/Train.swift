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

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune the backbone with one method on the target image set; write the adapter (PEFT layout), the head and per-step metrics.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var train: TrainOptions
    @OptionGroup var parallel: ParallelOptions
    @OptionGroup var names: NamesOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Run directory: adapter/ (PEFT adapter_model.safetensors + adapter_config.json), head.safetensors, metrics.jsonl, summary.json, checkpoints/.")
    var out: String?

    @Option(help: "Continue the run in this directory from its newest checkpoint that loads (same configuration and base weights).")
    var resume: String?

    @Option(help: "Write a checkpoint every N steps (and always at the end); 0: only at the end.")
    var checkpointEvery = 50

    @Option(help: "Keep the newest K checkpoints.")
    var keepCheckpoints = 2

    @Option(help: "Start from this adapter directory (PEFT layout, e.g. a previous run's adapter/) instead of a fresh initialisation.")
    var initAdapter: String?

    @Option(help: "Start the head from this safetensors (`weight` [classes, features], `bias`), e.g. a CLIP zero-shot head from `selora text-embed --head`, instead of a fresh initialisation.")
    var initHead: String?

    @Option(help: "Log every N steps.")
    var logEvery = 10

    func validate() throws {
        guard logEvery > 0 else { throw ValidationError("--log-every must be positive, got \(logEvery)") }
        guard checkpointEvery >= 0 else { throw ValidationError("--checkpoint-every must be ≥ 0, got \(checkpointEvery)") }
        guard keepCheckpoints > 0 else { throw ValidationError("--keep-checkpoints must be positive, got \(keepCheckpoints)") }
        switch (out, resume) {
        case (nil, nil): throw ValidationError("--out DIR is required (or --resume DIR to continue a run)")
        case let (o?, r?) where URL(fileURLWithPath: o).standardizedFileURL != URL(fileURLWithPath: r).standardizedFileURL:
            throw ValidationError("--resume \(r) continues in its own directory; --out \(o) names another")
        default: break
        }
    }

    var runDirectory: String { resume ?? out ?? "" }

    func run() throws {
        let config = try train.config()
        try withCommunicator(runtime, "selora.train") { comm, log in
            let root = comm.isRoot
            let out = runDirectory
            if root && resume == nil { try prepareRunDirectory(out) }
            let vit = try model.loadModel(log: log)
            try data.check(model: vit.config)
            try config.validate(layers: vit.config.numLayers)   // --last-k against the model's layers
            let format = try names.format(for: vit.config, adapterTargets: config.method.usesAdapters ? config.lora.targets : [])
            var adapters: LoRAAdapters?
            if let dir = initAdapter {
                guard config.method.usesAdapters else { throw ValidationError("--init-adapter needs --method selective, lora or lora-last-k") }
                let a = try LoRAAdapters.load(directory: dir, model: vit.config, seed: config.seed).0
                guard a.config.rank == config.lora.rank, a.config.targets == config.lora.targets else {
                    throw ValidationError("--init-adapter \(dir) has rank \(a.config.rank) and targets \(a.config.targets.map(\.rawValue)); "
                                          + "the run asks for rank \(config.lora.rank) and \(config.lora.targets.map(\.rawValue))")
                }
                adapters = a
            }
            let sets = try data.sources(model: vit.config, seed: config.seed, comm: comm, log: log)
            let (trainSet, testSet) = (sets.train, sets.test)
            try checkBatch(config.batchSize, fits: trainSet.count)
            var runConfig = config
            if let a = adapters { runConfig.lora = a.config }
            let head = try initHead.map { try ClassifierHead.load(path: $0, hidden: vit.config.featureDim) }
            if let head, head.classes != trainSet.numClasses {
                throw ValidationError("--init-head \(initHead ?? ""): \(head.classes) classes; the training data has \(trainSet.numClasses)")
            }
            let dp = try DataParallelTrainer(comm: comm, model: vit, data: trainSet, config: runConfig, adapters: adapters,
                                             initialHead: head, checkEvery: parallel.checkEvery, prefetch: sets.prefetch,
                                             accumulate: parallel.accumulate)
            let stop = StopRequest()
            dp.stopRequest = stop
            let signals = stopOnSignals(stop, rank: comm.rank)
            defer { signals.forEach { $0.cancel() } }
            parallel.apply(to: dp)
            dp.runDirectory = out
            dp.checkpointEvery = checkpointEvery
            dp.keepCheckpoints = keepCheckpoints
            dp.baseWeightsPath = model.weights
            var kept: [Data] = []
            if let dir = resume {
                let r = try dp.resume(from: dir)
                for s in r.skipped { log.warning("skipped an unreadable checkpoint: \(s)") }
                log.info("resumed from \(r.path) at step \(dp.trainer.step)")
                // Keep the metrics of the steps before the checkpoint; the rest are logged again.
                if root, let text = try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8) {
                    for line in text.split(separator: "\n") {
                        // Steps before the checkpoint, and the resume records up to it.
                        if let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                           let st = obj["step"] as? Int, st < dp.trainer.step || (obj["event"] != nil && st <= dp.trainer.step) {
                            kept.append(Data(line.utf8))
                        }
                    }
                }
            }
            let metrics = root ? try JSONLWriter(path: out + "/metrics.jsonl") : nil
            for line in kept { metrics?.handle.write(line + Data([0x0A])) }
            if resume != nil {
                // A restart is a line of the metrics: where it resumed, on how many ranks, and why (launch/train's
                // supervisor says why in SELORA_RESTART_REASON).
                try metrics?.write(["event": "resume", "step": dp.trainer.step, "world_size": comm.size,
                                    "accumulate": parallel.accumulate,
                                    "reason": ProcessInfo.processInfo.environment["SELORA_RESTART_REASON"] ?? "--resume"])
            }
            log.info("\(config.method.rawValue): \(config.steps) steps, global batch \(config.batchSize) over \(comm.size) rank(s), \(data.imageSize) px")
            let t0 = Date()
            let firstStep = dp.trainer.step
            var wasSettled = dp.trainer.gates?.settled ?? false
            try dp.run { s in
                try metrics?.write(s.record)
                if s.settled && !wasSettled {
                    wasSettled = true
                    let through = dp.trainer.backwardThrough ?? 0
                    log.info("gates settled at step \(s.step + 1): \(s.activeBlocks) active blocks frozen, scores frozen; the backward stops at layer \(through)")
                }
                if s.step % logEvery == 0 || s.step == config.steps - 1 {
                    let eta = Date().timeIntervalSince(t0) / Double(s.step + 1 - firstStep) * Double(config.steps - s.step - 1)
                    let loader = s.loadMilliseconds > 0 ? Double(dp.trainer.batch) / s.loadMilliseconds * 1000 : 0
                    log.info("step \(s.step + 1)/\(config.steps) loss \(String(format: "%.4f", s.loss)) lr \(String(format: "%.2e", s.lr)) active \(s.activeBlocks) reduced \(s.bytesReduced) B; step \(String(format: "%.1f", Double(dp.trainer.batch) / max(1e-9, s.computeMilliseconds + s.commMilliseconds) * 1000)) img/s, loader \(String(format: "%.0f", loader)) img/s (waited \(String(format: "%.0f", s.loadExposedMilliseconds)) ms); ETA \(Int(eta)) s")
                }
            }
            try parallel.dumpState(dp)
            let trainer = dp.trainer
            let ev = try Evaluator(model: vit, adapters: trainer.adapters, size: data.imageSize, batch: min(32, trainer.batch))
            let accuracy = try ev.accuracy(testSet, head: trainer.head, comm: comm)
            guard root else { return }
            if let a = trainer.adapters {
                try a.save(directory: out + "/adapter", gated: config.method == .selective, baseModel: model.weights, format: format)
            }
            try trainer.head.save(path: out + "/head.safetensors")
            if config.method == .full { try vit.save(path: out + "/model.safetensors", format: format, metadata: ["source": "selora train --method full"]) }
            let summary: [String: Any] = [
                "method": config.method.rawValue, "test_accuracy": accuracy, "steps": config.steps, "ranks": comm.size,
                "active_blocks": trainer.adapters?.activeCount ?? 0, "total_blocks": trainer.adapters?.blocks.count ?? 0,
                "trainable_parameters": trainer.trainableParameterCount, "seconds": Date().timeIntervalSince(t0),
                "skipped_images": sets.skipped,
            ]
            let json = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
            try json.write(to: URL(fileURLWithPath: out + "/summary.json"), options: .atomic)
            print(String(format: "%@: test accuracy %.1f%% on %d images; active blocks %d/%d; %d rank(s); run directory %@",
                         config.method.rawValue, 100 * accuracy, testSet.count, trainer.adapters?.activeCount ?? 0,
                         trainer.adapters?.blocks.count ?? 0, comm.size, out))
        }
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
