#!/usr/bin/env python3
"""Generate the CLIP reference fixtures in Tests/Fixtures/clip_ref/ (issue #7).

Regenerate everything with ONE command, from the repo root:

    python3 tools/make_clip_reference.py

On first use it creates .cache/venv-clip (git-ignored; its own venv, so that launch/torch-compare, which rebuilds
.cache/venv-torch from scratch, cannot pull the packages away) with the pinned packages in REQUIREMENTS below --
torch from the CPU-only wheel in $PIP_FIND_LINKS or /opt/wheels when one is there, else PyPI's -- and re-runs itself
inside it. Output is byte-identical on rerun: fixed torch seeds, one thread, safetensors headers rewritten with
sorted keys (tools/make_reference.py's canonicalize_header), JSON written with sorted keys. No network access
after the installs: random weights only, the BPE vocabulary is the one inside the open_clip_torch wheel (the same
bytes launch/fetch-clip-vocab extracts to data/clip/; its sha256 is recorded in tokenizer.json).

Model: open_clip.model.CLIP (open_clip_torch 3.3.0) with a small config (CONFIG below):
  vision  image 32x32, patch 8 (4x4 grid + class token = 17 tokens), width 40, 2 layers, 2 heads (head_width 20),
          MLP 160, pre-LN (ln_pre), tok pooling: ln_post is applied to the tokens and the class token is taken
          (LayerNorm is per token, so = ln_post(x[:, 0])), then @ visual.proj [40, 24];
  text    context 77, vocab 512, width 32, 2 layers, 2 heads, MLP 128, causal mask, ln_final, argmax pooling (the
          position of the largest id = the end token), then @ text_projection [32, 24];
  embed_dim 24; LayerNorm eps 1e-5 everywhere; no biases in conv1 / proj / text_projection.
  Widths differ between the towers (40 vs 32) and from embed_dim (24) so that a swapped tower, a missing transpose
  or a mixed-up config shows up as a shape error.
Two variants, each with its own seed: quick_gelu (x * sigmoid(1.702 x)) and gelu (exact erf GELU = nn.GELU()).

Why vocab 512 and not CLIP's 49408: the token table alone would be 49408 x width floats (6.3 MB at width 32) in each
of the four weight files, and the fixtures must stay < 2 MB. So the model fixtures feed `input_ids`, the real
open_clip token ids (`tokenizer_ids`) mapped into the small vocabulary:
      0 (padding) -> 0,  49406 <start_of_text> -> 510,  49407 <end_of_text> -> 511,  t -> 1 + t % 509 otherwise,
which keeps the end token the largest id of every row (argmax pooling) and the padding zeros.

Random weights: torch.manual_seed(seed) before the model is built (open_clip's own random init), then the tensors
that start at a constant or a tiny scale are perturbed with a torch.Generator(seed + 1000) (see perturb()) so that
nothing stays at an init value that would hide a bug (conv1, token_embedding and the attention/MLP weight matrices
keep their random init): LayerNorm weights 1 + 0.2 N(0,1), LayerNorm and all Linear/attention biases + 0.1 N(0,1) (attention in_proj
and out_proj biases start at 0), logit_scale ln(1/0.07) + 0.5 N(0,1), class/position embeddings, proj and
text_projection + 0.05 N(0,1); the MLP's c_fc weights are scaled by 4 so that
its pre-activations are O(1), where GELU and QuickGELU differ (with the init they are ~0.3).

Outputs (Tests/Fixtures/clip_ref/):
  openclip_{quickgelu,gelu}.safetensors  the model's own state_dict names (open_clip layout), F32
  hf_{quickgelu,gelu}.safetensors        the same tensors under Hugging Face CLIPModel names (HF_MAPPING below)
  inputs.safetensors                     pixel_values F32 [3,3,32,32] (N(0,1), seed 1234); input_ids I64 [4,77]
                                         (model input, small vocab, see above); tokenizer_ids I64 [4,77] (open_clip
                                         tokenizer output for PROMPTS)
  expected_{quickgelu,gelu}.safetensors  image_features [3,24] = encode_image (not normalized)
                                         text_features [4,24] = encode_text (not normalized)
                                         logit_scale [1] (the raw parameter; CLIP multiplies by its exp)
                                         logits_per_image [3,4] = exp(logit_scale) * norm(img) @ norm(txt).T
                                         image_embeddings [3,17,40] = ln_pre(patches + class token + pos), the
                                           transformer input
                                         image_hidden_states [3,17,40] = transformer output before ln_post
                                           (= HF vision_model last_hidden_state)
                                         image_pooled_pre_proj [3,40] = ln_post(x[:, 0]) (= HF vision pooler_output)
                                         text_embeddings [4,77,32] = token_embedding + positional_embedding
                                         text_last_hidden_state [4,77,32] = ln_final(transformer output), all tokens
                                           (= HF text_model last_hidden_state)
                                         text_pooled_pre_proj [4,32] = ln_final(x)[end token] (= HF pooler_output)
  tokenizer.json                         {"cases": [...], context_length, ids of the special tokens, vocab sha256,
                                         versions}; each case: text, ids (open_clip.tokenize: 77, zero-padded,
                                         truncated to 77 with the end token last), tokens (encode(): the un-padded,
                                         un-truncated ids without start/end), pieces (their vocabulary strings),
                                         cleaned (the text after open_clip's clean: ftfy.fix_text, html.unescape
                                         twice, strip, whitespace collapse, lower()), ftfy_changes
                                         (ftfy.fix_text(text) != text: the Swift side does not implement ftfy),
                                         html_changes (html.unescape twice changes the ftfy-fixed text),
                                         truncated (more than 75 tokens).

open_clip imports torchvision at package import, only for image preprocessing and ResNet freezing; PyPI's Linux
torchvision needs CUDA torch, so when `import torchvision` fails, placeholder modules that raise if used stand in
(_torchvision_stub). Model and tokenizer code are open_clip's own, unchanged.

Checks (printed; the script fails if one does not hold):
  * the manual forward that produces the intermediates reproduces encode_image / encode_text exactly;
  * the HF file loads into transformers.CLIPModel(CLIPConfig(...)) with strict key matching (the non-persistent
    position_ids buffers are not weights and are not written), and HF get_image_features / get_text_features and
    both last_hidden_states equal open_clip's to <= 1e-5;
  * float64 open_clip vs the stored float32 outputs (the numeric floor a Swift float32 port can expect, << 1e-4);
  * the other activation on the same weights changes the outputs by > 1e-2 (so the fixtures do test it);
  * open_clip.tokenize == open_clip.get_tokenizer("ViT-B-32") on every string, and the vocabulary inside the wheel
    has the sha256 launch/fetch-clip-vocab checks.
"""
from __future__ import annotations

