/// Shape of a pre-norm Vision Transformer in the DINOv2 / timm family.
///
/// Defaults are DINOv2 ViT-S/14 (`facebook/dinov2-small`): width 384, 12 blocks, 6 heads of 64, MLP 1536,
/// 14×14 patches, position embeddings for a 37×37 grid (518 px), LayerNorm eps 1e-6.
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

    public init() {}

    public init(hiddenSize: Int, numLayers: Int, numHeads: Int, mlpSize: Int, patchSize: Int,
                channels: Int = 3, positionGrid: Int, layerNormEps: Float = 1e-6) {
        self.hiddenSize = hiddenSize; self.numLayers = numLayers; self.numHeads = numHeads
        self.mlpSize = mlpSize; self.patchSize = patchSize; self.channels = channels
        self.positionGrid = positionGrid; self.layerNormEps = layerNormEps
    }

    public static let dinov2Small = ViTConfig()

    public var headDim: Int { hiddenSize / numHeads }
    public var patchDim: Int { channels * patchSize * patchSize }

    public var description: String {
        "ViT(width \(hiddenSize), \(numLayers) blocks, \(numHeads) heads, MLP \(mlpSize), patch \(patchSize), "
            + "pos grid \(positionGrid)², eps \(layerNormEps))"
    }

    public func validate() throws {
        func bad(_ what: String) -> ViTError { .invalidConfig(what) }
        guard hiddenSize > 0, numLayers > 0, numHeads > 0, mlpSize > 0, patchSize > 0, channels > 0,
              positionGrid > 0 else { throw bad("every size must be positive: \(self)") }
        guard hiddenSize % numHeads == 0 else {
            throw bad("hidden size \(hiddenSize) is not divisible by \(numHeads) heads")
        }
        guard layerNormEps > 0, layerNormEps.isFinite else { throw bad("layer-norm eps must be > 0") }
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
