import Foundation
import SafeTensors
import Tensors

/// Hugging Face PEFT's on-disk form of LoRA adapters: a directory with `adapter_model.safetensors`
/// (`base_model.model.<module>.lora_A.weight` [r, in], `...lora_B.weight` [out, r]) and `adapter_config.json`
/// (`r`, `lora_alpha`, `use_rslora`, `target_modules`, …). Selective LoRA adds each block's gate score as
/// `base_model.model.<module>.lora_gate` (F32 [1]) and a `selective` object (threshold, initial score) in the config.
///
/// A block is stored with its A and B exactly when it is active; scores are stored for every block. Loading marks
/// the stored blocks active and gives absent ones a fresh initialisation (A random, B = 0), inactive.
extension LoRAAdapters {
    public static let keyPrefix = "base_model.model."
    public static let weightsFile = "adapter_model.safetensors"
    public static let configFile = "adapter_config.json"

    public static func peftKey(_ b: Block, _ which: String) -> String { "\(keyPrefix)\(b.exportPath).lora_\(which).weight" }
    public static func gateKey(_ b: Block) -> String { "\(keyPrefix)\(b.exportPath).lora_gate" }

    /// Writes the adapter into `directory` (created if missing; both files atomically).
    /// `gated`: whether scores are part of the method (selective) — then every score is saved.
    public func save(directory: String, gated: Bool, baseModel: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var w = SafeTensorsWriter()
        for b in blocks {
            if gates.mask[b.index] {
                try w.add(Self.peftKey(b, "A"), floats: Array(params.buffer(b.aName)), shape: [config.rank, b.inFeatures])
                try w.add(Self.peftKey(b, "B"), floats: Array(params.buffer(b.bName)), shape: [b.outFeatures, config.rank])
            }
            if gated { try w.add(Self.gateKey(b), floats: [gates.scores[b.index]], shape: [1]) }
        }
        let dir = URL(fileURLWithPath: directory)
        try w.write(to: dir.appendingPathComponent(Self.weightsFile).path, metadata: ["format": "pt"])
        var json: [String: Any] = [
            "peft_type": "LORA", "r": config.rank, "lora_alpha": Double(config.alpha), "use_rslora": config.useRSLoRA,
            "target_modules": config.targets.map { model.moduleNames == .dinov2 ? $0.rawValue : $0.relativePath(model.moduleNames) }, "lora_dropout": 0.0, "bias": "none",
            "fan_in_fan_out": false, "base_model_name_or_path": baseModel, "inference_mode": true,
        ]
        if gated {
            json["selective"] = ["threshold": Double(config.threshold), "initial_score": Double(config.initialScore),
                                 "active_blocks": gates.activeCount, "total_blocks": blocks.count]
        }
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        let configURL = dir.appendingPathComponent(Self.configFile)
        do { try data.write(to: configURL, options: .atomic) } catch {
            throw CheckpointError(path: configURL.path, message: "cannot write: \(error.localizedDescription)")
        }
    }