import argparse
import enum
import glob
import hashlib
import html
import json
import os
import random
import subprocess
import sys
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "Tests", "Fixtures", "clip_ref")
VENV = os.path.join(REPO, ".cache", "venv-clip")
COMMAND = "python3 tools/make_clip_reference.py"

TORCH_VERSION = "2.13.0"
OPEN_CLIP_VERSION = "3.3.0"
# open_clip_torch is installed with --no-deps: its torchvision/timm requirements would pull a second (CUDA) torch
# and are not needed for the model and tokenizer (see _torchvision_stub).
REQUIREMENTS = [
    "transformers==5.24.0", "safetensors==0.8.0", "numpy==2.4.6",
    "ftfy==6.3.1", "wcwidth==0.9.4", "regex==2026.11.19",
]
VOCAB_MEMBER_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"  # = launch/fetch-clip-vocab

LN_EPS = 1e-5
CONFIG = {
    "embed_dim": 24,
    "vision": {"image_size": 32, "patch_size": 8, "width": 40, "layers": 2, "head_width": 20, "mlp_ratio": 4.0},
    "text": {"context_length": 77, "vocab_size": 512, "width": 32, "heads": 2, "layers": 2, "mlp_ratio": 4.0},
}
VARIANTS = [("quickgelu", True, 7), ("gelu", False, 8)]  # (file tag, quick_gelu, torch seed)
PIXEL_SEED = 1234
SOT, EOT = 49406, 49407
TOL_HF = 1e-5

PROMPTS = [
    "a photo of a trouser.",
    "A PHOTO of an Ankle boot!!",
    "ünïcödé naïve café — “quotes”",
    "a long description of a photograph that keeps going: the quick brown fox jumps over the lazy dog while "
    "seventeen small grey pullovers, twelve sneakers, nine ankle boots and a bag of oranges wait patiently on a "
    "long wooden table next to the window, and the sentence goes on well past the seventy-seven token context of "
    "CLIP so that it has to be truncated with the end token kept last.",
]


# ----------------------------------------------------------------------------
# The venv: create it once, then re-run this script inside it
# ----------------------------------------------------------------------------

def _find_cpu_torch_wheel() -> str | None:
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    found = []
    for d in os.environ.get("PIP_FIND_LINKS", "").split() + ["/opt/wheels"]:
        d = d[len("file://"):] if d.startswith("file://") else d
        found += glob.glob(os.path.join(d, f"torch-{TORCH_VERSION}+cpu-{tag}-{tag}-*linux*.whl"))
    return sorted(found)[-1] if found else None


def _venv_ok(py: str, stamp: str, wanted: str) -> bool:
    if not (os.path.exists(py) and os.path.exists(stamp)):
        return False
    with open(stamp) as f:
        if f.read() != wanted:
            return False
    return subprocess.run([py, "-c", "import torch, transformers, safetensors, numpy, ftfy, regex"],
                          capture_output=True).returncode == 0


