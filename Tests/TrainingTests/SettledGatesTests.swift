import Communication
import Foundation
import Tensors
import TestHelpers
import Training
import VisionTransformer
import XCTest

/// Settled gates: once mask and scores freeze, the run is the same run as one whose mask is held fixed by hand —
/// only cheaper (no straight-through work for inactive blocks, no score gradients, the backward stopping at the
/// lowest active block).
final class SettledGatesTests: XCTestCase {
    func config() -> TrainingConfig {
        var c = TrainingConfig()
        c.lora.rank = 2; c.steps = 8; c.batchSize = 4; c.warmupSteps = 1; c.penaltyStartStep = 2; c.scoreLR = 0.05
        c.clipNorm = 0            // the score gradients of the unsettled run would otherwise enter the clipping norm
        c.settlePatience = 0
        return c
    }

    /// Layer 0 inactive: blocks of layer 1 only (block indices 6…11 are layer 1's).
    let pattern: [Float] = [0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.15, 0.05, 0.15, 0.05, 0.15, 0.15]

    func batch(_ s: Int) -> ([Float], [Int32]) {
        var rng = SeededRandom(seed: UInt64(s))
        return ((0..<(4 * 3 * 4 * 4)).map { _ in rng.normal() }, (0..<4).map { Int32($0 % 3) })
    }

    func testSettledRunEqualsTheFixedMaskRunAndCostsLess() throws {
        var c = config()
        c.settleAfter = 0
        let settled = try Trainer(model: try randomTinyViT(), classes: 3, config: c, batch: 4, height: 4, width: 4)
        let fixed = try Trainer(model: try randomTinyViT(), classes: 3, config: config(), batch: 4, height: 4, width: 4)
        for t in [settled, fixed] { for (i, s) in pattern.enumerated() { t.gates!.scores[i] = s } }
        fixed.gates!.rule = .fixed
        fixed.gates!.set(pattern.map { $0 >= 0.1 })
        var lossA: [Double] = [], lossB: [Double] = []
        for s in 0..<c.steps {
            let (px, labels) = batch(s)
            lossA.append(settled.trainStep(pixels: px, labels: labels).loss)
            lossB.append(fixed.trainStep(pixels: px, labels: labels).loss)
        }
        let a = settled.adapters!, b = fixed.adapters!
        XCTAssertEqual(settled.gates!.settledStep, 0)
        XCTAssertEqual(settled.backwardThrough, 1, "layer 0 holds no active block")
        XCTAssertEqual(settled.acts.stack.savedFrom, 1, "activations rebuilt to save from the lowest active layer")
        XCTAssertEqual(a.gates.mask, b.gates.mask)
        XCTAssertEqual(lossA, lossB)
        XCTAssertEqual(a.params.storage.toArray(), b.params.storage.toArray(), "A and B bitwise equal")
        XCTAssertEqual(settled.head.params.storage.toArray(), fixed.head.params.storage.toArray())
        XCTAssertEqual(a.gates.scores.toArray(), pattern, "settled scores are frozen")
        XCTAssertNotEqual(b.gates.scores.toArray(), pattern, "the fixed-mask run's scores still learn")
        // What trains: head, the 4 active blocks' A and B; no scores.
        let ab = a.blocks.filter { a.gates.mask[$0.index] }.reduce(0) { $0 + 2 * ($1.inFeatures + $1.outFeatures) }
        XCTAssertEqual(settled.trainableParameterCount, 3 * 8 + 3 + ab)
        XCTAssertEqual(fixed.trainableParameterCount, 3 * 8 + 3 + ab + 12)
        // The settled run holds the state (gradients, saved h, AdamW moments) of its active blocks only.
        let active = a.blocks.filter { a.gates.mask[$0.index] }
        XCTAssertEqual(try XCTUnwrap(settled.run?.grads).layout.entries.map(\.name), active.flatMap { [$0.aName, $0.bName] })
        XCTAssertEqual(try XCTUnwrap(fixed.run?.grads).layout.entries.count, 2 * a.blocks.count)
        XCTAssertEqual(settled.trainable.tensors.filter { $0.role == .adapter }.map(\.name),
                       active.flatMap { [$0.aName, $0.bName] }, "the table: the active blocks (all in layer 1)")
        XCTAssertEqual(settled.trainable.totalCount, 3 * 8 + 3 + ab + 12, "head, the active blocks' A and B, the scores")
        XCTAssertLessThan(settled.trainable.totalCount, fixed.trainable.totalCount)
    }

    /// The automatic rule: no flip for `settlePatience` consecutive steps after the penalty starts.
    func testGatesSettleAfterPatienceStableSteps() throws {
        let g = try Gates(count: 4, threshold: 0.1, initialScore: 0.15)
        g.rule = .learned(GateSchedule(penalty: 1, startStep: 2, settlePatience: 3))
        for (i, s) in [0.3, 0.05, 0.2, 0.2].enumerated() { g.scores[i] = Float(s) }
        for step in 0..<5 { g.update(step: step) }
        XCTAssertNil(g.settledStep, "steps 3 and 4 stable: 2 of 3")
        g.scores[2] = 0.01                          // a flip at step 5 restarts the count
        g.update(step: 5)
        XCTAssertEqual(g.stableSteps, 0)
        for step in 6...7 { g.update(step: step) }
        XCTAssertNil(g.settledStep)
        g.update(step: 8)
        XCTAssertEqual(g.settledStep, 8)
        g.scores[0] = -1                            // settled: the mask no longer follows the scores
        g.update(step: 9)
        XCTAssertEqual(g.mask, [true, false, false, true])
        var grads: [Float] = [0, 0, 0, 0]
        grads.withUnsafeMutableBufferPointer { g.addPenaltyGradient($0, step: 9) }
        XCTAssertEqual(grads, [0, 0, 0, 0], "no penalty once settled")
    }

    /// A checkpoint taken after settling resumes bitwise (settled step and stable count restored).
    func testResumeAfterSettlingIsBitwise() throws {
        var c = config()
        c.steps = 10; c.settleAfter = 4; c.clipNorm = 1
        func dp() throws -> DataParallelTrainer {
            try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try randomTinyViT(),
                                    data: try randomImageSet(count: 16, seed: 2), size: 4, config: c)
        }
        let whole = try dp()
        try whole.run()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("settle-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try dp()
        first.runDirectory = dir
        for _ in 0..<6 { _ = try first.step() }
        try first.checkpoint()
        XCTAssertEqual(first.trainer.gates?.settledStep, 4)
        let second = try dp()
        _ = try second.resume(from: dir)
        XCTAssertEqual(second.trainer.gates?.settledStep, 4)
        try second.run()
        XCTAssertEqual(second.stateBytes(), whole.stateBytes())
    }
}
