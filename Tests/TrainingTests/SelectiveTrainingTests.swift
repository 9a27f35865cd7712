import Communication
import Datasets
import Foundation
import Tensors
import TestHelpers
import Training
import VisionTransformer
import XCTest

/// The training loop's selective-LoRA rules on a tiny random ViT.
final class SelectiveTrainingTests: XCTestCase {
    let vit = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                        positionGrid: 3, layerNormEps: 1e-6)

    func tinyModel(seed: UInt64 = 1) throws -> ViTModel { try randomTinyViT(seed: seed) }

    func batch(_ n: Int, seed: UInt64) -> ([Float], [Int32]) {
        var rng = SeededRandom(seed: seed)
        return ((0..<(n * 3 * 4 * 4)).map { _ in rng.normal() }, (0..<n).map { Int32($0 % 3) })
    }

    func config(_ method: Method) -> TrainingConfig {
        var c = TrainingConfig()
        c.method = method
        c.lora.rank = 2
        c.steps = 20
        c.batchSize = 4
        c.warmupSteps = 2
        c.penaltyStartStep = 3
        c.scoreLR = 0.02
        return c
    }

    /// A block whose gate is off keeps A and B bitwise while its score keeps learning, and AdamW's weight decay
    /// does not touch it either.
    func testInactiveBlockIsFrozenWhileItsScoreMoves() throws {
        var c = config(.selective)
        c.lora.threshold = 0.1
        c.lora.initialScore = 0.15
        let trainer = try Trainer(model: try tinyModel(), classes: 3, config: c, batch: 4, height: 4, width: 4)
        let a = try XCTUnwrap(trainer.adapters)
        let frozen = a.blocks[3]
        a.gates.scores[frozen.index] = 0.05          // below τ: off from the first step
        let (px, labels) = batch(4, seed: 9)
        _ = trainer.trainStep(pixels: px, labels: labels)   // B moves away from 0 for the active blocks
        let aBefore = Array(a.params.buffer(frozen.aName)), bBefore = Array(a.params.buffer(frozen.bName))
        let sBefore = a.gates.scores[frozen.index]
        var sawMove = false
        for s in 0..<6 {
            let (px, labels) = batch(4, seed: UInt64(10 + s))
            _ = trainer.trainStep(pixels: px, labels: labels)
            XCTAssertFalse(a.gates.mask[frozen.index], "the block must stay off for this test (score \(a.gates.scores[frozen.index]))")
            if a.gates.scores[frozen.index] != sBefore { sawMove = true }
            if a.gates.scores[frozen.index] >= c.lora.threshold { break }
        }
        XCTAssertTrue(sawMove, "the inactive block's score must still receive updates")
        XCTAssertEqual(Array(a.params.buffer(frozen.aName)), aBefore)
        XCTAssertEqual(Array(a.params.buffer(frozen.bName)), bBefore)
        // And the active ones did move.
        XCTAssertNotEqual(Array(a.params.buffer(a.blocks[0].bName)), [Float](repeating: 0, count: a.blocks[0].outFeatures * 2))
    }

    /// Budget mode keeps exactly the top ⌊P·n/100⌋ scores, ties to the lower block index, once the penalty starts.
    func testBudgetKeepsTopScoresWithDeterministicTies() throws {
        var c = config(.selective)
        c.maxActivePercent = 25          // 12 blocks → 3
        c.penaltyStartStep = 0
        let trainer = try Trainer(model: try tinyModel(), classes: 3, config: c, batch: 4, height: 4, width: 4)
        let a = try XCTUnwrap(trainer.adapters)
        XCTAssertEqual(a.blocks.count, 12)
        for i in 0..<12 { a.gates.scores[i] = 0.2 }
        a.gates.scores[7] = 0.5
        a.gates.scores[2] = 0.05               // below τ anyway
        trainer.updateGates()
        XCTAssertEqual(a.gates.mask.enumerated().filter { $0.element }.map(\.offset), [0, 1, 7])
    }

    func testPlainLoRAHasEveryBlockOnAndNoScores() throws {
        let trainer = try Trainer(model: try tinyModel(), classes: 3, config: config(.lora), batch: 4, height: 4, width: 4)
        let a = try XCTUnwrap(trainer.adapters)
        a.gates.scores[0] = -1
        let (px, labels) = batch(4, seed: 2)
        let s = trainer.trainStep(pixels: px, labels: labels)
        XCTAssertEqual(s.activeBlocks, 12)
        var names: [String] = [], roles: [TensorRole] = []
        trainer.trainable.forEachTraining { names.append($0.name); roles.append($0.role) }
        XCTAssertFalse(roles.contains(.score))
        XCTAssertEqual(names.count, 2 + 2 * 12)
    }

    /// Loss falls on a fixed batch for every method (the loop trains), and linear-probe leaves the backbone alone.
    func testEveryMethodLearnsAFixedBatch() throws {
        for m in Method.allCases {
            var c = config(m)
            c.steps = 40
            c.lr = 0.05
            c.fullLR = 0.01
            c.penaltyStartStep = c.steps     // learning, not sparsity, is under test here
            let model = try tinyModel()
            let before = model.params.store.storage.toArray()
            let trainer = try Trainer(model: model, classes: 3, config: c, batch: 4, height: 4, width: 4)
            let (px, labels) = batch(4, seed: 5)
            let first = trainer.trainStep(pixels: px, labels: labels).loss
            var last = first
            for _ in 1..<c.steps { last = trainer.trainStep(pixels: px, labels: labels).loss }
            XCTAssertLessThan(last, 0.7 * first, "\(m.rawValue): loss \(first) → \(last)")
            let changed = model.params.store.storage.toArray() != before
            XCTAssertEqual(changed, m == .full, "\(m.rawValue): backbone changed = \(changed)")
        }
    }

    /// The same seed gives bitwise the same run.
    func testDeterministic() throws {
        func run() throws -> [Float] {
            let trainer = try Trainer(model: try tinyModel(), classes: 3, config: config(.selective), batch: 4, height: 4, width: 4)
            for s in 0..<8 {
                let (px, labels) = batch(4, seed: UInt64(s))
                _ = trainer.trainStep(pixels: px, labels: labels)
            }
            return trainer.adapters!.params.storage.toArray() + trainer.adapters!.gates.scores.toArray() + trainer.head.params.storage.toArray()
        }
        XCTAssertEqual(try run(), try run())
    }

    /// The library names the setting; the command line names its flag (Tests/cli/bad-input.sh checks the flags).
    func testBadConfigValuesAreRejectedNamingTheSetting() {
        var cases: [(String, (inout TrainingConfig) -> Void)] = []
        cases.append(("lora.rank", { $0.lora.rank = 0 }))
        cases.append(("lora.threshold", { $0.lora.threshold = 0.2 }))
        cases.append(("lora.threshold", { $0.lora.threshold = .nan }))
        cases.append(("penalty", { $0.penalty = -1 }))
        cases.append(("maxActivePercent", { $0.maxActivePercent = 101 }))
        cases.append(("maxActivePercent", { $0.maxActivePercent = -5 }))
        cases.append(("lora.targets", { $0.lora.targets = [] }))
        cases.append(("steps", { $0.steps = 0 }))
        cases.append(("lr", { $0.lr = 0 }))
        cases.append(("warmupSteps", { $0.warmupSteps = 1000 }))
        for (setting, mutate) in cases {
            var c = TrainingConfig()
            mutate(&c)
            XCTAssertThrowsError(try c.validate(), setting) { e in
                XCTAssertTrue((e as? ConfigError)?.settings.contains(setting) ?? false, "\(setting): \(e)")
            }
        }
        XCTAssertNoThrow(try TrainingConfig().validate())
    }
}

