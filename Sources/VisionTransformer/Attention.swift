import Tensors

/// Multi-head self-attention core over packed projections.
///
/// q, k, v and ctx are [batch·tokens, heads·headDim] row-major (head h owns columns h·headDim ..< (h+1)·headDim),
/// so each head is read in place with row stride `width` — no reshapes or copies.
/// probs [batch, heads, tokens, tokens] = softmax(q kᵀ / √headDim) per head; ctx = probs · v.
public struct AttentionShape {
    public let batch, tokens, heads, headDim: Int
    public var width: Int { heads * headDim }
    public var scale: Float { 1 / Float(headDim).squareRoot() }
    public var probsCount: Int { batch * heads * tokens * tokens }

    public init(batch: Int, tokens: Int, heads: Int, headDim: Int) {
        self.batch = batch; self.tokens = tokens; self.heads = heads; self.headDim = headDim
    }

    /// Offset of (b, h) in a [batch·tokens, width] matrix, and in the probs tensor.
    @inline(__always) func headOffset(_ b: Int, _ h: Int) -> Int { b * tokens * width + h * headDim }
    @inline(__always) func probsOffset(_ b: Int, _ h: Int) -> Int { (b * heads + h) * tokens * tokens }
}

public func attentionForward(_ ctx: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                             q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                             shape s: AttentionShape) {
    let t = s.tokens, w = s.width, hd = s.headDim
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            let o = s.headOffset(b, h)
            sgemm(transB: true, m: t, n: t, k: hd, a: q + o, lda: w, b: k + o, ldb: w,
                  c: probs + s.probsOffset(b, h), ldc: t)
        }
    }
    Kernels.softmaxRows(probs, rows: s.batch * s.heads * t, cols: t, ld: t, scale: s.scale)
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            let o = s.headOffset(b, h)
            sgemm(m: t, n: hd, k: t, a: probs + s.probsOffset(b, h), lda: t, b: v + o, ldb: w,
                  c: ctx + o, ldc: w)
        }
    }
}

/// Backward of ``attentionForward``: writes dq, dk, dv from dctx. `dprobs` is scratch of `probsCount` floats.
public func attentionBackward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                              dv: UnsafeMutablePointer<Float>, dprobs: UnsafeMutablePointer<Float>,
                              _ dctx: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                              q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                              shape s: AttentionShape) {
    let t = s.tokens, w = s.width, hd = s.headDim
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            let o = s.headOffset(b, h), p = s.probsOffset(b, h)
            // dP = dctx · vᵀ ; dv = Pᵀ · dctx
            sgemm(transB: true, m: t, n: t, k: hd, a: dctx + o, lda: w, b: v + o, ldb: w, c: dprobs + p, ldc: t)
            sgemm(transA: true, m: t, n: hd, k: t, a: probs + p, lda: t, b: dctx + o, ldb: w, c: dv + o, ldc: w)
        }
    }
    // dS = scale · P ⊙ (dP − ⟨dP, P⟩): gradient w.r.t. the unscaled scores q kᵀ.
    Kernels.softmaxBackwardRows(dprobs, probs, rows: s.batch * s.heads * t, cols: t, ld: t, scale: s.scale)
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            let o = s.headOffset(b, h), p = s.probsOffset(b, h)
            // dq = dS · k ; dk = dSᵀ · q
            sgemm(m: t, n: hd, k: t, a: dprobs + p, lda: t, b: k + o, ldb: w, c: dq + o, ldc: w)
            sgemm(transA: true, m: t, n: hd, k: t, a: dprobs + p, lda: t, b: q + o, ldb: w, c: dk + o, ldc: w)
        }
    }
}
