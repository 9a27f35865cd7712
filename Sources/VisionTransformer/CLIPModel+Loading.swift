import Foundation
import SafeTensors
import Tensors

/// What a CLIP checkpoint's tensors cannot say. nil = the next source: a Hugging Face `config.json` beside the
/// file (`vision_config` / `text_config`: `num_attention_heads`, `hidden_act`), then the safetensors metadata
/// (`vision_heads`, `text_heads`, `hidden_act`), then the OpenCLIP defaults: heads = width / 64 (every OpenCLIP
/// ViT's `head_width`) and QuickGELU (OpenAI's CLIP and every `openai/clip-vit-*` checkpoint; LAION-trained
/// OpenCLIP models use GELU — pass `activation: .gelu` for them).
public struct CLIPLoadOptions: Sendable {
    public var visionHeads: Int?
    public var textHeads: Int?
    public var activation: Activation?
    public init(visionHeads: Int? = nil, textHeads: Int? = nil, activation: Activation? = nil) {
        self.visionHeads = visionHeads; self.textHeads = textHeads; self.activation = activation
    }
}

/// A CLIP checkpoint opened for reading: the file in its format (``WeightReader``), and the settings resolved from
/// the options.
struct CLIPCheckpoint {
    let reader: WeightReader
    let options: CLIPLoadOptions
    let hfConfig: [String: Any]

    var file: SafeTensorsFile { reader.file }
    var names: WeightNames { reader.names }
    var prefix: String { reader.prefix }
    func fail(_ m: String) -> CheckpointError { reader.fail(m) }
    func shape(_ name: String) throws -> [Int] { try reader.shape(name) }
    func read(_ name: String, _ shape: [Int]) throws -> [Float] { try reader.read(name, shape) }

