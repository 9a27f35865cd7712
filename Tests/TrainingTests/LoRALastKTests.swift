import Communication
import Foundation
import SafeTensors
import Tensors
import TestHelpers
import Training
import VisionTransformer
import XCTest

/// `lora-last-k`: plain LoRA on the last k layers only. Its independent reference is a `selective` run whose scores
/// are set by hand so that exactly the blocks of layers ≥ L − k are active and whose gates settle at step 0
/// (`settleAfter = 0`): that path (score threshold, settling, the rebuild of the activations, the truncated
/// backward) is the one SettledGatesTests checks against a fixed-mask run, and it shares no line with lora-last-k's
/// mask, table filter or start-up truncation.
final class LoRALastKTests: XCTestCase {
    /// 4 layers of the tiny shape (width 8, MLP 12), k = 2: layers 2 and 3 carry blocks 12…23.
    let layers = 4, k = 2, rank = 2

    func config(_ m: Method) -> TrainingConfig {
        var c = TrainingConfig()
        c.method = m; c.lastK = k; c.lora.rank = rank; c.steps = 8; c.batchSize = 4; c.warmupSteps = 1
        c.penaltyStartStep = 2; c.scoreLR = 0.05
        return c
    }

    func batch(_ s: Int) -> ([Float], [Int32]) {
        var rng = SeededRandom(seed: UInt64(s))
        return ((0..<(4 * 3 * 4 * 4)).map { _ in rng.normal() }, (0..<4).map { Int32($0 % 3) })
    }

    /// Head (3 classes × width 8 + bias) plus, in each of the last k layers, A [r, in] and B [out, r] of q, k, v,
    /// the attention output (8 → 8 each) and fc1 (8 → 12), fc2 (12 → 8).
    var expectedTrainable: Int { 3 * 8 + 3 + k * rank * (4 * (8 + 8) + 2 * (8 + 12)) }

    func testEqualsASelectiveRunSettledAtStepZeroOnTheSameBlocks() throws {
        let lastK = try Trainer(model: try randomTinyViT(layers: layers), classes: 3, config: config(.loraLastK),
                                batch: 4, height: 4, width: 4)
        var rc = config(.selective)
        rc.settleAfter = 0
        let reference = try Trainer(model: try randomTinyViT(layers: layers), classes: 3, config: rc, batch: 4, height: 4, width: 4)
        let ra = try XCTUnwrap(reference.adapters)
        for b in ra.blocks { ra.gates.scores[b.index] = b.layer >= layers - k ? 0.15 : 0.05 }
        var lossA: [Double] = [], lossB: [Double] = []
        for s in 0..<8 {
            let (px, labels) = batch(s)
            lossA.append(lastK.trainStep(pixels: px, labels: labels).loss)
            lossB.append(reference.trainStep(pixels: px, labels: labels).loss)
        }
        let a = try XCTUnwrap(lastK.adapters)
        XCTAssertEqual(reference.gates?.settledStep, 0)
        XCTAssertEqual(a.gates.mask, ra.gates.mask)
        XCTAssertEqual(a.gates.mask, a.blocks.map { $0.layer >= 2 })
        XCTAssertEqual(lossA, lossB)
        XCTAssertEqual(a.params.storage.toArray(), ra.params.storage.toArray(), "A and B of every block bitwise equal")
        XCTAssertEqual(lastK.head.params.storage.toArray(), reference.head.params.storage.toArray())
        // The settled step from step 0: backward through layer L − k, activations saved from there.
        XCTAssertEqual(lastK.backwardThrough, 2)
        XCTAssertEqual(reference.backwardThrough, 2)
        XCTAssertEqual(lastK.acts.stack.savedFrom, 2)
        XCTAssertEqual(reference.acts.stack.savedFrom, 2)
        XCTAssertFalse(a.gates.settled, "the mask is fixed by construction, not settled")
        XCTAssertEqual(a.gates.scores.toArray(), [Float](repeating: 0.15, count: a.blocks.count), "no score learns")
        for b in a.blocks {   // not vacuous: the last k layers' B left 0, the others' never did
            XCTAssertEqual(a.params.buffer(b.bName).contains { $0 != 0 }, b.layer >= 2, b.bName)
        }
    }

