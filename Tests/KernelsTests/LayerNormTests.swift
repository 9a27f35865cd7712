import CKernels
import Foundation
import XCTest

/// LayerNorm forward/backward (with accumulated dgamma/dbeta) against a Double reference.
final class LayerNormTests: XCTestCase {
    static let colCounts = [1, 2, 7, 16, 17, 100, 257, 768, 1536]
    static let rows = 9

    /// Rows of x = offset + sd·N(0, 1) with offset ∈ [−5, 5] and sd ∈ [0.05, 20] (log-uniform); row 0 is constant
    /// (variance 0, rstd = 1/√eps) and row 1 is ill-conditioned (offset 4.5, sd 0.05: E[x²] − mean² would fail).
    static func inputs(rows: Int, cols: Int, seed: UInt64) -> (x: [Float], gamma: [Float], beta: [Float]) {
        var rng = SplitMix64(seed: seed)
        var x = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            var offset = Double(rng.uniformFloat(-5, 5))
            var sd = exp(Double(rng.uniformFloat(log(0.05), log(20))))
            if r == 0 { sd = 0 }
            if r == 1 { (offset, sd) = (4.5, 0.05) }
            for j in 0..<cols { x[r * cols + j] = Float(offset + sd * rng.normal()) }
        }
        let gamma = (0..<cols).map { _ in Float(1 + 0.5 * rng.normal()) }
        let beta = (0..<cols).map { _ in Float(0.2 * rng.normal()) }
        return (x, gamma, beta)
    }

    /// Double mean and rstd of each row (biased variance).
    static func stats(_ x: [Float], rows: Int, cols: Int, eps: Float) -> (mean: [Double], rstd: [Double], sd: [Double]) {
        var mean = [Double](), rstd = [Double](), sd = [Double]()
        for r in 0..<rows {
            let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let m = row.reduce(0, +) / Double(cols)
            let v = row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(cols)
            mean.append(m)
            rstd.append(1 / (v + Double(eps)).squareRoot())
            sd.append(v.squareRoot())
        }
        return (mean, rstd, sd)
    }

    func testForward() {
        var maxErr: [String: Double] = [:]
        for eps: Float in [1e-6, 1e-5] {
            for cols in Self.colCounts {
                let rows = Self.rows
                let (xs, gs, bs) = Self.inputs(rows: rows, cols: cols, seed: 900 + UInt64(cols))
                let st = Self.stats(xs, rows: rows, cols: cols, eps: eps)
                // y tolerance: 2e-6 relative to |gamma·xhat| + |beta|, plus the unavoidable effect of storing the
                // mean as a float (half an ulp of |mean|, i.e. ≤ 2⁻²⁴·|mean|·rstd·|gamma| ≈ 6e-8, doubled).
                var yRef = [Double](repeating: 0, count: rows * cols), yTol = yRef
                for r in 0..<rows {
                    for j in 0..<cols {
                        let i = r * cols + j
                        let xhat = (Double(xs[i]) - st.mean[r]) * st.rstd[r]
                        yRef[i] = xhat * Double(gs[j]) + Double(bs[j])
                        yTol[i] = 2e-6 * (abs(xhat * Double(gs[j])) + abs(Double(bs[j])))
                            + 1.2e-7 * abs(st.mean[r]) * st.rstd[r] * abs(Double(gs[j])) + 1e-30
                    }
                }
                let x = GuardedBuffer(xs), gamma = GuardedBuffer(gs), beta = GuardedBuffer(bs)
                forEachISA { isa in
                    let what = "layernorm_forward[\(isa)] \(rows)x\(cols) eps=\(eps)"
                    let y = GuardedBuffer(count: rows * cols, fill: .nan)
                    let mean = GuardedBuffer(count: rows, fill: .nan), rstd = GuardedBuffer(count: rows, fill: .nan)
                    ck_layernorm_forward(x.pointer, y.pointer, mean.pointer, rstd.pointer, gamma.pointer, beta.pointer,
                                         rows, cols, eps)
                    let e = max(
                        assertClose(mean.pointer, st.mean,
                                    tolerance: { 1.2e-7 * abs(st.mean[$0]) + 1e-6 * st.sd[$0] + 1e-30 }, "\(what) mean"),
                        assertClose(rstd.pointer, st.rstd, tolerance: { 2e-6 * st.rstd[$0] }, "\(what) rstd"),
                        assertClose(y.pointer, yRef, tolerance: { yTol[$0] }, "\(what) y"))
                    maxErr[isa] = max(maxErr[isa] ?? 0, e)
                    XCTAssertEqual(x.array, xs, "\(what) modified x")
                }
            }
        }
        printSummary("layernorm_forward", maxErr)
    }

    func testBackward() {
        var maxErr: [String: Double] = [:]
        for cols in Self.colCounts {
            let rows = Self.rows
            let (xs, gs, _) = Self.inputs(rows: rows, cols: cols, seed: 1900 + UInt64(cols))
            var rng = SplitMix64(seed: 2900 + UInt64(cols))
            let dys = (0..<(rows * cols)).map { _ in Float(rng.normal()) }
            let dg0 = (0..<cols).map { _ in rng.uniformFloat(-3, 3) }   // non-zero: the kernel must add to these
            let db0 = (0..<cols).map { _ in rng.uniformFloat(-3, 3) }
            // mean/rstd as the forward would store them (floats); the reference uses those exact values.
            let st = Self.stats(xs, rows: rows, cols: cols, eps: 1e-6)
            let meanF = st.mean.map { Float($0) }, rstdF = st.rstd.map { Float($0) }

            let n = Double(cols)
            var dxRef = [Double](repeating: 0, count: rows * cols), dxTol = dxRef
            var dgRef = dg0.map(Double.init), dbRef = db0.map(Double.init)
            var dgTol = dg0.map { abs(Double($0)) }, dbTol = db0.map { abs(Double($0)) }
            for r in 0..<rows {
                let idx = (0..<cols).map { r * cols + $0 }
                let m = Double(meanF[r]), rs = Double(rstdF[r])
                let xhat = idx.map { (Double(xs[$0]) - m) * rs }
                let g = (0..<cols).map { Double(dys[idx[$0]]) * Double(gs[$0]) }
                let a = g.reduce(0, +) / n
                let b = (0..<cols).map { g[$0] * xhat[$0] }.reduce(0, +) / n
                let absA = g.map(abs).reduce(0, +) / n
                let absB = (0..<cols).map { abs(g[$0] * xhat[$0]) }.reduce(0, +) / n
                for j in 0..<cols {
                    let dy = Double(dys[idx[j]])
                    dxRef[idx[j]] = rs * (g[j] - a - xhat[j] * b)
                    dxTol[idx[j]] = 2e-6 * rs * (abs(g[j]) + absA + abs(xhat[j]) * absB) + 1e-30
                    dgRef[j] += dy * xhat[j]
                    dbRef[j] += dy
                    dgTol[j] += abs(dy * xhat[j])
                    dbTol[j] += abs(dy)
                }
            }
            let x = GuardedBuffer(xs), gamma = GuardedBuffer(gs)
            let mean = GuardedBuffer(meanF), rstd = GuardedBuffer(rstdF)
            forEachISA { isa in
                let what = "layernorm_backward[\(isa)] \(rows)x\(cols)"
                // 1. Separate dx; dgamma/dbeta accumulated over two calls (rows split 4 + 5, as callers chunk).
                let dy = GuardedBuffer(dys), dx = GuardedBuffer(count: rows * cols, fill: .nan)
                let dgamma = GuardedBuffer(dg0), dbeta = GuardedBuffer(db0)
                let split = 4
                ck_layernorm_backward(x.pointer, dy.pointer, dx.pointer, mean.pointer, rstd.pointer, gamma.pointer,
                                      dgamma.pointer, dbeta.pointer, split, cols)
                let o = split * cols
                ck_layernorm_backward(x.pointer + o, dy.pointer + o, dx.pointer + o, mean.pointer + split,
                                      rstd.pointer + split, gamma.pointer, dgamma.pointer, dbeta.pointer,
                                      rows - split, cols)
                let e = max(
                    assertClose(dx.pointer, dxRef, tolerance: { dxTol[$0] }, "\(what) dx"),
                    assertClose(dgamma.pointer, dgRef, tolerance: { 2e-6 * dgTol[$0] }, "\(what) dgamma (accumulated)"),
                    assertClose(dbeta.pointer, dbRef, tolerance: { 2e-6 * dbTol[$0] }, "\(what) dbeta (accumulated)"))
                maxErr[isa] = max(maxErr[isa] ?? 0, e)
                XCTAssertEqual(dy.array, dys, "\(what) modified dy")

                // 2. dx aliasing dy, no parameter gradients.
                let inPlace = GuardedBuffer(dys)
                ck_layernorm_backward(x.pointer, inPlace.pointer, inPlace.pointer, mean.pointer, rstd.pointer,
                                      gamma.pointer, nil, nil, rows, cols)
                assertClose(inPlace.pointer, dxRef, tolerance: { dxTol[$0] }, "\(what) dx in place")

                // 3. Only dgamma: dbeta is NULL and only dgamma moves.
                let dgOnly = GuardedBuffer(dg0), dxOnly = GuardedBuffer(count: rows * cols)
                ck_layernorm_backward(x.pointer, dy.pointer, dxOnly.pointer, mean.pointer, rstd.pointer, gamma.pointer,
                                      dgOnly.pointer, nil, rows, cols)
                assertClose(dgOnly.pointer, dgRef, tolerance: { 2e-6 * dgTol[$0] }, "\(what) dgamma only")
            }
        }
        printSummary("layernorm_backward", maxErr)
    }
}
