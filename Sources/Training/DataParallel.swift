import Communication
import Datasets
import Foundation
import Tensors
import VisionTransformer

/// Ranks disagree on something they must share; the message names the ranks and what differs.
public struct DesyncError: Error, CustomStringConvertible {
    public let description: String
}

/// 64-bit FNV-1a-style hash over raw bytes: a cheap fingerprint for "do all ranks hold the same thing" checks.
public struct Fingerprint {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    public init() {}
    /// Mixes 8 bytes at a time (the FNV-1a step over 64-bit words), then the tail byte by byte.
    public mutating func add(_ p: UnsafeRawBufferPointer) {
        let words = p.count / 8
        var v = value
        for i in 0..<words { v = (v ^ p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) &* 0x0000_0100_0000_01B3 }
        for i in (8 * words)..<p.count { v = (v ^ UInt64(p[i])) &* 0x0000_0100_0000_01B3 }
        value = v
    }
    public mutating func add<T>(_ values: [T]) { values.withUnsafeBytes { add($0) } }
    public mutating func add(_ f: FloatBuffer) { add(UnsafeRawBufferPointer(f.buffer)) }
    public mutating func add(_ s: String) { add(Array(s.utf8)) }
}

/// A request to stop at the next step boundary (preemption): set from any thread — a signal handler's — and read
/// by the step. Setting it twice is the caller's business (the command line exits at once on a second signal).
public final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    public init() {}
    public func request() { lock.lock(); flag = true; lock.unlock() }
    public var isRequested: Bool { lock.lock(); defer { lock.unlock() }; return flag }
}

/// The run stopped on request after `step` steps, every rank at the same step; `checkpointed`: rank 0 wrote the
/// checkpoint of that step (a run directory was set). The command line exits with status 75 (EX_TEMPFAIL: try
/// again), which launch/train and launch/slurm treat as "requeue and resume", not as a failure.
public struct PreemptedError: Error, CustomStringConvertible {
    public let step: Int
    public let checkpointed: Bool
    public static let exitStatus: Int32 = 75
    public var description: String {
        "stopped on request (a preemption signal) after step \(step)"
            + (checkpointed ? "; its checkpoint is written: resume with --resume" : "")
    }
}

/// What to do with a step whose loss or gradients are NaN or Inf.
public enum NonFinitePolicy: String, CaseIterable, Codable, Sendable {
    /// Stop the run with an error (the last checkpoint stays as it was).
    case stop
    /// Skip the update (the step still counts) and go on, as mixed-precision loss scalers do.
    case skip
}

public struct NonFiniteError: Error, CustomStringConvertible {
    public let step: Int
    public var description: String {
        "non-finite loss or gradient at step \(step) (seen on every rank after the all-reduce): stopping; "
            + "the last checkpoint is unchanged (--nonfinite skip skips such steps instead)"
    }
}

/// What one data-parallel step did, summed over ranks where it makes sense.
public struct ParallelStepStats: Sendable {
    public var step: Int
    public var loss: Double
    public var accuracy: Double
    public var lr: Float
    public var activeBlocks: Int
    public var gradNorm: Double
    public var bytesReduced: Int
    public var computeMilliseconds: Double
    public var commMilliseconds: Double
    public var exposedCommMilliseconds: Double
    /// The part of ``exposedCommMilliseconds`` this rank waited for the slowest rank to finish its backward; the
    /// rest is transfer (``GradientSync/waitSlowestSeconds``).
    public var waitSlowestMilliseconds = 0.0
    /// Gate of every block in this step, in block order (empty without adapters).
    public var activeMask: [Bool]
    /// The update was skipped (non-finite loss or gradient, `--nonfinite skip`).
    public var skipped = false
    /// Milliseconds the loader spent producing this rank's batch (on its own thread when prefetching), and the part
    /// of it the step waited for.
    public var loadMilliseconds = 0.0
    public var loadExposedMilliseconds = 0.0
    /// The gates had settled in this step (mask and scores frozen; see ``Gates/settledStep``).
    public var settled = false
    /// Some rank asked to stop in this step (a preemption signal): the run checkpoints and stops after it.
    public var stopRequested = false