    /// Reads an adapter directory for a model of shape `model`. Errors name the file and the key.
    public static func load(directory: String, model: ViTConfig, seed: UInt64 = 0) throws -> (LoRAAdapters, gated: Bool) {
        let dir = URL(fileURLWithPath: directory)
        let configPath = dir.appendingPathComponent(configFile).path
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw CheckpointError(path: configPath, message: "missing: an adapter directory holds \(configFile) and \(weightsFile)")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CheckpointError(path: configPath, message: "not a JSON object")
        }
        func fail(_ m: String) -> CheckpointError { CheckpointError(path: configPath, message: m) }
        var c = LoRAConfig()
        guard let r = json["r"] as? Int, r > 0 else { throw fail("`r` must be a positive integer, got \(json["r"] ?? "nothing")") }
        // Checked before anything is allocated: every block's A and B hold r × (in + out) floats, so a hostile `r`
        // would otherwise overflow the layout arithmetic or ask for terabytes. No Linear of the model is wider than
        // this, so a larger rank cannot add anything.
        let widest = max(model.hiddenSize, model.mlpSize)
        guard r <= widest else {
            throw fail("`r` is \(r); expected at most \(widest), the widest layer of this model (\(model))")
        }
        c.rank = r
        guard let alpha = (json["lora_alpha"] as? NSNumber)?.floatValue, alpha > 0 else {
            throw fail("`lora_alpha` must be a positive number, got \(json["lora_alpha"] ?? "nothing")")
        }
        c.alpha = alpha
        c.useRSLoRA = (json["use_rslora"] as? Bool) ?? false
        guard let names = json["target_modules"] as? [String], !names.isEmpty else {
            throw fail("`target_modules` must be a non-empty list of module names")
        }
        var targets: [LoRATarget] = []
        for n in names {
            guard let t = LoRATarget.parse(n) else {
                throw fail("unknown target module `\(n)`; expected some of query, key, value, attention.output.dense, mlp.fc1, mlp.fc2")
            }
            if !targets.contains(t) { targets.append(t) }
        }
        c.targets = LoRATarget.allCases.filter(targets.contains)
        let selective = json["selective"] as? [String: Any]
        if let s = selective {
            if let t = (s["threshold"] as? NSNumber)?.floatValue { c.threshold = t }
            if let i = (s["initial_score"] as? NSNumber)?.floatValue { c.initialScore = i }
        }
        let adapters = try LoRAAdapters(model: model, config: c, seed: seed)
        let file = try SafeTensorsFile(path: dir.appendingPathComponent(weightsFile).path)
        var known = Set<String>()
        var stored = [Bool](repeating: false, count: adapters.blocks.count)
        for b in adapters.blocks {
            let ka = peftKey(b, "A"), kb = peftKey(b, "B"), kg = gateKey(b)
            known.formUnion([ka, kb, kg])
            switch (file.contains(ka), file.contains(kb)) {
            case (true, true):
                _ = adapters.params.buffer(b.aName).update(fromContentsOf: try file.floats(ka, expectShape: [r, b.inFeatures]))
                _ = adapters.params.buffer(b.bName).update(fromContentsOf: try file.floats(kb, expectShape: [b.outFeatures, r]))
                stored[b.index] = true
            case (false, false):
                stored[b.index] = false
            default:
                throw CheckpointError(path: file.path, message: "block \(b.path) has only one of lora_A and lora_B")
            }
            if file.contains(kg) { adapters.gates.scores[b.index] = try file.floats(kg, expectShape: [1])[0] }
        }
        if let stray = file.names.first(where: { !known.contains($0) }) {
            throw CheckpointError(path: file.path, message: "tensor `\(stray)` is not a LoRA block of this model "
                + "(\(model.numLayers) layers, targets \(c.targets.map(\.rawValue)))")
        }
        adapters.gates.set(stored)
        let values = Array(adapters.params.storage.buffer) + Array(adapters.gates.scores.buffer)
        if values.contains(where: { !$0.isFinite }) {
            throw CheckpointError(path: file.path, message: "contains NaN or Inf")
        }
        return (adapters, selective != nil)
    }

    /// W ← W + c·B·A for every active block, in place in `model`'s parameters. Refuses (and changes nothing)
    /// when an adapter or a merged weight would hold NaN or Inf.
    public func merge(into model: ViTModel) throws {
        guard model.config == self.model else {
            throw ViTError.invalidConfig("adapter for \(self.model) cannot merge into \(model.config)")
        }
        if (Array(params.storage.buffer)).contains(where: { !$0.isFinite }) {
            throw ViTError.badInput("the adapter holds NaN or Inf: refusing to merge")
        }
        var merged: [(String, [Float])] = []
        for b in blocks where gates.mask[b.index] {
            let name = "\(b.path).weight"
            var w = Array(model.params.store.buffer(name))
            w.withUnsafeMutableBufferPointer {
                sgemm(m: b.outFeatures, n: b.inFeatures, k: config.rank, alpha: config.scale, a: self.b(b), lda: config.rank,
                      b: a(b), ldb: b.inFeatures, beta: 1, c: $0.baseAddress!, ldc: b.inFeatures)
            }
            guard w.allSatisfy({ $0.isFinite }) else { throw ViTError.badInput("merging \(b.path) gives NaN or Inf: refusing") }
            merged.append((name, w))
        }
        for (name, w) in merged { _ = model.params.store.buffer(name).update(fromContentsOf: w) }
    }
}
