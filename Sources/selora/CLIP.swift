import ArgumentParser
import Datasets
import Foundation
import Logging
import SafeTensors
import Tensors
import Tokenizers
import Training
import VisionTransformer

/// Where a CLIP model and its tokenizer come from.
struct CLIPOptions: ParsableArguments {
    @Option(help: "CLIP checkpoint: safetensors in OpenCLIP or Hugging Face CLIPModel names (.bin/.pt: convert once with tools/clip_to_safetensors.py). Default: the one launch/clip-demo composes.")
    var clip = "weights/clip-dinov2-s14.safetensors"
    @Option(help: "CLIP's BPE vocabulary (launch/fetch-clip-vocab writes it).")
    var vocab = "data/clip/bpe_simple_vocab_16e6.txt.gz"
    @Option(help: "Image-tower heads, when neither a config.json beside the checkpoint nor its metadata says (default: width / 64).")
    var visionHeads: Int?
    @Option(help: "Text-tower heads (same defaults).")
    var textHeads: Int?
    @Option(help: "MLP activation, gelu or quick_gelu (default: config.json, then the metadata, then quick_gelu, OpenAI CLIP's).")
    var activation: Activation?

    var loadOptions: CLIPLoadOptions { CLIPLoadOptions(visionHeads: visionHeads, textHeads: textHeads, activation: activation) }

    func validate() throws {
        for (flag, v) in [("--vision-heads", visionHeads), ("--text-heads", textHeads)] {
            if let v, v <= 0 { throw ValidationError("\(flag) must be positive, got \(v)") }
        }
    }

    func load(log: Logger) throws -> CLIPModel {
        guard FileManager.default.fileExists(atPath: clip) else {
            throw ValidationError("--clip \(clip): no such file (launch/clip-demo composes the default one; real OpenCLIP / HF CLIP safetensors load as they are)")
        }
        let m = try CLIPModel.load(path: clip, options: loadOptions)
        log.info("loaded \(clip): image \(m.vision.config); \(m.text.config); logit scale \(String(format: "%.2f", exp(m.logitScale)))")
        return m
    }

    /// Loads only the image tower (for the training ranks; the text tower is not needed there).
    func loadVision() throws -> ViTModel { try ViTModel.loadCLIPVision(path: clip, options: loadOptions) }

    func tokenizer() throws -> CLIPTokenizer {
        guard FileManager.default.fileExists(atPath: vocab) else {
            throw ValidationError("--vocab \(vocab): no such file (run launch/fetch-clip-vocab)")
        }
        return try CLIPTokenizer(vocabularyPath: vocab)
    }
}

/// Class names and prompt templates of the image sets we have. Templates follow CLIP's own lists
/// (`a photo of the number: "{}".` is CLIP's MNIST template).
enum ZeroShotTasks {
    static let fashionMNIST = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                               "ankle boot"]
    static let fashionTemplates = ["a photo of a {}.", "a black and white photo of a {}.", "a low resolution photo of a {}."]
    static let mnist = (0...9).map(String.init)
    static let mnistTemplates = ["a photo of the number: \"{}\"."]

    static func names(_ s: String?, default d: [String], flag: String) throws -> [String] {
        guard let s else { return d }
        let n = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard n.count > 1, n.allSatisfy({ !$0.isEmpty }) else {
            throw ValidationError("\(flag) `\(s)`: expected at least two comma-separated class names")
        }
        return n
    }

    static func templates(_ s: String?, default d: [String], flag: String) throws -> [String] {
        guard let s else { return d }
        let t = s.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !t.isEmpty else { throw ValidationError("\(flag) is empty: expected templates separated by | (e.g. \"a photo of a {}.\")") }
        return t
    }
}

/// Names and templates of the target and held-out tasks, shared by clip-compose and clip-eval.
struct ZeroShotTaskOptions: ParsableArguments {
    @Option(help: "Target class names, comma-separated, in label order (default: Fashion-MNIST's).")
    var targetClasses: String?
    @Option(help: "Target prompt templates, |-separated, {} = the class name.")
    var targetTemplates: String?
    @Option(help: "Held-out (source CSV) class names, comma-separated, in label order (default: the digits 0–9).")
    var heldOutClasses: String?
    @Option(help: "Held-out prompt templates, |-separated.")
    var heldOutTemplates: String?

