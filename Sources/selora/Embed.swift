import ArgumentParser
import Foundation
import SafeTensors
import Tensors
import VisionTransformer

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the backbone on pixel tensors and write its last hidden state (after the final LayerNorm).",
        discussion: """
        Input: safetensors with key `pixel_values`, F32 [N, 3, H, W], already normalized; H and W multiples of the \
        patch size — or image files (--images), preprocessed as `selora pixels` does with the model's recipe. Output: safetensors with key `last_hidden_state`, F32 [N, 1 + (H/P)(W/P), hidden] — the same \
        tensor as Hugging Face `Dinov2Model(...).last_hidden_state`.
        """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Input safetensors holding `pixel_values` F32 [N, 3, H, W] (or image files with --images).")
    var pixels: String?

    @OptionGroup var inputs: ImageInputs

    @Option(help: "Output safetensors (written atomically).")
    var out: String

    @Option(help: "Images per forward pass.")
    var batchSize: Int = 16

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        guard (pixels == nil) != inputs.images.isEmpty else {
            throw ValidationError("give either --pixels F.safetensors or --images …, not both")
        }
    }

    func run() throws {
        let log = runtime.start("selora.embed")
        let files = pixels == nil ? try inputs.list().files : nil
        try checkOutput(out, notOneOf: (pixels.map { [$0] } ?? files.map { $0.paths.indices.map($0.path(at:)) } ?? [])
                        + [model.weights])
        let vit = try model.loadModel(log: log)
        let c = vit.config
        let (px, n, h, w): ([Float], Int, Int, Int)
        if let pixels {
            let file = try SafeTensorsFile(path: pixels)
            let info = try file.info("pixel_values")
            guard info.shape.count == 4, info.shape[1] == c.channels, info.shape[0] > 0 else {
                throw ValidationError("--pixels \(pixels): `pixel_values` has shape \(info.shape); expected [N, \(c.channels), H, W] with N > 0")
            }
            (n, h, w) = (info.shape[0], info.shape[2], info.shape[3])
            px = try file.floats("pixel_values")
            guard px.allSatisfy({ $0.isFinite }) else {
                throw ValidationError("--pixels \(pixels): `pixel_values` contains NaN or Inf")
            }
        } else if let files {
            let recipe = try inputs.makeRecipe(inputs.recipe ?? (c.projectionDim != nil ? .clip : .dinov2))
            px = try inputs.pixels(files, recipe: recipe)
            (n, h, w) = (files.count, recipe.crop, recipe.crop)
        } else {
            throw ValidationError("give either --pixels F.safetensors or --images …")
        }
        _ = try c.patchGrid(height: h, width: w)
        let b = min(batchSize, n)
        let acts = try ViTActivations(config: c, batch: b, height: h, width: w, training: false)
        let perImageIn = c.channels * h * w, perImageOut = acts.tokens * c.hiddenSize
        var result = [Float](repeating: 0, count: n * perImageOut)
        var chunk = [Float](repeating: 0, count: b * perImageIn)
        let start = Date()
        var i = 0
        while i < n {
            let k = min(b, n - i)
            chunk.withUnsafeMutableBufferPointer { dst in
                px.withUnsafeBufferPointer { src in
                    dst.baseAddress!.update(from: src.baseAddress! + i * perImageIn, count: k * perImageIn)
                    // A short last chunk reuses the batch-sized buffers; the padding images are computed and dropped.
                }
            }
            let o = vit.forward(chunk, acts)
            result.withUnsafeMutableBufferPointer { $0.baseAddress!.advanced(by: i * perImageOut).update(from: o, count: k * perImageOut) }
            i += k
        }
        let seconds = Date().timeIntervalSince(start)
        var writer = SafeTensorsWriter()
        try writer.add("last_hidden_state", floats: result, shape: [n, acts.tokens, c.hiddenSize])
        try writer.write(to: out, metadata: ["format": "pt", "source": "selora embed", "weights": model.weights])
        log.info("embedded \(n) image(s) of \(h)×\(w) in \(String(format: "%.2f", seconds)) s → \(out) [\(n), \(acts.tokens), \(c.hiddenSize)]")
    }
}