def ensure_venv(argv: list[str]) -> None:
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    py = os.path.join(VENV, "bin", "python")
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    wheel = _find_cpu_torch_wheel()
    torch_req = wheel or f"torch=={TORCH_VERSION}"
    stamp = os.path.join(VENV, ".make-clip-reference")
    wanted = "\n".join([torch_req, f"open_clip_torch=={OPEN_CLIP_VERSION}", *REQUIREMENTS]) + "\n"
    if not _venv_ok(py, stamp, wanted):
        print(f"creating {os.path.relpath(VENV, REPO)} (torch from {torch_req})", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
        subprocess.run(pip + [torch_req], check=True)
        constraints = os.path.join(VENV, "constraints.txt")
        with open(constraints, "w") as f:  # keep the torch just installed: nothing may swap it for another build
            f.write(f"torch=={subprocess.check_output([py, '-c', 'import torch; print(torch.__version__)'], text=True).strip()}\n")
        subprocess.run(pip + ["-c", constraints, *REQUIREMENTS], check=True)
        subprocess.run(pip + ["--no-deps", f"open_clip_torch=={OPEN_CLIP_VERSION}"], check=True)
        with open(stamp, "w") as f:
            f.write(wanted)
    os.execv(py, [py, os.path.abspath(__file__), *argv])


# ----------------------------------------------------------------------------
# open_clip without torchvision
# ----------------------------------------------------------------------------

def _torchvision_stub() -> None:
    """open_clip imports torchvision at package import (transform.py: image preprocessing transforms;
    utils.py: FrozenBatchNorm2d for freezing ResNet towers), nothing the ViT model or the tokenizer use. PyPI's
    torchvision for Linux is built against CUDA torch: with the CPU torch wheel its _C extension cannot load and
    `import torchvision` raises. When that happens, register placeholder modules with just the names open_clip
    imports; every one of them raises if it is ever called, so it cannot change a number silently."""
    for k in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[k]

    def placeholder_class(name):
        def __init__(self, *a, **k):
            raise NotImplementedError(f"torchvision stub: {name} is not available (make_clip_reference.py)")
        return type(name, (), {"__init__": __init__})

    def module_getattr(name):
        if name.startswith("__"):
            raise AttributeError(name)

        def f(*a, **k):
            raise NotImplementedError(f"torchvision stub: transforms.functional.{name} is not available")
        return f

    tv = types.ModuleType("torchvision")
    tv.__version__ = "0+stub"
    tr = types.ModuleType("torchvision.transforms")
    fn = types.ModuleType("torchvision.transforms.functional")
    fn.__getattr__ = module_getattr
    ops = types.ModuleType("torchvision.ops")
    misc = types.ModuleType("torchvision.ops.misc")
    tr.InterpolationMode = enum.Enum("InterpolationMode", {"NEAREST": "nearest", "BILINEAR": "bilinear",
                                                           "BICUBIC": "bicubic"})
    for n in ["Normalize", "Compose", "RandomResizedCrop", "ToTensor", "Resize", "CenterCrop", "ColorJitter",
              "Grayscale"]:
        setattr(tr, n, placeholder_class(n))
    misc.FrozenBatchNorm2d = placeholder_class("FrozenBatchNorm2d")
    tv.transforms, tr.functional, tv.ops, ops.misc = tr, fn, ops, misc
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tr, "torchvision.transforms.functional": fn,
                        "torchvision.ops": ops, "torchvision.ops.misc": misc})


def import_open_clip():
    import torch  # noqa: F401  (first, so a failing torchvision import cannot leave torch half-imported)
    try:
        import torchvision  # noqa: F401
        stub = False
    except Exception as e:  # ImportError, or RuntimeError from a CUDA-built torchvision
        print(f"torchvision unusable ({type(e).__name__}: {str(e).splitlines()[0][:80]}); "
              f"using the placeholder modules", file=sys.stderr)
        _torchvision_stub()
        stub = True
    import open_clip
    if open_clip.__version__ != OPEN_CLIP_VERSION:
        raise SystemExit(f"open_clip_torch {open_clip.__version__} installed, {OPEN_CLIP_VERSION} expected")
    return open_clip, stub


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------

def build_model(open_clip, quick_gelu: bool, seed: int):
    import torch
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    v, t = CONFIG["vision"], CONFIG["text"]
    torch.manual_seed(seed)
    model = CLIP(
        embed_dim=CONFIG["embed_dim"],
        vision_cfg=CLIPVisionCfg(layers=v["layers"], width=v["width"], head_width=v["head_width"],
                                 patch_size=v["patch_size"], image_size=v["image_size"], mlp_ratio=v["mlp_ratio"]),
        text_cfg=CLIPTextCfg(context_length=t["context_length"], vocab_size=t["vocab_size"], width=t["width"],
                             heads=t["heads"], layers=t["layers"], mlp_ratio=t["mlp_ratio"]),
        quick_gelu=quick_gelu,
    )
    model.eval()
    return model


def perturb(model, seed: int) -> None:
    """Move every tensor off its init value (see the module docstring)."""
    import torch

    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, p in model.named_parameters():  # deterministic (module registration) order
            n = torch.randn(p.shape, generator=g, dtype=torch.float32)
            leaf = name.rsplit(".", 1)[-1]
            is_ln = any(s in name for s in ("ln_1.", "ln_2.", "ln_pre.", "ln_post.", "ln_final."))
            if is_ln and leaf == "weight":
                p.copy_(1.0 + 0.2 * n)
            elif is_ln and leaf == "bias":
                p.copy_(0.1 * n)
            elif leaf in ("bias", "in_proj_bias"):
                p.add_(0.1 * n)
            elif name == "logit_scale":
                p.add_(0.5 * n)
            elif name in ("visual.class_embedding", "visual.positional_embedding", "positional_embedding",
                          "visual.proj", "text_projection"):
                p.add_(0.05 * n)
            elif name.endswith("mlp.c_fc.weight"):
                p.mul_(4.0)  # pre-activations of O(1), where GELU and QuickGELU differ (PyTorch's init gives ~0.3)
            # conv1, token_embedding, in_proj_weight, out_proj.weight, c_proj weights: open_clip's random init