    /// A Hugging Face checkpoint's `config.json` beside the file is read when there is one.
    init(_ reader: WeightReader, options: CLIPLoadOptions) {
        self.reader = reader
        self.options = options
        let dir = URL(fileURLWithPath: reader.path).deletingLastPathComponent()
        var json: [String: Any] = [:]
        if reader.format == .huggingFaceCLIP,
           let data = FileManager.default.contents(atPath: dir.appendingPathComponent("config.json").path),
           let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
            json = obj
        }
        hfConfig = json
    }

    /// nil when the file is not a CLIP checkpoint at all.
    static func open(_ f: SafeTensorsFile, options: CLIPLoadOptions) -> CLIPCheckpoint? {
        WeightReader.detect(f, among: WeightFormat.allCases.filter(\.isCLIP)).map { CLIPCheckpoint($0, options: options) }
    }

    func subConfig(_ vision: Bool) -> [String: Any] {
        (hfConfig[vision ? "vision_config" : "text_config"] as? [String: Any]) ?? [:]
    }

    func heads(_ vision: Bool, width: Int) -> Int {
        if let h = vision ? options.visionHeads : options.textHeads { return h }
        if let h = subConfig(vision)["num_attention_heads"] as? Int { return h }
        if let s = file.metadata[vision ? "vision_heads" : "text_heads"], let h = Int(s) { return h }
        return max(1, width / 64)
    }

    /// LayerNorm eps: the metadata's `layer_norm_eps` / `text_layer_norm_eps` (written by ``CLIPModel/save(path:format:metadata:)``), else a
    /// Hugging Face config's, else 1e-5 (every CLIP's).
    func layerNormEps(_ vision: Bool) -> Float {
        if let s = file.metadata[vision ? "layer_norm_eps" : "text_layer_norm_eps"], let v = Float(s), v > 0 { return v }
        if let v = subConfig(vision)["layer_norm_eps"] as? Double, v > 0 { return Float(v) }
        return 1e-5
    }

    func activation(_ vision: Bool) throws -> Activation {
        if let a = options.activation { return a }
        for s in [subConfig(vision)["hidden_act"] as? String, file.metadata["hidden_act"]].compactMap({ $0 }) {
            guard let a = Activation(rawValue: s) else {
                throw fail("hidden_act `\(s)` is not supported; expected gelu or quick_gelu")
            }
            return a
        }
        return .quickGELU
    }

    // MARK: Towers

    func loadVision() throws -> ViTModel {
        let n = names, flip = n.projectionTransposed
        guard let projName = n.projection else { throw fail("\(reader.format) names have no image projection") }
        guard reader.contains(n.patchWeight) else {
            throw fail("no image tower: `\(prefix)\(n.patchWeight)` is missing (\(reader.format) names)")
        }
        let patch = try shape(n.patchWeight)
        guard patch.count == 4, patch[2] == patch[3], patch[2] > 0 else {
            throw fail("`\(prefix)\(n.patchWeight)` has shape \(patch); expected [width, channels, P, P]")
        }
        let d = patch[0]
        let pos = try shape(n.positions)
        let positions = pos.count == 2 && pos[1] == d ? pos[0] - 1 : -1
        let grid = Int(Double(max(positions, 0)).squareRoot().rounded())
        guard positions > 0, grid * grid == positions else {
            throw fail("`\(prefix)\(n.positions)` has shape \(pos); expected [1 + G·G, \(d)] (the width of \(n.patchWeight))")
        }
        let (layers, mlp) = try reader.stackShape(n.blocks, width: d, "image tower")
        let proj = try shape(projName)
        guard proj.count == 2, proj[flip ? 0 : 1] == d else {
            throw fail("`\(prefix)\(projName)` has shape \(proj); expected \(flip ? "[\(d), embed]" : "[embed, \(d)]")")
        }
        var config = ViTConfig.clipVision(width: d, layers: layers, heads: heads(true, width: d), mlp: mlp,
                                          patch: patch[2], grid: grid, projection: proj[flip ? 1 : 0],
                                          activation: try activation(true), format: reader.format)
        config.channels = patch[1]
        config.layerNormEps = layerNormEps(true)
        // Every OpenAI / OpenCLIP / HF tower has ln_pre; a tower converted from DINOv2 (`selora clip-compose`)
        // has none, since a LayerNorm cannot be made the identity.
        config.preNorm = n.preNorm.map { reader.contains("\($0).weight") } ?? false
        do { try config.validate() } catch { throw fail("image tower: \(error)") }
        try ViTModel.checkFileHolds(file, parameters: ViTParameterNames.layout(config).parameterCount, "an image tower \(config)")
        let model = try ViTModel(config: config)
        try reader.copyImageStem(into: model.params.store, config)
        try reader.copyBlocks(n.blocks, into: model.params.store, layers: layers, width: d)
        return model
    }

    func loadText(projection e: Int) throws -> CLIPTextModel {
        guard let n = names.text else { throw fail("\(reader.format) names have no text tower") }
        let flip = names.projectionTransposed
        guard reader.contains(n.tokenEmbedding) else {
            throw fail("no text tower: `\(prefix)\(n.tokenEmbedding)` is missing (\(reader.format) names); zero-shot heads "
                + "need both towers")
        }
        let tok = try shape(n.tokenEmbedding)
        guard tok.count == 2, tok[0] > 1, tok[1] > 0 else {
            throw fail("`\(prefix)\(n.tokenEmbedding)` has shape \(tok); expected [vocabulary, width]")
        }
        let d = tok[1]
        let pos = try shape(n.positions)
        guard pos.count == 2, pos[1] == d, pos[0] > 1 else {
            throw fail("`\(prefix)\(n.positions)` has shape \(pos); expected [context, \(d)] (the width of \(n.tokenEmbedding))")
        }
        let (layers, mlp) = try reader.stackShape(n.blocks, width: d, "text tower")
        let want = flip ? [d, e] : [e, d]
        let proj = try shape(n.projection)
        guard proj == want else {
            throw fail("`\(prefix)\(n.projection)` has shape \(proj); expected \(want): text width \(d) to the embedding "
                + "width \(e) of the image projection")
        }
        var config = CLIPTextConfig(width: d, layers: layers, heads: heads(false, width: d), mlp: mlp,
                                    vocabularySize: tok[0], contextLength: pos[0], projectionDim: e,
                                    activation: try activation(false), format: reader.format)
        config.stack.layerNormEps = layerNormEps(false)
        do { try config.validate() } catch { throw fail("text tower: \(error)") }
        try ViTModel.checkFileHolds(file, parameters: CLIPTextModel.layout(config).parameterCount
            + ViTParameterNames.layout(config.stack).parameterCount, "a text tower \(config)")
        let model = try CLIPTextModel(config: config)
        reader.put(model.params, "token_embedding", try read(n.tokenEmbedding, tok))
        reader.put(model.params, "positional_embedding", try read(n.positions, pos))
        let p = try read(n.projection, proj)
        reader.put(model.params, "text_projection", flip ? transposed(p, rows: d, cols: e) : p)
        let s = model.stack.params.store
        try reader.copyBlocks(n.blocks, into: s, layers: layers, width: d)
        reader.put(s, ViTParameterNames.finalNormWeight, try read("\(n.finalNorm).weight", [d]))
        reader.put(s, ViTParameterNames.finalNormBias, try read("\(n.finalNorm).bias", [d]))
        return model
    }

    func logitScale() throws -> Float {
        let info = try file.info(prefix + "logit_scale")
        guard info.elementCount == 1 else { throw fail("`logit_scale` has shape \(info.shape); expected a scalar") }
        let v = try file.floats(prefix + "logit_scale")[0]
        guard v.isFinite else { throw fail("`logit_scale` is \(v)") }
        return v
    }
}

