import SafeTensors
import Tensors

/// A checkpoint opened for reading in its detected ``WeightFormat``: every name goes through the format's
/// ``WeightNames`` (plus the file's prefix), every tensor read is shape- and finiteness-checked.
struct WeightReader {
    let file: SafeTensorsFile
    let format: WeightFormat
    let prefix: String

    var names: WeightNames { format.names }
    var path: String { file.path }
    func fail(_ m: String) -> CheckpointError { CheckpointError(path: file.path, message: m) }

    /// The first format (in ``WeightFormat/allCases`` order) one of whose probe sets the file holds entirely, under
    /// the first prefix of ``WeightFormat/prefixes`` that gives one; nil when none does. `formats` limits the search.
    static func detect(_ f: SafeTensorsFile, among formats: [WeightFormat] = WeightFormat.allCases) -> WeightReader? {
        for prefix in WeightFormat.prefixes {
            for format in formats where format.names.probes.contains(where: { $0.allSatisfy { f.contains(prefix + $0) } }) {
                return WeightReader(file: f, format: format, prefix: prefix)
            }
        }
        return nil
    }

    func contains(_ name: String) -> Bool { file.contains(prefix + name) }
    func shape(_ name: String) throws -> [Int] { try file.info(prefix + name).shape }

    /// The tensor's values, checked: the expected shape, and finite (a NaN or Inf weight is a broken checkpoint).
    func read(_ name: String, _ shape: [Int]) throws -> [Float] {
        let v = try file.floats(prefix + name, expectShape: shape)
        if let i = v.firstIndex(where: { !$0.isFinite }) { throw fail("`\(prefix)\(name)` holds \(v[i]) at element \(i)") }
        return v
    }

    /// Blocks of the stack whose tensors start with `blocks`: how many consecutive `N` from 0 have `norm1.weight`.
    func countBlocks(_ blocks: String) -> Int {
        var n = 0
        while contains("\(blocks)\(n).\(names.norm1).weight") { n += 1 }
        return n
    }

    /// The block count (at least 1) and MLP width of the stack at `blocks`, whose width is `d`; `what` names the
    /// stack in errors ("image tower").
    func stackShape(_ blocks: String, width d: Int, _ what: String) throws -> (layers: Int, mlp: Int) {
        let layers = countBlocks(blocks)
        guard layers > 0 else { throw fail("\(what) has no blocks: `\(prefix)\(blocks)0.\(names.norm1).weight` is missing") }
        let fc1Name = "\(blocks)0.\(names.fc1).weight"
        let fc1 = try shape(fc1Name)
        guard fc1.count == 2, fc1[1] == d else { throw fail("`\(prefix)\(fc1Name)` has shape \(fc1); expected [mlp, \(d)]") }
        return (layers, fc1[0])
    }

    /// Block l's query, key and value weights and biases: from a packed pair (shapes checked first, so a wrong size
    /// names the packed tensor) or from three modules.
    func qkv(_ blocks: String, layer l: Int, width d: Int) throws -> (w: [[Float]], b: [[Float]]) {
        let p = "\(blocks)\(l)."
        switch names.qkv {
        case .packed(let weight, let bias, _):
            for (name, want) in [(weight, [3 * d, d]), (bias, [3 * d])] {
                let s = try shape(p + name)
                guard s == want else {
                    throw fail("`\(prefix)\(p)\(name)` has shape \(s); expected \(want): q, k and v of width \(d) "
                        + "packed along the first axis (the width comes from the model's embeddings)")
                }
            }
            let w = try read(p + weight, [3 * d, d]), b = try read(p + bias, [3 * d])
            return ((0..<3).map { Array(w[($0 * d * d)..<(($0 + 1) * d * d)]) }, (0..<3).map { Array(b[($0 * d)..<(($0 + 1) * d)]) })
        case .separate(let q, let k, let v):
            return (try [q, k, v].map { try read("\(p)\($0).weight", [d, d]) }, try [q, k, v].map { try read("\(p)\($0).bias", [d]) })
        }
    }

