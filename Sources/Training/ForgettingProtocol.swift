import Communication
import Datasets
import Foundation
import Tensors
import VisionTransformer

/// A source task of the forgetting protocol: a labelled image set (already subsampled) read in the model's input
/// form, whose pretrained knowledge the protocol measures after each fine-tune.
public struct ForgettingSource {
    /// Short name; the metric keys are `retention.<name>.probe`, `retention.<name>.knn`, `drift.<name>`.
    public let name: String
    public let train: ImageSource
    public let test: ImageSource
    public init(name: String, train: ImageSource, test: ImageSource) {
        self.name = name; self.train = train; self.test = test
    }
}

/// The DINO analog of the paper's forgetting experiment, over several source tasks:
///  1. ``prepare(log:)``, once, on the pretrained backbone, per source: fit a linear probe on frozen features of its
///     training images (``LinearProbe/fitSelectingWeightDecay(x:labels:features:classes:)``) and keep it frozen; its
///     test accuracy, the kNN accuracy (``KNNClassifier``: memory = the training images' features) and the test
///     images' class tokens are the baselines;
///  2. ``run(config:onStep:)`` per (method, seed): fine-tune on the target task, then report, as a flat metric
///     dictionary (fractions for accuracies):
///     - `target_accuracy`, `ood_accuracy`: the trained head on the target test set and its corrupted copy;
///     - `retention.<source>.probe`: the frozen probe on the fine-tuned features of the source test images;
///     - `retention.<source>.knn`: kNN with the fine-tuned features of the source training images as memory
///       (needs no probe, so it also sees what a refitted classifier could still find);
///     - `drift.<source>`: mean 1 − cos between the test images' pretrained and fine-tuned class tokens;
///     - `active_blocks`, `total_blocks`, `active_fraction` (0 blocks: absent), `trainable_parameters`,
///       `train_seconds`, `bytes_reduced` (summed over steps, this rank's all-reduce), `final_loss`,
///       `settled_at_step` (1-based; absent when the gates never settled).
/// Every run starts from the same weights (`loadModel` is called afresh). Under MPI every step is data-parallel
/// and every evaluation sliced over the ranks (``Evaluator``); the kNN runs on every rank on the gathered features.
public final class ForgettingProtocol {
    public let comm: Communicator
    public let evalBatch: Int
    public let prefetch: Bool
    let loadModel: () throws -> ViTModel
    let sources: [ForgettingSource]
    let targetTrain: (UInt64) throws -> ImageSource
    let targetTest: ImageSource
    let targetOOD: ImageSource
    var probes: [LinearProbe] = []
    var pretrainedCLS: [[Float]] = []
    /// Pretrained values: `retention.<source>.probe` and `retention.<source>.knn`.
    public private(set) var baselines: [String: Double] = [:]

    /// `targetTrain(seed)`: the training set for a run of that seed (a source that augments draws from its seed;
    /// others may return the same object every time). Every source must be at the target's input size.
    public init(comm: Communicator = SingleProcessCommunicator(), loadModel: @escaping () throws -> ViTModel,
                sources: [ForgettingSource], targetTrain: @escaping (UInt64) throws -> ImageSource,
                targetTest: ImageSource, targetOOD: ImageSource, evalBatch: Int = 32, prefetch: Bool = false) {
        self.comm = comm; self.loadModel = loadModel; self.sources = sources; self.targetTrain = targetTrain
        self.targetTest = targetTest; self.targetOOD = targetOOD; self.evalBatch = evalBatch; self.prefetch = prefetch
    }

    var size: Int { targetTest.height }

