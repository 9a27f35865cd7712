import CKernels

/// The MLP activation of a transformer block.
public enum Activation: String, Codable, Sendable, CaseIterable {
    /// Exact GELU, x·Φ(x) (PyTorch `nn.GELU()`).
    case gelu
    /// QuickGELU, x·σ(1.702·x): OpenAI CLIP's (and every `openai/clip-*` checkpoint's) activation.
    case quickGELU = "quick_gelu"
}

/// Element-wise passes of the ViT, over the SIMD kernels in `CKernels` (SLEEF exp/erf, runtime ISA dispatch),
/// split by rows across ``Parallel/workers`` threads.
public enum Kernels {
    /// The instruction set the element-wise kernels dispatched to ("avx512f", "avx2" or "scalar").
    public static var isa: String { String(cString: ck_isa()) }

    /// Exact GELU, y = x·Φ(x). `y` may alias `x`.
    public static func geluForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        Parallel.forChunks(count, work: count * 8) { _, r in
            ck_gelu_forward(x + r.lowerBound, y + r.lowerBound, r.count)
        }
    }

    /// dx = dy · GELU'(x). `dx` may alias `dy`.
    public static func geluBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>,
                                    _ x: UnsafePointer<Float>, count: Int) {
        Parallel.forChunks(count, work: count * 8) { _, r in
            ck_gelu_backward(x + r.lowerBound, dy + r.lowerBound, dx + r.lowerBound, r.count)
        }
    }

    /// y = act(x). `y` may alias `x`.
    public static func activationForward(_ act: Activation, _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                         count: Int) {
        switch act {
        case .gelu: geluForward(y, x, count: count)
        case .quickGELU:
            Parallel.forChunks(count, work: count * 6) { _, r in
                ck_quick_gelu_forward(x + r.lowerBound, y + r.lowerBound, r.count)
            }
        }
    }

    /// dx = dy · act'(x). `dx` may alias `dy`.
    public static func activationBackward(_ act: Activation, _ dx: UnsafeMutablePointer<Float>,
                                          _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        switch act {
        case .gelu: geluBackward(dx, dy, x, count: count)
        case .quickGELU:
            Parallel.forChunks(count, work: count * 6) { _, r in
                ck_quick_gelu_backward(x + r.lowerBound, dy + r.lowerBound, dx + r.lowerBound, r.count)
            }
        }
    }

    /// Rows of `cols` (row stride `ld`) ← softmax(scale · row).
    public static func softmaxRows(_ s: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int, scale: Float) {
        Parallel.forChunks(rows, work: rows * cols * 4) { _, r in
            ck_softmax_rows(s + r.lowerBound * ld, r.count, cols, ld, scale)
        }
    }

    /// dp ← scale · p ⊙ (dp − ⟨dp, p⟩) row by row: the gradient w.r.t. the logits of softmax(scale · logits).
    public static func softmaxBackwardRows(_ dp: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>,
                                           rows: Int, cols: Int, ld: Int, scale: Float) {
        Parallel.forChunks(rows, work: rows * cols * 4) { _, r in
            ck_softmax_backward_rows(p + r.lowerBound * ld, dp + r.lowerBound * ld, r.count, cols, ld, scale)
        }
    }
}

extension Kernels {
    /// Scratch floats ``layerNormBackward`` needs for per-worker dgamma/dbeta partial sums.
    public static func layerNormScratchCount(cols: Int) -> Int { 2 * cols * max(1, Parallel.workers) }

    /// y = (x − mean)/√(var + eps) · gamma + beta over rows of `cols`; saves mean and rstd per row.
    public static func layerNormForward(_ y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                                        rstd: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                        rows: Int, cols: Int, eps: Float) {
        Parallel.forChunks(rows, work: rows * cols * 4) { _, r in
            let o = r.lowerBound
            ck_layernorm_forward(x + o * cols, y + o * cols, mean + o, rstd + o, gamma, beta, r.count, cols, eps)
        }
    }

    /// dx = LayerNorm input gradient (written, `dx` may alias `dy`); when `dgamma`/`dbeta` are given they are
    /// ACCUMULATED (+=). `scratch` holds ``layerNormScratchCount(cols:)`` floats.
    public static func layerNormBackward(_ dx: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>?,
                                         dbeta: UnsafeMutablePointer<Float>?, _ dy: UnsafePointer<Float>,
                                         _ x: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                                         rstd: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                                         rows: Int, cols: Int, scratch: UnsafeMutablePointer<Float>) {
        let wantParams = dgamma != nil && dbeta != nil
        let work = rows * cols * 6
        let chunks = Parallel.chunkCount(rows, work: work)
        if wantParams { scratch.initialize(repeating: 0, count: 2 * cols * chunks) }
        Parallel.forChunks(rows, work: work) { slot, r in
            let part = scratch + slot * 2 * cols  // each chunk sums its own dgamma/dbeta partials
            let o = r.lowerBound
            ck_layernorm_backward(x + o * cols, dy + o * cols, dx + o * cols, mean + o, rstd + o, gamma,
                                  wantParams ? part : nil, wantParams ? part + cols : nil, r.count, cols)
        }
        if let dgamma, let dbeta {
            for s in 0..<chunks {
                let part = scratch + s * 2 * cols
                for j in 0..<cols { dgamma[j] += part[j]; dbeta[j] += part[cols + j] }
            }
        }
    }
}

extension Kernels {
    /// ``softmaxRows(_:rows:cols:ld:scale:)`` on the calling thread, for callers already running in parallel.
    @inline(__always)
    public static func softmaxRowsSerial(_ s: UnsafeMutablePointer<Float>, rows: Int, cols: Int, scale: Float) {
        ck_softmax_rows(s, rows, cols, cols, scale)
    }

    /// ``softmaxBackwardRows(_:_:rows:cols:ld:scale:)`` on the calling thread.
    @inline(__always)
    public static func softmaxBackwardRowsSerial(_ dp: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>,
                                                 rows: Int, cols: Int, scale: Float) {
        ck_softmax_backward_rows(p, dp, rows, cols, cols, scale)
    }
}
