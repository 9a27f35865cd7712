import Datasets
import Foundation
import Tensors
import Training
import VisionTransformer
import XCTest

final class ForgettingProtocolTests: XCTestCase {
    func testCosineDriftExactValues() {
        // Same direction → 0; orthogonal → 1; opposite → 2; mean over rows.
        XCTAssertEqual(meanCosineDrift([1, 0, 0, 1], [2, 0, 0, 3], dim: 2), 0, accuracy: 1e-12)
        XCTAssertEqual(meanCosineDrift([1, 0, 1, 0], [0, 1, -1, 0], dim: 2), 1.5, accuracy: 1e-12)
    }

    /// The protocol's invariants on a tiny random ViT and synthetic 8×8 image sets: a linear probe leaves the
    /// backbone untouched (retention = baseline, drift 0), LoRA moves it (drift > 0), every accuracy is a fraction.
    func testInvariantsOnATinyModel() throws {
        let vit = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                            positionGrid: 3, layerNormEps: 1e-6)
        func dataset(_ n: Int, seed: UInt64, classes: Int) throws -> ImageDataset {
            var rng = SeededRandom(seed: seed)
            var pixels: [UInt8] = [], labels: [Int32] = []
            for i in 0..<n {
                let c = i % classes
                for p in 0..<64 { pixels.append(UInt8(clamping: (p % (c + 2)) * 40 + Int(rng.uniform(0, 30)))) }
                labels.append(Int32(c))
            }
            return try ImageDataset(height: 8, width: 8, pixels: pixels, labels: labels, numClasses: classes)
        }
        var rng = SeededRandom(seed: 2)
        let weights = (0..<(try ViTModel(config: vit)).params.store.storage.count).map { _ in 0.3 * rng.normal() }
        let load = { () throws -> ViTModel in
            let m = try ViTModel(config: vit)
            _ = m.params.store.storage.buffer.update(fromContentsOf: weights)
            return m
        }
        let target = (try dataset(24, seed: 1, classes: 3), try dataset(12, seed: 2, classes: 3))
        let proto = ForgettingProtocol(loadModel: load, source: (try dataset(30, seed: 3, classes: 2), try dataset(10, seed: 4, classes: 2)),
                                       target: target, targetOOD: try ImageCorruption(seed: 1).apply(target.1), size: 4, evalBatch: 5)
        try proto.prepare()
        var c = TrainingConfig()
        c.steps = 6; c.batchSize = 4; c.warmupSteps = 1; c.lora.rank = 2; c.lr = 0.05
        c.method = .linearProbe
        let probe = try proto.run(config: c)
        XCTAssertEqual(probe.sourceRetention, probe.sourceBaseline)
        XCTAssertEqual(probe.cosineDrift, 0, accuracy: 1e-12)
        c.method = .lora
        let lora = try proto.run(config: c)
        XCTAssertGreaterThan(lora.cosineDrift, 0)
        XCTAssertEqual(lora.activeBlocks, 12)
        for r in [probe, lora] {
            for v in [r.targetAccuracy, r.oodAccuracy, r.sourceRetention] { XCTAssert((0...1).contains(v)) }
        }
    }
}
