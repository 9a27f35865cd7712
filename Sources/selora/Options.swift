import ArgumentParser
import Foundation
import Logging
import Tensors
import VisionTransformer

extension Activation: ExpressibleByArgument {}
extension WeightFormat: ExpressibleByArgument {}

/// The names written weights and adapters use.
struct NamesOptions: ParsableArguments {
    @Option(help: "Names to write weights and adapters under: transformers5 (Hugging Face transformers ≥ 5 Dinov2Model; the default for DINOv2 whatever names it was read in), transformers4, timm (weights only: no adapter on query/key/value), open_clip or hf_clip (CLIP checkpoints; default: the checkpoint's own).")
    var names: WeightFormat?

    /// The format to write a model of `config` in: `--names`, else ``ViTConfig/weightFormat``. Refuses a format of
    /// the other family (DINOv2 / CLIP), and with `targets` one that cannot name an adapter on them.
    func format(for config: ViTConfig, adapterTargets targets: [LoRATarget] = []) throws -> WeightFormat {
        guard let names else { return config.weightFormat }
        guard names.isCLIP == config.weightFormat.isCLIP else {
            throw ValidationError("--names \(names.rawValue): this model is written in "
                + "\(config.weightFormat.family.map(\.rawValue).joined(separator: ", ")) names")
        }
        do {
            for t in targets { _ = try t.modulePath(layer: 0, format: names) }
        } catch { throw ValidationError("--names \(names.rawValue): \(error)") }
        return names
    }
}

/// Where the backbone comes from.
struct ModelOptions: ParsableArguments {
    @Option(help: "Backbone weights: safetensors in Hugging Face Dinov2Model or timm names, or a CLIP checkpoint (OpenCLIP or Hugging Face CLIPModel names: its image tower) (launch/fetch-weights writes weights/dinov2-vits14.safetensors).")
    var weights: String = "weights/dinov2-vits14.safetensors"

    @Option(help: "Attention heads, when the checkpoint's metadata does not say (default: hidden size / 64).")
    var heads: Int?

    @Option(help: "CLIP checkpoints only: the MLP activation, gelu or quick_gelu, when neither a config.json beside the file nor its metadata says (default quick_gelu, OpenAI CLIP's).")
    var activation: Activation?

    func validate() throws {
        if let heads, heads <= 0 { throw ValidationError("--heads must be positive, got \(heads)") }
    }

    func loadModel(log: Logger) throws -> ViTModel {
        try Self.loadModel(weights: weights, heads: heads, activation: activation, log: log)
    }

    /// The backbone of `weights` (what `--weights` / `--heads` / `--activation` load). Commands that take a
    /// weights path of their own call this, never a hand-made `ModelOptions`: a ParsableArguments value that was not
    /// parsed traps when its unparsed options are read.
    static func loadModel(weights: String, heads: Int? = nil, activation: Activation? = nil, log: Logger) throws -> ViTModel {
        guard FileManager.default.fileExists(atPath: weights) else {
            throw ValidationError("--weights \(weights): no such file (run launch/fetch-weights to create the default one)")
        }
        let model = try ViTModel.load(path: weights, numHeads: heads, activation: activation)
        log.info("loaded \(weights): \(model.config), \(model.params.store.layout.parameterCount) parameters")
        return model
    }
}

/// Threads, logging.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Compute threads (OpenBLAS and element-wise passes); default: OpenBLAS's own choice (OPENBLAS_NUM_THREADS or all cores).")
    var threads: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        if let threads, threads <= 0 { throw ValidationError("--threads must be positive, got \(threads)") }
        if Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level \(logLevel): expected one of trace, debug, info, notice, warning, error, critical")
        }
    }

    /// Sets up logging and threads, and warns when OpenBLAS runs a generic kernel.
    func start(_ label: String) -> Logger {
        var log = Logger(label: label)
        log.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        if let threads { BLASInfo.setNumThreads(threads) }
        Parallel.workers = max(1, BLASInfo.numThreads)
        log.debug("OpenBLAS core \(BLASInfo.coreName), \(BLASInfo.numThreads) thread(s); element-wise ISA \(Kernels.isa)")
        if let warning = BLASInfo.kernelWarning() { log.warning("\(warning)") }
        return log
    }
}

/// Rejects an output path that would overwrite one of the inputs.
func checkOutput(_ out: String, notOneOf inputs: [String], flag: String = "--out") throws {
    let o = URL(fileURLWithPath: out).standardizedFileURL.path
    for i in inputs where URL(fileURLWithPath: i).standardizedFileURL.path == o {
        throw ValidationError("\(flag) \(out) is also an input: refusing to overwrite it")
    }
    let dir = URL(fileURLWithPath: o).deletingLastPathComponent().path
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
        throw ValidationError("\(flag) \(out): directory \(dir) does not exist")
    }
    guard FileManager.default.isWritableFile(atPath: dir) else {
        throw ValidationError("\(flag) \(out): directory \(dir) is not writable")
    }
}
