import Tensors

/// Everything one forward/backward of a fixed (batch, height, width) needs, laid out once in two allocations:
/// `acts` (what the forward saves for the backward) and `grads` (backward scratch). Build it once per shape and
/// reuse it every step; nothing is allocated while stepping.
///
/// With `training == false` all blocks share one slot of saved activations (inference needs no history), which
/// cuts memory by the number of blocks.
public final class ViTActivations {
    public let config: ViTConfig
    public let batch, height, width, tokens: Int
    public let training: Bool
    public let patchShape: PatchShape
    public let attention: AttentionShape
    public let resize: BicubicResize
    public var rows: Int { batch * tokens }

    public let acts: TensorStore
    public let grads: TensorStore?

    /// Saved per-block activations (pointers into `acts`).
    public struct Block {
        public let resIn, ln1, ln1Mean, ln1Rstd, qkv, probs, ctx, attnOut, resMid: UnsafeMutablePointer<Float>
        public let ln2, ln2Mean, ln2Rstd, fc1, gelu, fc2: UnsafeMutablePointer<Float>
    }
    public let blocks: [Block]
    public let patches, patchOut, posResized, resOut, out, outMean, outRstd: UnsafeMutablePointer<Float>
    /// CLIP: the embeddings before `ln_pre` and its statistics (nil without ``ViTConfig/preNorm``).
    public let embeddings, embMean, embRstd: UnsafeMutablePointer<Float>?
    /// [batch, featureDim]: ``ViTModel/features(_:)`` writes the features here; with a projection, `projected`
    /// holds them before the unit-length normalization (= OpenCLIP `encode_image`).
    public let features: UnsafeMutablePointer<Float>
    public let projected: UnsafeMutablePointer<Float>?

    /// Backward scratch (pointers into `grads`), nil when built without gradients.
    public struct Scratch {
        public let dRes, dA, dCtx, dqkv, dHidden, dProbs, dPatchOut, dPos, lnScratch: UnsafeMutablePointer<Float>
        public let dPatches, dProjected: UnsafeMutablePointer<Float>
    }
    public let scratch: Scratch?

    public convenience init(config: ViTConfig, batch: Int, height: Int, width: Int, training: Bool = true) throws {
        try config.validate()
        let grid = try config.patchGrid(height: height, width: width)
        try self.init(config: config, batch: batch, tokens: 1 + grid.rows * grid.cols, height: height, width: width,
                      grid: grid, training: training)
    }

    /// Activations for a token sequence of `sequence` positions with no image (CLIP's text tower: the caller
    /// writes the embeddings into `blocks[0].resIn` and runs ``ViTModel/encode(_:lora:)``).
    public convenience init(config: ViTConfig, batch: Int, sequence: Int, training: Bool = false) throws {
        try config.validate()
        guard sequence > 0 else { throw ViTError.badInput("sequence length must be positive, got \(sequence)") }
        try self.init(config: config, batch: batch, tokens: sequence, height: 0, width: 0, grid: (0, 0),
                      training: training)
    }

