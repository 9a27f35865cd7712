import Synchronization
import Tensors

/// Which examples go into which step, for data-parallel training: a pure function of
/// (`count`, `batchSize`, `seed`, `dropLast`, epoch, step), so every rank computes the same global batches without
/// communicating, and a run resumed at a ``Position`` sees exactly the batches it would have seen.
///
/// Exact definition: epoch `e` visits the indices `SeededRandom(seed: seed, stream: "epoch-\(e)").permutation(count)`
/// in that order, cut into consecutive global batches of `batchSize`. The last, shorter batch (when `batchSize`
/// does not divide `count`) is dropped if `dropLast`, kept otherwise. Rank `r` of `w` then trains on the `r`-th of
/// `w` equal contiguous slices of each global batch (``shard(_:rank:worldSize:)``).
///
/// `dropLast` defaults to `true` because every step should then see the same global batch size (a short last
/// batch changes the gradient's scale and noise, and usually cannot be split evenly across ranks); each epoch
/// skips at most `batchSize − 1` examples, a different random set every epoch.
///
/// The permutation of the most recently used epoch is cached (shared by copies of the sampler, thread-safe), so
/// the steps of an epoch compute it once; ``batch(at:into:)`` and ``shard(at:rank:worldSize:into:)`` then write a
/// step's indices into the caller's buffer without allocating. The first call of an epoch allocates (the new
/// permutation).
public struct EpochSampler: Equatable, Sendable, Codable {
    /// Number of examples (indices `0 ..< count`).
    public let count: Int
    /// Examples per global batch (summed over all ranks).
    public let batchSize: Int
    public let seed: UInt64
    public let dropLast: Bool
    /// The order of the epoch used last (not part of the value: it is a function of the fields above).
    private let cache = OrderCache()

    private final class OrderCache: Sendable {
        let order = Mutex<(epoch: Int, indices: [Int])?>(nil)
    }

    /// A step of training: the `batchIndex`-th global batch (0-based) of `epoch`.
    public struct Position: Equatable, Hashable, Sendable, Codable {
        public var epoch: Int
        public var batchIndex: Int
        public init(epoch: Int, batchIndex: Int) {
            self.epoch = epoch
            self.batchIndex = batchIndex
        }
    }

    /// - Throws: ``DatasetError`` (path `"EpochSampler"`) if `count < 1` or `batchSize < 1`, or if `dropLast` and
    ///   `batchSize > count` (an epoch would have no batch at all).
    public init(count: Int, batchSize: Int, seed: UInt64, dropLast: Bool = true) throws {
        func fail(_ text: String) -> DatasetError { DatasetError(path: "EpochSampler", .invalidArgument(text)) }
        guard count >= 1 else { throw fail("count must be >= 1, got \(count)") }
        guard batchSize >= 1 else { throw fail("batchSize must be >= 1, got \(batchSize)") }
        if dropLast && batchSize > count {
            throw fail("batchSize \(batchSize) is larger than count \(count): with dropLast every epoch would be empty")
        }
        self.count = count
        self.batchSize = batchSize
        self.seed = seed
        self.dropLast = dropLast
    }

    private enum CodingKeys: String, CodingKey { case count, batchSize, seed, dropLast }

    public static func == (a: EpochSampler, b: EpochSampler) -> Bool {
        a.count == b.count && a.batchSize == b.batchSize && a.seed == b.seed && a.dropLast == b.dropLast
    }

