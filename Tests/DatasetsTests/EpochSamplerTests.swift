import Foundation
import XCTest
import Tensors
@testable import Datasets

final class EpochSamplerTests: XCTestCase {
    func testEveryIndexOncePerEpochWithoutDropLast() throws {
        let s = try EpochSampler(count: 10, batchSize: 3, seed: 4, dropLast: false)
        XCTAssertEqual(s.batchesPerEpoch, 4)
        for epoch in 0..<3 {
            let batches = s.globalBatches(epoch: epoch)
            XCTAssertEqual(batches.map(\.count), [3, 3, 3, 1])
            XCTAssertEqual(batches.flatMap { $0 }, s.permutation(epoch: epoch))
            XCTAssertEqual(batches.flatMap { $0 }.sorted(), Array(0..<10))
        }
    }

    func testDropLastGivesEqualBatches() throws {
        let s = try EpochSampler(count: 10, batchSize: 3, seed: 4)
        XCTAssertTrue(s.dropLast)
        XCTAssertEqual(s.batchesPerEpoch, 3)
        let batches = s.globalBatches(epoch: 0)
        XCTAssertEqual(batches.map(\.count), [3, 3, 3])
        XCTAssertEqual(batches.flatMap { $0 }, Array(s.permutation(epoch: 0).prefix(9)))
        XCTAssertEqual(Set(batches.flatMap { $0 }).count, 9)
        // Exact division: nothing is dropped.
        let exact = try EpochSampler(count: 12, batchSize: 4, seed: 4)
        XCTAssertEqual(exact.globalBatches(epoch: 2).flatMap { $0 }.sorted(), Array(0..<12))
    }

    func testOrderIsTheDocumentedPermutation() throws {
        let s = try EpochSampler(count: 50, batchSize: 7, seed: 123)
        for epoch in [0, 1, 17] {
            var rng = SeededRandom(seed: 123, stream: "epoch-\(epoch)")
            XCTAssertEqual(s.permutation(epoch: epoch), rng.permutation(50))
        }
    }

    func testEpochsDifferAndSeedsReproduce() throws {
        let a = try EpochSampler(count: 100, batchSize: 10, seed: 1)
        let b = try EpochSampler(count: 100, batchSize: 10, seed: 1)
        let c = try EpochSampler(count: 100, batchSize: 10, seed: 2)
        XCTAssertEqual(a.globalBatches(epoch: 3), b.globalBatches(epoch: 3))
        XCTAssertNotEqual(a.globalBatches(epoch: 0), a.globalBatches(epoch: 1))
        XCTAssertNotEqual(a.globalBatches(epoch: 0), c.globalBatches(epoch: 0))
        XCTAssertNotEqual(a.permutation(epoch: 0), Array(0..<100), "the order is shuffled")
    }

    func testShardsAreDisjointAndConcatenateToTheBatch() throws {
        let s = try EpochSampler(count: 30, batchSize: 12, seed: 9)
        let batch = try s.batch(epoch: 1, index: 1)
        XCTAssertEqual(batch.count, 12)
        for world in [1, 2, 3, 4, 6, 12] {
            let shards = try (0..<world).map { try s.shard(batch, rank: $0, worldSize: world) }
            XCTAssertTrue(shards.allSatisfy { $0.count == 12 / world })
            XCTAssertEqual(shards.flatMap { $0 }, batch, "worldSize \(world)")
            XCTAssertEqual(Set(shards.flatMap { $0 }).count, 12, "worldSize \(world): disjoint")
        }
        XCTAssertEqual(try s.shard(batch, rank: 1, worldSize: 3), Array(batch[4..<8]))
    }

    func testShardErrors() throws {
        let s = try EpochSampler(count: 30, batchSize: 10, seed: 9)
        let batch = try s.batch(epoch: 0, index: 0)
        func check(_ message: String, _ body: () throws -> [Int]) {
            XCTAssertThrowsError(try body()) { error in
                XCTAssertEqual(error as? DatasetError, DatasetError(path: "EpochSampler.shard", .invalidArgument(message)))
            }
        }
        check("a batch of 10 indices cannot be split evenly across worldSize 3 ranks; expected the batch size to be"
              + " a multiple of worldSize") { try s.shard(batch, rank: 0, worldSize: 3) }
        check("rank 2 is out of range; expected 0 ..< 2 (worldSize)") { try s.shard(batch, rank: 2, worldSize: 2) }
        check("rank -1 is out of range; expected 0 ..< 2 (worldSize)") { try s.shard(batch, rank: -1, worldSize: 2) }
        check("worldSize must be >= 1, got 0") { try s.shard(batch, rank: 0, worldSize: 0) }
    }

    func testBatchAccessAndResumePositions() throws {
        let s = try EpochSampler(count: 23, batchSize: 5, seed: 77)  // 4 batches per epoch (3 dropped)
        XCTAssertEqual(s.batchesPerEpoch, 4)
        for epoch in 0..<2 {
            let all = s.globalBatches(epoch: epoch)
            for index in 0..<4 {
                XCTAssertEqual(try s.batch(epoch: epoch, index: index), all[index])
                XCTAssertEqual(try s.batch(at: .init(epoch: epoch, batchIndex: index)), all[index])
            }
        }
        var p = EpochSampler.Position(epoch: 0, batchIndex: 0)
        for step in 0..<13 {
            XCTAssertEqual(try s.position(ofStep: step), p, "step \(step)")
            p = s.position(after: p)
        }
        XCTAssertEqual(p, .init(epoch: 3, batchIndex: 1))
        XCTAssertThrowsError(try s.batch(epoch: 0, index: 4)) { error in
            XCTAssertEqual(error as? DatasetError, DatasetError(path: "EpochSampler.batch", .invalidArgument(
                "index 4 is out of range; expected 0 ..< 4 (batchesPerEpoch)")))
        }
        XCTAssertThrowsError(try s.position(ofStep: -1)) { error in
            XCTAssertEqual(error as? DatasetError, DatasetError(path: "EpochSampler.position",
                                                               .invalidArgument("step must be >= 0, got -1")))
        }
    }

