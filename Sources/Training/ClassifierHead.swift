import Foundation
import Tensors
import VisionTransformer

/// A linear classification head on the backbone's feature (``ViTModel/features(_:)``: the class token, or CLIP's
/// normalized image embedding): logits = f · Wᵀ + b, W [classes, hidden]. A CLIP zero-shot head is one of these
/// (``zeroShot(textEmbeddings:classes:logitScale:)``).
/// Parameters in one store (`head.weight`, `head.bias`) so they pack like every other trainable tensor.
public final class ClassifierHead {
    public let classes: Int
    public let hidden: Int
    public let params: TensorStore
    /// Tensor 0 and 1 of ``layout(classes:hidden:)`` (by position: no name lookup per step).
    public var weight: UnsafeMutablePointer<Float> { params.pointer(0) }
    public var bias: UnsafeMutablePointer<Float> { params.pointer(1) }

    public static func layout(classes: Int, hidden: Int) -> TensorLayout {
        var l = TensorLayout()
        l.add("head.weight", [classes, hidden])
        l.add("head.bias", [classes])
        return l
    }

    /// PyTorch `nn.Linear` initialisation: weight and bias uniform in ±1/√hidden, from `seed`.
    public init(classes: Int, hidden: Int, seed: UInt64) throws {
        self.classes = classes
        self.hidden = hidden
        params = try TensorStore(layout: Self.layout(classes: classes, hidden: hidden))
        var rng = SeededRandom(seed: seed, stream: "head-init")
        let bound = 1 / Float(hidden).squareRoot()
        for e in params.layout.entries {
            let t = params.buffer(e.name)
            for i in 0..<t.count { t[i] = rng.uniform(-bound, bound) }
        }
    }

    public func makeStore() throws -> TensorStore { try TensorStore(layout: params.layout) }

    /// An independent head with the same values (training one leaves the other as it was).
    public func copy() throws -> ClassifierHead {
        let c = try ClassifierHead(classes: classes, hidden: hidden, seed: 0)
        _ = c.params.storage.buffer.update(fromContentsOf: params.storage.buffer)
        return c
    }

    /// logits [batch, classes] from features [batch, hidden].
    public func forward(_ logits: UnsafeMutablePointer<Float>, features: UnsafePointer<Float>, batch: Int) {
        let d = hidden
        for i in 0..<batch { (logits + i * classes).update(from: bias, count: classes) }
        sgemm(transB: true, m: batch, n: classes, k: d, a: features, lda: d, b: weight, ldb: d,
              beta: 1, c: logits, ldc: classes)
    }

    /// Backward: dW += dlogitsᵀ · f, db += Σ dlogits (into `grads`); when `dFeatures` is given, writes
    /// dFeatures [batch, hidden] = dlogits · W.
    public func backward(_ dLogits: UnsafePointer<Float>, features: UnsafePointer<Float>, batch: Int,
                         grads: TensorStore, dFeatures: UnsafeMutablePointer<Float>?) {
        let d = hidden
        sgemm(transA: true, m: classes, n: d, k: batch, a: dLogits, lda: classes, b: features, ldb: d,
              beta: 1, c: grads.pointer(0), ldc: d)
        let db = grads.pointer(1)
        for i in 0..<batch { for c in 0..<classes { db[c] += dLogits[i * classes + c] } }
        if let dFeatures {
            sgemm(m: batch, n: d, k: classes, a: dLogits, lda: classes, b: weight, ldb: d, c: dFeatures, ldc: d)
        }
    }

    /// CLIP's zero-shot classifier as a head: row c = exp(logitScale) · t̂_c, bias 0, where t̂_c is class c's
    /// text embedding normalized to unit length (`textEmbeddings` [classes, dim], e.g. the mean over prompt
    /// templates, renormalized). On CLIP's normalized image feature its logits are exactly CLIP's
    /// `logits_per_image`; it is also the initial head for fine-tuning (WiSE-FT, FLYP).
    public static func zeroShot(textEmbeddings: [Float], classes: Int, logitScale: Float) throws -> ClassifierHead {
        guard classes > 1, textEmbeddings.count % classes == 0, textEmbeddings.count > 0 else {
            throw ViTError.badInput("zero-shot head: \(textEmbeddings.count) floats are not \(classes) class embeddings")
        }
        let dim = textEmbeddings.count / classes
        let head = try ClassifierHead(classes: classes, hidden: dim, seed: 0)
        let scale = Float(exp(Double(logitScale)))
        let w = normalizedRows(textEmbeddings, dim: dim).map { $0 * scale }
        guard w.allSatisfy({ $0.isFinite }) else { throw ViTError.badInput("zero-shot head: non-finite embeddings or scale") }
        _ = head.params.buffer("head.weight").update(fromContentsOf: w)
        head.params.buffer("head.bias").update(repeating: 0)
        return head
    }
}

import SafeTensors

extension ClassifierHead {
    /// Reads a head from safetensors with keys `weight` [classes, hidden] and `bias` [classes].
    public static func load(path: String, hidden: Int) throws -> ClassifierHead {
        let f = try SafeTensorsFile(path: path)
        let shape = try f.info("weight").shape
        guard shape.count == 2, shape[1] == hidden, shape[0] > 1 else {
            throw ViTError.badInput("\(path): `weight` has shape \(shape); expected [classes ≥ 2, \(hidden)]")
        }
        let head = try ClassifierHead(classes: shape[0], hidden: hidden, seed: 0)
        _ = head.params.buffer("head.weight").update(fromContentsOf: try f.floats("weight", expectShape: shape))
        _ = head.params.buffer("head.bias").update(fromContentsOf: try f.floats("bias", expectShape: [shape[0]]))
        guard Array(head.params.storage.buffer).allSatisfy({ $0.isFinite }) else {
            throw ViTError.badInput("\(path): the head holds NaN or Inf")
        }
        return head
    }

    public func save(path: String) throws {
        var w = SafeTensorsWriter()
        try w.add("weight", floats: Array(params.buffer("head.weight")), shape: [classes, hidden])
        try w.add("bias", floats: Array(params.buffer("head.bias")), shape: [classes])
        try w.write(to: path, metadata: ["format": "pt"])
    }
}
