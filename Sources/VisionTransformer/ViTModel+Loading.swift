import SafeTensors
import Tensors

/// Which naming scheme a checkpoint uses.
public enum CheckpointNaming: String, Sendable {
    /// Hugging Face `Dinov2Model`: `embeddings.cls_token`, `encoder.layer.N.attention.attention.query.weight`, …
    case huggingFace = "hf"
    /// timm / original DINOv2: `cls_token`, `pos_embed`, `blocks.N.attn.qkv.weight` (q, k, v stacked), `ls1.gamma`, …
    case timm
}

/// Errors from reading a checkpoint: each names the file and what was expected.
public struct CheckpointError: Error, CustomStringConvertible {
    public let path: String
    public let message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }
}

extension ViTModel {
    /// Loads a ViT checkpoint from safetensors in Hugging Face `Dinov2Model` or timm / DINOv2 naming (detected,
    /// with an optional prefix such as `dinov2.`, `backbone.` or `module.`), inferring the shape from the tensors.
    ///
    /// The head count cannot be read off tensor shapes: it comes from `numHeads`, else the file's metadata
    /// `num_attention_heads`, else hidden / 64 (true for every DINOv2, DeiT and ViT-S/B/L). LayerNorm eps comes
    /// from metadata `layer_norm_eps`, else 1e-6 (DINOv2's and timm's). A timm model without LayerScale (DeiT)
    /// gets LayerScale 1. A CLIP checkpoint (OpenCLIP or Hugging Face `CLIPModel` names) gives its image tower,
    /// with `activation` (see ``CLIPLoadOptions``).
    public static func load(path: String, numHeads: Int? = nil, activation: Activation? = nil) throws -> ViTModel {
        let file = try SafeTensorsFile(path: path)
        if let clip = CLIPCheckpoint.open(file, options: CLIPLoadOptions(visionHeads: numHeads, activation: activation)) {
            return try clip.loadVision()
        }
        let (naming, prefix) = try detectNaming(file)
        let config = try inferConfig(file, naming: naming, prefix: prefix, numHeads: numHeads)
        try checkFileHolds(file, parameters: ViTParameterNames.layout(config).parameterCount, "a \(config)")
        let model = try ViTModel(config: config)
        try model.copyWeights(from: file, naming: naming, prefix: prefix)
        return model
    }

    /// Refuses, before anything is allocated, a model shape whose parameters the file cannot hold: every parameter
    /// is read from the file at 2 bytes or more (F16/BF16), so a header that counts layers or widths from tiny
    /// tensors cannot make the loader allocate gigabytes.
    static func checkFileHolds(_ f: SafeTensorsFile, parameters: Int, _ what: String) throws {
        let bytes = f.tensors.reduce(0) { $0 + $1.byteRange.count }
        guard parameters.multipliedReportingOverflow(by: 2).partialValue <= bytes, parameters < Int.max / 4 else {
            throw CheckpointError(path: f.path, message: "\(what) has \(parameters) parameters, but the file holds only "
                + "\(bytes) bytes of tensor data: the tensors' shapes are inconsistent")
        }
    }

    static func detectNaming(_ f: SafeTensorsFile) throws -> (CheckpointNaming, String) {
        for prefix in ["", "dinov2.", "backbone.", "model.", "module.", "vit.", "encoder."] {
            if f.contains(prefix + "embeddings.cls_token") { return (.huggingFace, prefix) }
            if f.contains(prefix + "cls_token") && f.contains(prefix + "blocks.0.norm1.weight") { return (.timm, prefix) }
        }
        throw CheckpointError(path: f.path, message: "not a ViT checkpoint: found neither `embeddings.cls_token` "
            + "(Hugging Face Dinov2Model names) nor `cls_token` + `blocks.0.norm1.weight` (timm / DINOv2 names); "
            + "first tensors: \(f.names.prefix(5).joined(separator: ", "))")
    }

    static func inferConfig(_ f: SafeTensorsFile, naming: CheckpointNaming, prefix: String,
                            numHeads: Int?) throws -> ViTConfig {
        func shape(_ name: String) throws -> [Int] { try f.info(prefix + name).shape }
        let hf = naming == .huggingFace
        let cls = try shape(hf ? "embeddings.cls_token" : "cls_token")
        let patch = try shape(hf ? "embeddings.patch_embeddings.projection.weight" : "patch_embed.proj.weight")
        let pos = try shape(hf ? "embeddings.position_embeddings" : "pos_embed")
        let blockName = hf ? "encoder.layer." : "blocks."
        var layers = 0
        while f.contains("\(prefix)\(blockName)\(layers).norm1.weight") { layers += 1 }
        let fc1 = try shape("\(blockName)0.mlp.fc1.weight")
        guard let d = cls.last, cls.reduce(1, *) == d else {
            throw CheckpointError(path: f.path, message: "class token has shape \(cls); expected [1, 1, hidden]")
        }
        guard patch.count == 4, patch[0] == d, patch[2] == patch[3] else {
            throw CheckpointError(path: f.path, message: "patch projection has shape \(patch); expected [\(d), C, P, P]")
        }
        let positions = pos.count == 3 && pos[0] == 1 && pos[2] == d ? pos[1] - 1 : -1
        let grid = Int(Double(max(positions, 0)).squareRoot().rounded())
        guard positions > 0, grid * grid == positions else {
            throw CheckpointError(path: f.path, message: "position embeddings have shape \(pos); expected "
                + "[1, 1 + G·G, \(d)] (a class position plus a square grid)")
        }
        guard fc1.count == 2, fc1[1] == d else {
            throw CheckpointError(path: f.path, message: "mlp.fc1.weight has shape \(fc1); expected [mlp, \(d)]")
        }
        var heads = d / 64
        if let n = f.metadata["num_attention_heads"], let v = Int(n) { heads = v }
        if let numHeads { heads = numHeads }
        var eps: Float = 1e-6
        if let e = f.metadata["layer_norm_eps"], let v = Float(e) { eps = v }
        let config = ViTConfig(hiddenSize: d, numLayers: layers, numHeads: max(heads, 1), mlpSize: fc1[0],
                               patchSize: patch[2], channels: patch[1], positionGrid: grid, layerNormEps: eps)
        do { try config.validate() } catch {
            throw CheckpointError(path: f.path, message: "\(error)")
        }
        return config
    }

