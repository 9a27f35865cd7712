import Tensors

/// The parameter layout of a ViT under Hugging Face `Dinov2Model` names, in one fixed order, with each tensor in
/// the shape the checkpoint stores (Linear weights [out, in], patch projection [D, C, P, P]).
/// The same layout serves parameters, gradients and optimizer moments.
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
    static func blockEntries(_ c: ViTConfig) -> [(String, [Int], Bool)] {
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

    public static func layout(_ c: ViTConfig) -> TensorLayout {
        var l = TensorLayout()
        let d = c.hiddenSize
        if c.hasImageStem {
            l.add(patchWeight, [d, c.channels, c.patchSize, c.patchSize])
            if c.patchBias { l.add(patchBias, [d]) }
            l.add(clsToken, [1, 1, d])
            l.add(positions, [1, 1 + c.positionGrid * c.positionGrid, d])
        }
        if c.preNorm { l.add(preNormWeight, [d]); l.add(preNormBias, [d]) }
        for b in 0..<c.numLayers {
            for (suffix, shape, packed) in blockEntries(c) { l.add("\(block(b)).\(suffix)", shape, packed: packed) }
        }
        l.add(finalNormWeight, [d])
        l.add(finalNormBias, [d])
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

/// Pointer views of a whole ViT's tensors (parameters, or gradients in the same layout); built once.
public struct ViTTensors {
    public let store: TensorStore
    /// The image stem; nil for a stack without one (CLIP's text tower, ``ViTConfig/hasImageStem``).
    public let patchW, cls, positions, patchB: UnsafeMutablePointer<Float>?
    public let blocks: [BlockTensors]
    public let normW, normB: UnsafeMutablePointer<Float>
    /// CLIP's `ln_pre` and projection; nil for DINOv2.
    public let preNormW, preNormB, projection: UnsafeMutablePointer<Float>?

    public init(config: ViTConfig) throws {
        try self.init(store: TensorStore(layout: ViTParameterNames.layout(config)), config: config)
    }

    public init(store: TensorStore, config: ViTConfig) {
        typealias N = ViTParameterNames
        self.store = store
        func optional(_ n: String) -> UnsafeMutablePointer<Float>? { store.layout.entry(n) == nil ? nil : store.pointer(n) }
        patchW = optional(N.patchWeight); patchB = optional(N.patchBias)
        cls = optional(N.clsToken); positions = optional(N.positions)
        blocks = (0..<config.numLayers).map { BlockTensors(store, $0) }
        normW = store.pointer(N.finalNormWeight); normB = store.pointer(N.finalNormBias)
        preNormW = optional(N.preNormWeight); preNormB = optional(N.preNormBias); projection = optional(N.projection)
    }
}
