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

/// One training loop for every ``Method``: forward (with gated LoRA when the method has adapters), the head and
/// its cross-entropy, backward, the score penalty, clipping, AdamW with per-tensor step counts.
///
/// A step is split where data-parallel training needs it: ``computeGradients(pixels:labels:)`` fills this rank's
/// gradients, ``forEachTrainableGradient(_:)`` names every gradient the update will read in one fixed order (so
/// ranks can pack and all-reduce exactly those), and ``applyUpdate()`` clips and steps the optimizer.
public final class Trainer {
    public let config: TrainingConfig
    public let model: ViTModel
    public let head: ClassifierHead
    public let adapters: LoRAAdapters?
    public let acts: ViTActivations
    public let run: LoRARun?
    let baseGrads: ViTTensors?
    let headGrads: TensorStore
    let logits: FloatBuffer, dLogits: FloatBuffer, dFeatures: FloatBuffer, dOut: FloatBuffer
    var headOpt: AdamWState
    var loraOpt: AdamWState?
    var baseOpt: AdamWState?
    var scoreOpt: AdamWState?
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
        try config.validate()
        guard classes > 1 else { throw ViTError.badInput("need at least 2 classes, got \(classes)") }
        self.config = config
        self.model = model
        head = try initialHead ?? ClassifierHead(classes: classes, hidden: model.config.featureDim, seed: config.seed)
        guard head.classes == classes, head.hidden == model.config.featureDim else {
            throw ViTError.invalidConfig("the initial head is [\(head.classes), \(head.hidden)]; this run needs "
                + "[\(classes), \(model.config.featureDim)] (classes × the backbone's feature width)")
        }
        headGrads = try head.makeStore()
        headOpt = try AdamWState(layout: head.params.layout)
        acts = try ViTActivations(config: model.config, batch: batch, height: height, width: width,
                                  training: config.method != .linearProbe)
        if config.method.usesAdapters {
            let a = try adapters ?? LoRAAdapters(model: model.config, config: config.lora, seed: config.seed)
            if a.config != config.lora && adapters != nil {
                throw ViTError.invalidConfig("the adapter's LoRA settings (rank \(a.config.rank), alpha \(a.config.alpha), "
                    + "targets \(a.config.targets.map(\.rawValue))) differ from the run's")
            }
            self.adapters = a
            run = try LoRARun(adapters: a, activations: acts, gradients: true, scoreGradients: config.method == .selective)
            loraOpt = try AdamWState(layout: a.params.layout)
            if config.method == .selective {
                var l = TensorLayout(); l.add("scores", [a.blocks.count])
                scoreOpt = try AdamWState(layout: l)
            } else {
                for i in a.active.indices { a.active[i] = true }
            }
        } else {
            self.adapters = nil
            run = nil
        }
        if config.method == .full {
            baseGrads = try model.makeGradients()
            baseOpt = try AdamWState(layout: model.params.store.layout)
        } else {
            baseGrads = nil
        }
        logits = try FloatBuffer(count: batch * classes)
        dLogits = try FloatBuffer(count: batch * classes)
        dFeatures = try FloatBuffer(count: batch * model.config.featureDim)
        dOut = try FloatBuffer(count: acts.rows * model.config.hiddenSize)
        schedule = LearningRateSchedule(totalSteps: config.steps, warmupSteps: config.warmupSteps)
        initialWeightsFingerprint = Checkpoint.weightsFingerprint(model)
    }

    public var batch: Int { acts.batch }

    // MARK: Gates

    /// Whether the sparsity penalty and the budget apply at the current step.
    public var penaltyActive: Bool { config.method == .selective && step >= config.penaltyStartStep }

    /// Sets the gates for the coming step from the scores: I = 1[s ≥ τ], and in budget mode (once the penalty
    /// has started) only the top ⌊P/100 · blocks⌋ scores, ties going to the lower block index.
    public func updateGates() {
        guard config.method == .selective, let a = adapters else { return }
        a.updateGatesFromScores()
        if let p = config.maxActivePercent, penaltyActive {
            let k = Int((Double(p) / 100 * Double(a.blocks.count)).rounded(.down))
            let order = a.blocks.indices.sorted { a.scores[$0] != a.scores[$1] ? a.scores[$0] > a.scores[$1] : $0 < $1 }
            for (rank, i) in order.enumerated() where rank >= k { a.active[i] = false }
        }
    }

    // MARK: Step

    /// Forward, loss and backward on this rank's batch; gradients are zeroed first. Returns (summed loss over
    /// the batch, correct count) so ranks can add them.
    /// `beforeBackbone(lossSum, correct)` runs once the head's gradients are final and before the backbone's
    /// backward; `afterBlock(l)` once block l's gradients are final (see ``ViTModel/backward``). Data-parallel
    /// training starts its all-reduces there.
    public func computeGradients(pixels: UnsafePointer<Float>, labels: [Int32],
                                 beforeBackbone: ((Double, Int) -> Void)? = nil,
                                 afterBlock: ((Int) -> Void)? = nil) -> (lossSum: Double, correct: Int) {
        precondition(labels.count == batch, "Trainer: \(labels.count) labels for a batch of \(batch)")
        updateGates()
        headGrads.zero()
        run?.zeroGradients()
        baseGrads?.store.zero()
        return lossAndGradients(model: model, acts: acts, lora: run, baseGrads: baseGrads, head: head,
                                headGrads: headGrads, logits: logits, dLogits: dLogits, dFeatures: dFeatures,
                                dOut: config.method != .linearProbe ? dOut : nil, pixels: pixels, labels: labels,
                                beforeBackbone: beforeBackbone, afterBlock: afterBlock)
    }

    /// Every gradient the next update reads, in one fixed order: head weight and bias; then, by block index, the
    /// A and B of each active block; then all scores (selective); then every backbone tensor (full).
    /// Ranks holding the same active set enumerate identical names and sizes.
    public func forEachTrainableGradient(_ body: (String, UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        for e in headGrads.layout.entries { try body(e.name, headGrads.buffer(e.name)) }
        if let a = adapters, let g = run?.grads {
            for b in a.blocks where a.active[b.index] {
                try body(b.aName, g.buffer(b.aName))
                try body(b.bName, g.buffer(b.bName))
            }
            if let sg = run?.scoreGrads { try body("scores", sg.buffer) }
        }
        if let g = baseGrads {
            for e in g.store.layout.entries { try body(e.name, g.store.buffer(e.name)) }
        }
    }

    /// Adds the penalty's gradient, clips, and steps AdamW; then counts the step. Returns (lr, gradient norm
    /// before clipping).
    @discardableResult
    public func applyUpdate() -> (lr: Float, gradNorm: Double) {
        if penaltyActive, let a = adapters, let sg = run?.scoreGrads {
            // d/ds of λ·mean|s| = λ·sign(s)/n (sign(0) = 0).
            let k = config.penalty / Float(a.blocks.count)
            for i in 0..<a.blocks.count {
                let s = a.scores[i]
                sg[i] += s > 0 ? k : (s < 0 ? -k : 0)
            }
        }
        var sumSquares = 0.0
        forEachTrainableGradient { _, g in for x in g { sumSquares += Double(x) * Double(x) } }
        let norm = sumSquares.squareRoot()
        if config.clipNorm > 0, norm > Double(config.clipNorm) {
            let f = Float(Double(config.clipNorm) / (norm + 1e-6))
            forEachTrainableGradient { _, g in for i in g.indices { g[i] *= f } }
        }
        let factor = schedule.factor(step)
        let lr = config.lr * factor
        let opt = AdamW(lr: lr, weightDecay: config.weightDecay)
        headOpt.updateAll(head.params, grads: headGrads, optimizer: opt)
        if let a = adapters, let g = run?.grads {
            for b in a.blocks where a.active[b.index] {
                let t = a.tensorIndices(b)
                loraOpt?.update(a.params, grads: g, tensor: t.a, optimizer: opt)
                loraOpt?.update(a.params, grads: g, tensor: t.b, optimizer: opt)
            }
            if let sg = run?.scoreGrads {
                scoreOpt?.update(a.scores.buffer, grad: sg.buffer, tensor: 0,
                                 optimizer: AdamW(lr: config.scoreLR * factor, weightDecay: 0))
            }
        }
        if let g = baseGrads {
            baseOpt?.updateAll(model.params.store, grads: g.store, optimizer: AdamW(lr: config.fullLR * factor,
                                                                                      weightDecay: config.weightDecay))
        }
        step += 1
        return (lr, norm)
    }

    /// Counts a step without updating anything (a step skipped for non-finite gradients).
    public func skipUpdate() { step += 1 }

    /// One whole step on a single process.
    public func trainStep(pixels: UnsafePointer<Float>, labels: [Int32]) -> StepStats {
        let t0 = Date()
        let (lossSum, correct) = computeGradients(pixels: pixels, labels: labels)
        let (lr, norm) = applyUpdate()
        return StepStats(step: step - 1, loss: lossSum / Double(batch), correct: correct, count: batch, lr: lr,
                         activeBlocks: adapters?.activeCount ?? 0, gradNorm: norm,
                         computeSeconds: Date().timeIntervalSince(t0))
    }

    /// Trainable parameters this step (the head, active A/B, scores, or the whole backbone).
    public var trainableParameterCount: Int {
        var n = 0
        forEachTrainableGradient { _, g in n += g.count }
        return n
    }
}

