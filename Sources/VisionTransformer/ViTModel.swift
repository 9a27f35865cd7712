import Tensors

/// A pre-norm ViT (DINOv2 / timm layout): forward, and backward with input gradients always and parameter
/// gradients when a gradient store is given.
///
/// Paired `forward` / `backward` per layer live in the layer files; this type strings them together and owns
/// the parameters (one allocation, ``ViTParameterNames/layout(_:)``).
public final class ViTModel {
    public let config: ViTConfig
    public let params: ViTTensors

    public init(config: ViTConfig) throws {
        try config.validate()
        self.config = config
        self.params = try ViTTensors(config: config)
    }

    /// A zeroed gradient store with the parameters' layout.
    public func makeGradients() throws -> ViTTensors { try ViTTensors(config: config) }

    // MARK: Forward

    /// Runs the model on `pixels` [batch, channels, height, width] (already normalized).
    /// Returns `acts.out`: [batch, tokens, hidden] after the final LayerNorm (HF `last_hidden_state`; CLIP's
    /// `ln_post` applied to every token).
    @discardableResult
    public func forward(_ pixels: UnsafePointer<Float>, _ acts: ViTActivations,
                        lora: LoRARun? = nil) -> UnsafeMutablePointer<Float> {
        precondition(lora == nil || lora!.rows == acts.rows, "ViTModel.forward: LoRA state built for another shape")
        let c = config, d = c.hiddenSize, p = params
        guard let patchW = p.patchW, let cls = p.cls, let positions = p.positions else {
            preconditionFailure("ViTModel.forward: this stack has no image stem (CLIP's text tower): use encode")
        }
        acts.resize.forward(acts.posResized + d, positions + d, dim: d)   // patch grid; cls position untouched
        acts.posResized.update(from: positions, count: d)
        patchEmbedForward(acts.patchOut, patches: acts.patches, pixels, weight: patchW, bias: p.patchB,
                          shape: acts.patchShape, dim: d)
        embeddingsForward(acts.embeddings ?? acts.blocks[0].resIn, patchOut: acts.patchOut, cls: cls,
                          pos: acts.posResized, batch: acts.batch, patches: acts.tokens - 1, dim: d)
        if let emb = acts.embeddings, let mean = acts.embMean, let rstd = acts.embRstd,
           let w = p.preNormW, let b = p.preNormB {
            Kernels.layerNormForward(acts.blocks[0].resIn, mean: mean, rstd: rstd, emb, gamma: w, beta: b,
                                     rows: acts.rows, cols: d, eps: c.layerNormEps)
        }
        return encode(acts, lora: lora)
    }

