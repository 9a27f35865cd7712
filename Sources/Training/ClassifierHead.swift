import Tensors
import VisionTransformer

/// A linear classification head on the class token: logits = cls · Wᵀ + b, W [classes, hidden].
/// Parameters in one store (`head.weight`, `head.bias`) so they pack like every other trainable tensor.
public final class ClassifierHead {
    public let classes: Int
    public let hidden: Int
    public let params: TensorStore
    public var weight: UnsafeMutablePointer<Float> { params.pointer("head.weight") }
    public var bias: UnsafeMutablePointer<Float> { params.pointer("head.bias") }

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

    /// logits [batch, classes] from the backbone output [batch, tokens, hidden] (class token = row 0 of each image).
    public func forward(_ logits: UnsafeMutablePointer<Float>, hidden states: UnsafePointer<Float>, batch: Int, tokens: Int) {
        let d = hidden
        for i in 0..<batch { (logits + i * classes).update(from: bias, count: classes) }
        sgemm(transB: true, m: batch, n: classes, k: d, a: states, lda: tokens * d, b: weight, ldb: d,
              beta: 1, c: logits, ldc: classes)
    }

    /// Backward: dW += dlogitsᵀ · cls, db += Σ dlogits (into `grads`); when `dStates` is given, writes the class
    /// token rows of dStates [batch, tokens, hidden] with dlogits · W (the other rows are left as they are — zero
    /// in the trainer, which never writes them).
    public func backward(_ dLogits: UnsafePointer<Float>, hidden states: UnsafePointer<Float>, batch: Int, tokens: Int,
                         grads: TensorStore, dStates: UnsafeMutablePointer<Float>?) {
        let d = hidden
        sgemm(transA: true, m: classes, n: d, k: batch, a: dLogits, lda: classes, b: states, ldb: tokens * d,
              beta: 1, c: grads.pointer("head.weight"), ldc: d)
        let db = grads.pointer("head.bias")
        for i in 0..<batch { for c in 0..<classes { db[c] += dLogits[i * classes + c] } }
        if let dStates {
            sgemm(m: batch, n: d, k: classes, a: dLogits, lda: classes, b: weight, ldb: d, c: dStates, ldc: tokens * d)
        }
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
