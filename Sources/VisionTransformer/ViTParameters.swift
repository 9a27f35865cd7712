import Tensors

/// The parameter layout of a ViT under Hugging Face `Dinov2Model` names, in one fixed order, with each tensor in
/// the shape the checkpoint stores (Linear weights [out, in], patch projection [D, C, P, P]).
/// The same layout serves parameters, gradients and optimizer moments. A block stack on its own (CLIP's text
/// tower) uses the stack's part of it: the blocks and the final LayerNorm, under the same names.
public enum ViTParameterNames {
    public static let patchWeight = "embeddings.patch_embeddings.projection.weight"
    public static let patchBias = "embeddings.patch_embeddings.projection.bias"
    public static let clsToken = "embeddings.cls_token"
    public static let positions = "embeddings.position_embeddings"
    public static let finalNormWeight = "layernorm.weight"
    public static let finalNormBias = "layernorm.bias"
    /// CLIP only (``ViTConfig/preNorm``, ``ViTConfig/projectionDim``): `ln_pre` and the projection [E, D].
    public static let preNormWeight = "pre_layernorm.weight"
    public static let preNormBias = "pre_layernorm.bias"
    public static let projection = "projection.weight"

    public static func block(_ l: Int) -> String { "encoder.layer.\(l)" }

    /// Per-block tensors: (suffix, shape, packed) in layout order. Query, key and value weights are packed
    /// back to back (and so are their biases) so the block runs them as one [3D, D] GEMM.
    static func blockEntries(_ c: TransformerConfig) -> [(String, [Int], Bool)] {
        let d = c.hiddenSize, m = c.mlpSize
        let entries: [(String, [Int], Bool)] = [
            ("norm1.weight", [d], false), ("norm1.bias", [d], false),
            ("attention.attention.query.weight", [d, d], false),
            ("attention.attention.key.weight", [d, d], true),
            ("attention.attention.value.weight", [d, d], true),
            ("attention.attention.query.bias", [d], false),
            ("attention.attention.key.bias", [d], true),
            ("attention.attention.value.bias", [d], true),
            ("attention.output.dense.weight", [d, d], false), ("attention.output.dense.bias", [d], false),
            ("layer_scale1.lambda1", [d], false),
            ("norm2.weight", [d], false), ("norm2.bias", [d], false),
            ("mlp.fc1.weight", [m, d], false), ("mlp.fc1.bias", [m], false),
            ("mlp.fc2.weight", [d, m], false), ("mlp.fc2.bias", [d], false),
            ("layer_scale2.lambda1", [d], false),
        ]
        return c.layerScale ? entries : entries.filter { !$0.0.hasPrefix("layer_scale") }
    }

    /// The stack's tensors in layout order: block 0 … block L−1, then the final LayerNorm.
    static func addStack(_ c: TransformerConfig, to l: inout TensorLayout) {
        for b in 0..<c.numLayers {
            for (suffix, shape, packed) in blockEntries(c) { l.add("\(block(b)).\(suffix)", shape, packed: packed) }
        }
        l.add(finalNormWeight, [c.hiddenSize])
        l.add(finalNormBias, [c.hiddenSize])
    }

    /// A block stack alone (CLIP's text tower): ``addStack(_:to:)``'s tensors.
    public static func layout(_ c: TransformerConfig) -> TensorLayout {
        var l = TensorLayout()
        addStack(c, to: &l)
        return l
    }

    /// A ViT: the patch projection (and its bias), class token, positions, `ln_pre`, the stack, the projection.
    public static func layout(_ c: ViTConfig) -> TensorLayout {
        var l = TensorLayout()
        let d = c.hiddenSize
        l.add(patchWeight, [d, c.channels, c.patchSize, c.patchSize])
        if c.patchBias { l.add(patchBias, [d]) }
        l.add(clsToken, [1, 1, d])
        l.add(positions, [1, 1 + c.positionGrid * c.positionGrid, d])
        if c.preNorm { l.add(preNormWeight, [d]); l.add(preNormBias, [d]) }
        addStack(c.stack, to: &l)
        if let e = c.projectionDim { l.add(projection, [e, d]) }
        return l
    }
}

