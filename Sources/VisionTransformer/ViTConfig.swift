import Tensors

/// Shape of a Vision Transformer of the DINOv2 / timm or the CLIP family: the image stem (patch projection, class
/// token, position embeddings, optionally CLIP's `ln_pre`), the block ``stack``, and optionally CLIP's projection.
///
/// Defaults are DINOv2 ViT-S/14 (`facebook/dinov2-small`): width 384, 12 blocks, 6 heads of 64, MLP 1536,
/// 14×14 patches, position embeddings for a 37×37 grid (518 px), LayerNorm eps 1e-6, exact GELU, LayerScale,
/// a patch bias, no `ln_pre`, no projection.
/// ``clipVision(width:layers:heads:mlp:patch:grid:projection:activation:format:)`` gives the CLIP variant.
///
/// The stack's fields are also reachable here (``hiddenSize``, ``numLayers``, … read and write ``stack``'s).
/// Encoded as one flat JSON object: the stack's keys next to the image's.
public struct ViTConfig: Equatable, CustomStringConvertible {
    /// The block stack the image stem feeds.
    public var stack = TransformerConfig()
    public var patchSize = 14
    public var channels = 3
    /// Side of the square grid the stored position embeddings were trained for (37 for DINOv2: 518 / 14).
    public var positionGrid = 37
    /// Whether the patch projection has a bias (DINOv2 yes, CLIP's `conv1` no).
    public var patchBias = true
    /// CLIP's `ln_pre`: a LayerNorm over the embeddings (patches + class token + positions) before block 0, with
    /// the stack's eps.
    public var preNorm = false
    /// CLIP's `visual.proj`: the image feature is final-norm(class token) · projᵀ of this width, normalized to unit
    /// length (what CLIP's zero-shot logits compare). nil (DINOv2): the feature is the class token itself.
    public var projectionDim: Int?
    /// The names this model's weights and adapters are written under unless a writer is given another format:
    /// a CLIP tower keeps its checkpoint's (OpenCLIP or Hugging Face `CLIPModel`); a DINOv2 model is written in
    /// transformers-5 `Dinov2Model` names whichever DINOv2 names it was read from.
    public var weightFormat: WeightFormat = .transformers5

    public init() {}

    public init(hiddenSize: Int, numLayers: Int, numHeads: Int, mlpSize: Int, patchSize: Int,
                channels: Int = 3, positionGrid: Int, layerNormEps: Float = 1e-6) {
        stack = TransformerConfig(hiddenSize: hiddenSize, numLayers: numLayers, numHeads: numHeads, mlpSize: mlpSize,
                                  layerNormEps: layerNormEps)
        self.patchSize = patchSize; self.channels = channels; self.positionGrid = positionGrid
    }

    public static let dinov2Small = ViTConfig()

    /// A CLIP image tower: no patch bias, `ln_pre`, no LayerScale, LayerNorm eps 1e-5, a projection.
    public static func clipVision(width: Int, layers: Int, heads: Int, mlp: Int, patch: Int, grid: Int,
                                  projection: Int, activation: Activation,
                                  format: WeightFormat = .openCLIP) -> ViTConfig {
        var c = ViTConfig(hiddenSize: width, numLayers: layers, numHeads: heads, mlpSize: mlp, patchSize: patch,
                          positionGrid: grid, layerNormEps: 1e-5)
        c.activation = activation; c.layerScale = false; c.patchBias = false; c.preNorm = true
        c.projectionDim = projection; c.weightFormat = format
        return c
    }

    // MARK: The stack's fields

    public var hiddenSize: Int { get { stack.hiddenSize } set { stack.hiddenSize = newValue } }
    public var numLayers: Int { get { stack.numLayers } set { stack.numLayers = newValue } }
    public var numHeads: Int { get { stack.numHeads } set { stack.numHeads = newValue } }
    public var mlpSize: Int { get { stack.mlpSize } set { stack.mlpSize = newValue } }
    public var layerNormEps: Float { get { stack.layerNormEps } set { stack.layerNormEps = newValue } }
    public var activation: Activation { get { stack.activation } set { stack.activation = newValue } }
    public var layerScale: Bool { get { stack.layerScale } set { stack.layerScale = newValue } }
    public var headDim: Int { stack.headDim }

