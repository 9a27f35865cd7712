import Tensors

/// y[rows, out] = x[rows, in] · Wᵀ + b, with W stored [out, in] as in PyTorch.
/// The bias is broadcast into y first and the GEMM accumulates onto it (beta = 1): one pass fewer than adding
/// it afterwards.
public func linearForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                          weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          rows: Int, inFeatures: Int, outFeatures: Int) {
    if let bias {
        Parallel.forChunks(rows, work: rows * outFeatures) { _, r in
            for i in r { (y + i * outFeatures).update(from: bias, count: outFeatures) }
        }
    }
    sgemm(transB: true, m: rows, n: outFeatures, k: inFeatures, a: x, lda: inFeatures, b: weight, ldb: inFeatures,
          beta: bias == nil ? 0 : 1, c: y, ldc: outFeatures)
}

/// Backward of ``linearForward(_:_:weight:bias:rows:inFeatures:outFeatures:)``.
/// dx = dy · W (written, or added when `accumulate`); when given, dW += dyᵀ · x and db += Σ_rows dy.
public func linearBackward(_ dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                           dBias: UnsafeMutablePointer<Float>?, _ dy: UnsafePointer<Float>,
                           _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           rows: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = false) {
    if let dx {
        sgemm(m: rows, n: inFeatures, k: outFeatures, a: dy, lda: outFeatures, b: weight, ldb: inFeatures,
              beta: accumulate ? 1 : 0, c: dx, ldc: inFeatures)
    }
    if let dWeight {
        sgemm(transA: true, m: outFeatures, n: inFeatures, k: rows, a: dy, lda: outFeatures, b: x, ldb: inFeatures,
              beta: 1, c: dWeight, ldc: inFeatures)
    }
    if let dBias { columnSums(dBias, dy, rows: rows, cols: outFeatures) }
}

/// out[j] += Σ_i m[i, j] for a row-major [rows, cols] matrix.
func columnSums(_ out: UnsafeMutablePointer<Float>, _ m: UnsafePointer<Float>, rows: Int, cols: Int) {
    for i in 0..<rows {
        let row = m + i * cols
        for j in 0..<cols { out[j] += row[j] }
    }
}

/// out = residual + gamma ⊙ x, row-wise over [rows, cols] (LayerScale then the residual add); without `gamma`
/// (CLIP) out = residual + x. `out` may alias `residual`.
public func layerScaleResidualForward(_ out: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>,
                                      _ x: UnsafePointer<Float>, gamma: UnsafePointer<Float>?,
                                      rows: Int, cols: Int) {
    Parallel.forChunks(rows, work: rows * cols) { _, r in
        for i in r {
            let o = out + i * cols, res = residual + i * cols, xi = x + i * cols
            if let gamma {
                for j in 0..<cols { o[j] = res[j] + gamma[j] * xi[j] }
            } else {
                for j in 0..<cols { o[j] = res[j] + xi[j] }
            }
        }
    }
}

/// Backward of ``layerScaleResidualForward``: dx = gamma ⊙ dout (written; dout itself without `gamma`);
/// dgamma += Σ_rows dout ⊙ x when given. The residual's gradient is dout itself and is left to the caller.
public func layerScaleResidualBackward(_ dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>?,
                                       _ dout: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                       gamma: UnsafePointer<Float>?, rows: Int, cols: Int) {
    guard let gamma else {
        dx.update(from: dout, count: rows * cols)
        return
    }
    Parallel.forChunks(rows, work: rows * cols) { _, r in
        for i in r {
            let d = dx + i * cols, g = dout + i * cols
            for j in 0..<cols { d[j] = gamma[j] * g[j] }
        }
    }
    if let dGamma {
        for i in 0..<rows {
            let g = dout + i * cols, xi = x + i * cols
            for j in 0..<cols { dGamma[j] += g[j] * xi[j] }
        }
    }
}

/// a += b over `count` floats.
public func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
    Parallel.forChunks(count, work: count) { _, r in
        for i in r { a[i] += b[i] }
    }
}
