import Communication
import Datasets
import Foundation
import VisionTransformer

/// A held-out image set with its zero-shot head (from the CLIP text tower, computed once and frozen).
public struct ZeroShotTask {
    public let name: String
    public let data: ImageDataset
    public let head: ClassifierHead
    public init(name: String, data: ImageDataset, head: ClassifierHead) {
        self.name = name; self.data = data; self.head = head
    }
}

/// One row of the CLIP retention table.
public struct ZeroShotResult: Codable, Sendable {
    public struct HeldOut: Codable, Sendable {
        public var name: String
        /// Zero-shot accuracy of the pretrained image tower.
        public var before: Double
        /// Zero-shot accuracy (the same frozen text head) of the fine-tuned image tower.
        public var after: Double
    }
    public var method: String
    /// Accuracy of the fine-tuned head (initialised as the zero-shot head) on the target test set.
    public var targetAccuracy: Double
    /// The target's zero-shot accuracy before fine-tuning.
    public var targetZeroShot: Double
    /// Fine-tuned head on the corrupted target test set.
    public var oodAccuracy: Double
    public var heldOut: [HeldOut]
    public var activeBlocks: Int
    public var totalBlocks: Int
    public var trainableParameters: Int
    public var trainSeconds: Double
    public var finalLoss: Double
    /// Bytes this rank all-reduced, summed over the steps.
    public var bytesReduced = 0
    /// The step (1-based) at which the gates settled, nil when they did not.
    public var settledAtStep: Int?

    /// Key of held-out task `k`'s zero-shot accuracy: `retention.zero-shot` for the first,
    /// `retention.zero-shot.<name>` for any further one.
    public static func retentionKey(_ k: Int, name: String) -> String { k == 0 ? "retention.zero-shot" : "retention.zero-shot.\(name)" }

    /// The flat metrics of report format 2: `target_accuracy`, `ood_accuracy`, `retention.zero-shot` (held-out
    /// zero-shot accuracy after fine-tuning), and the run metrics of ``ForgettingProtocol``.
    public var metrics: [String: Double] {
        var m: [String: Double] = ["target_accuracy": targetAccuracy, "ood_accuracy": oodAccuracy, "train_seconds": trainSeconds,
                                   "active_blocks": Double(activeBlocks), "total_blocks": Double(totalBlocks),
                                   "trainable_parameters": Double(trainableParameters), "bytes_reduced": Double(bytesReduced),
                                   "final_loss": finalLoss]
        if totalBlocks > 0 { m["active_fraction"] = Double(activeBlocks) / Double(totalBlocks) }
        if let settledAtStep { m["settled_at_step"] = Double(settledAtStep) }
        for (k, h) in heldOut.enumerated() { m[Self.retentionKey(k, name: h.name)] = h.after }
        return m
    }
}

/// CLIP's forgetting experiment: zero-shot accuracy on held-out image sets before and after fine-tuning the image
/// tower on a target task. Each method starts from the same weights (`loadVision` is called afresh) with the
/// target's zero-shot head as its initial head (as WiSE-FT and FLYP start), trains data-parallel over `comm`, and
/// is then scored on the target (its trained head), the corrupted target, and every held-out task through that
/// task's frozen zero-shot head — how much of the zero-shot ability survives.
public final class ZeroShotProtocol {
    public let comm: Communicator
    public let size: Int
    public let evalBatch: Int
    let loadVision: () throws -> ViTModel
    let targetHead: ClassifierHead
    let target: (train: ImageDataset, test: ImageDataset)
    let targetOOD: ImageDataset
    let heldOut: [ZeroShotTask]
    public private(set) var targetZeroShot = 0.0
    public private(set) var oodZeroShot = 0.0
    public private(set) var heldOutBefore: [Double] = []

    public init(comm: Communicator = SingleProcessCommunicator(), loadVision: @escaping () throws -> ViTModel,
                targetHead: ClassifierHead, target: (train: ImageDataset, test: ImageDataset), targetOOD: ImageDataset,
                heldOut: [ZeroShotTask], size: Int, evalBatch: Int = 32) {
        self.comm = comm; self.loadVision = loadVision; self.targetHead = targetHead; self.target = target
        self.targetOOD = targetOOD; self.heldOut = heldOut; self.size = size; self.evalBatch = evalBatch
    }