    func testInvalidConfigurations() throws {
        func check(_ message: String, _ body: () throws -> EpochSampler) {
            XCTAssertThrowsError(try body()) { error in
                XCTAssertEqual(error as? DatasetError, DatasetError(path: "EpochSampler", .invalidArgument(message)))
            }
        }
        check("count must be >= 1, got 0") { try EpochSampler(count: 0, batchSize: 1, seed: 0) }
        check("batchSize must be >= 1, got 0") { try EpochSampler(count: 5, batchSize: 0, seed: 0) }
        check("batchSize 6 is larger than count 5: with dropLast every epoch would be empty") {
            try EpochSampler(count: 5, batchSize: 6, seed: 0)
        }
        // Without dropLast a batch larger than the dataset is one (short) batch per epoch.
        let one = try EpochSampler(count: 5, batchSize: 6, seed: 0, dropLast: false)
        XCTAssertEqual(one.batchesPerEpoch, 1)
        XCTAssertEqual(one.globalBatches(epoch: 0).map { $0.sorted() }, [[0, 1, 2, 3, 4]])
    }

    func testCodableRoundTripValidates() throws {
        let s = try EpochSampler(count: 40, batchSize: 8, seed: 0xFFFF_FFFF_FFFF_FFFF, dropLast: false)
        let data = try JSONEncoder().encode(s)
        XCTAssertEqual(try JSONDecoder().decode(EpochSampler.self, from: data), s)
        let bad = Data(#"{"count": 40, "batchSize": 0, "seed": 1, "dropLast": true}"#.utf8)
        XCTAssertThrowsError(try JSONDecoder().decode(EpochSampler.self, from: bad)) { error in
            XCTAssertEqual(error as? DatasetError, DatasetError(path: "EpochSampler", .invalidArgument("batchSize must be >= 1, got 0")))
        }
    }

    /// The buffer-writing API gives what the array API gives, at every position of several epochs, whether the
    /// positions come in training order or jump around (a resumed run), and from copies sharing the cache.
    func testIntoBufferMatchesTheArrayAPI() throws {
        let s = try EpochSampler(count: 23, batchSize: 6, seed: 31)
        let reference = try EpochSampler(count: 23, batchSize: 6, seed: 31)
        var positions: [EpochSampler.Position] = []
        for step in 0..<(3 * s.batchesPerEpoch) { positions.append(try s.position(ofStep: step)) }
        var jumping = SeededRandom(seed: 2)
        var shuffled = positions
        shuffled.shuffle(using: &jumping)
        var array: [Int] = []
        var storage = [Int](repeating: -1, count: 8)
        for p in positions + shuffled {
            let copy = s
            let expected = try reference.batch(at: p)
            try copy.batch(at: p, into: &array)
            XCTAssertEqual(array, expected, "\(p)")
            let n = try storage.withUnsafeMutableBufferPointer { try s.batch(at: p, into: $0) }
            XCTAssertEqual(Array(storage[..<n]), expected, "\(p)")
            for world in [1, 2, 3, 6] {
                for rank in 0..<world {
                    let shard = try reference.shard(expected, rank: rank, worldSize: world)
                    try s.shard(at: p, rank: rank, worldSize: world, into: &array)
                    XCTAssertEqual(array, shard, "\(p) rank \(rank) of \(world)")
                    let m = try storage.withUnsafeMutableBufferPointer { try copy.shard(at: p, rank: rank, worldSize: world, into: $0) }
                    XCTAssertEqual(Array(storage[..<m]), shard, "\(p) rank \(rank) of \(world)")
                }
            }
        }
        XCTAssertEqual(s, reference, "the cache is not part of the value")
    }

    func testIntoBufferErrors() throws {
        let s = try EpochSampler(count: 30, batchSize: 10, seed: 9)
        var small = [Int](repeating: 0, count: 4)
        var array: [Int] = []
        XCTAssertThrowsError(try small.withUnsafeMutableBufferPointer { try s.batch(at: .init(epoch: 0, batchIndex: 0), into: $0) }) {
            XCTAssertEqual($0 as? DatasetError, DatasetError(path: "EpochSampler.batch", .invalidArgument(
                "the output buffer holds 4 indices; expected at least 10")))
        }
        XCTAssertThrowsError(try s.batch(at: .init(epoch: 0, batchIndex: 3), into: &array)) {
            XCTAssertEqual($0 as? DatasetError, DatasetError(path: "EpochSampler.batch", .invalidArgument(
                "index 3 is out of range; expected 0 ..< 3 (batchesPerEpoch)")))
        }
        XCTAssertThrowsError(try s.shard(at: .init(epoch: 0, batchIndex: 0), rank: 0, worldSize: 3, into: &array)) {
            XCTAssertEqual($0 as? DatasetError, DatasetError(path: "EpochSampler.shard", .invalidArgument(
                "a batch of 10 indices cannot be split evenly across worldSize 3 ranks; expected the batch size to be"
                + " a multiple of worldSize")))
        }
        XCTAssertEqual(try small.withUnsafeMutableBufferPointer {
            try s.shard(at: .init(epoch: 0, batchIndex: 0), rank: 1, worldSize: 5, into: $0)
        }, 2)
    }
}