    func target(_ classes: Int) throws -> (names: [String], templates: [String]) {
        let n = try ZeroShotTasks.names(targetClasses, default: ZeroShotTasks.fashionMNIST, flag: "--target-classes")
        guard n.count == classes else {
            throw ValidationError("--target-classes names \(n.count) classes; the target data has \(classes)")
        }
        return (n, try ZeroShotTasks.templates(targetTemplates, default: ZeroShotTasks.fashionTemplates, flag: "--target-templates"))
    }

    func heldOut(_ classes: Int) throws -> (names: [String], templates: [String]) {
        let n = try ZeroShotTasks.names(heldOutClasses, default: ZeroShotTasks.mnist, flag: "--held-out-classes")
        guard n.count == classes else {
            throw ValidationError("--held-out-classes names \(n.count) classes; the source data has \(classes)")
        }
        return (n, try ZeroShotTasks.templates(heldOutTemplates, default: ZeroShotTasks.mnistTemplates, flag: "--held-out-templates"))
    }
}

struct TextEmbed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "text-embed",
        abstract: "Class embeddings from prompt templates with a CLIP text tower (CLIP's zero-shot recipe: each prompt's embedding normalized, averaged over templates, normalized), and optionally the zero-shot head.")

    @OptionGroup var clip: CLIPOptions
    @Option(help: "Class names, comma-separated, in label order.")
    var classes: String
    @Option(help: "Prompt templates, |-separated, {} = the class name.")
    var templates = "a photo of a {}."
    @Option(help: "Output safetensors: class_embeddings [classes, E] (unit rows), logit_scale [1]; the class names in the metadata.")
    var out: String
    @Option(help: "Also write the zero-shot head (weight = exp(logit_scale) · embeddings, bias 0) for selora test --head.")
    var head: String?
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        let log = runtime.start("selora.text-embed")
        let names = try ZeroShotTasks.names(classes, default: [], flag: "--classes")
        let temps = try ZeroShotTasks.templates(templates, default: [], flag: "--templates")
        let model = try clip.load(log: log)
        let emb = try ZeroShot.classEmbeddings(text: model.text, tokenizer: try clip.tokenizer(), classNames: names, templates: temps)
        var w = SafeTensorsWriter()
        try w.add("class_embeddings", floats: emb, shape: [names.count, model.embedDim])
        try w.add("logit_scale", floats: [model.logitScale], shape: [1])
        let meta = ["class_names": names.joined(separator: "\n"), "templates": temps.joined(separator: "\n")]
        try w.write(to: out, metadata: meta)
        log.info("wrote \(out): \(names.count) classes × \(temps.count) templates → [\(names.count), \(model.embedDim)]")
        if let head {
            try ClassifierHead.zeroShot(textEmbeddings: emb, classes: names.count, logitScale: model.logitScale).save(path: head)
            log.info("wrote \(head): the zero-shot head")
        }
    }
}