    /// The metrics-log record (JSON has no NaN: non-finite numbers are written as null).
    public var record: [String: Any] {
        func num(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
        return ["step": step, "loss": num(loss), "accuracy": num(accuracy), "lr": Double(lr), "active_blocks": activeBlocks,
         "grad_norm": num(gradNorm), "bytes_reduced": bytesReduced, "compute_ms": computeMilliseconds,
         "comm_ms": commMilliseconds, "exposed_comm_ms": exposedCommMilliseconds,
         "wait_slowest_ms": waitSlowestMilliseconds, "active_mask": String(activeMask.map { $0 ? "1" : "0" }),
         "skipped": skipped, "load_ms": loadMilliseconds, "load_exposed_ms": loadExposedMilliseconds,
         "settled": settled, "stop_requested": stopRequested]
    }
}

/// Deliberate faults for tests of the failure paths (a desynchronized rank, a NaN loss, a dying rank). Production
/// code never sets one; `selora`'s hidden `--test-*` options and the test targets do.
public protocol TrainingFaults: AnyObject {
    /// Called at the start of step `step` on rank `rank`, before anything of the step runs.
    func willStart(step: Int, rank: Int, trainer: Trainer)
    /// The loss sum this rank reports for step `step` (the real one unless the fault replaces it).
    func reportedLossSum(_ lossSum: Double, step: Int, rank: Int) -> Double
}

/// Data-parallel fine-tuning: every rank holds the whole model, trains on its slice of every global batch, and
/// all-reduces only the gradients that train (``GradientSync`` over ``TrainableTensors``). Ranks check at start that
/// they agree on the configuration, the data and the base weights, and every `checkEvery` steps on a fingerprint of
/// the gates and of every trainable tensor; any disagreement is a ``DesyncError`` naming the ranks.
public final class DataParallelTrainer {
    public let comm: Communicator
    public let trainer: Trainer
    /// The all-reduce over ``Trainer/trainable``; rebuilt when the trainer rebuilds its table (the gates settled).
    public private(set) var sync: GradientSync
    /// The training images and this rank's batches of them.
    public let data: ImageSource
    public let loader: BatchLoader
    public let checkEvery: Int
    /// Micro-batches per step on each rank (see ``init(comm:model:data:config:adapters:initialHead:checkEvery:prefetch:accumulate:)``).
    public let accumulate: Int
    /// The labels of one micro-batch (reused) when accumulating.
    var microLabels: [Int32]
    /// Set (from any thread: a signal handler's) to stop at the next step boundary: every rank learns of it in the
    /// same step (``GradientSync/stopRequested``), rank 0 writes a checkpoint and ``run(onStep:)`` throws
    /// ``PreemptedError``.
    public var stopRequest: StopRequest?
    /// Faults to inject (tests only).
    public var faults: TrainingFaults?
    public var nonFinitePolicy: NonFinitePolicy = .stop
    /// Checkpoints: every `checkpointEvery` steps (0: only at the end) into `runDirectory`, by rank 0.
    public var checkpointEvery = 0
    public var keepCheckpoints = 2
    public var runDirectory: String?
    public var baseWeightsPath = ""

    /// Trains on `data` (its images are the model's input size). `prefetch`: load step n + 1 on a background
    /// thread during step n (``BatchLoader``) — for sources that decode files.
    /// `accumulate`: micro-batches per step on each rank (gradient accumulation): the global batch stays
    /// `config.batchSize` — each rank runs `accumulate` forward/backward passes of batchSize / (ranks · accumulate)
    /// images with the gates fixed, and reduces once. It changes no result beyond float summation order, so it is
    /// not part of the checkpointed configuration (a run may resume with another value on another world size).
    public init(comm: Communicator, model: ViTModel, data: ImageSource, config: TrainingConfig,
                adapters: LoRAAdapters? = nil, initialHead: ClassifierHead? = nil, checkEvery: Int = 10,
                prefetch: Bool = false, accumulate: Int = 1) throws {
        guard accumulate >= 1 else { throw ConfigError("accumulate", "the micro-batches per step must be ≥ 1, got \(accumulate)") }
        guard config.batchSize % (comm.size * accumulate) == 0 else {
            throw ConfigError(accumulate > 1 ? ["batchSize", "accumulate"] : ["batchSize"],
                              "the global batch \(config.batchSize) must divide by the \(comm.size) ranks"
                              + (accumulate > 1 ? " × \(accumulate) micro-batches" : "")
                              + " (e.g. \(max(1, config.batchSize / (comm.size * accumulate)) * comm.size * accumulate))")
        }
        guard checkEvery > 0 else { throw ConfigError("checkEvery", "the agreement check interval must be positive, got \(checkEvery)") }
        guard data.channels == model.config.channels else {
            throw ConfigError("data", "the images have \(data.channels) channels; the model reads \(model.config.channels)")
        }
        self.comm = comm
        self.data = data
        self.checkEvery = checkEvery
        self.accumulate = accumulate
        let micro = config.batchSize / (comm.size * accumulate)
        microLabels = [Int32](repeating: 0, count: micro)
        trainer = try Trainer(model: model, classes: data.numClasses, config: config, batch: micro,
                              height: data.height, width: data.width, adapters: adapters, initialHead: initialHead)
        sync = try GradientSync(comm: comm, tensors: trainer.trainable)
        loader = try BatchLoader(source: data,
                                 sampler: EpochSampler(count: data.count, batchSize: config.batchSize, seed: config.seed),
                                 rank: comm.rank, worldSize: comm.size, totalSteps: config.steps, prefetch: prefetch)
        try checkAgreementAtStart()
    }

