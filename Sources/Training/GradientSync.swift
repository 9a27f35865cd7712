import Communication
import Foundation
import Tensors

/// Averages one step's gradients over the ranks through ONE flat buffer, filled in the order of
/// ``TrainableTensors`` and all-reduced in its buckets, each started (non-blocking) as soon as its gradients are
/// final:
///
///     [loss sum, correct, examples, stop requests] (summed, not averaged) + bucket "head"
///                                                                              — ``begin(lossSum:correct:count:stopRequested:)``
///     bucket "layer l", l = L−1 … 0                                           — ``layerDone(_:)``, from the backward
///     bucket "stem"; arrival probe; wait for all; average into the gradients  — ``finish()``
///
/// Only tensors that train in the step are packed (``TrainableTensors/isTraining(_:)``): an inactive LoRA block
/// puts nothing in the buffer, so the traffic shrinks with the active set. Every rank derives the gates from the
/// same replicated scores, so every rank packs the same sizes in the same order (checked by fingerprints in
/// ``DataParallelTrainer``). Unpacking walks the same table in the same order.
public final class GradientSync {
    public let comm: Communicator
    let tensors: TrainableTensors
    let buffer: FloatBuffer
    var cursor = 0
    var bucketStart = 0
    /// One reusable request per bucket; `started` of them are in flight this step.
    let requests: [PendingCollective]
    var started = 0
    var failure: Error?
    /// Bytes this rank all-reduced in the last step: 4 × (statistics + every tensor that trained).
    public private(set) var bytesReduced = 0
    /// Seconds inside communication calls in the last step (starting, polling, waiting, packing and unpacking).
    public private(set) var commSeconds = 0.0
    /// Seconds blocked in the final wait: the communication not hidden behind the backward.
    public private(set) var exposedSeconds = 0.0
    /// The part of ``exposedSeconds`` spent waiting for the slowest rank to reach ``finish()`` (the rest is
    /// transfer): the time blocked in `arrival`'s all-reduce, which completes once every rank has started it.
    public private(set) var waitSlowestSeconds = 0.0
    /// One float, all-reduced after every gradient bucket has started: a probe of when the last rank arrived.
    let arrival: FloatBuffer
    let arrivalRequest: PendingCollective
    /// Summed statistics of the last step: loss sum, correct predictions, examples.
    public private(set) var statistics = (lossSum: 0.0, correct: 0, count: 0)
    /// Whether any rank asked to stop in the last step (a preemption signal): every rank sees the same answer in
    /// the same step, so all stop at the same boundary.
    public private(set) var stopRequested = false
    static let statisticsCount = 4
    /// Whether the reduced statistics or gradients of the last step hold NaN or Inf. A non-finite value on any
    /// rank makes the sum non-finite on every rank, so all ranks see the same answer in the same step.
    public private(set) var nonFinite = false

    public init(comm: Communicator, tensors: TrainableTensors) throws {
        self.comm = comm
        self.tensors = tensors
        buffer = try FloatBuffer(count: Self.statisticsCount + tensors.totalCount)
        requests = tensors.buckets.map { _ in comm.makeRequest() }
        arrival = try FloatBuffer(count: 1)
        arrivalRequest = comm.makeRequest()
    }

    /// Starts a step: packs this rank's statistics (and whether it asks to stop) and the head's gradients (final
    /// once the loss is known) and starts their all-reduce.
    public func begin(lossSum: Double, correct: Int, count: Int, stopRequested: Bool = false) {
        cursor = 0; bucketStart = 0; started = 0; failure = nil
        commSeconds = 0
        timed {
            buffer[0] = Float(lossSum); buffer[1] = Float(correct); buffer[2] = Float(count)
            buffer[3] = stopRequested ? 1 : 0
            cursor = Self.statisticsCount
            reduce(tensors.headBucket)
        }
    }

    /// Layer `l`'s gradients are final (the backward's `afterBlock`): packs and starts its bucket.
    public func layerDone(_ l: Int) {
        timed { reduce(tensors.bucket(layer: l)) }
    }

    /// Packs and starts the stem bucket, waits for every bucket, and writes the averages back into the gradients:
    /// sum / (ranks · `microBatches`) — each rank's gradients are the sum of its `microBatches` micro-batch means
    /// (``DataParallelTrainer``'s accumulation). The statistics stay summed.
    public func finish(microBatches: Int = 1) throws {
        timed { reduce(tensors.stemBucket) }
        if let failure { throw failure }
        let t0 = Date()
        try comm.startAllSum(UnsafeMutableBufferPointer(start: arrival.base, count: 1), request: arrivalRequest)
        try comm.wait(arrivalRequest)
        waitSlowestSeconds = Date().timeIntervalSince(t0)
        for p in requests[..<started] { try comm.wait(p) }
        exposedSeconds = Date().timeIntervalSince(t0)
        timed {
            var finite = true
            for i in 0..<cursor where !buffer[i].isFinite { finite = false; break }
            nonFinite = !finite
            statistics = (Double(buffer[0]), Int(buffer[1].rounded()), Int(buffer[2].rounded()))
            stopRequested = buffer[3] > 0
            let inv = 1 / Float(comm.size * microBatches)
            var offset = Self.statisticsCount
            tensors.forEachTraining { t in
                let src = buffer.base + offset
                for i in 0..<t.grad.count { t.grad[i] = src[i] * inv }
                offset += t.grad.count
            }
        }
        commSeconds += exposedSeconds
        bytesReduced = cursor * MemoryLayout<Float>.stride
    }

    /// Packs the training tensors of `bucket` after what is already packed, starts the all-reduce of everything
    /// packed since the last start, and nudges the ones in flight. A failure is kept for ``finish()`` (the
    /// backward cannot be interrupted).
    func reduce(_ bucket: Range<Int>) {
        tensors.forEachTraining(in: bucket) { t in
            (buffer.base + cursor).update(from: t.grad.baseAddress!, count: t.grad.count)
            cursor += t.grad.count
        }
        do {
            if cursor > bucketStart {
                try comm.startAllSum(UnsafeMutableBufferPointer(start: buffer.base + bucketStart, count: cursor - bucketStart),
                                     request: requests[started])
                started += 1
                bucketStart = cursor
            }
            for p in requests[..<started] where !p.completed { _ = try comm.poll(p) }
        } catch {
            failure = failure ?? error
        }
    }

    func timed(_ body: () -> Void) {
        let t0 = Date()
        body()
        commSeconds += Date().timeIntervalSince(t0)
    }
}
