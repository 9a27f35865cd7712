import XCTest
@testable import VisionTransformer

/// The dense-math FLOP counts `selora bench` divides by, against values worked out by hand.
final class FLOPCountTests: XCTestCase {
    /// D = 8, M = 12, T = 5 tokens: per block the dx GEMMs are fc2 2·T·M·D = 960, fc1 960, output 2·T·D² = 640,
    /// q/k/v 2·T·D·3D = 1920, and the four attention products 4·2·T²·D = 1600 — 6080 in all.
    func testBlockInputGradientFLOPsStopWhereTheTruncatedBackwardStops() {
        let c = ViTConfig(hiddenSize: 8, numLayers: 3, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                          positionGrid: 3, layerNormEps: 1e-6)
        XCTAssertEqual(c.blockInputGradientFLOPs(tokens: 5), 6080)
        XCTAssertEqual(c.inputGradientFLOPs(tokens: 5), 3 * 6080)
        XCTAssertEqual(c.blockInputGradientFLOPs(tokens: 5, stoppingAfter: .fc2), 0)
        XCTAssertEqual(c.blockInputGradientFLOPs(tokens: 5, stoppingAfter: .fc1), 960)
        XCTAssertEqual(c.blockInputGradientFLOPs(tokens: 5, stoppingAfter: .output), 1920)
        for t in [LoRATarget.query, .key, .value] {
            XCTAssertEqual(c.blockInputGradientFLOPs(tokens: 5, stoppingAfter: t), 4160, "\(t)")
        }
    }
}
