import CAllocationCounter
import Communication
import Datasets
import Foundation
import TestHelpers
import Training
import VisionTransformer
import XCTest

/// "Per-step work does no allocation": after warm-up, a data-parallel training step on one process makes no heap
/// allocation, for every method.
final class TrainingStepAllocationTests: XCTestCase {
    func trainer(_ method: Training.Method) throws -> DataParallelTrainer {
        var c = TrainingConfig()
        c.method = method; c.lora.rank = 2; c.steps = 50; c.batchSize = 4; c.warmupSteps = 1; c.penaltyStartStep = 2
        c.scoreLR = 0.05
        return try DataParallelTrainer(comm: SingleProcessCommunicator(), model: try randomTinyViT(),
                                       data: try randomImageSet(count: 24), size: 4, config: c)
    }

    /// Allocations of each of `measured` steps after `warmUp` steps.
    func stepAllocations(_ method: Training.Method, warmUp: Int = 3, measured: Int = 3) throws -> [Int] {
        let dp = try trainer(method)
        for _ in 0..<warmUp { _ = try dp.step() }
        return try (0..<measured).map { _ in try allocations { _ = try dp.step() } }
    }

    /// Run it with `ALLOCATION_STEP_TEST=1` (or a comma-separated list of methods, e.g. `=lora,full`) to see the
    /// current counts, and `ALLOCATION_COUNTER_BACKTRACE=1` for where each allocation comes from.
    func testTrainingStepsDoNotAllocate() throws {
        guard let selected = ProcessInfo.processInfo.environment["ALLOCATION_STEP_TEST"] else {
            throw XCTSkip("enable once the step is allocation-free")
        }
        let only = selected == "1" ? nil : Set(selected.split(separator: ",").map(String.init))
        for method in Training.Method.allCases where only?.contains(method.rawValue) ?? true {
            let counts = try stepAllocations(method)
            print("allocations per step, \(method.rawValue): \(counts)")
            XCTAssertEqual(counts, [0, 0, 0], method.rawValue)
        }
    }
}
