import Foundation
import SafeTensors
import Tensors

/// Which naming scheme a CLIP checkpoint uses.
public enum CLIPNaming: String, Sendable {
    /// OpenCLIP `state_dict`: `visual.conv1.weight`, `visual.transformer.resblocks.N.attn.in_proj_weight` (q, k, v
    /// packed [3D, D]), `visual.proj` [D, E], `token_embedding.weight`, `text_projection` [D, E], `logit_scale`.
    case openCLIP = "open_clip"
    /// Hugging Face `CLIPModel`: `vision_model.encoder.layers.N.self_attn.q_proj.weight`, `visual_projection.weight`
    /// [E, D], `text_model.embeddings.token_embedding.weight`, `text_projection.weight` [E, D], `logit_scale`.
    case huggingFace = "hf"

    var moduleNames: ModuleNames { self == .openCLIP ? .openCLIP : .huggingFaceCLIP }

    /// The naming a CLIP tower's module names come from (OpenCLIP unless they are Hugging Face's).
    public init(_ names: ModuleNames) { self = names == .huggingFaceCLIP ? .huggingFace : .openCLIP }
}

/// [rows, cols] → [cols, rows]: OpenCLIP stores its projections as `x @ proj` ([in, out]), the layout as Linear
/// weights ([out, in]).
func transposed(_ x: [Float], rows: Int, cols: Int) -> [Float] {
    var y = [Float](repeating: 0, count: x.count)
    for r in 0..<rows { for c in 0..<cols { y[c * rows + r] = x[r * cols + c] } }
    return y
}

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

/// A CLIP checkpoint opened for reading: the file, its naming, and the settings resolved from the options.
struct CLIPCheckpoint {
    let file: SafeTensorsFile
    let naming: CLIPNaming
    let prefix: String
    let options: CLIPLoadOptions
    let hfConfig: [String: Any]

    var path: String { file.path }
    func fail(_ m: String) -> CheckpointError { CheckpointError(path: file.path, message: m) }

