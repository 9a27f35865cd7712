import Tensors

/// What one forward/backward of a ``TransformerStack`` over a fixed (batch, tokens) needs: the activations the
/// forward saves for the backward, and the backward's scratch, as pointers into two stores. A front end writes
/// the stack's input [batch, tokens, hidden] into ``input`` before ``TransformerStack/forward(_:lora:)``.
///
/// Built on its own (CLIP's text tower) it owns its two stores; a ``ViTActivations`` lays the stack's tensors
/// out inside its own two stores instead (one allocation per role for the whole model). With
/// `training == false` all blocks share one slot of saved activations (inference needs no history), which cuts
/// memory by the number of blocks, and there is no scratch.
public final class TransformerActivations {
    public let config: TransformerConfig
    public let batch, tokens: Int
    public let training: Bool
    /// The lowest block whose activations are saved for a backward (0: all when training). Blocks below it share
    /// one inference slot: a backward stops at or above it (settled selective LoRA), and memory falls by their
    /// share.
    public let savedFrom: Int
    public let attention: AttentionShape
    public var rows: Int { batch * tokens }

    /// The stores the pointers below point into (shared with the front end's tensors for a ViT).
    public let acts: TensorStore
    public let grads: TensorStore?

    /// Saved per-block activations (pointers into `acts`).
    public struct Block {
        public let resIn, ln1, ln1Mean, ln1Rstd, qkv, probs, ctx, attnOut, resMid: UnsafeMutablePointer<Float>
        public let ln2, ln2Mean, ln2Rstd, fc1, gelu, fc2: UnsafeMutablePointer<Float>
    }
    public let blocks: [Block]
    /// The residual stream after the last block, and the final LayerNorm's output and statistics.
    public let resOut, out, outMean, outRstd: UnsafeMutablePointer<Float>
    /// The stack's input [batch, tokens, hidden]: block 0's residual input.
    public var input: UnsafeMutablePointer<Float> { blocks[0].resIn }

    /// Backward scratch (pointers into `grads`), nil when built without gradients. After
    /// ``TransformerStack/backward(_:_:grads:lora:through:inputGradient:afterBlock:)`` `dRes` holds dL/d``input``.
    public struct Scratch {
        public let dRes, dA, dCtx, dqkv, dHidden, dProbs, lnScratch: UnsafeMutablePointer<Float>
    }
    public let scratch: Scratch?

    /// Activations with stores of their own.
    public convenience init(config: TransformerConfig, batch: Int, tokens: Int, training: Bool = true) throws {
        try config.validate()
        guard tokens > 0 else { throw ViTError.badInput("sequence length must be positive, got \(tokens)") }
        guard batch > 0 else { throw ViTError.badInput("batch size must be positive, got \(batch)") }
        var l = TensorLayout(), g = TensorLayout()
        Self.addActivations(config, batch: batch, tokens: tokens, training: training, to: &l)
        Self.addScratch(config, batch: batch, tokens: tokens, to: &g)
        try self.init(config: config, batch: batch, tokens: tokens, training: training,
                      acts: TensorStore(layout: l), grads: training ? TensorStore(layout: g) : nil)
    }

