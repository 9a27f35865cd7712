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
        let t = ImageTransform(model: vit, size: 4)
        func src(_ d: ImageDataset) -> ImageSource { TransformedImageSet(d, transform: t) }
        let targetTest = try dataset(12, seed: 2, classes: 3), targetTrain = src(try dataset(24, seed: 1, classes: 3))
        let sourceTrain = try dataset(30, seed: 3, classes: 2), sourceTest = try dataset(10, seed: 4, classes: 2)
        let proto = ForgettingProtocol(loadModel: load,
                                       sources: [ForgettingSource(name: "s", train: src(sourceTrain), test: src(sourceTest))],
                                       targetTrain: { _ in targetTrain }, targetTest: src(targetTest),
                                       targetOOD: src(try ImageCorruption(seed: 1).apply(targetTest)), evalBatch: 5)
        try proto.prepare()
        // The kNN baseline equals the classifier on the pretrained features computed independently.
        let ev = try Evaluator(model: try load(), adapters: nil, size: 4, batch: 7)
        let knn = KNNClassifier(memory: try ev.features(sourceTrain), labels: sourceTrain.labels, dim: vit.featureDim, classes: 2)
        XCTAssertEqual(proto.baselines["retention.s.knn"], knn.accuracy(try ev.features(sourceTest), labels: sourceTest.labels))
        var c = TrainingConfig()
        c.steps = 6; c.batchSize = 4; c.warmupSteps = 1; c.lora.rank = 2; c.lr = 0.05
        c.method = .linearProbe
        let probe = try proto.run(config: c)
        XCTAssertEqual(probe["retention.s.probe"], proto.baselines["retention.s.probe"])
        XCTAssertEqual(probe["retention.s.knn"], proto.baselines["retention.s.knn"])
        XCTAssertEqual(try XCTUnwrap(probe["drift.s"]), 0, accuracy: 1e-12)
        XCTAssertNil(probe["active_fraction"])
        c.method = .lora
        let lora = try proto.run(config: c)
        XCTAssertGreaterThan(try XCTUnwrap(lora["drift.s"]), 0)
        XCTAssertEqual(lora["active_blocks"], 12)
        XCTAssertEqual(lora["active_fraction"], 1)
        for r in [probe, lora] {
            for k in ["target_accuracy", "ood_accuracy", "retention.s.probe", "retention.s.knn"] {
                XCTAssert((0...1).contains(try XCTUnwrap(r[k])), k)
            }
        }
    }
}
