import ArgumentParser
import Foundation
import Tensors
import VisionTransformer

/// Times sgemm and the model's forward+backward in one process, so their ratio is measured under the same
/// conditions (this machine is noisy: compare ratios, not absolute figures across runs).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure sgemm GFLOP/s and forward+backward images/s of the backbone (input gradients through every block).",
        discussion: "Uses random weights of the configured shape unless --weights is given: speed does not depend on the values.")

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Checkpoint to time (default: random DINOv2 ViT-S/14 weights).")
    var weights: String?

    @Option(help: "Time a random-weight image tower of this OpenCLIP shape instead (ViT-B-32, ViT-B-16, ViT-L-14; QuickGELU).")
    var shape: String?

    @Option(parsing: .upToNextOption, help: "Cases as SIZExBATCH, e.g. 224x32 56x128.")
    var cases: [String] = ["224x32", "56x128"]

    @Option(help: "Timed steps per case (after one warm-up step).")
    var steps: Int = 3

    @Option(help: "Also compute base-weight gradients (a full fine-tune's backward).")
    var weightGradients = false

    @Option(help: "Comma-separated: base (input gradients only), lora (every block on, LoRA gradients), selective (gated, score gradients, --active-percent of the blocks on), full (input and every base-weight gradient).")
    var methods = "base"

    @Option(help: "Active blocks (percent) for the selective case.")
    var activePercent: Double = 10

    @Option(help: "LoRA rank for the lora / selective cases.")
    var rank = 8

    @Option(help: "Write results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
        guard rank > 0 else { throw ValidationError("--rank must be positive, got \(rank)") }
        guard activePercent >= 0, activePercent <= 100 else { throw ValidationError("--active-percent must be in 0…100, got \(activePercent)") }
        for m in methods.split(separator: ",") where !["base", "lora", "selective", "full"].contains(String(m)) {
            throw ValidationError("--methods: unknown case `\(m)`; expected base, lora, selective, full")
        }
        for c in cases { _ = try parseCase(c) }
        if let shape, CLIPModel.shape(shape) == nil {
            throw ValidationError("--shape \(shape): expected ViT-B-32, ViT-B-16 or ViT-L-14")
        }
        if shape != nil && weights != nil { throw ValidationError("--shape and --weights exclude each other") }
    }

    func parseCase(_ c: String) throws -> (size: Int, batch: Int) {
        let parts = c.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts[0] > 0, parts[1] > 0 else {
            throw ValidationError("--cases \(c): expected SIZExBATCH such as 224x32")
        }
        return (parts[0], parts[1])
    }

    func run() throws {
        let log = runtime.start("selora.bench")
        var results: [[String: Any]] = []
        let peak = sgemmPeak()
        print(String(format: "OpenBLAS %@, %d thread(s), element-wise %@", BLASInfo.coreName, BLASInfo.numThreads, Kernels.isa))
        print(String(format: "sgemm 2048³: %.1f GFLOP/s (reference peak)", peak))
        results.append(["kind": "sgemm", "gflops": peak, "core": BLASInfo.coreName, "threads": BLASInfo.numThreads])

        let model: ViTModel
        if let weights {
            model = try ModelOptions.loadModel(weights: weights, log: log)
        } else {
            model = try ViTModel(config: shape.flatMap { CLIPModel.shape($0)?.vision } ?? .dinov2Small)
            var state: UInt32 = 1
            for i in 0..<model.params.store.storage.count {
                state = state &* 1_664_525 &+ 1_013_904_223
                model.params.store.storage[i] = (Float(state >> 8) / Float(1 << 24) - 0.5) * 0.1
            }
        }
        let methodList = methods.split(separator: ",").map(String.init)
        let grads = weightGradients || methodList.contains("full") ? try model.makeGradients() : nil
        for c in cases {
            let (size, batch) = try parseCase(c)
            for method in methodList {
                let g = weightGradients || method == "full" ? grads : nil
                results.append(try timeCase(model: model, grads: g, size: size, batch: batch, method: method))
            }
        }
        if let json {
            let data = try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: json), options: .atomic)
        }
    }

    func timeCase(model: ViTModel, grads: ViTTensors?, size: Int, batch: Int, method: String) throws -> [String: Any] {
        let acts = try ViTActivations(config: model.config, batch: batch, height: size, width: size)
        var lora: LoRARun?
        var activeBlocks = 0
        if method == "lora" || method == "selective" {
            var lc = LoRAConfig()
            lc.rank = rank
            let adapters = try LoRAAdapters(model: model.config, config: lc, seed: 1)
            for b in adapters.blocks { for i in 0..<(b.outFeatures * rank) { adapters.b(b)[i] = 0.01 } }
            if method == "selective" {
                // Spread the active blocks evenly over the depth: block i is on when ⌊i·p⌋ steps up.
                let p = activePercent / 100
                adapters.gates.set(adapters.blocks.indices.map { Int(Double($0 + 1) * p) > Int(Double($0) * p) })
            }
            activeBlocks = adapters.activeCount
            lora = try LoRARun(adapters: adapters, activations: acts, gradients: true, scoreGradients: method == "selective")
        }
        let pixels = (0..<(batch * 3 * size * size)).map { Float(($0 * 7919) % 255) / 128 - 1 }
        let dOut = [Float](repeating: 1e-3, count: acts.rows * model.config.hiddenSize)
        // Each timed step is paired with an sgemm measurement taken right before it, and the ratio is taken
        // per pair: load from other processes shifts both, so the median ratio is stable where the raw
        // figures are not.
        var fwds: [Double] = [], bwds: [Double] = [], peaks: [Double] = [], ratios: [Double] = []
        let flops = Double(batch) * (model.config.forwardFLOPs(tokens: acts.tokens)
            + model.config.inputGradientFLOPs(tokens: acts.tokens)
            + (grads != nil ? model.config.weightGradientFLOPs(tokens: acts.tokens) : 0))
        for step in 0...steps {
            let peakNow = sgemmPeak(repeats: 2)
            lora?.zeroGradients()
            let t0 = Date()
            model.forward(pixels, acts, lora: lora)
            let t1 = Date()
            model.backward(dOut, acts, grads: grads, lora: lora)
            let t2 = Date()
            guard step > 0 else { continue }  // the first step pays for page faults
            let f = t1.timeIntervalSince(t0), b = t2.timeIntervalSince(t1)
            fwds.append(f); bwds.append(b); peaks.append(peakNow)
            ratios.append(flops / (f + b) / 1e9 / peakNow)
        }
        let fwd = median(fwds), bwd = median(bwds), stepPeak = median(peaks), ratio = median(ratios)
        let gflops = flops / (fwd + bwd) / 1e9
        let ips = Double(batch) / (fwd + bwd)
        let label = (shape.map { "\($0) " } ?? "")
            + (["base": "base", "full": "full", "lora": "lora r\(rank)"][method] ?? "selective r\(rank) \(activeBlocks) active")
        print(String(format: "%3d px batch %3d %@: forward %.3f s, backward %.3f s, %.2f images/s, %.1f GFLOP/s (backbone); "
                     + "sgemm beside it %.1f GFLOP/s; step/sgemm %.0f%% (median of %d paired)",
                     size, batch, label, fwd, bwd, ips, gflops, stepPeak, 100 * ratio, steps))
        return ["kind": "step", "method": method, "size": size, "batch": batch, "forward_s": fwd, "backward_s": bwd,
                "images_per_s": ips, "gflops": gflops, "sgemm_gflops": stepPeak, "fraction_of_sgemm": ratio,
                "fractions": ratios, "weight_gradients": grads != nil, "activation_bytes": acts.bytes,
                "active_blocks": activeBlocks, "step_s": fwd + bwd, "model": shape ?? "dinov2-s14",
                "total_blocks": model.config.numLayers * LoRATarget.allCases.count]
    }

    func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }

    /// Best of `repeats` sgemm calls on 2048³ (≈17 GFLOP each).
    func sgemmPeak(repeats: Int = 5) -> Double {
        let n = 2048
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var best = 0.0
        for _ in 0..<repeats {
            let t0 = Date()
            sgemm(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: &c, ldc: n)
            best = max(best, 2 * Double(n * n * n) / Date().timeIntervalSince(t0) / 1e9)
        }
        return best
    }
}
