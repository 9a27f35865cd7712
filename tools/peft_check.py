"""Loads a SelectiveLoRA adapter with Hugging Face PEFT into transformers' Dinov2Model and compares the output with
SelectiveLoRA's own (run by launch/peft-check under transformers 5 and 4; not in CI).

    python tools/peft_check.py --base BASE.safetensors --adapter DIR --pixels PX.safetensors --ours OURS.safetensors

BASE: the base weights in the names of the installed transformers (`selora convert --names transformers5|4`),
loaded into Dinov2Model strictly but for `embeddings.mask_token`. DIR: the adapter (`selora train --names ...`).
PX: `pixel_values` F32 [N, 3, H, W]. OURS: `last_hidden_state` of SelectiveLoRA on the same pixels with the adapter
merged (`selora merge` + `selora embed`).

Checks, each a non-zero exit with the reason when it fails:
  * PEFT injects LoRA exactly into the modules `target_modules` lists (and they are all the model's);
  * every lora_A / lora_B PEFT holds equals the adapter file's tensor (nothing left at its initialisation);
  * PEFT and transformers issue no warning about missing or unexpected keys while loading (other warnings, e.g.
    PEFT's about the `selective` field of adapter_config.json that LoraConfig does not know, are reported only);
  * max |PEFT last_hidden_state - ours| <= --atol.
Prints one JSON line with the figures: transformers version, max abs diff, how far the adapter moves the output,
and both outputs' distance to a float64 reference (the base weights plus (alpha/r)·B·A of every listed module, in
transformers' Dinov2Model in float64), which tells float32 rounding from a real difference; the warnings seen.
"""
import argparse
import json
import logging
import os
import re
import sys
import warnings

import numpy as np
import torch
from safetensors.numpy import load_file


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(f"{record.name}: {record.getMessage()}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--pixels", required=True)
    p.add_argument("--ours", required=True)
    p.add_argument("--atol", type=float, default=1e-3)
    a = p.parse_args()

    import peft
    import transformers
    from peft import PeftModel
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                          mlp_ratio=4, patch_size=14, image_size=518, layer_norm_eps=1e-6, hidden_act="gelu",
                          layerscale_value=1.0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                          drop_path_rate=0.0, attn_implementation="eager")
    model = Dinov2Model(config).float().eval()
    base = {k: torch.from_numpy(v) for k, v in load_file(a.base).items()}
    missing, unexpected = model.load_state_dict(base, strict=False)
    if set(missing) != {"embeddings.mask_token"} or unexpected:
        sys.exit(f"{a.base} does not fit transformers {transformers.__version__}'s Dinov2Model: "
                 f"missing {missing[:6]}, unexpected {unexpected[:6]}")

    px = torch.from_numpy(load_file(a.pixels)["pixel_values"])
    with torch.no_grad():
        plain = model(pixel_values=px).last_hidden_state.numpy()

    collect = Collect()
    for name in ["", "peft", "transformers"]:
        logging.getLogger(name).addHandler(collect)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft_model = PeftModel.from_pretrained(model, a.adapter)
    seen = collect.messages + [f"{w.category.__name__}: {w.message}" for w in caught]

    with open(os.path.join(a.adapter, "adapter_config.json")) as f:
        targets = json.load(f)["target_modules"]
    if not targets or not all(isinstance(t, str) and t.startswith("encoder.layer.") for t in targets):
        sys.exit(f"target_modules should be full module paths encoder.layer.N.<module>, got {targets[:6]}")
    injected = sorted(n.removeprefix("base_model.model.") for n, m in peft_model.named_modules()
                      if hasattr(m, "lora_A") and hasattr(m, "base_layer"))
    if injected != sorted(targets):
        extra, lacking = sorted(set(injected) - set(targets)), sorted(set(targets) - set(injected))
        sys.exit(f"PEFT injected {len(injected)} modules, target_modules lists {len(targets)}: "
                 f"extra {extra[:6]}, lacking {lacking[:6]}")

    stored = load_file(os.path.join(a.adapter, "adapter_model.safetensors"))
    state = peft_model.state_dict()
    compared = 0
    for key, value in stored.items():
        if key.endswith(".lora_gate"):
            continue
        # base_model.model.<module>.lora_A.weight -> base_model.model.<module>.lora_A.default.weight
        mine = key.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")
        if mine not in state:
            sys.exit(f"PEFT holds no {mine} for the adapter's {key}")
        if not np.array_equal(state[mine].numpy(), value):
            sys.exit(f"PEFT's {mine} differs from the adapter's {key}")
        compared += 1
    if compared != 2 * len(targets):
        sys.exit(f"{compared} lora tensors in the file for {len(targets)} target modules")

    with torch.no_grad():
        theirs = peft_model(pixel_values=px).last_hidden_state.numpy()
    ours = load_file(a.ours)["last_hidden_state"]
    if ours.shape != theirs.shape:
        sys.exit(f"{a.ours}: last_hidden_state {ours.shape}, PEFT's {theirs.shape}")
    with open(os.path.join(a.adapter, "adapter_config.json")) as f:
        cfg = json.load(f)
    scale = cfg["lora_alpha"] / (cfg["r"] ** 0.5 if cfg.get("use_rslora") else cfg["r"])
    merged = {k: v.double() for k, v in base.items()}
    for m in targets:
        lora_a = torch.from_numpy(stored[f"base_model.model.{m}.lora_A.weight"]).double()
        lora_b = torch.from_numpy(stored[f"base_model.model.{m}.lora_B.weight"]).double()
        merged[f"{m}.weight"] = merged[f"{m}.weight"] + scale * lora_b @ lora_a
    model64 = Dinov2Model(config).double().eval()
    model64.load_state_dict(merged, strict=False)
    with torch.no_grad():
        ref = model64(pixel_values=px.double()).last_hidden_state.numpy()

    diff = float(np.abs(theirs - ours).max())
    moved = float(np.abs(theirs - plain).max())
    key_warnings = [w for w in seen if re.search(r"(missing|unexpected)[^.]*\bkeys?\b", w, re.I)]
    print(json.dumps({"transformers": transformers.__version__, "peft": peft.__version__, "torch": torch.__version__,
                      "modules": len(targets), "max_abs_diff": diff, "adapter_effect_max_abs": moved,
                      "max_abs_output": float(np.abs(ref).max()),
                      "ours_vs_float64": float(np.abs(ours - ref).max()),
                      "peft_vs_float64": float(np.abs(theirs - ref).max()),
                      "key_warnings": key_warnings, "other_warnings": [w for w in seen if w not in key_warnings]}),
          flush=True)
    if key_warnings:
        sys.exit(f"PEFT / transformers warned about keys while loading: {key_warnings}")
    if diff > a.atol:
        sys.exit(f"max |PEFT - ours| = {diff} > {a.atol}")
    if moved < 100 * diff:
        sys.exit(f"the adapter moves the output by only {moved}: too little to tell (diff {diff})")


if __name__ == "__main__":
    main()
