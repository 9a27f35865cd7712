import Tensors

extension ViTModel {
    /// The same function as this DINOv2-style ViT, as a CLIP image tower (no patch bias, no LayerScale, a
    /// projection `projection` [E, D] after the final LayerNorm), so that CLIP checkpoints can be built from the
    /// only pretrained ViT weights we have (`selora clip-compose`). Exact rewrites:
    ///  * LayerScale γ folds into the Linear before it: γ ⊙ (W x + b) = (diag(γ) W) x + γ ⊙ b;
    ///  * the patch bias moves into the patch-grid positions (bicubic resizing weights sum to 1, so a constant
    ///    added to every grid position is still that constant after resizing);
    ///  * there is no `ln_pre` (``ViTConfig/preNorm`` stays false: a LayerNorm cannot be made the identity).
    /// Without `projection` it is the identity (E = D): features differ from the original's class token only by
    /// float rounding and the final normalization.
    public func clipForm(projection given: (weight: [Float], dim: Int)? = nil,
                         format: WeightFormat = .openCLIP) throws -> ViTModel {
        guard config.projectionDim == nil else { throw ViTError.invalidConfig("clipForm: the model already has a projection") }
        let d = config.hiddenSize, e = given?.dim ?? d
        let projection = given?.weight ?? (0..<(d * d)).map { $0 % (d + 1) == 0 ? 1 : 0 }
        guard e > 0, projection.count == e * d else {
            throw ViTError.invalidConfig("clipForm: projection has \(projection.count) values; expected \(e) × \(d)")
        }
        var c = config
        c.layerScale = false; c.patchBias = false; c.preNorm = false
        c.projectionDim = e; c.weightFormat = format
        let out = try ViTModel(config: c)
        let src = params.store, dst = out.params.store
        for entry in dst.layout.entries where src.layout.entry(entry.name) != nil {
            _ = dst.buffer(entry.name).update(fromContentsOf: src.buffer(entry.name))
        }
        typealias N = ViTParameterNames
        if let bias = params.patchB {
            let pos = out.params.positions
            for p in 1...(c.positionGrid * c.positionGrid) { for j in 0..<d { pos[p * d + j] += bias[j] } }
        }
        for l in 0..<c.numLayers {
            let from = params.stack.blocks[l], to = out.params.stack.blocks[l]
            for (gamma, w, b, inF) in [(from.ls1, to.oW, to.oB, d), (from.ls2, to.fc2W, to.fc2B, c.mlpSize)] {
                guard let gamma else { continue }
                for o in 0..<d {
                    for i in 0..<inF { w[o * inF + i] *= gamma[o] }
                    b[o] *= gamma[o]
                }
            }
        }
        _ = dst.buffer(N.projection).update(fromContentsOf: projection)
        return out
    }
}
