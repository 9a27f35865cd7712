#!/usr/bin/env python3
"""tools/study_report.py on synthetic launch/study trees: statistics against hand-computed values, the verdict,
the Pareto set, and the refusal of a report.json whose own `paired` / `summary` disagree with its runs.

    .venv/bin/python Tests/study/test_study_report.py        (plain unittest; matplotlib only for the plot test)
"""
import contextlib
import copy
import io
import json
import math
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import study_report as sr  # noqa: E402

SEEDS = [0, 1, 2]
# Per method, per metric: the three seeds' values (fractions). Chosen so every mean / std below is exact by hand.
MAIN = {
    "linear-probe": {"target_accuracy": [0.70, 0.70, 0.70], "retention.a.probe": [0.92, 0.92, 0.92],
                     "retention.a.knn": [0.90, 0.90, 0.90], "retention.b.probe": [0.97, 0.97, 0.97],
                     "retention.b.knn": [0.96, 0.96, 0.96]},
    "full": {"target_accuracy": [0.86, 0.86, 0.86], "retention.a.probe": [0.55, 0.56, 0.57],
             "retention.a.knn": [0.50, 0.50, 0.50], "retention.b.probe": [0.95, 0.95, 0.95],
             "retention.b.knn": [0.80, 0.85, 0.80]},
    "lora": {"target_accuracy": [0.805, 0.83, 0.845], "retention.a.probe": [0.50, 0.51, 0.55],
             "retention.a.knn": [0.60, 0.70, 0.65], "retention.b.probe": [0.80, 0.80, 0.80],
             "retention.b.knn": [0.85, 0.80, 0.80]},
    "selective": {"target_accuracy": [0.80, 0.82, 0.84], "retention.a.probe": [0.60, 0.62, 0.64],
                  "retention.a.knn": [0.70, 0.70, 0.70], "retention.b.probe": [0.90, 0.90, 0.90],
                  "retention.b.knn": [0.90, 0.90, 0.90], "active_fraction": [3 / 72, 3 / 72, 2 / 72]},
    "lora-last-k": {"target_accuracy": [0.80, 0.80, 0.80], "retention.a.probe": [0.60, 0.60, 0.60],
                    "retention.a.knn": [0.60, 0.60, 0.60], "retention.b.probe": [0.60, 0.60, 0.60],
                    "retention.b.knn": [0.60, 0.60, 0.60]},
}
MAIN_KNOBS = {"selective": {"max-active": 5, "settle-after": 100}, "lora": {"rank": 128, "lr": 0.001},
              "full": {"full-lr": 2e-5}, "lora-last-k": {"last-k": 1}}
BASELINES = {"retention.a.probe": 0.93, "retention.a.knn": 0.91, "retention.b.probe": 0.98, "retention.b.knn": 0.97}
RET = ["retention.a.probe", "retention.a.knn", "retention.b.probe", "retention.b.knn"]


def read_text(path):
    with open(path) as f:
        return f.read()


def read_json(path):
    return json.loads(read_text(path))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)


def run_records(table, seeds):
    runs = []
    for method, metrics in table.items():
        for i, seed in enumerate(seeds):
            m = {k: v[i] for k, v in metrics.items()}
            m.setdefault("ood_accuracy", 0.5)
            m.setdefault("active_fraction", 1.0 if method != "linear-probe" else 0.0)
            m.update({"train_seconds": 100.0 + i, "bytes_reduced": 1e6 * (i + 1), "drift.a": 0.1,
                      "final_loss": 0.3})
            runs.append({"method": method, "seed": seed, "metrics": m})
    return runs


def file_stats(runs, pairs_wanted):
    """summary and paired as selora is specified to write them (sample std), computed independently of sr."""
    by = {}
    for r in runs:
        by.setdefault(r["method"], {})[r["seed"]] = r["metrics"]

    def sstd(xs):
        if len(xs) < 2:
            return None
        m = sum(xs) / len(xs)
        return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    summary = []
    for method, seeds in by.items():
        keys = sorted(set.intersection(*(set(m) for m in seeds.values())))
        summary.append({"method": method, "n": len(seeds),
                        "mean": {k: sum(s[k] for s in seeds.values()) / len(seeds) for k in keys},
                        "std": {k: sstd([s[k] for s in seeds.values()]) for k in keys}})
    paired = []
    for a, b, metric in pairs_wanted:
        d = [by[a][s][metric] - by[b][s][metric] for s in sorted(by[a]) if s in by[b]]
        m, s = sum(d) / len(d), sstd(d)
        paired.append({"a": a, "b": b, "metric": metric, "n": len(d), "mean": m, "std": s,
                       "exceeds_2std": s is not None and abs(m) > 2 * s})
    return summary, paired


