import ArgumentParser
import Training
import VisionTransformer

extension Method: ExpressibleByArgument {}

/// Options of a fine-tuning run, shared by `train` and `eval`. Defaults come from ``TrainingConfig``.
struct TrainOptions: ParsableArguments {
    @Option(help: "Method: selective, lora, lora-last-k, full or linear-probe.")
    var method: Method = .selective
    @Option(help: "LoRA rank r.")
    var rank = LoRAConfig().rank
    @Option(help: "LoRA alpha (scale alpha/r; alpha/√r with --rslora).")
    var alpha = LoRAConfig().alpha
    @Flag(help: "rsLoRA scaling alpha/√r.")
    var rslora = false
    @Option(help: "Comma-separated target modules: query,key,value,attention.output.dense,mlp.fc1,mlp.fc2 (short forms q,k,v,dense,fc1,fc2).")
    var targets = LoRAConfig().targets.map(\.rawValue).joined(separator: ",")
    @Option(help: "Initial gate score s₀ (TAPS: 0.15).")
    var initialScore = LoRAConfig().initialScore
    @Option(help: "Gate threshold τ: a block acts while s ≥ τ (TAPS: 0.1).")
    var threshold = LoRAConfig().threshold
    @Option(help: "Optimizer steps.")
    var steps = TrainingConfig().steps
    @Option(help: "Global batch size.")
    var batchSize = TrainingConfig().batchSize
    @Option(help: "Learning-rate warm-up steps (default: 10 % of --steps).")
    var warmupSteps: Int?
    @Option(help: "Peak learning rate of LoRA and the head.")
    var lr = TrainingConfig().lr
    @Option(help: "Peak learning rate of the backbone with --method full.")
    var fullLr = TrainingConfig().fullLR
    @Option(help: "Peak learning rate of the gate scores.")
    var scoreLr = TrainingConfig().scoreLR
    @Option(help: "AdamW weight decay (not applied to scores).")
    var weightDecay = TrainingConfig().weightDecay
    @Option(help: "Global gradient-norm clip (0 disables).")
    var clipNorm = TrainingConfig().clipNorm
    @Option(help: "λ of the sparsity penalty λ·mean|s|.")
    var penalty = TrainingConfig().penalty
    @Option(help: "Step at which the penalty (and the budget) start.")
    var penaltyStart = TrainingConfig().penaltyStartStep
    @Option(help: "Budget mode: at most this percentage of blocks stays active after the penalty starts (0–100).")
    var maxActive: Float?
    @Option(help: "Settle the gates at this step: mask and scores frozen from then on, inactive blocks cost nothing and the backward stops at the lowest active block.")
    var settleAfter: Int?
    @Option(help: "Settle the gates automatically once no gate flipped for this many consecutive steps after the penalty started (0: never).")
    var settlePatience = TrainingConfig().settlePatience
    @Option(help: "With --method lora-last-k: LoRA blocks (always on) on the target modules of the last K transformer layers only, 1 … layers (1: 6 of the 72 blocks of ViT-S). Ignored by the other methods.")
    var lastK = TrainingConfig().lastK
    @Option(help: "Seed of initialisation and data order.")
    var seed: UInt64 = 0

    func config() throws -> TrainingConfig {
        var c = TrainingConfig()
        c.method = method
        c.lora.rank = rank
        c.lora.alpha = alpha
        c.lora.useRSLoRA = rslora
        var ts: [LoRATarget] = []
        for name in targets.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let t = LoRATarget.parse(name) else {
                throw ValidationError("--targets: unknown module `\(name)`; expected query, key, value, attention.output.dense, mlp.fc1, mlp.fc2")
            }
            ts.append(t)
        }
        c.lora.targets = ts
        c.lora.initialScore = initialScore
        c.lora.threshold = threshold
        c.steps = steps
        c.batchSize = batchSize
        c.warmupSteps = warmupSteps ?? steps / 10
        c.lr = lr
        c.fullLR = fullLr
        c.scoreLR = scoreLr
        c.weightDecay = weightDecay
        c.clipNorm = clipNorm
        c.penalty = penalty
        c.penaltyStartStep = penaltyStart
        c.maxActivePercent = maxActive
        c.settleAfter = settleAfter
        c.settlePatience = settlePatience
        c.lastK = lastK
        c.seed = seed
        do { try c.validate() } catch let e as ConfigError { throw e.validationError }
        return c
    }

    /// The flag of each ``TrainingConfig`` setting (``ConfigError/settings``).
    static let flags: [String: String] = [
        "lora.rank": "--rank", "lora.alpha": "--alpha", "lora.targets": "--targets", "lora.threshold": "--threshold",
        "lora.initialScore": "--initial-score", "steps": "--steps", "batchSize": "--batch-size",
        "warmupSteps": "--warmup-steps", "lr": "--lr", "fullLR": "--full-lr", "scoreLR": "--score-lr",
        "weightDecay": "--weight-decay", "clipNorm": "--clip-norm", "penalty": "--penalty",
        "penaltyStartStep": "--penalty-start", "maxActivePercent": "--max-active", "checkEvery": "--check-every",
        "settleAfter": "--settle-after", "settlePatience": "--settle-patience", "lastK": "--last-k",
    ]

    func validate() throws { _ = try config() }
}

extension ConfigError {
    /// The error as the command line says it: the flags of the settings, then the reason.
    var validationError: ValidationError {
        ValidationError(settings.map { TrainOptions.flags[$0] ?? $0 }.joined(separator: " / ") + ": " + message)
    }
}
