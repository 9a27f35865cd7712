import XCTest
import Tensors
@testable import VisionTransformer

/// Gated LoRA on the tiny ViT: forward against the Double reference, and every gradient — A and B of active
/// blocks, the straight-through score gradient of every block (active or not), the pixels — against central
/// finite differences of the reference, where the gate is a continuous multiplier g evaluated at I ∈ {0, 1}.
final class LoRAGradientTests: XCTestCase {
    let config = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                           positionGrid: 3, layerNormEps: 1e-6)
    let batch = 2, height = 4, width = 6

    func setUpModel(_ rng: inout TestRNG) throws -> (ViTModel, [String: [Double]]) { try randomTinyModel(config, &rng) }

    func testGatedLoRAGradients() throws {
        var rng = TestRNG(seed: 99)
        let (model, params) = try setUpModel(&rng)
        var lc = LoRAConfig()
        lc.rank = 2
        lc.alpha = 3             // scale 1.5: the scale must appear everywhere it should
        lc.targets = [.query, .value, .output, .fc1, .fc2]   // key left out: a Linear without a block
        let adapters = try LoRAAdapters(model: config, config: lc, seed: 5)
        // B non-zero so every gradient is non-trivial; a mix of active and inactive blocks.
        let ref = randomizeForReference(adapters, &rng) { $0 % 3 != 1 }
        XCTAssertEqual(adapters.blocks.count, 10)
        let pixels = rng.array(batch * 3 * height * width, -2, 2)
        let acts = try ViTActivations(config: config, batch: batch, height: height, width: width)
        let run = try LoRARun(adapters: adapters, activations: acts, gradients: true, scoreGradients: true)
        let n = acts.rows * config.hiddenSize
        let out = Array(UnsafeBufferPointer(start: model.forward(pixels.map(Float.init), acts, lora: run), count: n)).map(Double.init)
        func refOut(_ lora: [String: Ref.LoRA], _ px: [Double]) -> [Double] {
            Ref.vit(params, config: config, pixels: px, batch: batch, height: height, width: width,
                    lora: lora, rank: lc.rank, scale: Double(lc.scale))
        }
        XCTAssertLessThanOrEqual(worstRatio(out, refOut(ref, pixels), atol: 1e-5, rtol: 1e-4).ratio, 1, "forward")

        let g = rng.array(n)
        var dPixels = [Float](repeating: 0, count: pixels.count)
        let aBefore = adapters.params.storage.toArray()
        model.backward(g.map(Float.init), acts, lora: run, dPixels: &dPixels)
        XCTAssertEqual(adapters.params.storage.toArray(), aBefore, "backward must not touch the parameters")
        let grads = try XCTUnwrap(run.grads), sg = try XCTUnwrap(run.scoreGrads)
        func loss(_ lora: [String: Ref.LoRA], _ px: [Double]) -> Double { dot(g, refOut(lora, px)) }

        for b in adapters.blocks {
            let on = adapters.gates.mask[b.index]
            let gotA = Array(UnsafeBufferPointer(start: adapters.a(b, in: grads), count: lc.rank * b.inFeatures)).map(Double.init)
            let gotB = Array(UnsafeBufferPointer(start: adapters.b(b, in: grads), count: lc.rank * b.outFeatures)).map(Double.init)
            if on {
                let fdA = finiteDifferences(ref[b.path]!.a) { v in var r = ref; r[b.path]!.a = v; return loss(r, pixels) }
                let fdB = finiteDifferences(ref[b.path]!.b) { v in var r = ref; r[b.path]!.b = v; return loss(r, pixels) }
                let (ra, ia) = worstRatio(gotA, fdA, atol: 5e-5, rtol: 2e-3)
                XCTAssertLessThanOrEqual(ra, 1, "\(b.aName)[\(ia)]: \(gotA[ia]) vs \(fdA[ia])")
                let (rb, ib) = worstRatio(gotB, fdB, atol: 5e-5, rtol: 2e-3)
                XCTAssertLessThanOrEqual(rb, 1, "\(b.bName)[\(ib)]: \(gotB[ib]) vs \(fdB[ib])")
            } else {
                XCTAssertTrue(gotA.allSatisfy { $0 == 0 } && gotB.allSatisfy { $0 == 0 }, "inactive \(b.path) got A/B gradients")
            }
            let fdS = finiteDifferences([ref[b.path]!.gate]) { v in var r = ref; r[b.path]!.gate = v[0]; return loss(r, pixels) }[0]
            XCTAssertEqual(Double(sg[b.index]), fdS, accuracy: 5e-5 + 2e-3 * abs(fdS), "score of \(b.path) (active: \(on))")
            XCTAssertGreaterThan(abs(fdS), 1e-6, "test must exercise a non-zero score gradient for \(b.path)")
        }
        let fdPixels = finiteDifferences(pixels) { loss(ref, $0) }
        let (r, i) = worstRatio(dPixels.map(Double.init), fdPixels, atol: 5e-5, rtol: 2e-3)
        XCTAssertLessThanOrEqual(r, 1, "pixels[\(i)]")
    }

    /// Without score gradients an inactive block is skipped outright, and with all blocks off the model is the
    /// base model bit for bit.
    func testAllInactiveIsTheBaseModel() throws {
        var rng = TestRNG(seed: 4)
        let (model, _) = try setUpModel(&rng)
        var lc = LoRAConfig(); lc.rank = 3
        let adapters = try LoRAAdapters(model: config, config: lc, seed: 1)
        for b in adapters.blocks {
            for i in 0..<(b.outFeatures * 3) { adapters.b(b)[i] = 1 }
        }
        adapters.gates.setAll(false)
        let acts = try ViTActivations(config: config, batch: batch, height: height, width: width)
        let run = try LoRARun(adapters: adapters, activations: acts, gradients: true, scoreGradients: false)
        let px = rng.array(batch * 3 * height * width).map(Float.init)
        let n = acts.rows * config.hiddenSize
        let base = Array(UnsafeBufferPointer(start: model.forward(px, acts), count: n))
        let gated = Array(UnsafeBufferPointer(start: model.forward(px, acts, lora: run), count: n))
        XCTAssertEqual(base, gated)
    }
}

