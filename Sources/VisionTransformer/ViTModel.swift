import Tensors

/// A pre-norm ViT (DINOv2 / timm or CLIP image tower): the image stem (patch projection, class token, resized
/// positions, CLIP's `ln_pre`), the block ``stack``, and the per-image ``features(_:)`` (CLIP's projection).
/// Forward, and backward with input gradients always and parameter gradients when a gradient store is given.
///
/// Paired `forward` / `backward` per layer live in the layer files; this type strings them together and owns
/// the parameters (one allocation, ``ViTParameterNames/layout(_:)``; the stack's tensors are views into it).
public final class ViTModel {
    public let config: ViTConfig
    public let params: ViTTensors
    /// The blocks and the final LayerNorm, over `params.stack`.
    public let stack: TransformerStack

    public init(config: ViTConfig) throws {
        try config.validate()
        self.config = config
        let params = try ViTTensors(config: config)
        self.params = params
        stack = TransformerStack(config: config.stack, params: params.stack)
    }

    /// A zeroed gradient store with the parameters' layout.
    public func makeGradients() throws -> ViTTensors { try ViTTensors(config: config) }

    // MARK: Forward

    /// Runs the model on `pixels` [batch, channels, height, width] (already normalized): the stem writes the
    /// embeddings — patches · Wᵀ (+ b), the class token, plus the positions resized to the grid, then `ln_pre`
    /// (CLIP) — into the stack's input, and the stack runs.
    /// Returns `acts.out`: [batch, tokens, hidden] after the final LayerNorm (HF `last_hidden_state`; CLIP's
    /// `ln_post` applied to every token).
    @discardableResult
    public func forward(_ pixels: UnsafePointer<Float>, _ acts: ViTActivations,
                        lora: LoRARun? = nil) -> UnsafeMutablePointer<Float> {
        let c = config, d = c.hiddenSize, p = params, input = acts.stack.input
        acts.resize.forward(acts.posResized + d, p.positions + d, dim: d)   // patch grid; cls position untouched
        acts.posResized.update(from: p.positions, count: d)
        patchEmbedForward(acts.patchOut, patches: acts.patches, pixels, weight: p.patchW, bias: p.patchB,
                          shape: acts.patchShape, dim: d)
        embeddingsForward(acts.embeddings ?? input, patchOut: acts.patchOut, cls: p.cls,
                          pos: acts.posResized, batch: acts.batch, patches: acts.tokens - 1, dim: d)
        if let emb = acts.embeddings, let mean = acts.embMean, let rstd = acts.embRstd,
           let w = p.preNormW, let b = p.preNormB {
            Kernels.layerNormForward(input, mean: mean, rstd: rstd, emb, gamma: w, beta: b,
                                     rows: acts.rows, cols: d, eps: c.layerNormEps)
        }
        return stack.forward(acts.stack, lora: lora)
    }

    /// The per-image feature a classifier head reads, [batch, featureDim] in `acts.features`, from `acts.out`
    /// after ``forward(_:_:lora:)``: the class token (DINOv2); with a projection (CLIP) the unit-length
    /// normalize(class token · projᵀ) — CLIP's image embedding, whose dot products with normalized text
    /// embeddings are its zero-shot logits (before the logit scale).
    @discardableResult
    public func features(_ acts: ViTActivations) -> UnsafeMutablePointer<Float> {
        let d = config.hiddenSize, b = acts.batch, ld = acts.tokens * d
        guard let proj = params.projection, let projected = acts.projected, let e = config.projectionDim else {
            for i in 0..<b { (acts.features + i * d).update(from: acts.out + i * ld, count: d) }
            return acts.features
        }
        sgemm(transB: true, m: b, n: e, k: d, a: acts.out, lda: ld, b: proj, ldb: d, c: projected, ldc: e)
        for i in 0..<b {
            let x = projected + i * e, y = acts.features + i * e
            var ss: Float = 0
            for j in 0..<e { ss += x[j] * x[j] }
            let inv = 1 / max(ss.squareRoot(), 1e-12)
            for j in 0..<e { y[j] = x[j] * inv }
        }
        return acts.features
    }

