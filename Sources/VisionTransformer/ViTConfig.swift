import Tensors

/// Shape of a pre-norm transformer: a Vision Transformer of the DINOv2 / timm or the CLIP family, or (with
/// `causal`) the block stack of CLIP's text tower.
///
/// Defaults are DINOv2 ViT-S/14 (`facebook/dinov2-small`): width 384, 12 blocks, 6 heads of 64, MLP 1536,
/// 14×14 patches, position embeddings for a 37×37 grid (518 px), LayerNorm eps 1e-6, exact GELU, LayerScale,
/// a patch bias, no `ln_pre`, no projection. ``clipVision(width:layers:heads:mlp:patch:grid:projection:activation:format:)``
/// gives the CLIP variant.
public struct ViTConfig: Equatable, Codable, CustomStringConvertible {
    public var hiddenSize = 384
    public var numLayers = 12
    public var numHeads = 6
    public var mlpSize = 1536
    public var patchSize = 14
    public var channels = 3
    /// Side of the square grid the stored position embeddings were trained for (37 for DINOv2: 518 / 14).
    public var positionGrid = 37
    public var layerNormEps: Float = 1e-6
    /// The MLP's activation: exact GELU (DINOv2, LAION OpenCLIP) or QuickGELU (OpenAI CLIP).
    public var activation: Activation = .gelu
    /// DINOv2's per-channel LayerScale on both residual branches (`layer_scale{1,2}.lambda1`); CLIP has none.
    public var layerScale = true
    /// Whether the patch projection has a bias (DINOv2 yes, CLIP's `conv1` no).
    public var patchBias = true
    /// CLIP's `ln_pre`: a LayerNorm over the embeddings (patches + class token + positions) before block 0.
    public var preNorm = false
    /// CLIP's `visual.proj`: the image feature is final-norm(class token) · projᵀ of this width, normalized to unit
    /// length (what CLIP's zero-shot logits compare). nil (DINOv2): the feature is the class token itself.
    public var projectionDim: Int?
    /// Causal self-attention (token i attends to tokens ≤ i): CLIP's text tower.
    public var causal = false
    /// The names this model's weights and adapters are written under unless a writer is given another format:
    /// a CLIP tower keeps its checkpoint's (OpenCLIP or Hugging Face `CLIPModel`); a DINOv2 model is written in
    /// transformers-5 `Dinov2Model` names whichever DINOv2 names it was read from.
    public var weightFormat: WeightFormat = .transformers5

    public init() {}

    public init(hiddenSize: Int, numLayers: Int, numHeads: Int, mlpSize: Int, patchSize: Int,
                channels: Int = 3, positionGrid: Int, layerNormEps: Float = 1e-6) {
        self.hiddenSize = hiddenSize; self.numLayers = numLayers; self.numHeads = numHeads
        self.mlpSize = mlpSize; self.patchSize = patchSize; self.channels = channels
        self.positionGrid = positionGrid; self.layerNormEps = layerNormEps
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

    /// Whether the model has the image stem (patch projection, class token, positions): every image tower; not
    /// the causal stack of CLIP's text tower, whose embeddings ``CLIPTextModel`` owns.
    public var hasImageStem: Bool { !causal }

    /// Width of ``ViTModel/features(_:)``: the projection's, else the hidden size.
    public var featureDim: Int { projectionDim ?? hiddenSize }

    public var headDim: Int { hiddenSize / numHeads }
    public var patchDim: Int { channels * patchSize * patchSize }

    public var description: String {
        "ViT(width \(hiddenSize), \(numLayers) blocks, \(numHeads) heads, MLP \(mlpSize), patch \(patchSize), "
            + "pos grid \(positionGrid)², eps \(layerNormEps)"
            + (activation == .gelu ? "" : ", \(activation.rawValue)") + (layerScale ? "" : ", no LayerScale")
            + (preNorm ? ", ln_pre" : "") + (projectionDim.map { ", projection \($0)" } ?? "")
            + (causal ? ", causal" : "") + ")"
    }

    public func validate() throws {
        func bad(_ what: String) -> ViTError { .invalidConfig(what) }
        guard hiddenSize > 0, numLayers > 0, numHeads > 0, mlpSize > 0, patchSize > 0, channels > 0,
              positionGrid > 0 else { throw bad("every size must be positive: \(self)") }
        guard hiddenSize % numHeads == 0 else {
            throw bad("hidden size \(hiddenSize) is not divisible by \(numHeads) heads")
        }
        guard layerNormEps > 0, layerNormEps.isFinite else { throw bad("layer-norm eps must be > 0") }
        if let p = projectionDim, p <= 0 { throw bad("projection width must be positive, got \(p)") }
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

public enum ViTError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(String)
    case badImageSize(height: Int, width: Int, patch: Int)
    case badInput(String)

    public var description: String {
        switch self {
        case .invalidConfig(let s): return "invalid model config: \(s)"
        case .badImageSize(let h, let w, let p):
            return "image size \(h)×\(w) is not a positive multiple of the patch size \(p) "
                + "(use e.g. \(max(1, h / p) * p)×\(max(1, w / p) * p))"
        case .badInput(let s): return s
        }
    }
}
