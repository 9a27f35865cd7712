import CKernels
import Foundation
import XCTest

/// QuickGELU (OpenAI CLIP) forward/backward on every ISA against a Double reference, on GeluTests' inputs.
final class QuickGeluTests: XCTestCase {
    static func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-1.702 * x)) }

    func testForwardAndBackward() {
        var maxErr: [String: Double] = [:]
        for n in GeluTests.sizes {
            let xs = GeluTests.inputs(n, seed: 4000 + UInt64(n))
            var rng = SplitMix64(seed: 5000 + UInt64(n))
            let dys = (0..<n).map { _ in rng.uniformFloat(-2, 2) }
            let refY = xs.map { Double($0) * Self.sigmoid(Double($0)) }
            let refDx = (0..<n).map { i -> Double in
                let x = Double(xs[i]), s = Self.sigmoid(x)
                return Double(dys[i]) * (s + 1.702 * x * s * (1 - s))
            }
            let x = GuardedBuffer(xs), dy = GuardedBuffer(dys)
            forEachISA { isa in
                let y = GuardedBuffer(count: n, fill: .nan)
                ck_quick_gelu_forward(x.pointer, y.pointer, n)
                let e = assertClose(y.pointer, refY, tolerance: { 2e-6 + 2e-6 * abs(refY[$0]) }, "quick_gelu_forward[\(isa)] n=\(n)")
                maxErr[isa] = max(maxErr[isa] ?? 0, e)
                let dx = GuardedBuffer(count: n, fill: .nan)
                ck_quick_gelu_backward(x.pointer, dy.pointer, dx.pointer, n)
                assertClose(dx.pointer, refDx, tolerance: { 2e-6 + 2e-6 * abs(refDx[$0]) }, "quick_gelu_backward[\(isa)] n=\(n)")
                let inPlace = GuardedBuffer(dys)   // dx aliases dy
                ck_quick_gelu_backward(x.pointer, inPlace.pointer, inPlace.pointer, n)
                assertClose(inPlace.pointer, refDx, tolerance: { 2e-6 + 2e-6 * abs(refDx[$0]) }, "quick_gelu_backward in place [\(isa)] n=\(n)")
                XCTAssertEqual(x.array, xs, "quick_gelu[\(isa)] n=\(n) modified its input")
            }
        }
        printSummary("quick_gelu_forward", maxErr)
    }
}