    func testTrainsExactlyTheHeadAndTheLastKLayersBlocks() throws {
        let t = try Trainer(model: try randomTinyViT(layers: layers), classes: 3, config: config(.loraLastK),
                            batch: 4, height: 4, width: 4)
        XCTAssertEqual(t.trainableParameterCount, expectedTrainable)
        XCTAssertEqual(t.trainable.totalCount, expectedTrainable, "blocks below L − k are not in the table at all")
        XCTAssertFalse(t.trainable.tensors.contains { $0.role == .score })
        XCTAssertEqual(t.trainable.tensors.compactMap(\.gate), [18, 18, 19, 19, 20, 20, 21, 21, 22, 22, 23, 23,
                                                              12, 12, 13, 13, 14, 14, 15, 15, 16, 16, 17, 17])
        XCTAssertEqual(t.adapters?.activeCount, 6 * k)
        // DINOv2 ViT-S, k = 1, rank 8, 10 classes: the 6 blocks of layer 11 (q, k, v, output 384 → 384; fc1
        // 384 → 1536, fc2 1536 → 384) and the head on the 384-wide class token.
        var c = TrainingConfig()
        c.method = .loraLastK; c.lastK = 1; c.steps = 2; c.batchSize = 1; c.warmupSteps = 0
        let s = try Trainer(model: try ViTModel(config: .dinov2Small), classes: 10, config: c, batch: 1, height: 14, width: 14)
        XCTAssertEqual(s.trainableParameterCount, 10 * 384 + 10 + 8 * (4 * (384 + 384) + 2 * (384 + 1536)))
        XCTAssertEqual(s.adapters?.activeCount, 6)
        XCTAssertEqual(s.backwardThrough, 11)
    }

    /// The all-reduce carries the statistics and the head's and the active blocks' gradients, nothing else.
    func testBytesReducedAreTheHeadTheActiveBlocksAndTheStatistics() throws {
        let dp = try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try randomTinyViT(layers: layers),
                                         data: try randomImageSet(count: 16, seed: 2), size: 4, config: config(.loraLastK))
        var steps = 0
        try dp.run { s in
            XCTAssertEqual(s.bytesReduced, 4 * (expectedTrainable + 4), "step \(s.step)")   // 4 statistics
            XCTAssertEqual(s.activeBlocks, 6 * k)
            XCTAssertFalse(s.settled)
            steps += 1
        }
        XCTAssertEqual(steps, 8)
    }

    func testResumeIsBitwiseAndTheCheckpointHoldsOnlyTheTrainedTensors() throws {
        let c = config(.loraLastK)
        func dp() throws -> DataParallelTrainer {
            try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try randomTinyViT(layers: layers),
                                    data: try randomImageSet(count: 24), size: 4, config: c)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lastk-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let whole = try dp()
        try whole.run()
        let first = try dp()
        first.runDirectory = dir
        for _ in 0..<5 { _ = try first.step() }
        try first.checkpoint()
        _ = try first.step()     // lost, as in a crash
        let file = try SafeTensorsFile(path: try XCTUnwrap(Checkpoint.list(runDirectory: dir).first).path)
        XCTAssertEqual(try file.floats("params", expectShape: [expectedTrainable]).count, expectedTrainable)
        let second = try dp()
        _ = try second.resume(from: dir)
        XCTAssertEqual(second.trainer.step, 5)
        XCTAssertEqual(second.trainer.backwardThrough, 2)
        try second.run()
        XCTAssertEqual(second.stateBytes(), whole.stateBytes())
        XCTAssertEqual(second.trainer.adapters!.params.storage.toArray(), whole.trainer.adapters!.params.storage.toArray())
    }

    /// The adapter file holds the active blocks only (PEFT layout, no scores), and loads back as that mask.
    func testAdapterExportHoldsTheLastKLayers() throws {
        let t = try Trainer(model: try randomTinyViT(layers: layers), classes: 3, config: config(.loraLastK),
                            batch: 4, height: 4, width: 4)
        let a = try XCTUnwrap(t.adapters)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lastk-adapter-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try a.save(directory: dir, gated: false, baseModel: "tiny")
        let (back, gated) = try LoRAAdapters.load(directory: dir, model: a.model)
        XCTAssertFalse(gated)
        XCTAssertEqual(back.gates.mask, a.gates.mask)
        let keys = try SafeTensorsFile(path: dir + "/" + LoRAAdapters.weightsFile).names
        XCTAssertEqual(keys.count, 2 * 6 * k)
        XCTAssertTrue(keys.allSatisfy { $0.contains("layer.2.") || $0.contains("layer.3.") }, "\(keys)")
    }

    func testLastKOutsideOneToTheLayersIsRejected() throws {
        for bad in [0, -1, layers + 1] {
            var c = config(.loraLastK)
            c.lastK = bad
            XCTAssertThrowsError(try Trainer(model: try randomTinyViT(layers: layers), classes: 3, config: c, batch: 4,
                                             height: 4, width: 4)) {
                XCTAssertEqual(($0 as? ConfigError)?.settings, ["lastK"], "\($0)")
            }
        }
        var c = config(.loraLastK)
        c.lastK = 0
        XCTAssertThrowsError(try c.validate()) { XCTAssertEqual(($0 as? ConfigError)?.settings, ["lastK"]) }
        c.lastK = layers
        XCTAssertNoThrow(try c.validate(layers: layers))
        let all = try Trainer(model: try randomTinyViT(layers: layers), classes: 3, config: c, batch: 4, height: 4, width: 4)
        XCTAssertEqual(all.backwardThrough, 0)
        XCTAssertEqual(all.adapters?.activeCount, 6 * layers)
    }
}
