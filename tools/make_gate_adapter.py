#!/usr/bin/env python3
"""Write a selective-LoRA adapter directory (PEFT layout, as `selora train` writes it) with a chosen gate pattern,
for `selora bench --adapter DIR` (speed does not depend on the values, only on which blocks are active).

    .venv/bin/python tools/make_gate_adapter.py OUT_DIR --rank 128 --alpha 128 --blocks 5.mlp.fc1,6.mlp.fc1,...

--blocks lists the active blocks as LAYER.TARGET (targets: query, key, value, attention.output.dense, mlp.fc1,
mlp.fc2); the default is the pattern `launch/demo`'s selective run settled on (λ = 4 from step 30,
--max-active 5, --settle-after 90, seed 0): fc1 of layers 5, 8, 9.
Active blocks get A ~ U(±1/√in) (seeded), B = 0.01 and score 0.25; the others score 0 (below τ = 0.1) and are
not stored, exactly as `LoRAAdapters.save` stores an adapter: A and B of the active blocks only, every score,
`target_modules` = the active blocks' module paths (transformers-5 Dinov2Model names), a `selective` object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from safetensors.numpy import save_file

DEMO_PATTERN = "5.mlp.fc1,8.mlp.fc1,9.mlp.fc1"
# target -> (module path inside encoder.layer.L in transformers-5 names, (in, out) as multiples of (hidden, mlp))
TARGETS = {
    "query": "attention.q_proj", "key": "attention.k_proj", "value": "attention.v_proj",
    "attention.output.dense": "attention.o_proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
}


def shape(target: str, hidden: int, mlp: int) -> tuple[int, int]:
    return {"mlp.fc1": (hidden, mlp), "mlp.fc2": (mlp, hidden)}.get(target, (hidden, hidden))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--rank", type=int, default=128)
    ap.add_argument("--alpha", type=float, default=None, help="default: the rank (scale 1)")
    ap.add_argument("--blocks", default=DEMO_PATTERN)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--mlp", type=int, default=1536)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.rank <= 0 or a.layers <= 0:
        ap.error("--rank and --layers must be positive")
    active = set()
    for item in filter(None, a.blocks.split(",")):
        layer, _, target = item.partition(".")
        if not layer.isdigit() or int(layer) >= a.layers or target not in TARGETS:
            ap.error(f"--blocks: `{item}` is not LAYER.TARGET with LAYER < {a.layers} and TARGET one of {', '.join(TARGETS)}")
        active.add((int(layer), target))
    rng = np.random.default_rng(a.seed)
    tensors, saved = {}, []
    for layer in range(a.layers):
        for target, module in TARGETS.items():
            path = f"encoder.layer.{layer}.{module}"
            key = f"base_model.model.{path}"
            on = (layer, target) in active
            tensors[f"{key}.lora_gate"] = np.array([0.25 if on else 0.0], np.float32)
            if on:
                fin, fout = shape(target, a.hidden, a.mlp)
                bound = 1 / np.sqrt(fin)
                tensors[f"{key}.lora_A.weight"] = rng.uniform(-bound, bound, (a.rank, fin)).astype(np.float32)
                tensors[f"{key}.lora_B.weight"] = np.full((fout, a.rank), 0.01, np.float32)
                saved.append(path)
    os.makedirs(a.out, exist_ok=True)
    save_file(tensors, os.path.join(a.out, "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA", "r": a.rank, "lora_alpha": a.alpha if a.alpha is not None else float(a.rank),
        "use_rslora": False, "target_modules": saved, "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False,
        "base_model_name_or_path": "dinov2-vits14 (gate pattern written by tools/make_gate_adapter.py)",
        "inference_mode": True,
        "selective": {"threshold": 0.1, "initial_score": 0.15, "active_blocks": len(saved),
                      "total_blocks": a.layers * len(TARGETS), "targets": list(TARGETS)},
    }
    with open(os.path.join(a.out, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    print(f"{a.out}: rank {a.rank}, {len(saved)} of {a.layers * len(TARGETS)} blocks active: {', '.join(saved)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
