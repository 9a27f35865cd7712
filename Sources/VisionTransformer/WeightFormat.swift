/// What a weight file is: the model family and whose tensor and module names it uses. Each case has exactly one
/// ``WeightNames`` table (``names``); reading checkpoints, writing them and exporting adapters all go through it,
/// so a new format is one new case and one table.
///
/// Raw values are what the command line's `--names` accepts.
public enum WeightFormat: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    /// DINOv2 in Hugging Face transformers ≥ 5 `Dinov2Model` names: `encoder.layer.N.attention.{q,k,v,o}_proj`,
    /// `mlp.fc1`, `mlp.fc2`, `layer_scale{1,2}.lambda1`, `embeddings.cls_token`, …
    case transformers5
    /// DINOv2 in Hugging Face transformers 4.x `Dinov2Model` names: `encoder.layer.N.attention.attention.{query,key,
    /// value}`, `attention.output.dense`; everything else as ``transformers5``.
    case transformers4
    /// DINOv2 in timm / original DINOv2 names: `cls_token`, `pos_embed`, `blocks.N.attn.qkv` (q, k, v packed
    /// [3D, D]), `attn.proj`, `ls{1,2}.gamma` (absent in DeiT: LayerScale 1), `norm`.
    case timm
    /// OpenCLIP `state_dict`: `visual.conv1.weight`, `visual.transformer.resblocks.N.attn.in_proj_weight` (q, k, v
    /// packed [3D, D]), `visual.proj` [D, E], `token_embedding.weight`, `text_projection` [D, E], `logit_scale`.
    case openCLIP = "open_clip"
    /// Hugging Face `CLIPModel`: `vision_model.encoder.layers.N.self_attn.{q,k,v,out}_proj`, `visual_projection.weight`
    /// [E, D], `text_model.embeddings.token_embedding.weight`, `text_projection.weight` [E, D], `logit_scale`.
    case huggingFaceCLIP = "hf_clip"

    /// The names of this format.
    public var names: WeightNames {
        switch self {
        case .transformers5: return .dinov2(q: "attention.q_proj", k: "attention.k_proj", v: "attention.v_proj",
                                            output: "attention.o_proj")
        case .transformers4: return .dinov2(q: "attention.attention.query", k: "attention.attention.key",
                                            v: "attention.attention.value", output: "attention.output.dense")
        case .timm: return .timm
        case .openCLIP: return .openCLIP
        case .huggingFaceCLIP: return .huggingFaceCLIP
        }
    }

    /// CLIP formats (a projection, optionally a text tower); the others hold a DINOv2-style ViT.
    public var isCLIP: Bool { names.text != nil }

    /// The formats of the same family (DINOv2 or CLIP), this one first: what an adapter or checkpoint meant for a
    /// model of this format may be written in.
    public var family: [WeightFormat] { [self] + Self.allCases.filter { $0 != self && $0.isCLIP == isCLIP } }

    public var description: String {
        switch self {
        case .transformers5: return "DINOv2 in Hugging Face transformers-5 names"
        case .transformers4: return "DINOv2 in Hugging Face transformers-4 names"
        case .timm: return "DINOv2 in timm names"
        case .openCLIP: return "OpenCLIP"
        case .huggingFaceCLIP: return "Hugging Face CLIPModel"
        }
    }

    /// The probe tensors of `formats`, for "not a … checkpoint" errors: "`a` + `b` (name), `c` or `d` (name), …".
    static func probeList(_ formats: [WeightFormat]) -> String {
        formats.map { f in
            f.names.probes.map { $0.map { "`\($0)`" }.joined(separator: " + ") }.joined(separator: " or ") + " (\(f))"
        }.joined(separator: ", ")
    }

    /// Prefixes a checkpoint may put before every name (a wrapper module's), tried in this order.
    static let prefixes = ["", "module.", "model.", "dinov2.", "backbone.", "vit.", "encoder.", "clip."]
}

