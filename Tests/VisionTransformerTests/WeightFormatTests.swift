import Foundation
import SafeTensors
import XCTest
@testable import VisionTransformer

/// DINOv2 weights and adapters in transformers-5 and transformers-4 names: read either (detected), write either,
/// and read back exactly; adapters list exactly their saved blocks' module paths in `target_modules`.
final class WeightFormatTests: XCTestCase {
    let config = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                           positionGrid: 3, layerNormEps: 1e-6)
    /// A fresh directory, removed after the test.
    lazy var dir: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("formats-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }()

    func randomModel(seed: UInt64) throws -> ViTModel {
        var rng = TestRNG(seed: seed)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return try randomTinyModel(config, &rng).0
    }

    /// transformers 5's renames of the in-memory (transformers 4) names, written out by hand so that reading is not
    /// checked against our own writer only.
    static let v5Renames = [("attention.attention.query.", "attention.q_proj."), ("attention.attention.key.", "attention.k_proj."),
                            ("attention.attention.value.", "attention.v_proj."), ("attention.output.dense.", "attention.o_proj.")]

    func testReadsTransformers5NamesWrittenByHand() throws {
        let m = try randomModel(seed: 11)
        var w = SafeTensorsWriter()
        for e in m.params.store.layout.entries {
            let name = Self.v5Renames.reduce(e.name) { $0.replacingOccurrences(of: $1.0, with: $1.1) }
            try w.add("dinov2." + name, floats: Array(m.params.store.buffer(e.name)), shape: e.shape)
        }
        try w.add("dinov2.embeddings.mask_token", floats: [Float](repeating: 0, count: 8), shape: [1, 8])   // ignored
        let path = dir.appendingPathComponent("v5.safetensors").path
        try w.write(to: path, metadata: ["num_attention_heads": "2"])
        let back = try ViTModel.load(path: path)
        XCTAssertEqual(back.config, config)
        XCTAssertEqual(back.params.store.storage.toArray(), m.params.store.storage.toArray())
    }

    func testWritesEachDINOv2FormatAndReadsItBackExactly() throws {
        let m = try randomModel(seed: 12)
        let want: [WeightFormat: (has: String, lacks: String)] = [
            .transformers5: ("encoder.layer.1.attention.o_proj.weight", "encoder.layer.1.attention.output.dense.weight"),
            .transformers4: ("encoder.layer.1.attention.attention.query.weight", "encoder.layer.1.attention.q_proj.weight"),
            .timm: ("blocks.1.attn.qkv.weight", "encoder.layer.1.mlp.fc1.weight"),
        ]
        for (format, names) in want {
            let path = dir.appendingPathComponent("\(format.rawValue).safetensors").path
            try m.save(path: path, format: format)
            let file = try SafeTensorsFile(path: path)
            XCTAssertTrue(file.contains(names.has), "\(format): \(file.names)")
            XCTAssertFalse(file.contains(names.lacks), "\(format)")
            XCTAssertEqual(file.names.count, format == .timm ? 4 + 2 * 14 + 2 : m.params.store.layout.entries.count, "\(format)")
            let back = try ViTModel.load(path: path)
            XCTAssertEqual(back.config, config, "\(format)")
            XCTAssertEqual(back.params.store.storage.toArray(), m.params.store.storage.toArray(), "\(format)")
        }
        // The default is transformers 5, and a DINOv2 model has no CLIP names.
        let path = dir.appendingPathComponent("default.safetensors").path
        try m.save(path: path)
        XCTAssertTrue(try SafeTensorsFile(path: path).contains("encoder.layer.0.attention.q_proj.weight"))
        XCTAssertThrowsError(try m.save(path: path, format: .openCLIP)) { XCTAssertTrue("\($0)".contains("patch bias"), "\($0)") }
    }

    func adapters() throws -> LoRAAdapters {
        var c = LoRAConfig(); c.rank = 2; c.targets = [.query, .value, .output, .fc1]
        let a = try LoRAAdapters(model: config, config: c, seed: 5)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var rng = TestRNG(seed: 6)
        for b in a.blocks {
            _ = a.params.buffer(b.bName).update(fromContentsOf: rng.array(a.params.buffer(b.bName).count).map(Float.init))
            a.gates.scores[b.index] = Float(b.index) / 10
        }
        // blocks 1... active with τ = 0.1: all but block 0 (layer 0's query), and layer 1's fc1 (block 7) off
        a.gates.set(a.blocks.indices.map { a.gates.scores[$0] >= c.threshold && $0 != 7 })
        return a
    }

    func testAdapterExportInBothNamingsListsExactlyTheSavedModules() throws {
        let a = try adapters()
        let expected: [WeightFormat: [String]] = [
            .transformers5: ["encoder.layer.0.attention.v_proj", "encoder.layer.0.attention.o_proj", "encoder.layer.0.mlp.fc1",
                             "encoder.layer.1.attention.q_proj", "encoder.layer.1.attention.v_proj", "encoder.layer.1.attention.o_proj"],
            .transformers4: ["encoder.layer.0.attention.attention.value", "encoder.layer.0.attention.output.dense",
                             "encoder.layer.0.mlp.fc1", "encoder.layer.1.attention.attention.query",
                             "encoder.layer.1.attention.attention.value", "encoder.layer.1.attention.output.dense"],
        ]
        for (format, modules) in expected {
            let out = dir.appendingPathComponent("adapter-\(format.rawValue)").path
            for gated in [true, false] {
                try a.save(directory: out, gated: gated, baseModel: "tiny", format: format)
                let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/adapter_config.json"))) as? [String: Any])
                XCTAssertEqual(json["target_modules"] as? [String], modules, "\(format)")
                let file = try SafeTensorsFile(path: out + "/adapter_model.safetensors")
                let weights = file.names.filter { $0.hasSuffix(".weight") }
                XCTAssertEqual(Set(weights), Set(modules.flatMap { ["base_model.model.\($0).lora_A.weight", "base_model.model.\($0).lora_B.weight"] }))
                XCTAssertEqual(file.names.count - weights.count, gated ? a.blocks.count : 0)
            }
            try a.save(directory: out, gated: true, baseModel: "tiny", format: format)
            let (back, gated) = try LoRAAdapters.load(directory: out, model: config)
            XCTAssertTrue(gated)
            XCTAssertEqual(back.exportFormat, format)
            XCTAssertEqual(back.config, a.config)
            XCTAssertEqual(back.gates.mask, a.gates.mask)
            XCTAssertEqual(back.gates.scores.toArray(), a.gates.scores.toArray())
            for b in a.blocks where a.gates.mask[b.index] {
                XCTAssertEqual(Array(back.params.buffer(b.aName)), Array(a.params.buffer(b.aName)), b.path)
                XCTAssertEqual(Array(back.params.buffer(b.bName)), Array(a.params.buffer(b.bName)), b.path)
            }
        }
        XCTAssertThrowsError(try a.save(directory: dir.appendingPathComponent("timm").path, gated: true, baseModel: "tiny", format: .timm)) {
            XCTAssertTrue("\($0)".contains("query"), "\($0)")
        }
    }

    /// Adapters written before (short `target_modules` such as `query`, transformers-4 keys, no selective targets)
    /// still load.
    func testOldShortTargetNamesStillLoad() throws {
        let a = try adapters()
        let out = dir.appendingPathComponent("old").path
        try a.save(directory: out, gated: true, baseModel: "tiny", format: .transformers4)
        let configURL = URL(fileURLWithPath: out + "/adapter_config.json")
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        json["target_modules"] = ["query", "value", "attention.output.dense", "mlp.fc1"]
        var selective = try XCTUnwrap(json["selective"] as? [String: Any])
        selective["targets"] = nil
        json["selective"] = selective
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        let (back, _) = try LoRAAdapters.load(directory: out, model: config)
        XCTAssertEqual(back.config.targets, a.config.targets)
        XCTAssertEqual(back.gates.mask, a.gates.mask)
        XCTAssertEqual(back.exportFormat, .transformers4)
    }
}
