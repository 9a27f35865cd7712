import Tensors

/// Shape of CLIP's text tower: token and position embeddings, a causal pre-norm block stack with `ln_final`, the
/// end-of-text token's feature, and `text_projection`.
public struct CLIPTextConfig: Equatable, Codable, CustomStringConvertible {
    /// The block stack: causal, no LayerScale, LayerNorm eps 1e-5 (as the initializer sets it).
    public var stack: TransformerConfig
    public var vocabularySize: Int
    /// Positions of the position embedding: the most tokens a text can have (77 for every CLIP).
    public var contextLength: Int
    public var projectionDim: Int
    /// The names the tower is written under (its checkpoint's: OpenCLIP or Hugging Face `CLIPModel`).
    public var weightFormat: WeightFormat

    public init(width: Int, layers: Int, heads: Int, mlp: Int, vocabularySize: Int, contextLength: Int,
                projectionDim: Int, activation: Activation, format: WeightFormat = .openCLIP) {
        stack = TransformerConfig(hiddenSize: width, numLayers: layers, numHeads: heads, mlpSize: mlp,
                                  layerNormEps: 1e-5, activation: activation, layerScale: false, causal: true)
        self.vocabularySize = vocabularySize; self.contextLength = contextLength; self.projectionDim = projectionDim
        weightFormat = format
    }

    public var width: Int { stack.hiddenSize }

    public var description: String {
        "CLIP text(width \(width), \(stack.numLayers) blocks, \(stack.numHeads) heads, MLP \(stack.mlpSize), "
            + "vocabulary \(vocabularySize), context \(contextLength), projection \(projectionDim), "
            + "\(stack.activation.rawValue))"
    }

    public func validate() throws {
        try stack.validate()
        guard vocabularySize > 1, contextLength > 1, projectionDim > 0 else {
            throw ViTError.invalidConfig("text tower: vocabulary, context and projection must be positive: \(self)")
        }
    }
}

/// CLIP's text tower: a front end of token and position embeddings to a ``TransformerStack`` (the same stack
/// an image tower runs), and the projection. The token table, the positions and the projection live in one store
/// of their own (`token_embedding` [V, D], `positional_embedding` [context, D], `text_projection` [E, D]); the
/// stack's tensors in the stack's.
public final class CLIPTextModel {
    public let config: CLIPTextConfig
    public let stack: TransformerStack
    public let params: TensorStore

    public static func layout(_ c: CLIPTextConfig) -> TensorLayout {
        var l = TensorLayout()
        l.add("token_embedding", [c.vocabularySize, c.width])
        l.add("positional_embedding", [c.contextLength, c.width])
        l.add("text_projection", [c.projectionDim, c.width])
        return l
    }

    public init(config: CLIPTextConfig) throws {
        try config.validate()
        self.config = config
        stack = try TransformerStack(config: config.stack)
        params = try TensorStore(layout: Self.layout(config))
    }

    /// Text features [rows, projectionDim] (not normalized: OpenCLIP `encode_text`) of `ids` [rows, context]
    /// (token ids, zero-padded; see ``CLIPTokenizer``). The feature of each row is taken at its largest id — the
    /// end-of-text token, the largest id of CLIP's vocabulary — as OpenCLIP's `argmax` pooling does.
    /// With `project: false`, the pooled states before `text_projection` ([rows, width]; HF `pooler_output`).
    /// Throws on an id outside the vocabulary or a row of another length.
    public func encode(ids: [Int32], batch: Int = 16, project: Bool = true) throws -> [Float] {
        let t = config.contextLength, d = config.width, v = config.vocabularySize
        let e = project ? config.projectionDim : d
        guard ids.count % t == 0 else {
            throw ViTError.badInput("text tower: \(ids.count) token ids are not whole rows of the context \(t)")
        }
        if let bad = ids.firstIndex(where: { $0 < 0 || Int($0) >= v }) {
            throw ViTError.badInput("text tower: token id \(ids[bad]) (row \(bad / t), position \(bad % t)) is "
                + "outside the vocabulary of \(v)")
        }
        let rows = ids.count / t
        var out = [Float](repeating: 0, count: rows * e)
        guard rows > 0 else { return out }
        let acts = try TransformerActivations(config: config.stack, batch: min(batch, rows), tokens: t, training: false)
        let table = params.pointer("token_embedding"), pos = params.pointer("positional_embedding")
        let proj = params.pointer("text_projection")
        for start in stride(from: 0, to: rows, by: acts.batch) {
            let n = min(acts.batch, rows - start)
            let x = acts.input
            for r in 0..<acts.batch {
                let row = min(start + r, rows - 1)  // a short last batch repeats its last row: computed, ignored
                for p in 0..<t {
                    let dst = x + (r * t + p) * d, tok = table + Int(ids[row * t + p]) * d, pp = pos + p * d
                    for j in 0..<d { dst[j] = tok[j] + pp[j] }
                }
            }
            let hidden = stack.forward(acts)
            for r in 0..<n {
                let row = ids[((start + r) * t)..<((start + r + 1) * t)]
                let eot = row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }! - row.startIndex
                let h = hidden + (r * t + eot) * d
                out.withUnsafeMutableBufferPointer { o in
                    let dst = o.baseAddress! + (start + r) * e
                    if project {
                        sgemm(transB: true, m: 1, n: e, k: d, a: h, lda: d, b: proj, ldb: d, c: dst, ldc: e)
                    } else {
                        dst.update(from: h, count: d)
                    }
                }
            }
        }
        return out
    }
}

