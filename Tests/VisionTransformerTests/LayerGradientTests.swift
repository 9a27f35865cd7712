import XCTest
import Tensors
@testable import VisionTransformer

/// Every layer's backward against central finite differences of the independent Double reference (`Ref`),
/// with the loss L = ⟨G, layer(x)⟩ for a fixed random G. The library runs in Float; tolerances reflect that.
final class LayerGradientTests: XCTestCase {
    var rng = TestRNG(seed: 20_261_129)

    func assertClose(_ got: [Double], _ want: [Double], atol: Double = 2e-5, rtol: Double = 2e-3,
                     _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        let (r, i) = worstRatio(got, want, atol: atol, rtol: rtol)
        XCTAssertLessThanOrEqual(r, 1, "\(what): element \(i) is \(i >= 0 ? got[i] : .nan), expected \(i >= 0 ? want[i] : .nan)",
                                 file: file, line: line)
    }

    func testLayerNorm() {
        let rows = 5, cols = 13
        let x = rng.array(rows * cols, -2, 3), gamma = rng.array(cols), beta = rng.array(cols), g = rng.array(rows * cols)
        let eps = 1e-6
        var y = [Float](repeating: 0, count: rows * cols), mean = [Float](repeating: 0, count: rows)
        var rstd = mean
        let xf = x.map(Float.init), gf = gamma.map(Float.init), bf = beta.map(Float.init)
        Kernels.layerNormForward(&y, mean: &mean, rstd: &rstd, xf, gamma: gf, beta: bf, rows: rows, cols: cols, eps: Float(eps))
        assertClose(y.map(Double.init), Ref.layerNorm(x, rows: rows, cols: cols, gamma: gamma, beta: beta, eps: eps), "forward")

        var dx = [Float](repeating: 0, count: rows * cols)
        var dgamma = [Float](repeating: 0.5, count: cols), dbeta = [Float](repeating: -0.25, count: cols)  // += check
        var scratch = [Float](repeating: 0, count: Kernels.layerNormScratchCount(cols: cols))
        Kernels.layerNormBackward(&dx, dgamma: &dgamma, dbeta: &dbeta, g.map(Float.init), xf, mean: mean, rstd: rstd,
                                  gamma: gf, rows: rows, cols: cols, scratch: &scratch)
        let fdX = finiteDifferences(x) { dot(g, Ref.layerNorm($0, rows: rows, cols: cols, gamma: gamma, beta: beta, eps: eps)) }
        let fdG = finiteDifferences(gamma) { dot(g, Ref.layerNorm(x, rows: rows, cols: cols, gamma: $0, beta: beta, eps: eps)) }
        let fdB = finiteDifferences(beta) { dot(g, Ref.layerNorm(x, rows: rows, cols: cols, gamma: gamma, beta: $0, eps: eps)) }
        assertClose(dx.map(Double.init), fdX, "dx")
        assertClose(dgamma.map { Double($0) - 0.5 }, fdG, "dgamma (accumulated)")
        assertClose(dbeta.map { Double($0) + 0.25 }, fdB, "dbeta (accumulated)")
    }

