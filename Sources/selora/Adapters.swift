import ArgumentParser
import Foundation
import SafeTensors
import Training
import VisionTransformer

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the base weights with the adapter's active LoRA blocks merged in (W + c·B·A): DINOv2 in transformers-5 Dinov2Model names (--names), a CLIP checkpoint whole (both towers) in its own names.",
        discussion: "Refuses adapters or results holding NaN or Inf; the merged model's forward equals the gated one's.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var names: NamesOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Adapter directory (adapter_model.safetensors + adapter_config.json).")
    var adapter: String

    @Option(help: "Output safetensors (written atomically).")
    var out: String

    func run() throws {
        let log = runtime.start("selora.merge")
        try checkOutput(out, notOneOf: [model.weights, adapter + "/" + LoRAAdapters.weightsFile])
        let meta = ["source": "selora merge \(model.weights) + \(adapter)"]
        if CLIPModel.isCLIP(path: model.weights) {
            let clip = try CLIPModel.load(path: model.weights, options: CLIPLoadOptions(visionHeads: model.heads, activation: model.activation))
            let (adapters, _) = try LoRAAdapters.load(directory: adapter, model: clip.vision.config)
            try adapters.merge(into: clip.vision)
            try clip.save(path: out, format: try names.format(for: clip.vision.config), metadata: meta)
            log.info("merged \(adapters.activeCount) of \(adapters.blocks.count) blocks into the image tower → \(out)")
            return
        }
        let vit = try model.loadModel(log: log)
        let format = try names.format(for: vit.config)
        let (adapters, _) = try LoRAAdapters.load(directory: adapter, model: vit.config)
        try adapters.merge(into: vit)
        try vit.save(path: out, format: format, metadata: meta)
        log.info("merged \(adapters.activeCount) of \(adapters.blocks.count) blocks → \(out)")
    }
}

struct Grad: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dump one batch's loss and gradients (head, every LoRA A/B, every gate score) for reference checks.",
        discussion: """
        Loss: mean cross-entropy of the head on the class token after the final LayerNorm, with every block in the \
        adapter treated as active; score gradients by the straight-through rule. Head file: `weight` [C, hidden], \
        `bias` [C]. Batch file: `pixel_values` F32 [N, 3, H, W], `labels` I64 [N]. Output keys: `loss`, \
        `head.weight.grad`, `head.bias.grad`, `<adapter key>.grad`, `<module>.lora_gate.grad`.
        """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Adapter directory (PEFT layout).")
    var adapter: String
    @Option(help: "Head safetensors (`weight`, `bias`).")
    var head: String
    @Option(help: "Batch safetensors (`pixel_values`, `labels`).")
    var batch: String
    @Option(help: "Output safetensors (written atomically).")
    var out: String

    func run() throws {
        let log = runtime.start("selora.grad")
        try checkOutput(out, notOneOf: [model.weights, head, batch, adapter + "/" + LoRAAdapters.weightsFile])
        let vit = try model.loadModel(log: log)
        let (adapters, _) = try LoRAAdapters.load(directory: adapter, model: vit.config)
        let h = try ClassifierHead.load(path: head, hidden: vit.config.featureDim)
        let f = try SafeTensorsFile(path: batch)
        let shape = try f.info("pixel_values").shape
        guard shape.count == 4, shape[1] == vit.config.channels else {
            throw ValidationError("--batch \(batch): `pixel_values` has shape \(shape); expected [N, \(vit.config.channels), H, W]")
        }
        let labels = try f.int64s("labels", expectShape: [shape[0]])
        // Out-of-range labels (clamped into Int32 first) are rejected by GradientDump with the valid range.
        let dump = try GradientDump.compute(model: vit, adapters: adapters, head: h, pixels: try f.floats("pixel_values"),
                                            labels: labels.map { Int32(clamping: $0) }, height: shape[2], width: shape[3])
        var w = SafeTensorsWriter()
        for t in dump { try w.add(t.name, floats: t.values, shape: t.shape) }
        try w.write(to: out, metadata: ["source": "selora grad"])
        log.info("loss \(dump[0].values[0]); wrote \(dump.count) tensors → \(out)")
    }
}