/// Adapters on disk (PEFT layout) and merged into the base weights.
final class AdapterFileTests: XCTestCase {
    let vit = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                        positionGrid: 3, layerNormEps: 1e-6)

    func randomAdapters() throws -> LoRAAdapters {
        var c = LoRAConfig(); c.rank = 2; c.alpha = 5
        let a = try LoRAAdapters(model: vit, config: c, seed: 3)
        var rng = SeededRandom(seed: 8)
        for b in a.blocks {
            let bp = a.params.buffer(b.bName)
            for i in 0..<bp.count { bp[i] = 0.3 * rng.normal() }
            a.gates.scores[b.index] = rng.uniform(0, 0.3)
        }
        a.gates.rule = .learned(GateSchedule(penalty: 0, startStep: 0))
        a.gates.update(step: 0)
        return a
    }

    func testSaveLoadKeepsActiveBlocksAndEveryScore() throws {
        let a = try randomAdapters()
        XCTAssert(a.activeCount > 0 && a.activeCount < a.blocks.count, "need a mix of active and inactive blocks")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adapter-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try a.save(directory: dir, gated: true, baseModel: "tiny")
        let (b, gated) = try LoRAAdapters.load(directory: dir, model: vit)
        XCTAssertTrue(gated)
        XCTAssertEqual(b.config, a.config)
        XCTAssertEqual(b.gates.mask, a.gates.mask)
        XCTAssertEqual(b.gates.scores.toArray(), a.gates.scores.toArray())
        for blk in a.blocks where a.gates.mask[blk.index] {
            XCTAssertEqual(Array(b.params.buffer(blk.aName)), Array(a.params.buffer(blk.aName)))
            XCTAssertEqual(Array(b.params.buffer(blk.bName)), Array(a.params.buffer(blk.bName)))
        }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json"))) as? [String: Any]
        XCTAssertEqual(json?["peft_type"] as? String, "LORA")
        XCTAssertEqual(json?["r"] as? Int, 2)
    }

    func testMergedForwardEqualsGatedForward() throws {
        let a = try randomAdapters()
        let model = try ViTModel(config: vit)
        var rng = SeededRandom(seed: 4)
        for i in 0..<model.params.store.storage.count { model.params.store.storage[i] = 0.3 * rng.normal() }
        let acts = try ViTActivations(config: vit, batch: 2, height: 4, width: 6, training: false)
        let run = try LoRARun(adapters: a, activations: acts, gradients: false, scoreGradients: false)
        let px = (0..<(2 * 3 * 4 * 6)).map { _ in rng.normal() }
        let n = acts.rows * vit.hiddenSize
        let gated = Array(UnsafeBufferPointer(start: model.forward(px, acts, lora: run), count: n))
        try a.merge(into: model)
        let merged = Array(UnsafeBufferPointer(start: model.forward(px, acts), count: n))
        let worst = zip(gated, merged).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThan(worst, 1e-5)
        XCTAssertNotEqual(gated, Array(UnsafeBufferPointer(start: try ViTModel(config: vit).forward(px, acts), count: n)))
    }

    func testMergeRefusesNonFiniteAdapters() throws {
        let a = try randomAdapters()
        let blk = a.blocks.first { a.gates.mask[$0.index] }!
        a.params.buffer(blk.bName)[0] = .nan
        let model = try ViTModel(config: vit)
        let before = model.params.store.storage.toArray()
        XCTAssertThrowsError(try a.merge(into: model)) { XCTAssertTrue("\($0)".contains("NaN")) }
        XCTAssertEqual(model.params.store.storage.toArray(), before)
    }

    func testLoadRejectsBadAdapterFiles() throws {
        let a = try randomAdapters()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adapter-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try a.save(directory: dir, gated: true, baseModel: "tiny")
        let cfg = dir + "/adapter_config.json"
        let good = try String(contentsOfFile: cfg, encoding: .utf8)
        try good.replacingOccurrences(of: "\"mlp.fc1\"", with: "\"mlp.fc9\"").write(toFile: cfg, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LoRAAdapters.load(directory: dir, model: vit)) { XCTAssertTrue("\($0)".contains("mlp.fc9"), "\($0)") }
        try good.write(toFile: cfg, atomically: true, encoding: .utf8)
        let other = ViTConfig(hiddenSize: 8, numLayers: 1, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3, positionGrid: 3)
        XCTAssertThrowsError(try LoRAAdapters.load(directory: dir, model: other)) { XCTAssertTrue("\($0)".contains("encoder.layer.1"), "\($0)") }
        XCTAssertThrowsError(try LoRAAdapters.load(directory: dir + "/nope", model: vit)) { XCTAssertTrue("\($0)".contains("adapter_config.json"), "\($0)") }
    }
}

