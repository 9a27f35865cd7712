import ArgumentParser
import Foundation
import Tensors
import VisionTransformer

/// Times sgemm and the model's forward+backward in one process, so their ratio is measured under the same
/// conditions (this machine is noisy: compare ratios, not absolute figures across runs).
///
/// Methods: `base` (input gradients through every block), `lora` (every block on), `selective` (a gate pattern,
/// score gradients for every block: a step while the gates still learn), `settled` (the same pattern with the
/// scores frozen: only the active blocks run, hold saved h and gradients, and the backward stops at the lowest
/// layer holding one), `full`
/// (every base-weight gradient too), `lora-last-k` (the blocks of the last `--last-k` layers on, timed as settled).
/// The pattern is `--adapter`'s mask, else `--active-percent` of the blocks
/// spread evenly over the depth.
///
/// Peak resident memory: the kernel's high-water mark (VmHWM) is reset through `/proc/self/clear_refs` right
/// before each step and read right after it, so the figure is the step's own peak (model, activations, LoRA
/// state, inputs) and not the sgemm reference's buffers. Memory freed by an earlier method may stay resident in
/// the allocator, so a clean per-method figure needs one process per method (`launch/bench` does that). Where
/// clear_refs cannot be written, the figure is the process's peak so far (getrusage) and `peak_rss_scope` says so.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure sgemm GFLOP/s and forward+backward images/s and peak memory of the backbone per method.",
        discussion: "Uses random weights of the configured shape unless --weights is given: speed does not depend on the values.")

    /// Every method `--methods` accepts, in the order they are described.
    static let allMethods = ["base", "lora", "selective", "settled", "full", "lora-last-k"]

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

    @Option(help: """
        Comma-separated: base (input gradients only), lora (every block on, LoRA gradients), selective (gated, score \
        gradients, the gate pattern on), settled (the gate pattern with frozen scores: only active blocks run, the \
        backward stops at the lowest active layer), full (input and every base-weight gradient), lora-last-k (the \
        blocks of the last --last-k layers on, the backward stopping at the first of them).
        """)
    var methods = "base"

    @Option(help: "Layers whose blocks are on for lora-last-k (the last K), 1 … layers.")
    var lastK = 1

    @Option(help: "Active blocks (percent, spread over the depth) for selective / settled when no --adapter is given.")
    var activePercent: Double = 10

    @Option(help: "LoRA rank for the lora / selective / settled cases (an --adapter's rank replaces it).")
    var rank = 8

    @Option(help: "Adapter directory written by `selora train` (PEFT layout): selective and settled time its gate pattern (the blocks it stores), and its rank, alpha and targets replace --rank.")
    var adapter: String?

    @Option(help: "Write results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
        guard rank > 0 else { throw ValidationError("--rank must be positive, got \(rank)") }
        guard activePercent >= 0, activePercent <= 100 else { throw ValidationError("--active-percent must be in 0…100, got \(activePercent)") }
        for m in methods.split(separator: ",") where !Self.allMethods.contains(String(m)) {
            throw ValidationError("--methods: unknown case `\(m)`; expected \(Self.allMethods.joined(separator: ", "))")
        }
        for m in ["settled", "lora-last-k"] where weightGradients && methods.split(separator: ",").contains(Substring(m)) {
            throw ValidationError("--weight-gradients with --methods \(m): a settled backward stops at the lowest active "
                + "layer and computes no base-weight gradients")
        }
        guard lastK >= 1 else { throw ValidationError("--last-k must be in 1 … the model's layers, got \(lastK)") }
        for c in cases { _ = try parseCase(c) }
        if let shape, CLIPModel.shape(shape) == nil {
            throw ValidationError("--shape \(shape): expected ViT-B-32, ViT-B-16 or ViT-L-14")
        }
        if shape != nil && weights != nil { throw ValidationError("--shape and --weights exclude each other") }
        if let adapter {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: adapter, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("--adapter \(adapter): no such directory (an adapter directory written by `selora train`)")
            }
        }
    }

    func parseCase(_ c: String) throws -> (size: Int, batch: Int) {
        let parts = c.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts[0] > 0, parts[1] > 0 else {
            throw ValidationError("--cases \(c): expected SIZExBATCH such as 224x32")
        }
        return (parts[0], parts[1])
    }

    /// The LoRA settings and gate pattern the lora / selective / settled cases use.
    struct Pattern {
        var config: LoRAConfig
        /// Active blocks of selective and settled, in block order.
        var mask: [Bool]
        /// Where the pattern came from (for the report).
        var source: String
    }

    func run() throws {
        let log = runtime.start("selora.bench")
        var results: [[String: Any]] = []
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
        let pattern = try makePattern(model: model.config)
        guard lastK <= model.config.numLayers else {
            throw ValidationError("--last-k must be in 1…\(model.config.numLayers) (the model's layers), got \(lastK)")
        }
        let methodList = methods.split(separator: ",").map(String.init)
        if methodList.contains("settled"), !pattern.mask.contains(true) {
            throw ValidationError("--methods settled: the gate pattern (\(pattern.source)) has no active block, so nothing would be differentiated")
        }
        // Timing starts once the inputs are known to be good.
        let peak = sgemmPeak()
        print(String(format: "OpenBLAS %@, %d thread(s), element-wise %@", BLASInfo.coreName, BLASInfo.numThreads, Kernels.isa))
        print(String(format: "sgemm 2048³: %.1f GFLOP/s (reference peak)", peak))
        results.append(["kind": "sgemm", "gflops": peak, "core": BLASInfo.coreName, "threads": BLASInfo.numThreads])
        let grads = weightGradients || methodList.contains("full") ? try model.makeGradients() : nil
        for c in cases {
            let (size, batch) = try parseCase(c)
            for method in methodList {
                let g = weightGradients || method == "full" ? grads : nil
                results.append(try timeCase(model: model, grads: g, size: size, batch: batch, method: method, pattern: pattern))
            }
        }
        if let json {
            let data = try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: json), options: .atomic)
        }
    }

    /// `--adapter`'s settings and mask, else rank `--rank` on every target with `--active-percent` of the blocks
    /// on, spread evenly over the depth (block i is on when ⌊(i+1)·p⌋ steps up).
    func makePattern(model: ViTConfig) throws -> Pattern {
        if let adapter {
            let loaded: LoRAAdapters
            do {
                loaded = try LoRAAdapters.load(directory: adapter, model: model).0
            } catch {
                throw ValidationError("--adapter \(adapter): \(error)")
            }
            return Pattern(config: loaded.config, mask: loaded.gates.mask,
                           source: "--adapter \(adapter): \(loaded.activeCount) of \(loaded.blocks.count) blocks")
        }
        var lc = LoRAConfig()
        lc.rank = rank
        let count = model.numLayers * lc.targets.count
        let p = activePercent / 100
        return Pattern(config: lc, mask: (0..<count).map { Int(Double($0 + 1) * p) > Int(Double($0) * p) },
                       source: "--active-percent \(activePercent)")
    }

    func timeCase(model: ViTModel, grads: ViTTensors?, size: Int, batch: Int, method: String, pattern: Pattern) throws -> [String: Any] {
        var adapters: LoRAAdapters?
        if ["lora", "selective", "settled", "lora-last-k"].contains(method) {
            let a = try LoRAAdapters(model: model.config, config: pattern.config, seed: 1)
            for b in a.blocks { for i in 0..<(b.outFeatures * a.config.rank) { a.b(b)[i] = 0.01 } }
            switch method {
            case "lora": a.gates.setAll(true)
            case "lora-last-k": a.gates.set(a.blocks.map { $0.layer >= model.config.numLayers - lastK })
            default: a.gates.set(pattern.mask)
            }
            adapters = a
        }
        // Settled (and lora-last-k), as the trainer runs it: nothing below the lowest layer holding an active block
        // needs a gradient, so the backward stops there and activations are kept only from there up.
        let settledStep = method == "settled" || method == "lora-last-k"
        let lowest = settledStep ? (adapters?.lowestActiveLayer ?? 0) : 0
        let acts = try ViTActivations(config: model.config, batch: batch, height: size, width: size, savedFrom: lowest)
        // Settled and lora-last-k hold state (saved h, gradients) for their active blocks only, as the trainer does.
        let lora = try adapters.map {
            try LoRARun(adapters: $0, activations: acts, gradients: true, scoreGradients: method == "selective",
                        blocks: settledStep ? $0.gates.mask : nil)
        }
        let rank = adapters?.config.rank ?? 0
        let activeBlocks = adapters?.activeCount ?? 0
        let pixels = (0..<(batch * 3 * size * size)).map { Float(($0 * 7919) % 255) / 128 - 1 }
        let dOut = [Float](repeating: 1e-3, count: acts.rows * model.config.hiddenSize)
        // Each timed step is paired with an sgemm measurement taken right before it, and the ratio is taken
        // per pair: load from other processes shifts both, so the median ratio is stable where the raw
        // figures are not.
        var fwds: [Double] = [], bwds: [Double] = [], peaks: [Double] = [], ratios: [Double] = [], loraRatios: [Double] = []
        var peakRSS = 0
        var stepScoped = true
        // The backward runs every block from the top through `lowest`; with adapters and no weight gradients it ends
        // inside block `lowest`, right after its lowest running adapter. The base step goes down to the embeddings.
        let cfg = model.config, t = acts.tokens
        var lowestBlock = cfg.blockInputGradientFLOPs(tokens: t)
        if let lora, grads == nil {
            lowestBlock = lora.lowestTarget(layer: lowest).map { cfg.blockInputGradientFLOPs(tokens: t, stoppingAfter: $0) } ?? 0
        }
        let flops = Double(batch) * (cfg.forwardFLOPs(tokens: t)
            + cfg.blockInputGradientFLOPs(tokens: t) * Double(cfg.numLayers - 1 - lowest) + lowestBlock
            + (grads != nil ? cfg.weightGradientFLOPs(tokens: t) : 0))
        let loraFLOPs = adapters.map { Self.loraFLOPs($0, rows: acts.rows, scoreGradients: method == "selective", lowest: lowest) } ?? 0
        for step in 0...steps {
            let peakNow = sgemmPeak(repeats: 2)
            lora?.zeroGradients()
            stepScoped = MemoryProbe.resetPeak() && stepScoped
            let t0 = Date()
            model.forward(pixels, acts, lora: lora)
            let t1 = Date()
            model.backward(dOut, acts, grads: grads, lora: lora, through: lowest, inputGradient: lora == nil)
            let t2 = Date()
            peakRSS = max(peakRSS, MemoryProbe.peakBytes())
            guard step > 0 else { continue }  // the first step pays for page faults
            let f = t1.timeIntervalSince(t0), b = t2.timeIntervalSince(t1)
            fwds.append(f); bwds.append(b); peaks.append(peakNow)
            ratios.append(flops / (f + b) / 1e9 / peakNow)
            loraRatios.append((flops + loraFLOPs) / (f + b) / 1e9 / peakNow)
        }
        let fwd = median(fwds), bwd = median(bwds), stepPeak = median(peaks), ratio = median(ratios)
        let gflops = flops / (fwd + bwd) / 1e9
        let ips = Double(batch) / (fwd + bwd)
        let label = (shape.map { "\($0) " } ?? "") + {
            switch method {
            case "lora": return "lora r\(rank)"
            case "selective": return "selective r\(rank) \(activeBlocks) active"
            case "settled": return "settled r\(rank) \(activeBlocks) active, backward from layer \(lowest)"
            case "lora-last-k": return "lora-last-k r\(rank) k=\(lastK) (\(activeBlocks) blocks), backward from layer \(lowest)"
            default: return method
            }
        }()
        print(String(format: "%3d px batch %3d %@: forward %.3f s, backward %.3f s, %.2f images/s, %.1f GFLOP/s (backbone); "
                     + "sgemm beside it %.1f GFLOP/s; step/sgemm %.0f%% (median of %d paired); peak RSS %.0f MB",
                     size, batch, label, fwd, bwd, ips, gflops, stepPeak, 100 * ratio, steps, Double(peakRSS) / 1e6))
        var record: [String: Any] = [
            "kind": "step", "method": method, "size": size, "batch": batch, "forward_s": fwd, "backward_s": bwd,
            "images_per_s": ips, "gflops": gflops, "sgemm_gflops": stepPeak, "fraction_of_sgemm": ratio,
            "fraction_of_sgemm_with_lora": median(loraRatios), "lora_gflop": loraFLOPs / 1e9,
            "fractions": ratios, "step_times_s": zip(fwds, bwds).map { $0 + $1 }, "weight_gradients": grads != nil, "activation_bytes": acts.bytes,
            "active_blocks": activeBlocks, "step_s": fwd + bwd, "model": shape ?? "dinov2-s14",
            "total_blocks": adapters?.blocks.count ?? model.config.numLayers * LoRATarget.allCases.count,
            "peak_rss_bytes": peakRSS,
            "peak_rss_scope": stepScoped ? "step (VmHWM reset through /proc/self/clear_refs before each step)"
                                         : "process (getrusage ru_maxrss: /proc/self/clear_refs not writable)",
        ]
        if let adapters {
            record["rank"] = rank
            record["backward_from_layer"] = lowest
            record["gate_pattern"] = adapters.gates.maskText
            record["pattern_source"] = method == "lora" ? "every block"
                : method == "lora-last-k" ? "the last \(lastK) layer(s) (--last-k)" : pattern.source
        }
        return record
    }

    /// FLOPs of the LoRA GEMMs in one step (the backbone's are ``ViTConfig/forwardFLOPs(tokens:)`` and
    /// friends): an active block runs h = x·Aᵀ and y += h·Bᵀ forward, g = dy·B, dB, dA and dx backward (none of
    /// the backward below `lowest`); with score gradients an inactive block still runs h and g.
    static func loraFLOPs(_ a: LoRAAdapters, rows: Int, scoreGradients: Bool, lowest: Int) -> Double {
        let r = Double(a.config.rank), n = Double(rows)
        return a.blocks.reduce(0) { sum, b in
            let i = Double(b.inFeatures), o = Double(b.outFeatures)
            if a.gates.mask[b.index] {
                let backward = b.layer >= lowest ? 2 * n * r * (2 * o + 2 * i) : 0
                return sum + 2 * n * r * (i + o) + backward
            }
            return sum + (scoreGradients ? 2 * n * r * (i + o) : 0)
        }
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

/// The process's peak resident memory, resettable on Linux ≥ 4.0: writing "5" to `/proc/self/clear_refs` sets
/// the high-water mark (VmHWM in `/proc/self/status`) back to the current resident size.
enum MemoryProbe {
    /// Resets the high-water mark; false where `/proc/self/clear_refs` cannot be written (then ``peakBytes()``
    /// is the process's peak so far).
    static func resetPeak() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }

    /// VmHWM from `/proc/self/status`, else getrusage's ru_maxrss (kB on Linux); bytes.
    static func peakBytes() -> Int {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
           let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") {
            return kb * 1024
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }
}