    func testLinear() {
        let rows = 6, inF = 7, outF = 5
        let x = rng.array(rows * inF), w = rng.array(outF * inF), b = rng.array(outF), g = rng.array(rows * outF)
        var y = [Float](repeating: 0, count: rows * outF)
        linearForward(&y, x.map(Float.init), weight: w.map(Float.init), bias: b.map(Float.init),
                      rows: rows, inFeatures: inF, outFeatures: outF)
        assertClose(y.map(Double.init), Ref.linear(x, rows: rows, inF: inF, outF: outF, w: w, b: b), "forward")

        let prior: Float = 0.75
        var dx = [Float](repeating: prior, count: rows * inF)
        var dw = [Float](repeating: prior, count: outF * inF), db = [Float](repeating: prior, count: outF)
        linearBackward(&dx, dWeight: &dw, dBias: &db, g.map(Float.init), x.map(Float.init), weight: w.map(Float.init),
                       rows: rows, inFeatures: inF, outFeatures: outF, accumulate: true)
        let fdX = finiteDifferences(x) { dot(g, Ref.linear($0, rows: rows, inF: inF, outF: outF, w: w, b: b)) }
        let fdW = finiteDifferences(w) { dot(g, Ref.linear(x, rows: rows, inF: inF, outF: outF, w: $0, b: b)) }
        let fdB = finiteDifferences(b) { dot(g, Ref.linear(x, rows: rows, inF: inF, outF: outF, w: w, b: $0)) }
        assertClose(dx.map { Double($0 - prior) }, fdX, "dx (accumulate)")
        assertClose(dw.map { Double($0 - prior) }, fdW, "dW")
        assertClose(db.map { Double($0 - prior) }, fdB, "db")

        var dxWritten = [Float](repeating: 99, count: rows * inF)
        linearBackward(&dxWritten, dWeight: nil, dBias: nil, g.map(Float.init), x.map(Float.init),
                       weight: w.map(Float.init), rows: rows, inFeatures: inF, outFeatures: outF)
        assertClose(dxWritten.map(Double.init), fdX, "dx (written)")
    }

    func testGELU() {
        let n = 61
        let x = rng.array(n, -5, 5), g = rng.array(n)
        var y = [Float](repeating: 0, count: n)
        Kernels.geluForward(&y, x.map(Float.init), count: n)
        assertClose(y.map(Double.init), Ref.gelu(x), "forward")
        var dx = [Float](repeating: 0, count: n)
        Kernels.geluBackward(&dx, g.map(Float.init), x.map(Float.init), count: n)
        assertClose(dx.map(Double.init), finiteDifferences(x) { dot(g, Ref.gelu($0)) }, "dx")
    }

    func testAttention() {
        let s = AttentionShape(batch: 2, tokens: 5, heads: 2, headDim: 3)
        let rows = s.batch * s.tokens, n = rows * s.width
        let q = rng.array(n, -2, 2), k = rng.array(n, -2, 2), v = rng.array(n), g = rng.array(n)
        func ref(_ q: [Double], _ k: [Double], _ v: [Double]) -> [Double] {
            Ref.attention(q: q, k: k, v: v, batch: s.batch, tokens: s.tokens, heads: s.heads, headDim: s.headDim)
        }
        // Pack q, k, v side by side per row: [rows, 3·width].
        var qkv = [Float](repeating: 0, count: 3 * n)
        for r in 0..<rows {
            for j in 0..<s.width {
                qkv[r * 3 * s.width + j] = Float(q[r * s.width + j])
                qkv[r * 3 * s.width + s.width + j] = Float(k[r * s.width + j])
                qkv[r * 3 * s.width + 2 * s.width + j] = Float(v[r * s.width + j])
            }
        }
        var ctx = [Float](repeating: 0, count: n), probs = [Float](repeating: 0, count: s.probsCount)
        attentionForward(&ctx, probs: &probs, qkv: qkv, shape: s)
        assertClose(ctx.map(Double.init), ref(q, k, v), "forward")

        var dqkv = [Float](repeating: 0, count: 3 * n), dprobs = [Float](repeating: 0, count: s.probsCount)
        attentionBackward(dqkv: &dqkv, dprobs: &dprobs, g.map(Float.init), probs: probs, qkv: qkv, shape: s)
        func part(_ which: Int) -> [Double] {
            (0..<n).map { i in Double(dqkv[(i / s.width) * 3 * s.width + which * s.width + i % s.width]) }
        }
        assertClose(part(0), finiteDifferences(q) { dot(g, ref($0, k, v)) }, "dq")
        assertClose(part(1), finiteDifferences(k) { dot(g, ref(q, $0, v)) }, "dk")
        assertClose(part(2), finiteDifferences(v) { dot(g, ref(q, k, $0)) }, "dv")
    }

