import Foundation
import SafeTensors
import Training
import VisionTransformer
import XCTest

/// LoRA, score and head gradients on the REAL DINOv2 weights and real images against an independent autograd
/// reference: JAX in float64 (tools/make_grad_reference.py → Tests/Fixtures/lora_grad_ref/), 72 blocks, r = 2,
/// alpha 4, straight-through score gradients, 4 Fashion-MNIST images at 42 px.
final class GradientReferenceTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func path(_ p: String) -> String { root.appendingPathComponent(p).path }

    func testMatchesJAX() throws {
        let weights = ProcessInfo.processInfo.environment["SELORA_WEIGHTS"] ?? Self.path("weights/dinov2-vits14.safetensors")
        guard FileManager.default.fileExists(atPath: weights) else {
            XCTFail("\(weights) is missing: run launch/fetch-weights (launch/test does)")
            return
        }
        let dir = Self.path("Tests/Fixtures/lora_grad_ref")
        let model = try ViTModel.load(path: weights)
        let (adapters, gated) = try LoRAAdapters.load(directory: dir, model: model.config)
        XCTAssertTrue(gated)
        XCTAssertEqual(adapters.blocks.count, 72)
        XCTAssertEqual(adapters.config.scale, 2)
        let head = try ClassifierHead.load(path: dir + "/head.safetensors", hidden: 384)
        let batch = try SafeTensorsFile(path: dir + "/batch.safetensors")
        let shape = try batch.info("pixel_values").shape
        let dump = try GradientDump.compute(model: model, adapters: adapters, head: head,
                                            pixels: try batch.floats("pixel_values"),
                                            labels: try batch.int64s("labels").map { Int32($0) },
                                            height: shape[2], width: shape[3])
        let want = try SafeTensorsFile(path: dir + "/expected_grads.safetensors")
        XCTAssertEqual(Set(dump.map(\.name)), Set(want.names))
        var worst = (0.0, "")
        for t in dump {
            let w = try want.floats(t.name, expectShape: t.shape)
            // Relative to the tensor's scale: float32 forward/backward against a float64 reference.
            let scale = max(w.map { abs(Double($0)) }.max() ?? 0, 1e-8)
            let err = zip(t.values, w).map { abs(Double($0) - Double($1)) }.max() ?? 0
            if err / scale > worst.0 { worst = (err / scale, t.name) }
            XCTAssertLessThanOrEqual(err / scale, 1e-3, "\(t.name): max abs error \(err) at scale \(scale)")
        }
        print("JAX reference: worst error relative to the tensor's largest magnitude \(worst.0) (\(worst.1)); loss \(dump[0].values[0])")
    }
}
