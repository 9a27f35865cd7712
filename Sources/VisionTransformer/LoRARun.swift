import Tensors

/// The per-shape state of LoRA in a forward/backward: for every block the saved h = x·Aᵀ [rows, r] the backward
/// needs, scratch g = dy·B [rows, r], and (when training) the gradients. Built once per activation shape, like
/// ``ViTActivations``; nothing is allocated while stepping.
///
/// Forward of a block (paired with ``backward(layer:target:dy:ldy:x:dx:)``):
///     h = x Aᵀ;   y += I · c · h Bᵀ          (c = alpha/r, I = the block's gate, ``Gates/mask``)
/// Backward, with g = dy B:
///     ds += c · Σ g ⊙ h                       (straight-through: dL/dI passed to s, active or not)
///     if I: dB += c · dyᵀ h;  dA += c · gᵀ x;  dx += c · g A
/// An inactive block only computes h and g (two thin GEMMs) when score gradients are wanted — a run with learned
/// scores whose gates have not settled — and nothing at all otherwise; its A and B are never written.
public final class LoRARun {
    public let adapters: LoRAAdapters
    public let rows: Int
    public let training: Bool
    let saved: FloatBuffer
    let scratch: FloatBuffer
    /// Gradients of A and B (same layout as the parameters), accumulated; nil for inference.
    public let grads: TensorStore?
    /// dL/ds per block, accumulated; nil when the gates are not learned (plain LoRA, inference).
    public let scoreGrads: FloatBuffer?

    public init(adapters: LoRAAdapters, activations acts: ViTActivations, gradients: Bool, scoreGradients: Bool) throws {
        self.adapters = adapters
        rows = acts.rows
        training = acts.training
        let r = adapters.config.rank
        saved = try FloatBuffer(count: (acts.training ? adapters.blocks.count : 1) * rows * r)
        scratch = try FloatBuffer(count: rows * r)
        grads = gradients ? try adapters.makeStore() : nil
        scoreGrads = gradients && scoreGradients ? try FloatBuffer(count: adapters.blocks.count) : nil
    }

    public func zeroGradients() {
        grads?.zero()
        scoreGrads?.zero()
    }

    func h(_ b: LoRAAdapters.Block) -> UnsafeMutablePointer<Float> {
        saved.base + (training ? b.index : 0) * rows * adapters.config.rank
    }

    /// Whether the score gradients are computed in this pass: the run has them and the gates still learn.
    var learnsScores: Bool { scoreGrads != nil && !adapters.gates.settled }

    /// Whether the block must run: it acts, or its score needs h for the straight-through gradient.
    func runs(_ b: LoRAAdapters.Block) -> Bool { adapters.gates.mask[b.index] || learnsScores }

    /// Adds the block's contribution to y [rows, out] (row stride ldy) from x [rows, in].
    func forward(layer: Int, target: LoRATarget, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, ldy: Int) {
        guard let b = adapters.block(layer: layer, target: target), runs(b) else { return }
        let r = adapters.config.rank, h = h(b)
        sgemm(transB: true, m: rows, n: r, k: b.inFeatures, a: x, lda: b.inFeatures,
              b: adapters.a(b), ldb: b.inFeatures, c: h, ldc: r)
        if adapters.gates.mask[b.index] {
            sgemm(transB: true, m: rows, n: b.outFeatures, k: r, alpha: adapters.config.scale, a: h, lda: r,
                  b: adapters.b(b), ldb: r, beta: 1, c: y, ldc: ldy)
        }
    }

    /// Backward of ``forward(layer:target:x:y:ldy:)``: dy [rows, out] (stride ldy); adds to dx [rows, in].
    func backward(layer: Int, target: LoRATarget, dy: UnsafePointer<Float>, ldy: Int, x: UnsafePointer<Float>,
                  dx: UnsafeMutablePointer<Float>) {
        guard let b = adapters.block(layer: layer, target: target), runs(b) else { return }
        let r = adapters.config.rank, c = adapters.config.scale, h = h(b), g = scratch.base
        let inF = b.inFeatures, outF = b.outFeatures
        sgemm(m: rows, n: r, k: outF, a: dy, lda: ldy, b: adapters.b(b), ldb: r, c: g, ldc: r)
        if let sg = scoreGrads, learnsScores {
            var s: Double = 0
            for i in 0..<(rows * r) { s += Double(g[i]) * Double(h[i]) }
            sg[b.index] += c * Float(s)
        }
        guard adapters.gates.mask[b.index] else { return }
        if let grads {
            sgemm(transA: true, m: outF, n: r, k: rows, alpha: c, a: dy, lda: ldy, b: h, ldb: r,
                  beta: 1, c: adapters.b(b, in: grads), ldc: r)
            sgemm(transA: true, m: r, n: inF, k: rows, alpha: c, a: g, lda: r, b: x, ldb: inF,
                  beta: 1, c: adapters.a(b, in: grads), ldc: inF)
        }
        sgemm(m: rows, n: inF, k: r, alpha: c, a: g, lda: r, b: adapters.a(b), ldb: inF, beta: 1, c: dx, ldc: inF)
    }
}
