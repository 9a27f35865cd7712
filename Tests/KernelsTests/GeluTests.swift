import CKernels
import Foundation
import XCTest

/// Exact GELU forward/backward against a Double reference (Φ via erfc, so the negative tail is accurate too).
final class GeluTests: XCTestCase {
    static let sizes = [0, 1, 7, 15, 16, 17, 33, 257, 1536, 1_000_003]

    /// Fixed-seed inputs: a few edge values first, then a mix of uniform ±10, N(0, 2²) and uniform ±1.
    static func inputs(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        let specials: [Float] = [0, -0.0, 10, -10, 3, -3, -5.5, 5.5, 1e-30, -1e-30, 1, -1, 0.5, -0.5, 9.99, -7.25]
        return (0..<n).map { i -> Float in
            if n >= 2 * specials.count && i < specials.count { return specials[i] }
            switch rng.next() % 4 {
            case 0: return rng.uniformFloat(-10, 10)
            case 1, 2: return Float(2 * rng.normal())
            default: return rng.uniformFloat(-1, 1)
            }
        }
    }

    static func phi(_ x: Double) -> Double { exp(-0.5 * x * x) / (2 * Double.pi).squareRoot() }
    static func cdf(_ x: Double) -> Double { 0.5 * erfc(-x / 2.0.squareRoot()) }

    func testForward() {
        var maxErr: [String: Double] = [:]
        for n in Self.sizes {
            let xs = Self.inputs(n, seed: 1000 + UInt64(n))
            let ref = xs.map { x -> Double in Double(x) * Self.cdf(Double(x)) }
            let tol: (Int) -> Double = { 2e-6 + 1e-6 * abs(ref[$0]) }
            let x = GuardedBuffer(xs)
            forEachISA { isa in
                let y = GuardedBuffer(count: n, fill: .nan)
                ck_gelu_forward(x.pointer, y.pointer, n)
                let e = assertClose(y.pointer, ref, tolerance: tol, "gelu_forward[\(isa)] n=\(n)")
                maxErr[isa] = max(maxErr[isa] ?? 0, e)
                XCTAssertEqual(x.array, xs, "gelu_forward[\(isa)] n=\(n) modified its input")

                let inPlace = GuardedBuffer(xs)   // y aliases x
                ck_gelu_forward(inPlace.pointer, inPlace.pointer, n)
                assertClose(inPlace.pointer, ref, tolerance: tol, "gelu_forward in place [\(isa)] n=\(n)")
            }
        }
        printSummary("gelu_forward", maxErr)
    }

    func testBackward() {
        var maxErr: [String: Double] = [:]
        for n in Self.sizes {
            let xs = Self.inputs(n, seed: 2000 + UInt64(n))
            var rng = SplitMix64(seed: 3000 + UInt64(n))
            let dys = (0..<n).map { _ in rng.uniformFloat(-2, 2) }
            let ref = (0..<n).map { i -> Double in
                let x = Double(xs[i])
                return Double(dys[i]) * (Self.cdf(x) + x * Self.phi(x))
            }
            let tol: (Int) -> Double = { 2e-6 + 1e-6 * abs(ref[$0]) }
            let x = GuardedBuffer(xs), dy = GuardedBuffer(dys)
            forEachISA { isa in
                let dx = GuardedBuffer(count: n, fill: .nan)
                ck_gelu_backward(x.pointer, dy.pointer, dx.pointer, n)
                let e = assertClose(dx.pointer, ref, tolerance: tol, "gelu_backward[\(isa)] n=\(n)")
                maxErr[isa] = max(maxErr[isa] ?? 0, e)
                XCTAssertEqual(dy.array, dys, "gelu_backward[\(isa)] n=\(n) modified dy")

                let inPlace = GuardedBuffer(dys)   // dx aliases dy
                ck_gelu_backward(x.pointer, inPlace.pointer, inPlace.pointer, n)
                assertClose(inPlace.pointer, ref, tolerance: tol, "gelu_backward in place [\(isa)] n=\(n)")
            }
        }
        printSummary("gelu_backward", maxErr)
    }
}
