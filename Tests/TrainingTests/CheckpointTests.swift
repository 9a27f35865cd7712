import Communication
import Datasets
import Foundation
import SafeTensors
import Tensors
import TestHelpers
import Training
import VisionTransformer
import XCTest

/// Checkpoints on one process: a run stopped after a checkpoint and resumed ends bit for bit where the
/// uninterrupted run ends, for every method; checkpoints of another run are refused.
final class CheckpointTests: XCTestCase {
    let vit = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                        positionGrid: 3, layerNormEps: 1e-6)
    var dir: String!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID())").path
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func model(seed: UInt64 = 1) throws -> ViTModel { try randomTinyViT(seed: seed) }
    func data() throws -> ImageDataset { try randomImageSet(count: 24) }

    func config(_ m: Method) -> TrainingConfig {
        var c = TrainingConfig()
        c.method = m; c.lora.rank = 2; c.steps = 10; c.batchSize = 4; c.warmupSteps = 1; c.penaltyStartStep = 3
        c.scoreLR = 0.05
        return c
    }

    func final(_ dp: DataParallelTrainer) -> [UInt8] {
        dp.stateBytes()   // every trainable tensor: the backbone too in full
    }

    func testResumeIsBitwiseForEveryMethod() throws {
        for m in Method.allCases {
            let c = config(m)
            let whole = try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try model(), data: try data(), size: 4, config: c)
            try whole.run()
            let run = dir + "/\(m.rawValue)"
            let first = try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try model(), data: try data(), size: 4, config: c)
            first.runDirectory = run
            for _ in 0..<6 { _ = try first.step() }
            try first.checkpoint()
            _ = try first.step()     // progress after the checkpoint is lost, as in a crash
            let second = try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try model(), data: try data(), size: 4, config: c)
            let (path, skipped) = try second.resume(from: run)
            XCTAssertTrue(path.hasSuffix("step-00000006.safetensors"), path)
            XCTAssertTrue(skipped.isEmpty)
            XCTAssertEqual(second.trainer.step, 6)
            try second.run()
            XCTAssertEqual(final(second), final(whole), "\(m.rawValue): resumed run differs from the uninterrupted one")
        }
    }

    func testRefusesACheckpointOfAnotherRun() throws {
        let a = try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try model(), data: try data(), size: 4,
                                        config: config(.selective))
        a.runDirectory = dir
        _ = try a.step()
        try a.checkpoint()
        var other = config(.selective); other.penalty = 3
        let b = try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try model(), data: try data(), size: 4, config: other)
        XCTAssertThrowsError(try b.resume(from: dir)) { XCTAssertTrue("\($0)".contains("another training configuration"), "\($0)") }
        let c = try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try model(seed: 9), data: try data(), size: 4,
                                        config: config(.selective))
        XCTAssertThrowsError(try c.resume(from: dir)) { XCTAssertTrue("\($0)".contains("another base weights"), "\($0)") }
        let empty = try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try model(), data: try data(), size: 4,
                                            config: config(.selective))
        XCTAssertThrowsError(try empty.resume(from: dir + "/nothing-here")) { XCTAssertTrue("\($0)".contains("no checkpoints"), "\($0)") }
    }

    func testNeverWritesNonFiniteState() throws {
        let a = try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try model(), data: try data(), size: 4,
                                        config: config(.lora))
        a.runDirectory = dir
        _ = try a.step()
        try a.checkpoint()
        a.trainer.head.params.storage[0] = .nan
        _ = try? a.step()
        XCTAssertThrowsError(try a.checkpoint()) { XCTAssertTrue("\($0)".contains("NaN"), "\($0)") }
        XCTAssertEqual(Checkpoint.list(runDirectory: dir).map(\.step), [1])
    }
}
