#!/usr/bin/env python3
"""tools/phase_times.py on synthetic metrics: the phases come from the selective run's own records, and each
phase's mean step times and ratio are checked against values computed by hand.

    .venv/bin/python -m unittest discover -s Tests/study        (plain unittest)
"""
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import phase_times as pt  # noqa: E402


def rec(step, active, compute, exposed=0.0, settled=False, mask=None):
    return {"step": step, "active_blocks": active, "compute_ms": compute, "exposed_comm_ms": exposed,
            "settled": settled, "active_mask": mask or "1" * active}


# Selective: steps 0–1 all 4 blocks on (100 ms), 2–4 one or two blocks learning (60 ms + 2 ms exposed; the mask
# changes at steps 2, 3 — another single block —, 4 and 5), 5–6 settled (40 ms).
SEL = [rec(0, 4, 100), rec(1, 4, 100), rec(2, 1, 60, 2, mask="1000"), rec(3, 1, 60, 2, mask="0100"),
       rec(4, 2, 60, 2, mask="0110"), rec(5, 1, 40, settled=True, mask="0010"), rec(6, 1, 40, settled=True, mask="0010")]
# LoRA: 100 ms every step but step 3 (130 ms).
LORA = [rec(s, 72, 130 if s == 3 else 100) for s in range(7)]


class PhaseTests(unittest.TestCase):
    def test_phases_and_ratios(self):
        ph = pt.phases(SEL, LORA)
        self.assertEqual([p["phase"] for p in ph], ["warm-up", "learning", "settled"])
        self.assertEqual([(p["first"], p["last"]) for p in ph], [(0, 1), (2, 4), (5, 6)])
        self.assertEqual([p["blocks"] for p in ph], [(4, 4), (1, 2), (1, 1)])
        self.assertEqual([p["changes"] for p in ph], [0, 3, 1])
        self.assertAlmostEqual(ph[0]["ratio"], 1.0)
        self.assertAlmostEqual(ph[1]["selective_ms"], 62.0)
        self.assertAlmostEqual(ph[1]["lora_ms"], 110.0)            # (100 + 130 + 100) / 3
        self.assertAlmostEqual(ph[1]["ratio"], 62 / 110)
        self.assertAlmostEqual(ph[2]["ratio"], 0.4)

    def test_a_run_that_never_settles_has_two_phases(self):
        ph = pt.phases(SEL[:5], LORA)
        self.assertEqual([(p["phase"], p["first"], p["last"]) for p in ph], [("warm-up", 0, 1), ("learning", 2, 4)])

    def test_command_line_reads_the_seed_files(self):
        with tempfile.TemporaryDirectory() as d:
            for method, rows in (("selective", SEL), ("lora", LORA)):
                with open(os.path.join(d, f"metrics-{method}-seed0.jsonl"), "w") as f:
                    f.write("".join(json.dumps(r) + "\n" for r in rows))
            out, argv = io.StringIO(), sys.argv
            sys.argv = ["phase_times.py", d]
            try:
                with contextlib.redirect_stdout(out):
                    self.assertEqual(pt.main(), 0)
            finally:
                sys.argv = argv
            text = out.getvalue()
            self.assertIn("| 2–4 | learning | 1 → 2 | 3 | 62 ms | 110 ms | 0.56× |", text)
            # 2·100 + 3·62 + 2·40 = 466 ms against 6·100 + 130 = 730 ms.
            self.assertIn("whole run: selective 0.5 s, lora 0.7 s of step time: 0.64×", text)


if __name__ == "__main__":
    unittest.main()