    /// nil when the file is not a CLIP checkpoint at all.
    static func open(_ f: SafeTensorsFile, options: CLIPLoadOptions) -> CLIPCheckpoint? {
        for prefix in ["", "module.", "model.", "clip."] {
            for (naming, probe) in [(CLIPNaming.openCLIP, "visual.conv1.weight"), (.openCLIP, "token_embedding.weight"),
                                    (.huggingFace, "vision_model.embeddings.patch_embedding.weight"),
                                    (.huggingFace, "text_model.embeddings.token_embedding.weight")]
            where f.contains(prefix + probe) {
                let dir = URL(fileURLWithPath: f.path).deletingLastPathComponent()
                var json: [String: Any] = [:]
                if naming == .huggingFace, let data = FileManager.default.contents(atPath: dir.appendingPathComponent("config.json").path),
                   let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
                    json = obj
                }
                return CLIPCheckpoint(file: f, naming: naming, prefix: prefix, options: options, hfConfig: json)
            }
        }
        return nil
    }

    func shape(_ name: String) throws -> [Int] { try file.info(prefix + name).shape }
    /// The tensor's values, checked: the expected shape, and finite (a NaN or Inf weight is a broken checkpoint).
    func read(_ name: String, _ shape: [Int]) throws -> [Float] {
        let v = try file.floats(prefix + name, expectShape: shape)
        if let i = v.firstIndex(where: { !$0.isFinite }) { throw fail("`\(prefix)\(name)` holds \(v[i]) at element \(i)") }
        return v
    }

    /// Names of one tower (`vision` or `text`) in this layout.
    struct Tower {
        let blocks: String      // prefix of block N's tensors is blocks + "N."
        let firstNorm: String   // the suffix whose presence counts the blocks
    }

    func tower(_ vision: Bool) -> Tower {
        switch naming {
        case .openCLIP: return Tower(blocks: vision ? "visual.transformer.resblocks." : "transformer.resblocks.", firstNorm: "ln_1.weight")
        case .huggingFace: return Tower(blocks: vision ? "vision_model.encoder.layers." : "text_model.encoder.layers.",
                                        firstNorm: "layer_norm1.weight")
        }
    }

    func countBlocks(_ t: Tower) -> Int {
        var n = 0
        while file.contains("\(prefix)\(t.blocks)\(n).\(t.firstNorm)") { n += 1 }
        return n
    }

    /// The MLP's first Linear weight, inside a block (its shape gives the MLP width).
    var mlpInName: String { naming == .openCLIP ? "mlp.c_fc.weight" : "mlp.fc1.weight" }

    func subConfig(_ vision: Bool) -> [String: Any] {
        (hfConfig[vision ? "vision_config" : "text_config"] as? [String: Any]) ?? [:]
    }

    func heads(_ vision: Bool, width: Int) -> Int {
        if let h = vision ? options.visionHeads : options.textHeads { return h }
        if let h = subConfig(vision)["num_attention_heads"] as? Int { return h }
        if let s = file.metadata[vision ? "vision_heads" : "text_heads"], let h = Int(s) { return h }
        return max(1, width / 64)
    }

    /// LayerNorm eps: the metadata's `layer_norm_eps` / `text_layer_norm_eps` (written by ``CLIPModel/save(path:naming:metadata:)``), else a
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

    /// Block l's query, key and value weights and biases, from OpenCLIP's packed `in_proj` (shapes checked first, so a
    /// wrong size names the packed tensor) or Hugging Face's separate `q_proj` / `k_proj` / `v_proj`.
    func qkv(_ t: Tower, layer l: Int, width d: Int) throws -> (w: [[Float]], b: [[Float]]) {
        let p = "\(t.blocks)\(l)."
        switch naming {
        case .openCLIP:
            for (name, want) in [("attn.in_proj_weight", [3 * d, d]), ("attn.in_proj_bias", [3 * d])] {
                let s = try shape(p + name)
                guard s == want else {
                    throw fail("`\(prefix)\(p)\(name)` has shape \(s); expected \(want): q, k and v of width \(d) "
                        + "packed along the first axis (the width comes from the tower's embeddings)")
                }
            }
            let w = try read(p + "attn.in_proj_weight", [3 * d, d]), b = try read(p + "attn.in_proj_bias", [3 * d])
            return ((0..<3).map { Array(w[($0 * d * d)..<(($0 + 1) * d * d)]) }, (0..<3).map { Array(b[($0 * d)..<(($0 + 1) * d)]) })
        case .huggingFace:
            return (try ["q", "k", "v"].map { try read("\(p)self_attn.\($0)_proj.weight", [d, d]) },
                    try ["q", "k", "v"].map { try read("\(p)self_attn.\($0)_proj.bias", [d]) })
        }
    }

    var blockPairs: [(String, String)] { Self.blockPairs(naming) }

    /// (internal suffix, checkpoint suffix) of the block tensors other than q/k/v.
    static func blockPairs(_ naming: CLIPNaming) -> [(String, String)] {
        let oc = naming == .openCLIP
        return [("norm1.weight", oc ? "ln_1.weight" : "layer_norm1.weight"), ("norm1.bias", oc ? "ln_1.bias" : "layer_norm1.bias"),
                ("attention.output.dense.weight", oc ? "attn.out_proj.weight" : "self_attn.out_proj.weight"),
                ("attention.output.dense.bias", oc ? "attn.out_proj.bias" : "self_attn.out_proj.bias"),
                ("norm2.weight", oc ? "ln_2.weight" : "layer_norm2.weight"), ("norm2.bias", oc ? "ln_2.bias" : "layer_norm2.bias"),
                ("mlp.fc1.weight", oc ? "mlp.c_fc.weight" : "mlp.fc1.weight"), ("mlp.fc1.bias", oc ? "mlp.c_fc.bias" : "mlp.fc1.bias"),
                ("mlp.fc2.weight", oc ? "mlp.c_proj.weight" : "mlp.fc2.weight"), ("mlp.fc2.bias", oc ? "mlp.c_proj.bias" : "mlp.fc2.bias")]
    }

    /// Copies every block of a tower into `store` (internal names), checking each shape.
    func copyBlocks(_ t: Tower, into store: TensorStore, layers: Int, width d: Int) throws {
        for l in 0..<layers {
            let h = "\(ViTParameterNames.block(l)).attention.attention."
            let (w, b) = try qkv(t, layer: l, width: d)
            for (i, which) in ["query", "key", "value"].enumerated() {
                put(store, "\(h)\(which).weight", w[i]); put(store, "\(h)\(which).bias", b[i])
            }
            for (mine, theirs) in blockPairs {
                let name = "\(ViTParameterNames.block(l)).\(mine)"
                guard let e = store.layout.entry(name) else { continue }
                put(store, name, try read("\(t.blocks)\(l).\(theirs)", e.shape))
            }
        }
    }

    func put(_ store: TensorStore, _ name: String, _ values: [Float]) {
        let dst = store.buffer(name)
        precondition(values.count == dst.count, "CLIP loader: \(name) size")
        _ = dst.update(fromContentsOf: values)
    }

    // MARK: Towers

    func loadVision() throws -> ViTModel {
        let oc = naming == .openCLIP
        let conv = oc ? "visual.conv1.weight" : "vision_model.embeddings.patch_embedding.weight"
        let clsName = oc ? "visual.class_embedding" : "vision_model.embeddings.class_embedding"
        let posName = oc ? "visual.positional_embedding" : "vision_model.embeddings.position_embedding.weight"
        let projName = oc ? "visual.proj" : "visual_projection.weight"
        guard file.contains(prefix + conv) else {
            throw fail("no image tower: `\(prefix)\(conv)` is missing (\(naming == .openCLIP ? "OpenCLIP" : "Hugging Face CLIPModel") names)")
        }
        let patch = try shape(conv)
        guard patch.count == 4, patch[2] == patch[3], patch[2] > 0 else {
            throw fail("`\(prefix)\(conv)` has shape \(patch); expected [width, channels, P, P]")
        }
        let d = patch[0]
        let pos = try shape(posName)
        let positions = pos.count == 2 && pos[1] == d ? pos[0] - 1 : -1
        let grid = Int(Double(max(positions, 0)).squareRoot().rounded())
        guard positions > 0, grid * grid == positions else {
            throw fail("`\(prefix)\(posName)` has shape \(pos); expected [1 + G·G, \(d)] (the width of \(conv))")
        }
        let t = tower(true)
        let layers = countBlocks(t)
        guard layers > 0 else { throw fail("image tower has no blocks: `\(prefix)\(t.blocks)0.\(t.firstNorm)` is missing") }
        let fc1 = try shape("\(t.blocks)0.\(mlpInName)")
        guard fc1.count == 2, fc1[1] == d else {
            throw fail("`\(prefix)\(t.blocks)0.\(mlpInName)` has shape \(fc1); expected [mlp, \(d)]")
        }
        let proj = try shape(projName)
        guard proj.count == 2, proj[oc ? 0 : 1] == d else {
            throw fail("`\(prefix)\(projName)` has shape \(proj); expected \(oc ? "[\(d), embed]" : "[embed, \(d)]")")
        }
        let e = proj[oc ? 1 : 0]
        var config = ViTConfig.clipVision(width: d, layers: layers, heads: heads(true, width: d), mlp: fc1[0],
                                          patch: patch[2], grid: grid, projection: e,
                                          activation: try activation(true), moduleNames: naming.moduleNames)
        config.channels = patch[1]
        config.layerNormEps = layerNormEps(true)
        // Every OpenAI / OpenCLIP / HF tower has ln_pre; a tower converted from DINOv2 (`selora clip-compose`)
        // has none, since a LayerNorm cannot be made the identity.
        config.preNorm = file.contains(prefix + (oc ? "visual.ln_pre.weight" : "vision_model.pre_layrnorm.weight"))
        do { try config.validate() } catch { throw fail("image tower: \(error)") }
        try ViTModel.checkFileHolds(file, parameters: ViTParameterNames.layout(config).parameterCount, "an image tower \(config)")
        let model = try ViTModel(config: config)
        let s = model.params.store
        typealias N = ViTParameterNames
        put(s, N.patchWeight, try read(conv, [d, patch[1], patch[2], patch[3]]))
        put(s, N.clsToken, try read(clsName, [d]))
        put(s, N.positions, try read(posName, [1 + grid * grid, d]))
        for (mine, theirs) in [(N.preNormWeight, oc ? "visual.ln_pre.weight" : "vision_model.pre_layrnorm.weight"),
                               (N.preNormBias, oc ? "visual.ln_pre.bias" : "vision_model.pre_layrnorm.bias"),
                               (N.finalNormWeight, oc ? "visual.ln_post.weight" : "vision_model.post_layernorm.weight"),
                               (N.finalNormBias, oc ? "visual.ln_post.bias" : "vision_model.post_layernorm.bias")]
        where s.layout.entry(mine) != nil {
            put(s, mine, try read(theirs, [d]))
        }
        try copyBlocks(t, into: s, layers: layers, width: d)
        let p = try read(projName, proj)
        put(s, N.projection, oc ? transposed(p, rows: d, cols: e) : p)
        return model
    }

    func loadText(projection e: Int) throws -> CLIPTextModel {
        let oc = naming == .openCLIP
        let tokName = oc ? "token_embedding.weight" : "text_model.embeddings.token_embedding.weight"
        let posName = oc ? "positional_embedding" : "text_model.embeddings.position_embedding.weight"
        let projName = oc ? "text_projection" : "text_projection.weight"
        guard file.contains(prefix + tokName) else {
            throw fail("no text tower: `\(prefix)\(tokName)` is missing (\(naming == .openCLIP ? "OpenCLIP" : "Hugging Face CLIPModel") "
                + "names); zero-shot heads need both towers")
        }
        let tok = try shape(tokName)
        guard tok.count == 2, tok[0] > 1, tok[1] > 0 else {
            throw fail("`\(prefix)\(tokName)` has shape \(tok); expected [vocabulary, width]")
        }
        let d = tok[1]
        let pos = try shape(posName)
        guard pos.count == 2, pos[1] == d, pos[0] > 1 else {
            throw fail("`\(prefix)\(posName)` has shape \(pos); expected [context, \(d)] (the width of \(tokName))")
        }
        let t = tower(false)
        let layers = countBlocks(t)
        guard layers > 0 else { throw fail("text tower has no blocks: `\(prefix)\(t.blocks)0.\(t.firstNorm)` is missing") }
        let fc1 = try shape("\(t.blocks)0.\(mlpInName)")
        guard fc1.count == 2, fc1[1] == d else {
            throw fail("`\(prefix)\(t.blocks)0.\(mlpInName)` has shape \(fc1); expected [mlp, \(d)]")
        }
        let want = oc ? [d, e] : [e, d]
        let proj = try shape(projName)
        guard proj == want else {
            throw fail("`\(prefix)\(projName)` has shape \(proj); expected \(want): text width \(d) to the embedding "
                + "width \(e) of the image projection")
        }
        var config = CLIPTextConfig(width: d, layers: layers, heads: heads(false, width: d), mlp: fc1[0],
                                    vocabularySize: tok[0], contextLength: pos[0], projectionDim: e,
                                    activation: try activation(false), moduleNames: naming.moduleNames)
        config.stack.layerNormEps = layerNormEps(false)
        do { try config.validate() } catch { throw fail("text tower: \(error)") }
        try ViTModel.checkFileHolds(file, parameters: CLIPTextModel.layout(config).parameterCount
            + ViTParameterNames.layout(config.stack).parameterCount, "a text tower \(config)")
        let model = try CLIPTextModel(config: config)
        put(model.params, "token_embedding", try read(tokName, tok))
        put(model.params, "positional_embedding", try read(posName, pos))
        let p = try read(projName, proj)
        put(model.params, "text_projection", oc ? transposed(p, rows: d, cols: e) : p)
        let s = model.stack.params.store
        try copyBlocks(t, into: s, layers: layers, width: d)
        for (mine, theirs) in [(ViTParameterNames.finalNormWeight, oc ? "ln_final.weight" : "text_model.final_layer_norm.weight"),
                               (ViTParameterNames.finalNormBias, oc ? "ln_final.bias" : "text_model.final_layer_norm.bias")] {
            put(s, mine, try read(theirs, [d]))
        }
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
            throw CheckpointError(path: path, message: "not a CLIP checkpoint: found none of `visual.conv1.weight`, "
                + "`token_embedding.weight` (OpenCLIP) or `vision_model.embeddings.patch_embedding.weight`, "
                + "`text_model.embeddings.token_embedding.weight` (Hugging Face CLIPModel); first tensors: "
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
            throw CheckpointError(path: path, message: "not a CLIP checkpoint (no OpenCLIP or Hugging Face CLIP names)")
        }
        return try ckpt.loadVision()
    }
}