struct ClipCompose: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clip-compose",
        abstract: "Build a CLIP-shaped checkpoint from what we have (no CLIP weights ship in any reachable package): the DINOv2 image tower rewritten exactly in CLIP form (identity projection), a text tower with OpenCLIP's random initialisation, and a text projection fitted (minimum norm) so that every prompt of the target and held-out classes embeds onto that class's mean image embedding on the training images. Zero-shot accuracy then measures how well image features still match the frozen text-side class directions.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var source: SourceOptions
    @OptionGroup var tasks: ZeroShotTaskOptions
    @Option(help: "CLIP's BPE vocabulary (launch/fetch-clip-vocab writes it).")
    var vocab = "data/clip/bpe_simple_vocab_16e6.txt.gz"
    @Option(help: "Output checkpoint (must not exist).")
    var out = "weights/clip-dinov2-s14.safetensors"
    @Option(help: "Names to write: open_clip or hf_clip.")
    var names: WeightFormat = .openCLIP
    @Option(help: "Text tower width (its heads are width / 64, at least 1).")
    var textWidth = 128
    @Option(help: "Text tower blocks.")
    var textLayers = 2
    @Option(help: "Seed of the text tower's initialisation.")
    var seed: UInt64 = 0
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard textWidth > 0, textWidth % 32 == 0 else { throw ValidationError("--text-width must be a positive multiple of 32, got \(textWidth)") }
        guard textLayers > 0 else { throw ValidationError("--text-layers must be positive, got \(textLayers)") }
        guard names.isCLIP else { throw ValidationError("--names \(names.rawValue): expected open_clip or hf_clip") }
    }

    func run() throws {
        let log = runtime.start("selora.clip-compose")
        guard !FileManager.default.fileExists(atPath: out) else {
            throw ValidationError("--out \(out) exists; refusing to overwrite it (remove it or pick another path)")
        }
        guard FileManager.default.fileExists(atPath: vocab) else {
            throw ValidationError("--vocab \(vocab): no such file (run launch/fetch-clip-vocab)")
        }
        let tokenizer = try CLIPTokenizer(vocabularyPath: vocab)
        let dino = try model.loadModel(log: log)
        try data.check(model: dino.config)
        let target = try data.load(), src = try source.load()
        let t = try tasks.target(target.train.numClasses), h = try tasks.heldOut(src.train.numClasses)
        let d = dino.config.hiddenSize
        let vision = try dino.clipForm()   // identity projection

        // Class means of the normalized image embeddings on the training images.
        let ev = try Evaluator(model: vision, adapters: nil, size: data.imageSize, batch: 32)
        func classMeans(_ set: ImageDataset) throws -> [Float] {
            let f = try ev.features(set)
            var m = [Float](repeating: 0, count: set.numClasses * d)
            for i in 0..<set.count { for j in 0..<d { m[Int(set.labels[i]) * d + j] += f[i * d + j] } }
            return normalizedRows(m, dim: d)
        }
        let means = try classMeans(target.train) + classMeans(src.train)

        let text = try CLIPTextModel(config: CLIPTextConfig(width: textWidth, layers: textLayers, heads: max(1, textWidth / 64),
                                                            mlp: 4 * textWidth, vocabularySize: tokenizer.vocabularySize,
                                                            contextLength: tokenizer.contextLength, projectionDim: d,
                                                            activation: .gelu))
        text.initializeRandomly(seed: seed)
        var ids: [Int32] = [], rowClass: [Int] = []
        for (offset, task) in [(0, t), (target.train.numClasses, h)] {
            for (c, name) in task.names.enumerated() {
                for p in ZeroShot.prompts(name, templates: task.templates) { ids += tokenizer.tokenize(p); rowClass.append(offset + c) }
            }
        }
        let rows = rowClass.count
        guard rows <= textWidth else {
            throw ValidationError("\(rows) prompts need --text-width ≥ \(rows) for an exact fit")
        }
        let pooled = try text.encode(ids: ids, project: false).map(Double.init)
        let y = rowClass.flatMap { c in (0..<d).map { Double(means[c * d + $0]) } }
        let x = try minimumNormSolution(u: pooled, rows: rows, cols: textWidth, y: y, targets: d)   // [width, d]
        let proj = text.params.buffer("text_projection")   // [d, width]
        for i in 0..<d { for k in 0..<textWidth { proj[i * textWidth + k] = Float(x[k * d + i]) } }

        let clip = try CLIPModel(vision: vision, text: text, logitScale: Float(Foundation.log(100.0)))
        let check = try ZeroShot.classEmbeddings(text: text, tokenizer: tokenizer, classNames: t.names, templates: t.templates)
        let worst = zip(check, means.prefix(check.count)).map { abs($0 - $1) }.max() ?? 0
        try clip.save(path: out, format: names, metadata: [
            "composed_by": "selora clip-compose", "image_tower": model.weights,
            "aligned_on": "\(target.train.count) target + \(src.train.count) held-out training images at \(data.imageSize) px",
        ])
        log.info("wrote \(out): \(clip.vision.config); \(text.config); \(rows) prompts aligned (largest embedding error \(worst))")
    }
}

