#!/usr/bin/env python3
"""Selective's step time per phase of its gates against LoRA's, from the metrics of one `selora eval` run
(README "Settled gates", the per-phase table of the demo).

    .venv/bin/python tools/phase_times.py RUN_DIR [--seed N]

Reads RUN_DIR/metrics-selective[-seedN].jsonl and RUN_DIR/metrics-lora[-seedN].jsonl (seed 0 by default). A
step's time is its compute plus the all-reduce time not hidden behind the backward (`compute_ms` +
`exposed_comm_ms`, rank 0). The phases come from the selective run's own records:
  warm-up   every block active (before the first step with fewer active blocks than the first step's);
  learning  fewer blocks, scores still learning (until the first step marked `settled`);
  settled   mask and scores frozen.
For each phase: the steps, selective's active blocks at its first and last step, how many of its steps changed the
mask (`active_mask` differs from the step before), the mean step time of each method over the same steps, and
their ratio; then both runs' totals and the whole-run ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def load(path: str) -> list[dict]:
    with open(path) as f:
        return [r for r in (json.loads(line) for line in f if line.strip()) if "step" in r]


def step_ms(r: dict) -> float:
    return r["compute_ms"] + r.get("exposed_comm_ms", 0.0)


def phases(sel: list[dict], lora: list[dict]) -> list[dict]:
    """The phases of `sel` (records in step order) with both methods' mean step time over each."""
    lora_ms = {r["step"]: step_ms(r) for r in lora}
    changed = {b["step"] for a, b in zip(sel, sel[1:]) if a.get("active_mask") != b.get("active_mask")}
    first_drop = next((r["step"] for r in sel if r["active_blocks"] < sel[0]["active_blocks"]), None)
    settled = next((r["step"] for r in sel if r.get("settled")), None)
    end = sel[-1]["step"] + 1
    cuts = [("warm-up", sel[0]["step"]), ("learning", first_drop), ("settled", settled)]
    cuts = [(name, s) for name, s in cuts if s is not None]
    out = []
    for k, (name, start) in enumerate(cuts):
        stop = cuts[k + 1][1] if k + 1 < len(cuts) else end
        rows = [r for r in sel if start <= r["step"] < stop and r["step"] in lora_ms]
        if not rows:
            continue
        s = sum(step_ms(r) for r in rows) / len(rows)
        l = sum(lora_ms[r["step"]] for r in rows) / len(rows)
        out.append({"phase": name, "first": rows[0]["step"], "last": rows[-1]["step"],
                    "blocks": (rows[0]["active_blocks"], rows[-1]["active_blocks"]),
                    "changes": sum(r["step"] in changed for r in rows),
                    "selective_ms": s, "lora_ms": l, "ratio": s / l})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    def metrics(method: str) -> str:
        for name in (f"metrics-{method}-seed{a.seed}.jsonl", f"metrics-{method}.jsonl"):
            p = os.path.join(a.run_dir, name)
            if os.path.exists(p):
                return p
        sys.exit(f"phase_times: {a.run_dir} has no metrics-{method}-seed{a.seed}.jsonl (run `selora eval` with "
                 f"--methods lora,selective)")

    sel, lora = load(metrics("selective")), load(metrics("lora"))
    if not sel or not lora:
        sys.exit(f"phase_times: no step records in {a.run_dir}'s selective or lora metrics")
    print("| steps | phase | selective's active blocks | mask changes | selective per step | lora per step "
          "| selective / lora |")
    print("|---|---|---|---|---|---|---|")
    for p in phases(sel, lora):
        b = p["blocks"]
        blocks = f"{b[0]}" if b[0] == b[1] else f"{b[0]} → {b[1]}"
        print(f"| {p['first']}–{p['last']} | {p['phase']} | {blocks} | {p['changes']} | {p['selective_ms']:.0f} ms | "
              f"{p['lora_ms']:.0f} ms | {p['ratio']:.2f}× |")
    s, l = sum(map(step_ms, sel)) / 1000, sum(map(step_ms, lora)) / 1000
    print(f"\nwhole run: selective {s:.1f} s, lora {l:.1f} s of step time: {s / l:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
