import Communication
import Datasets
import Foundation
import Tensors
import TestHelpers
import Training
import VisionTransformer
import XCTest

/// Cluster life on one process: a stop request (a preemption signal) ends the run at a step boundary with a
/// checkpoint that resumes bitwise; gradient accumulation keeps the global batch's result.
final class PreemptionTests: XCTestCase {
    func config(_ method: Method = .selective) -> TrainingConfig {
        var c = TrainingConfig()
        c.method = method; c.lora.rank = 2; c.steps = 10; c.batchSize = 8; c.warmupSteps = 1; c.penaltyStartStep = 3
        c.scoreLR = 0.05
        return c
    }

    func trainer(_ c: TrainingConfig, accumulate: Int = 1) throws -> DataParallelTrainer {
        try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try randomTinyViT(),
                                data: TransformedImageSet(try randomImageSet(count: 24, seed: 2),
                                                          transform: ImageTransform(height: 4, width: 4)),
                                config: c, accumulate: accumulate)
    }

    func testStopRequestCheckpointsAndResumesBitwise() throws {
        for m in [Method.selective, .full] {
            let whole = try trainer(config(m))
            try whole.run()
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("preempt-\(UUID())").path
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let first = try trainer(config(m))
            first.runDirectory = dir
            let stop = StopRequest()
            first.stopRequest = stop
            var seen: [Int] = []
            XCTAssertThrowsError(try first.run { s in
                seen.append(s.step)
                if s.step == 3 { stop.request() }          // arrives during step 4 (0-based 3 done): stop after step 4
            }) { e in
                let p = e as? PreemptedError
                XCTAssertEqual(p?.step, 5, "\(e)")
                XCTAssertEqual(p?.checkpointed, true)
            }
            XCTAssertEqual(seen, [0, 1, 2, 3, 4], "the request is seen at the next step's all-reduce, then the run stops")
            XCTAssertEqual(Checkpoint.list(runDirectory: dir).map(\.step), [5])
            let second = try trainer(config(m))
            _ = try second.resume(from: dir)
            XCTAssertEqual(second.trainer.step, 5)
            try second.run()
            XCTAssertEqual(second.stateBytes(), whole.stateBytes(), m.rawValue)
        }
    }

    /// The same global batch of 8 as 2 micro-batches of 4: the same run up to float summation order.
    func testAccumulationKeepsTheGlobalBatch() throws {
        var c = config(.lora)
        c.clipNorm = 0
        let one = try trainer(c), two = try trainer(c, accumulate: 2)
        XCTAssertEqual(two.trainer.batch, 4)
        var worst = 0.0
        for _ in 0..<6 {
            let a = try one.step(), b = try two.step()
            worst = max(worst, abs(a.loss - b.loss) / abs(a.loss))
            XCTAssertEqual(a.bytesReduced, b.bytesReduced)
        }
        XCTAssertLessThan(worst, 1e-5, "loss curves")
        let pa = one.trainer.adapters!.params.storage.toArray(), pb = two.trainer.adapters!.params.storage.toArray()
        let diff = zip(pa, pb).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThan(diff, 1e-4)
        XCTAssertGreaterThan(pa.map(abs).max() ?? 0, 0.01)
        XCTAssertThrowsError(try trainer(c, accumulate: 3)) { XCTAssertTrue("\($0)".contains("accumulate"), "\($0)") }
    }
}