/// Pointers to one block's tensors inside a store laid out by ``ViTParameterNames/layout(_:)``.
public struct BlockTensors {
    public let norm1W, norm1B: UnsafeMutablePointer<Float>
    public let qW, qB, kW, kB, vW, vB, oW, oB: UnsafeMutablePointer<Float>
    /// q, k, v weights as one [3D, D] matrix and their biases as one [3D] vector (packed in the layout).
    public var qkvW: UnsafeMutablePointer<Float> { qW }
    public var qkvB: UnsafeMutablePointer<Float> { qB }
    /// LayerScale vectors; nil without LayerScale (CLIP).
    public let ls1: UnsafeMutablePointer<Float>?
    public let norm2W, norm2B: UnsafeMutablePointer<Float>
    public let fc1W, fc1B, fc2W, fc2B: UnsafeMutablePointer<Float>
    public let ls2: UnsafeMutablePointer<Float>?

    init(_ s: TensorStore, _ l: Int) {
        let p = ViTParameterNames.block(l)
        func t(_ n: String) -> UnsafeMutablePointer<Float> { s.pointer("\(p).\(n)") }
        func optional(_ n: String) -> UnsafeMutablePointer<Float>? {
            s.layout.entry("\(p).\(n)") == nil ? nil : t(n)
        }
        norm1W = t("norm1.weight"); norm1B = t("norm1.bias")
        qW = t("attention.attention.query.weight"); qB = t("attention.attention.query.bias")
        kW = t("attention.attention.key.weight"); kB = t("attention.attention.key.bias")
        vW = t("attention.attention.value.weight"); vB = t("attention.attention.value.bias")
        oW = t("attention.output.dense.weight"); oB = t("attention.output.dense.bias")
        ls1 = optional("layer_scale1.lambda1")
        norm2W = t("norm2.weight"); norm2B = t("norm2.bias")
        fc1W = t("mlp.fc1.weight"); fc1B = t("mlp.fc1.bias")
        fc2W = t("mlp.fc2.weight"); fc2B = t("mlp.fc2.bias")
        ls2 = optional("layer_scale2.lambda1")
        let d = s.layout.entry("\(p).attention.attention.query.bias")?.count ?? 0
        precondition(kW == qW + d * d && vW == kW + d * d && kB == qB + d && vB == kB + d,
                     "BlockTensors: q/k/v are not packed in the layout")
    }
}

/// Pointer views of a block stack's tensors (parameters, or gradients in the same layout), inside a store that
/// holds ``ViTParameterNames/addStack(_:to:)``'s tensors: the stack's own, or a whole ViT's.
public struct TransformerTensors {
    /// The store the pointers point into (for a ViT's stack, the whole model's).
    public let store: TensorStore
    public let blocks: [BlockTensors]
    /// The final LayerNorm (DINOv2 `layernorm`, CLIP `ln_post` / `ln_final`).
    public let normW, normB: UnsafeMutablePointer<Float>

    /// A zeroed store of its own, holding the stack alone.
    public init(config: TransformerConfig) throws {
        self.init(store: try TensorStore(layout: ViTParameterNames.layout(config)), config: config)
    }

    public init(store: TensorStore, config: TransformerConfig) {
        self.store = store
        blocks = (0..<config.numLayers).map { BlockTensors(store, $0) }
        normW = store.pointer(ViTParameterNames.finalNormWeight); normB = store.pointer(ViTParameterNames.finalNormBias)
    }
}

/// Pointer views of a whole ViT's tensors (parameters, or gradients in the same layout); built once.
public struct ViTTensors {
    public let store: TensorStore
    /// The image stem; `patchB` is nil without ``ViTConfig/patchBias`` (CLIP).
    public let patchW, cls, positions: UnsafeMutablePointer<Float>
    public let patchB: UnsafeMutablePointer<Float>?
    /// The blocks and the final LayerNorm (pointers into ``store``).
    public let stack: TransformerTensors
    /// CLIP's `ln_pre` and projection; nil for DINOv2.
    public let preNormW, preNormB, projection: UnsafeMutablePointer<Float>?

    public init(config: ViTConfig) throws {
        try self.init(store: TensorStore(layout: ViTParameterNames.layout(config)), config: config)
    }

    public init(store: TensorStore, config: ViTConfig) {
        typealias N = ViTParameterNames
        self.store = store
        func optional(_ n: String) -> UnsafeMutablePointer<Float>? { store.layout.entry(n) == nil ? nil : store.pointer(n) }
        patchW = store.pointer(N.patchWeight); patchB = optional(N.patchBias)
        cls = store.pointer(N.clsToken); positions = store.pointer(N.positions)
        stack = TransformerTensors(store: store, config: config.stack)
        preNormW = optional(N.preNormWeight); preNormB = optional(N.preNormBias); projection = optional(N.projection)
    }
}
