import SafeTensors
import Tensors

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
    /// Loads a ViT checkpoint from safetensors in any ``WeightFormat`` (detected, with an optional prefix such as
    /// `dinov2.`, `backbone.` or `module.`), inferring the shape from the tensors.
    ///
    /// DINOv2 formats (transformers 5 or 4 `Dinov2Model` names, timm): the head count cannot be read off tensor
    /// shapes: it comes from `numHeads`, else the file's metadata `num_attention_heads`, else hidden / 64 (true for
    /// every DINOv2, DeiT and ViT-S/B/L). LayerNorm eps comes from metadata `layer_norm_eps`, else 1e-6 (DINOv2's
    /// and timm's). A timm model without LayerScale (DeiT) gets LayerScale 1. The model's
    /// ``ViTConfig/weightFormat`` is ``WeightFormat/transformers5`` whichever DINOv2 names the file used.
    /// A CLIP checkpoint (OpenCLIP or Hugging Face `CLIPModel` names) gives its image tower, with `activation`
    /// (see ``CLIPLoadOptions``), and keeps its format.
    public static func load(path: String, numHeads: Int? = nil, activation: Activation? = nil) throws -> ViTModel {
        let file = try SafeTensorsFile(path: path)
        // CLIP first (under any prefix), so that this agrees with CLIPModel.isCLIP(path:) on every file.
        guard let reader = CLIPCheckpoint.open(file, options: .init())?.reader ?? WeightReader.detect(file) else {
            throw CheckpointError(path: file.path, message: "not a ViT checkpoint: found none of "
                + WeightFormat.probeList(WeightFormat.allCases) + "; first tensors: \(file.names.prefix(5).joined(separator: ", "))")
        }
        if reader.format.isCLIP {
            return try CLIPCheckpoint(reader, options: CLIPLoadOptions(visionHeads: numHeads, activation: activation)).loadVision()
        }
        let config = try inferConfig(reader, numHeads: numHeads)
        try checkFileHolds(file, parameters: ViTParameterNames.layout(config).parameterCount, "a \(config)")
        let model = try ViTModel(config: config)
        try reader.copyImageStem(into: model.params.store, config)
        try reader.copyBlocks(reader.names.blocks, into: model.params.store, layers: config.numLayers, width: config.hiddenSize)
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

    static func inferConfig(_ r: WeightReader, numHeads: Int?) throws -> ViTConfig {
        let f = r.file, n = r.names
        let cls = try r.shape(n.classToken)
        let patch = try r.shape(n.patchWeight)
        let pos = try r.shape(n.positions)
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
        let (layers, mlp) = try r.stackShape(n.blocks, width: d, "the model")
        var heads = d / 64
        if let n = f.metadata["num_attention_heads"], let v = Int(n) { heads = v }
        if let numHeads { heads = numHeads }
        var eps: Float = 1e-6
        if let e = f.metadata["layer_norm_eps"], let v = Float(e) { eps = v }
        let config = ViTConfig(hiddenSize: d, numLayers: layers, numHeads: max(heads, 1), mlpSize: mlp,
                               patchSize: patch[2], channels: patch[1], positionGrid: grid, layerNormEps: eps)
        do { try config.validate() } catch {
            throw CheckpointError(path: f.path, message: "\(error)")
        }
        return config
    }

    /// Writes the parameters (atomically) under `format`'s names, by default ``ViTConfig/weightFormat``'s
    /// (transformers-5 `Dinov2Model` names for a DINOv2 model, its own OpenCLIP / Hugging Face CLIP names for a CLIP
    /// image tower: the image tower only, which ``load(path:numHeads:activation:)`` reads back; a whole CLIP model is
    /// saved by ``CLIPModel/save(path:format:metadata:)``). The head count and LayerNorm eps go into the metadata.
    /// Throws ``ViTError/invalidConfig(_:)`` when the format has no name for one of the model's tensors (a DINOv2
    /// model in a CLIP format, or the reverse).
    public func save(path: String, format: WeightFormat? = nil, metadata: [String: String] = [:]) throws {
        var w = WeightWriter(format: format ?? config.weightFormat)
        try w.addVision(self)
        try w.write(to: path, metadata: metadata)
    }
}
