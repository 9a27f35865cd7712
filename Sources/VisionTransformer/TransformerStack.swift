import Tensors

/// A pre-norm transformer block stack — `numLayers` blocks then the final LayerNorm (``TransformerConfig``) — on
/// tokens a front end has already embedded: the image stem of ``ViTModel``, or the token and position embeddings
/// of ``CLIPTextModel``. Forward, and backward with the input gradient always and parameter gradients when a
/// gradient store is given; LoRA (``LoRARun``) adds to the blocks' Linear layers in both.
///
/// Paired `forward` / `backward` per layer live in the layer files; this type strings them together.
public final class TransformerStack {
    public let config: TransformerConfig
    public let params: TransformerTensors

    /// A stack with a zeroed parameter store of its own.
    public convenience init(config: TransformerConfig) throws {
        try config.validate()
        self.init(config: config, params: try TransformerTensors(config: config))
    }

    /// A stack over tensors in a larger model's store (a ``ViTModel``'s).
    init(config: TransformerConfig, params: TransformerTensors) {
        self.config = config
        self.params = params
    }

    // MARK: Forward

    /// Runs the blocks and the final LayerNorm on the tokens in `acts.input`; returns `acts.out`
    /// [batch, tokens, hidden].
    @discardableResult
    public func forward(_ acts: TransformerActivations, lora: LoRARun? = nil) -> UnsafeMutablePointer<Float> {
        if let lora {
            precondition(lora.rows == acts.rows, "TransformerStack.forward: LoRA state built for another shape")
        }
        let c = config, n = acts.rows
        for l in 0..<c.numLayers {
            blockForward(l, acts.blockOutput(l), acts.blocks[l], params.blocks[l], acts, lora)
        }
        Kernels.layerNormForward(acts.out, mean: acts.outMean, rstd: acts.outRstd, acts.resOut,
                                 gamma: params.normW, beta: params.normB, rows: n, cols: c.hiddenSize,
                                 eps: c.layerNormEps)
        return acts.out
    }

    func blockForward(_ l: Int, _ out: UnsafeMutablePointer<Float>, _ a: TransformerActivations.Block,
                      _ w: BlockTensors, _ acts: TransformerActivations, _ lora: LoRARun?) {
        let d = config.hiddenSize, m = config.mlpSize, n = acts.rows, eps = config.layerNormEps
        Kernels.layerNormForward(a.ln1, mean: a.ln1Mean, rstd: a.ln1Rstd, a.resIn, gamma: w.norm1W, beta: w.norm1B,
                                 rows: n, cols: d, eps: eps)
        linearForward(a.qkv, a.ln1, weight: weight(lora, l, .qkv, w.qkvW),
                      bias: w.qkvB, rows: n, inFeatures: d, outFeatures: 3 * d)
        lora?.forward(layer: l, group: .qkv, x: a.ln1)
        attentionForward(a.ctx, probs: a.probs, qkv: a.qkv, shape: acts.attention)
        linearForward(a.attnOut, a.ctx, weight: weight(lora, l, .output, w.oW),
                      bias: w.oB, rows: n, inFeatures: d, outFeatures: d)
        lora?.forward(layer: l, group: .output, x: a.ctx)
        layerScaleResidualForward(a.resMid, residual: a.resIn, a.attnOut, gamma: w.ls1, rows: n, cols: d)
        Kernels.layerNormForward(a.ln2, mean: a.ln2Mean, rstd: a.ln2Rstd, a.resMid, gamma: w.norm2W, beta: w.norm2B,
                                 rows: n, cols: d, eps: eps)
        linearForward(a.fc1, a.ln2, weight: weight(lora, l, .fc1, w.fc1W),
                      bias: w.fc1B, rows: n, inFeatures: d, outFeatures: m)
        lora?.forward(layer: l, group: .fc1, x: a.ln2)
        Kernels.activationForward(config.activation, a.gelu, a.fc1, count: n * m)
        linearForward(a.fc2, a.gelu, weight: weight(lora, l, .fc2, w.fc2W),
                      bias: w.fc2B, rows: n, inFeatures: m, outFeatures: d)
        lora?.forward(layer: l, group: .fc2, x: a.gelu)
        layerScaleResidualForward(out, residual: a.resMid, a.fc2, gamma: w.ls2, rows: n, cols: d)
    }

    /// The weight a block's Linear runs on: W' = W + Σ_active c · B A of `lora`'s blocks on it
    /// (``LoRARun/weight(layer:group:base:)``), or W.
    func weight(_ lora: LoRARun?, _ l: Int, _ group: LoRAGroup, _ w: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        lora?.weight(layer: l, group: group, base: w) ?? UnsafePointer(w)
    }

    // MARK: Backward