    /// Copies `layers` blocks of the stack at `blocks` into `store` (``ViTParameterNames`` layout), checking each
    /// shape. LayerScale the store has but the file leaves out is 1 where the format allows that (timm's DeiT).
    func copyBlocks(_ blocks: String, into store: TensorStore, layers: Int, width d: Int) throws {
        for l in 0..<layers {
            let mine = ViTParameterNames.block(l), theirs = "\(blocks)\(l)."
            let (w, b) = try qkv(blocks, layer: l, width: d)
            for (i, module) in WeightNames.qkvInternal.enumerated() {
                put(store, "\(mine).\(module).weight", w[i]); put(store, "\(mine).\(module).bias", b[i])
            }
            for (suffix, name) in names.blockPairs + names.layerScalePairs {
                guard let e = store.layout.entry("\(mine).\(suffix)") else { continue }
                if names.layerScaleOptional, suffix.hasPrefix("layer_scale"), !contains(theirs + name) {
                    put(store, e.name, [Float](repeating: 1, count: e.count))
                } else {
                    put(store, e.name, try read(theirs + name, e.shape))
                }
            }
        }
    }

    /// Copies the image stem (patch projection, class token, positions, `ln_pre`), the final norm and the projection
    /// of `store`'s layout from the file. `config` gives the shapes.
    func copyImageStem(into store: TensorStore, _ c: ViTConfig) throws {
        typealias N = ViTParameterNames
        let n = names, d = c.hiddenSize
        put(store, N.patchWeight, try read(n.patchWeight, [d, c.channels, c.patchSize, c.patchSize]))
        if store.layout.entry(N.patchBias) != nil, let bias = n.patchBias { put(store, N.patchBias, try read(bias, [d])) }
        put(store, N.clsToken, try read(n.classToken, Array(repeating: 1, count: n.classTokenUnitDims) + [d]))
        put(store, N.positions, try read(n.positions, Array(repeating: 1, count: n.positionsUnitDims)
            + [1 + c.positionGrid * c.positionGrid, d]))
        var norms = [(N.finalNormWeight, "\(n.finalNorm).weight"), (N.finalNormBias, "\(n.finalNorm).bias")]
        if let pre = n.preNorm { norms += [(N.preNormWeight, "\(pre).weight"), (N.preNormBias, "\(pre).bias")] }
        for (mine, theirs) in norms where store.layout.entry(mine) != nil { put(store, mine, try read(theirs, [d])) }
        if let e = c.projectionDim, let name = n.projection {
            let p = try read(name, n.projectionTransposed ? [d, e] : [e, d])
            put(store, N.projection, n.projectionTransposed ? transposed(p, rows: d, cols: e) : p)
        }
    }

    func put(_ store: TensorStore, _ name: String, _ values: [Float]) {
        let dst = store.buffer(name)
        precondition(values.count == dst.count, "weight reader: \(name) size")
        _ = dst.update(fromContentsOf: values)
    }
}

/// [rows, cols] → [cols, rows]: OpenCLIP stores its projections as `x @ proj` ([in, out]), the layout as Linear
/// weights ([out, in]).
func transposed(_ x: [Float], rows: Int, cols: Int) -> [Float] {
    var y = [Float](repeating: 0, count: x.count)
    for r in 0..<rows { for c in 0..<cols { y[c * rows + r] = x[r * cols + c] } }
    return y
}

/// Writes models under a ``WeightFormat``'s names: the inverse of ``WeightReader``. A tensor the model has and the
/// format has no name for (e.g. a patch bias in a CLIP format, LayerScale in a CLIP format, a projection in a
/// DINOv2 format) is an error naming both.
struct WeightWriter {
    let format: WeightFormat
    var w = SafeTensorsWriter()
    var meta: [String: String] = ["format": "pt"]

    init(format: WeightFormat) { self.format = format }

    var names: WeightNames { format.names }

    mutating func add(_ name: String, _ values: [Float], _ shape: [Int]) throws { try w.add(name, floats: values, shape: shape) }
    func tensor(_ s: TensorStore, _ name: String) -> [Float] { Array(s.buffer(name)) }

    func unrepresentable(_ what: String, _ c: some CustomStringConvertible) -> ViTError {
        .invalidConfig("\(format) (\(format.rawValue)) names have no \(what), which this model has: \(c)")
    }

