import Foundation
import SafeTensors
import XCTest
@testable import VisionTransformer

/// Inputs that crashed `LoRAAdapters.load` (found while fuzzing the loaders with launch/fuzz, target
/// `lora-adapter`); each must now fail with a clean error naming the file.
final class LoRAAdapterFuzzRegressionTests: XCTestCase {
    let model = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3, positionGrid: 3)
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "lora-fuzz-regression-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// A safetensors file with no tensors: u64 header length 8, then `{}` padded with spaces.
    let emptySafetensors: [UInt8] = [8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20]

    func load(config: String, weights: [UInt8]) throws -> (LoRAAdapters, gated: Bool) {
        try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/" + LoRAAdapters.configFile))
        try Data(weights).write(to: URL(fileURLWithPath: dir + "/" + LoRAAdapters.weightsFile))
        return try LoRAAdapters.load(directory: dir, model: model)
    }

    func assertRejectsRank(_ r: String, file: StaticString = #filePath, line: UInt = #line) {
        let config = #"{"r": \#(r), "lora_alpha": 4.0, "target_modules": ["query", "value"]}"#
        XCTAssertThrowsError(try load(config: config, weights: emptySafetensors), file: file, line: line) { error in
            guard let e = error as? CheckpointError else { return XCTFail("\(type(of: error)): \(error)", file: file, line: line) }
            XCTAssertTrue(e.path.hasSuffix("/" + LoRAAdapters.configFile), e.path, file: file, line: line)
            XCTAssertTrue(e.message.contains("`r` is \(r); expected at most 12"), e.message, file: file, line: line)
        }
    }

    /// `"r": 4611686018427387904` (2^62): r × in_features overflowed in TensorLayout.add — a trap
    /// ("arithmetic overflow") instead of an error.
    func testFuzzRegressionRankOverflowingTheLayout() {
        assertRejectsRank("4611686018427387904")
        assertRejectsRank("9223372036854775807")
    }

    /// `"r": 100000000`: the loader asked for 2 × 4 blocks × 1e8 × 16 floats (25.6 GB) before reading the
    /// weights — out of memory under the fuzzer's 2 GB limit, an OOM kill (or a long stall) on a real machine.
    func testFuzzRegressionRankTooLargeToAllocate() {
        assertRejectsRank("100000000")
        assertRejectsRank("13")
    }

    /// The largest rank still accepted is the model's widest layer (MLP 12 here); the loader works as before.
    func testFuzzRegressionRankAtTheLimitStillLoads() throws {
        let config = #"{"r": 12, "lora_alpha": 4.0, "target_modules": ["mlp.fc1"]}"#
        let (adapters, gated) = try load(config: config, weights: emptySafetensors)
        XCTAssertEqual(adapters.config.rank, 12)
        XCTAssertFalse(gated)
        XCTAssertEqual(adapters.activeCount, 0)
    }
}
