import Tensors

/// Resizes a square grid of position embeddings to another grid exactly as PyTorch
/// `interpolate(mode="bicubic", align_corners=False, size=(rows, cols))` does — the way Hugging Face
/// `Dinov2Model.interpolate_pos_encoding` adapts DINOv2's 37×37 grid to other image sizes (the class token's
/// position is not interpolated).
///
/// PyTorch's bicubic (upsample_bicubic2d): for output index i, source coordinate x = (i + 0.5)·in/out − 0.5,
/// x0 = ⌊x⌋, t = x − x0; taps x0−1 … x0+2 clamped to [0, in−1] with Keys' cubic convolution weights, a = −0.75:
/// w(d) = (a+2)|d|³ − (a+3)|d|² + 1 for |d| ≤ 1, a|d|³ − 5a|d|² + 8a|d| − 4a for 1 < |d| < 2.
/// The map is linear and separable, so it is stored as 4 taps per output row and column; its adjoint gives the
/// backward.
public struct BicubicResize {
    public let inRows, inCols, outRows, outCols: Int
    let rowTaps: [(index: [Int], weight: [Float])]
    let colTaps: [(index: [Int], weight: [Float])]

    public init(inRows: Int, inCols: Int, outRows: Int, outCols: Int) {
        self.inRows = inRows; self.inCols = inCols; self.outRows = outRows; self.outCols = outCols
        rowTaps = BicubicResize.taps(input: inRows, output: outRows)
        colTaps = BicubicResize.taps(input: inCols, output: outCols)
    }

    /// The identity when the size does not change (HF skips the call then; the weights are exactly one-hot).
    public var isIdentity: Bool { inRows == outRows && inCols == outCols }

    static func taps(input: Int, output: Int) -> [(index: [Int], weight: [Float])] {
        let a: Float = -0.75
        func near(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }          // |d| ≤ 1
        func far(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }    // 1 < |d| < 2
        let scale = Float(input) / Float(output)
        return (0..<output).map { i in
            let x = scale * (Float(i) + 0.5) - 0.5
            let x0 = Int(x.rounded(.down))
            let t = x - Float(x0)
            let w: [Float] = [far(t + 1), near(t), near(1 - t), far(2 - t)]
            let idx = (0..<4).map { min(max(x0 - 1 + $0, 0), input - 1) }
            return (idx, w)
        }
    }

    /// out[(i, j), :] = Σ_{a,b} wr[i][a] · wc[j][b] · src[(ri[a], cj[b]), :], rows of `dim` floats.
    /// Computed as PyTorch does: along columns for each of the 4 source rows, then along rows.
    public func forward(_ out: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, dim: Int) {
        if isIdentity { out.update(from: src, count: outRows * outCols * dim); return }
        for i in 0..<outRows {
            let rt = rowTaps[i]
            for j in 0..<outCols {
                let ct = colTaps[j]
                let o = out + (i * outCols + j) * dim
                o.initialize(repeating: 0, count: dim)
                for a in 0..<4 {
                    let srcRow = src + rt.index[a] * inCols * dim
                    let wr = rt.weight[a]
                    let c0 = srcRow + ct.index[0] * dim, c1 = srcRow + ct.index[1] * dim
                    let c2 = srcRow + ct.index[2] * dim, c3 = srcRow + ct.index[3] * dim
                    let w0 = ct.weight[0], w1 = ct.weight[1], w2 = ct.weight[2], w3 = ct.weight[3]
                    for d in 0..<dim {
                        o[d] += wr * (c0[d] * w0 + c1[d] * w1 + c2[d] * w2 + c3[d] * w3)
                    }
                }
            }
        }
    }

    /// Adjoint: dsrc += Σ over outputs of the same weights times dout.
    public func backward(_ dsrc: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, dim: Int) {
        if isIdentity {
            for i in 0..<(outRows * outCols * dim) { dsrc[i] += dout[i] }
            return
        }
        for i in 0..<outRows {
            let rt = rowTaps[i]
            for j in 0..<outCols {
                let ct = colTaps[j]
                let g = dout + (i * outCols + j) * dim
                for a in 0..<4 {
                    for b in 0..<4 {
                        let w = rt.weight[a] * ct.weight[b]
                        let s = dsrc + (rt.index[a] * inCols + ct.index[b]) * dim
                        for d in 0..<dim { s[d] += w * g[d] }
                    }
                }
            }
        }
    }
}

/// tokens[b, 0] = cls + pos[0]; tokens[b, 1 + p] = patchOut[b, p] + pos[1 + p]  (all rows of `dim`).
/// `pos` holds the position embeddings already resized to this grid: [1 + patches, dim].
public func embeddingsForward(_ tokens: UnsafeMutablePointer<Float>, patchOut: UnsafePointer<Float>,
                              cls: UnsafePointer<Float>, pos: UnsafePointer<Float>,
                              batch: Int, patches: Int, dim: Int) {
    let t = patches + 1
    Parallel.forChunks(batch, work: batch * t * dim) { _, r in
        for b in r {
            let img = tokens + b * t * dim
            for d in 0..<dim { img[d] = cls[d] + pos[d] }
            for p in 0..<patches {
                let o = img + (1 + p) * dim, x = patchOut + (b * patches + p) * dim, q = pos + (1 + p) * dim
                for d in 0..<dim { o[d] = x[d] + q[d] }
            }
        }
    }
}

/// Backward of ``embeddingsForward``: dpatchOut written; dcls and dpos (resized grid) accumulated when given.
public func embeddingsBackward(dPatchOut: UnsafeMutablePointer<Float>, dCls: UnsafeMutablePointer<Float>?,
                               dPos: UnsafeMutablePointer<Float>?, _ dtokens: UnsafePointer<Float>,
                               batch: Int, patches: Int, dim: Int) {
    let t = patches + 1
    for b in 0..<batch {
        let img = dtokens + b * t * dim
        (dPatchOut + b * patches * dim).update(from: img + dim, count: patches * dim)
        if let dCls { for d in 0..<dim { dCls[d] += img[d] } }
        if let dPos { for i in 0..<(t * dim) { dPos[i] += img[i] } }
    }
}