    /// The image stem, blocks, final norm and projection of an image tower, and its heads, eps (and for CLIP the
    /// activation) in the metadata.
    mutating func addVision(_ vision: ViTModel) throws {
        typealias N = ViTParameterNames
        let n = names, c = vision.config, d = c.hiddenSize, s = vision.params.store
        try add(n.patchWeight, tensor(s, N.patchWeight), [d, c.channels, c.patchSize, c.patchSize])
        if c.patchBias {
            guard let bias = n.patchBias else { throw unrepresentable("patch bias", c) }
            try add(bias, tensor(s, N.patchBias), [d])
        }
        try add(n.classToken, tensor(s, N.clsToken), Array(repeating: 1, count: n.classTokenUnitDims) + [d])
        try add(n.positions, tensor(s, N.positions),
                Array(repeating: 1, count: n.positionsUnitDims) + [1 + c.positionGrid * c.positionGrid, d])
        if c.preNorm {
            guard let pre = n.preNorm else { throw unrepresentable("pre-norm (ln_pre)", c) }
            try add("\(pre).weight", tensor(s, N.preNormWeight), [d])
            try add("\(pre).bias", tensor(s, N.preNormBias), [d])
        }
        try add("\(n.finalNorm).weight", tensor(s, N.finalNormWeight), [d])
        try add("\(n.finalNorm).bias", tensor(s, N.finalNormBias), [d])
        if let e = c.projectionDim {
            guard let name = n.projection else { throw unrepresentable("projection", c) }
            let p = tensor(s, N.projection)
            try add(name, n.projectionTransposed ? transposed(p, rows: e, cols: d) : p, n.projectionTransposed ? [d, e] : [e, d])
        }
        try addBlocks(s, c.stack, prefix: n.blocks)
        meta[format.isCLIP ? "vision_heads" : "num_attention_heads"] = String(c.numHeads)
        meta["layer_norm_eps"] = String(c.layerNormEps)
        if format.isCLIP { meta["hidden_act"] = c.activation.rawValue }
    }

    /// CLIP's text tower (a CLIP format only).
    mutating func addText(_ text: CLIPTextModel) throws {
        typealias N = ViTParameterNames
        let t = text.config, dt = t.width, e = t.projectionDim
        guard let n = names.text else { throw unrepresentable("text tower", t.stack) }
        try add(n.tokenEmbedding, tensor(text.params, "token_embedding"), [t.vocabularySize, dt])
        try add(n.positions, tensor(text.params, "positional_embedding"), [t.contextLength, dt])
        let tp = tensor(text.params, "text_projection"), flip = names.projectionTransposed
        try add(n.projection, flip ? transposed(tp, rows: e, cols: dt) : tp, flip ? [dt, e] : [e, dt])
        let ts = text.stack.params.store
        try add("\(n.finalNorm).weight", tensor(ts, N.finalNormWeight), [dt])
        try add("\(n.finalNorm).bias", tensor(ts, N.finalNormBias), [dt])
        try addBlocks(ts, t.stack, prefix: n.blocks)
        meta["text_heads"] = String(t.stack.numHeads)
        meta["text_layer_norm_eps"] = String(t.stack.layerNormEps)
    }

    mutating func addBlocks(_ store: TensorStore, _ c: TransformerConfig, prefix blocks: String) throws {
        let w = c.hiddenSize, n = names
        if c.layerScale && n.layerScale == nil { throw unrepresentable("LayerScale", c) }
        for l in 0..<c.numLayers {
            let mine = ViTParameterNames.block(l), theirs = "\(blocks)\(l)."
            let qkv = WeightNames.qkvInternal.map { "\(mine).\($0)" }
            switch n.qkv {
            case .packed(let weight, let bias, _):
                try add(theirs + weight, qkv.flatMap { tensor(store, "\($0).weight") }, [3 * w, w])
                try add(theirs + bias, qkv.flatMap { tensor(store, "\($0).bias") }, [3 * w])
            case .separate(let q, let k, let v):
                for (m, module) in zip(qkv, [q, k, v]) {
                    try add("\(theirs)\(module).weight", tensor(store, "\(m).weight"), [w, w])
                    try add("\(theirs)\(module).bias", tensor(store, "\(m).bias"), [w])
                }
            }
            for (suffix, name) in n.blockPairs + n.layerScalePairs {
                guard let entry = store.layout.entry("\(mine).\(suffix)") else { continue }
                try add(theirs + name, tensor(store, entry.name), entry.shape)
            }
        }
    }

    func write(to path: String, metadata: [String: String]) throws {
        try w.write(to: path, metadata: meta.merging(metadata) { _, extra in extra })
    }
}