def heads_of(cfg_v) -> int:
    return cfg_v["width"] // cfg_v["head_width"]


def forward_with_intermediates(model, pixel_values, input_ids) -> dict:
    """open_clip 3.3.0's VisionTransformer.forward / CLIP.encode_text, step by step."""
    import torch

    vis = model.visual
    out = {}
    x = vis._embeds(pixel_values)  # conv1, class token, + pos, (patch dropout: identity), ln_pre
    out["image_embeddings"] = x
    x = vis.transformer(x)
    out["image_hidden_states"] = x
    pooled = vis.ln_post(x)[:, 0]
    out["image_pooled_pre_proj"] = pooled
    out["image_features"] = pooled @ vis.proj

    x = model.token_embedding(input_ids) + model.positional_embedding
    out["text_embeddings"] = x
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
    out["text_last_hidden_state"] = x
    pooled = x[torch.arange(x.shape[0]), input_ids.argmax(dim=-1)]
    out["text_pooled_pre_proj"] = pooled
    out["text_features"] = pooled @ model.text_projection
    return out


# ----------------------------------------------------------------------------
# Hugging Face CLIPModel layout
# ----------------------------------------------------------------------------

# (HF name, open_clip name, transform); {N} = layer index; "T" = transpose, "q"/"k"/"v" = that third of the packed
# in_proj (rows [0:W], [W:2W], [2W:3W]), "" = as is.
HF_MAPPING_TOP = [
    ("vision_model.embeddings.class_embedding", "visual.class_embedding", ""),
    ("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight", ""),
    ("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding", ""),
    ("vision_model.pre_layrnorm.weight", "visual.ln_pre.weight", ""),
    ("vision_model.pre_layrnorm.bias", "visual.ln_pre.bias", ""),
    ("vision_model.post_layernorm.weight", "visual.ln_post.weight", ""),
    ("vision_model.post_layernorm.bias", "visual.ln_post.bias", ""),
    ("visual_projection.weight", "visual.proj", "T"),
    ("text_model.embeddings.token_embedding.weight", "token_embedding.weight", ""),
    ("text_model.embeddings.position_embedding.weight", "positional_embedding", ""),
    ("text_model.final_layer_norm.weight", "ln_final.weight", ""),
    ("text_model.final_layer_norm.bias", "ln_final.bias", ""),
    ("text_projection.weight", "text_projection", "T"),
    ("logit_scale", "logit_scale", ""),
]
HF_MAPPING_LAYER = [  # (HF suffix, open_clip suffix, transform) under <HF>.encoder.layers.{N}. / <OC>resblocks.{N}.
    ("layer_norm1.weight", "ln_1.weight", ""),
    ("layer_norm1.bias", "ln_1.bias", ""),
    ("self_attn.q_proj.weight", "attn.in_proj_weight", "q"),
    ("self_attn.k_proj.weight", "attn.in_proj_weight", "k"),
    ("self_attn.v_proj.weight", "attn.in_proj_weight", "v"),
    ("self_attn.q_proj.bias", "attn.in_proj_bias", "q"),
    ("self_attn.k_proj.bias", "attn.in_proj_bias", "k"),
    ("self_attn.v_proj.bias", "attn.in_proj_bias", "v"),
    ("self_attn.out_proj.weight", "attn.out_proj.weight", ""),
    ("self_attn.out_proj.bias", "attn.out_proj.bias", ""),
    ("layer_norm2.weight", "ln_2.weight", ""),
    ("layer_norm2.bias", "ln_2.bias", ""),
    ("mlp.fc1.weight", "mlp.c_fc.weight", ""),
    ("mlp.fc1.bias", "mlp.c_fc.bias", ""),
    ("mlp.fc2.weight", "mlp.c_proj.weight", ""),
    ("mlp.fc2.bias", "mlp.c_proj.bias", ""),
]
HF_TOWERS = [("vision_model", "visual.transformer.", "vision"), ("text_model", "transformer.", "text")]


def hf_mapping() -> list[tuple[str, str, str]]:
    rows = list(HF_MAPPING_TOP)
    for hf_prefix, oc_prefix, tower in HF_TOWERS:
        for n in range(CONFIG[tower]["layers"]):
            for hf_suffix, oc_suffix, how in HF_MAPPING_LAYER:
                rows.append((f"{hf_prefix}.encoder.layers.{n}.{hf_suffix}", f"{oc_prefix}resblocks.{n}.{oc_suffix}",
                             how))
    return rows


def to_hf(sd: dict) -> dict:
    out, used = {}, set()
    for hf, oc, how in hf_mapping():
        t = sd[oc]
        used.add(oc)
        if how == "T":
            t = t.t()
        elif how in ("q", "k", "v"):
            w = t.shape[0] // 3
            i = "qkv".index(how)
            t = t[i * w:(i + 1) * w]
        out[hf] = t.contiguous().clone()
    unused = set(sd) - used
    if unused:
        raise RuntimeError(f"open_clip tensors without an HF name: {sorted(unused)}")
    return out


