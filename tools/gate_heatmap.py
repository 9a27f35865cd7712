#!/usr/bin/env python3
"""The gate heat-map of a selective run: which LoRA blocks were active at each step, and where the gates settled.

    .venv/bin/python tools/gate_heatmap.py METRICS.jsonl OUT_BASE      # writes OUT_BASE.svg and OUT_BASE.png

METRICS.jsonl is a `metrics.jsonl` of `selora train --method selective` or a `metrics-selective*.jsonl` of
`selora eval`: one record per step with `active_mask` (one character per block, layer-major q k v o fc1 fc2, "1" =
active) and `settled` (true from the step the gates settled on: mask and scores frozen, inactive blocks cost
nothing). The settle step, when there is one, is drawn as a vertical line and named in the title; the first step
the penalty acted (the first step whose mask differs from all-on) is drawn dotted.
"""
from __future__ import annotations

import json
import sys


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def settle_step(records):
    """The first step whose record says `settled`, or None."""
    return next((r["step"] for r in records if r.get("settled")), None)


def draw(records, out_base, title="Selective LoRA gates"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    recs = [r for r in records if "active_mask" in r]
    if not recs:
        raise SystemExit("gate_heatmap: no record has an active_mask (not a selective run?)")
    blocks = len(recs[0]["active_mask"])
    grid = np.array([[int(c) for c in r["active_mask"]] for r in recs]).T
    steps = [r["step"] for r in recs]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.imshow(grid, aspect="auto", cmap="Greens", interpolation="nearest",
              extent=(steps[0] - 0.5, steps[-1] + 0.5, blocks - 0.5, -0.5))
    ax.set_xlabel("step")
    ax.set_ylabel("block (layer-major: q k v o fc1 fc2)")
    per_layer = 6 if blocks % 6 == 0 else 1
    ax.set_yticks(range(0, blocks, per_layer))
    ax.set_yticklabels([f"layer {i}" for i in range(blocks // per_layer)])
    first_off = next((r["step"] for r in recs if "0" in r["active_mask"]), None)
    if first_off is not None:
        ax.axvline(first_off - 0.5, color="tab:orange", linestyle=":", linewidth=1.2, label=f"first block off (step {first_off})")
    s = settle_step(recs)
    if s is not None:
        ax.axvline(s - 0.5, color="tab:red", linestyle="-", linewidth=1.5, label=f"settled (step {s})")
    active_end = recs[-1]["active_mask"].count("1")
    ax.set_title(f"{title} (green = active; {active_end}/{blocks} at the end; "
                 + (f"settled at step {s})" if s is not None else "never settled)"))
    if first_off is not None or s is not None:
        ax.legend(loc="upper right", fontsize=8)
    for ext in ("svg", "png"):
        fig.savefig(f"{out_base}.{ext}", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return s


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    s = draw(load_jsonl(argv[1]), argv[2])
    print(f"{argv[2]}.svg, {argv[2]}.png" + (f" (settled at step {s})" if s is not None else " (never settled)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