    /// The pretrained tower's zero-shot accuracies (target, corrupted target, held-out tasks).
    public func prepare(log: (String) -> Void = { _ in }) throws {
        let model = try loadVision()
        try check(model)
        let ev = try Evaluator(model: model, adapters: nil, size: size, batch: evalBatch)
        targetZeroShot = try ev.accuracy(target.test, head: targetHead, comm: comm)
        oodZeroShot = try ev.accuracy(targetOOD, head: targetHead, comm: comm)
        heldOutBefore = try heldOut.map { try ev.accuracy($0.data, head: $0.head, comm: comm) }
        log(String(format: "zero-shot before fine-tuning: target %.1f%%, corrupted target %.1f%%", 100 * targetZeroShot, 100 * oodZeroShot)
            + zip(heldOut, heldOutBefore).map { String(format: ", %@ %.1f%%", $0.name, 100 * $1) }.joined())
    }

    func check(_ model: ViTModel) throws {
        guard model.config.projectionDim != nil else {
            throw ViTError.invalidConfig("zero-shot retention needs a CLIP image tower (a model with a projection); got \(model.config)")
        }
        for h in [targetHead] + heldOut.map(\.head) where h.hidden != model.config.featureDim {
            throw ViTError.invalidConfig("a zero-shot head has width \(h.hidden); the image tower's embedding is \(model.config.featureDim)")
        }
    }

    public func run(config: TrainingConfig, onStep: (ParallelStepStats) throws -> Void = { _ in }) throws -> ZeroShotResult {
        guard heldOutBefore.count == heldOut.count else { throw ViTError.badInput("ZeroShotProtocol.run before prepare()") }
        let model = try loadVision()
        try check(model)
        let head = try targetHead.copy()   // the protocol's zero-shot head stays as it was for the next method
        let t0 = Date()
        var last: ParallelStepStats?
        var bytes = 0, settledAt: Int?
        let dp = try DataParallelTrainer(comm: comm, model: model, data: target.train, size: size, config: config,
                                         initialHead: head)
        try dp.run { s in
            last = s
            bytes += s.bytesReduced
            if s.settled && settledAt == nil { settledAt = s.step + 1 }
            try onStep(s)
        }
        let seconds = Date().timeIntervalSince(t0)
        let trainer = dp.trainer
        let ev = try Evaluator(model: model, adapters: trainer.adapters, size: size, batch: evalBatch)
        let after = try heldOut.map { try ev.accuracy($0.data, head: $0.head, comm: comm) }
        let a = trainer.adapters
        return ZeroShotResult(
            method: config.method.rawValue, targetAccuracy: try ev.accuracy(target.test, head: trainer.head, comm: comm),
            targetZeroShot: targetZeroShot, oodAccuracy: try ev.accuracy(targetOOD, head: trainer.head, comm: comm),
            heldOut: zip(heldOut, zip(heldOutBefore, after)).map { ZeroShotResult.HeldOut(name: $0.name, before: $1.0, after: $1.1) },
            activeBlocks: a?.activeCount ?? 0, totalBlocks: a?.blocks.count ?? 0,
            trainableParameters: trainer.trainableParameterCount, trainSeconds: seconds, finalLoss: last?.loss ?? .nan,
            bytesReduced: bytes, settledAtStep: settledAt)
    }

    /// Pretrained values under the keys of ``ZeroShotResult/metrics``: the zero-shot head on the target and its
    /// corrupted copy, and each held-out task's zero-shot accuracy.
    public var baselines: [String: Double] {
        var b = ["target_accuracy": targetZeroShot, "ood_accuracy": oodZeroShot]
        for (k, (t, v)) in zip(heldOut, heldOutBefore).enumerated() { b[ZeroShotResult.retentionKey(k, name: t.name)] = v }
        return b
    }
}
