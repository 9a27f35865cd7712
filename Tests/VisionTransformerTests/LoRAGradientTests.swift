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

    /// At a rank where the LoRA products leave the thin kernels for sgemm (dA and dB at r ≥
    /// `Kernels.thinOuterSGEMMRank`, g = dy·B once r · out > `Kernels.thinRowsLimit`: fc1 here), sampled entries
    /// of every gradient against central finite differences of the Double reference.
    func testLargeRankSGEMMPathsMatchFiniteDifferences() throws {
        let config = ViTConfig(hiddenSize: 16, numLayers: 2, numHeads: 2, mlpSize: 64, patchSize: 2, channels: 3,
                               positionGrid: 3, layerNormEps: 1e-6)
        var rng = TestRNG(seed: 31)
        let (model, params) = try randomTinyModel(config, &rng)
        var lc = LoRAConfig()
        lc.rank = 72
        lc.alpha = 36
        XCTAssertGreaterThanOrEqual(lc.rank, Kernels.thinOuterSGEMMRank, "the test must take thinOuter's sgemm path")
        XCTAssertGreaterThan(lc.rank * config.mlpSize, Kernels.thinRowsLimit, "fc1's g must take the sgemm path")
        XCTAssertLessThanOrEqual(lc.rank * config.hiddenSize, Kernels.thinRowsLimit, "the others' g stay on the kernel")
        let adapters = try LoRAAdapters(model: config, config: lc, seed: 6)
        let ref = randomizeForReference(adapters, &rng) { $0 % 4 != 2 }
        let pixels = rng.array(batch * 3 * height * width, -2, 2)
        let acts = try ViTActivations(config: config, batch: batch, height: height, width: width)
        let run = try LoRARun(adapters: adapters, activations: acts, gradients: true, scoreGradients: true)
        let n = acts.rows * config.hiddenSize
        _ = model.forward(pixels.map(Float.init), acts, lora: run)
        let g = rng.array(n)
        var dPixels = [Float](repeating: 0, count: pixels.count)
        model.backward(g.map(Float.init), acts, lora: run, dPixels: &dPixels)
        func loss(_ lora: [String: Ref.LoRA]) -> Double {
            dot(g, Ref.vit(params, config: config, pixels: pixels, batch: batch, height: height, width: width,
                           lora: lora, rank: lc.rank, scale: Double(lc.scale)))
        }
        func fd(_ body: (inout [String: Ref.LoRA], Double) -> Void) -> Double {
            let h = 1e-5
            var up = ref, down = ref
            body(&up, h); body(&down, -h)
            return (loss(up) - loss(down)) / (2 * h)
        }
        let grads = try XCTUnwrap(run.grads), sg = try XCTUnwrap(run.scoreGrads)
        var checked = 0
        for b in adapters.blocks {
            let on = adapters.gates.mask[b.index]
            let gotA = adapters.a(b, in: grads), gotB = adapters.b(b, in: grads)
            for _ in 0..<4 {
                let ia = Int(rng.uniform(0, Double(lc.rank * b.inFeatures))), ib = Int(rng.uniform(0, Double(lc.rank * b.outFeatures)))
                let wantA = on ? fd { r, h in r[b.path]!.a[ia] += h } : 0
                let wantB = on ? fd { r, h in r[b.path]!.b[ib] += h } : 0
                XCTAssertEqual(Double(gotA[ia]), wantA, accuracy: 1e-4 + 2e-3 * abs(wantA), "\(b.aName)[\(ia)]")
                XCTAssertEqual(Double(gotB[ib]), wantB, accuracy: 1e-4 + 2e-3 * abs(wantB), "\(b.bName)[\(ib)]")
                checked += on && wantA != 0 && wantB != 0 ? 1 : 0
            }
            let wantS = fd { r, h in r[b.path]!.gate += h }
            XCTAssertEqual(Double(sg[b.index]), wantS, accuracy: 1e-4 + 2e-3 * abs(wantS), "score of \(b.path) (active: \(on))")
        }
        XCTAssertEqual(checked, 4 * adapters.activeCount, "every sampled A and B gradient of an active block is non-zero")
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

/// A run that holds only some blocks (`LoRARun(blocks:)`, what a settled pattern and `lora-last-k` build): its
/// held blocks get the gradients of a run that holds every block, a block it does not hold is frozen (it still acts
/// in the forward, gets no gradient), and its state is only the held blocks'.
final class LoRARunHeldBlocksTests: XCTestCase {
    func testHeldBlocksMatchTheFullRunAndAnUnheldActiveBlockIsFrozen() throws {
        let config = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                               positionGrid: 3, layerNormEps: 1e-6)
        var rng = TestRNG(seed: 21)
        let (model, _) = try randomTinyModel(config, &rng)
        var lc = LoRAConfig(); lc.rank = 2
        lc.targets = [.query, .value, .output, .fc1, .fc2]
        let adapters = try LoRAAdapters(model: config, config: lc, seed: 8)
        // Active: 0 (l0 q), 2 (l0 out), 3, 4, 5 (l1 q), 6 (l1 v), 8, 9; inactive 1 (l0 v), 7 (l1 out).
        _ = randomizeForReference(adapters, &rng) { $0 % 3 != 1 || $0 == 4 }
        // Held: every active block but 6 (so layer 1's q, k, v group holds q alone), and inactive block 1.
        let held = (0..<10).map { $0 != 6 && $0 != 7 }
        XCTAssertEqual(adapters.gates.mask, (0..<10).map { $0 != 1 && $0 != 7 })
        let pixels = rng.array(2 * 3 * 4 * 6).map(Float.init)
        let dOut = rng.array(2 * (1 + 2 * 3) * 8).map(Float.init)   // 2 images of 1 + 2 × 3 tokens, width 8
        func pass(_ blocks: [Bool]?) throws -> (run: LoRARun, out: [Float], dPixels: [Float]) {
            let acts = try ViTActivations(config: config, batch: 2, height: 4, width: 6)
            let run = try LoRARun(adapters: adapters, activations: acts, gradients: true, scoreGradients: false, blocks: blocks)
            let out = Array(UnsafeBufferPointer(start: model.forward(pixels, acts, lora: run), count: acts.rows * 8))
            var dPixels = [Float](repeating: 0, count: pixels.count)
            model.backward(dOut, acts, lora: run, dPixels: &dPixels)
            return (run, out, dPixels)
        }
        let full = try pass(nil), part = try pass(held)
        XCTAssertEqual(part.out, full.out, "the forward: W' holds every active block, held or not")
        for (x, y) in zip(part.dPixels, full.dPixels) { XCTAssertEqual(x, y, accuracy: 1e-6 * max(1, abs(y))) }
        for b in adapters.blocks {
            let i = b.index
            guard held[i] else {
                XCTAssertNil(part.run.gradients(i), "block \(i) is not held: no gradient")
                XCTAssertFalse(part.run.holds(i))
                continue
            }
            let got = try XCTUnwrap(part.run.gradients(i)), want = try XCTUnwrap(full.run.gradients(i))
            for (x, y) in zip(Array(got.a) + Array(got.b), Array(want.a) + Array(want.b)) {
                XCTAssertEqual(x, y, accuracy: 1e-6 * max(1, abs(y)), "block \(i)")
            }
            XCTAssertEqual((Array(got.a) + Array(got.b)).contains { $0 != 0 }, adapters.gates.mask[i],
                           "block \(i): a gradient iff active")
        }
        XCTAssertTrue(Array(try XCTUnwrap(full.run.gradients(6)).b).contains { $0 != 0 }, "the full run trains block 6")
        let heldFloats = adapters.blocks.filter { held[$0.index] }.reduce(0) { $0 + 2 * ($1.inFeatures + $1.outFeatures) }
        let layout = try XCTUnwrap(part.run.grads).layout
        XCTAssertEqual(layout.entries.map(\.name), adapters.blocks.filter { held[$0.index] }.flatMap { [$0.aName, $0.bName] })
        XCTAssertEqual(layout.entries.reduce(0) { $0 + $1.count }, heldFloats, "gradients of the held blocks only")
        XCTAssertLessThan(part.run.saved.count, full.run.saved.count)
    }
}