// MARK: Saving

/// Writes CLIP towers under OpenCLIP or Hugging Face names: the inverse of ``CLIPCheckpoint``'s reading.
struct CLIPWriter {
    let naming: CLIPNaming
    var w = SafeTensorsWriter()
    var meta: [String: String] = ["format": "pt"]
    var oc: Bool { naming == .openCLIP }

    init(naming: CLIPNaming) { self.naming = naming }

    mutating func add(_ name: String, _ values: [Float], _ shape: [Int]) throws { try w.add(name, floats: values, shape: shape) }
    func tensor(_ s: TensorStore, _ name: String) -> [Float] { Array(s.buffer(name)) }

    mutating func addVision(_ vision: ViTModel) throws {
        typealias N = ViTParameterNames
        let v = vision.config, d = v.hiddenSize, vs = vision.params.store
        guard let e = v.projectionDim else { throw ViTError.invalidConfig("not a CLIP image tower (no projection): \(v)") }
        try add(oc ? "visual.conv1.weight" : "vision_model.embeddings.patch_embedding.weight", tensor(vs, N.patchWeight),
                [d, v.channels, v.patchSize, v.patchSize])
        try add(oc ? "visual.class_embedding" : "vision_model.embeddings.class_embedding", tensor(vs, N.clsToken), [d])
        try add(oc ? "visual.positional_embedding" : "vision_model.embeddings.position_embedding.weight",
                tensor(vs, N.positions), [1 + v.positionGrid * v.positionGrid, d])
        for (mine, oc1, hf) in [(N.preNormWeight, "visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"),
                                (N.preNormBias, "visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"),
                                (N.finalNormWeight, "visual.ln_post.weight", "vision_model.post_layernorm.weight"),
                                (N.finalNormBias, "visual.ln_post.bias", "vision_model.post_layernorm.bias")]
        where vs.layout.entry(mine) != nil {
            try add(oc ? oc1 : hf, tensor(vs, mine), [d])
        }
        let proj = tensor(vs, N.projection)
        try add(oc ? "visual.proj" : "visual_projection.weight", oc ? transposed(proj, rows: e, cols: d) : proj,
                oc ? [d, e] : [e, d])
        try addBlocks(vs, v.stack, prefix: oc ? "visual.transformer.resblocks." : "vision_model.encoder.layers.")
        meta["vision_heads"] = String(v.numHeads)
        meta["hidden_act"] = v.activation.rawValue
        meta["layer_norm_eps"] = String(v.layerNormEps)
    }

