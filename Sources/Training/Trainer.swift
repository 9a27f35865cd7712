import Foundation
import Tensors
import VisionTransformer

/// What one optimizer step did.
public struct StepStats: Sendable {
    public var step: Int
    public var loss: Double
    public var correct: Int
    public var count: Int
    public var lr: Float
    public var activeBlocks: Int
    public var gradNorm: Double
    public var computeSeconds: Double
}

/// One training loop for every ``Method``: the backbone (with gated LoRA when the method has adapters), the head
/// and its cross-entropy, the backward, the score penalty, clipping, AdamW.
///
/// A step is four phases, called in this order (``trainStep(pixels:labels:)`` on one process,
/// ``DataParallelTrainer/step()`` with the all-reduce between 3 and 4):
///
///     1. beginStep()        the gates for this step (``Gates/update(step:)``); every gradient zeroed
///     2. forwardAndLoss()   backbone → feature → head → mean cross-entropy; the head's gradients
///     3. backward()         feature → blocks L−1 … 0; `afterBlock(l)` once layer l's gradients are final
///     4. update()           penalty gradient on the scores, global-norm clipping, AdamW on what trains
///
/// What trains, and in which order its gradients are reduced, is ``trainable`` (one table). Buffers: the trainer
/// owns the activations, the gradients, the logits and their gradients; the model owns its parameters, the
/// adapters theirs and the gates.
public final class Trainer {
    public let config: TrainingConfig
    public let model: ViTModel
    public let head: ClassifierHead
    public let adapters: LoRAAdapters?
    /// The activations of a step; rebuilt once when the gates settle, saving only from the lowest active layer up
    /// (`lora-last-k`: built so from the start, saving from layer L − k).
    public private(set) var acts: ViTActivations
    /// The LoRA state of a step; a selective run rebuilds it once when the gates settle, holding only the active
    /// blocks (``settle(_:)``).
    public private(set) var run: LoRARun?
    /// Every tensor this run trains, with its gradient and optimizer state; rebuilt with ``run`` when the gates
    /// settle (the inactive blocks' gradients and AdamW moments are given back).
    public private(set) var trainable: TrainableTensors
    /// The tensors a checkpoint holds, in table order: the table as built at the start (a settled run's table is
    /// smaller, but its checkpoints keep this layout so that any checkpoint of a run resumes onto a fresh trainer).
    let checkpointTensors: [(name: String, param: UnsafeMutableBufferPointer<Float>)]
    let baseGrads: ViTTensors?
    let headGrads: TensorStore
    let logits: FloatBuffer, dLogits: FloatBuffer, dFeatures: FloatBuffer, dOut: FloatBuffer
    public let schedule: LearningRateSchedule
    /// Fingerprint of the backbone as the run started (checkpoints must resume onto the same base weights).
    public let initialWeightsFingerprint: String
    /// Optimizer steps taken so far.
    public internal(set) var step = 0

    /// `batch` is the per-rank batch (the global batch / world size).
    /// `initialHead` (e.g. a CLIP zero-shot head) is trained from its values; without it the head starts at
    /// PyTorch's `nn.Linear` initialisation from the seed.
    public init(model: ViTModel, classes: Int, config: TrainingConfig, batch: Int, height: Int, width: Int,
                adapters: LoRAAdapters? = nil, initialHead: ClassifierHead? = nil) throws {
        try config.validate(layers: model.config.numLayers)
        guard classes > 1 else { throw ViTError.badInput("need at least 2 classes, got \(classes)") }
        self.config = config
        self.model = model
        head = try initialHead ?? ClassifierHead(classes: classes, hidden: model.config.featureDim, seed: config.seed)
        guard head.classes == classes, head.hidden == model.config.featureDim else {
            throw ViTError.invalidConfig("the initial head is [\(head.classes), \(head.hidden)]; this run needs "
                + "[\(classes), \(model.config.featureDim)] (classes × the backbone's feature width)")
        }
        headGrads = try head.makeStore()
        // lora-last-k: the settled step from step 0 — only layers L − k … L − 1 have blocks, so the backward stops
        // at L − k and the activations are saved from there (what a selective run switches to once it settles).
        let fixedFrom = config.method == .loraLastK ? model.config.numLayers - config.lastK : nil
        acts = try ViTActivations(config: model.config, batch: batch, height: height, width: width,
                                  training: config.method != .linearProbe, savedFrom: fixedFrom ?? 0)
        backwardThrough = fixedFrom
        if config.method.usesAdapters {
            let a = try adapters ?? LoRAAdapters(model: model.config, config: config.lora, seed: config.seed)
            if a.config != config.lora && adapters != nil {
                throw ViTError.invalidConfig("the adapter's LoRA settings (rank \(a.config.rank), alpha \(a.config.alpha), "
                    + "targets \(a.config.targets.map(\.rawValue))) differ from the run's")
            }
            self.adapters = a
            switch config.method {
            case .selective: a.gates.rule = .learned(config.gateSchedule)
            case .loraLastK:
                // A fixed mask and no score gradients: the scores neither learn nor enter the table.
                a.gates.rule = .fixed
                a.gates.set(a.blocks.map { $0.layer >= fixedFrom! })
            default: a.gates.rule = .alwaysOn; a.gates.setAll(true)
            }
            // lora-last-k holds state (saved h, gradients) for its own blocks only.
            run = try LoRARun(adapters: a, activations: acts, gradients: true, scoreGradients: config.method == .selective,
                              blocks: config.method == .loraLastK ? a.gates.mask : nil)
        } else {
            self.adapters = nil
            run = nil
        }
        baseGrads = config.method == .full ? try model.makeGradients() : nil
        // lora-last-k: the run does not hold the blocks below L − k, so they are not in the table (nor in the
        // all-reduce buffer, the optimizer state or the checkpoint).
        trainable = try TrainableTensors(head: head, headGrads: headGrads, adapters: self.adapters, run: run,
                                         model: model, baseGrads: baseGrads)
        checkpointTensors = trainable.tensors.map { ($0.name, $0.param) }
        logits = try FloatBuffer(count: batch * classes)
        dLogits = try FloatBuffer(count: batch * classes)
        dFeatures = try FloatBuffer(count: batch * model.config.featureDim)
        dOut = try FloatBuffer(count: acts.rows * model.config.hiddenSize)
        schedule = LearningRateSchedule(totalSteps: config.steps, warmupSteps: config.warmupSteps)
        initialWeightsFingerprint = Checkpoint.weightsFingerprint(model)
    }

