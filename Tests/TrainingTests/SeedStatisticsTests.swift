import Foundation
import Training
import XCTest

final class SeedStatisticsTests: XCTestCase {
    func testMeanAndSampleStd() throws {
        XCTAssertEqual(SeedStatistics.mean([1, 2, 3, 6]), 3)
        // Σ(x − 3)² = 4 + 1 + 0 + 9 = 14; / (n − 1) = 14/3.
        XCTAssertEqual(try XCTUnwrap(SeedStatistics.sampleStd([1, 2, 3, 6])), (14.0 / 3).squareRoot(), accuracy: 1e-15)
        XCTAssertNil(SeedStatistics.sampleStd([5]))
        XCTAssertEqual(SeedStatistics.sampleStd([2, 2]), 0)
    }

    func testMarks() {
        XCTAssertTrue(SeedStatistics.exceeds2Std(mean: 0.1, std: 0.04, n: 3))
        XCTAssertFalse(SeedStatistics.exceeds2Std(mean: 0.1, std: 0.05, n: 3))    // |mean| = 2·std: not above
        XCTAssertTrue(SeedStatistics.exceeds2Std(mean: -0.1, std: 0, n: 2))       // std 0, mean ≠ 0
        XCTAssertFalse(SeedStatistics.exceeds2Std(mean: 0, std: 0, n: 2))
        XCTAssertFalse(SeedStatistics.exceeds2Std(mean: 1, std: nil, n: 1))
    }

    func testSummaryAndPairedDifferences() throws {
        let runs = [
            RunRecord(method: "selective", seed: 0, metrics: ["acc": 0.9, "settled": 40]),
            RunRecord(method: "lora", seed: 0, metrics: ["acc": 0.8]),
            RunRecord(method: "selective", seed: 1, metrics: ["acc": 0.7]),
            RunRecord(method: "lora", seed: 1, metrics: ["acc": 0.65]),
            RunRecord(method: "selective", seed: 2, metrics: ["acc": 0.8]),
            RunRecord(method: "lora", seed: 2, metrics: ["acc": 0.75]),
            RunRecord(method: "full", seed: 0, metrics: ["acc": 0.5]),
        ]
        let s = SeedStatistics.summarize(runs)
        XCTAssertEqual(s.map(\.method), ["selective", "lora", "full"])
        XCTAssertEqual(s.map(\.n), [3, 3, 1])
        XCTAssertEqual(try XCTUnwrap(s[0].mean["acc"]), 0.8, accuracy: 1e-15)
        XCTAssertEqual(try XCTUnwrap(s[0].std["acc"]), 0.1, accuracy: 1e-15)     // (0.01 + 0.01 + 0) / 2 = 0.01
        XCTAssertEqual(s[0].mean["settled"], 40)
        XCTAssertNil(s[0].std["settled"])                                         // present in one run only
        XCTAssertNil(s[2].std["acc"])

        let p = SeedStatistics.paired(runs, reference: "selective")
        XCTAssertEqual(p.map { "\($0.a)-\($0.b)-\($0.metric)" }, ["selective-lora-acc", "selective-full-acc"])
        // selective − lora per seed: 0.1, 0.05, 0.05 → mean 0.2/3, std √((1/30² ·(4 + 1 + 1))/2)… computed exactly:
        let d = [0.9 - 0.8, 0.7 - 0.65, 0.8 - 0.75]
        let m = (d[0] + d[1] + d[2]) / 3
        let sd = (d.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 2).squareRoot()
        XCTAssertEqual(p[0].n, 3)
        XCTAssertEqual(p[0].mean, m, accuracy: 1e-15)
        XCTAssertEqual(try XCTUnwrap(p[0].std), sd, accuracy: 1e-15)
        XCTAssertEqual(sd, 0.028867513459481, accuracy: 1e-12)
        XCTAssertTrue(p[0].exceeds2Std)                                           // 0.0667 > 2 · 0.0289
        XCTAssertEqual(p[1].n, 1)
        XCTAssertEqual(p[1].mean, 0.4, accuracy: 1e-15)
        XCTAssertNil(p[1].std)
        XCTAssertFalse(p[1].exceeds2Std)
        XCTAssertTrue(SeedStatistics.paired(runs, reference: "magic").isEmpty)
    }