    /// Views into stores whose layouts hold ``addActivations(_:batch:tokens:training:to:)``'s tensors (`acts`)
    /// and, when training, ``addScratch(_:batch:tokens:to:)``'s (`grads`).
    init(config: TransformerConfig, batch: Int, tokens: Int, training: Bool, savedFrom: Int = 0, acts: TensorStore,
         grads: TensorStore?) {
        self.config = config
        self.batch = batch; self.tokens = tokens; self.training = training
        self.savedFrom = training ? savedFrom : 0
        attention = Self.attentionShape(config, batch: batch, tokens: tokens)
        self.acts = acts; self.grads = grads
        func a(_ name: String) -> UnsafeMutablePointer<Float> { acts.pointer(name) }
        let saved = self.savedFrom
        blocks = (0..<config.numLayers).map { layer in
            let s = Self.slot(layer, training: training, savedFrom: saved)
            func b(_ name: String) -> UnsafeMutablePointer<Float> { a("\(s).\(name)") }
            return Block(resIn: b("res_in"), ln1: b("ln1"), ln1Mean: b("ln1_mean"), ln1Rstd: b("ln1_rstd"),
                         qkv: b("qkv"), probs: b("probs"), ctx: b("ctx"), attnOut: b("attn_out"),
                         resMid: b("res_mid"), ln2: b("ln2"), ln2Mean: b("ln2_mean"), ln2Rstd: b("ln2_rstd"),
                         fc1: b("fc1"), gelu: b("gelu"), fc2: b("fc2"))
        }
        resOut = a("res_out"); out = a("out"); outMean = a("out_mean"); outRstd = a("out_rstd")
        scratch = grads.map { gs in
            func p(_ name: String) -> UnsafeMutablePointer<Float> { gs.pointer(name) }
            return Scratch(dRes: p("d_res"), dA: p("d_a"), dCtx: p("d_ctx"), dqkv: p("d_qkv"),
                           dHidden: p("d_hidden"), dProbs: p("d_probs"), lnScratch: p("ln_scratch"))
        }
    }

    static func attentionShape(_ c: TransformerConfig, batch: Int, tokens: Int) -> AttentionShape {
        AttentionShape(batch: batch, tokens: tokens, heads: c.numHeads, headDim: c.headDim, causal: c.causal)
    }

    /// The slot of block `l`: its own when its activations are saved (training, l ≥ savedFrom), else the one shared
    /// inference slot 0 (blocks from savedFrom on then start at slot 1).
    static func slot(_ l: Int, training: Bool, savedFrom: Int) -> Int {
        guard training else { return 0 }
        return l < savedFrom ? 0 : l - savedFrom + (savedFrom > 0 ? 1 : 0)
    }

    /// The saved activations: one slot of per-block tensors per saved block and one shared by the others (one in
    /// all without `training`), then the final residual stream and the final LayerNorm's output and statistics.
    static func addActivations(_ c: TransformerConfig, batch: Int, tokens: Int, training: Bool, savedFrom: Int = 0,
                               to l: inout TensorLayout) {
        let n = batch * tokens, d = c.hiddenSize, m = c.mlpSize
        let probs = attentionShape(c, batch: batch, tokens: tokens).probsCount
        let slots = training ? slot(c.numLayers - 1, training: true, savedFrom: savedFrom) + 1 : 1
        for s in 0..<slots {
            for (name, shape) in [("res_in", [n, d]), ("ln1", [n, d]), ("ln1_mean", [n]), ("ln1_rstd", [n]),
                                  ("qkv", [n, 3 * d]), ("probs", [probs]),
                                  ("ctx", [n, d]), ("attn_out", [n, d]), ("res_mid", [n, d]),
                                  ("ln2", [n, d]), ("ln2_mean", [n]), ("ln2_rstd", [n]),
                                  ("fc1", [n, m]), ("gelu", [n, m]), ("fc2", [n, d])] {
                l.add("\(s).\(name)", shape)
            }
        }
        l.add("res_out", [n, d]); l.add("out", [n, d]); l.add("out_mean", [n]); l.add("out_rstd", [n])
    }

    /// The backward's scratch. `ln_scratch` fits a LayerNorm backward of any width up to max(hidden, mlp).
    static func addScratch(_ c: TransformerConfig, batch: Int, tokens: Int, to g: inout TensorLayout) {
        let n = batch * tokens, d = c.hiddenSize, m = c.mlpSize
        for name in ["d_res", "d_a", "d_ctx"] { g.add(name, [n, d]) }
        g.add("d_qkv", [n, 3 * d])
        g.add("d_hidden", [n, m])
        g.add("d_probs", [attentionShape(c, batch: batch, tokens: tokens).probsCount])
        g.add("ln_scratch", [Kernels.layerNormScratchCount(cols: max(d, m))])
    }

    /// Output of block `l` (the next block's input, or the final residual stream).
    func blockOutput(_ l: Int) -> UnsafeMutablePointer<Float> {
        l + 1 < blocks.count ? blocks[l + 1].resIn : resOut
    }
}