    /// Decodes and validates exactly like ``init(count:batchSize:seed:dropLast:)`` (a checkpoint is user input).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(count: c.decode(Int.self, forKey: .count), batchSize: c.decode(Int.self, forKey: .batchSize),
                      seed: c.decode(UInt64.self, forKey: .seed), dropLast: c.decode(Bool.self, forKey: .dropLast))
    }

    /// Global batches per epoch: `count / batchSize` if `dropLast`, else `⌈count / batchSize⌉`. At least 1.
    public var batchesPerEpoch: Int { dropLast ? count / batchSize : (count + batchSize - 1) / batchSize }

    /// The order in which epoch `epoch` visits the examples (a permutation of `0 ..< count`). Defined for every
    /// `Int`, negative ones included.
    public func permutation(epoch: Int) -> [Int] {
        cache.order.withLock { cached in
            if let hit = cached, hit.epoch == epoch { return hit.indices }
            var rng = SeededRandom(seed: seed, stream: "epoch-\(epoch)")
            let indices = rng.permutation(count)
            cached = (epoch, indices)
            return indices
        }
    }

    /// The ``batchesPerEpoch`` global batches of `epoch`, in training order.
    public func globalBatches(epoch: Int) -> [[Int]] {
        let order = permutation(epoch: epoch)
        return (0..<batchesPerEpoch).map { Array(order[batchRange($0)]) }
    }

    /// Where global batch `index` lies in its epoch's order.
    private func batchRange(_ index: Int) -> Range<Int> { (index * batchSize)..<min((index + 1) * batchSize, count) }

    /// ``batchRange(_:)`` of a checked `index`.
    private func checkedBatchRange(_ index: Int) throws -> Range<Int> {
        guard index >= 0 && index < batchesPerEpoch else {
            throw DatasetError(path: "EpochSampler.batch", .invalidArgument(
                "index \(index) is out of range; expected 0 ..< \(batchesPerEpoch) (batchesPerEpoch)"))
        }
        return batchRange(index)
    }

    /// Global batch `index` of `epoch` (= `globalBatches(epoch: epoch)[index]`).
    ///
    /// - Throws: ``DatasetError`` (path `"EpochSampler.batch"`) if `index` is not in `0 ..< batchesPerEpoch`.
    public func batch(epoch: Int, index: Int) throws -> [Int] {
        let range = try checkedBatchRange(index)
        return Array(permutation(epoch: epoch)[range])
    }

    /// The global batch at `position` (see ``batch(epoch:index:)``).
    public func batch(at position: Position) throws -> [Int] {
        try batch(epoch: position.epoch, index: position.batchIndex)
    }

    /// Writes the global batch at `position` (``batch(at:)``) into the start of `out` and returns how many
    /// indices it wrote. Does not allocate once the position's epoch is cached.
    ///
    /// - Throws: ``DatasetError`` (path `"EpochSampler.batch"`) if the position's batch index is out of range or
    ///   `out` is shorter than the batch.
    public func batch(at position: Position, into out: UnsafeMutableBufferPointer<Int>) throws -> Int {
        try write(position, try checkedBatchRange(position.batchIndex), into: out)
    }

    /// Replaces the contents of `out` by the global batch at `position` (``batch(at:)``), keeping its capacity:
    /// does not allocate once the position's epoch is cached if `out` is uniquely referenced and has room.
    public func batch(at position: Position, into out: inout [Int]) throws {
        replace(&out, position, try checkedBatchRange(position.batchIndex))
    }

    /// Writes rank `rank`'s shard of the global batch at `position` (``shard(_:rank:worldSize:)`` of
    /// ``batch(at:)``) into the start of `out` and returns how many indices it wrote. Does not allocate once the
    /// position's epoch is cached.
    ///
    /// - Throws: ``DatasetError`` as ``batch(at:into:)`` and ``shard(_:rank:worldSize:)`` do.
    public func shard(at position: Position, rank: Int, worldSize: Int,
                      into out: UnsafeMutableBufferPointer<Int>) throws -> Int {
        try write(position, try checkedShardRange(position, rank: rank, worldSize: worldSize), into: out)
    }

    /// Replaces the contents of `out` by rank `rank`'s shard of the global batch at `position`, keeping its
    /// capacity: does not allocate once the position's epoch is cached if `out` is uniquely referenced and has
    /// room.
    public func shard(at position: Position, rank: Int, worldSize: Int, into out: inout [Int]) throws {
        replace(&out, position, try checkedShardRange(position, rank: rank, worldSize: worldSize))
    }

    /// Where rank `rank`'s shard of the batch at `position` lies in its epoch's order.
    private func checkedShardRange(_ position: Position, rank: Int, worldSize: Int) throws -> Range<Int> {
        let batch = try checkedBatchRange(position.batchIndex)
        let part = try shardRange(batchCount: batch.count, rank: rank, worldSize: worldSize)
        return (batch.lowerBound + part.lowerBound)..<(batch.lowerBound + part.upperBound)
    }

    /// Copies `range` of the position's epoch order into `out`.
    private func write(_ position: Position, _ range: Range<Int>, into out: UnsafeMutableBufferPointer<Int>) throws -> Int {
        guard out.count >= range.count else {
            throw DatasetError(path: "EpochSampler.batch", .invalidArgument(
                "the output buffer holds \(out.count) indices; expected at least \(range.count)"))
        }
        let order = permutation(epoch: position.epoch)
        // An index loop: iterating `range.enumerated()` heap-allocates in unoptimized (test) builds.
        for i in 0..<range.count { out[i] = order[range.lowerBound + i] }
        return range.count
    }

    /// Replaces the contents of `out` by `range` of the position's epoch order, keeping its capacity.
    private func replace(_ out: inout [Int], _ position: Position, _ range: Range<Int>) {
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: permutation(epoch: position.epoch)[range])
    }

    /// The position of global step `step` (0-based, counted from the first batch of epoch 0):
    /// `(step / batchesPerEpoch, step % batchesPerEpoch)`. For resuming from a saved step count.
    ///
    /// - Throws: ``DatasetError`` (path `"EpochSampler.position"`) if `step < 0`.
    public func position(ofStep step: Int) throws -> Position {
        guard step >= 0 else {
            throw DatasetError(path: "EpochSampler.position", .invalidArgument("step must be >= 0, got \(step)"))
        }
        return Position(epoch: step / batchesPerEpoch, batchIndex: step % batchesPerEpoch)
    }

    /// The position after `position`: the next batch of the same epoch, or batch 0 of the next epoch.
    public func position(after position: Position) -> Position {
        position.batchIndex + 1 < batchesPerEpoch
            ? Position(epoch: position.epoch, batchIndex: position.batchIndex + 1)
            : Position(epoch: position.epoch + 1, batchIndex: 0)
    }

    /// Rank `rank`'s part of a global batch: the `rank`-th contiguous slice of length `batch.count / worldSize`,
    /// i.e. `batch[rank·n ..< (rank + 1)·n]`. The shards of ranks `0 ..< worldSize` are disjoint and, concatenated
    /// in rank order, give `batch` back.
    ///
    /// - Throws: ``DatasetError`` (path `"EpochSampler.shard"`) if `worldSize < 1`, `rank` is not in
    ///   `0 ..< worldSize`, or `batch.count` is not divisible by `worldSize` (naming both sizes).
    public func shard(_ batch: [Int], rank: Int, worldSize: Int) throws -> [Int] {
        Array(batch[try shardRange(batchCount: batch.count, rank: rank, worldSize: worldSize)])
    }

    /// Where rank `rank`'s shard lies in a global batch of `batchCount` indices (see ``shard(_:rank:worldSize:)``).
    private func shardRange(batchCount: Int, rank: Int, worldSize: Int) throws -> Range<Int> {
        func fail(_ text: String) -> DatasetError { DatasetError(path: "EpochSampler.shard", .invalidArgument(text)) }
        guard worldSize >= 1 else { throw fail("worldSize must be >= 1, got \(worldSize)") }
        guard rank >= 0 && rank < worldSize else { throw fail("rank \(rank) is out of range; expected 0 ..< \(worldSize) (worldSize)") }
        guard batchCount % worldSize == 0 else {
            throw fail("a batch of \(batchCount) indices cannot be split evenly across worldSize \(worldSize) ranks;"
                       + " expected the batch size to be a multiple of worldSize")
        }
        let n = batchCount / worldSize
        return (rank * n)..<((rank + 1) * n)
    }
}