    func testLayerScaleResidual() {
        let rows = 4, cols = 9
        let res = rng.array(rows * cols), x = rng.array(rows * cols), gamma = rng.array(cols), g = rng.array(rows * cols)
        func ref(_ x: [Double], _ gamma: [Double]) -> [Double] { (0..<(rows * cols)).map { res[$0] + gamma[$0 % cols] * x[$0] } }
        var out = [Float](repeating: 0, count: rows * cols)
        layerScaleResidualForward(&out, residual: res.map(Float.init), x.map(Float.init), gamma: gamma.map(Float.init),
                                  rows: rows, cols: cols)
        assertClose(out.map(Double.init), ref(x, gamma), "forward")
        var dx = [Float](repeating: 0, count: rows * cols), dgamma = [Float](repeating: 0, count: cols)
        layerScaleResidualBackward(&dx, dGamma: &dgamma, g.map(Float.init), x.map(Float.init),
                                   gamma: gamma.map(Float.init), rows: rows, cols: cols)
        assertClose(dx.map(Double.init), finiteDifferences(x) { dot(g, ref($0, gamma)) }, "dx")
        assertClose(dgamma.map(Double.init), finiteDifferences(gamma) { dot(g, ref(x, $0)) }, "dgamma")
    }

    func testPatchEmbedding() {
        let s = PatchShape(batch: 2, channels: 3, height: 4, width: 6, patch: 2)
        let dim = 5
        let px = rng.array(s.batch * 3 * 4 * 6), w = rng.array(dim * s.patchDim), b = rng.array(dim)
        let g = rng.array(s.rows * dim)
        func ref(_ px: [Double], _ w: [Double], _ b: [Double]) -> [Double] {
            Ref.patchConv(px, batch: 2, channels: 3, height: 4, width: 6, patch: 2, w: w, b: b, dim: dim)
        }
        var out = [Float](repeating: 0, count: s.rows * dim), patches = [Float](repeating: 0, count: s.rows * s.patchDim)
        let pxf = px.map(Float.init), wf = w.map(Float.init)
        patchEmbedForward(&out, patches: &patches, pxf, weight: wf, bias: b.map(Float.init), shape: s, dim: dim)
        assertClose(out.map(Double.init), ref(px, w, b), "forward")
        var dpx = [Float](repeating: 7, count: px.count), dpatches = patches
        var dw = [Float](repeating: 0, count: w.count), db = [Float](repeating: 0, count: dim)
        patchEmbedBackward(dpixels: &dpx, dpatches: &dpatches, dWeight: &dw, dBias: &db, g.map(Float.init),
                           patches: patches, weight: wf, shape: s, dim: dim)
        assertClose(dpx.map(Double.init), finiteDifferences(px) { dot(g, ref($0, w, b)) }, "dpixels")
        assertClose(dw.map(Double.init), finiteDifferences(w) { dot(g, ref(px, $0, b)) }, "dW")
        assertClose(db.map(Double.init), finiteDifferences(b) { dot(g, ref(px, w, $0)) }, "db")
    }

    func testBicubicResize() {
        let dim = 3
        for (inG, outR, outC) in [(5, 3, 4), (3, 5, 7), (4, 4, 4), (37, 4, 3), (2, 1, 6)] {
            let src = rng.array(inG * inG * dim), g = rng.array(outR * outC * dim)
            let r = BicubicResize(inRows: inG, inCols: inG, outRows: outR, outCols: outC)
            var out = [Float](repeating: 0, count: outR * outC * dim)
            r.forward(&out, src.map(Float.init), dim: dim)
            let want = Ref.bicubic(src, inR: inG, inC: inG, outR: outR, outC: outC, dim: dim)
            assertClose(out.map(Double.init), want, "forward \(inG)²→\(outR)×\(outC)")
            var dsrc = [Float](repeating: 1, count: src.count)
            r.backward(&dsrc, g.map(Float.init), dim: dim)
            let fd = finiteDifferences(src) { dot(g, Ref.bicubic($0, inR: inG, inC: inG, outR: outR, outC: outC, dim: dim)) }
            assertClose(dsrc.map { Double($0) - 1 }, fd, "backward \(inG)²→\(outR)×\(outC) (accumulated)")
        }
    }
}