def hf_config(quick_gelu: bool):
    from transformers import CLIPConfig

    v, t = CONFIG["vision"], CONFIG["text"]
    act = "quick_gelu" if quick_gelu else "gelu"
    return CLIPConfig(
        text_config=dict(vocab_size=t["vocab_size"], hidden_size=t["width"],
                         intermediate_size=int(t["width"] * t["mlp_ratio"]), num_hidden_layers=t["layers"],
                         num_attention_heads=t["heads"], max_position_embeddings=t["context_length"],
                         hidden_act=act, layer_norm_eps=LN_EPS, projection_dim=CONFIG["embed_dim"],
                         pad_token_id=0, bos_token_id=t["vocab_size"] - 2, eos_token_id=t["vocab_size"] - 1),
        vision_config=dict(image_size=v["image_size"], patch_size=v["patch_size"], num_channels=3,
                           hidden_size=v["width"], intermediate_size=int(v["width"] * v["mlp_ratio"]),
                           num_hidden_layers=v["layers"], num_attention_heads=heads_of(v), hidden_act=act,
                           layer_norm_eps=LN_EPS, projection_dim=CONFIG["embed_dim"]),
        projection_dim=CONFIG["embed_dim"],
    )


def check_hf(path: str, quick_gelu: bool, pixel_values, input_ids, ref: dict) -> dict:
    """Load the HF file into transformers.CLIPModel with strict keys and compare with open_clip."""
    import torch
    from safetensors.torch import load_file
    from transformers import CLIPModel

    cfg = hf_config(quick_gelu)
    cfg._attn_implementation = "eager"
    hf = CLIPModel(cfg).eval()
    sd = load_file(path)
    expected = set(hf.state_dict())
    buffers = {n for n, _ in hf.named_buffers()}
    # HF's position_ids are index buffers (arange), not weights. transformers 5 registers them non-persistent (not
    # in state_dict); older versions had them persistent -- then take the model's own arange so strict loading
    # still checks every real weight.
    extra_buffers = {k for k in expected - set(sd) if k in buffers and k.endswith("position_ids")}
    missing, unexpected = sorted(expected - set(sd) - extra_buffers), sorted(set(sd) - expected)
    if missing or unexpected:
        raise RuntimeError(f"{path}: HF keys differ: missing {missing}, unexpected {unexpected}")
    sd.update({k: hf.state_dict()[k] for k in extra_buffers})
    hf.load_state_dict(sd, strict=True)
    for name, b in hf.named_buffers():
        if name.endswith("position_ids"):
            assert torch.equal(b, torch.arange(b.shape[-1]).expand_as(b)), name

    def features(o):  # transformers 5 returns BaseModelOutputWithPooling (projected pooler_output), 4 a tensor
        return o if isinstance(o, torch.Tensor) else o.pooler_output

    with torch.no_grad():
        img = features(hf.get_image_features(pixel_values=pixel_values))
        txt = features(hf.get_text_features(input_ids=input_ids))
        vo = hf.vision_model(pixel_values=pixel_values)
        to = hf.text_model(input_ids=input_ids)
    errs = {
        "image_features": (img - ref["image_features"]).abs().max().item(),
        "text_features": (txt - ref["text_features"]).abs().max().item(),
        "image_hidden_states": (vo.last_hidden_state - ref["image_hidden_states"]).abs().max().item(),
        "image_pooled_pre_proj": (vo.pooler_output - ref["image_pooled_pre_proj"]).abs().max().item(),
        "text_last_hidden_state": (to.last_hidden_state - ref["text_last_hidden_state"]).abs().max().item(),
        "text_pooled_pre_proj": (to.pooler_output - ref["text_pooled_pre_proj"]).abs().max().item(),
        "logit_scale": abs(hf.logit_scale.item() - ref["logit_scale"].item()),
    }
    return errs


# ----------------------------------------------------------------------------
# Tokenizer cases
# ----------------------------------------------------------------------------

def long_text(n_words: int, seed: int = 300) -> str:
    words = ("the a photo of small large red green blue dog cat trouser pullover dress coat sandal shirt sneaker "
             "bag ankle boot on in with and under near picture image bright dark old new wooden table chair "
             "window street river mountain city people walking running sitting standing").split()
    rng = random.Random(seed)
    out = []
    for i in range(n_words):
        w = rng.choice(words)
        out.append(w.capitalize() if i == 0 or out[-1].endswith(".") else w)
        if i % 13 == 12:
            out[-1] += rng.choice([".", ",", ";", "!", "?"])
    return " ".join(out) + "."