    /// Trains on an in-memory gray set, resized to `size` × `size` with the model's pixel statistics.
    public convenience init(comm: Communicator, model: ViTModel, data: ImageDataset, size: Int, config: TrainingConfig,
                            adapters: LoRAAdapters? = nil, initialHead: ClassifierHead? = nil, checkEvery: Int = 10) throws {
        try self.init(comm: comm, model: model,
                      data: TransformedImageSet(data, transform: ImageTransform(model: model.config, size: size)),
                      config: config, adapters: adapters, initialHead: initialHead, checkEvery: checkEvery)
    }

    /// Config, data and base weights must be identical on every rank.
    func checkAgreementAtStart() throws {
        var config = Fingerprint(), dataset = Fingerprint(), weights = Fingerprint()
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        config.add(Array((try? encoder.encode(trainer.config)) ?? Data()))
        config.add("\(data.height)×\(data.width) \(comm.size)")
        data.identify { dataset.add($0) }
        weights.add(trainer.model.params.store.storage)
        if let a = trainer.adapters { weights.add(a.params.storage); weights.add(a.gates.scores) }
        let all = try comm.allGather([config.value, dataset.value, weights.value])
        for (i, what) in ["training configuration", "training data (sizes, labels, pixels or files)", "base weights / initial adapter"].enumerated() {
            let differ = all.indices.filter { all[$0][i] != all[0][i] }
            if !differ.isEmpty {
                throw DesyncError(description: "ranks disagree on the \(what): rank(s) \(differ.map(String.init).joined(separator: ", ")) "
                                  + "differ from rank 0 (fingerprints \(all.map { String($0[i], radix: 16) }.joined(separator: " ")))")
            }
        }
    }

    /// Fingerprint of what must stay replicated: the gates and every trainable tensor (``stateBytes()``).
    public func stateFingerprint() -> UInt64 {
        var f = Fingerprint()
        forEachReplicatedRegion { f.add($0) }
        return f.value
    }

    /// The replicated state, region by region: the gate mask (one byte per block), then every tensor of
    /// ``TrainableTensors`` in table order (head, adapters of every block, scores, the backbone in full).
    func forEachReplicatedRegion(_ body: (UnsafeRawBufferPointer) -> Void) {
        if let g = trainer.gates { g.mask.withUnsafeBytes { body($0) } }
        for t in trainer.trainable.tensors { body(UnsafeRawBufferPointer(t.param)) }
    }

    /// Checks that every rank holds the same gates, scores and parameters.
    public func checkAgreement(step: Int) throws {
        let all = try comm.allGather([stateFingerprint()])
        let differ = all.indices.filter { all[$0][0] != all[0][0] }
        if !differ.isEmpty {
            throw DesyncError(description: "ranks disagree on the active set, scores or parameters after step \(step): "
                + "rank(s) \(differ.map(String.init).joined(separator: ", ")) differ from rank 0 "
                + "(fingerprints \(all.map { String($0[0], radix: 16) }.joined(separator: " ")))")
        }
    }

