#!/usr/bin/env python3
"""Time the LoRA fine-tuning step that `selora bench --methods lora` times, in PyTorch + PEFT.

Run by `launch/torch-compare` (which installs torch, transformers and peft into .cache/venv-torch and runs
SelectiveLoRA's bench right after this, then reports the ratio); not part of CI. By hand:

    .cache/venv-torch/bin/python tools/torch_compare.py --size 224 --batch 32 --threads 2 --rank 8 --steps 5

What is timed, as in Sources/selora/Bench.swift: the forward of a [batch, 3, size, size] input through the
DINOv2 ViT-S/14 backbone (weights/dinov2-vits14.safetensors) with a LoRA block (PEFT, rank r, alpha r, no
dropout) on all six Linear layers of every block (72 LoRA blocks), then the backward of a fixed upstream gradient
(1e-3 everywhere) on last_hidden_state: LoRA A/B gradients and input gradients through all 12 blocks (down to
the embeddings' output, as SelectiveLoRA computes them), no base-weight gradients. float32, one warm-up step,
then the median of --steps steps (forward and backward medians added, as Bench.swift does).

Before timing, the LoRA-wrapped model with B = 0 (PEFT's initialisation) is checked against the onnxruntime
reference in Tests/Fixtures/dinov2_ref_56.safetensors (max abs error of last_hidden_state < 1e-3).

Both attention implementations of transformers ("eager" and "sdpa") are timed unless --attn picks one; the
faster one is the result (the fair comparison).

--blocks L.TARGET,... puts LoRA on those Linears only (PEFT `target_modules` = their module paths), the PyTorch
counterpart of SelectiveLoRA's settled method on that gate pattern: autograd differentiates down to the lowest
block holding a LoRA module and no further (no block-0 input gradient is forced).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import torch
from safetensors.numpy import load_file

# PEFT calls a transformers property that transformers 5 deprecates: not this script's business.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# transformers < 5 names the attention Linears as the checkpoint does (Hugging Face Dinov2Model names);
# transformers 5 renames them on from_pretrained with these rules (its conversion_mapping.py for Dinov2Model).
V5_RENAMES = [
    ("attention.attention.query.", "attention.q_proj."),
    ("attention.attention.key.", "attention.k_proj."),
    ("attention.attention.value.", "attention.v_proj."),
    ("attention.output.dense.", "attention.o_proj."),
]
# PEFT target_modules and the module paths (inside encoder.layer.L) each must match, per naming.
TARGETS = {
    "v4": (["query", "key", "value", "dense", "fc1", "fc2"],
           ["attention.attention.query", "attention.attention.key", "attention.attention.value",
            "attention.output.dense", "mlp.fc1", "mlp.fc2"]),
    "v5": (["q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"],
           ["attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj", "mlp.fc1", "mlp.fc2"]),
}


def log(msg: str) -> None:
    print(msg, flush=True)


def make_config(attn: str):
    from transformers import Dinov2Config
    return Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                        mlp_ratio=4, patch_size=14, image_size=518, layer_norm_eps=1e-6, hidden_act="gelu",
                        layerscale_value=1.0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        drop_path_rate=0.0, attn_implementation=attn)


TARGET_NAMES = ["query", "key", "value", "attention.output.dense", "mlp.fc1", "mlp.fc2"]   # SelectiveLoRA's names


def parse_blocks(text: str) -> list[tuple[int, int]]:
    """`L.TARGET,...` (TARGET in SelectiveLoRA's names) -> (layer, index into TARGET_NAMES) pairs."""
    out = []
    for item in filter(None, text.split(",")):
        layer, _, target = item.partition(".")
        if not layer.isdigit() or int(layer) >= 12 or target not in TARGET_NAMES:
            raise SystemExit(f"--blocks: `{item}` is not LAYER.TARGET with LAYER < 12 and TARGET one of {', '.join(TARGET_NAMES)}")
        out.append((int(layer), TARGET_NAMES.index(target)))
    if not out:
        raise SystemExit("--blocks: no block given")
    return sorted(set(out))


def build(weights: dict, attn: str, rank: int, blocks=None):
    """Dinov2Model with the checkpoint loaded (strict but for mask_token), wrapped with PEFT LoRA on the six Linears
    of every block, or on `blocks` ((layer, target index) pairs) only."""
    from peft import LoraConfig, get_peft_model
    from transformers import Dinov2Model

    torch.manual_seed(0)
    model = Dinov2Model(make_config(attn)).float()
    if model.config._attn_implementation != attn:
        raise SystemExit(f"asked for attention implementation {attn!r}, model has {model.config._attn_implementation!r}")
    own = model.state_dict()
    naming = "v5" if any(".attention.q_proj." in k for k in own) else "v4"
    state = {}
    for k, v in weights.items():
        if naming == "v5":
            for old, new in V5_RENAMES:
                k = k.replace(old, new)
        state[k] = torch.from_numpy(v.astype(np.float32, copy=False))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) != {"embeddings.mask_token"} or unexpected:
        raise SystemExit(f"checkpoint does not fit Dinov2Model: missing {missing}, unexpected {unexpected}")
    fc1 = model.encoder.layer[0].mlp.fc1
    if (fc1.in_features, fc1.out_features) != (384, 1536):
        raise SystemExit(f"mlp.fc1 is {fc1.in_features}->{fc1.out_features}, expected 384->1536")

    targets, paths = TARGETS[naming]
    if blocks is None:
        wanted = [f"encoder.layer.{l}.{p}" for l in range(12) for p in paths]
    else:
        wanted = [f"encoder.layer.{l}.{paths[t]}" for l, t in blocks]
        targets = wanted
    cfg = LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, lora_dropout=0.0, bias="none")
    peft_model = get_peft_model(model, cfg)
    matched = sorted(n for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and hasattr(m, "base_layer"))
    want = sorted(f"base_model.model.{w}" for w in wanted)
    if matched != want:
        extra, lacking = sorted(set(matched) - set(want)), sorted(set(want) - set(matched))
        raise SystemExit(f"PEFT matched {len(matched)} modules, expected {len(want)}: "
                         f"unexpected {extra[:6]}, lacking {lacking[:6]}")
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    if not trainable or any("lora_" not in n for n in trainable):
        raise SystemExit(f"trainable parameters other than LoRA's: {[n for n in trainable if 'lora_' not in n][:6]}")
    return peft_model, naming, len(matched), sum(p.numel() for n, p in peft_model.named_parameters() if p.requires_grad)


