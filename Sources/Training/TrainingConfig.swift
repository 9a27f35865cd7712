import VisionTransformer

/// How the backbone is fine-tuned. Every method trains the classification head too.
public enum Method: String, CaseIterable, Codable, Sendable {
    /// Gated LoRA blocks whose scores learn which blocks act; an L1 penalty switches most of them off.
    case selective
    /// Every LoRA block always on, no gates (plain LoRA, as HF PEFT).
    case lora
    /// Every backbone parameter trained.
    case full
    /// Only the head, on frozen features.
    case linearProbe = "linear-probe"
    /// Plain LoRA on the last ``TrainingConfig/lastK`` transformer layers only: their blocks always on, every other
    /// block off, no scores — the cheap fixed-budget baseline selective LoRA must beat. Trains as a settled
    /// selective run does from its first step (the backward stops at layer L − k).
    case loraLastK = "lora-last-k"

    public var usesAdapters: Bool { self == .selective || self == .lora || self == .loraLastK }
}

/// Everything that shapes a training run. Defaults are for DINOv2 ViT-S/14 on small image sets and are
/// explained field by field; `validate()` rejects what cannot work, naming the flag.
public struct TrainingConfig: Codable, Equatable, Sendable {
    public var method: Method = .selective
    public var lora = LoRAConfig()
    /// Optimizer steps in all.
    public var steps = 300
    /// Global batch (all ranks together).
    public var batchSize = 32
    /// Linear learning-rate warm-up, in steps, before the cosine decay.
    public var warmupSteps = 30
    /// Peak learning rate of LoRA A/B and the head (PEFT LoRA recipes use 1e-4–1e-3; small data wants the top).
    public var lr: Float = 1e-3
    /// Peak learning rate of the backbone in `full` (full fine-tunes of ViTs use ~1e-5: larger rates destroy the
    /// pretrained features quickly, which is what the forgetting comparison measures).
    public var fullLR: Float = 2e-5
    /// Peak learning rate of the gate scores (separate from the adapters', as in TAPS; no weight decay on scores).
    public var scoreLR: Float = 2e-3
    /// AdamW decoupled weight decay of adapters, head and backbone (PyTorch's default).
    public var weightDecay: Float = 0.01
    /// Global gradient-norm clipping threshold over every trainable tensor of the step (0 disables).
    public var clipNorm: Float = 1.0
    /// λ of the sparsity penalty λ·mean|s| on the scores. With the default score learning rate, λ = 2 brings the
    /// 72 blocks of ViT-S to about 10 % active within ~150 steps after the penalty starts (measured on
    /// Fashion-MNIST; the paper reports 5–10 % active).
    public var penalty: Float = 2
    /// Steps before the penalty (and the budget) start: the adapters must first move away from B = 0, where
    /// every score gradient is exactly zero.
    public var penaltyStartStep = 60
    /// Budget mode: after the penalty starts, at most this percentage of the blocks (the top scores, ties to
    /// the lower block index) stay active. nil: the threshold alone decides.
    public var maxActivePercent: Float?
    /// Settle the gates at this step (mask and scores frozen from then on; nil: only the automatic rule).
    public var settleAfter: Int?
    /// Settle automatically once no gate flipped for this many consecutive steps after the penalty started
    /// (0: never). 20 steps: long enough that a block hovering at τ has stopped flipping (TAPS's gates move in
    /// steps of the score learning rate), short enough that most of a run gets the settled step's savings.
    public var settlePatience = 20
    /// `lora-last-k`: the number of final transformer layers whose target modules get always-on LoRA blocks (the
    /// blocks of layers L − k … L − 1). 1 = 6 of the 72 blocks of ViT-S (8.3 %), the order of selective's ≤ 5 %
    /// budget (it keeps 5–10 % of the blocks): the default compares the two at about the same adapter budget, and
    /// is the cheapest backward (it stops at the last layer). Ignored by the other methods (as ``fullLR`` is);
    /// validated whatever the method.
    public var lastK = 1
    /// Seed of every random choice (initialisation, data order).
    public var seed: UInt64 = 0

    public init() {}

    /// Rejects what cannot work. The error names the setting by its property path (`lora.rank`, `batchSize`, …)
    /// and says why in the run's terms; a front end maps settings to its own flags (``ConfigError/setting``).
    /// `layers`: the backbone's transformer layers, when known (``lastK`` must not exceed them; the trainer checks
    /// with its model).
    public func validate(layers: Int? = nil) throws {
        func bad(_ setting: String, _ s: String) -> ConfigError { ConfigError(setting, s) }
        do { try lora.validate() } catch let ViTError.invalidSetting(setting, s) { throw bad("lora." + setting, s) }
        guard steps > 0 else { throw bad("steps", "the number of steps must be positive, got \(steps)") }
        guard batchSize > 0 else { throw bad("batchSize", "the global batch must be positive, got \(batchSize)") }
        guard warmupSteps >= 0, warmupSteps < steps else {
            throw bad("warmupSteps", "the warm-up must be in 0..<steps (\(steps)), got \(warmupSteps)")
        }
        for (setting, what, v) in [("lr", "learning rate", lr), ("fullLR", "backbone learning rate", fullLR),
                                   ("scoreLR", "score learning rate", scoreLR)] {
            guard v.isFinite, v > 0 else { throw bad(setting, "the \(what) must be a positive number, got \(v)") }
        }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw bad("weightDecay", "the weight decay must be ≥ 0, got \(weightDecay)") }
        guard clipNorm.isFinite, clipNorm >= 0 else { throw bad("clipNorm", "the clipping norm must be ≥ 0 (0 disables), got \(clipNorm)") }
        guard penalty.isFinite, penalty >= 0 else { throw bad("penalty", "the penalty λ must be a finite number ≥ 0, got \(penalty)") }
        guard penaltyStartStep >= 0 else { throw bad("penaltyStartStep", "the penalty's first step must be ≥ 0, got \(penaltyStartStep)") }
        guard lora.threshold < lora.initialScore else {
            throw ConfigError(["lora.threshold", "lora.initialScore"], "the gate threshold τ = \(lora.threshold) must be "
                + "below the initial score \(lora.initialScore): every block starts active and the penalty switches blocks off")
        }
        if let p = maxActivePercent {
            guard p.isFinite, p >= 0, p <= 100 else { throw bad("maxActivePercent", "the budget must be a percentage in 0…100, got \(p)") }
        }
        if let s = settleAfter, s < 0 { throw bad("settleAfter", "the settle step must be ≥ 0, got \(s)") }
        guard settlePatience >= 0 else { throw bad("settlePatience", "the settle patience must be ≥ 0 (0: never), got \(settlePatience)") }
        guard lastK >= 1, lastK <= (layers ?? Int.max) else {
            throw bad("lastK", "the number of final layers with LoRA blocks must be in 1…"
                      + (layers.map { "\($0) (the backbone's layers)" } ?? "the backbone's layer count") + ", got \(lastK)")
        }
    }
}

/// A training setting that cannot work: `settings` names it (or the settings that conflict) by property path in
/// ``TrainingConfig`` (`lora.rank`, `batchSize`, …, or `checkEvery` of ``DataParallelTrainer``); `message` says what
/// was expected, in the run's terms. Front ends map settings to their own flags.
public struct ConfigError: Error, CustomStringConvertible {
    public let settings: [String]
    public let message: String
    public init(_ settings: [String], _ message: String) { self.settings = settings; self.message = message }
    public init(_ setting: String, _ message: String) { self.init([setting], message) }
    public var description: String { "\(settings.joined(separator: ", ")): \(message)" }
}