    /// Width of ``ViTModel/features(_:)``: the projection's, else the hidden size.
    public var featureDim: Int { projectionDim ?? hiddenSize }

    public var patchDim: Int { channels * patchSize * patchSize }

    public var description: String {
        "ViT(width \(hiddenSize), \(numLayers) blocks, \(numHeads) heads, MLP \(mlpSize), patch \(patchSize), "
            + "pos grid \(positionGrid)², eps \(layerNormEps)"
            + (activation == .gelu ? "" : ", \(activation.rawValue)") + (layerScale ? "" : ", no LayerScale")
            + (preNorm ? ", ln_pre" : "") + (projectionDim.map { ", projection \($0)" } ?? "")
            + (stack.causal ? ", causal" : "") + ")"
    }

    public func validate() throws {
        guard hiddenSize > 0, numLayers > 0, numHeads > 0, mlpSize > 0, patchSize > 0, channels > 0,
              positionGrid > 0 else { throw ViTError.invalidConfig("every size must be positive: \(self)") }
        try stack.validate()
        if let p = projectionDim, p <= 0 { throw ViTError.invalidConfig("projection width must be positive, got \(p)") }
    }

    /// Patch grid (rows, cols) of an image; the sides must be positive multiples of the patch size.
    public func patchGrid(height: Int, width: Int) throws -> (rows: Int, cols: Int) {
        guard height > 0, width > 0, height % patchSize == 0, width % patchSize == 0 else {
            throw ViTError.badImageSize(height: height, width: width, patch: patchSize)
        }
        return (height / patchSize, width / patchSize)
    }

    /// Tokens per image: one class token plus one per patch.
    public func tokens(height: Int, width: Int) throws -> Int {
        let g = try patchGrid(height: height, width: width)
        return 1 + g.rows * g.cols
    }
}

extension ViTConfig: Codable {
    enum ImageKeys: String, CodingKey {
        case patchSize, channels, positionGrid, patchBias, preNorm, projectionDim, weightFormat
    }

    /// The stack's keys and the image's in one object (the shape this config had before the stack was split off).
    public init(from decoder: any Decoder) throws {
        stack = try TransformerConfig(from: decoder)
        let c = try decoder.container(keyedBy: ImageKeys.self)
        patchSize = try c.decode(Int.self, forKey: .patchSize)
        channels = try c.decode(Int.self, forKey: .channels)
        positionGrid = try c.decode(Int.self, forKey: .positionGrid)
        patchBias = try c.decode(Bool.self, forKey: .patchBias)
        preNorm = try c.decode(Bool.self, forKey: .preNorm)
        projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim)
        weightFormat = try c.decode(WeightFormat.self, forKey: .weightFormat)
    }

    public func encode(to encoder: any Encoder) throws {
        try stack.encode(to: encoder)
        var c = encoder.container(keyedBy: ImageKeys.self)
        try c.encode(patchSize, forKey: .patchSize)
        try c.encode(channels, forKey: .channels)
        try c.encode(positionGrid, forKey: .positionGrid)
        try c.encode(patchBias, forKey: .patchBias)
        try c.encode(preNorm, forKey: .preNorm)
        try c.encodeIfPresent(projectionDim, forKey: .projectionDim)
        try c.encode(weightFormat, forKey: .weightFormat)
    }
}

public enum ViTError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(String)
    /// A setting (named by its property, e.g. `rank`) that cannot work, and why, in the model's terms.
    case invalidSetting(String, String)
    case badImageSize(height: Int, width: Int, patch: Int)
    case badInput(String)

    public var description: String {
        switch self {
        case .invalidConfig(let s): return "invalid model config: \(s)"
        case .invalidSetting(_, let s): return s
        case .badImageSize(let h, let w, let p):
            return "image size \(h)×\(w) is not a positive multiple of the patch size \(p) "
                + "(use e.g. \(max(1, h / p) * p)×\(max(1, w / p) * p))"
        case .badInput(let s): return s
        }
    }
}
