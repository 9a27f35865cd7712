import Foundation

/// `report.json` of `selora eval` and `selora clip-eval` (format "selora-report-2"): what was run, the pretrained
/// baselines, every (method, seed) run's flat metrics, and the statistics over seeds (``SeedStatistics``).
/// Metric values are fractions (0–1) for accuracies; plotting scripts read these keys.
public struct ComparisonReport: Codable, Sendable {
    public struct ProtocolInfo: Codable, Sendable {
        /// "forgetting" (DINO, `selora eval`) or "zero-shot" (CLIP, `selora clip-eval`).
        public var kind: String
        public var imageSize: Int
        public var target: String
        public var sources: [String]
        public var steps: Int
        public var batchSize: Int
        public var ranks: Int
        public var seeds: [UInt64]
        public var config: TrainingConfig

        enum CodingKeys: String, CodingKey {
            case kind, target, sources, steps, ranks, seeds, config
            case imageSize = "image_size", batchSize = "batch_size"
        }

        public init(kind: String, imageSize: Int, target: String, sources: [String], ranks: Int, seeds: [UInt64],
                    config: TrainingConfig) {
            self.kind = kind; self.imageSize = imageSize; self.target = target; self.sources = sources
            steps = config.steps; batchSize = config.batchSize; self.ranks = ranks; self.seeds = seeds; self.config = config
        }
    }

    public static let formatName = "selora-report-2"
    /// The method every other is compared with in ``paired``.
    public static let reference = "selective"

    public var format = ComparisonReport.formatName
    public var protocolInfo: ProtocolInfo
    public var baselines: [String: Double]
    public var runs: [RunRecord]
    public var summary: [MethodSummary]
    public var paired: [PairedDifference]

    enum CodingKeys: String, CodingKey {
        case format, baselines, runs, summary, paired
        case protocolInfo = "protocol"
    }

    /// Non-finite metric values are dropped (JSON has no NaN; a diverged loss is then absent, not 0).
    public init(protocolInfo: ProtocolInfo, baselines: [String: Double], runs: [RunRecord]) {
        self.protocolInfo = protocolInfo
        self.baselines = baselines.filter { $0.value.isFinite }
        self.runs = runs.map { RunRecord(method: $0.method, seed: $0.seed, metrics: $0.metrics.filter { $0.value.isFinite }) }
        summary = SeedStatistics.summarize(self.runs)
        paired = SeedStatistics.paired(self.runs, reference: Self.reference)
    }

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }
}

extension ComparisonReport {
    /// The metric columns of the markdown tables, in this order when present: target, OOD, then per source its
    /// probe and kNN retention and drift, then zero-shot retention.
    var qualityColumns: [String] {
        let keys = Set(runs.flatMap { $0.metrics.keys })
        let preferred = ["target_accuracy", "ood_accuracy"]
            + protocolInfo.sources.flatMap { ["retention.\($0).probe", "retention.\($0).knn", "drift.\($0)"] }
            + ["retention.zero-shot"]
        let rest = keys.filter { ($0.hasPrefix("retention.") || $0.hasPrefix("drift.")) && !preferred.contains($0) }.sorted()
        return (preferred + rest).filter { keys.contains($0) }
    }

    static func header(_ key: String) -> String {
        switch key {
        case "target_accuracy": return "target acc"
        case "ood_accuracy": return "OOD acc"
        case "retention.zero-shot": return "held-out zero-shot"
        default:
            if key.hasPrefix("drift.") { return "\(key.dropFirst(6)) CLS drift" }
            if key.hasPrefix("retention."), key.hasSuffix(".probe") { return "\(key.dropFirst(10).dropLast(6)) probe" }
            if key.hasPrefix("retention."), key.hasSuffix(".knn") { return "\(key.dropFirst(10).dropLast(4)) kNN" }
            return key
        }
    }

    /// Drift is a raw value (4 decimals), everything else in the quality columns a fraction shown in percent.
    static func format(_ key: String, _ v: Double, difference: Bool = false) -> String {
        if key.hasPrefix("drift.") { return String(format: difference ? "%+.4f" : "%.4f", v) }
        return String(format: difference ? "%+.1f pp" : "%.1f%%", 100 * v)
    }

    static func cell(_ key: String, mean: Double?, std: Double?, difference: Bool = false) -> String {
        guard let mean else { return "–" }
        guard let std else { return format(key, mean, difference: difference) }
        let s = key.hasPrefix("drift.") ? String(format: "%.4f", std) : String(format: "%.1f", 100 * std)
        return format(key, mean, difference: difference) + " ± " + s
    }

