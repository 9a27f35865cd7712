import Communication
import Glibc
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
    /// Gate of every block in this step, "1" active / "0" inactive, in block order (empty without adapters).
    public var activeMask: String
    /// The update was skipped (non-finite loss or gradient, `--nonfinite skip`).
    public var skipped = false

    /// The metrics-log record (JSON has no NaN: non-finite numbers are written as null).
    public var record: [String: Any] {
        func num(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
        return ["step": step, "loss": num(loss), "accuracy": num(accuracy), "lr": Double(lr), "active_blocks": activeBlocks,
         "grad_norm": num(gradNorm), "bytes_reduced": bytesReduced, "compute_ms": computeMilliseconds,
         "comm_ms": commMilliseconds, "exposed_comm_ms": exposedCommMilliseconds, "active_mask": activeMask, "skipped": skipped]
    }
}

/// Data-parallel fine-tuning: every rank holds the whole model, trains on its slice of every global batch, and
/// all-reduces only the gradients the update reads (``GradientSync``). Ranks check at start that they agree on
/// the configuration, the data and the base weights, and every `checkEvery` steps on a fingerprint of the gates,
/// scores, adapters and head; any disagreement is a ``DesyncError`` naming the ranks.
public final class DataParallelTrainer {
    public let comm: Communicator
    public let trainer: Trainer
    public let sync: GradientSync
    public let data: ImageDataset
    public let sampler: EpochSampler
    public let transform: ImageTransform
    public let checkEvery: Int
    let pixels: FloatBuffer
    /// Test hook: on this (rank, step), nudge one score before the step (a deliberately desynchronized rank).
    public var perturb: (rank: Int, step: Int)?
    /// Test hook: on this (rank, step), report a NaN loss.
    public var poison: (rank: Int, step: Int)?
    /// Test hook: on this (rank, step), the process kills itself with SIGKILL (a dying rank).
    public var killSelf: (rank: Int, step: Int)?
    public var nonFinitePolicy: NonFinitePolicy = .stop
    /// Checkpoints: every `checkpointEvery` steps (0: only at the end) into `runDirectory`, by rank 0.
    public var checkpointEvery = 0
    public var keepCheckpoints = 2
    public var runDirectory: String?
    public var baseWeightsPath = ""

    public init(comm: Communicator, model: ViTModel, data: ImageDataset, size: Int, config: TrainingConfig,
                adapters: LoRAAdapters? = nil, initialHead: ClassifierHead? = nil, checkEvery: Int = 10) throws {
        guard config.batchSize % comm.size == 0 else {
            throw ConfigError(message: "--batch-size \(config.batchSize) is the global batch and must divide by the "
                              + "\(comm.size) ranks (e.g. \(max(1, config.batchSize / comm.size) * comm.size))")
        }
        guard checkEvery > 0 else { throw ConfigError(message: "--check-every must be positive, got \(checkEvery)") }
        self.comm = comm
        self.data = data
        self.checkEvery = checkEvery
        trainer = try Trainer(model: model, classes: data.numClasses, config: config, batch: config.batchSize / comm.size,
                              height: size, width: size, adapters: adapters, initialHead: initialHead)
        sync = try GradientSync(comm: comm, trainer: trainer)
        sampler = try EpochSampler(count: data.count, batchSize: config.batchSize, seed: config.seed)
        transform = ImageTransform(model: trainer.model.config, size: size)
        pixels = try FloatBuffer(count: trainer.batch * transform.floatsPerImage)
        try checkAgreementAtStart(size: size)
    }

    /// Config, data and base weights must be identical on every rank.
    func checkAgreementAtStart(size: Int) throws {
        var config = Fingerprint(), dataset = Fingerprint(), weights = Fingerprint()
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        config.add(Array((try? encoder.encode(trainer.config)) ?? Data()))
        config.add("\(size) \(comm.size)")
        dataset.add([data.count, data.height, data.width, data.numClasses])
        dataset.add(data.labels)
        dataset.add(data.pixels)
        weights.add(trainer.model.params.store.storage)
        if let a = trainer.adapters { weights.add(a.params.storage); weights.add(a.scores) }
        let all = try comm.allGather([config.value, dataset.value, weights.value])
        for (i, what) in ["training configuration", "dataset (size, labels, pixels)", "base weights / initial adapter"].enumerated() {
            let differ = all.indices.filter { all[$0][i] != all[0][i] }
            if !differ.isEmpty {
                throw DesyncError(description: "ranks disagree on the \(what): rank(s) \(differ.map(String.init).joined(separator: ", ")) "
                                  + "differ from rank 0 (fingerprints \(all.map { String($0[i], radix: 16) }.joined(separator: " ")))")
            }
        }
    }

