import XCTest
import Foundation
import Tensors
@testable import VisionTransformer

/// The block stack on its own (as CLIP's text tower runs it) is the ViT's stack: same tensors, same activations,
/// the same floats out; and a ViT config still reads and writes the flat JSON checkpoints record.
final class TransformerStackTests: XCTestCase {
    func testStackAloneComputesTheViTStack() throws {
        let config = ViTConfig.clipVision(width: 8, layers: 2, heads: 2, mlp: 12, patch: 2, grid: 3, projection: 5,
                                          activation: .quickGELU)
        var rng = TestRNG(seed: 23)
        let (vit, _) = try randomTinyModel(config, &rng)
        let alone = try TransformerStack(config: config.stack)
        for e in alone.params.store.layout.entries {
            _ = alone.params.store.buffer(e.name).update(fromContentsOf: vit.params.store.buffer(e.name))
        }
        let batch = 2, height = 4, width = 6
        let acts = try ViTActivations(config: config, batch: batch, height: height, width: width)
        vit.forward(rng.array(batch * 3 * height * width).map(Float.init), acts)
        let own = try TransformerActivations(config: config.stack, batch: batch, tokens: acts.tokens)
        own.input.update(from: acts.stack.input, count: acts.rows * config.hiddenSize)
        let n = acts.rows * config.hiddenSize
        XCTAssertEqual(Array(UnsafeBufferPointer(start: alone.forward(own), count: n)),
                       Array(UnsafeBufferPointer(start: acts.out, count: n)))

        let dOut = rng.array(n).map(Float.init)
        let grads = try vit.makeGradients(), ownGrads = try TransformerTensors(config: config.stack)
        let dViT = vit.stack.backward(dOut, acts.stack, grads: grads.stack)
        let dAlone = alone.backward(dOut, own, grads: ownGrads)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: dAlone, count: n)),
                       Array(UnsafeBufferPointer(start: dViT, count: n)))
        for e in ownGrads.store.layout.entries {
            XCTAssertEqual(Array(ownGrads.store.buffer(e.name)), Array(grads.store.buffer(e.name)), e.name)
        }
    }

    func testViTConfigJSONIsOneFlatObject() throws {
        let json = #"{"activation":"quick_gelu","causal":false,"channels":3,"hiddenSize":40,"layerNormEps":1e-05,"#
            + #""layerScale":false,"mlpSize":80,"numHeads":2,"numLayers":2,"#
            + #""patchBias":false,"patchSize":4,"positionGrid":5,"preNorm":true,"projectionDim":24,"weightFormat":"open_clip"}"#
        let config = ViTConfig.clipVision(width: 40, layers: 2, heads: 2, mlp: 80, patch: 4, grid: 5, projection: 24,
                                          activation: .quickGELU)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        XCTAssertEqual(String(decoding: try encoder.encode(config), as: UTF8.self), json)
        XCTAssertEqual(try JSONDecoder().decode(ViTConfig.self, from: Data(json.utf8)), config)
    }
}