struct ClipEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clip-eval",
        abstract: "CLIP's forgetting experiment: zero-shot accuracy on held-out image sets before and after fine-tuning the image tower on the target task (each method starting from the target's zero-shot head), next to target accuracy and active blocks.")

    @OptionGroup var clip: CLIPOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var source: SourceOptions
    @OptionGroup var tasks: ZeroShotTaskOptions
    @OptionGroup var train: TrainOptions
    @OptionGroup var runtime: RuntimeOptions

    @OptionGroup var comparison: ComparisonOptions

    func run() throws {
        let base = try train.config()
        let methods = try comparison.parsedMethods(), seeds = try comparison.parsedSeeds(default: base.seed), out = comparison.out
        try withCommunicator(runtime, "selora.clip-eval") { comm, log in
            if comm.isRoot, let out { try prepareRunDirectory(out) }
            let model = try clip.load(log: log)
            try data.check(model: model.vision.config)
            let tokenizer = try clip.tokenizer()
            let target = try data.load()
            try checkBatch(base.batchSize, fits: target.train.count)
            let ood = try ImageCorruption(seed: comparison.oodSeed).apply(target.test)
            let src = try source.load()
            let t = try tasks.target(target.train.numClasses), h = try tasks.heldOut(src.test.numClasses)
            let targetHead = try ZeroShot.head(clip: model, tokenizer: tokenizer, classNames: t.names, templates: t.templates)
            let heldOut = ZeroShotTask(name: heldOutName(source.sourceCsv), data: src.test,
                                       head: try ZeroShot.head(clip: model, tokenizer: tokenizer, classNames: h.names, templates: h.templates))
            log.info("target: \(target.train.count) train / \(target.test.count) test (+ corrupted copy); held-out: \(src.test.count) test images; \(comm.size) rank(s)")
            let options = clip
            let proto = ZeroShotProtocol(comm: comm, loadVision: { try options.loadVision() }, targetHead: targetHead,
                                         target: target, targetOOD: ood, heldOut: [heldOut], size: data.imageSize)
            try proto.prepare { log.info("\($0)") }
            let runs = try forEachRun(methods, seeds: seeds, base: base, out: out, isRoot: comm.isRoot, imageSize: data.imageSize,
                                      log: log) { c, onStep in
                let r = try proto.run(config: c, onStep: onStep)
                let line = String(format: "  %@ seed %llu: target %.1f%%, OOD %.1f%%", c.method.rawValue, c.seed, 100 * r.targetAccuracy, 100 * r.oodAccuracy)
                    + r.heldOut.map { String(format: ", %@ zero-shot %.1f%% → %.1f%%", $0.name, 100 * $0.before, 100 * $0.after) }.joined()
                log.info("\(line)")
                return r.metrics
            }
            guard comm.isRoot else { return }
            let info = ComparisonReport.ProtocolInfo(kind: "zero-shot", imageSize: data.imageSize,
                                                     target: data.trainImages == "\(DataOptions.fashion)/train-images-idx3-ubyte.gz" ? "fashion-mnist" : data.trainImages,
                                                     sources: [heldOut.name], ranks: comm.size, seeds: seeds, config: base)
            try writeReport(ComparisonReport(protocolInfo: info, baselines: proto.baselines, runs: runs), out: out,
                            extra: "CLIP \(clip.clip); target \(target.train.count) train / \(target.test.count) test images; held-out \(heldOut.name) \(src.test.count) test images; the pretrained row is the zero-shot head")
        }
    }
}

/// The held-out task's name in reports: the CSV's file name without .csv / .gz ("mnist_5k").
func heldOutName(_ path: String) -> String {
    var name = (path as NSString).lastPathComponent
    for ext in [".gz", ".csv"] where name.hasSuffix(ext) { name = String(name.dropLast(ext.count)) }
    return name.isEmpty ? "held-out" : name
}