    /// The JSON keys the plotting script reads.
    func testReportJSONKeys() throws {
        var c = TrainingConfig()
        c.steps = 7
        let info = ComparisonReport.ProtocolInfo(kind: "forgetting", imageSize: 56, target: "t", sources: ["a"], ranks: 2,
                                                 seeds: [0, 1], config: c)
        let runs = [RunRecord(method: "selective", seed: 0, metrics: ["retention.a.probe": 0.5, "final_loss": .nan]),
                    RunRecord(method: "lora", seed: 0, metrics: ["retention.a.probe": 0.25]),
                    RunRecord(method: "selective", seed: 1, metrics: ["retention.a.probe": 0.75]),
                    RunRecord(method: "lora", seed: 1, metrics: ["retention.a.probe": 0.5])]
        let r = ComparisonReport(protocolInfo: info, baselines: ["retention.a.probe": 0.8], runs: runs)
        let j = try XCTUnwrap(JSONSerialization.jsonObject(with: try r.json()) as? [String: Any])
        XCTAssertEqual(Set(j.keys), ["format", "protocol", "baselines", "runs", "summary", "paired"])
        XCTAssertEqual(j["format"] as? String, "selora-report-2")
        let p = try XCTUnwrap(j["protocol"] as? [String: Any])
        XCTAssertEqual(Set(p.keys), ["kind", "image_size", "target", "sources", "steps", "batch_size", "ranks", "seeds", "config"])
        XCTAssertEqual(p["steps"] as? Int, 7)
        let run0 = try XCTUnwrap((j["runs"] as? [[String: Any]])?.first)
        XCTAssertEqual(Set(run0.keys), ["method", "seed", "metrics"])
        XCTAssertNil((run0["metrics"] as? [String: Any])?["final_loss"])        // NaN dropped
        let pair = try XCTUnwrap((j["paired"] as? [[String: Any]])?.first)
        XCTAssertEqual(Set(pair.keys), ["a", "b", "metric", "n", "mean", "std", "exceeds_2std"])
        XCTAssertEqual(pair["mean"] as? Double, 0.25)
        XCTAssertEqual(pair["std"] as? Double, 0)
        XCTAssertEqual(pair["exceeds_2std"] as? Bool, true)
        let md = r.markdown()
        XCTAssertTrue(md.contains("| selective | 2 | 62.5% ± 17.7 |"), md)
        XCTAssertTrue(md.contains("| selective − lora | a probe | 2 | +25.0 pp ± 0.0 | **yes** |"), md)
        XCTAssertTrue(md.contains("| pretrained (no training) | – | 80.0% |"), md)
    }

    /// The training-time column carries the ratio to LoRA's mean time, and the bytes all-reduced per run in MB.
    func testMarkdownTimeRatioAndBytes() {
        let info = ComparisonReport.ProtocolInfo(kind: "forgetting", imageSize: 56, target: "t", sources: [], ranks: 2,
                                                 seeds: [0], config: TrainingConfig())
        let runs = [RunRecord(method: "lora", seed: 0, metrics: ["train_seconds": 100, "bytes_reduced": 42_500_000]),
                    RunRecord(method: "selective", seed: 0, metrics: ["train_seconds": 55, "bytes_reduced": 3_000_000])]
        let md = ComparisonReport(protocolInfo: info, baselines: [:], runs: runs).markdown()
        XCTAssertTrue(md.contains("| 100 s | 42.5 MB |"), md)
        XCTAssertTrue(md.contains("| 55 s (0.55× lora) | 3.0 MB |"), md)
    }
}