    mutating func addText(_ text: CLIPTextModel) throws {
        typealias N = ViTParameterNames
        let t = text.config, dt = t.width, e = t.projectionDim
        try add(oc ? "token_embedding.weight" : "text_model.embeddings.token_embedding.weight",
                tensor(text.params, "token_embedding"), [t.vocabularySize, dt])
        try add(oc ? "positional_embedding" : "text_model.embeddings.position_embedding.weight",
                tensor(text.params, "positional_embedding"), [t.contextLength, dt])
        let tp = tensor(text.params, "text_projection")
        try add(oc ? "text_projection" : "text_projection.weight", oc ? transposed(tp, rows: e, cols: dt) : tp,
                oc ? [dt, e] : [e, dt])
        let ts = text.stack.params.store
        try add(oc ? "ln_final.weight" : "text_model.final_layer_norm.weight", tensor(ts, N.finalNormWeight), [dt])
        try add(oc ? "ln_final.bias" : "text_model.final_layer_norm.bias", tensor(ts, N.finalNormBias), [dt])
        try addBlocks(ts, t.stack, prefix: oc ? "transformer.resblocks." : "text_model.encoder.layers.")
        meta["text_heads"] = String(t.stack.numHeads)
        meta["text_layer_norm_eps"] = String(t.stack.layerNormEps)
    }

