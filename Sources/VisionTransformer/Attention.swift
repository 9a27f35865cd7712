import Tensors

/// Multi-head self-attention core over packed projections.
///
/// `qkv` is [batch·tokens, 3·width] row-major — q, k, v side by side, as the fused q/k/v GEMM writes them — and
/// head h owns columns h·headDim ..< (h+1)·headDim of each third; ctx is [batch·tokens, width]. Heads are read
/// in place through row strides: no reshapes or copies.
/// probs [batch, heads, tokens, tokens] = softmax(q kᵀ / √headDim) per head; ctx = probs · v. With `causal`
/// (CLIP's text tower) token i attends to tokens 0...i only: the scores above the diagonal are −∞ before the
/// softmax, so their probabilities — and, through them, their gradients — are exactly 0.
public struct AttentionShape {
    public let batch, tokens, heads, headDim: Int
    public var causal = false
    public var width: Int { heads * headDim }
    public var qkvStride: Int { 3 * width }
    public var scale: Float { 1 / Float(headDim).squareRoot() }
    public var probsCount: Int { batch * heads * tokens * tokens }

    public init(batch: Int, tokens: Int, heads: Int, headDim: Int, causal: Bool = false) {
        self.batch = batch; self.tokens = tokens; self.heads = heads; self.headDim = headDim; self.causal = causal
    }

    /// Offsets of head (b, h): of q in `qkv` (add width for k, 2·width for v), of ctx, and of probs.
    @inline(__always) func qOffset(_ b: Int, _ h: Int) -> Int { b * tokens * qkvStride + h * headDim }
    @inline(__always) func ctxOffset(_ b: Int, _ h: Int) -> Int { b * tokens * width + h * headDim }
    @inline(__always) func probsOffset(_ b: Int, _ h: Int) -> Int { (b * heads + h) * tokens * tokens }
}

/// Runs `body(b, h)` for every (batch, head) pair, split across ``Parallel/workers`` with single-threaded BLAS
/// inside: one head's GEMMs are too small (T×T×headDim) to split well, and the head's T×T scores stay in cache
/// from the GEMM that writes them to the softmax and the GEMM that reads them.
func forEachHead(_ s: AttentionShape, _ body: (Int, Int) -> Void) {
    let pairs = s.batch * s.heads
    BLASInfo.singleThreaded {
        Parallel.forChunks(pairs, work: pairs * s.tokens * s.tokens * s.headDim) { _, r in
            for i in r { body(i / s.heads, i % s.heads) }
        }
    }
}

public func attentionForward(_ ctx: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                             qkv: UnsafePointer<Float>, shape s: AttentionShape) {
    let t = s.tokens, w = s.width, ld = s.qkvStride, hd = s.headDim
    forEachHead(s) { b, h in
        let q = qkv + s.qOffset(b, h), k = q + w, v = q + 2 * w, p = probs + s.probsOffset(b, h)
        sgemm(transB: true, m: t, n: t, k: hd, a: q, lda: ld, b: k, ldb: ld, c: p, ldc: t)
        if s.causal {
            for i in 0..<t { (p + i * t + i + 1).update(repeating: -.infinity, count: t - i - 1) }
        }
        Kernels.softmaxRowsSerial(p, rows: t, cols: t, scale: s.scale)
        sgemm(m: t, n: hd, k: t, a: p, lda: t, b: v, ldb: ld, c: ctx + s.ctxOffset(b, h), ldc: w)
    }
}

/// Backward of ``attentionForward``: writes dqkv [batch·tokens, 3·width] from dctx.
/// `dprobs` is scratch of `probsCount` floats.
public func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dprobs: UnsafeMutablePointer<Float>,
                              _ dctx: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                              qkv: UnsafePointer<Float>, shape s: AttentionShape) {
    let t = s.tokens, w = s.width, ld = s.qkvStride, hd = s.headDim
    forEachHead(s) { b, h in
        let o = s.qOffset(b, h)
        let q = qkv + o, k = q + w, v = q + 2 * w
        let dq = dqkv + o, dk = dq + w, dv = dq + 2 * w
        let p = probs + s.probsOffset(b, h), dp = dprobs + s.probsOffset(b, h), dc = dctx + s.ctxOffset(b, h)
        // dP = dctx · vᵀ ; dv = Pᵀ · dctx
        sgemm(transB: true, m: t, n: t, k: hd, a: dc, lda: w, b: v, ldb: ld, c: dp, ldc: t)
        sgemm(transA: true, m: t, n: hd, k: t, a: p, lda: t, b: dc, ldb: w, c: dv, ldc: ld)
        // dS = scale · P ⊙ (dP − ⟨dP, P⟩): the gradient w.r.t. the unscaled scores q kᵀ.
        Kernels.softmaxBackwardRowsSerial(dp, p, rows: t, cols: t, scale: s.scale)
        // dq = dS · k ; dk = dSᵀ · q
        sgemm(m: t, n: hd, k: t, a: dp, lda: t, b: k, ldb: ld, c: dq, ldc: ld)
        sgemm(transA: true, m: t, n: hd, k: t, a: dp, lda: t, b: q, ldb: ld, c: dk, ldc: ld)
    }
}
