import Tensors
import TestHelpers
import Training
import VisionTransformer
import XCTest

/// The one table of trainable tensors: its order (the all-reduce order), its sizes per method, and the gate rule.
final class TrainableTensorsTests: XCTestCase {
    func trainer(_ method: Method) throws -> Trainer {
        var c = TrainingConfig()
        c.method = method; c.lora.rank = 2; c.steps = 10; c.batchSize = 4; c.warmupSteps = 1
        return try Trainer(model: try randomTinyViT(), classes: 3, config: c, batch: 4, height: 4, width: 4)
    }

    /// The documented order, written out by hand for the tiny ViT (2 layers, 6 targets): head; layer 1's blocks
    /// (A, B each, target order), layer 1's scores; layer 0's; nothing in the stem.
    func testSelectiveOrderIsHeadThenLayersFromTheLastThenStem() throws {
        let t = try trainer(.selective).trainable
        let targets = ["attention.attention.query", "attention.attention.key", "attention.attention.value",
                       "attention.output.dense", "mlp.fc1", "mlp.fc2"]
        var expected = ["head.weight", "head.bias"]
        for l in [1, 0] {
            for target in targets { expected += ["encoder.layer.\(l).\(target).lora_A", "encoder.layer.\(l).\(target).lora_B"] }
            expected.append("scores.layer.\(l)")
        }
        XCTAssertEqual(t.tensors.map(\.name), expected)
        XCTAssertEqual(t.buckets.map(\.count), [2, 13, 13, 0])
        XCTAssertEqual(t.tensors.filter { $0.role == .score }.map(\.param.count), [6, 6])
        // Every A/B names its own block's gate; scores and head train always.
        XCTAssertEqual(t.tensors.compactMap(\.gate), [6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    }

    /// Full: the head, then each layer's backbone tensors (last layer first), then every tensor outside the blocks.
    func testFullOrderFollowsTheModelLayoutByLayer() throws {
        let tr = try trainer(.full)
        let layout = tr.model.params.store.layout.entries.map(\.name)
        let inLayer = { (l: Int, n: String) in n.hasPrefix("encoder.layer.\(l).") }
        let expected = ["head.weight", "head.bias"] + layout.filter { inLayer(1, $0) } + layout.filter { inLayer(0, $0) }
            + layout.filter { !inLayer(0, $0) && !inLayer(1, $0) }
        XCTAssertEqual(tr.trainable.tensors.map(\.name), expected)
        XCTAssertEqual(tr.trainable.totalCount, 3 * 8 + 3 + tr.model.params.store.layout.parameterCount)
        XCTAssertTrue(tr.trainable.tensors.dropFirst(2).allSatisfy { $0.role == .backbone })
    }

    /// What trains follows the gates: only the head, the active blocks' A and B, and the scores.
    func testTrainingCountFollowsTheMask() throws {
        let tr = try trainer(.selective)
        let a = try XCTUnwrap(tr.adapters)
        let mask = a.blocks.indices.map { $0 % 3 == 0 }
        a.gates.set(mask)
        let ab = a.blocks.filter { mask[$0.index] }.reduce(0) { $0 + 2 * ($1.inFeatures + $1.outFeatures) }
        XCTAssertEqual(tr.trainable.trainingCount, 3 * 8 + 3 + ab + a.blocks.count)
        XCTAssertEqual(tr.trainableParameterCount, tr.trainable.trainingCount)
        XCTAssertEqual(try trainer(.linearProbe).trainable.trainingCount, 3 * 8 + 3)
    }
}

/// The gate rule, on hand-set scores.
final class GatesTests: XCTestCase {
    func gates(_ scores: [Float], schedule: GateSchedule) throws -> Gates {
        let g = try Gates(count: scores.count, threshold: 0.1, initialScore: 0.15)
        for (i, s) in scores.enumerated() { g.scores[i] = s }
        g.rule = .learned(schedule)
        return g
    }

    func testThresholdThenBudgetFromTheStartStep() throws {
        let g = try gates([0.3, 0.05, 0.2, 0.2, 0.1, -0.4], schedule: GateSchedule(penalty: 1, startStep: 5, maxActivePercent: 50))
        g.update(step: 4)                       // before the start: τ alone (s ≥ 0.1)
        XCTAssertEqual(g.mask, [true, false, true, true, true, false])
        g.update(step: 5)                       // budget ⌊0.5·6⌋ = 3: 0.3, then the two 0.2s (ties to the lower index)
        XCTAssertEqual(g.mask, [true, false, true, true, false, false])
        XCTAssertEqual(g.activeCount, 3)
        XCTAssertEqual(g.maskText, "101100")
    }

    func testPenaltyGradientIsLambdaSignOverN() throws {
        let g = try gates([0.3, 0, -0.2, 0.1], schedule: GateSchedule(penalty: 2, startStep: 3))
        var grads: [Float] = [1, 1, 1, 1]
        grads.withUnsafeMutableBufferPointer { g.addPenaltyGradient($0, step: 2) }
        XCTAssertEqual(grads, [1, 1, 1, 1], "no penalty before its start step")
        grads.withUnsafeMutableBufferPointer { g.addPenaltyGradient($0, step: 3) }
        XCTAssertEqual(grads, [1.5, 1, 0.5, 1.5])   // ± λ/n = ± 0.5, 0 at s = 0
    }

    func testAlwaysOnIgnoresScoresAndSetWritesAMask() throws {
        let g = try Gates(count: 3, threshold: 0.1, initialScore: 0.15)
        g.scores[1] = -1
        g.update(step: 100)
        XCTAssertEqual(g.mask, [true, true, true])
        var grads: [Float] = [0, 0, 0]
        grads.withUnsafeMutableBufferPointer { g.addPenaltyGradient($0, step: 100) }
        XCTAssertEqual(grads, [0, 0, 0], "plain LoRA has no penalty")
        g.set([false, true, false])
        XCTAssertEqual(g.mask, [false, true, false])
        g.setAll(false)
        XCTAssertEqual(g.activeCount, 0)
    }
}