/// AdamW moments for every tensor of a layout, with one step count per tensor: a tensor that starts receiving
/// gradients late (a block switched on) is bias-corrected from its own first update.
struct AdamWState {
    let m: TensorStore
    let v: TensorStore
    var steps: [Int]

    init(layout: TensorLayout) throws {
        m = try TensorStore(layout: layout)
        v = try TensorStore(layout: layout)
        steps = [Int](repeating: 0, count: layout.entries.count)
    }

    /// Updates tensor `i` of the layout (params, grads and moments share it).
    mutating func update(_ params: TensorStore, grads: TensorStore, tensor i: Int, optimizer: AdamW) {
        let e = params.layout.entries[i]
        steps[i] += 1
        optimizer.step(params.storage.base + e.offset, grads.storage.base + e.offset, m: m.storage.base + e.offset,
                       v: v.storage.base + e.offset, count: e.count, t: steps[i])
    }

    /// Updates every tensor of the layout.
    mutating func updateAll(_ params: TensorStore, grads: TensorStore, optimizer: AdamW) {
        for i in params.layout.entries.indices { update(params, grads: grads, tensor: i, optimizer: optimizer) }
    }

    /// Updates a flat tensor that lives outside a store (the scores) as tensor `tensor` of this state.
    mutating func update(_ p: UnsafeMutableBufferPointer<Float>, grad: UnsafeMutableBufferPointer<Float>, tensor: Int,
                         optimizer: AdamW) {
        let e = m.layout.entries[tensor]
        precondition(e.count == p.count && p.count == grad.count, "AdamWState: size mismatch")
        steps[tensor] += 1
        optimizer.step(p.baseAddress!, grad.baseAddress!, m: m.pointer(e.name), v: v.pointer(e.name),
                       count: e.count, t: steps[tensor])
    }
}