    /// Backward of ``features(_:)``: writes the class-token rows of `dOut` [batch, tokens, hidden] from
    /// `dFeatures` [batch, featureDim] (other rows untouched) and accumulates the projection's gradient into
    /// `grads` when given. Needs `acts` with training scratch when there is a projection.
    public func featuresBackward(_ dFeatures: UnsafePointer<Float>, _ acts: ViTActivations, grads: ViTTensors?,
                                 dOut: UnsafeMutablePointer<Float>) {
        let d = config.hiddenSize, b = acts.batch, ld = acts.tokens * d
        guard let proj = params.projection, let projected = acts.projected, let e = config.projectionDim else {
            for i in 0..<b { (dOut + i * ld).update(from: dFeatures + i * d, count: d) }
            return
        }
        guard let s = acts.scratch else {
            preconditionFailure("ViTModel.featuresBackward: activations were built with training: false")
        }
        // y = x/|x|  ⇒  dx = (dy − y ⟨y, dy⟩) / |x|
        for i in 0..<b {
            let x = projected + i * e, y = acts.features + i * e, dy = dFeatures + i * e, dx = s.dProjected + i * e
            var ss: Float = 0, ydy: Float = 0
            for j in 0..<e { ss += x[j] * x[j]; ydy += y[j] * dy[j] }
            let inv = 1 / max(ss.squareRoot(), 1e-12)
            for j in 0..<e { dx[j] = (dy[j] - y[j] * ydy) * inv }
        }
        sgemm(m: b, n: d, k: e, a: s.dProjected, lda: e, b: proj, ldb: d, c: dOut, ldc: ld)
        if let g = grads?.projection {
            sgemm(transA: true, m: e, n: d, k: b, a: s.dProjected, lda: e, b: acts.out, ldb: ld, beta: 1, c: g, ldc: d)
        }
    }

    // MARK: Backward

    /// Back-propagates `dOut` ([batch, tokens, hidden], gradient of the loss w.r.t. `forward`'s output) through
    /// the whole model: the stack (``TransformerStack/backward(_:_:grads:lora:through:inputGradient:afterBlock:)``),
    /// then `ln_pre` and the stem. Parameter gradients are ACCUMULATED into `grads` when given (skipped entirely
    /// otherwise), LoRA gradients into `lora`'s gradient stores; the gradient w.r.t. the pixels is written to
    /// `dPixels` when given. Needs `acts` built with `training: true` and filled by `forward` on the same input (and
    /// `lora`). `afterBlock(l)` runs as soon as block l's parameter gradients are final (blocks finish last to
    /// first), so a caller can start communicating them while the earlier blocks are still being differentiated.
    /// `through` > 0 stops at that block: nothing below it, stem included, is differentiated — for adapters only
    /// (no `grads`, no `dPixels`). Without `grads` and `dPixels` the backward also stops inside block `through` (by
    /// default 0) at its lowest adapter, unless `inputGradient` asks for the gradient down to the embeddings anyway
    /// (`selora bench`'s frozen-base step, whose reference cost is the backward through every block).
    public func backward(_ dOut: UnsafePointer<Float>, _ acts: ViTActivations, grads: ViTTensors? = nil,
                         lora: LoRARun? = nil, dPixels: UnsafeMutablePointer<Float>? = nil, through lowest: Int = 0,
                         inputGradient: Bool = false, afterBlock: ((Int) -> Void)? = nil) {
        guard let s = acts.scratch, let ss = acts.stack.scratch else {
            preconditionFailure("ViTModel.backward: activations were built with training: false")
        }
        precondition(lowest == 0 || (grads == nil && dPixels == nil),
                     "ViTModel.backward: a truncated backward has no weight or pixel gradients")
        let d = config.hiddenSize, n = acts.rows, p = params
        // The stack's input gradient feeds only the stem's weight gradients and dPixels: without them the backward
        // ends inside block `lowest`, at its lowest adapter.
        let wantInput = lowest == 0 && (grads != nil || dPixels != nil || inputGradient)
        let dEmb = stack.backward(dOut, acts.stack, grads: grads?.stack, lora: lora, through: lowest,
                                  inputGradient: wantInput, afterBlock: afterBlock)
        guard wantInput else { return }
        // dEmb holds the gradient w.r.t. block 0's input; back through CLIP's ln_pre to the embeddings.
        if let emb = acts.embeddings, let mean = acts.embMean, let rstd = acts.embRstd, let w = p.preNormW {
            Kernels.layerNormBackward(dEmb, dgamma: grads?.preNormW, dbeta: grads?.preNormB, dEmb, emb,
                                      mean: mean, rstd: rstd, gamma: w, rows: n, cols: d, scratch: ss.lnScratch)
        }
        let patches = acts.tokens - 1
        let wantPos = grads != nil
        if wantPos { s.dPos.initialize(repeating: 0, count: acts.tokens * d) }
        embeddingsBackward(dPatchOut: s.dPatchOut, dCls: grads?.cls, dPos: wantPos ? s.dPos : nil, dEmb,
                           batch: acts.batch, patches: patches, dim: d)
        if let g = grads?.positions {
            for i in 0..<d { g[i] += s.dPos[i] }
            acts.resize.backward(g + d, s.dPos + d, dim: d)
        }
        if grads != nil || dPixels != nil {
            patchEmbedBackward(dpixels: dPixels, dpatches: s.dPatches, dWeight: grads?.patchW, dBias: grads?.patchB,
                               s.dPatchOut, patches: acts.patches, weight: p.patchW, shape: acts.patchShape, dim: d)
        }
    }
}