def write_setting(root, rel, table, seeds, setting, steps=150, with_stats=True):
    d = os.path.join(root, rel)
    os.makedirs(d, exist_ok=True)
    runs = run_records(table, seeds)
    wanted = [(a, b, m) for a, b in (("selective", "lora"), ("selective", "full"))
              if a in table and b in table for m in ["target_accuracy"] + RET]
    summary, paired = file_stats(runs, wanted) if with_stats else ([], [])
    report = {"format": "selora-report-2",
              "protocol": {"kind": "forgetting", "image_size": 56, "target": "fashion-mnist", "sources": ["a", "b"],
                           "steps": steps, "batch_size": 32, "ranks": 2, "seeds": seeds, "config": {}},
              "baselines": BASELINES, "runs": runs, "summary": summary, "paired": paired}
    with open(os.path.join(d, "report.json"), "w") as f:
        json.dump(report, f)
    with open(os.path.join(d, "setting.json"), "w") as f:
        json.dump(setting, f)
    return d


def one_seed(values):
    return {k: [v] for k, v in values.items()}


def make_study(root, sparse=True, selective_target=None):
    main = copy.deepcopy(MAIN)
    if selective_target is not None:
        main["selective"]["target_accuracy"] = selective_target
    if not sparse:
        main["selective"]["active_fraction"] = [3 / 72, 4 / 72, 2 / 72]
    write_setting(root, "p/main", main, SEEDS,
                  {"pair": "p", "method": "selective", "knob": "max-active", "value": 5, "main": True,
                   "knobs": MAIN_KNOBS})
    write_setting(root, "p/sweep-selective-max-active-10",
                  {"selective": one_seed({"target_accuracy": 0.84, "retention.a.probe": 0.58, "retention.a.knn": 0.5,
                                          "retention.b.probe": 0.5, "retention.b.knn": 0.5,
                                          "active_fraction": 7 / 72})}, [0],
                  {"pair": "p", "method": "selective", "knob": "max-active", "value": 10, "main": False})
    write_setting(root, "p/sweep-lora-rank-8",
                  {"lora": one_seed({"target_accuracy": 0.78, "retention.a.probe": 0.50, "retention.a.knn": 0.5,
                                     "retention.b.probe": 0.5, "retention.b.knn": 0.5})}, [0],
                  {"pair": "p", "method": "lora", "knob": "rank", "value": 8, "main": False})


class Statistics(unittest.TestCase):
    def test_mean_std_exact(self):
        self.assertAlmostEqual(sr.mean([0.80, 0.82, 0.84]), 0.82, places=15)
        self.assertAlmostEqual(sr.std([0.80, 0.82, 0.84]), 0.02, places=15)
        self.assertIsNone(sr.std([0.5]))
        self.assertEqual(sr.std([0.3, 0.3]), 0.0)

    def test_paired_exact(self):
        a = {s: {"m": v} for s, v in zip(SEEDS, MAIN["selective"]["target_accuracy"])}
        b = {s: {"m": v} for s, v in zip(SEEDS, MAIN["lora"]["target_accuracy"])}
        p = sr.paired(a, b, "m")
        # differences −0.005, −0.01, −0.005: mean −0.02/3, sample std 0.005/√3
        self.assertEqual(p["n"], 3)
        self.assertAlmostEqual(p["mean"], -0.02 / 3, places=14)
        self.assertAlmostEqual(p["std"], 0.005 / math.sqrt(3), places=14)
        self.assertTrue(p["exceeds_2std"])          # 0.00667 > 2 · 0.00289
        # seeds only one side has are left out
        b.pop(2)
        self.assertEqual(sr.paired(a, b, "m")["n"], 2)

    def test_pareto_flags(self):
        pts = [(1, 5), (2, 4), (2, 3), (3, 1), (0, 5), (3, 1)]
        self.assertEqual(sr.pareto_flags(pts), [True, True, False, True, False, True])