    /// Back-propagates `dOut` ([batch, tokens, hidden], gradient of the loss w.r.t. ``forward(_:lora:)``'s
    /// output) through the final LayerNorm and every block; returns dL/d`acts.input` (held in
    /// `acts.scratch.dRes`). Parameter gradients are ACCUMULATED into `grads` when given (skipped entirely
    /// otherwise), LoRA gradients into `lora`'s gradient stores. Needs `acts` built with `training: true` and
    /// filled by `forward` on the same input (and `lora`).
    /// `afterBlock(l)` runs as soon as block l's parameter gradients are final (blocks finish last to first), so
    /// a caller can start communicating them while the earlier blocks are still being differentiated.
    /// `through`: the lowest block to differentiate (blocks below it get no gradient and cost nothing — settled
    /// selective LoRA, whose lowest active block is higher up); the returned gradient is then that block's input's.
    /// `inputGradient: false` (adapters only: no `grads`) says the caller does not want that gradient, so block
    /// `through` stops right after the LoRA backward of its lowest group that runs (``LoRARun/lowestGroup(layer:)``;
    /// the whole block when none runs): nothing below an adapter is differentiated, and the returned pointer holds
    /// no meaningful gradient.
    @discardableResult
    public func backward(_ dOut: UnsafePointer<Float>, _ acts: TransformerActivations,
                         grads: TransformerTensors? = nil, lora: LoRARun? = nil, through lowest: Int = 0,
                         inputGradient: Bool = true,
                         afterBlock: ((Int) -> Void)? = nil) -> UnsafeMutablePointer<Float> {
        precondition((0..<config.numLayers).contains(lowest), "TransformerStack.backward: no block \(lowest)")
        precondition(lowest >= acts.savedFrom, "TransformerStack.backward: block \(lowest)'s activations were not saved")
        guard let s = acts.scratch else {
            preconditionFailure("TransformerStack.backward: activations were built with training: false")
        }
        let c = config, d = c.hiddenSize, n = acts.rows, p = params
        Kernels.layerNormBackward(s.dRes, dgamma: grads?.normW, dbeta: grads?.normB, dOut, acts.resOut,
                                  mean: acts.outMean, rstd: acts.outRstd, gamma: p.normW, rows: n, cols: d,
                                  scratch: s.lnScratch)
        let truncate = !inputGradient && grads == nil
        for l in stride(from: c.numLayers - 1, through: lowest, by: -1) {
            if truncate && l == lowest {
                if let stop = lora?.lowestGroup(layer: l) {
                    blockBackward(l, acts.blocks[l], p.blocks[l], nil, acts, s, lora, stopAfter: stop)
                }
            } else {
                blockBackward(l, acts.blocks[l], p.blocks[l], grads?.blocks[l], acts, s, lora)
            }
            afterBlock?(l)
        }
        return s.dRes
    }

    /// Mirrors ``blockForward``; on entry s.dRes = dL/d(block output), on exit dL/d(block input).
    /// Each Linear's LoRA backward comes before its input gradient (both read only dy and x), so `stopAfter`
    /// (adapters only, `g` nil) can return right after that group's LoRA backward, skipping the input gradient of
    /// its Linear and everything below it in the block.
    func blockBackward(_ l: Int, _ a: TransformerActivations.Block, _ w: BlockTensors, _ g: BlockTensors?,
                       _ acts: TransformerActivations, _ s: TransformerActivations.Scratch, _ lora: LoRARun?,
                       stopAfter stop: LoRAGroup? = nil) {
        let d = config.hiddenSize, m = config.mlpSize, n = acts.rows
        // out = resMid + ls2 ⊙ fc2
        layerScaleResidualBackward(s.dA, dGamma: g?.ls2, s.dRes, a.fc2, gamma: w.ls2, rows: n, cols: d)
        lora?.backward(layer: l, group: .fc2, dy: s.dA, ldy: d, x: a.gelu)
        if stop == .fc2 { return }
        linearBackward(s.dHidden, dWeight: g?.fc2W, dBias: g?.fc2B, s.dA, a.gelu,
                       weight: weight(lora, l, .fc2, w.fc2W),
                       rows: n, inFeatures: m, outFeatures: d)
        Kernels.activationBackward(config.activation, s.dHidden, s.dHidden, a.fc1, count: n * m)
        lora?.backward(layer: l, group: .fc1, dy: s.dHidden, ldy: m, x: a.ln2)
        if stop == .fc1 { return }
        linearBackward(s.dA, dWeight: g?.fc1W, dBias: g?.fc1B, s.dHidden, a.ln2,
                       weight: weight(lora, l, .fc1, w.fc1W),
                       rows: n, inFeatures: d, outFeatures: m)
        Kernels.layerNormBackward(s.dA, dgamma: g?.norm2W, dbeta: g?.norm2B, s.dA, a.resMid, mean: a.ln2Mean,
                                  rstd: a.ln2Rstd, gamma: w.norm2W, rows: n, cols: d, scratch: s.lnScratch)
        addInPlace(s.dRes, s.dA, count: n * d)                      // dRes = dL/d resMid
        // resMid = resIn + ls1 ⊙ attnOut
        layerScaleResidualBackward(s.dA, dGamma: g?.ls1, s.dRes, a.attnOut, gamma: w.ls1, rows: n, cols: d)
        lora?.backward(layer: l, group: .output, dy: s.dA, ldy: d, x: a.ctx)
        if stop == .output { return }
        linearBackward(s.dCtx, dWeight: g?.oW, dBias: g?.oB, s.dA, a.ctx,
                       weight: weight(lora, l, .output, w.oW),
                       rows: n, inFeatures: d, outFeatures: d)
        attentionBackward(dqkv: s.dqkv, dprobs: s.dProbs, s.dCtx, probs: a.probs, qkv: a.qkv, shape: acts.attention)
        lora?.backward(layer: l, group: .qkv, dy: s.dqkv, ldy: 3 * d, x: a.ln1)
        if stop == .qkv { return }
        linearBackward(s.dA, dWeight: g?.qkvW, dBias: g?.qkvB, s.dqkv, a.ln1,
                       weight: weight(lora, l, .qkv, w.qkvW),
                       rows: n, inFeatures: d, outFeatures: 3 * d)
        Kernels.layerNormBackward(s.dA, dgamma: g?.norm1W, dbeta: g?.norm1B, s.dA, a.resIn, mean: a.ln1Mean,
                                  rstd: a.ln1Rstd, gamma: w.norm1W, rows: n, cols: d, scratch: s.lnScratch)
        addInPlace(s.dRes, s.dA, count: n * d)                      // dRes = dL/d resIn
    }
}