/// Names of a checkpoint's tensors, and of the modules adapters attach to, in one ``WeightFormat``. Block tensors
/// are `blocks + "N." + name`; a module `m`'s tensors are `m.weight` and `m.bias`.
public struct WeightNames: Sendable {
    /// Image stem and final norm (full tensor or module names).
    public var patchWeight: String
    /// The patch projection's bias; nil: the format has none.
    public var patchBias: String?
    public var classToken: String
    /// Leading 1s of the stored class token's shape: 2 for [1, 1, D], 0 for [D].
    public var classTokenUnitDims: Int
    public var positions: String
    /// Leading 1s of the stored position embedding's shape: 1 for [1, 1 + G², D], 0 for [1 + G², D].
    public var positionsUnitDims: Int
    /// CLIP's `ln_pre` (module); nil: the format has none.
    public var preNorm: String?
    /// The final LayerNorm (module).
    public var finalNorm: String
    /// The image projection (tensor); nil: the format has none.
    public var projection: String?
    /// Whether the projection is stored [D, E] (`x @ proj`) rather than as a Linear weight [E, D].
    public var projectionTransposed = false

    /// Prefix of the block tensors: block N's are `blocks + "N." + …`.
    public var blocks: String
    public var norm1: String
    public var norm2: String
    /// Query, key and value: three modules, or one packed tensor pair.
    public var qkv: QKV
    public var output: String
    public var fc1: String
    public var fc2: String
    /// LayerScale tensors of the two residual branches; nil: the format has none.
    public var layerScale: (String, String)?
    /// Whether a file may leave LayerScale out (timm's DeiT: it is then 1).
    public var layerScaleOptional = false
    /// CLIP's text tower; nil for the DINOv2 formats.
    public var text: TextNames?
    /// Tensors whose presence (all of one alternative) identifies the format.
    public var probes: [[String]]

    public enum QKV: Sendable {
        /// Three Linear modules (q, k, v).
        case separate(String, String, String)
        /// One [3D, D] weight and one [3D] bias with q, k, v stacked along the first axis. `modules`: the
        /// module paths adapters on q, k, v are exported under (rows 0..<D, D..<2D, 2D..<3D of the packed weight),
        /// nil when the format has none.
        case packed(weight: String, bias: String, modules: (String, String, String)?)
    }

    public struct TextNames: Sendable {
        public var tokenEmbedding: String
        public var positions: String
        /// Stored [D, E] when ``WeightNames/projectionTransposed``, else [E, D].
        public var projection: String
        public var finalNorm: String
        public var blocks: String
    }

    /// The module path of a LoRA target's Linear inside a block; nil when the format packs q, k, v without naming
    /// them separately (timm).
    public func module(_ t: LoRATarget) -> String? {
        switch (t, qkv) {
        case (.query, .separate(let q, _, _)): return q
        case (.key, .separate(_, let k, _)): return k
        case (.value, .separate(_, _, let v)): return v
        case (.query, .packed(_, _, let m)): return m?.0
        case (.key, .packed(_, _, let m)): return m?.1
        case (.value, .packed(_, _, let m)): return m?.2
        case (.output, _): return output
        case (.fc1, _): return fc1
        case (.fc2, _): return fc2
        }
    }

    /// (suffix in ``ViTParameterNames``' layout, name here) of the block tensors other than q, k, v and LayerScale.
    var blockPairs: [(String, String)] {
        [("norm1", norm1), ("attention.output.dense", output), ("norm2", norm2), ("mlp.fc1", fc1), ("mlp.fc2", fc2)]
            .flatMap { mine, theirs in ["weight", "bias"].map { ("\(mine).\($0)", "\(theirs).\($0)") } }
    }

    /// (suffix in the layout, name here) of the LayerScale tensors; empty when the format has none.
    var layerScalePairs: [(String, String)] {
        layerScale.map { [("layer_scale1.lambda1", $0.0), ("layer_scale2.lambda1", $0.1)] } ?? []
    }

