import ArgumentParser
import VisionTransformer

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rewrite a ViT checkpoint (any names: transformers 5 or 4 Dinov2Model, timm, OpenCLIP, Hugging Face CLIPModel) in transformers-5 Dinov2Model names, or those of --names (a CLIP image tower: its own names by default).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var names: NamesOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Output safetensors (written atomically).")
    var out: String

    func run() throws {
        let log = runtime.start("selora.convert")
        try checkOutput(out, notOneOf: [model.weights])
        let vit = try model.loadModel(log: log)
        let format = try names.format(for: vit.config)
        try vit.save(path: out, format: format, metadata: ["source": "selora convert \(model.weights)"])
        log.info("wrote \(out)")
    }
}
