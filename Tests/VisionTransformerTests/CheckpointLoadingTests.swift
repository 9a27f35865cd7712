import Foundation
import SafeTensors
import XCTest
@testable import VisionTransformer

/// Loading checkpoints in Hugging Face and timm / DINOv2 names: every tensor lands where it belongs (checked
/// bitwise against the model it was written from), and malformed checkpoints fail naming the file and tensor.
final class CheckpointLoadingTests: XCTestCase {
    let config = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                           positionGrid: 3, layerNormEps: 1e-6)
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func randomModel(seed: UInt64) throws -> ViTModel {
        var rng = TestRNG(seed: seed)
        let m = try ViTModel(config: config)
        for e in m.params.store.layout.entries {
            _ = m.params.store.buffer(e.name).update(fromContentsOf: rng.array(e.count).map(Float.init))
        }
        return m
    }

    func values(_ m: ViTModel, _ name: String) -> [Float] { Array(m.params.store.buffer(name)) }

    /// Writes `m` under timm names (q, k, v stacked into `attn.qkv`), optionally without LayerScale.
    func writeTimm(_ m: ViTModel, to path: String, prefix: String = "", layerScale: Bool = true) throws {
        var w = SafeTensorsWriter()
        let d = config.hiddenSize
        func put(_ name: String, _ v: [Float], _ shape: [Int]) throws { try w.add(prefix + name, floats: v, shape: shape) }
        try put("cls_token", values(m, ViTParameterNames.clsToken), [1, 1, d])
        try put("pos_embed", values(m, ViTParameterNames.positions), [1, 10, d])
        try put("patch_embed.proj.weight", values(m, ViTParameterNames.patchWeight), [d, 3, 2, 2])
        try put("patch_embed.proj.bias", values(m, ViTParameterNames.patchBias), [d])
        try put("mask_token", [Float](repeating: 0, count: d), [1, d])   // present in DINOv2 checkpoints; ignored
        for l in 0..<config.numLayers {
            let h = "encoder.layer.\(l).", t = "blocks.\(l)."
            for (a, b) in [("norm1", "norm1"), ("norm2", "norm2"), ("attn.proj", "attention.output.dense"),
                           ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")] {
                let e = m.params.store.layout.entry(h + b + ".weight")!
                try put(t + a + ".weight", values(m, h + b + ".weight"), e.shape)
                try put(t + a + ".bias", values(m, h + b + ".bias"), [e.shape[0]])
            }
            let qkv = ["query", "key", "value"]
            try put(t + "attn.qkv.weight", qkv.flatMap { values(m, h + "attention.attention.\($0).weight") }, [3 * d, d])
            try put(t + "attn.qkv.bias", qkv.flatMap { values(m, h + "attention.attention.\($0).bias") }, [3 * d])
            if layerScale {
                try put(t + "ls1.gamma", values(m, h + "layer_scale1.lambda1"), [d])
                try put(t + "ls2.gamma", values(m, h + "layer_scale2.lambda1"), [d])
            }
        }
        try put("norm.weight", values(m, ViTParameterNames.finalNormWeight), [d])
        try put("norm.bias", values(m, ViTParameterNames.finalNormBias), [d])
        try w.write(to: path, metadata: ["num_attention_heads": "2"])
    }

    func testHuggingFaceRoundTrip() throws {
        let m = try randomModel(seed: 1)
        let path = dir.appendingPathComponent("hf.safetensors").path
        try m.save(path: path)
        let back = try ViTModel.load(path: path)
        XCTAssertEqual(back.config, config)
        XCTAssertEqual(back.params.store.storage.toArray(), m.params.store.storage.toArray())
    }

    func testTimmNamesWithPrefix() throws {
        let m = try randomModel(seed: 2)
        let path = dir.appendingPathComponent("timm.safetensors").path
        try writeTimm(m, to: path, prefix: "module.")
        let back = try ViTModel.load(path: path)
        XCTAssertEqual(back.config, config)
        for e in m.params.store.layout.entries { XCTAssertEqual(values(back, e.name), values(m, e.name), e.name) }
    }

    func testTimmWithoutLayerScaleGetsOnes() throws {
        let m = try randomModel(seed: 3)
        let path = dir.appendingPathComponent("deit.safetensors").path
        try writeTimm(m, to: path, layerScale: false)
        let back = try ViTModel.load(path: path)
        XCTAssertEqual(values(back, "encoder.layer.1.layer_scale2.lambda1"), [Float](repeating: 1, count: 8))
        XCTAssertEqual(values(back, "encoder.layer.1.mlp.fc1.weight"), values(m, "encoder.layer.1.mlp.fc1.weight"))
    }

    func testHeadsFromArgumentOverrideMetadata() throws {
        let path = dir.appendingPathComponent("h.safetensors").path
        try writeTimm(try randomModel(seed: 4), to: path)
        XCTAssertEqual(try ViTModel.load(path: path).config.numHeads, 2)
        XCTAssertEqual(try ViTModel.load(path: path, numHeads: 4).config.numHeads, 4)
        XCTAssertThrowsError(try ViTModel.load(path: path, numHeads: 3)) { e in
            XCTAssertTrue("\(e)".contains("not divisible by 3 heads"), "\(e)")
        }
    }

    func testNotAViTCheckpoint() throws {
        let path = dir.appendingPathComponent("other.safetensors").path
        var w = SafeTensorsWriter()
        try w.add("weight", floats: [1, 2], shape: [2])
        try w.write(to: path)
        XCTAssertThrowsError(try ViTModel.load(path: path)) { e in
            XCTAssertTrue("\(e)".hasPrefix(path), "\(e)")
            XCTAssertTrue("\(e)".contains("embeddings.cls_token"), "\(e)")
        }
    }

    func testPackedQKVOfTheWrongSize() throws {
        let m = try randomModel(seed: 5)
        let path = dir.appendingPathComponent("badqkv.safetensors").path
        try writeTimm(m, to: path)
        // Rewrite with a qkv weight one row short.
        let f = try SafeTensorsFile(path: path)
        var w = SafeTensorsWriter()
        for name in f.names {
            var v = try f.floats(name), shape = try f.info(name).shape
            if name == "blocks.1.attn.qkv.weight" { v.removeLast(8); shape = [23, 8] }
            try w.add(name, floats: v, shape: shape)
        }
        let bad = dir.appendingPathComponent("badqkv2.safetensors").path
        try w.write(to: bad, metadata: f.metadata)
        XCTAssertThrowsError(try ViTModel.load(path: bad)) { e in
            XCTAssertTrue("\(e)".contains("blocks.1.attn.qkv.weight"), "\(e)")
            XCTAssertTrue("\(e)".contains("[24, 8]"), "\(e)")
        }
    }
}