TOKENIZER_STRINGS = [
    "",
    "   ",
    " \t\n\r\n  \t",
    "  a   photo\tof\n\na \r\n dog  ",
    "&amp; &lt;tag&gt; &quot;hi&quot; &#39;x&#39; &amp;amp;lt;",
    "<b>bold</b> &amp; <i>text</i> &lt;3",
    "don't it's we'll I'M they've she'd you're 'sup rock 'n' roll",
    "don’t it’s “curly” ‘single’",
    "1234567 3.14 1,000,000 2nd 0x1F",
    "!!!???... ,,, ;;; --- *** (([[{{}}]])) @#$%^&*_+=|\\/~`",
    "I ❤️ my 🐶🐱! 👍🏽 🇫🇷 😀😀",
    "猫の写真 고양이 사진 一只猫的照片",
    "café naïve résumé Ångström Zoë",
    "cafe\u0301 nai\u0308ve A\u030angstro\u0308m",
    "A PHOTO Of A TrOuSeR AnD SnEaKeRs",
    "<|startoftext|>a photo<|endoftext|>",
    "<start_of_text>a photo of a cat<end_of_text> more",
    "https://example.com/path/to/page.html?q=a+b&x=1#frag someone@example.org",
    "schÃ¶n GrÃ¼ÃŸe",
    "ﬁne ﬂowers oﬀice",
    "ＡＢＣ　ｆｕｌｌ１２３！",
    "zero\u200bwidth soft\u00adhyphen nbsp\u00a0space",  # ZWSP/soft hyphen are not whitespace; NBSP is (split())
    "ideo\u3000space",
    "q\u0301 x\u0323\u0301 ng\u0303",  # combining marks NFC cannot compose: \p{M} is not \p{L}
    "<p>&#233;t&eacute; &#x1F600;&nbsp;x</p>",  # entities with a '<' present: ftfy leaves them, html.unescape not
    "ΣΟΦΟΣ İSTANBUL STRASSE ẞ Straße ΑΘΗΝΑ",
    "٣ ४ ½ ² ⅔ ①",
    "state-of-the-art snake_case CamelCase kebab-case e.g. U.S.A.",
    "a photo of a trouser.",
    "A PHOTO of an Ankle boot!!",
    "ünïcödé naïve café — “quotes”",
    " ".join(["a"] * 75),  # 75 tokens + start + end = exactly 77: not truncated
    " ".join(["a"] * 76),  # one too many: truncated, end token replaces the last "a"
    long_text(300),
]


def tokenizer_cases(open_clip) -> list[dict]:
    import ftfy
    import torch
    from open_clip.tokenizer import _clean_lower

    tok_by_name = open_clip.get_tokenizer("ViT-B-32")
    module_tok = open_clip.tokenizer._tokenizer
    assert tok_by_name.context_length == 77 and tok_by_name.sot_token_id == SOT and tok_by_name.eot_token_id == EOT
    a = open_clip.tokenize(TOKENIZER_STRINGS)
    b = tok_by_name(TOKENIZER_STRINGS)
    if not torch.equal(a, b):
        raise RuntimeError("open_clip.tokenize and get_tokenizer('ViT-B-32') disagree")
    cases = []
    for text, row in zip(TOKENIZER_STRINGS, a.tolist()):
        tokens = module_tok.encode(text)
        full = [SOT] + tokens + [EOT]
        want = (full if len(full) <= 77 else full[:76] + [EOT]) + [0] * max(0, 77 - len(full))
        assert row == want, text
        cases.append({
            "text": text,
            "ids": row,
            "tokens": tokens,
            "pieces": [module_tok.decoder[t] for t in tokens],
            "cleaned": _clean_lower(text),
            "ftfy_changes": ftfy.fix_text(text) != text,
            "html_changes": html.unescape(html.unescape(ftfy.fix_text(text))) != ftfy.fix_text(text),
            "truncated": len(full) > 77,
        })
    return cases


def remap_ids(ids, vocab_size: int):
    """Real CLIP ids -> the fixture model's small vocabulary (see the module docstring)."""
    import torch

    n = vocab_size - 3
    out = 1 + ids % n
    out = torch.where(ids == 0, torch.zeros_like(ids), out)
    out = torch.where(ids == SOT, torch.full_like(ids, vocab_size - 2), out)
    out = torch.where(ids == EOT, torch.full_like(ids, vocab_size - 1), out)
    return out


# ----------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------