    mutating func addBlocks(_ store: TensorStore, _ c: TransformerConfig, prefix blocks: String) throws {
        typealias N = ViTParameterNames
        let w = c.hiddenSize
        for l in 0..<c.numLayers {
            let h = "\(N.block(l)).attention.attention."
            if oc {
                try add("\(blocks)\(l).attn.in_proj_weight", tensor(store, "\(h)query.weight") + tensor(store, "\(h)key.weight")
                    + tensor(store, "\(h)value.weight"), [3 * w, w])
                try add("\(blocks)\(l).attn.in_proj_bias", tensor(store, "\(h)query.bias") + tensor(store, "\(h)key.bias")
                    + tensor(store, "\(h)value.bias"), [3 * w])
            } else {
                for (mine, theirs) in [("query", "q"), ("key", "k"), ("value", "v")] {
                    try add("\(blocks)\(l).self_attn.\(theirs)_proj.weight", tensor(store, "\(h)\(mine).weight"), [w, w])
                    try add("\(blocks)\(l).self_attn.\(theirs)_proj.bias", tensor(store, "\(h)\(mine).bias"), [w])
                }
            }
            for (mine, theirs) in CLIPCheckpoint.blockPairs(naming) {
                let name = "\(N.block(l)).\(mine)"
                guard let entry = store.layout.entry(name) else { continue }
                try add("\(blocks)\(l).\(theirs)", tensor(store, name), entry.shape)
            }
        }
    }

    func write(to path: String, metadata: [String: String]) throws {
        try w.write(to: path, metadata: meta.merging(metadata) { _, extra in extra })
    }
}

extension CLIPModel {
    /// Writes both towers and the logit scale under `naming`'s names (atomically), the form ``load(path:options:)``
    /// reads back; the head counts, activation and LayerNorm eps go into the metadata (`vision_heads`,
    /// `text_heads`, `hidden_act`, `layer_norm_eps`, `text_layer_norm_eps`), since tensor shapes cannot carry them.
    public func save(path: String, naming: CLIPNaming, metadata: [String: String] = [:]) throws {
        var w = CLIPWriter(naming: naming)
        try w.addVision(vision)
        try w.addText(text)
        try w.add("logit_scale", [logitScale], [])
        try w.write(to: path, metadata: metadata)
    }
}
