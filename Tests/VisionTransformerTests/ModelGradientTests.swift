import XCTest
import Tensors
@testable import VisionTransformer

/// The whole ViT (embeddings, two blocks, final LayerNorm) on a tiny non-square input whose patch grid differs
/// from the stored position grid, so the bicubic resize is exercised too: forward against the Double reference,
/// every parameter gradient and the pixel gradient against finite differences of the reference.
final class ModelGradientTests: XCTestCase {
    let config = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                           positionGrid: 3, layerNormEps: 1e-6)
    let batch = 2, height = 4, width = 6

    func testForwardAndEveryGradient() throws {
        var rng = TestRNG(seed: 7)
        let (model, params) = try randomTinyModel(config, &rng)
        let pixels = rng.array(batch * 3 * height * width, -2, 2)
        let acts = try ViTActivations(config: config, batch: batch, height: height, width: width)
        XCTAssertEqual(acts.tokens, 7)
        let out = model.forward(pixels.map(Float.init), acts)
        let n = acts.rows * config.hiddenSize
        let got = Array(UnsafeBufferPointer(start: out, count: n)).map(Double.init)
        let want = Ref.vit(params, config: config, pixels: pixels, batch: batch, height: height, width: width)
        XCTAssertLessThanOrEqual(worstRatio(got, want, atol: 1e-5, rtol: 1e-4).ratio, 1, "forward")

        let g = rng.array(n)
        let grads = try model.makeGradients()
        var dPixels = [Float](repeating: 0, count: pixels.count)
        model.backward(g.map(Float.init), acts, grads: grads, dPixels: &dPixels)

        func loss(_ p: [String: [Double]], _ px: [Double]) -> Double {
            dot(g, Ref.vit(p, config: config, pixels: px, batch: batch, height: height, width: width))
        }
        for e in model.params.store.layout.entries {
            let fd = finiteDifferences(params[e.name]!) { v in
                var p = params; p[e.name] = v
                return loss(p, pixels)
            }
            let analytic = Array(grads.store.buffer(e.name)).map(Double.init)
            let (r, i) = worstRatio(analytic, fd, atol: 5e-5, rtol: 2e-3)
            XCTAssertLessThanOrEqual(r, 1, "\(e.name)[\(i)]: \(analytic[i]) vs finite difference \(fd[i])")
        }
        let fdPixels = finiteDifferences(pixels) { loss(params, $0) }
        let (r, i) = worstRatio(dPixels.map(Double.init), fdPixels, atol: 5e-5, rtol: 2e-3)
        XCTAssertLessThanOrEqual(r, 1, "pixels[\(i)]: \(dPixels[i]) vs \(fdPixels[i])")
    }

    /// Without a gradient store the backward computes the same input gradient and touches no parameter gradient.
    func testInputGradientOnlyMatchesFullBackward() throws {
        var rng = TestRNG(seed: 11)
        let model = try ViTModel(config: config)
        _ = model.params.store.storage.buffer.update(fromContentsOf: rng.array(model.params.store.storage.count, -0.5, 0.5).map(Float.init))
        let acts = try ViTActivations(config: config, batch: batch, height: height, width: width)
        let pixels = rng.array(batch * 3 * height * width).map(Float.init)
        model.forward(pixels, acts)
        let g = rng.array(acts.rows * config.hiddenSize).map(Float.init)
        var full = [Float](repeating: 0, count: pixels.count), only = full
        model.backward(g, acts, grads: try model.makeGradients(), dPixels: &full)
        model.backward(g, acts, grads: nil, dPixels: &only)
        XCTAssertEqual(full, only)
    }

    func testInferenceActivationsGiveTheSameOutput() throws {
        var rng = TestRNG(seed: 3)
        let model = try ViTModel(config: config)
        _ = model.params.store.storage.buffer.update(fromContentsOf: rng.array(model.params.store.storage.count, -0.5, 0.5).map(Float.init))
        let pixels = rng.array(batch * 3 * height * width).map(Float.init)
        let train = try ViTActivations(config: config, batch: batch, height: height, width: width, training: true)
        let infer = try ViTActivations(config: config, batch: batch, height: height, width: width, training: false)
        let n = train.rows * config.hiddenSize
        let a = Array(UnsafeBufferPointer(start: model.forward(pixels, train), count: n))
        let b = Array(UnsafeBufferPointer(start: model.forward(pixels, infer), count: n))
        XCTAssertEqual(a, b)
        XCTAssertLessThan(infer.bytes, train.bytes)
    }

    func testImageSizeMustBeAMultipleOfThePatch() {
        XCTAssertThrowsError(try ViTActivations(config: .dinov2Small, batch: 1, height: 225, width: 224)) { e in
            XCTAssertTrue("\(e)".contains("225×224"), "\(e)")
            XCTAssertTrue("\(e)".contains("multiple of the patch size 14"), "\(e)")
        }
        XCTAssertThrowsError(try ViTActivations(config: .dinov2Small, batch: 0, height: 224, width: 224))
    }
}