    /// One global step, top to bottom: this rank's shard → gates → forward and loss → backward with the bucketed
    /// all-reduce started per layer → wait and average → update (or skip a non-finite step) → agreement check.
    public func step() throws -> ParallelStepStats {
        let n = trainer.step
        faults?.willStart(step: n, rank: comm.rank, trainer: trainer)
        let t0 = Date()
        // This rank's shard of the global batch (prefetched during the previous step when the loader does).
        let (pixels, labels) = try loader.batch(step: n)
        // Gates, forward, loss; the statistics and the head's gradients go out first.
        trainer.beginStep()
        if sync.tensors !== trainer.trainable { sync = try GradientSync(comm: comm, tensors: trainer.trainable) }
        var (lossSum, correct) = (0.0, 0)
        if accumulate == 1 {
            (lossSum, correct) = trainer.forwardAndLoss(pixels: pixels, labels: labels)
        } else {
            // Gradient accumulation: micro-batches 0 … K−2 forward and backward locally (gradients add up with +=),
            // the last one's statistics, head and backward feed the all-reduce.
            let micro = trainer.batch, floats = micro * data.floatsPerImage
            for j in 0..<accumulate {
                for i in 0..<micro { microLabels[i] = labels[j * micro + i] }
                let (l, c) = trainer.forwardAndLoss(pixels: pixels + j * floats, labels: microLabels)
                lossSum += l; correct += c
                if j < accumulate - 1 { trainer.backward() }
            }
        }
        sync.begin(lossSum: faults?.reportedLossSum(lossSum, step: n, rank: comm.rank) ?? lossSum,
                   correct: correct, count: labels.count, stopRequested: stopRequest?.isRequested ?? false)
        // Backward; each layer's bucket starts as soon as its gradients are final.
        trainer.backward(afterBlock: sync.layerDone)
        try sync.finish(microBatches: accumulate)
        // Update, unless the reduced step is not finite.
        let activeBlocks = trainer.adapters?.activeCount ?? 0
        let mask = trainer.gates?.mask ?? []
        var lr: Float = 0, norm = Double.nan, skipped = false
        if sync.nonFinite {
            guard nonFinitePolicy == .skip else { throw NonFiniteError(step: n) }
            trainer.skipUpdate()
            skipped = true
        } else {
            (lr, norm) = trainer.update()
        }
        let total = Date().timeIntervalSince(t0)
        if (n + 1) % checkEvery == 0 { try checkAgreement(step: n) }
        let s = sync.statistics
        return ParallelStepStats(step: n, loss: s.lossSum / Double(max(1, s.count)),
                                 accuracy: Double(s.correct) / Double(max(1, s.count)), lr: lr,
                                 activeBlocks: activeBlocks, gradNorm: norm,
                                 bytesReduced: sync.bytesReduced, computeMilliseconds: 1000 * (total - sync.commSeconds),
                                 commMilliseconds: 1000 * sync.commSeconds,
                                 exposedCommMilliseconds: 1000 * sync.exposedSeconds,
                                 waitSlowestMilliseconds: 1000 * sync.waitSlowestSeconds, activeMask: mask, skipped: skipped,
                                 loadMilliseconds: 1000 * loader.loadSeconds,
                                 loadExposedMilliseconds: 1000 * loader.exposedSeconds,
                                 settled: trainer.gates?.settled ?? false, stopRequested: sync.stopRequested)
    }

    /// Rank 0 writes a checkpoint of the state after `trainer.step` steps; the other ranks wait for it, so a
    /// failure to write stops every rank together.
    public func checkpoint() throws {
        guard let dir = runDirectory else { return }
        var failed: [Double] = [0]
        var failure: Error?
        if comm.isRoot {
            do { try Checkpoint.save(trainer, runDirectory: dir, baseWeights: baseWeightsPath, keep: keepCheckpoints) } catch {
                failure = error
                failed[0] = 1
            }
        }
        try comm.allSum(&failed)
        if let failure { throw failure }
        if failed[0] > 0 { throw CheckpointError(path: dir, message: "rank 0 could not write the checkpoint of step \(trainer.step)") }
    }

    /// Continues from the newest checkpoint of `dir` that loads (every rank reads it), then checks that all ranks
    /// agree on the state. Returns the file used and the ones skipped as unreadable.
    public func resume(from dir: String) throws -> (path: String, skipped: [String]) {
        let r = try Checkpoint.resumeNewest(trainer, runDirectory: dir)
        try checkAgreement(step: trainer.step - 1)
        return r
    }

    /// The replicated state as raw bytes (``forEachReplicatedRegion(_:)``): equal on every rank, bit for bit.
    public func stateBytes() -> [UInt8] {
        var out: [UInt8] = []
        forEachReplicatedRegion { out += $0 }
        return out
    }

    /// Runs `steps` steps (default: to the configured total), then sets the gates from the final scores.
    public func run(onStep: (ParallelStepStats) throws -> Void = { _ in }) throws {
        while trainer.step < trainer.config.steps {
            let s = try step()
            try onStep(s)
            let done = trainer.step
            if s.stopRequested {
                try checkpoint()
                throw PreemptedError(step: done, checkpointed: runDirectory != nil)
            }
            if checkpointEvery > 0, done % checkpointEvery == 0, done < trainer.config.steps { try checkpoint() }
        }
        if runDirectory != nil { try checkpoint() }
        trainer.updateGates()
        try checkAgreement(step: trainer.step - 1)
    }
}