def save_safetensors(tensors: dict, path: str, metadata: dict) -> None:
    from make_reference import canonicalize_header
    from safetensors.torch import load_file, save_file

    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        canonicalize_header(tmp)
        back = load_file(tmp)
        assert set(back) == set(tensors) and all(back[k].equal(tensors[k]) for k in tensors), path
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def config_json(quick_gelu: bool) -> dict:
    v, t = CONFIG["vision"], CONFIG["text"]
    return {
        "embed_dim": CONFIG["embed_dim"],
        "activation": "quick_gelu" if quick_gelu else "gelu",
        "activation_formula": "x * sigmoid(1.702 * x)" if quick_gelu else "0.5 * x * (1 + erf(x / sqrt(2)))",
        "layer_norm_eps": LN_EPS,
        "vision": {**v, "heads": heads_of(v), "mlp_width": int(v["width"] * v["mlp_ratio"]),
                   "num_tokens": (v["image_size"] // v["patch_size"]) ** 2 + 1, "pool": "class token after ln_post",
                   "conv1_bias": False},
        "text": {**t, "head_width": t["width"] // t["heads"], "mlp_width": int(t["width"] * t["mlp_ratio"]),
                 "causal_mask": True, "pool": "argmax of input_ids (end token) after ln_final",
                 "sot_id": t["vocab_size"] - 2, "eot_id": t["vocab_size"] - 1, "pad_id": 0},
    }


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="Generate the CLIP reference fixtures (Tests/Fixtures/clip_ref/).")
    ap.add_argument("--out", default=OUT_DIR)
    ap.add_argument("--no-venv", action="store_true", help="run in the current interpreter (needs the packages)")
    args = ap.parse_args(argv)
    if not args.no_venv:
        ensure_venv(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import numpy as np
    import safetensors
    import torch
    import transformers

    torch.set_num_threads(1)
    open_clip, tv_stub = import_open_clip()
    import ftfy

    os.makedirs(args.out, exist_ok=True)
    versions = {"open_clip_torch": open_clip.__version__, "torch": torch.__version__,
                "transformers": transformers.__version__, "safetensors": safetensors.__version__,
                "numpy": np.__version__, "ftfy": ftfy.__version__,
                "torchvision": "placeholder modules (unused by model and tokenizer)" if tv_stub else
                __import__("torchvision").__version__}
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))

    # --- vocabulary
    with open(open_clip.tokenizer.default_bpe(), "rb") as f:
        vocab_sha = sha256_bytes(f.read())
    if vocab_sha != VOCAB_MEMBER_SHA256:
        raise RuntimeError(f"open_clip's bpe vocabulary has sha256 {vocab_sha}, expected {VOCAB_MEMBER_SHA256}")
    print(f"vocab: {os.path.basename(open_clip.tokenizer.default_bpe())} sha256 {vocab_sha[:16]}... (matches "
          f"launch/fetch-clip-vocab)")

    # --- tokenizer cases
    cases = tokenizer_cases(open_clip)
    tok_doc = {
        "description": "open_clip (SimpleTokenizer, clean='lower') ids for tricky strings; 'ids' = "
                       "open_clip.tokenize(text) = get_tokenizer('ViT-B-32')(text): [start] + tokens + [end], "
                       "truncated to 77 with the end token last, zero-padded; 'tokens' = encode(text) (no "
                       "start/end, not truncated); 'pieces' = their vocabulary strings (bytes mapped by "
                       "bytes_to_unicode, '</w>' ends a word); 'cleaned' = ftfy.fix_text, html.unescape twice, "
                       "strip, ' '.join(split()), lower(); 'ftfy_changes' = ftfy.fix_text(text) != text; 'html_changes' = html.unescape twice changes "
                       "the ftfy-fixed text; 'truncated' = more than 75 tokens.",
        "context_length": 77, "sot_id": SOT, "eot_id": EOT, "pad_id": 0,
        "vocab_file": "bpe_simple_vocab_16e6.txt.gz (launch/fetch-clip-vocab -> data/clip/)",
        "vocab_sha256": vocab_sha,
        "open_clip_version": open_clip.__version__, "ftfy_version": ftfy.__version__,
        "command": COMMAND,
        "cases": cases,
    }
    body = ",\n".join("  " + json.dumps(c, ensure_ascii=False, sort_keys=True) for c in cases)
    head = json.dumps({k: v for k, v in tok_doc.items() if k != "cases"}, ensure_ascii=False, sort_keys=True,
                      indent=1)
    tok_json = head[:-2] + ',\n "cases": [\n' + body + "\n ]\n}\n"
    assert json.loads(tok_json) == tok_doc
    write_text(os.path.join(args.out, "tokenizer.json"), tok_json)
    print(f"tokenizer: {len(cases)} strings, open_clip.tokenize == get_tokenizer('ViT-B-32'); ftfy changes "
          f"{sum(c['ftfy_changes'] for c in cases)}:")
    for c in cases:
        if c["ftfy_changes"]:
            print(f"    {c['text']!r} -> {ftfy.fix_text(c['text'])!r}")
    for c in cases:
        if c["truncated"]:
            print(f"    truncated: {len(c['tokens'])} tokens -> 77 ids, last {c['ids'][-2:]} ({c['text'][:30]!r}...)")

    # --- inputs
    tokenizer_ids = open_clip.tokenize(PROMPTS)
    assert all(len(open_clip.tokenizer._tokenizer.encode(p)) > 75 for p in PROMPTS[3:]), "long prompt not > 77"
    input_ids = remap_ids(tokenizer_ids, CONFIG["text"]["vocab_size"])
    assert torch.equal(input_ids.argmax(-1), tokenizer_ids.argmax(-1)), "end token position changed by remap"
    g = torch.Generator().manual_seed(PIXEL_SEED)
    s = CONFIG["vision"]["image_size"]
    pixel_values = torch.randn((3, 3, s, s), generator=g, dtype=torch.float32)
    base_meta = {"command": COMMAND, "versions": json.dumps(versions, sort_keys=True)}
    save_safetensors({"pixel_values": pixel_values, "input_ids": input_ids, "tokenizer_ids": tokenizer_ids},
                     os.path.join(args.out, "inputs.safetensors"),
                     {**base_meta, "pixel_seed": str(PIXEL_SEED), "prompts": json.dumps(PROMPTS),
                      "pixel_values": "torch.randn([3,3,32,32], generator=torch.Generator().manual_seed(1234))",
                      "tokenizer_ids": "open_clip.tokenize(prompts), real CLIP ids (vocab 49408)",
                      "input_ids": "model input: tokenizer_ids mapped to vocab 512: 0 -> 0, 49406 -> 510, "
                                   "49407 -> 511, t -> 1 + t % 509"})
    print(f"inputs: pixel_values {list(pixel_values.shape)}, input_ids {list(input_ids.shape)}, "
          f"end tokens at {tokenizer_ids.argmax(-1).tolist()}")

    # --- the two variants
    all_ok = True
    for tag, quick_gelu, seed in VARIANTS:
        model = build_model(open_clip, quick_gelu, seed)
        perturb(model, seed)
        sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            ref = forward_with_intermediates(model, pixel_values, input_ids)
            enc_img = model.encode_image(pixel_values)
            enc_txt = model.encode_text(input_ids)
        assert torch.equal(enc_img, ref["image_features"]) and torch.equal(enc_txt, ref["text_features"]), \
            "manual forward differs from encode_image/encode_text"
        ref["logit_scale"] = model.logit_scale.detach().reshape(1).clone()
        ni = torch.nn.functional.normalize(ref["image_features"], dim=-1)
        nt = torch.nn.functional.normalize(ref["text_features"], dim=-1)
        ref["logits_per_image"] = ref["logit_scale"].exp() * ni @ nt.t()
        with torch.no_grad():
            logits_oc, _ = model.get_logits(pixel_values, input_ids)
        assert (logits_oc - ref["logits_per_image"]).abs().max().item() < 1e-5

        cfg = config_json(quick_gelu)
        meta = {**base_meta, "config": json.dumps(cfg, sort_keys=True), "seed": str(seed), "format": "pt"}
        oc_path = os.path.join(args.out, f"openclip_{tag}.safetensors")
        hf_path = os.path.join(args.out, f"hf_{tag}.safetensors")
        save_safetensors(sd, oc_path, {**meta, "layout": "open_clip CLIP.state_dict()"})
        save_safetensors(to_hf(sd), hf_path, {**meta, "layout": "transformers CLIPModel.state_dict()",
                                              "hidden_act": cfg["activation"]})
        expected = {k: v.detach().contiguous() for k, v in ref.items()}
        save_safetensors(expected, os.path.join(args.out, f"expected_{tag}.safetensors"),
                         {**meta, "inputs": "inputs.safetensors (pixel_values, input_ids)",
                          "weights": f"openclip_{tag}.safetensors / hf_{tag}.safetensors",
                          "logit_scale": "raw parameter; logits use exp(logit_scale)",
                          "tolerance": "1e-4 max abs (Swift float32 vs these)"})

        # check 1: HF
        errs = check_hf(hf_path, quick_gelu, pixel_values, input_ids, ref)
        worst = max(errs.values())
        ok = worst <= TOL_HF
        all_ok &= ok
        print(f"[{tag}] seed {seed}: logit_scale {ref['logit_scale'].item():.6f}, "
              f"|image_features| max {ref['image_features'].abs().max().item():.4f}, "
              f"|text_features| max {ref['text_features'].abs().max().item():.4f}")
        print(f"[{tag}] HF CLIPModel (strict keys, hidden_act={cfg['activation']}) vs open_clip, max abs: " +
              ", ".join(f"{k} {v:.2e}" for k, v in errs.items()) + f"  -> {'OK' if ok else 'FAIL'} (<= {TOL_HF})")

        # check 2: float64 floor
        m64 = build_model(open_clip, quick_gelu, seed).double()
        m64.load_state_dict({k: v.double() for k, v in sd.items()})
        with torch.no_grad():
            r64 = forward_with_intermediates(m64, pixel_values.double(), input_ids)
        e64 = {k: (r64[k] - ref[k].double()).abs().max().item() for k in ("image_features", "text_features",
                                                                           "image_pooled_pre_proj",
                                                                           "text_pooled_pre_proj")}
        print(f"[{tag}] float64 open_clip vs stored float32, max abs: " +
              ", ".join(f"{k} {v:.2e}" for k, v in e64.items()))
        ok64 = max(e64.values()) < 1e-5
        all_ok &= ok64

        # check 3: the activation matters
        other = build_model(open_clip, not quick_gelu, seed)
        other.load_state_dict(sd)
        with torch.no_grad():
            d_img = (other.encode_image(pixel_values) - ref["image_features"]).abs().max().item()
            d_txt = (other.encode_text(input_ids) - ref["text_features"]).abs().max().item()
        ok_act = min(d_img, d_txt) > 1e-2
        all_ok &= ok_act
        print(f"[{tag}] same weights with the other activation: image_features differ by {d_img:.3e}, "
              f"text_features by {d_txt:.3e}  -> {'OK' if ok_act else 'FAIL'} (> 1e-2)")

    total = 0
    for name in sorted(os.listdir(args.out)):
        size = os.path.getsize(os.path.join(args.out, name))
        total += size
        print(f"wrote {os.path.relpath(os.path.join(args.out, name), REPO)} ({size:,} bytes)")
    print(f"total {total:,} bytes")
    if total >= 2 * 1024 * 1024:
        print("FAIL: fixtures exceed 2 MB", file=sys.stderr)
        all_ok = False
    if not all_ok:
        print("FAIL: a check did not hold (see above)", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