    public var batch: Int { acts.batch }

    /// The gates of the LoRA blocks (nil without adapters).
    public var gates: Gates? { adapters?.gates }

    /// Whether the sparsity penalty and the budget apply at the current step.
    public var penaltyActive: Bool { gates?.penaltyActive(step: step) ?? false }

    /// Sets the gates for the current step from the rule (``Gates/update(step:)``).
    public func updateGates() { gates?.update(step: step) }

    // MARK: The phases of a step

    /// Phase 1: the gates for this step; every gradient zeroed (the backward accumulates with `+=`).
    public func beginStep() {
        updateGates()
        if let a = adapters, a.gates.settled, backwardThrough == nil { settle(a.lowestActiveLayer ?? model.config.numLayers) }
        trainable.zeroGradients()
    }

    /// Once the gates settled: the lowest layer holding an active block, where the backward stops (nothing below
    /// has a gradient to compute); `numLayers` when no block is active (only the head trains). nil before.
    /// `lora-last-k`: L − k from the first step (its mask is fixed by construction; the gates never "settle").
    public private(set) var backwardThrough: Int?

    /// The one-time switch to the settled step: the backward stops at `lowest`; the activations are rebuilt to save
    /// only blocks from there up, and the LoRA state and the table to hold only the active blocks (the memory of
    /// the rest — saved h, gradients, AdamW moments — is given back; the moments and step counts of what still
    /// trains carry over). If a rebuild cannot be had, the old state stays (correct, just larger).
    func settle(_ lowest: Int) {
        backwardThrough = lowest
        guard config.method == .selective else { return }
        if lowest > 0, lowest < model.config.numLayers,
           let smaller = try? ViTActivations(config: model.config, batch: acts.batch, height: acts.height,
                                             width: acts.width, training: true, savedFrom: lowest) {
            acts = smaller
        }
        guard let a = adapters else { return }
        guard let held = try? LoRARun(adapters: a, activations: acts, gradients: true, scoreGradients: true,
                                      blocks: a.gates.mask),
              let table = try? TrainableTensors(head: head, headGrads: headGrads, adapters: a, run: held, model: model,
                                                baseGrads: baseGrads) else { return }
        table.adoptState(of: trainable)
        run = held
        trainable = table
    }


    /// Phase 2: forward through the backbone, the head and the mean cross-entropy on this rank's batch; the head's
    /// gradients. Returns (loss summed over the batch, correct count) so ranks can add them.
    public func forwardAndLoss(pixels: UnsafePointer<Float>, labels: [Int32]) -> (lossSum: Double, correct: Int) {
        precondition(labels.count == batch, "Trainer: \(labels.count) labels for a batch of \(batch)")
        return forwardLoss(model: model, acts: acts, lora: run, head: head, headGrads: headGrads, logits: logits,
                           dLogits: dLogits, dFeatures: config.method != .linearProbe ? dFeatures : nil,
                           pixels: pixels, labels: labels)
    }

