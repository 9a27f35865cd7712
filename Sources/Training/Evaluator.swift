import Communication
import Datasets
import Tensors
import VisionTransformer

/// Runs a (possibly adapted) backbone over an image set in inference mode, batch by batch, and hands each image's
/// last hidden state [tokens, hidden] to the caller. LoRA blocks act as their gates say at call time.
/// Reads any ``ImageSource`` of its size (its evaluation transform); an in-memory gray set is read through the
/// model's ``ImageTransform`` at `size`.
public final class Evaluator {
    public let model: ViTModel
    public let transform: ImageTransform
    let acts: ViTActivations
    let lora: LoRARun?
    let pixels: FloatBuffer

    public init(model: ViTModel, adapters: LoRAAdapters?, size: Int, batch: Int) throws {
        self.model = model
        transform = ImageTransform(model: model.config, size: size)
        let acts = try ViTActivations(config: model.config, batch: batch, height: size, width: size, training: false)
        self.acts = acts
        lora = try adapters.map { try LoRARun(adapters: $0, activations: acts, gradients: false, scoreGradients: false) }
        pixels = try FloatBuffer(count: batch * transform.floatsPerImage)
    }

    /// An in-memory gray set as this evaluator reads it.
    func source(_ data: ImageDataset) -> ImageSource { TransformedImageSet(data, transform: transform) }

    public var tokens: Int { acts.tokens }
    public var hidden: Int { model.config.hiddenSize }

    /// Calls `body(index, states, feature)` for each of `indices` (default: every image) in order; `states` points
    /// at that image's [tokens, hidden] output, `feature` at its ``ViTModel/features(_:)`` [featureDim]; both are
    /// valid only during the call. Throws what the source throws (a file that does not decode).
    public func forEachOutput(_ data: ImageSource, indices: [Int]? = nil,
                              _ body: (Int, UnsafePointer<Float>, UnsafePointer<Float>) -> Void) throws {
        guard data.height == acts.height, data.width == acts.width, data.channels == model.config.channels else {
            throw ConfigError("data", "the images are \(data.channels)×\(data.height)×\(data.width); this evaluator "
                              + "reads \(model.config.channels)×\(acts.height)×\(acts.width)")
        }
        let all = indices ?? Array(0..<data.count)
        let b = acts.batch, per = acts.tokens * hidden, f = model.config.featureDim
        for start in stride(from: 0, to: all.count, by: b) {
            let chunk = Array(all[start..<min(start + b, all.count)])
            // A short last batch leaves stale images in the tail of `pixels`: computed and ignored.
            try data.load(chunk, epoch: nil, into: pixels.base)
            let out = model.forward(pixels.base, acts, lora: lora)
            let features = model.features(acts)
            for (k, index) in chunk.enumerated() { body(index, out + k * per, features + k * f) }
        }
    }

    /// ``forEachOutput(_:indices:_:)`` of an in-memory gray set.
    public func forEachOutput(_ data: ImageDataset, indices: [Int]? = nil,
                              _ body: (Int, UnsafePointer<Float>, UnsafePointer<Float>) -> Void) throws {
        try forEachOutput(source(data), indices: indices, body)
    }

    /// [CLS ; mean of the patch tokens] per image: [count, 2·hidden] (what HF's Dinov2ForImageClassification uses).
    /// With `comm`, each rank computes a contiguous slice and the rows are assembled on every rank by a sum.
    public func probeFeatures(_ data: ImageSource, comm: Communicator = SingleProcessCommunicator()) throws -> [Float] {
        let d = hidden, t = tokens
        var out = [Float](repeating: 0, count: data.count * 2 * d)
        try forEachOutput(data, indices: Self.slice(data.count, comm)) { i, s, _ in
            let f = i * 2 * d
            for j in 0..<d { out[f + j] = s[j] }
            for p in 1..<t { for j in 0..<d { out[f + d + j] += s[p * d + j] } }
            for j in 0..<d { out[f + d + j] /= Float(t - 1) }
        }
        try comm.allSum(&out)
        return out
    }

