import Foundation
import Tensors
import TestHelpers
import Tokenizers
import VisionTransformer
import XCTest
@testable import Training

final class ZeroShotTests: XCTestCase {
    /// The minimum-norm solution solves U X = Y exactly and is orthogonal to U's null space (X = Uᵀ Z).
    func testMinimumNormSolution() throws {
        var rng = SplitMix64(seed: 11)
        let n = 5, k = 9, m = 4
        let u = rng.array(n * k), y = rng.array(n * m)
        let x = try minimumNormSolution(u: u, rows: n, cols: k, y: y, targets: m)
        for i in 0..<n { for c in 0..<m {
            let got = (0..<k).reduce(0.0) { $0 + u[i * k + $1] * x[$1 * m + c] }
            XCTAssertEqual(got, y[i * m + c], accuracy: 1e-10)
        } }
        // Minimum norm ⇔ X lies in U's row space ⇔ wᵀ X = 0 for every w with U w = 0. Build such a w from a
        // random v: w = v − (the minimum-norm solution of U p = U v), then check both properties.
        let v = rng.array(k)
        let uv = (0..<n).map { i in (0..<k).reduce(0.0) { $0 + u[i * k + $1] * v[$1] } }
        let p = try minimumNormSolution(u: u, rows: n, cols: k, y: uv, targets: 1)
        let w = zip(v, p).map { $0 - $1 }
        XCTAssertGreaterThan(w.map(abs).max()!, 1e-3)
        for i in 0..<n { XCTAssertEqual((0..<k).reduce(0.0) { $0 + u[i * k + $1] * w[$1] }, 0, accuracy: 1e-10) }
        for c in 0..<m { XCTAssertEqual((0..<k).reduce(0.0) { $0 + w[$1] * x[$1 * m + c] }, 0, accuracy: 1e-10) }
        XCTAssertThrowsError(try minimumNormSolution(u: u + Array(u.prefix(k)), rows: n + 1, cols: k,
                                                     y: y + Array(y.prefix(m)), targets: m)) { e in
            XCTAssertTrue("\(e)".contains("linearly dependent"), "\(e)")
        }
    }

    func testPrompts() {
        XCTAssertEqual(ZeroShot.prompts("cat", templates: ["a photo of a {}.", "art of"]), ["a photo of a cat.", "art of cat"])
    }
}

/// The CLIP retention protocol on a tiny CLIP-form model: head-only training cannot change the image tower (held-out
/// zero-shot accuracy identical), selective LoRA can; the zero-shot baseline is what the frozen heads score.
final class ZeroShotProtocolTests: XCTestCase {
    func testInvariants() throws {
        let d = ViTConfig.tiny.hiddenSize
        let base = try randomTinyViT(seed: 2).clipForm()
        func load() throws -> ViTModel {   // a fresh copy of the same weights per method
            let m = try ViTModel(config: base.config)
            m.params.store.storage.buffer.update(fromContentsOf: base.params.store.storage.buffer)
            return m
        }
        var rng = SeededRandom(seed: 9)
        func head(_ classes: Int) throws -> ClassifierHead {
            try ClassifierHead.zeroShot(textEmbeddings: (0..<(classes * d)).map { _ in rng.normal() }, classes: classes,
                                        logitScale: log(100))
        }
        let train = try randomImageSet(count: 24, classes: 3, seed: 1), test = try randomImageSet(count: 12, classes: 3, seed: 2)
        let held = try randomImageSet(count: 20, classes: 4, seed: 3)
        let heldHead = try head(4)
        let proto = ZeroShotProtocol(loadVision: load, targetHead: try head(3), target: (train, test), targetOOD: test,
                                     heldOut: [ZeroShotTask(name: "held", data: held, head: heldHead)], size: 8, evalBatch: 5)
        try proto.prepare()
        let ev = try Evaluator(model: try load(), adapters: nil, size: 8, batch: 7)
        XCTAssertEqual(proto.heldOutBefore, [try ev.accuracy(held, head: heldHead)])

        var c = TrainingConfig()
        c.steps = 6; c.batchSize = 8; c.warmupSteps = 0; c.lr = 1e-2
        c.method = .linearProbe
        let probe = try proto.run(config: c)
        XCTAssertEqual(probe.heldOut[0].after, probe.heldOut[0].before)
        XCTAssertEqual(probe.targetZeroShot, proto.targetZeroShot)
        c.method = .selective; c.lr = 5e-2; c.penaltyStartStep = 3
        let sel = try proto.run(config: c)
        XCTAssertEqual(sel.totalBlocks, 12)
        XCTAssertGreaterThan(sel.trainableParameters, probe.trainableParameters)
        XCTAssertTrue(sel.finalLoss.isFinite)
    }
}