/// The truncated backward (`through:`): the LoRA gradients of every block at or above the cut are exactly the
/// full backward's, and nothing below is touched.
final class TruncatedBackwardTests: XCTestCase {
    /// Three blocks: room for a cut above block 0 with a block below it.
    let config = ViTConfig(hiddenSize: 8, numLayers: 3, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                           positionGrid: 3, layerNormEps: 1e-6)

    /// A random tiny model of ``config`` and rank-2 adapters on every target (`seed` for the adapters' init).
    func modelAndAdapters(_ rng: inout TestRNG, seed: UInt64) throws -> (ViTModel, LoRAAdapters) {
        let (model, _) = try randomTinyModel(config, &rng)
        var lc = LoRAConfig(); lc.rank = 2
        return (model, try LoRAAdapters(model: config, config: lc, seed: seed))
    }

    /// Active blocks in layer 2 of 3 only: the backward through layer 2, on activations that keep only layer 2's
    /// history (`savedFrom: 2`, smaller), gives exactly the full backward's LoRA gradients.
    func testBackwardThroughALayerMatchesTheFullBackwardAboveIt() throws {
        var rng = TestRNG(seed: 7)
        let (model, adapters) = try modelAndAdapters(&rng, seed: 3)
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

    /// Without weight or pixel gradients the backward ends inside its lowest block, right after the LoRA backward of
    /// that block's lowest running group (fc2, fc1, output or q/k/v). Every LoRA and score gradient must still be,
    /// bit for bit, the one of the backward that runs to the pixels (`dPixels`), for each group as the lowest, with
    /// and without `through:`, and with the scores learning (every block runs: the stop is q/k/v of layer 0).
    func testBackwardEndsAtTheLowestAdapterWithTheFullBackwardsGradients() throws {
        var rng = TestRNG(seed: 11)
        let pixels = rng.array(2 * 3 * 4 * 4).map(Float.init)
        let acts = try ViTActivations(config: config, batch: 2, height: 4, width: 4)
        let dOut = rng.array(acts.rows * config.hiddenSize).map(Float.init)
        // Block index = layer · 6 + target (query, key, value, output, fc1, fc2).
        let cases: [(name: String, active: Set<Int>, scores: Bool)] = [
            ("fc2 lowest", [6 + 5, 12 + 0], false), ("fc1 lowest", [6 + 4, 6 + 5, 12 + 3], false),
            ("output lowest", [6 + 3, 12 + 4], false), ("value lowest", [6 + 2, 6 + 4], false),
            ("query lowest", [6 + 0, 12 + 5], false), ("scores learning", [6 + 4, 12 + 1], true),
        ]
        for c in cases {
            let (model, adapters) = try modelAndAdapters(&rng, seed: 5)
            _ = randomizeForReference(adapters, &rng) { c.active.contains($0) }
            func grads(through: Int, pixels wantPixels: Bool) throws -> [Float] {
                let run = try LoRARun(adapters: adapters, activations: acts, gradients: true, scoreGradients: c.scores)
                _ = model.forward(pixels, acts, lora: run)
                if wantPixels {
                    var dPixels = [Float](repeating: 0, count: pixels.count)
                    model.backward(dOut, acts, lora: run, dPixels: &dPixels)
                } else {
                    model.backward(dOut, acts, lora: run, through: through)
                }
                return run.grads!.storage.toArray() + (run.scoreGrads?.toArray() ?? [])
            }
            let want = try grads(through: 0, pixels: true)
            XCTAssertTrue(want.contains { $0 != 0 }, c.name)
            for through in c.scores ? [0] : [0, 1] {
                let got = try grads(through: through, pixels: false)
                let differ = got.indices.filter { $0 < want.count && got[$0] != want[$0] }
                XCTAssertEqual(got.count, want.count, c.name)
                XCTAssertTrue(differ.isEmpty, "\(c.name), through \(through): \(differ.count) gradient entries differ from "
                              + "the full backward's, the first at \(differ.first ?? -1)")
            }
        }
    }
}
