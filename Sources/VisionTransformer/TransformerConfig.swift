import Tensors

/// Shape of a pre-norm transformer block stack: `numLayers` blocks of
///     x ← x + γ₁ ⊙ attention(LN₁(x));   x ← x + γ₂ ⊙ fc2(act(fc1(LN₂(x))))
/// (γ = LayerScale, or 1 without it) followed by a final LayerNorm. It says nothing about what feeds the stack:
/// ``ViTConfig`` adds the image stem, ``CLIPTextConfig`` the token embedding.
///
/// Defaults are DINOv2 ViT-S/14's stack: width 384, 12 blocks, 6 heads of 64, MLP 1536, LayerNorm eps 1e-6,
/// exact GELU, LayerScale, bidirectional attention.
public struct TransformerConfig: Equatable, Codable, CustomStringConvertible, Sendable {
    public var hiddenSize = 384
    public var numLayers = 12
    public var numHeads = 6
    public var mlpSize = 1536
    /// Of every LayerNorm of the stack (both per block and the final one).
    public var layerNormEps: Float = 1e-6
    /// The MLP's activation: exact GELU (DINOv2, LAION OpenCLIP) or QuickGELU (OpenAI CLIP).
    public var activation: Activation = .gelu
    /// DINOv2's per-channel LayerScale on both residual branches (`layer_scale{1,2}.lambda1`); CLIP has none.
    public var layerScale = true
    /// Causal self-attention (token i attends to tokens ≤ i): CLIP's text tower.
    public var causal = false

    public init() {}

    public init(hiddenSize: Int, numLayers: Int, numHeads: Int, mlpSize: Int, layerNormEps: Float = 1e-6,
                activation: Activation = .gelu, layerScale: Bool = true, causal: Bool = false) {
        self.hiddenSize = hiddenSize; self.numLayers = numLayers; self.numHeads = numHeads; self.mlpSize = mlpSize
        self.layerNormEps = layerNormEps; self.activation = activation; self.layerScale = layerScale
        self.causal = causal
    }

    public var headDim: Int { hiddenSize / numHeads }

    public var description: String {
        "Transformer(width \(hiddenSize), \(numLayers) blocks, \(numHeads) heads, MLP \(mlpSize), eps \(layerNormEps)"
            + (activation == .gelu ? "" : ", \(activation.rawValue)") + (layerScale ? "" : ", no LayerScale")
            + (causal ? ", causal" : "") + ")"
    }

    public func validate() throws {
        guard hiddenSize > 0, numLayers > 0, numHeads > 0, mlpSize > 0 else {
            throw ViTError.invalidConfig("every size must be positive: \(self)")
        }
        guard hiddenSize % numHeads == 0 else {
            throw ViTError.invalidConfig("hidden size \(hiddenSize) is not divisible by \(numHeads) heads")
        }
        guard layerNormEps > 0, layerNormEps.isFinite else {
            throw ViTError.invalidConfig("layer-norm eps must be > 0")
        }
    }
}
