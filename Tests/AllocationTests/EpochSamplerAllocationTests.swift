import Datasets
import XCTest

/// The sampler's buffer API allocates only on the first call of an epoch (the epoch's permutation).
final class EpochSamplerAllocationTests: XCTestCase {
    func testBatchAndShardIntoABufferDoNotAllocateWithinAnEpoch() throws {
        let sampler = try EpochSampler(count: 1000, batchSize: 32, seed: 7)
        var storage = [Int](repeating: 0, count: 32)
        var array: [Int] = []
        array.reserveCapacity(32)
        for epoch in 0..<3 {
            let first = EpochSampler.Position(epoch: epoch, batchIndex: 0)
            // The first calls of an epoch compute its permutation (and, the very first time, the Swift runtime
            // fills its metadata caches).
            _ = try storage.withUnsafeMutableBufferPointer { try sampler.batch(at: first, into: $0) }
            _ = try storage.withUnsafeMutableBufferPointer { try sampler.shard(at: first, rank: 0, worldSize: 4, into: $0) }
            try sampler.batch(at: first, into: &array)
            try sampler.shard(at: first, rank: 0, worldSize: 4, into: &array)
            var written = 0
            let n = try allocations {
                try storage.withUnsafeMutableBufferPointer { buffer in
                    for index in 0..<sampler.batchesPerEpoch {
                        let p = EpochSampler.Position(epoch: epoch, batchIndex: index)
                        written += try sampler.batch(at: p, into: buffer)
                        for rank in 0..<4 { written += try sampler.shard(at: p, rank: rank, worldSize: 4, into: buffer) }
                    }
                }
                for index in 0..<sampler.batchesPerEpoch {
                    let p = EpochSampler.Position(epoch: epoch, batchIndex: index)
                    try sampler.batch(at: p, into: &array)
                    try sampler.shard(at: p, rank: 3, worldSize: 4, into: &array)
                    _ = try sampler.position(ofStep: epoch * sampler.batchesPerEpoch + index)
                }
            }
            XCTAssertEqual(n, 0, "epoch \(epoch)")
            XCTAssertEqual(written, 2 * 32 * sampler.batchesPerEpoch)
            XCTAssertEqual(array, try sampler.shard(sampler.batch(epoch: epoch, index: sampler.batchesPerEpoch - 1),
                                                    rank: 3, worldSize: 4))
        }
    }
}
