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

/// LoRA's thin GEMMs (one side the rank r, the other `rows` long), rows split across ``Parallel/workers``. OpenBLAS
/// packs the long operand for these shapes and reaches a fraction of its peak; these read each of its rows once.
extension Kernels {
    /// Scratch floats ``thinOuter(_:lda:transposed:_:lds:_:ldx:rows:r:cols:alpha:partials:)`` needs for the
    /// per-worker partial sums of an [r, cols] result.
    public static func thinOuterScratchCount(r: Int, cols: Int) -> Int { max(1, Parallel.workers) * r * cols }

    /// Largest r · k that ``thinRows(_:ldo:_:ldx:_:ldw:rows:k:r:alpha:)`` runs on its own kernel (w in 16 KiB of
    /// L1); above it, sgemm.
    public static let thinRowsLimit = 4096

    /// out = alpha · x · wᵀ for w [r, k]: out[i, j] = alpha · Σ_q x[i, q] · w[j, q] (written); x [rows, k] with row
    /// stride ldx, w with row stride ldw, out [rows, r] with row stride ldo. The kernel keeps w in L1 and reduces
    /// each output across a vector; when w is larger than 16 KiB (r·k > ``thinRowsLimit``) sgemm does it faster.
    public static func thinRows(_ out: UnsafeMutablePointer<Float>, ldo: Int, _ x: UnsafePointer<Float>, ldx: Int,
                                _ w: UnsafePointer<Float>, ldw: Int, rows: Int, k: Int, r: Int, alpha: Float = 1) {
        guard r * k <= thinRowsLimit else {
            sgemm(transB: true, m: rows, n: r, k: k, alpha: alpha, a: x, lda: ldx, b: w, ldb: ldw, c: out, ldc: ldo)
            return
        }
        Parallel.forChunks(rows, work: rows * k * r) { _, rs in
            ck_thin_rows(x + rs.lowerBound * ldx, ldx, w, ldw, out + rs.lowerBound * ldo, ldo, rs.count, k, r, alpha)
        }
    }

    /// From this r on, ``thinOuter(_:lda:transposed:_:lds:_:ldx:rows:r:cols:alpha:partials:)`` calls sgemm: the
    /// result is no longer thin, and sgemm beats the per-worker partial sums.
    public static let thinOuterSGEMMRank = 32

    /// acc += alpha · sᵀ · x, i.e. acc[j, q] += alpha · Σ_i s[i, j] · x[i, q] (ACCUMULATED), for s [rows, r] (row
    /// stride lds), x [rows, cols] (row stride ldx), acc [r, cols] (row stride lda); `transposed`: acc is
    /// [cols, r] and acc[q, j] += … instead. Each worker sums its rows into its own slice of `partials`
    /// (``thinOuterScratchCount(r:cols:)`` floats), then acc += alpha · Σ slices.
    public static func thinOuter(_ acc: UnsafeMutablePointer<Float>, lda: Int, transposed: Bool = false,
                                 _ s: UnsafePointer<Float>, lds: Int, _ x: UnsafePointer<Float>, ldx: Int,
                                 rows: Int, r: Int, cols: Int, alpha: Float, partials: UnsafeMutablePointer<Float>) {
        if r >= thinOuterSGEMMRank {
            if transposed {
                sgemm(transA: true, m: cols, n: r, k: rows, alpha: alpha, a: x, lda: ldx, b: s, ldb: lds, beta: 1, c: acc, ldc: lda)
            } else {
                sgemm(transA: true, m: r, n: cols, k: rows, alpha: alpha, a: s, lda: lds, b: x, ldb: ldx, beta: 1, c: acc, ldc: lda)
            }
            return
        }
        let work = rows * cols * r, chunks = Parallel.chunkCount(rows, work: work)
        partials.initialize(repeating: 0, count: chunks * r * cols)
        Parallel.forChunks(rows, work: work) { c, rs in
            ck_thin_outer(partials + c * r * cols, cols, s + rs.lowerBound * lds, lds, x + rs.lowerBound * ldx, ldx,
                          rs.count, r, cols)
        }
        for c in 0..<chunks {
            let part = partials + c * r * cols
            for j in 0..<r {
                let p = part + j * cols
                if transposed {
                    for q in 0..<cols { acc[q * lda + j] += alpha * p[q] }
                } else {
                    let a = acc + j * lda
                    for q in 0..<cols { a[q] += alpha * p[q] }
                }
            }
        }
    }
}
