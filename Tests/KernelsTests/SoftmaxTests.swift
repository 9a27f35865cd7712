import CKernels
import Foundation
import XCTest

/// Scaled row softmax forward/backward with a leading dimension, against a Double reference.
final class SoftmaxTests: XCTestCase {
    /// (rows, cols, ld − cols)
    static let shapes: [(rows: Int, cols: Int, pad: Int)] = [
        (1, 1, 0), (3, 1, 2), (5, 7, 0), (5, 7, 9), (4, 16, 0), (6, 17, 3), (4, 31, 1),
        (10, 257, 0), (10, 257, 15), (5, 1536, 0), (5, 1536, 5),
    ]
    static let scales: [Float] = [1, 0.125, -0.7]
    static let sentinel: Float = 12345

    /// Buffer of (rows − 1)·ld + cols floats (so the last row ends at the guard page), padding = sentinel.
    /// Row kinds cycle: uniform ±10, uniform ±60 (probabilities that underflow), constant, normal + one spike,
    /// uniform [90, 200] (exp overflows/underflows unless the max is subtracted).
    static func logits(rows: Int, cols: Int, ld: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var s = [Float](repeating: sentinel, count: (rows - 1) * ld + cols)
        for r in 0..<rows {
            let c = rng.uniformFloat(-10, 10)
            for j in 0..<cols {
                switch r % 5 {
                case 0: s[r * ld + j] = rng.uniformFloat(-10, 10)
                case 1: s[r * ld + j] = rng.uniformFloat(-60, 60)
                case 2: s[r * ld + j] = c
                case 3: s[r * ld + j] = Float(rng.normal())
                default: s[r * ld + j] = rng.uniformFloat(90, 200)
                }
            }
            if r % 5 == 3 { s[r * ld + Int(rng.next() % UInt64(cols))] = 10 }
        }
        return s
    }

    func testForward() {
        var maxErr: [String: Double] = [:]
        for (si, shape) in Self.shapes.enumerated() {
            for scale in Self.scales {
                let (rows, cols) = (shape.rows, shape.cols), ld = cols + shape.pad
                let input = Self.logits(rows: rows, cols: cols, ld: ld, seed: 77 + UInt64(si))
                // Double reference; tolerance: 2e-6 absolute and, relatively, 2e-6 plus the float rounding of
                // the exp argument (≈ 2⁻²³·(|t| + |t − max|) for t = scale·x).
                var ref = [Double](repeating: 0, count: input.count)
                var tol = [Double](repeating: .infinity, count: input.count)
                for r in 0..<rows {
                    let t = (0..<cols).map { Double(scale) * Double(input[r * ld + $0]) }
                    let m = t.max()!
                    let e = t.map { exp($0 - m) }
                    let sum = e.reduce(0, +)
                    for j in 0..<cols {
                        let p = e[j] / sum
                        ref[r * ld + j] = p
                        tol[r * ld + j] = min(2e-6, p * (2e-6 + 2.4e-7 * (abs(t[j]) + abs(t[j] - m))) + 1e-30)
                    }
                }
                forEachISA { isa in
                    let s = GuardedBuffer(input)
                    ck_softmax_rows(s.pointer, rows, cols, ld, scale)
                    let what = "softmax_rows[\(isa)] \(rows)x\(cols) ld=\(ld) scale=\(scale)"
                    for r in 0..<rows {
                        let e = assertClose(s.pointer + r * ld, Array(ref[(r * ld)..<(r * ld + cols)]),
                                            tolerance: { tol[r * ld + $0] }, "\(what) row \(r)")
                        maxErr[isa] = max(maxErr[isa] ?? 0, e)
                        if r + 1 < rows {
                            for j in cols..<ld {
                                XCTAssertEqual(s[r * ld + j], Self.sentinel, "\(what): wrote padding [\(r), \(j)]")
                            }
                        }
                    }
                }
            }
        }
        printSummary("softmax_rows", maxErr)
    }

    func testBackward() {
        var maxErr: [String: Double] = [:]
        for (si, shape) in Self.shapes.enumerated() {
            for scale in Self.scales {
                let (rows, cols) = (shape.rows, shape.cols), ld = cols + shape.pad
                var rng = SplitMix64(seed: 500 + UInt64(si))
                // p: a softmax of random logits (rows sum to 1 in Double, then rounded); dp: uniform ±1 or ±10.
                var p = [Float](repeating: Self.sentinel, count: (rows - 1) * ld + cols)
                var dp = p
                for r in 0..<rows {
                    let t = (0..<cols).map { _ in Double(rng.uniformFloat(-8, 8)) }
                    let m = t.max()!, sum = t.map { exp($0 - m) }.reduce(0, +)
                    let big = r % 2 == 1
                    for j in 0..<cols {
                        p[r * ld + j] = Float(exp(t[j] - m) / sum)
                        dp[r * ld + j] = big ? rng.uniformFloat(-10, 10) : rng.uniformFloat(-1, 1)
                    }
                }
                // Reference scale·p·(dp − Σ dp·p); tolerance 2e-6 relative to the magnitudes combined.
                var ref = [Double](repeating: 0, count: p.count)
                var tol = [Double](repeating: .infinity, count: p.count)
                for r in 0..<rows {
                    let idx = (0..<cols).map { r * ld + $0 }
                    let dot = idx.map { Double(dp[$0]) * Double(p[$0]) }.reduce(0, +)
                    let absDot = idx.map { abs(Double(dp[$0]) * Double(p[$0])) }.reduce(0, +)
                    for i in idx {
                        ref[i] = Double(scale) * Double(p[i]) * (Double(dp[i]) - dot)
                        tol[i] = 2e-6 * abs(Double(scale)) * Double(p[i]) * (abs(Double(dp[i])) + absDot) + 1e-30
                    }
                }
                forEachISA { isa in
                    let pb = GuardedBuffer(p), dpb = GuardedBuffer(dp)
                    ck_softmax_backward_rows(pb.pointer, dpb.pointer, rows, cols, ld, scale)
                    let what = "softmax_backward_rows[\(isa)] \(rows)x\(cols) ld=\(ld) scale=\(scale)"
                    XCTAssertEqual(pb.array, p, "\(what) modified p")
                    for r in 0..<rows {
                        let e = assertClose(dpb.pointer + r * ld, Array(ref[(r * ld)..<(r * ld + cols)]),
                                            tolerance: { tol[r * ld + $0] }, "\(what) row \(r)")
                        maxErr[isa] = max(maxErr[isa] ?? 0, e)
                        if r + 1 < rows {
                            for j in cols..<ld {
                                XCTAssertEqual(dpb[r * ld + j], Self.sentinel, "\(what): wrote padding [\(r), \(j)]")
                            }
                        }
                    }
                }
            }
        }
        printSummary("softmax_backward_rows", maxErr)
    }
}
