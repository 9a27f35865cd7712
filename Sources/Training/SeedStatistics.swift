import Foundation

/// One fine-tuning run of a comparison: a method, a seed and its flat metrics (fractions 0–1 for accuracies).
public struct RunRecord: Codable, Equatable, Sendable {
    public var method: String
    public var seed: UInt64
    public var metrics: [String: Double]
    public init(method: String, seed: UInt64, metrics: [String: Double]) {
        self.method = method; self.seed = seed; self.metrics = metrics
    }
}

/// Mean and sample standard deviation of every metric of one method over its seeds.
public struct MethodSummary: Codable, Equatable, Sendable {
    public var method: String
    /// Runs (seeds) of the method.
    public var n: Int
    public var mean: [String: Double]
    /// Only metrics seen in two or more runs (a standard deviation of one value is undefined).
    public var std: [String: Double]
}

/// A paired difference `a − b` of one metric over the seeds both methods ran.
public struct PairedDifference: Codable, Equatable, Sendable {
    public var a: String
    public var b: String
    public var metric: String
    public var n: Int
    public var mean: Double
    /// nil (absent in JSON) for n = 1.
    public var std: Double?
    /// n ≥ 2 and |mean| > 2·std (see ``SeedStatistics/exceeds2Std(mean:std:n:)``).
    public var exceeds2Std: Bool

    enum CodingKeys: String, CodingKey {
        case a, b, metric, n, mean, std
        case exceeds2Std = "exceeds_2std"
    }
}

/// Statistics over seeds, generic over flat metric dictionaries so the DINO and CLIP protocols share them.
///
/// Exact definitions (x_1 … x_n the values of one metric in the runs where it is present):
///  - mean `x̄ = Σ x_i / n`; sample standard deviation `s = √(Σ (x_i − x̄)² / (n − 1))`, undefined (nil) for n = 1;
///  - paired difference of methods a and b: for each seed both ran and whose runs both hold the metric,
///    `d = a − b`; then the mean and sample standard deviation of the d's;
///  - a difference is *marked* when n ≥ 2 and |mean| > 2·std — a rough screen (about a 95 % interval of the
///    per-seed differences excluding zero, not a significance test on the mean); std = 0 with mean ≠ 0 is marked.
public enum SeedStatistics {
    public static func mean(_ x: [Double]) -> Double {
        var s = 0.0
        for v in x { s += v }
        return s / Double(max(x.count, 1))
    }

    public static func sampleStd(_ x: [Double]) -> Double? {
        guard x.count >= 2 else { return nil }
        let m = mean(x)
        var ss = 0.0
        for v in x { ss += (v - m) * (v - m) }
        return (ss / Double(x.count - 1)).squareRoot()
    }

    public static func exceeds2Std(mean: Double, std: Double?, n: Int) -> Bool {
        guard n >= 2, let std else { return false }
        return abs(mean) > 2 * std
    }

    /// Methods in the order they first appear in `runs`.
    public static func methods(_ runs: [RunRecord]) -> [String] {
        var seen: [String] = []
        for r in runs where !seen.contains(r.method) { seen.append(r.method) }
        return seen
    }

    /// One summary per method (first-appearance order).
    public static func summarize(_ runs: [RunRecord]) -> [MethodSummary] {
        methods(runs).map { m in
            let rs = runs.filter { $0.method == m }
            var mean: [String: Double] = [:], std: [String: Double] = [:]
            for key in Set(rs.flatMap { $0.metrics.keys }) {
                let x = rs.compactMap { $0.metrics[key] }
                mean[key] = Self.mean(x)
                if let s = sampleStd(x) { std[key] = s }
            }
            return MethodSummary(method: m, n: rs.count, mean: mean, std: std)
        }
    }

    /// Paired differences `reference − b` for every other method b present (first-appearance order), every metric
    /// the two share (sorted by name); empty when `reference` did not run.
    public static func paired(_ runs: [RunRecord], reference: String) -> [PairedDifference] {
        let ref = runs.filter { $0.method == reference }
        guard !ref.isEmpty else { return [] }
        var out: [PairedDifference] = []
        for b in methods(runs) where b != reference {
            let others = runs.filter { $0.method == b }
            var diffs: [String: [Double]] = [:]
            for r in ref {
                guard let o = others.first(where: { $0.seed == r.seed }) else { continue }
                for (key, v) in r.metrics { if let w = o.metrics[key] { diffs[key, default: []].append(v - w) } }
            }
            for key in diffs.keys.sorted() {
                let d = diffs[key] ?? []
                let m = mean(d), s = sampleStd(d)
                out.append(PairedDifference(a: reference, b: b, metric: key, n: d.count, mean: m, std: s,
                                            exceeds2Std: exceeds2Std(mean: m, std: s, n: d.count)))
            }
        }
        return out
    }
}