    /// Internal layout suffixes of q, k, v (weight then bias).
    static let qkvInternal = ["query", "key", "value"].map { "attention.attention.\($0)" }

    static func dinov2(q: String, k: String, v: String, output: String) -> WeightNames {
        WeightNames(patchWeight: "embeddings.patch_embeddings.projection.weight",
                    patchBias: "embeddings.patch_embeddings.projection.bias", classToken: "embeddings.cls_token",
                    classTokenUnitDims: 2, positions: "embeddings.position_embeddings", positionsUnitDims: 1,
                    preNorm: nil, finalNorm: "layernorm", projection: nil, blocks: "encoder.layer.",
                    norm1: "norm1", norm2: "norm2", qkv: .separate(q, k, v), output: output, fc1: "mlp.fc1",
                    fc2: "mlp.fc2", layerScale: ("layer_scale1.lambda1", "layer_scale2.lambda1"), text: nil,
                    probes: [["embeddings.cls_token", "encoder.layer.0.\(q).weight"]])
    }

    static let timm = WeightNames(
        patchWeight: "patch_embed.proj.weight", patchBias: "patch_embed.proj.bias", classToken: "cls_token",
        classTokenUnitDims: 2, positions: "pos_embed", positionsUnitDims: 1, preNorm: nil, finalNorm: "norm",
        projection: nil, blocks: "blocks.", norm1: "norm1", norm2: "norm2",
        qkv: .packed(weight: "attn.qkv.weight", bias: "attn.qkv.bias", modules: nil), output: "attn.proj",
        fc1: "mlp.fc1", fc2: "mlp.fc2", layerScale: ("ls1.gamma", "ls2.gamma"), layerScaleOptional: true, text: nil,
        probes: [["cls_token", "blocks.0.norm1.weight"]])

    static let openCLIP = WeightNames(
        patchWeight: "visual.conv1.weight", patchBias: nil, classToken: "visual.class_embedding", classTokenUnitDims: 0,
        positions: "visual.positional_embedding", positionsUnitDims: 0, preNorm: "visual.ln_pre",
        finalNorm: "visual.ln_post", projection: "visual.proj", projectionTransposed: true,
        blocks: "visual.transformer.resblocks.", norm1: "ln_1", norm2: "ln_2",
        qkv: .packed(weight: "attn.in_proj_weight", bias: "attn.in_proj_bias",
                     modules: ("attn.q_proj", "attn.k_proj", "attn.v_proj")),
        output: "attn.out_proj", fc1: "mlp.c_fc", fc2: "mlp.c_proj", layerScale: nil,
        text: TextNames(tokenEmbedding: "token_embedding.weight", positions: "positional_embedding",
                        projection: "text_projection", finalNorm: "ln_final", blocks: "transformer.resblocks."),
        probes: [["visual.conv1.weight"], ["token_embedding.weight"]])

    static let huggingFaceCLIP = WeightNames(
        patchWeight: "vision_model.embeddings.patch_embedding.weight", patchBias: nil,
        classToken: "vision_model.embeddings.class_embedding", classTokenUnitDims: 0,
        positions: "vision_model.embeddings.position_embedding.weight", positionsUnitDims: 0,
        preNorm: "vision_model.pre_layrnorm", finalNorm: "vision_model.post_layernorm",
        projection: "visual_projection.weight", blocks: "vision_model.encoder.layers.", norm1: "layer_norm1",
        norm2: "layer_norm2", qkv: .separate("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
        output: "self_attn.out_proj", fc1: "mlp.fc1", fc2: "mlp.fc2", layerScale: nil,
        text: TextNames(tokenEmbedding: "text_model.embeddings.token_embedding.weight",
                        positions: "text_model.embeddings.position_embedding.weight", projection: "text_projection.weight",
                        finalNorm: "text_model.final_layer_norm", blocks: "text_model.encoder.layers."),
        probes: [["vision_model.embeddings.patch_embedding.weight"], ["text_model.embeddings.token_embedding.weight"]])
}