    /// Phase 3: the backward through the feature and the blocks (nothing for a linear probe). `afterBlock(l)` runs
    /// once layer l's gradients are final (``ViTModel/backward``): data-parallel training starts its all-reduces
    /// there.
    public func backward(afterBlock: ((Int) -> Void)? = nil) {
        guard config.method != .linearProbe else { return }
        let through = backwardThrough ?? 0
        guard through < model.config.numLayers else { return }   // settled with no active block: the head alone
        backwardLoss(model: model, acts: acts, lora: run, baseGrads: baseGrads, dFeatures: dFeatures, dOut: dOut,
                     through: through, afterBlock: afterBlock)
    }

    /// Phase 4: adds the penalty's gradient, clips, and steps AdamW on every tensor that trains; then counts the
    /// step. Returns (lr, gradient norm before clipping).
    @discardableResult
    public func update() -> (lr: Float, gradNorm: Double) {
        if let g = gates, let sg = run?.scoreGrads { g.addPenaltyGradient(sg.buffer, step: step) }
        let norm = trainable.gradientNorm()
        if config.clipNorm > 0, norm > Double(config.clipNorm) {
            trainable.scaleGradients(Float(Double(config.clipNorm) / (norm + 1e-6)))
        }
        let factor = schedule.factor(step)
        let lr = config.lr * factor
        let c = config
        trainable.step { role in
            switch role {
            case .head, .adapter: return AdamW(lr: lr, weightDecay: c.weightDecay)
            case .score: return AdamW(lr: c.scoreLR * factor, weightDecay: 0)
            case .backbone: return AdamW(lr: c.fullLR * factor, weightDecay: c.weightDecay)
            }
        }
        step += 1
        return (lr, norm)
    }

    /// Counts a step without updating anything (a step skipped for non-finite gradients).
    public func skipUpdate() { step += 1 }

    /// One whole step on a single process: the four phases.
    public func trainStep(pixels: UnsafePointer<Float>, labels: [Int32]) -> StepStats {
        let t0 = Date()
        beginStep()
        let (lossSum, correct) = forwardAndLoss(pixels: pixels, labels: labels)
        backward()
        let (lr, norm) = update()
        return StepStats(step: step - 1, loss: lossSum / Double(batch), correct: correct, count: batch, lr: lr,
                         activeBlocks: adapters?.activeCount ?? 0, gradNorm: norm,
                         computeSeconds: Date().timeIntervalSince(t0))
    }

    /// Trainable parameters this step (the head, active A/B, scores, or the whole backbone).
    public var trainableParameterCount: Int { trainable.trainingCount }
}

extension TrainingConfig {
    /// The gate rule's schedule of a selective run.
    public var gateSchedule: GateSchedule {
        GateSchedule(penalty: penalty, startStep: penaltyStartStep, maxActivePercent: maxActivePercent,
                     settleAfter: settleAfter, settlePatience: settlePatience)
    }
}

/// Forward through the backbone (with `lora`), the head on the backbone's feature (``ViTModel/features(_:)``) and
/// the mean cross-entropy; the head's gradients into `headGrads` (accumulated) and, when `dFeatures` is given, the
/// gradient of the feature [batch, featureDim] for ``backwardLoss``. Returns (loss summed over the batch, correct).
public func forwardLoss(model: ViTModel, acts: ViTActivations, lora: LoRARun?, head: ClassifierHead,
                        headGrads: TensorStore, logits: FloatBuffer, dLogits: FloatBuffer, dFeatures: FloatBuffer?,
                        pixels: UnsafePointer<Float>, labels: [Int32]) -> (lossSum: Double, correct: Int) {
    let batch = acts.batch
    model.forward(pixels, acts, lora: lora)
    let features = model.features(acts)
    head.forward(logits.base, features: features, batch: batch)
    let (loss, correct) = labels.withUnsafeBufferPointer {
        crossEntropy(logits: logits.base, labels: $0.baseAddress!, rows: batch, classes: head.classes, dLogits: dLogits.base)
    }
    head.backward(dLogits.base, features: features, batch: batch, grads: headGrads, dFeatures: dFeatures?.base)
    return (loss * Double(batch), correct)
}

/// The backward of ``forwardLoss``'s backbone part: from the feature's gradient `dFeatures` back through the
/// feature and the blocks into `baseGrads` / `lora`'s gradients (accumulated). `dOut` [rows, hidden] must be zero
/// except the class-token rows, which this writes.
/// `through` > 0: stop at that block (adapters only; see ``ViTModel/backward(_:_:grads:lora:dPixels:through:afterBlock:)``).
public func backwardLoss(model: ViTModel, acts: ViTActivations, lora: LoRARun?, baseGrads: ViTTensors?,
                         dFeatures: FloatBuffer, dOut: FloatBuffer, through: Int = 0,
                         afterBlock: ((Int) -> Void)? = nil) {
    model.featuresBackward(dFeatures.base, acts, grads: baseGrads, dOut: dOut.base)
    model.backward(dOut.base, acts, grads: baseGrads, lora: lora, through: through, afterBlock: afterBlock)
}
