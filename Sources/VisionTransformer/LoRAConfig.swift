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

    /// (in, out) features of the Linear.
    public func features(_ c: ViTConfig) -> (in: Int, out: Int) {
        switch self {
        case .query, .key, .value, .output: return (c.hiddenSize, c.hiddenSize)
        case .fc1: return (c.hiddenSize, c.mlpSize)
        case .fc2: return (c.mlpSize, c.hiddenSize)
        }
    }

    /// Accepts PEFT-style names and common short forms: query|q, key|k, value|v, attention.output.dense|dense|
    /// output|o|proj, mlp.fc1|fc1, mlp.fc2|fc2.
    public static func parse(_ s: String) -> LoRATarget? {
        switch s.lowercased() {
        case "query", "q", "attention.attention.query": return .query
        case "key", "k", "attention.attention.key": return .key
        case "value", "v", "attention.attention.value": return .value
        case "attention.output.dense", "output.dense", "dense", "output", "o", "proj", "attn.proj": return .output
        case "mlp.fc1", "fc1": return .fc1
        case "mlp.fc2", "fc2": return .fc2
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

    public func validate() throws {
        guard rank > 0 else { throw ViTError.invalidConfig("LoRA rank (--rank) must be positive, got \(rank)") }
        guard alpha.isFinite, alpha > 0 else { throw ViTError.invalidConfig("LoRA alpha (--alpha) must be a positive number, got \(alpha)") }
        guard !targets.isEmpty else { throw ViTError.invalidConfig("LoRA needs at least one target module (--targets)") }
        guard Set(targets).count == targets.count else { throw ViTError.invalidConfig("LoRA target modules (--targets) repeat: \(targets.map(\.rawValue))") }
        guard threshold.isFinite, initialScore.isFinite else {
            throw ViTError.invalidConfig("LoRA threshold (--threshold) and initial score (--initial-score) must be finite numbers")
        }
    }
}