    /// Fingerprint of what must stay replicated: gates, scores, adapters, head (and the backbone in full).
    public func stateFingerprint() -> UInt64 {
        var f = Fingerprint()
        if let a = trainer.adapters {
            f.add(a.active.map { $0 ? UInt8(1) : 0 })
            f.add(a.scores)
            f.add(a.params.storage)
        }
        f.add(trainer.head.params.storage)
        if trainer.config.method == .full { f.add(trainer.model.params.store.storage) }
        return f.value
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

    /// One global step: this rank's shard forward/backward, the bucketed all-reduce, the update.
    public func step() throws -> ParallelStepStats {
        let n = trainer.step
        if let p = perturb, p.rank == comm.rank, p.step == n, let a = trainer.adapters {
            a.scores[0] += 1e-3
        }
        if let k = killSelf, k.rank == comm.rank, k.step == n { Glibc.kill(getpid(), SIGKILL) }
        if let p = poison, p.rank == comm.rank, p.step == n { sync.poisonNextStep = true }
        let t0 = Date()
        let global = try sampler.batch(at: sampler.position(ofStep: n))
        let mine = try sampler.shard(global, rank: comm.rank, worldSize: comm.size)
        transform.apply(data, indices: mine, into: pixels.base)
        try sync.computeAndReduce(pixels: pixels.base, labels: mine.map { data.labels[$0] })
        let mask = String(trainer.adapters?.active.map { $0 ? "1" : "0" }.joined() ?? "")
        let activeBlocks = trainer.adapters?.activeCount ?? 0
        var lr: Float = 0, norm = Double.nan, skipped = false
        if sync.nonFinite {
            guard nonFinitePolicy == .skip else { throw NonFiniteError(step: n) }
            trainer.skipUpdate()
            skipped = true
        } else {
            (lr, norm) = trainer.applyUpdate()
        }
        let total = Date().timeIntervalSince(t0)
        if (n + 1) % checkEvery == 0 { try checkAgreement(step: n) }
        let s = sync.statistics
        return ParallelStepStats(step: n, loss: s.lossSum / Double(max(1, s.count)),
                                 accuracy: Double(s.correct) / Double(max(1, s.count)), lr: lr,
                                 activeBlocks: activeBlocks, gradNorm: norm,
                                 bytesReduced: sync.bytesReduced, computeMilliseconds: 1000 * (total - sync.commSeconds),
                                 commMilliseconds: 1000 * sync.commSeconds,
                                 exposedCommMilliseconds: 1000 * sync.exposedSeconds, activeMask: mask, skipped: skipped)
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

    /// The replicated state as raw bytes (gates, scores, adapters, head): equal on every rank, bit for bit.
    public func stateBytes() -> [UInt8] {
        var out: [UInt8] = []
        if let a = trainer.adapters {
            out += a.active.map { $0 ? UInt8(1) : 0 }
            out += Array(UnsafeRawBufferPointer(a.scores.buffer))
            out += Array(UnsafeRawBufferPointer(a.params.storage.buffer))
        }
        out += Array(UnsafeRawBufferPointer(trainer.head.params.storage.buffer))
        return out
    }

    /// Runs `steps` steps (default: to the configured total), then sets the gates from the final scores.
    public func run(onStep: (ParallelStepStats) throws -> Void = { _ in }) throws {
        while trainer.step < trainer.config.steps {
            try onStep(try step())
            let done = trainer.step
            if checkpointEvery > 0, done % checkpointEvery == 0, done < trainer.config.steps { try checkpoint() }
        }
        if runDirectory != nil { try checkpoint() }
        trainer.updateGates()
        try checkAgreement(step: trainer.step - 1)
    }
}
