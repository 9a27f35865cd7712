import ArgumentParser
import VisionTransformer

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rewrite a ViT checkpoint (timm / DINOv2 or Hugging Face names) as Hugging Face Dinov2Model names.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Output safetensors (written atomically).")
    var out: String

    func run() throws {
        let log = runtime.start("selora.convert")
        try checkOutput(out, notOneOf: [model.weights])
        let vit = try model.loadModel(log: log)
        try vit.save(path: out, metadata: ["source": "selora convert \(model.weights)"])
        log.info("wrote \(out)")
    }
}
