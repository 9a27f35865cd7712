import Tensors
import VisionTransformer

/// What a trainable tensor is: decides its learning rate and weight decay (``TrainableTensors/optimizers``).
public enum TensorRole: Sendable, Equatable {
    /// The classifier head's weight and bias.
    case head
    /// A LoRA block's A or B: trains only while its gate is on.
    case adapter
    /// The gate scores of one layer's blocks (selective).
    case score
    /// A backbone tensor (full fine-tuning).
    case backbone
}

/// One trainable tensor: views of its parameters and gradient, and where its AdamW moments sit.
public struct TrainableTensor {
    public let name: String
    public let role: TensorRole
    /// The block whose gate must be on for this tensor to train in a step (A and B); nil: it always trains.
    public let gate: Int?
    public let param: UnsafeMutableBufferPointer<Float>
    public let grad: UnsafeMutableBufferPointer<Float>
    /// Offset of this tensor's moments in ``TrainableTensors``' `m` and `v` (dense, in table order).
    let stateOffset: Int
}

/// Every tensor a run trains, in ONE fixed order, with its parameters, gradient and AdamW state — the table that
/// the gradient buffer, the all-reduce packing, the byte count, the optimizer, the clipping norm, the checkpoint and
/// the cross-rank fingerprint all iterate (llm.c's parameter-tensor table). Adding a kind of tensor means adding it
/// here and nowhere else.
///
/// The order is the all-reduce order, bucket by bucket, in the order the backward finishes them:
///
///     bucket 0 "head":      head.weight, head.bias
///     bucket 1…L "layer l"  for l = L−1 … 0: A and B of each of layer l's LoRA blocks (block order; in
///                           lora-last-k only the layers ≥ L−k), the layer's gate scores (selective), the layer's
///                           backbone tensors (full, layout order)
///     bucket L+1 "stem":    the backbone tensors outside the blocks (full, layout order)
///
/// The table is built from the method at the start, and once more, with the active blocks only, when a selective
/// run's gates settle (``Trainer``; the moments carry over by name, ``adoptState(of:)``); which adapter tensors
/// train in a step is read from the gates (``isTraining(_:)``). Ranks that build it from the same configuration and
/// the same (replicated) mask agree on every name, size and offset.
public final class TrainableTensors {
    public let tensors: [TrainableTensor]
    /// `tensors[buckets[i]]`: bucket i, in all-reduce order.
    public let buckets: [Range<Int>]
    public let gates: Gates?
    /// AdamW moments of every tensor, dense in table order (one allocation per role).
    let m: FloatBuffer, v: FloatBuffer
    /// AdamW steps taken by each tensor (a block switched on late is bias-corrected from its own first update).
    var steps: [Int]
    let layers: Int
    /// Table position by tensor name.
    let position: [String: Int]

    /// `scoreGrads` and the adapter gradients come from `run`; the backbone's from `baseGrads` (full only). A block
    /// the run does not hold (``LoRARun/holds(_:)``: the blocks below the last k layers of `lora-last-k`, a settled
    /// run's inactive blocks) can never train: its A and B are left out of the table.
    init(head: ClassifierHead, headGrads: TensorStore, adapters: LoRAAdapters?, run: LoRARun?, model: ViTModel,
         baseGrads: ViTTensors?) throws {
        var list: [TrainableTensor] = []
        var buckets: [Range<Int>] = []
        var stateCount = 0
        func add(_ name: String, _ role: TensorRole, gate: Int? = nil, _ p: UnsafeMutableBufferPointer<Float>,
                 _ g: UnsafeMutableBufferPointer<Float>) {
            precondition(p.count == g.count, "TrainableTensors: \(name) parameter and gradient sizes differ")
            list.append(TrainableTensor(name: name, role: role, gate: gate, param: p, grad: g, stateOffset: stateCount))
            stateCount += p.count
        }
        func closeBucket(from start: Int) { buckets.append(start..<list.count) }

        for (i, e) in head.params.layout.entries.enumerated() {
            add(e.name, .head, head.params.buffer(i), headGrads.buffer(i))
        }
        closeBucket(from: 0)

        let layers = model.config.numLayers
        let base = baseGrads.map { g in (params: model.params.store, grads: g.store) }
        // Backbone tensors by layer, found once by their names (`encoder.layer.L.…`); the rest is the stem.
        var layerEntries = [[Int]](repeating: [], count: layers), stem: [Int] = []
        if let base {
            for (i, e) in base.params.layout.entries.enumerated() {
                if let l = (0..<layers).first(where: { e.name.hasPrefix(ViTParameterNames.block($0) + ".") }) {
                    layerEntries[l].append(i)
                } else {
                    stem.append(i)
                }
            }
        }
        for l in (0..<layers).reversed() {
            let start = list.count
            if let a = adapters, let run, run.grads != nil {
                let range = a.layerBlocks[l]
                for i in range {
                    guard let g = run.gradients(i) else { continue }   // not held by the run: frozen
                    let b = a.blocks[i], t = a.tensorIndices(b)
                    add(b.aName, .adapter, gate: i, a.params.buffer(t.a), g.a)
                    add(b.bName, .adapter, gate: i, a.params.buffer(t.b), g.b)
                }
                if let sg = run.scoreGrads, !range.isEmpty {
                    add("scores.layer.\(l)", .score,
                        UnsafeMutableBufferPointer(start: a.gates.scores.base + range.lowerBound, count: range.count),
                        UnsafeMutableBufferPointer(start: sg.base + range.lowerBound, count: range.count))
                }
            }
            if let base {
                for i in layerEntries[l] { add(base.params.layout.entries[i].name, .backbone, base.params.buffer(i), base.grads.buffer(i)) }
            }
            closeBucket(from: start)
        }
        let stemStart = list.count
        if let base {
            for i in stem { add(base.params.layout.entries[i].name, .backbone, base.params.buffer(i), base.grads.buffer(i)) }
        }
        closeBucket(from: stemStart)

        tensors = list
        self.buckets = buckets
        self.layers = layers
        gates = adapters?.gates
        m = try FloatBuffer(count: stateCount)
        v = try FloatBuffer(count: stateCount)
        steps = [Int](repeating: 0, count: list.count)
        position = Dictionary(uniqueKeysWithValues: list.enumerated().map { ($0.element.name, $0.offset) })
    }

