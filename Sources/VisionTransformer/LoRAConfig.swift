/// A Linear layer of a ViT block that can carry a LoRA block, named by its path inside the block
/// (Hugging Face `Dinov2Layer` names, which PEFT's `target_modules` match on).
public enum LoRATarget: String, CaseIterable, Codable, Sendable {
    case query, key, value
    case output = "attention.output.dense"
    case fc1 = "mlp.fc1"
    case fc2 = "mlp.fc2"

    /// Path of the Linear inside `encoder.layer.L.`.
    public var relativePath: String {
        switch self {
        case .query, .key, .value: return "attention.attention.\(rawValue)"
        default: return rawValue
        }
    }

    public func modulePath(layer: Int) -> String { "\(ViTParameterNames.block(layer)).\(relativePath)" }

    /// The module path in the checkpoint's own names (what PEFT keys and `target_modules` use on export).
    /// OpenCLIP packs q, k, v into one `in_proj_weight`; their blocks are exported as `attn.q_proj`, `attn.k_proj`,
    /// `attn.v_proj` (rows 0..<D, D..<2D, 2D..<3D of it).
    public func modulePath(layer: Int, names: ModuleNames) -> String {
        switch names {
        case .dinov2: return modulePath(layer: layer)
        case .openCLIP: return "visual.transformer.resblocks.\(layer).\(relativePath(names))"
        case .huggingFaceCLIP: return "vision_model.encoder.layers.\(layer).\(relativePath(names))"
        }
    }

    /// The module's path inside a block, in `names`.
    public func relativePath(_ names: ModuleNames) -> String {
        switch (names, self) {
        case (.dinov2, _): return relativePath
        case (.openCLIP, .query), (.openCLIP, .key), (.openCLIP, .value): return "attn.\(shortName)_proj"
        case (.openCLIP, .output): return "attn.out_proj"
        case (.openCLIP, .fc1): return "mlp.c_fc"
        case (.openCLIP, .fc2): return "mlp.c_proj"
        case (.huggingFaceCLIP, .output): return "self_attn.out_proj"
        case (.huggingFaceCLIP, .fc1), (.huggingFaceCLIP, .fc2): return rawValue
        case (.huggingFaceCLIP, _): return "self_attn.\(shortName)_proj"
        }
    }

    var shortName: String { self == .query ? "q" : self == .key ? "k" : self == .value ? "v" : rawValue }

    /// (in, out) features of the Linear.
    public func features(_ c: ViTConfig) -> (in: Int, out: Int) {
        switch self {
        case .query, .key, .value, .output: return (c.hiddenSize, c.hiddenSize)
        case .fc1: return (c.hiddenSize, c.mlpSize)
        case .fc2: return (c.mlpSize, c.hiddenSize)
        }
    }

    /// Accepts PEFT-style names and common short forms: query|q|q_proj, key|k|k_proj, value|v|v_proj,
    /// attention.output.dense|dense|output|o|proj|out_proj, mlp.fc1|fc1|c_fc, mlp.fc2|fc2|c_proj (DINOv2, timm,
    /// OpenCLIP and Hugging Face CLIP names).
    public static func parse(_ s: String) -> LoRATarget? {
        switch s.lowercased() {
        case "query", "q", "attention.attention.query", "q_proj", "attn.q_proj", "self_attn.q_proj": return .query
        case "key", "k", "attention.attention.key", "k_proj", "attn.k_proj", "self_attn.k_proj": return .key
        case "value", "v", "attention.attention.value", "v_proj", "attn.v_proj", "self_attn.v_proj": return .value
        case "attention.output.dense", "output.dense", "dense", "output", "o", "proj", "attn.proj", "out_proj",
             "attn.out_proj", "self_attn.out_proj": return .output
        case "mlp.fc1", "fc1", "c_fc", "mlp.c_fc": return .fc1
        case "mlp.fc2", "fc2", "c_proj", "mlp.c_proj": return .fc2
        default: return nil
        }
    }
}

/// Shape and gating of the LoRA blocks.
///
/// Defaults: rank 8 (the default; PEFT's too), alpha 8 so the scale alpha/r is 1 (PEFT's default alpha),
/// all six Linear layers of every block (72 blocks on ViT-S), and TAPS' gate settings: every score starts at 0.15
/// above the threshold 0.1, so every block starts active and the L1 penalty has 0.05 of room before it switches
/// a block off.
public struct LoRAConfig: Codable, Equatable, Sendable {
    public var rank = 8
    public var alpha: Float = 8
    /// rsLoRA (Kalajdzievski 2023): scale alpha/√r instead of alpha/r.
    public var useRSLoRA = false
    public var targets: [LoRATarget] = LoRATarget.allCases
    public var initialScore: Float = 0.15
    public var threshold: Float = 0.1

    public init() {}

    public var scale: Float { useRSLoRA ? alpha / Float(rank).squareRoot() : alpha / Float(rank) }

    /// Rejects settings that cannot work; the error names the setting (``ViTError/invalidSetting(_:_:)``).
    public func validate() throws {
        func bad(_ setting: String, _ m: String) -> ViTError { .invalidSetting(setting, m) }
        guard rank > 0 else { throw bad("rank", "the LoRA rank must be positive, got \(rank)") }
        guard alpha.isFinite, alpha > 0 else { throw bad("alpha", "LoRA alpha must be a positive number, got \(alpha)") }
        guard !targets.isEmpty else { throw bad("targets", "LoRA needs at least one target module") }
        guard Set(targets).count == targets.count else { throw bad("targets", "the LoRA target modules repeat: \(targets.map(\.rawValue))") }
        guard threshold.isFinite else { throw bad("threshold", "the gate threshold τ must be a finite number, got \(threshold)") }
        guard initialScore.isFinite else { throw bad("initialScore", "the initial gate score must be a finite number, got \(initialScore)") }
    }
}
