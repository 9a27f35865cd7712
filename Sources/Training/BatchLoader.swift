import Datasets
import Dispatch
import Foundation
import Tensors

/// This rank's batches of the training stream, step by step: the shard of global step n
/// (``EpochSampler/shard(at:rank:worldSize:into:)``) read from an ``ImageSource`` into one of two pixel buffers.
///
/// With `prefetch`, the batch of step n + 1 is loaded on a background thread while step n computes (double
/// buffering: the step reads one buffer while the loader fills the other), so decoding and resizing files are
/// hidden behind the step; ``exposedSeconds`` is what the step still waited. Without it (in-memory sets, whose
/// transform costs ~1 % of a step), each batch is loaded in the calling thread, allocation-free.
///
/// Steps are asked for in order (n, n + 1, …); asking for another step (a resume) loads it synchronously and
/// restarts the prefetch from there.
public final class BatchLoader {
    public let source: ImageSource
    public let sampler: EpochSampler
    public let rank: Int, worldSize: Int, batch: Int
    public let prefetch: Bool

    final class Slot {
        let pixels: FloatBuffer
        var labels: [Int32]
        var indices: [Int]
        /// The step this slot holds or is being filled with (-1: none).
        var step = -1
        var error: Error?
        var loadSeconds = 0.0
        let done = DispatchSemaphore(value: 0)
        var inFlight = false
        init(floats: Int, batch: Int) throws {
            pixels = try FloatBuffer(count: floats)
            labels = [Int32](repeating: 0, count: batch)
            indices = [Int](repeating: 0, count: batch)
        }
    }
    let slots: [Slot]
    let queue = DispatchQueue(label: "selora.batch-loader", qos: .userInitiated)
    /// Steps in the stream (no prefetch past the last).
    let totalSteps: Int

    /// Seconds the last ``batch(step:)`` waited for its data (the loading not hidden behind the previous step).
    public private(set) var exposedSeconds = 0.0
    /// Seconds the loader spent producing the last batch (in the background with prefetch).
    public private(set) var loadSeconds = 0.0

    public init(source: ImageSource, sampler: EpochSampler, rank: Int, worldSize: Int, totalSteps: Int,
                prefetch: Bool) throws {
        guard sampler.batchSize % worldSize == 0 else {
            throw ConfigError("batchSize", "the global batch \(sampler.batchSize) must divide by the \(worldSize) ranks")
        }
        self.source = source; self.sampler = sampler; self.rank = rank; self.worldSize = worldSize
        self.totalSteps = totalSteps; self.prefetch = prefetch
        let perRank = sampler.batchSize / worldSize, floats = perRank * source.floatsPerImage
        batch = perRank
        slots = try (0..<(prefetch ? 2 : 1)).map { _ in try Slot(floats: floats, batch: perRank) }
    }

    /// Loads step `n`'s shard into `slot` (on whichever thread calls it).
    func fill(_ slot: Slot, step n: Int) {
        let t0 = Date()
        slot.step = n
        slot.error = nil
        do {
            let position = try sampler.position(ofStep: n)
            try sampler.shard(at: position, rank: rank, worldSize: worldSize, into: &slot.indices)
            for (i, index) in slot.indices.enumerated() { slot.labels[i] = source.labels[index] }
            try source.load(slot.indices, epoch: position.epoch, into: slot.pixels.base)
        } catch {
            slot.error = error
        }
        slot.loadSeconds = Date().timeIntervalSince(t0)
    }

    /// This rank's pixels [batch, channels, height, width] and labels of step `n`, valid until the batch of step
    /// n + 1 (n + 2 with prefetch) is asked for. Rethrows a loading error (a corrupt file) naming the file.
    public func batch(step n: Int) throws -> (pixels: UnsafeMutablePointer<Float>, labels: [Int32]) {
        let t0 = Date()
        let slot = slots[n % slots.count]
        if slot.inFlight {
            slot.done.wait()
            slot.inFlight = false
        }
        if slot.step != n { fill(slot, step: n) }
        exposedSeconds = Date().timeIntervalSince(t0)
        loadSeconds = slot.loadSeconds
        if let e = slot.error { throw e }
        if prefetch, n + 1 < totalSteps {
            let next = slots[(n + 1) % slots.count]
            if next.inFlight { next.done.wait(); next.inFlight = false }
            if next.step != n + 1 {
                next.inFlight = true
                next.step = n + 1
                queue.async { [self] in
                    fill(next, step: n + 1)
                    next.done.signal()
                }
            }
        }
        return (slot.pixels.base, slot.labels)
    }

    /// Waits for a background load still running (call before the source or the buffers go away).
    public func drain() {
        for s in slots where s.inFlight { s.done.wait(); s.inFlight = false }
    }

    deinit { drain() }
}