class Report(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="study-test-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def build(self, **kw):
        make_study(self.dir, **kw)
        pairs, checks = sr.build([self.dir])
        self.assertEqual(len(pairs), 1)
        return pairs[0], checks

    def test_main_table_values(self):
        pair, checks = self.build()
        self.assertGreater(checks["p"], 0)
        self.assertEqual(pair.retention, RET)
        sel = next(p for p in pair.points if p.main and p.method == "selective")
        self.assertEqual(sel.n, 3)
        self.assertAlmostEqual(sel.mean("retention.a.probe"), 0.62, places=14)
        self.assertAlmostEqual(sel.std("retention.a.probe"), 0.02, places=14)
        self.assertAlmostEqual(sel.mean("active_fraction"), 8 / 216, places=14)
        md, _ = sr.markdown([pair], checks)
        self.assertIn("| selective | max-active 5 · settle-after 100 | 3 | 82.0 ± 2.0 %", md)
        self.assertIn("| pretrained (baseline) |", md)
        # selective − lora on retention.a.probe: differences 0.10, 0.11, 0.09 → +10.00 ± 1.00 pp, > 2σ
        self.assertIn("| selective − lora | retention.a.probe | 3 | +10.00 ± 1.00 | **>2σ** |", md)
        # selective − lora on retention.a.knn: 0.10, 0.00, 0.05 → +5.00 ± 5.00 pp, not > 2σ
        self.assertIn("| selective − lora | retention.a.knn | 3 | +5.00 ± 5.00 | no |", md)
        # selective − full on retention.b.probe: −0.05 each → −5.00 ± 0.00
        self.assertIn("| selective − full | retention.b.probe | 3 | -5.00 ± 0.00 | **>2σ** |", md)

    def test_verdict(self):
        pair, _ = self.build()
        lines, res = sr.verdict(pair)
        text = "\n".join(lines)
        self.assertTrue(res["sparsity"])
        self.assertTrue(res["target"])
        self.assertAlmostEqual(res["target_diff"], -0.02 / 3, places=14)
        self.assertEqual(res["retention"], {"retention.a.probe": True, "retention.a.knn": False,
                                            "retention.b.probe": False, "retention.b.knn": True})
        self.assertFalse(res["overall"])
        self.assertIn("**Sparsity** (active fraction ≤ 5 % on every seed, main selective setting (max-active 5 · "
                      "settle-after 100)): **holds** — mean 3.70 %, largest 4.17 % (n = 3).", text)
        self.assertIn("**Target accuracy no more than 1 pp below LoRA's**: **holds** — selective 82.00 %, LoRA 82.67 %, "
                      "paired difference -0.67 ± 0.29 pp (n = 3).", text)
        self.assertIn("- `retention.a.probe`: **holds** — selective − LoRA +10.00 ± 1.00 pp (> 2 std, n = 3); "
                      "selective − full +6.00 ± 1.00 pp (> 2 std, n = 3).", text)
        self.assertIn("- `retention.a.knn`: **does not hold** — selective − LoRA +5.00 ± 5.00 pp (not > 2 std, "
                      "n = 3)", text)
        self.assertIn("by > 2 std**: **does not hold** — holds on only 2 of 4 metrics (retention.a.probe, "
                      "retention.b.knn), not on retention.a.knn, retention.b.probe.", text)
        self.assertIn("**Overall: the claim does not hold** for p (sparsity ✓, target ✓, retention 2/4 metrics).", text)

    def test_verdict_sparsity_fails(self):
        pair, _ = self.build(sparse=False)
        lines, res = sr.verdict(pair)
        self.assertFalse(res["sparsity"])
        self.assertIn("**does not hold** — mean 4.17 %, largest 5.56 % (n = 3).", "\n".join(lines))

    def test_verdict_target_is_one_sided(self):
        # LoRA's per-seed target accuracy is 0.805, 0.83, 0.845: selective 7 pp above passes, 1.5 pp below fails.
        pair, _ = self.build(selective_target=[0.875, 0.90, 0.915])
        lines, res = sr.verdict(pair)
        self.assertTrue(res["target"])
        self.assertAlmostEqual(res["target_diff"], 0.07, places=12)
        shutil.rmtree(self.dir); os.makedirs(self.dir)
        pair, _ = self.build(selective_target=[0.79, 0.815, 0.83])
        lines, res = sr.verdict(pair)
        self.assertFalse(res["target"])
        self.assertIn("**Target accuracy no more than 1 pp below LoRA's**: **does not hold**", "\n".join(lines))

    def test_pareto_set(self):
        pair, _ = self.build()
        opt = sorted((p.method, p.setting.name) for p in pair.points if p.pareto.get("retention.a.probe"))
        # (target, retention.a.probe): linear-probe (.70, .92), selective main (.82, .62), selective 10 % (.84, .58),
        # full (.86, .56) are optimal; lora (.8267, .52), lora-last-k (.80, .60), lora rank 8 (.78, .50) are not.
        self.assertEqual(opt, [("full", "p/main"), ("linear-probe", "p/main"), ("selective", "p/main"),
                               ("selective", "p/sweep-selective-max-active-10")])

    def test_knob_lines(self):
        pair, _ = self.build()
        lora = [p for p in pair.points if p.method == "lora"]
        lines = sr.knob_lines(pair, "lora", lora)
        self.assertEqual([(k, [p.knobs[k] for p in pts]) for k, pts in lines], [("rank", [8, 128])])

    def test_outputs(self):
        make_study(self.dir)
        plot = True
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            plot = False
        with contextlib.redirect_stdout(io.StringIO()) as out:
            rc = sr.main([self.dir] + ([] if plot else ["--no-plot"]))
        self.assertIn("Overall: the claim does not hold for p", out.getvalue())
        self.assertEqual(rc, 0)
        md = read_text(os.path.join(self.dir, "study.md"))
        self.assertIn("### Verdict", md)
        rows = read_text(os.path.join(self.dir, "pareto.csv")).strip().split("\n")
        self.assertEqual(len(rows), 1 + 4 * 7)          # header + 4 metrics × 7 points
        self.assertIn("p,retention.a.probe,selective,p/main,max-active 5 · settle-after 100,1,3,82.000000,2.000000,"
                      "62.000000,2.000000,1", rows)
        if plot:
            for ext in ("svg", "png"):
                self.assertGreater(os.path.getsize(os.path.join(self.dir, f"pareto.{ext}")), 1000)

    def test_file_paired_mismatch_is_an_error(self):
        make_study(self.dir)
        path = os.path.join(self.dir, "p", "main", "report.json")
        r = read_json(path)
        e = next(e for e in r["paired"] if e["metric"] == "retention.a.probe" and e["b"] == "lora")
        e["mean"] = 0.12
        write_json(path, r)
        with self.assertRaises(sr.StudyError) as cm:
            sr.build([self.dir])
        self.assertIn("paired selective − lora retention.a.probe: mean 0.12", str(cm.exception))
        with contextlib.redirect_stderr(io.StringIO()) as err:
            self.assertEqual(sr.main([self.dir, "--no-plot"]), 1)
        self.assertIn("study_report: error:", err.getvalue())

    def test_file_population_std_is_an_error(self):
        make_study(self.dir)
        path = os.path.join(self.dir, "p", "main", "report.json")
        r = read_json(path)
        e = next(e for e in r["paired"] if e["metric"] == "retention.a.probe" and e["b"] == "lora")
        e["std"] = 0.01 * math.sqrt(2 / 3)      # population std (n) instead of sample std (n − 1)
        write_json(path, r)
        with self.assertRaisesRegex(sr.StudyError, "std"):
            sr.build([self.dir])

    def test_file_exceeds_flag_mismatch_is_an_error(self):
        make_study(self.dir)
        path = os.path.join(self.dir, "p", "main", "report.json")
        r = read_json(path)
        e = next(e for e in r["paired"] if e["metric"] == "retention.a.knn" and e["b"] == "lora")
        e["exceeds_2std"] = True
        write_json(path, r)
        with self.assertRaisesRegex(sr.StudyError, "exceeds_2std"):
            sr.build([self.dir])

    def test_file_summary_mismatch_is_an_error(self):
        make_study(self.dir)
        path = os.path.join(self.dir, "p", "main", "report.json")
        r = read_json(path)
        next(e for e in r["summary"] if e["method"] == "lora")["mean"]["target_accuracy"] = 0.9
        write_json(path, r)
        with self.assertRaisesRegex(sr.StudyError, "summary lora mean target_accuracy"):
            sr.build([self.dir])

    def test_missing_setting_json_is_an_error(self):
        make_study(self.dir)
        os.remove(os.path.join(self.dir, "p", "sweep-lora-rank-8", "setting.json"))
        with self.assertRaisesRegex(sr.StudyError, "no setting.json"):
            sr.build([self.dir])

    def test_mixed_protocols_are_an_error(self):
        make_study(self.dir)
        write_setting(self.dir, "p/sweep-lora-rank-32", {"lora": one_seed({"target_accuracy": 0.8})}, [0],
                      {"pair": "p", "method": "lora", "knob": "rank", "value": 32, "main": False}, steps=20)
        with self.assertRaisesRegex(sr.StudyError, "protocol steps"):
            sr.build([self.dir])

    def test_old_format_is_an_error(self):
        make_study(self.dir)
        path = os.path.join(self.dir, "p", "main", "report.json")
        r = read_json(path)
        r["format"] = "selora-report-1"
        write_json(path, r)
        with self.assertRaisesRegex(sr.StudyError, "selora-report-2"):
            sr.build([self.dir])


if __name__ == "__main__":
    unittest.main()
