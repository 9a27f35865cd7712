import CKernels
import Foundation
import XCTest

/// LoRA's thin GEMMs on every ISA against a Double reference: ranks below, at and above one register block of 8,
/// odd row counts (the row-pair remainder), lengths with full vectors, full chunks and masked tails, and strided
/// operands. Outputs sit right before a guard page.
final class ThinGEMMTests: XCTestCase {
    static let shapes: [(rows: Int, k: Int, r: Int)] = [(1, 1, 1), (3, 7, 2), (5, 16, 8), (9, 33, 3), (6, 64, 9),
                                                         (7, 100, 24), (2, 17, 16), (4, 384, 8)]

    func testThinRows() {
        for (rows, k, r) in Self.shapes {
            let ldx = k + 3, ldw = k + 1, ldo = r + 2
            var rng = SplitMix64(seed: UInt64(rows * 1000 + k * 10 + r))
            let x = (0..<(rows * ldx)).map { _ in rng.uniformFloat(-1, 1) }
            let w = (0..<(r * ldw)).map { _ in rng.uniformFloat(-1, 1) }
            let alpha: Float = 1.5
            var ref = [Double](repeating: .nan, count: rows * ldo)
            for i in 0..<rows {
                for j in 0..<r {
                    ref[i * ldo + j] = Double(alpha) * (0..<k).reduce(0.0) { $0 + Double(x[i * ldx + $1]) * Double(w[j * ldw + $1]) }
                }
            }
            forEachISA { isa in
                let out = GuardedBuffer(count: rows * ldo, fill: .nan)
                ck_thin_rows(x, ldx, w, ldw, out.pointer, ldo, rows, k, r, alpha)
                for i in 0..<rows {
                    for j in 0..<ldo {
                        let got = out[i * ldo + j]
                        if j < r {
                            XCTAssertEqual(Double(got), ref[i * ldo + j], accuracy: 1e-5 * (1 + Double(k).squareRoot()),
                                           "thin_rows[\(isa)] rows \(rows) k \(k) r \(r) at (\(i), \(j))")
                        } else {
                            XCTAssertTrue(got.isNaN, "thin_rows[\(isa)] wrote past r at (\(i), \(j))")
                        }
                    }
                }
            }
        }
    }

    func testThinOuterAccumulates() {
        for (rows, cols, r) in Self.shapes {
            let lds = r + 1, ldx = cols + 2, lda = cols + 5
            var rng = SplitMix64(seed: UInt64(rows * 1000 + cols * 10 + r) + 7)
            let s = (0..<(rows * lds)).map { _ in rng.uniformFloat(-1, 1) }
            let x = (0..<(rows * ldx)).map { _ in rng.uniformFloat(-1, 1) }
            let start = (0..<(r * lda)).map { _ in rng.uniformFloat(-1, 1) }
            var ref = start.map(Double.init)
            for j in 0..<r {
                for q in 0..<cols {
                    ref[j * lda + q] += (0..<rows).reduce(0.0) { $0 + Double(s[$1 * lds + j]) * Double(x[$1 * ldx + q]) }
                }
            }
            forEachISA { isa in
                let acc = GuardedBuffer(start)
                ck_thin_outer(acc.pointer, lda, s, lds, x, ldx, rows, r, cols)
                for e in 0..<(r * lda) {
                    XCTAssertEqual(Double(acc[e]), ref[e], accuracy: 1e-5 * (1 + Double(rows).squareRoot()),
                                   "thin_outer[\(isa)] rows \(rows) cols \(cols) r \(r) at \(e)")
                }
            }
        }
    }
}
