import Communication
import Datasets
import Foundation
import Tensors
import VisionTransformer

/// One row of the forgetting table.
public struct ForgettingResult: Codable, Sendable {
    public var method: String
    /// Head accuracy on the target task's test set.
    public var targetAccuracy: Double
    /// Accuracy of the source-task probe — fitted once on the pretrained features and then frozen — on the
    /// fine-tuned backbone's features of the source test set: how much of what the backbone knew survives.
    public var sourceRetention: Double
    /// The same probe on the pretrained features (the ceiling retention is measured against).
    public var sourceBaseline: Double
    /// Mean 1 − cos between the source test set's class tokens before and after fine-tuning.
    public var cosineDrift: Double
    /// Head accuracy on the corrupted target test set (rotation, contrast, noise).
    public var oodAccuracy: Double
    public var activeBlocks: Int
    public var totalBlocks: Int
    public var trainableParameters: Int
    public var trainSeconds: Double
    public var finalLoss: Double
    /// The step (1-based) at which the gates settled, nil when they did not.
    public var settledAtStep: Int?
}

/// The DINO analog of the paper's forgetting experiment:
///  1. on the pretrained backbone, fit a linear probe for source task A on frozen features and keep it frozen;
///  2. fine-tune on target task B with a method;
///  3. report B accuracy, B accuracy under corruption (OOD), the frozen A-probe's accuracy on the fine-tuned
///     features (retention), the drift of A's class tokens, active blocks and trainable parameters.
/// Every method starts from the same weights (`loadModel` is called afresh for each) and sees the same data.
/// Under MPI every step is data-parallel and every evaluation sliced over the ranks.
public final class ForgettingProtocol {
    public let comm: Communicator
    public let size: Int
    public let evalBatch: Int
    let loadModel: () throws -> ViTModel
    let source: (train: ImageDataset, test: ImageDataset)
    let target: (train: ImageDataset, test: ImageDataset)
    let targetOOD: ImageDataset
    var sourceProbe: LinearProbe?
    var sourceCLS: [Float] = []
    public private(set) var sourceBaseline = 0.0

    public init(comm: Communicator = SingleProcessCommunicator(), loadModel: @escaping () throws -> ViTModel,
                source: (train: ImageDataset, test: ImageDataset), target: (train: ImageDataset, test: ImageDataset),
                targetOOD: ImageDataset, size: Int, evalBatch: Int = 32) {
        self.comm = comm; self.loadModel = loadModel; self.source = source; self.target = target; self.targetOOD = targetOOD
        self.size = size; self.evalBatch = evalBatch
    }

    /// Step 1: the frozen source probe and the pretrained class tokens.
    public func prepare(log: (String) -> Void = { _ in }) throws {
        let model = try loadModel()
        let ev = try Evaluator(model: model, adapters: nil, size: size, batch: evalBatch)
        let trainX = try ev.probeFeatures(source.train, comm: comm), testX = try ev.probeFeatures(source.test, comm: comm)
        let fit = LinearProbe.fitSelectingWeightDecay(x: trainX, labels: source.train.labels, features: 2 * model.config.hiddenSize,
                                                      classes: source.train.numClasses)
        sourceProbe = fit.probe
        sourceBaseline = fit.probe.accuracy(testX, labels: source.test.labels)
        sourceCLS = try ev.features(source.test, comm: comm)
        log(String(format: "source probe on pretrained features: %.1f%% (weight decay %g)", 100 * sourceBaseline, fit.weightDecay))
    }

    /// Steps 2–3 for one method.
    public func run(config: TrainingConfig, onStep: (ParallelStepStats) throws -> Void = { _ in }) throws -> ForgettingResult {
        guard let probe = sourceProbe else { throw ViTError.badInput("ForgettingProtocol.run before prepare()") }
        let model = try loadModel()
        let t0 = Date()
        var last: ParallelStepStats?
        var settledAt: Int?
        let dp = try DataParallelTrainer(comm: comm, model: model, data: target.train, size: size, config: config)
        try dp.run { s in
            last = s
            if s.settled && settledAt == nil { settledAt = s.step + 1 }
            try onStep(s)
        }
        let trainer = dp.trainer
        let seconds = Date().timeIntervalSince(t0)
        let trainable = trainer.trainableParameterCount
        let ev = try Evaluator(model: model, adapters: trainer.adapters, size: size, batch: evalBatch)
        let targetAcc = try ev.accuracy(target.test, head: trainer.head, comm: comm)
        let oodAcc = try ev.accuracy(targetOOD, head: trainer.head, comm: comm)
        let retention = probe.accuracy(try ev.probeFeatures(source.test, comm: comm), labels: source.test.labels)
        let drift = meanCosineDrift(sourceCLS, try ev.features(source.test, comm: comm), dim: model.config.featureDim)
        let a = trainer.adapters
        return ForgettingResult(method: config.method.rawValue, targetAccuracy: targetAcc, sourceRetention: retention,
                                sourceBaseline: sourceBaseline, cosineDrift: drift, oodAccuracy: oodAcc,
                                activeBlocks: a?.activeCount ?? 0, totalBlocks: a?.blocks.count ?? 0,
                                trainableParameters: trainable, trainSeconds: seconds, finalLoss: last?.loss ?? .nan,
                                settledAtStep: settledAt)
    }
}