    init(config: ViTConfig, batch: Int, tokens: Int, height: Int, width: Int, grid: (rows: Int, cols: Int),
         training: Bool) throws {
        guard batch > 0 else { throw ViTError.badInput("batch size must be positive, got \(batch)") }
        self.config = config
        self.batch = batch; self.height = height; self.width = width; self.training = training
        self.tokens = tokens
        patchShape = PatchShape(batch: batch, channels: config.channels, height: height, width: width,
                                patch: config.patchSize)
        attention = AttentionShape(batch: batch, tokens: tokens, heads: config.numHeads, headDim: config.headDim,
                                   causal: config.causal)
        // A token sequence (grid 0×0) has no patches: its resize is a never-used 1×1 placeholder.
        resize = BicubicResize(inRows: config.positionGrid, inCols: config.positionGrid,
                               outRows: max(grid.rows, 1), outCols: max(grid.cols, 1))

        let n = batch * tokens, d = config.hiddenSize, m = config.mlpSize
        var l = TensorLayout()
        l.add("patches", [patchShape.rows, patchShape.patchDim])
        l.add("patch_out", [patchShape.rows, d])
        l.add("pos_resized", [tokens, d])
        let slots = training ? config.numLayers : 1
        for s in 0..<slots {
            for (name, shape) in [("res_in", [n, d]), ("ln1", [n, d]), ("ln1_mean", [n]), ("ln1_rstd", [n]),
                                  ("qkv", [n, 3 * d]), ("probs", [attention.probsCount]),
                                  ("ctx", [n, d]), ("attn_out", [n, d]), ("res_mid", [n, d]),
                                  ("ln2", [n, d]), ("ln2_mean", [n]), ("ln2_rstd", [n]),
                                  ("fc1", [n, m]), ("gelu", [n, m]), ("fc2", [n, d])] {
                l.add("\(s).\(name)", shape)
            }
        }
        l.add("res_out", [n, d]); l.add("out", [n, d]); l.add("out_mean", [n]); l.add("out_rstd", [n])
        if config.preNorm { l.add("emb", [n, d]); l.add("emb_mean", [n]); l.add("emb_rstd", [n]) }
        l.add("features", [batch, config.featureDim])
        if config.projectionDim != nil { l.add("projected", [batch, config.featureDim]) }
        let acts = try TensorStore(layout: l)
        self.acts = acts
        func a(_ name: String) -> UnsafeMutablePointer<Float> { acts.pointer(name) }
        blocks = (0..<config.numLayers).map { layer in
            let s = training ? layer : 0
            func b(_ name: String) -> UnsafeMutablePointer<Float> { a("\(s).\(name)") }
            return Block(resIn: b("res_in"), ln1: b("ln1"), ln1Mean: b("ln1_mean"), ln1Rstd: b("ln1_rstd"),
                         qkv: b("qkv"), probs: b("probs"), ctx: b("ctx"), attnOut: b("attn_out"),
                         resMid: b("res_mid"), ln2: b("ln2"), ln2Mean: b("ln2_mean"), ln2Rstd: b("ln2_rstd"),
                         fc1: b("fc1"), gelu: b("gelu"), fc2: b("fc2"))
        }
        patches = a("patches"); patchOut = a("patch_out"); posResized = a("pos_resized")
        resOut = a("res_out"); out = a("out"); outMean = a("out_mean"); outRstd = a("out_rstd")
        func optional(_ name: String) -> UnsafeMutablePointer<Float>? { l.entry(name) == nil ? nil : a(name) }
        embeddings = optional("emb"); embMean = optional("emb_mean"); embRstd = optional("emb_rstd")
        features = a("features"); projected = optional("projected")

        if training {
            var g = TensorLayout()
            for name in ["d_res", "d_a", "d_ctx", "d_patch_out"] { g.add(name, [n, d]) }
            g.add("d_qkv", [n, 3 * d])
            g.add("d_hidden", [n, m])
            g.add("d_probs", [attention.probsCount])
            g.add("d_pos", [tokens, d])
            g.add("ln_scratch", [Kernels.layerNormScratchCount(cols: max(d, m))])
            g.add("d_patches", [patchShape.rows, patchShape.patchDim])
            g.add("d_projected", [batch, config.featureDim])
            let gs = try TensorStore(layout: g)
            grads = gs
            func p(_ name: String) -> UnsafeMutablePointer<Float> { gs.pointer(name) }
            scratch = Scratch(dRes: p("d_res"), dA: p("d_a"), dCtx: p("d_ctx"), dqkv: p("d_qkv"), dHidden: p("d_hidden"), dProbs: p("d_probs"), dPatchOut: p("d_patch_out"),
                              dPos: p("d_pos"), lnScratch: p("ln_scratch"), dPatches: p("d_patches"),
                              dProjected: p("d_projected"))
        } else {
            grads = nil
            scratch = nil
        }
    }

    /// Bytes held by the two allocations.
    public var bytes: Int { (acts.storage.count + (grads?.storage.count ?? 0)) * 4 }

    /// Output of block `l` (the next block's input, or the final residual stream).
    func blockOutput(_ l: Int) -> UnsafeMutablePointer<Float> {
        l + 1 < blocks.count ? blocks[l + 1].resIn : resOut
    }
}