/// A CLIP model: the image tower (a ``ViTModel`` with ``ViTConfig/projectionDim``), the text tower, and the learned
/// logit scale (stored as its log, as checkpoints do; CLIP multiplies cosine similarities by exp(logitScale)).
public final class CLIPModel {
    public let vision: ViTModel
    public let text: CLIPTextModel
    public var logitScale: Float

    public init(vision: ViTModel, text: CLIPTextModel, logitScale: Float) throws {
        guard let e = vision.config.projectionDim, e == text.config.projectionDim else {
            throw ViTError.invalidConfig("CLIP: the image projection (\(vision.config.projectionDim.map(String.init) ?? "none")) "
                + "and the text projection (\(text.config.projectionDim)) must have the same width")
        }
        self.vision = vision; self.text = text; self.logitScale = logitScale
    }

    public var embedDim: Int { text.config.projectionDim }
}

/// Rows scaled to unit length (rows of zeros stay zero).
public func normalizedRows(_ x: [Float], dim: Int) -> [Float] {
    var y = x
    for r in 0..<(dim > 0 ? x.count / dim : 0) {
        var ss: Float = 0
        for j in 0..<dim { ss += x[r * dim + j] * x[r * dim + j] }
        let inv = 1 / max(ss.squareRoot(), 1e-12)
        for j in 0..<dim { y[r * dim + j] *= inv }
    }
    return y
}

extension CLIPTextModel {
    /// OpenCLIP's initialisation of a text tower (`CLIP.initialize_parameters`), from `seed`: token embeddings
    /// N(0, 0.02²), positions N(0, 0.01²), attention in_proj N(0, width⁻¹), out_proj and c_proj
    /// N(0, (width·2·layers)⁻¹), c_fc N(0, (2·width)⁻¹), biases 0, LayerNorms 1 / 0, text_projection N(0, width⁻¹).
    public func initializeRandomly(seed: UInt64) {
        var rng = SeededRandom(seed: seed, stream: "clip-text-init")
        let d = Float(config.width), layers = Float(config.stack.numLayers)
        func fill(_ p: UnsafeMutableBufferPointer<Float>, std: Float) { for i in p.indices { p[i] = std * rng.normal() } }
        fill(params.buffer("token_embedding"), std: 0.02)
        fill(params.buffer("positional_embedding"), std: 0.01)
        fill(params.buffer("text_projection"), std: 1 / d.squareRoot())
        let s = stack.params.store
        for e in s.layout.entries {
            let b = s.buffer(e.name)
            switch e.name {
            case let n where n.hasSuffix("norm1.weight") || n.hasSuffix("norm2.weight") || n == ViTParameterNames.finalNormWeight:
                b.update(repeating: 1)
            case let n where n.contains(".attention.attention.") && n.hasSuffix(".weight"):
                fill(b, std: 1 / d.squareRoot())
            case let n where n.hasSuffix("attention.output.dense.weight") || n.hasSuffix("mlp.fc2.weight"):
                fill(b, std: 1 / (d * 2 * layers).squareRoot())
            case let n where n.hasSuffix("mlp.fc1.weight"):
                fill(b, std: 1 / (2 * d).squareRoot())
            default:
                b.update(repeating: 0)   // biases, the final norm's bias
            }
        }
    }
}

extension CLIPModel {
    /// OpenCLIP's model configs for the common shapes (`open_clip/model_configs/<name>.json`): 224 px, vision heads
    /// width / 64, MLP 4 × width, context 77, vocabulary 49408. `activation` is the checkpoint's (QuickGELU for
    /// OpenAI's weights). nil for a name not listed.
    public static func shape(_ name: String, activation: Activation = .quickGELU,
                             format: WeightFormat = .openCLIP) -> (vision: ViTConfig, text: CLIPTextConfig)? {
        let shapes: [String: (width: Int, layers: Int, patch: Int, embed: Int, textWidth: Int, textHeads: Int)] = [
            "ViT-B-32": (768, 12, 32, 512, 512, 8), "ViT-B-16": (768, 12, 16, 512, 512, 8),
            "ViT-L-14": (1024, 24, 14, 768, 768, 12),
        ]
        guard let s = shapes[name] else { return nil }
        let vision = ViTConfig.clipVision(width: s.width, layers: s.layers, heads: s.width / 64, mlp: 4 * s.width,
                                          patch: s.patch, grid: 224 / s.patch, projection: s.embed,
                                          activation: activation, format: format)
        let text = CLIPTextConfig(width: s.textWidth, layers: 12, heads: s.textHeads, mlp: 4 * s.textWidth,
                                  vocabularySize: 49408, contextLength: 77, projectionDim: s.embed,
                                  activation: activation, format: format)
        return (vision, text)
    }
}
