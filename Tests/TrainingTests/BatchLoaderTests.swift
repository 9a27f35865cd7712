import Communication
import Datasets
import Foundation
import Tensors
import TestHelpers
import Training
import VisionTransformer
import XCTest

/// The loader's prefetch thread changes when a batch is read, never what it holds.
final class BatchLoaderTests: XCTestCase {
    func source() throws -> TransformedImageSet {
        TransformedImageSet(try randomImageSet(count: 20, seed: 3), transform: ImageTransform(height: 4, width: 4))
    }

    func testPrefetchGivesTheSameBatchesAsLoadingInPlace() throws {
        // Two sources: a source is read by one thread at a time (its transform's scratch is reused).
        let s = try source()
        let sampler = try EpochSampler(count: s.count, batchSize: 4, seed: 7)
        let direct = try BatchLoader(source: s, sampler: sampler, rank: 1, worldSize: 2, totalSteps: 12, prefetch: false)
        let ahead = try BatchLoader(source: try source(), sampler: sampler, rank: 1, worldSize: 2, totalSteps: 12, prefetch: true)
        let n = 2 * s.floatsPerImage
        // In order, then a jump back (a resume) and on again.
        for step in Array(0..<12) + [3, 4, 5] {
            let a = try direct.batch(step: step), b = try ahead.batch(step: step)
            XCTAssertEqual(a.labels, b.labels, "step \(step)")
            XCTAssertEqual(Array(UnsafeBufferPointer(start: a.pixels, count: n)),
                           Array(UnsafeBufferPointer(start: b.pixels, count: n)), "step \(step)")
        }
        // And the labels are the sampler's shard (an independent derivation).
        let global = try sampler.batch(at: sampler.position(ofStep: 9))
        XCTAssertEqual(try direct.batch(step: 9).labels, global[2..<4].map { s.labels[$0] })
    }

    /// A source that fails on one image: the error reaches the step that needs it, from the prefetch thread too.
    final class Failing: ImageSource {
        let inner: TransformedImageSet, bad: Int
        init(_ inner: TransformedImageSet, bad: Int) { self.inner = inner; self.bad = bad }
        var count: Int { inner.count }
        var numClasses: Int { inner.numClasses }
        var labels: [Int32] { inner.labels }
        var channels: Int { inner.channels }
        var height: Int { inner.height }
        var width: Int { inner.width }
        var summary: String { "failing" }
        func identify(_ add: (UnsafeRawBufferPointer) -> Void) { inner.identify(add) }
        func load(_ indices: [Int], epoch: Int?, into out: UnsafeMutablePointer<Float>) throws {
            if indices.contains(bad) { throw DatasetError(path: "image-\(bad).png", .invalidArgument("corrupt")) }
            try inner.load(indices, epoch: epoch, into: out)
        }
    }

    func testALoadErrorReachesItsStep() throws {
        let s = try source()
        let sampler = try EpochSampler(count: s.count, batchSize: 4, seed: 7)
        let first = try sampler.batch(at: sampler.position(ofStep: 2))[0]
        let loader = try BatchLoader(source: Failing(s, bad: first), sampler: sampler, rank: 0, worldSize: 1,
                                     totalSteps: 5, prefetch: true)
        XCTAssertNoThrow(try loader.batch(step: 0))
        XCTAssertNoThrow(try loader.batch(step: 1))       // step 2 is loading in the background now
        XCTAssertThrowsError(try loader.batch(step: 2)) { XCTAssertTrue("\($0)".contains("image-\(first).png"), "\($0)") }
    }

    /// A data-parallel run with the prefetching loader is bitwise the run without it.
    func testTrainingWithPrefetchIsBitwiseTheSame() throws {
        var c = TrainingConfig()
        c.lora.rank = 2; c.steps = 8; c.batchSize = 4; c.warmupSteps = 1; c.penaltyStartStep = 2; c.scoreLR = 0.05
        func run(_ prefetch: Bool) throws -> [UInt8] {
            let dp = try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try randomTinyViT(),
                                             data: try source(), config: c, prefetch: prefetch)
            try dp.run()
            return dp.stateBytes()
        }
        XCTAssertEqual(try run(true), try run(false))
    }
}