def check_reference(model) -> float:
    ref = load_file(os.path.join(REPO, "Tests/Fixtures/dinov2_ref_56.safetensors"))
    model.eval()
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(ref["pixel_values"])).last_hidden_state.numpy()
    model.train()
    return float(np.abs(out - ref["last_hidden_state"]).max())


def torch_sgemm_gflops(n: int = 2048, repeats: int = 3) -> float:
    a = torch.full((n, n), 0.5)
    b = torch.full((n, n), 0.25)
    c = torch.empty(n, n)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def time_steps(model, size: int, batch: int, steps: int, block0_input_grad: bool):
    count = batch * 3 * size * size
    # The same input as Bench.swift (values do not change the speed, but why differ).
    pixels = torch.from_numpy(((np.arange(count, dtype=np.int64) * 7919 % 255) / 128 - 1).astype(np.float32))
    pixels = pixels.view(batch, 3, size, size)
    base = model.get_base_model()
    # SelectiveLoRA carries the input gradient through block 0 down to the embeddings' output; autograd would
    # stop inside block 0 (nothing below it needs a gradient) unless the embeddings' output asks for one.
    hook = base.embeddings.register_forward_hook(lambda m, i, o: o.requires_grad_(True)) if block0_input_grad else None
    tokens = 1 + (size // 14) ** 2
    g = torch.full((batch, tokens, 384), 1e-3)
    model.train()
    fwds, bwds = [], []
    try:
        for step in range(steps + 1):
            model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            out = model(pixel_values=pixels)
            t1 = time.perf_counter()
            out.last_hidden_state.backward(g)
            t2 = time.perf_counter()
            del out
            if step > 0:  # the first step pays for allocation and page faults
                fwds.append(t1 - t0)
                bwds.append(t2 - t1)
    finally:
        if hook is not None:
            hook.remove()
    lora_grads = [(n, p.grad) for n, p in model.named_parameters() if "lora_" in n]
    if any(gr is None or not torch.isfinite(gr).all() or gr.abs().sum() == 0 for _, gr in lora_grads):
        raise SystemExit("some LoRA parameters got no (or a zero / non-finite) gradient")
    if any(p.grad is not None for n, p in model.named_parameters() if "lora_" not in n):
        raise SystemExit("a base weight got a gradient")
    fwd, bwd = statistics.median(fwds), statistics.median(bwds)
    return {"forward_s": fwd, "backward_s": bwd, "step_s": fwd + bwd, "images_per_s": batch / (fwd + bwd),
            "forward_steps_s": fwds, "backward_steps_s": bwds, "lora_tensors_with_grad": len(lora_grads)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step")
    ap.add_argument("--attn", choices=["both", "eager", "sdpa"], default="both",
                    help="attention implementation(s) to time; with both, the faster is the result")
    ap.add_argument("--no-block0-input-grad", action="store_true",
                    help="let autograd stop inside block 0 (SelectiveLoRA does not: it goes down to the embeddings)")
    ap.add_argument("--blocks", help="LoRA on these Linears only, as LAYER.TARGET,... (e.g. 4.mlp.fc1,5.mlp.fc1); "
                    "autograd then stops at the lowest of them")
    ap.add_argument("--weights", default=os.path.join(REPO, "weights/dinov2-vits14.safetensors"))
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    if a.size % 14 or a.size <= 0 or a.batch <= 0 or a.threads <= 0 or a.rank <= 0 or a.steps <= 0:
        raise SystemExit("--size must be a positive multiple of 14; --batch, --threads, --rank, --steps positive")
    if not os.path.exists(a.weights):
        raise SystemExit(f"{a.weights}: no such file (launch/fetch-weights writes it)")

    blocks = parse_blocks(a.blocks) if a.blocks else None
    torch.set_num_threads(a.threads)
    import peft
    import transformers
    info = {
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "python": platform.python_version(), "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "mkl_available": torch.backends.mkl.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    log(f"torch {info['torch']} (transformers {info['transformers']}, peft {info['peft']}), "
        f"{info['threads']} thread(s), mkldnn available: {info['mkldnn_available']}, mkl: {info['mkl_available']}, "
        f"CPU capability {info['cpu_capability']}")
    info["sgemm_gflops"] = torch_sgemm_gflops()
    log(f"torch.mm 2048³ float32: {info['sgemm_gflops']:.1f} GFLOP/s")

    weights = load_file(a.weights)
    impls = ["eager", "sdpa"] if a.attn == "both" else [a.attn]
    results = {}
    for attn in impls:
        model, naming, n_modules, n_trainable = build(weights, attn, a.rank, blocks)
        err = check_reference(model)
        log(f"[{attn}] {n_modules} LoRA modules (transformers {naming} names), {n_trainable} trainable parameters; "
            f"B = 0 forward vs onnxruntime reference at 56 px: max abs {err:.2e}")
        if not err < 1e-3:
            raise SystemExit(f"[{attn}] forward does not match the reference (max abs {err:.2e} ≥ 1e-3)")
        with torch.no_grad():  # as Bench.swift: B = 0.01 so the LoRA path is not all zeros
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.fill_(0.01)
        r = time_steps(model, a.size, a.batch, a.steps, not a.no_block0_input_grad and blocks is None)
        r.update({"reference_max_abs": err, "lora_modules": n_modules, "trainable_params": n_trainable,
                  "naming": naming})
        results[attn] = r
        log(f"[{attn}] {a.size} px batch {a.batch} lora r{a.rank} on {n_modules} Linears: forward {r['forward_s']:.3f} s, "
            f"backward {r['backward_s']:.3f} s, {r['images_per_s']:.2f} images/s (median of {a.steps})")
        del model
    best = min(results, key=lambda k: results[k]["step_s"])
    log(f"faster attention implementation: {best}")
    out = {"framework": "pytorch", **info, "size": a.size, "batch": a.batch, "rank": a.rank, "steps": a.steps,
           "block0_input_grad": not a.no_block0_input_grad and blocks is None, "attn": best, "by_attn": results,
           "blocks": a.blocks or "all 72",
           **{k: results[best][k] for k in ("forward_s", "backward_s", "step_s", "images_per_s")}}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    sys.exit(main())