/// The gradient buffer's size at every step, on one process (the MPI path adds only the sum across ranks).
final class GradientSyncTests: XCTestCase {
    func testBytesReducedFollowTheActiveSet() throws {
        let vit = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                            positionGrid: 3, layerNormEps: 1e-6)
        let model = try ViTModel(config: vit)
        var rng = SeededRandom(seed: 1)
        for i in 0..<model.params.store.storage.count { model.params.store.storage[i] = 0.3 * rng.normal() }
        var c = TrainingConfig()
        c.lora.rank = 2; c.steps = 12; c.batchSize = 4; c.warmupSteps = 1; c.penaltyStartStep = 2; c.scoreLR = 0.05
        c.penalty = 20
        let data = try randomImageSet(count: 16, seed: 2)
        let dp = try DataParallelTrainer(comm: SingleProcessCommunicator(), model: model, data: data, size: 4, config: c)
        var seen: [Int] = []
        try dp.run { s in
            let a = dp.trainer.adapters!
            var ab = 0
            for (i, on) in s.activeMask.enumerated() where on { ab += 2 * (a.blocks[i].inFeatures + a.blocks[i].outFeatures) }
            // statistics: loss sum, correct, examples, stop requests
            XCTAssertEqual(s.bytesReduced, 4 * (ab + a.blocks.count + 3 * 8 + 3 + 4), "step \(s.step)")
            seen.append(s.activeBlocks)
        }
        XCTAssertEqual(seen.first, 12)
        XCTAssertLessThan(seen.last!, 12, "blocks must switch off for this test")
    }
}