/// The truncated backward (`through:`): the LoRA gradients of every block at or above the cut are exactly the
/// full backward's, and nothing below is touched.
final class TruncatedBackwardTests: XCTestCase {
    /// Active blocks in layer 2 of 3 only: the backward through layer 2, on activations that keep only layer 2's
    /// history (`savedFrom: 2`, smaller), gives exactly the full backward's LoRA gradients.
    func testBackwardThroughALayerMatchesTheFullBackwardAboveIt() throws {
        let config = ViTConfig(hiddenSize: 8, numLayers: 3, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                               positionGrid: 3, layerNormEps: 1e-6)
        var rng = TestRNG(seed: 7)
        let (model, _) = try randomTinyModel(config, &rng)
        var lc = LoRAConfig(); lc.rank = 2
        let adapters = try LoRAAdapters(model: config, config: lc, seed: 3)
        _ = randomizeForReference(adapters, &rng) { $0 >= 12 && $0 % 2 == 0 }   // active blocks in layer 2 only
        let pixels = rng.array(2 * 3 * 4 * 4).map(Float.init)
        let full = try ViTActivations(config: config, batch: 2, height: 4, width: 4)
        let cut = try ViTActivations(config: config, batch: 2, height: 4, width: 4, savedFrom: 2)
        XCTAssertLessThan(cut.bytes, full.bytes)
        let dOut = rng.array(full.rows * config.hiddenSize).map(Float.init)
        func grads(_ acts: ViTActivations, through: Int) throws -> ([Float], [Float], [Int]) {
            let run = try LoRARun(adapters: adapters, activations: acts, gradients: true, scoreGradients: false)
            let out = Array(UnsafeBufferPointer(start: model.forward(pixels, acts, lora: run), count: acts.rows * 8))
            var order: [Int] = []
            model.backward(dOut, acts, lora: run, through: through) { order.append($0) }
            return (run.grads!.storage.toArray(), out, order)
        }
        let (g0, out0, order0) = try grads(full, through: 0)
        let (g2, out2, order2) = try grads(cut, through: 2)
        XCTAssertEqual(out2, out0, "the forward does not depend on what is saved")
        XCTAssertEqual(order0, [2, 1, 0])
        XCTAssertEqual(order2, [2])
        XCTAssertEqual(g2, g0, "every LoRA gradient is the full backward's")
        XCTAssertTrue(g0.contains { $0 != 0 })
    }
}