    /// Copies the AdamW moments and step counts of every tensor of `other` that this table also holds (by name).
    func adoptState(of other: TrainableTensors) {
        for (i, t) in tensors.enumerated() {
            guard let j = other.position[t.name] else { continue }
            let o = other.tensors[j]
            precondition(o.param.count == t.param.count, "TrainableTensors.adoptState: \(t.name) changed size")
            (m.base + t.stateOffset).update(from: other.m.base + o.stateOffset, count: t.param.count)
            (v.base + t.stateOffset).update(from: other.v.base + o.stateOffset, count: t.param.count)
            steps[i] = other.steps[j]
        }
    }

    /// The AdamW moments and step count of the tensor named `name`, if the table holds it.
    func state(_ name: String) -> (m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, index: Int)? {
        guard let i = position[name] else { return nil }
        return (m.base + tensors[i].stateOffset, v.base + tensors[i].stateOffset, i)
    }

    public var headBucket: Range<Int> { buckets[0] }
    /// The tensors of layer `l` (adapters, scores, backbone), all final once the backward has left block l.
    public func bucket(layer l: Int) -> Range<Int> { buckets[layers - l] }
    public var stemBucket: Range<Int> { buckets[layers + 1] }

    /// Whether the tensor trains in the current step: always, unless it is a LoRA block whose gate is off (then
    /// its A and B stay bitwise frozen and it adds nothing to the all-reduce) or a score once the gates settled.
    @inline(__always)
    public func isTraining(_ t: TrainableTensor) -> Bool {
        guard let gates else { return true }
        if let g = t.gate { return gates.mask[g] }
        return t.role != .score || !gates.settled
    }

    /// Calls `body` with every tensor that trains in the current step, in table order.
    @inline(__always)
    public func forEachTraining(in range: Range<Int>? = nil, _ body: (TrainableTensor) throws -> Void) rethrows {
        for i in range ?? tensors.indices where isTraining(tensors[i]) { try body(tensors[i]) }
    }

    /// Elements of every tensor (trainable at some step); the largest gradient buffer a step can reduce.
    public var totalCount: Int { tensors.reduce(0) { $0 + $1.param.count } }

    /// Elements that train in the current step (head, active A/B, scores, backbone in full).
    public var trainingCount: Int {
        var n = 0
        forEachTraining { n += $0.param.count }
        return n
    }

    /// Zeroes every gradient (the stores, not only the tensors that train: gradients accumulate with `+=`).
    func zeroGradients() {
        for t in tensors { t.grad.update(repeating: 0) }
    }

    /// √Σ g² over the tensors that train, summed in Double in table order.
    func gradientNorm() -> Double {
        var sumSquares = 0.0
        forEachTraining { t in for x in t.grad { sumSquares += Double(x) * Double(x) } }
        return sumSquares.squareRoot()
    }

    /// Multiplies every training gradient by `f`.
    func scaleGradients(_ f: Float) {
        forEachTraining { t in for i in t.grad.indices { t.grad[i] *= f } }
    }

    /// One AdamW step of every tensor that trains, with its role's optimizer.
    func step(_ optimizer: (TensorRole) -> AdamW) {
        let head = optimizer(.head), adapter = optimizer(.adapter), score = optimizer(.score), backbone = optimizer(.backbone)
        for i in tensors.indices where isTraining(tensors[i]) {
            let t = tensors[i]
            let opt: AdamW
            switch t.role {
            case .head: opt = head
            case .adapter: opt = adapter
            case .score: opt = score
            case .backbone: opt = backbone
            }
            steps[i] += 1
            opt.step(t.param.baseAddress!, t.grad.baseAddress!, m: m.base + t.stateOffset, v: v.base + t.stateOffset,
                     count: t.param.count, t: steps[i])
        }
    }
}