extension CLIPModel {
    /// Loads both towers and the logit scale from an OpenCLIP or Hugging Face `CLIPModel` safetensors file (naming
    /// detected; shapes — B/32, B/16, L/14 or any other — inferred from the tensors; see ``CLIPLoadOptions`` for the
    /// head counts and the activation). `.bin` / `.pt` checkpoints: convert once with
    /// `tools/clip_to_safetensors.py` (README).
    public static func load(path: String, options: CLIPLoadOptions = .init()) throws -> CLIPModel {
        let f = try SafeTensorsFile(path: path)
        guard let ckpt = CLIPCheckpoint.open(f, options: options) else {
            throw CheckpointError(path: path, message: "not a CLIP checkpoint: found none of "
                + WeightFormat.probeList(WeightFormat.allCases.filter(\.isCLIP)) + "; first tensors: "
                + f.names.prefix(5).joined(separator: ", "))
        }
        let vision = try ckpt.loadVision()
        let text = try ckpt.loadText(projection: vision.config.projectionDim ?? 0)
        do {
            return try CLIPModel(vision: vision, text: text, logitScale: try ckpt.logitScale())
        } catch let e as ViTError {
            throw ckpt.fail("\(e)")
        }
    }

    /// Whether `path` holds a CLIP checkpoint (either naming), without reading any tensor data.
    public static func isCLIP(path: String) -> Bool {
        guard let f = try? SafeTensorsFile(path: path) else { return false }
        return CLIPCheckpoint.open(f, options: .init()) != nil
    }
}

extension ViTModel {
    /// The image tower of a CLIP checkpoint (either naming; see ``CLIPModel/load(path:options:)``).
    public static func loadCLIPVision(path: String, options: CLIPLoadOptions = .init()) throws -> ViTModel {
        let f = try SafeTensorsFile(path: path)
        guard let ckpt = CLIPCheckpoint.open(f, options: options) else {
            throw CheckpointError(path: path, message: "not a CLIP checkpoint: found none of "
                + WeightFormat.probeList(WeightFormat.allCases.filter(\.isCLIP)))
        }
        return try ckpt.loadVision()
    }
}

// MARK: Saving

extension CLIPModel {
    /// Writes both towers and the logit scale under `format`'s names (atomically; by default the image tower's
    /// ``ViTConfig/weightFormat``), the form ``load(path:options:)`` reads back; the head counts, activation and
    /// LayerNorm eps go into the metadata (`vision_heads`, `text_heads`, `hidden_act`, `layer_norm_eps`,
    /// `text_layer_norm_eps`), since tensor shapes cannot carry them. `format` must be a CLIP one
    /// (``WeightFormat/isCLIP``).
    public func save(path: String, format: WeightFormat? = nil, metadata: [String: String] = [:]) throws {
        var w = WeightWriter(format: format ?? vision.config.weightFormat)
        try w.addVision(vision)
        try w.addText(text)
        try w.add("logit_scale", [logitScale], [])
        try w.write(to: path, metadata: metadata)
    }
}
