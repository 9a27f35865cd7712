/// A Linear layer of a ViT block that can carry a LoRA block. Raw values and ``relativePath`` are the in-memory
/// layout's names (``ViTParameterNames``: transformers-4 `Dinov2Layer` names); files use
/// ``modulePath(layer:format:)``.
public enum LoRATarget: String, CaseIterable, Codable, Sendable {
    case query, key, value
    case output = "attention.output.dense"
    case fc1 = "mlp.fc1"
    case fc2 = "mlp.fc2"

    /// Path of the Linear inside `encoder.layer.L.` of the in-memory layout.
    public var relativePath: String {
        switch self {
        case .query, .key, .value: return "attention.attention.\(rawValue)"
        default: return rawValue
        }
    }

    public func modulePath(layer: Int) -> String { "\(ViTParameterNames.block(layer)).\(relativePath)" }

    /// The module path in `format`'s names (what PEFT keys and `target_modules` use on export):
    /// `<blocks><layer>.<module>` from the format's ``WeightNames``, e.g. `encoder.layer.3.attention.q_proj`
    /// (transformers 5). OpenCLIP packs q, k, v into one `in_proj_weight`; their blocks are exported as
    /// `attn.q_proj`, `attn.k_proj`, `attn.v_proj` (rows 0..<D, D..<2D, 2D..<3D of it). timm's packed `attn.qkv` has
    /// no such names: q, k, v there are an error.
    public func modulePath(layer: Int, format: WeightFormat) throws -> String {
        guard let module = format.names.module(self) else {
            throw ViTError.invalidConfig("\(format) (\(format.rawValue)) names pack q, k and v into one tensor: a LoRA "
                + "block on `\(rawValue)` has no module there; export in transformers5 or transformers4 names")
        }
        return "\(format.names.blocks)\(layer).\(module)"
    }

    /// A `target_modules` entry: a name inside a block (``parse(_:)``; layer nil), or a full module path
    /// `…<blocks><layer>.<module>` of any ``WeightFormat`` (anything may stand before the blocks' prefix, e.g. a
    /// wrapper's `dinov2.`).
    public static func parseModule(_ s: String) -> (target: LoRATarget, layer: Int?)? {
        if let t = parse(s) { return (t, nil) }
        for f in WeightFormat.allCases {
            let n = f.names
            guard let r = s.range(of: n.blocks) else { continue }
            let rest = s[r.upperBound...]
            guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]), layer >= 0 else { continue }
            let module = String(rest[rest.index(after: dot)...])
            if let t = allCases.first(where: { n.module($0) == module }) { return (t, layer) }
        }
        return nil
    }

    /// (in, out) features of the Linear.
    public func features(_ c: ViTConfig) -> (in: Int, out: Int) {
        switch self {
        case .query, .key, .value, .output: return (c.hiddenSize, c.hiddenSize)
        case .fc1: return (c.hiddenSize, c.mlpSize)
        case .fc2: return (c.mlpSize, c.hiddenSize)
        }
    }

    /// Accepts PEFT-style names and common short forms: query|q|q_proj, key|k|k_proj, value|v|v_proj,
    /// attention.output.dense|dense|output|o|o_proj|proj|out_proj, mlp.fc1|fc1|c_fc, mlp.fc2|fc2|c_proj, with the
    /// in-block prefixes of every ``WeightFormat`` (transformers 5 `attention.q_proj`, transformers 4, timm,
    /// OpenCLIP and Hugging Face CLIP names).
    public static func parse(_ s: String) -> LoRATarget? {
        switch s.lowercased() {
        case "query", "q", "attention.attention.query", "q_proj", "attention.q_proj", "attn.q_proj", "self_attn.q_proj":
            return .query
        case "key", "k", "attention.attention.key", "k_proj", "attention.k_proj", "attn.k_proj", "self_attn.k_proj":
            return .key
        case "value", "v", "attention.attention.value", "v_proj", "attention.v_proj", "attn.v_proj", "self_attn.v_proj":
            return .value
        case "attention.output.dense", "output.dense", "dense", "output", "o", "o_proj", "attention.o_proj", "proj",
             "attn.proj", "out_proj", "attn.out_proj", "self_attn.out_proj": return .output
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