    /// ``probeFeatures(_:comm:)`` and ``features(_:comm:)`` of the same images in one pass over the backbone.
    public func probeAndFeatures(_ data: ImageSource, comm: Communicator = SingleProcessCommunicator()) throws
        -> (probe: [Float], features: [Float]) {
        let d = hidden, t = tokens, fd = model.config.featureDim
        var out = [Float](repeating: 0, count: data.count * (2 * d + fd))
        let probeCount = data.count * 2 * d
        try forEachOutput(data, indices: Self.slice(data.count, comm)) { i, s, f in
            let p = i * 2 * d
            for j in 0..<d { out[p + j] = s[j] }
            for q in 1..<t { for j in 0..<d { out[p + d + j] += s[q * d + j] } }
            for j in 0..<d { out[p + d + j] /= Float(t - 1) }
            for j in 0..<fd { out[probeCount + i * fd + j] = f[j] }
        }
        try comm.allSum(&out)
        return (Array(out[..<probeCount]), Array(out[probeCount...]))
    }

    public func probeFeatures(_ data: ImageDataset, comm: Communicator = SingleProcessCommunicator()) throws -> [Float] {
        try probeFeatures(source(data), comm: comm)
    }

    /// The head's input per image, ``ViTModel/features(_:)``: [count, featureDim] (the class token, or CLIP's
    /// normalized image embedding), sliced over ranks like ``probeFeatures(_:comm:)``.
    public func features(_ data: ImageSource, comm: Communicator = SingleProcessCommunicator()) throws -> [Float] {
        let d = model.config.featureDim
        var out = [Float](repeating: 0, count: data.count * d)
        try forEachOutput(data, indices: Self.slice(data.count, comm)) { i, _, f in for j in 0..<d { out[i * d + j] = f[j] } }
        try comm.allSum(&out)
        return out
    }

    public func features(_ data: ImageDataset, comm: Communicator = SingleProcessCommunicator()) throws -> [Float] {
        try features(source(data), comm: comm)
    }

    /// Rank r's contiguous share of 0..<count.
    static func slice(_ count: Int, _ comm: Communicator) -> [Int] {
        Array((count * comm.rank / comm.size)..<(count * (comm.rank + 1) / comm.size))
    }

    /// Fraction of images the head classifies as their label; with `comm`, each rank evaluates its slice and the
    /// counts are summed over ranks.
    public func accuracy(_ data: ImageSource, head: ClassifierHead,
                         comm: Communicator = SingleProcessCommunicator()) throws -> Double {
        let mine = Self.slice(data.count, comm)
        var logits = [Float](repeating: 0, count: head.classes)
        var correct = 0.0
        let labels = data.labels
        try forEachOutput(data, indices: mine) { i, _, f in
            head.forward(&logits, features: f, batch: 1)
            if argmax(logits, count: head.classes) == Int(labels[i]) { correct += 1 }
        }
        var counts = [correct, Double(mine.count)]
        try comm.allSum(&counts)
        return counts[0] / max(1, counts[1])
    }

    public func accuracy(_ data: ImageDataset, head: ClassifierHead,
                         comm: Communicator = SingleProcessCommunicator()) throws -> Double {
        try accuracy(source(data), head: head, comm: comm)
    }
}

/// Mean over rows of 1 − cos(a_i, b_i) for two [rows, dim] feature sets: how far fine-tuning moved the features.
public func meanCosineDrift(_ a: [Float], _ b: [Float], dim: Int) -> Double {
    precondition(a.count == b.count && dim > 0 && a.count % dim == 0, "meanCosineDrift: shapes differ")
    let rows = a.count / dim
    var total = 0.0
    for r in 0..<rows {
        var ab = 0.0, aa = 0.0, bb = 0.0
        for j in 0..<dim {
            let x = Double(a[r * dim + j]), y = Double(b[r * dim + j])
            ab += x * y; aa += x * x; bb += y * y
        }
        total += 1 - ab / max((aa * bb).squareRoot(), 1e-30)
    }
    return total / Double(max(rows, 1))
}
