import ArgumentParser
import Foundation
import Logging
import Training

/// What a method comparison runs and where it reports (eval, clip-eval).
struct ComparisonOptions: ParsableArguments {
    @Option(help: "Comma-separated methods to compare (each from the same weights and data).")
    var methods = "linear-probe,full,lora,selective"

    @Option(help: "Comma-separated seeds (non-negative integers, no repeats): every method runs once per seed with that seed's initialisation, data order and augmentation (default: --seed alone).")
    var seeds: String?

    @Option(help: "Seed of the corrupted (OOD) copy of the target test set.")
    var oodSeed: UInt64 = 1

    @Option(help: "Directory for report.json, report.md and metrics-<method>-seed<k>.jsonl (created; must not hold a report already).")
    var out: String?

    func parsedMethods() throws -> [Method] {
        try methods.split(separator: ",").map {
            guard let m = Method(rawValue: $0.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--methods: unknown method `\($0)`; expected one of "
                                      + Method.allCases.map(\.rawValue).joined(separator: ", "))
            }
            return m
        }
    }

    /// `--seeds` parsed; `fallback` (the `--seed` of the training options) when absent.
    func parsedSeeds(default fallback: UInt64) throws -> [UInt64] {
        guard let seeds else { return [fallback] }
        var out: [UInt64] = []
        for item in seeds.split(separator: ",", omittingEmptySubsequences: false) {
            let t = item.trimmingCharacters(in: .whitespaces)
            guard let v = UInt64(t) else {
                throw ValidationError("--seeds `\(seeds)`: `\(t)` is not a non-negative integer; expected a comma-separated list such as 0,1,2")
            }
            guard !out.contains(v) else { throw ValidationError("--seeds `\(seeds)`: seed \(v) appears twice; expected distinct seeds") }
            out.append(v)
        }
        return out
    }

    func validate() throws {
        guard !(try parsedMethods()).isEmpty else { throw ValidationError("--methods is empty") }
        _ = try parsedSeeds(default: 0)
    }
}

/// Runs `body` once per (seed, method) — seeds outer, so every method of a seed sees that seed's data order — on a
/// copy of `base` with that method and seed, with `metrics-<method>-seed<k>.jsonl` in `out` (rank 0) and a log
/// line every 50 steps: the loop `selora eval` and `selora clip-eval` share. Returns one ``RunRecord`` per run.
func forEachRun(_ methods: [Method], seeds: [UInt64], base: TrainingConfig, out: String?, isRoot: Bool, imageSize: Int,
                log: Logger, _ body: (TrainingConfig, (ParallelStepStats) throws -> Void) throws -> [String: Double]) throws -> [RunRecord] {
    var runs: [RunRecord] = []
    for seed in seeds {
        for m in methods {
            var c = base
            c.method = m
            c.seed = seed
            log.info("fine-tuning with \(m.rawValue), seed \(seed): \(c.steps) steps of \(c.batchSize) at \(imageSize) px")
            let metrics = isRoot ? try out.map { try JSONLWriter(path: "\($0)/metrics-\(m.rawValue)-seed\(seed).jsonl") } : nil
            let result = try body(c) { s in
                try metrics?.write(s.record)
                if s.step % 50 == 0 || s.step == c.steps - 1 {
                    log.info("  \(m.rawValue) step \(s.step + 1)/\(c.steps) loss \(String(format: "%.4f", s.loss)) active \(s.activeBlocks) reduced \(s.bytesReduced) B")
                }
            }
            runs.append(RunRecord(method: m.rawValue, seed: seed, metrics: result))
        }
    }
    return runs
}

/// Prints the report's markdown and writes report.json and report.md to `out` (rank 0 only calls this).
func writeReport(_ report: ComparisonReport, out: String?, extra: String) throws {
    let table = report.markdown(extra: extra)
    print(table)
    guard let out else { return }
    try report.json().write(to: URL(fileURLWithPath: out + "/report.json"), options: .atomic)
    try table.write(toFile: out + "/report.md", atomically: true, encoding: .utf8)
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }
}