    /// The block stack and the final LayerNorm on the tokens already in `acts.blocks[0].resIn`; returns `acts.out`.
    /// ``forward(_:_:lora:)`` fills the input from pixels, CLIP's text tower from token and position embeddings.
    @discardableResult
    public func encode(_ acts: ViTActivations, lora: LoRARun? = nil) -> UnsafeMutablePointer<Float> {
        let c = config, n = acts.rows
        for l in 0..<c.numLayers {
            blockForward(l, acts.blockOutput(l), acts.blocks[l], params.blocks[l], acts, lora)
        }
        Kernels.layerNormForward(acts.out, mean: acts.outMean, rstd: acts.outRstd, acts.resOut,
                                 gamma: params.normW, beta: params.normB, rows: n, cols: c.hiddenSize,
                                 eps: c.layerNormEps)
        return acts.out
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

    func blockForward(_ l: Int, _ out: UnsafeMutablePointer<Float>, _ a: ViTActivations.Block, _ w: BlockTensors,
                      _ acts: ViTActivations, _ lora: LoRARun?) {
        let d = config.hiddenSize, m = config.mlpSize, n = acts.rows, eps = config.layerNormEps
        Kernels.layerNormForward(a.ln1, mean: a.ln1Mean, rstd: a.ln1Rstd, a.resIn, gamma: w.norm1W, beta: w.norm1B,
                                 rows: n, cols: d, eps: eps)
        linearForward(a.qkv, a.ln1, weight: w.qkvW, bias: w.qkvB, rows: n, inFeatures: d, outFeatures: 3 * d)
        lora?.forward(layer: l, target: .query, x: a.ln1, y: a.qkv, ldy: 3 * d)
        lora?.forward(layer: l, target: .key, x: a.ln1, y: a.qkv + d, ldy: 3 * d)
        lora?.forward(layer: l, target: .value, x: a.ln1, y: a.qkv + 2 * d, ldy: 3 * d)
        attentionForward(a.ctx, probs: a.probs, qkv: a.qkv, shape: acts.attention)
        linearForward(a.attnOut, a.ctx, weight: w.oW, bias: w.oB, rows: n, inFeatures: d, outFeatures: d)
        lora?.forward(layer: l, target: .output, x: a.ctx, y: a.attnOut, ldy: d)
        layerScaleResidualForward(a.resMid, residual: a.resIn, a.attnOut, gamma: w.ls1, rows: n, cols: d)
        Kernels.layerNormForward(a.ln2, mean: a.ln2Mean, rstd: a.ln2Rstd, a.resMid, gamma: w.norm2W, beta: w.norm2B,
                                 rows: n, cols: d, eps: eps)
        linearForward(a.fc1, a.ln2, weight: w.fc1W, bias: w.fc1B, rows: n, inFeatures: d, outFeatures: m)
        lora?.forward(layer: l, target: .fc1, x: a.ln2, y: a.fc1, ldy: m)
        Kernels.activationForward(config.activation, a.gelu, a.fc1, count: n * m)
        linearForward(a.fc2, a.gelu, weight: w.fc2W, bias: w.fc2B, rows: n, inFeatures: m, outFeatures: d)
        lora?.forward(layer: l, target: .fc2, x: a.gelu, y: a.fc2, ldy: d)
        layerScaleResidualForward(out, residual: a.resMid, a.fc2, gamma: w.ls2, rows: n, cols: d)
    }

    // MARK: Backward

    /// Back-propagates `dOut` ([batch, tokens, hidden], gradient of the loss w.r.t. `forward`'s output) through
    /// the whole model. Parameter gradients are ACCUMULATED into `grads` when given (skipped entirely otherwise),
    /// LoRA gradients into `lora`'s gradient stores; the gradient w.r.t. the pixels is written to `dPixels` when
    /// given. Needs `acts` built with `training: true` and filled by `forward` on the same input (and `lora`).
    /// `afterBlock(l)` runs as soon as block l's parameter gradients are final (blocks finish last to first), so
    /// a caller can start communicating them while the earlier blocks are still being differentiated.
    public func backward(_ dOut: UnsafePointer<Float>, _ acts: ViTActivations, grads: ViTTensors? = nil,
                         lora: LoRARun? = nil, dPixels: UnsafeMutablePointer<Float>? = nil,
                         afterBlock: ((Int) -> Void)? = nil) {
        guard let s = acts.scratch else {
            preconditionFailure("ViTModel.backward: activations were built with training: false")
        }
        let c = config, d = c.hiddenSize, n = acts.rows, p = params
        Kernels.layerNormBackward(s.dRes, dgamma: grads?.normW, dbeta: grads?.normB, dOut, acts.resOut,
                                  mean: acts.outMean, rstd: acts.outRstd, gamma: p.normW, rows: n, cols: d,
                                  scratch: s.lnScratch)
        for l in stride(from: c.numLayers - 1, through: 0, by: -1) {
            blockBackward(l, acts.blocks[l], p.blocks[l], grads?.blocks[l], acts, s, lora)
            afterBlock?(l)
        }
        guard let patchW = p.patchW else { return }   // a stack without an image stem ends at block 0's input
        // s.dRes now holds the gradient w.r.t. block 0's input; back through CLIP's ln_pre to the embeddings.
        if let emb = acts.embeddings, let mean = acts.embMean, let rstd = acts.embRstd, let w = p.preNormW {
            Kernels.layerNormBackward(s.dRes, dgamma: grads?.preNormW, dbeta: grads?.preNormB, s.dRes, emb,
                                      mean: mean, rstd: rstd, gamma: w, rows: n, cols: d, scratch: s.lnScratch)
        }
        let patches = acts.tokens - 1
        let wantPos = grads != nil
        if wantPos { s.dPos.initialize(repeating: 0, count: acts.tokens * d) }
        embeddingsBackward(dPatchOut: s.dPatchOut, dCls: grads?.cls, dPos: wantPos ? s.dPos : nil, s.dRes,
                           batch: acts.batch, patches: patches, dim: d)
        if let g = grads?.positions {
            for i in 0..<d { g[i] += s.dPos[i] }
            acts.resize.backward(g + d, s.dPos + d, dim: d)
        }
        if grads != nil || dPixels != nil {
            patchEmbedBackward(dpixels: dPixels, dpatches: s.dPatches, dWeight: grads?.patchW, dBias: grads?.patchB,
                               s.dPatchOut, patches: acts.patches, weight: patchW, shape: acts.patchShape, dim: d)
        }
    }

    /// Mirrors ``blockForward``; on entry s.dRes = dL/d(block output), on exit dL/d(block input).
    func blockBackward(_ l: Int, _ a: ViTActivations.Block, _ w: BlockTensors, _ g: BlockTensors?,
                       _ acts: ViTActivations, _ s: ViTActivations.Scratch, _ lora: LoRARun?) {
        let d = config.hiddenSize, m = config.mlpSize, n = acts.rows
        // out = resMid + ls2 ⊙ fc2
        layerScaleResidualBackward(s.dA, dGamma: g?.ls2, s.dRes, a.fc2, gamma: w.ls2, rows: n, cols: d)
        linearBackward(s.dHidden, dWeight: g?.fc2W, dBias: g?.fc2B, s.dA, a.gelu, weight: w.fc2W,
                       rows: n, inFeatures: m, outFeatures: d)
        lora?.backward(layer: l, target: .fc2, dy: s.dA, ldy: d, x: a.gelu, dx: s.dHidden)
        Kernels.activationBackward(config.activation, s.dHidden, s.dHidden, a.fc1, count: n * m)
        linearBackward(s.dA, dWeight: g?.fc1W, dBias: g?.fc1B, s.dHidden, a.ln2, weight: w.fc1W,
                       rows: n, inFeatures: d, outFeatures: m)
        lora?.backward(layer: l, target: .fc1, dy: s.dHidden, ldy: m, x: a.ln2, dx: s.dA)
        Kernels.layerNormBackward(s.dA, dgamma: g?.norm2W, dbeta: g?.norm2B, s.dA, a.resMid, mean: a.ln2Mean,
                                  rstd: a.ln2Rstd, gamma: w.norm2W, rows: n, cols: d, scratch: s.lnScratch)
        addInPlace(s.dRes, s.dA, count: n * d)                      // dRes = dL/d resMid
        // resMid = resIn + ls1 ⊙ attnOut
        layerScaleResidualBackward(s.dA, dGamma: g?.ls1, s.dRes, a.attnOut, gamma: w.ls1, rows: n, cols: d)
        linearBackward(s.dCtx, dWeight: g?.oW, dBias: g?.oB, s.dA, a.ctx, weight: w.oW,
                       rows: n, inFeatures: d, outFeatures: d)
        lora?.backward(layer: l, target: .output, dy: s.dA, ldy: d, x: a.ctx, dx: s.dCtx)
        attentionBackward(dqkv: s.dqkv, dprobs: s.dProbs, s.dCtx, probs: a.probs, qkv: a.qkv, shape: acts.attention)
        linearBackward(s.dA, dWeight: g?.qkvW, dBias: g?.qkvB, s.dqkv, a.ln1, weight: w.qkvW,
                       rows: n, inFeatures: d, outFeatures: 3 * d)
        lora?.backward(layer: l, target: .query, dy: s.dqkv, ldy: 3 * d, x: a.ln1, dx: s.dA)
        lora?.backward(layer: l, target: .key, dy: s.dqkv + d, ldy: 3 * d, x: a.ln1, dx: s.dA)
        lora?.backward(layer: l, target: .value, dy: s.dqkv + 2 * d, ldy: 3 * d, x: a.ln1, dx: s.dA)
        Kernels.layerNormBackward(s.dA, dgamma: g?.norm1W, dbeta: g?.norm1B, s.dA, a.resIn, mean: a.ln1Mean,
                                  rstd: a.ln1Rstd, gamma: w.norm1W, rows: n, cols: d, scratch: s.lnScratch)
        addInPlace(s.dRes, s.dA, count: n * d)                      // dRes = dL/d resIn
    }
}