    /// Copies every tensor of the layout from the file, checking each shape; fails naming the first tensor that
    /// is missing or mis-shaped.
    func copyWeights(from f: SafeTensorsFile, naming: CheckpointNaming, prefix: String) throws {
        let store = params.store
        func put(_ name: String, _ values: [Float]) {
            let dst = store.buffer(name)
            precondition(values.count == dst.count)
            _ = dst.update(fromContentsOf: values)
        }
        // SafeTensorsError already names the file, the tensor, and what was expected.
        func read(_ name: String, _ shape: [Int]) throws -> [Float] {
            let v = try f.floats(prefix + name, expectShape: shape)
            if let i = v.firstIndex(where: { !$0.isFinite }) {
                throw CheckpointError(path: f.path, message: "`\(prefix)\(name)` holds \(v[i]) at element \(i)")
            }
            return v
        }
        switch naming {
        case .huggingFace:
            for e in store.layout.entries { put(e.name, try read(e.name, e.shape)) }
        case .timm:
            let c = config, d = c.hiddenSize
            typealias N = ViTParameterNames
            put(N.patchWeight, try read("patch_embed.proj.weight", [d, c.channels, c.patchSize, c.patchSize]))
            put(N.patchBias, try read("patch_embed.proj.bias", [d]))
            put(N.clsToken, try read("cls_token", [1, 1, d]))
            put(N.positions, try read("pos_embed", [1, 1 + c.positionGrid * c.positionGrid, d]))
            for l in 0..<c.numLayers {
                let t = "blocks.\(l).", h = "\(N.block(l))."
                for (timm, hf) in [("norm1", "norm1"), ("norm2", "norm2"), ("attn.proj", "attention.output.dense"),
                                   ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")] {
                    for part in ["weight", "bias"] {
                        let name = "\(h)\(hf).\(part)"
                        guard let e = store.layout.entry(name) else { continue }
                        put(name, try read("\(t)\(timm).\(part)", e.shape))
                    }
                }
                let qkvW = try read("\(t)attn.qkv.weight", [3 * d, d])
                let qkvB = try read("\(t)attn.qkv.bias", [3 * d])
                for (i, which) in ["query", "key", "value"].enumerated() {
                    put("\(h)attention.attention.\(which).weight", Array(qkvW[(i * d * d)..<((i + 1) * d * d)]))
                    put("\(h)attention.attention.\(which).bias", Array(qkvB[(i * d)..<((i + 1) * d)]))
                }
                for (timm, hf) in [("ls1.gamma", "layer_scale1.lambda1"), ("ls2.gamma", "layer_scale2.lambda1")] {
                    put(h + hf, f.contains(prefix + t + timm) ? try read(t + timm, [d]) : [Float](repeating: 1, count: d))
                }
            }
            put(N.finalNormWeight, try read("norm.weight", [d]))
            put(N.finalNormBias, try read("norm.bias", [d]))
        }
    }

    /// Writes the parameters under Hugging Face `Dinov2Model` names (atomically); a CLIP image tower under its own
    /// OpenCLIP / Hugging Face CLIP names (image tower only: ``load(path:numHeads:activation:)`` reads it back; a
    /// whole CLIP model is saved by ``CLIPModel/save(path:naming:metadata:)``).
    public func save(path: String, metadata: [String: String] = [:]) throws {
        if config.projectionDim != nil {
            var w = CLIPWriter(naming: CLIPNaming(config.moduleNames))
            try w.addVision(self)
            try w.write(to: path, metadata: metadata)
            return
        }
        var w = SafeTensorsWriter()
        for e in params.store.layout.entries {
            try w.add(e.name, floats: Array(params.store.buffer(e.name)), shape: e.shape)
        }
        var meta = metadata
        meta["format"] = "pt"
        meta["num_attention_heads"] = String(config.numHeads)
        meta["layer_norm_eps"] = String(config.layerNormEps)
        try w.write(to: path, metadata: meta)
    }
}