/// Forward through the backbone (with `lora`), the head on the backbone's feature (``ViTModel/features(_:)``) and
/// the mean cross-entropy; then the backward: head gradients into `headGrads`, and — when `dOut` is given — back
/// through the feature and the backbone into `baseGrads` / `lora`'s gradients (all accumulated). `dOut` [rows,
/// hidden] must be zero except the class-token rows, which this writes; `dFeatures` [batch, featureDim] is scratch.
/// Returns (loss summed over the batch, correct count).
public func lossAndGradients(model: ViTModel, acts: ViTActivations, lora: LoRARun?, baseGrads: ViTTensors?,
                             head: ClassifierHead, headGrads: TensorStore, logits: FloatBuffer, dLogits: FloatBuffer,
                             dFeatures: FloatBuffer, dOut: FloatBuffer?, pixels: UnsafePointer<Float>, labels: [Int32],
                             beforeBackbone: ((Double, Int) -> Void)? = nil,
                             afterBlock: ((Int) -> Void)? = nil) -> (lossSum: Double, correct: Int) {
    let batch = acts.batch
    model.forward(pixels, acts, lora: lora)
    let features = model.features(acts)
    head.forward(logits.base, features: features, batch: batch)
    let (loss, correct) = labels.withUnsafeBufferPointer {
        crossEntropy(logits: logits.base, labels: $0.baseAddress!, rows: batch, classes: head.classes, dLogits: dLogits.base)
    }
    head.backward(dLogits.base, features: features, batch: batch, grads: headGrads, dFeatures: dOut == nil ? nil : dFeatures.base)
    beforeBackbone?(loss * Double(batch), correct)
    if let dOut {
        model.featuresBackward(dFeatures.base, acts, grads: baseGrads, dOut: dOut.base)
        model.backward(dOut.base, acts, grads: baseGrads, lora: lora, afterBlock: afterBlock)
    }
    return (loss * Double(batch), correct)
}
