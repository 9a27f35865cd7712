#!/usr/bin/env python3
"""One-time conversion of a CLIP checkpoint saved by PyTorch (.pt / .bin) to safetensors, which is all SelectiveLoRA
reads (it never unpickles files).

    python3 tools/clip_to_safetensors.py open_clip_pytorch_model.bin clip.safetensors [--activation quick_gelu]
    python3 tools/clip_to_safetensors.py pytorch_model.bin clip.safetensors          # HF CLIPModel; config.json beside it

Accepts OpenCLIP state dicts (`visual.conv1.weight`, …; also wrapped as {"state_dict": …} with `module.` prefixes,
as OpenCLIP's training checkpoints are) and Hugging Face `CLIPModel` state dicts (`vision_model.…`). Tensors are
written as float32 under their own names (the loader detects the naming); the non-persistent `position_ids`
buffers and OpenCLIP's `attn_mask` buffer are dropped. What tensor shapes cannot say goes into the metadata:
`hidden_act` (--activation, else `hidden_act` from a Hugging Face config.json next to the input), `vision_heads` and
`text_heads` (--vision-heads / --text-heads, else the config.json's `num_attention_heads`; OpenCLIP's ViTs use
width / 64, the loader's default). Needs torch and safetensors (e.g. the venv tools/make_clip_reference.py makes:
.cache/venv-clip/bin/python). Uses torch.load(weights_only=True): no code in the file is executed.
"""
import argparse
import json
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--activation", choices=["gelu", "quick_gelu"])
    ap.add_argument("--vision-heads", type=int)
    ap.add_argument("--text-heads", type=int)
    a = ap.parse_args()
    if os.path.exists(a.output):
        print(f"{a.output} exists; refusing to overwrite it", file=sys.stderr)
        return 2
    import torch
    from safetensors.torch import save_file

    obj = torch.load(a.input, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        print(f"{a.input}: not a state dict of tensors", file=sys.stderr)
        return 2
    sd = {}
    for k, v in obj.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if k.endswith("position_ids") or k == "attn_mask":
            continue
        sd[k] = v.detach().to(torch.float32).contiguous()
    if not any(k.startswith(("visual.", "vision_model.")) for k in sd):
        print(f"{a.input}: no image tower (neither visual.* nor vision_model.* tensors)", file=sys.stderr)
        return 2
    meta = {"format": "pt", "converted_from": os.path.basename(a.input)}
    cfg_path = os.path.join(os.path.dirname(os.path.abspath(a.input)), "config.json")
    cfg = json.load(open(cfg_path)) if os.path.exists(cfg_path) else {}
    vc, tc = cfg.get("vision_config", {}), cfg.get("text_config", {})
    act = a.activation or vc.get("hidden_act")
    if act:
        meta["hidden_act"] = act
    for key, flag, sub in (("vision_heads", a.vision_heads, vc), ("text_heads", a.text_heads, tc)):
        h = flag or sub.get("num_attention_heads")
        if h:
            meta[key] = str(h)
    tmp = a.output + ".tmp"
    save_file(sd, tmp, metadata=meta)
    os.replace(tmp, a.output)
    print(f"{a.output}: {len(sd)} tensors, metadata {meta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