    /// Step 1: the frozen probes, the kNN baselines and the pretrained class tokens.
    public func prepare(log: (String) -> Void = { _ in }) throws {
        let model = try loadModel()
        let ev = try Evaluator(model: model, adapters: nil, size: size, batch: evalBatch)
        probes = []; pretrainedCLS = []; baselines = [:]
        for s in sources {
            let train = try ev.probeAndFeatures(s.train, comm: comm), test = try ev.probeAndFeatures(s.test, comm: comm)
            let fit = LinearProbe.fitSelectingWeightDecay(x: train.probe, labels: s.train.labels,
                                                          features: 2 * model.config.hiddenSize, classes: s.train.numClasses)
            probes.append(fit.probe)
            pretrainedCLS.append(test.features)
            let probeAcc = fit.probe.accuracy(test.probe, labels: s.test.labels)
            let knn = KNNClassifier(memory: train.features, labels: s.train.labels, dim: model.config.featureDim,
                                    classes: s.train.numClasses).accuracy(test.features, labels: s.test.labels)
            baselines["retention.\(s.name).probe"] = probeAcc
            baselines["retention.\(s.name).knn"] = knn
            log(String(format: "source %@ (%d train / %d test) on pretrained features: probe %.1f%% (weight decay %g), kNN %.1f%%",
                       s.name, s.train.count, s.test.count, 100 * probeAcc, fit.weightDecay, 100 * knn))
        }
    }

    /// Step 2 for one (method, seed): `config.seed` seeds the initialisation, the data order and the augmentation.
    public func run(config: TrainingConfig, onStep: (ParallelStepStats) throws -> Void = { _ in }) throws -> [String: Double] {
        guard probes.count == sources.count else { throw ViTError.badInput("ForgettingProtocol.run before prepare()") }
        let model = try loadModel()
        let t0 = Date()
        var last: ParallelStepStats?
        var settledAt: Int?
        var bytes = 0
        let dp = try DataParallelTrainer(comm: comm, model: model, data: try targetTrain(config.seed), config: config,
                                         prefetch: prefetch)
        try dp.run { s in
            last = s
            bytes += s.bytesReduced
            if s.settled && settledAt == nil { settledAt = s.step + 1 }
            try onStep(s)
        }
        let trainer = dp.trainer
        var m: [String: Double] = ["train_seconds": Date().timeIntervalSince(t0)]
        let ev = try Evaluator(model: model, adapters: trainer.adapters, size: size, batch: evalBatch)
        m["target_accuracy"] = try ev.accuracy(targetTest, head: trainer.head, comm: comm)
        m["ood_accuracy"] = try ev.accuracy(targetOOD, head: trainer.head, comm: comm)
        for (k, s) in sources.enumerated() {
            let memory = try ev.features(s.train, comm: comm), test = try ev.probeAndFeatures(s.test, comm: comm)
            m["retention.\(s.name).probe"] = probes[k].accuracy(test.probe, labels: s.test.labels)
            m["retention.\(s.name).knn"] = KNNClassifier(memory: memory, labels: s.train.labels, dim: model.config.featureDim,
                                                        classes: s.train.numClasses).accuracy(test.features, labels: s.test.labels)
            m["drift.\(s.name)"] = meanCosineDrift(pretrainedCLS[k], test.features, dim: model.config.featureDim)
        }
        m.merge(runMetrics(adapters: trainer.adapters, trainable: trainer.trainableParameterCount, last: last,
                           bytesReduced: bytes, settledAt: settledAt)) { $1 }
        return m
    }
}

/// The metrics every protocol reports about the run itself (see ``ForgettingProtocol``'s list).
func runMetrics(adapters: LoRAAdapters?, trainable: Int, last: ParallelStepStats?, bytesReduced: Int,
                settledAt: Int?) -> [String: Double] {
    let active = adapters?.activeCount ?? 0, total = adapters?.blocks.count ?? 0
    var m: [String: Double] = ["active_blocks": Double(active), "total_blocks": Double(total),
                               "trainable_parameters": Double(trainable), "bytes_reduced": Double(bytesReduced),
                               "final_loss": last?.loss ?? .nan]
    if total > 0 { m["active_fraction"] = Double(active) / Double(total) }
    if let settledAt { m["settled_at_step"] = Double(settledAt) }
    return m
}
