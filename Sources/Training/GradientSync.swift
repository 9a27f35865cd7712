import Communication
import Foundation
import Tensors
import VisionTransformer

/// Averages one step's gradients over the ranks through ONE flat buffer, filled in a fixed order and all-reduced
/// in buckets that start (non-blocking) as soon as their gradients are final:
///
///   bucket "head":   [loss sum, correct, examples] (summed, not averaged), head.weight, head.bias
///   bucket "block L" for L = last … 0 (the backward finishes the last block first):
///                    A and B of each ACTIVE LoRA block of layer L (block order), the scores of layer L's blocks
///                    (selective), then layer L's backbone tensors (full)
///   bucket "stem":   patch projection, class token, position embeddings, final LayerNorm (full)
///
/// Inactive blocks put nothing in the buffer, so the traffic shrinks with the active set. Every rank derives the
/// active set from the same replicated scores, so every rank packs the same sizes in the same order (checked by
/// fingerprints in ``DataParallelTrainer``).
public final class GradientSync {
    public let comm: Communicator
    let trainer: Trainer
    let buffer: FloatBuffer
    var cursor = 0
    var bucketStart = 0
    var pending: [PendingCollective] = []
    var segments: [(offset: Int, target: UnsafeMutableBufferPointer<Float>)] = []
    /// Bytes this rank all-reduced in the last step: 4 × (active A and B elements + scores + head + statistics
    /// [+ backbone tensors in full]).
    public private(set) var bytesReduced = 0
    /// Seconds inside communication calls in the last step (starting, polling, waiting, packing and unpacking).
    public private(set) var commSeconds = 0.0
    /// Seconds blocked in the final wait: the communication not hidden behind the backward.
    public private(set) var exposedSeconds = 0.0
    /// Summed statistics of the last step: loss sum, correct predictions, examples.
    public private(set) var statistics = (lossSum: 0.0, correct: 0, count: 0)
    static let statisticsCount = 3
    /// Whether the reduced statistics or gradients of the last step hold NaN or Inf. A non-finite value on any
    /// rank makes the sum non-finite on every rank, so all ranks see the same answer in the same step.
    public private(set) var nonFinite = false
    /// Test hook: this rank reports a NaN loss in its next step.
    public var poisonNextStep = false

    public init(comm: Communicator, trainer: Trainer) throws {
        self.comm = comm
        self.trainer = trainer
        var capacity = Self.statisticsCount + trainer.head.params.layout.totalCount
        capacity += trainer.adapters?.params.layout.totalCount ?? 0
        capacity += trainer.adapters?.blocks.count ?? 0
        capacity += trainer.baseGrads?.store.layout.totalCount ?? 0
        buffer = try FloatBuffer(count: capacity)
    }

    /// One data-parallel step's gradients on this rank's shard, averaged over all ranks on return.
    public func computeAndReduce(pixels: UnsafePointer<Float>, labels: [Int32]) throws {
        cursor = 0; bucketStart = 0; pending.removeAll(keepingCapacity: true); segments.removeAll(keepingCapacity: true)
        commSeconds = 0
        var failure: Error?
        let adapters = trainer.adapters
        _ = trainer.computeGradients(pixels: pixels, labels: labels, beforeBackbone: { lossSum, correct in
            self.timed {
                self.buffer[0] = self.poisonNextStep ? .nan : Float(lossSum)
                self.buffer[1] = Float(correct); self.buffer[2] = Float(labels.count)
                self.poisonNextStep = false
                self.cursor = Self.statisticsCount
                for e in self.trainer.headGrads.layout.entries { self.pack(self.trainer.headGrads.buffer(e.name)) }
                do { try self.flush() } catch { failure = failure ?? error }
            }
        }, afterBlock: { layer in
            self.timed {
                if let a = adapters, let g = self.trainer.run?.grads {
                    let range = a.layerBlocks[layer]
                    for i in range where a.active[i] {
                        let t = a.tensorIndices(a.blocks[i])
                        self.pack(g.buffer(t.a))
                        self.pack(g.buffer(t.b))
                    }
                    if let sg = self.trainer.run?.scoreGrads, !range.isEmpty {
                        self.pack(UnsafeMutableBufferPointer(start: sg.base + range.lowerBound, count: range.count))
                    }
                }
                if let g = self.trainer.baseGrads {
                    let prefix = ViTParameterNames.block(layer) + "."
                    for e in g.store.layout.entries where e.name.hasPrefix(prefix) { self.pack(g.store.buffer(e.name)) }
                }
                do { try self.flush() } catch { failure = failure ?? error }
            }
        })
        if let g = trainer.baseGrads {
            timed {
                for e in g.store.layout.entries where !e.name.hasPrefix("encoder.layer.") { pack(g.store.buffer(e.name)) }
                do { try flush() } catch { failure = failure ?? error }
            }
        }
        if let failure { throw failure }
        let t0 = Date()
        for p in pending { try comm.wait(p) }
        exposedSeconds = Date().timeIntervalSince(t0)
        try timed {
            var finite = true
            for i in 0..<cursor where !buffer[i].isFinite { finite = false; break }
            nonFinite = !finite
            let inv = 1 / Float(comm.size)
            statistics = (Double(buffer[0]), Int(buffer[1].rounded()), Int(buffer[2].rounded()))
            for s in segments {
                let src = buffer.base + s.offset
                for i in 0..<s.target.count { s.target[i] = src[i] * inv }
            }
        }
        commSeconds += exposedSeconds
        bytesReduced = cursor * MemoryLayout<Float>.stride
    }

    func pack(_ g: UnsafeMutableBufferPointer<Float>) {
        (buffer.base + cursor).update(from: g.baseAddress!, count: g.count)
        segments.append((cursor, g))
        cursor += g.count
    }

    /// Starts the all-reduce of everything packed since the last flush, and nudges the ones in flight.
    func flush() throws {
        if cursor > bucketStart {
            pending.append(try comm.startAllSum(UnsafeMutableBufferPointer(start: buffer.base + bucketStart, count: cursor - bucketStart)))
            bucketStart = cursor
        }
        for p in pending where !p.completed { _ = try comm.poll(p) }
    }

    func timed<T>(_ body: () throws -> T) rethrows -> T {
        let t0 = Date()
        defer { commSeconds += Date().timeIntervalSince(t0) }
        return try body()
    }
}
