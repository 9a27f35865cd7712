import Foundation
import SafeTensors
import Tensors

/// Hugging Face PEFT's on-disk form of LoRA adapters: a directory with `adapter_model.safetensors`
/// (`base_model.model.<module>.lora_A.weight` [r, in], `...lora_B.weight` [out, r]) and `adapter_config.json`
/// (`r`, `lora_alpha`, `use_rslora`, `target_modules`, …). Module paths are in one ``WeightFormat``'s names
/// (``LoRATarget/modulePath(layer:format:)``). Selective LoRA adds each block's gate score as
/// `base_model.model.<module>.lora_gate` (F32 [1]) and a `selective` object (threshold, initial score, the target
/// kinds) in the config.
///
/// A block is stored with its A and B exactly when it is active, and `target_modules` lists exactly those blocks'
/// full module paths (so PEFT injects only them); scores are stored for every block. Loading marks the stored
/// blocks active and gives absent ones a fresh initialisation (A random, B = 0), inactive.
extension LoRAAdapters {
    public static let keyPrefix = "base_model.model."
    public static let weightsFile = "adapter_model.safetensors"
    public static let configFile = "adapter_config.json"

    /// `base_model.model.<module path>.lora_<which>.weight`.
    public static func peftKey(path: String, _ which: String) -> String { "\(keyPrefix)\(path).lora_\(which).weight" }
    /// `base_model.model.<module path>.lora_gate`.
    public static func gateKey(path: String) -> String { "\(keyPrefix)\(path).lora_gate" }
    public static func peftKey(_ b: Block, _ which: String) -> String { peftKey(path: b.exportPath, which) }
    public static func gateKey(_ b: Block) -> String { gateKey(path: b.exportPath) }

    /// Writes the adapter into `directory` (created if missing; both files atomically) under `format`'s module
    /// paths (default ``exportFormat``; a format of the model's family: DINOv2 or CLIP).
    /// `gated`: whether scores are part of the method (selective) — then every score is saved.
    public func save(directory: String, gated: Bool, baseModel: String, format: WeightFormat? = nil) throws {
        let format = format ?? exportFormat
        guard format.isCLIP == model.weightFormat.isCLIP else {
            throw ViTError.invalidConfig("adapters of a \(model.weightFormat) model cannot be written in \(format) names")
        }
        let paths = try blocks.map { try $0.target.modulePath(layer: $0.layer, format: format) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var w = SafeTensorsWriter()
        for b in blocks {
            if gates.mask[b.index] {
                try w.add(Self.peftKey(path: paths[b.index], "A"), floats: Array(params.buffer(b.aName)), shape: [config.rank, b.inFeatures])
                try w.add(Self.peftKey(path: paths[b.index], "B"), floats: Array(params.buffer(b.bName)), shape: [b.outFeatures, config.rank])
            }
            if gated { try w.add(Self.gateKey(path: paths[b.index]), floats: [gates.scores[b.index]], shape: [1]) }
        }
        let dir = URL(fileURLWithPath: directory)
        try w.write(to: dir.appendingPathComponent(Self.weightsFile).path, metadata: ["format": "pt"])
        let saved = blocks.filter { gates.mask[$0.index] }.map { paths[$0.index] }
        var json: [String: Any] = [
            "peft_type": "LORA", "r": config.rank, "lora_alpha": Double(config.alpha), "use_rslora": config.useRSLoRA,
            "target_modules": saved, "lora_dropout": 0.0, "bias": "none",
            "fan_in_fan_out": false, "base_model_name_or_path": baseModel, "inference_mode": true,
        ]
        if gated {
            json["selective"] = ["threshold": Double(config.threshold), "initial_score": Double(config.initialScore),
                                 "active_blocks": gates.activeCount, "total_blocks": blocks.count,
                                 "targets": config.targets.map(\.rawValue)]
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
        guard let modules = json["target_modules"] as? [String] else {
            throw fail("`target_modules` must be a list of module names")
        }
        let selective = json["selective"] as? [String: Any]
        // The kinds of Linear that carry blocks: the selective object's `targets` (every kind, active or not), else
        // those `target_modules` names (short names such as `query`, or full module paths of active blocks).
        var targets: [LoRATarget] = []
        let kinds = selective?["targets"] as? [String]
        for n in kinds ?? modules {
            guard let t = kinds == nil ? LoRATarget.parseModule(n)?.target : LoRATarget.parse(n) else {
                throw fail("unknown target module `\(n)`; expected some of query, key, value, attention.output.dense, "
                    + "mlp.fc1, mlp.fc2, or their module paths in \(WeightFormat.allCases.map(\.rawValue).joined(separator: ", ")) names")
            }
            if !targets.contains(t) { targets.append(t) }
        }
        guard !targets.isEmpty else { throw fail("`target_modules` must be a non-empty list of module names") }
        c.targets = LoRATarget.allCases.filter(targets.contains)
        if let s = selective {
            if let t = (s["threshold"] as? NSNumber)?.floatValue { c.threshold = t }
            if let i = (s["initial_score"] as? NSNumber)?.floatValue { c.initialScore = i }
        }
        let file = try SafeTensorsFile(path: dir.appendingPathComponent(weightsFile).path)
        // The names the file uses: the format of the model's family under which most block keys are in the file
        // (the first on a tie; the MLP's names are the same in several).
        func matches(_ f: WeightFormat) -> Int {
            (0..<model.numLayers).reduce(0) { n, l in
                n + c.targets.filter { t in
                    guard let p = try? t.modulePath(layer: l, format: f) else { return false }
                    return file.contains(peftKey(path: p, "A")) || file.contains(gateKey(path: p))
                }.count
            }
        }
        let counts = model.weightFormat.family.map { ($0, matches($0)) }
        let format = counts.reduce(counts[0]) { $1.1 > $0.1 ? $1 : $0 }.0
        let adapters = try LoRAAdapters(model: model, config: c, seed: seed, exportFormat: format)
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
