import Tensors

/// Everything one forward/backward of a ViT over a fixed (batch, height, width) needs, laid out once in two
/// allocations: `acts` (what the forward saves for the backward) and `grads` (backward scratch), each holding
/// the image stem's tensors and the block ``stack``'s. Build it once per shape and reuse it every step; nothing
/// is allocated while stepping.
///
/// With `training == false` all blocks share one slot of saved activations (inference needs no history), which
/// cuts memory by the number of blocks.
public final class ViTActivations {
    public let config: ViTConfig
    public let height, width: Int
    public let patchShape: PatchShape
    public let resize: BicubicResize
    /// The block stack's activations and scratch (pointers into `acts` and `grads`).
    public let stack: TransformerActivations
    public var batch: Int { stack.batch }
    /// Tokens per image: one class token plus one per patch.
    public var tokens: Int { stack.tokens }
    public var rows: Int { stack.rows }
    public var training: Bool { stack.training }
    /// [batch, tokens, hidden]: the final LayerNorm's output (= ``TransformerActivations/out``).
    public var out: UnsafeMutablePointer<Float> { stack.out }

    public let acts: TensorStore
    public let grads: TensorStore?

    /// The stem's saved activations (pointers into `acts`): the im2col'd pixels, the patch projection's output
    /// and the positions resized to this grid.
    public let patches, patchOut, posResized: UnsafeMutablePointer<Float>
    /// CLIP: the embeddings before `ln_pre` and its statistics (nil without ``ViTConfig/preNorm``).
    public let embeddings, embMean, embRstd: UnsafeMutablePointer<Float>?
    /// [batch, featureDim]: ``ViTModel/features(_:)`` writes the features here; with a projection, `projected`
    /// holds them before the unit-length normalization (= OpenCLIP `encode_image`).
    public let features: UnsafeMutablePointer<Float>
    public let projected: UnsafeMutablePointer<Float>?

    /// The stem's and the features' backward scratch (pointers into `grads`), nil when built without gradients.
    public struct Scratch {
        public let dPatchOut, dPos, dPatches, dProjected: UnsafeMutablePointer<Float>
    }
    public let scratch: Scratch?

    /// `savedFrom`: with `training`, save activations only from this block up (a backward that stops there —
    /// ``TransformerActivations/savedFrom``).
    public init(config: ViTConfig, batch: Int, height: Int, width: Int, training: Bool = true, savedFrom: Int = 0) throws {
        try config.validate()
        let grid = try config.patchGrid(height: height, width: width)
        guard batch > 0 else { throw ViTError.badInput("batch size must be positive, got \(batch)") }
        self.config = config
        self.height = height; self.width = width
        let tokens = 1 + grid.rows * grid.cols
        patchShape = PatchShape(batch: batch, channels: config.channels, height: height, width: width,
                                patch: config.patchSize)
        resize = BicubicResize(inRows: config.positionGrid, inCols: config.positionGrid,
                               outRows: grid.rows, outCols: grid.cols)

        let n = batch * tokens, d = config.hiddenSize
        var l = TensorLayout()
        l.add("patches", [patchShape.rows, patchShape.patchDim])
        l.add("patch_out", [patchShape.rows, d])
        l.add("pos_resized", [tokens, d])
        guard (0..<config.numLayers).contains(savedFrom) else {
            throw ViTError.badInput("savedFrom \(savedFrom) is not a block of the \(config.numLayers)")
        }
        TransformerActivations.addActivations(config.stack, batch: batch, tokens: tokens, training: training,
                                              savedFrom: savedFrom, to: &l)
        if config.preNorm { l.add("emb", [n, d]); l.add("emb_mean", [n]); l.add("emb_rstd", [n]) }
        l.add("features", [batch, config.featureDim])
        if config.projectionDim != nil { l.add("projected", [batch, config.featureDim]) }
        let acts = try TensorStore(layout: l)
        self.acts = acts
        func a(_ name: String) -> UnsafeMutablePointer<Float> { acts.pointer(name) }
        patches = a("patches"); patchOut = a("patch_out"); posResized = a("pos_resized")
        func optional(_ name: String) -> UnsafeMutablePointer<Float>? { l.entry(name) == nil ? nil : a(name) }
        embeddings = optional("emb"); embMean = optional("emb_mean"); embRstd = optional("emb_rstd")
        features = a("features"); projected = optional("projected")

        if training {
            var g = TensorLayout()
            TransformerActivations.addScratch(config.stack, batch: batch, tokens: tokens, to: &g)
            g.add("d_patch_out", [n, d])
            g.add("d_pos", [tokens, d])
            g.add("d_patches", [patchShape.rows, patchShape.patchDim])
            g.add("d_projected", [batch, config.featureDim])
            let gs = try TensorStore(layout: g)
            grads = gs
            func p(_ name: String) -> UnsafeMutablePointer<Float> { gs.pointer(name) }
            scratch = Scratch(dPatchOut: p("d_patch_out"), dPos: p("d_pos"), dPatches: p("d_patches"),
                              dProjected: p("d_projected"))
        } else {
            grads = nil
            scratch = nil
        }
        stack = TransformerActivations(config: config.stack, batch: batch, tokens: tokens, training: training,
                                       savedFrom: savedFrom, acts: acts, grads: grads)
    }

    /// Bytes held by the two allocations.
    public var bytes: Int { (acts.storage.count + (grads?.storage.count ?? 0)) * 4 }
}