    /// The mean ± std table per method (one seed: the single-run values, no ±), the paired differences with their
    /// marks, and the protocol line.
    public func markdown(extra: String = "") -> String {
        let cols = qualityColumns
        let loraSeconds = summary.first { $0.method == "lora" }?.mean["train_seconds"].flatMap { $0 > 0 ? $0 : nil }
        var s = "| method | n | " + cols.map(Self.header).joined(separator: " | ")
            + " | active blocks | trainable params | training time | all-reduced |\n"
        s += "|---|---|" + cols.map { _ in "---|" }.joined() + "---|---|---|---|\n"
        if !baselines.isEmpty {
            s += "| pretrained (no training) | – | " + cols.map { k in baselines[k].map { Self.format(k, $0) } ?? "–" }
                .joined(separator: " | ")
                + " | – | 0 | – | – |\n"
        }
        for m in summary {
            let pm = { (k: String) -> String in
                guard let v = m.mean[k] else { return "–" }
                return m.std[k].map { String(format: "%.1f ± %.1f", v, $0) } ?? String(format: "%.1f", v)
            }
            let blocks = (m.mean["total_blocks"] ?? 0) > 0
                ? pm("active_blocks") + String(format: " of %.0f", m.mean["total_blocks"] ?? 0)
                    + (m.mean["active_fraction"].map { String(format: " (%.1f%%)", 100 * $0) } ?? "")
                : "–"
            let params = m.mean["trainable_parameters"].map { String(format: "%.0f", $0) } ?? "–"
            let time = m.mean["train_seconds"].map { v in
                String(format: "%.0f s", v) + (m.std["train_seconds"].map { String(format: " ± %.0f", $0) } ?? "")
            } ?? "–"
            // Training time against LoRA's mean in the same report (the ratio the issue's goals are stated in).
            let ratio = m.method == "lora" ? "" : (loraSeconds.flatMap { l in
                m.mean["train_seconds"].map { String(format: " (%.2f× lora)", $0 / l) } } ?? "")
            let bytes = m.mean["bytes_reduced"].map { String(format: "%.1f MB", $0 / 1e6) } ?? "–"
            s += "| \(m.method) | \(m.n) | " + cols.map { Self.cell($0, mean: m.mean[$0], std: m.std[$0]) }.joined(separator: " | ")
                + " | \(blocks) | \(params) | \(time)\(ratio) | \(bytes) |\n"
        }
        let others = SeedStatistics.methods(runs)
        let shown = paired.filter { cols.contains($0.metric) }.sorted {
            let x = (others.firstIndex(of: $0.b) ?? 0, cols.firstIndex(of: $0.metric) ?? 0)
            let y = (others.firstIndex(of: $1.b) ?? 0, cols.firstIndex(of: $1.metric) ?? 0)
            return x < y
        }
        if shown.contains(where: { $0.n >= 2 }) {
            s += "\n| difference | metric | n | mean ± std over seeds | marked |\n|---|---|---|---|---|\n"
            for d in shown {
                s += "| \(d.a) − \(d.b) | \(Self.header(d.metric)) | \(d.n) | "
                    + Self.cell(d.metric, mean: d.mean, std: d.std, difference: true) + " | \(d.exceeds2Std ? "**yes**" : "") |\n"
            }
            s += "\nPaired differences are per seed (same seed: same initialisation and data order), then mean and sample std (n − 1) over seeds; **marked** when n ≥ 2 and |mean| > 2·std (a rough screen, not a significance test; std 0 with a nonzero mean is marked). Accuracies in percentage points, drift raw.\n"
        }
        let p = protocolInfo, c = p.config
        s += "\nprotocol: \(p.kind); target \(p.target) at \(p.imageSize) px; sources \(p.sources.joined(separator: ", ")); "
            + "\(p.steps) steps of global batch \(p.batchSize) on \(p.ranks) rank(s); seeds \(p.seeds.map(String.init).joined(separator: ",")); "
            + String(format: "LoRA rank %d, alpha %g, λ %g", c.lora.rank, Double(c.lora.alpha), Double(c.penalty))
            + (p.seeds.count > 1 ? "; values are mean ± sample std over seeds" : "")
            + (extra.isEmpty ? "" : "; " + extra)
        return s
    }
}
