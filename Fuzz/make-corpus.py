#!/usr/bin/env python3
"""Writes the seed corpora Fuzz/corpus/<target>/ for launch/fuzz: a few small, valid inputs per target in the
input layout that target's Fuzz/<target>.swift documents. Deterministic (fixed seeds, gzip mtime 0).

    .venv/bin/python Fuzz/make-corpus.py
"""
import gzip
import json
import os
import shutil
import struct

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
rng = np.random.default_rng(5)

# safetensors element sizes and the Rust crate's dtype order (the writer lays data out in descending order).
DTYPES = {"BOOL": ("?", 1), "U8": ("u1", 1), "I8": ("i1", 1), "I16": ("<i2", 2), "U16": ("<u2", 2),
          "F16": ("<f2", 2), "BF16": (None, 2), "I32": ("<i4", 4), "U32": ("<u4", 4), "F32": ("<f4", 4),
          "F64": ("<f8", 8), "I64": ("<i8", 8), "U64": ("<u8", 8)}
ORDER = list(DTYPES)


def safetensors(tensors, metadata=None, pretty=False):
    """tensors: {name: (dtype, shape, raw bytes)} -> the file image, laid out as the reference writer does."""
    names = sorted(tensors, key=lambda n: (-ORDER.index(tensors[n][0]), n))
    header, offset, data = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for n in names:
        dtype, shape, raw = tensors[n]
        assert len(raw) == int(np.prod(shape, dtype=np.int64)) * DTYPES[dtype][1]
        header[n] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header, indent=1 if pretty else None, separators=None if pretty else (",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def tensor(dtype, shape):
    count = int(np.prod(shape, dtype=np.int64))
    if dtype == "BF16":
        return dtype, shape, (rng.standard_normal(count).astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
    if dtype == "BOOL":
        return dtype, shape, (rng.integers(0, 2, count)).astype("u1").tobytes()
    np_type = DTYPES[dtype][0]
    if dtype.startswith("F"):
        return dtype, shape, rng.standard_normal(count).astype(np_type).tobytes()
    return dtype, shape, rng.integers(-100 if dtype[0] == "I" else 0, 100, count).astype(np_type).tobytes()


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, mtime=0)


def u16(n):
    return struct.pack(">H", n)


def main():
    shutil.rmtree(ROOT, ignore_errors=True)

    # safetensors: raw files.
    write("safetensors", "empty", safetensors({}))
    write("safetensors", "f32-2x3", safetensors({"w": tensor("F32", [2, 3])}))
    write("safetensors", "all-dtypes", safetensors({f"t.{d.lower()}": tensor(d, [2, 2]) for d in DTYPES},
                                                   metadata={"format": "pt"}))
    write("safetensors", "scalar-empty-pretty",
          safetensors({"scalar": tensor("F64", []), "empty": tensor("F16", [0, 3]), "bf": tensor("BF16", [3])},
                      metadata={"a": "b", "esc\u00e9": "\\\"\n"}, pretty=True))

    # idx: [options][limit][u16 images length][images][labels]; options bits 0-3 numClasses-1, bit 4 limit.
    def idx(count, rows, cols, labels=None):
        pixels = rng.integers(0, 256, count * rows * cols).astype("u1").tobytes()
        labels = bytes(rng.integers(0, 10, count).astype("u1")) if labels is None else labels
        return struct.pack(">IIII", 0x803, count, rows, cols) + pixels, struct.pack(">II", 0x801, count) + labels

    im, lb = idx(3, 4, 5)
    write("idx", "plain-3x4x5", bytes([9, 0]) + u16(len(im)) + im + lb)
    im, lb = idx(4, 2, 3)
    write("idx", "gzip-4x2x3-limit2", bytes([0x19, 2]) + u16(len(gz(im))) + gz(im) + gz(lb))
    im, lb = idx(2, 28, 28)
    write("idx", "mnist-like-2", bytes([9, 0]) + u16(len(im)) + im + gz(lb))
    im, lb = idx(0, 1, 1)
    write("idx", "zero-items", bytes([0, 0]) + u16(len(im)) + im + lb)

    # csv: [options][maxValue][classes/limit][csv]; options bits 0-2 side-1, bit 3 label last, bit 4 header.
    def csv_lines(n, side, max_value, last, fmt="{}"):
        lines = []
        for _ in range(n):
            pixels = [fmt.format(int(v)) for v in rng.integers(0, max_value + 1, side * side)]
            label = str(int(rng.integers(0, 10)))
            lines.append(",".join(pixels + [label] if last else [label] + pixels))
        return "\n".join(lines).encode()

    write("csv", "first-side3", bytes([2, 255, 9]) + csv_lines(3, 3, 255, False) + b"\n")
    write("csv", "last-side2-header-crlf", bytes([1 | 8 | 16, 16, 9]) + b"p0,p1,p2,p3,label\r\n"
          + csv_lines(2, 2, 16, True).replace(b"\n", b"\r\n"))
    write("csv", "digits-like-gzip-float", bytes([7 | 8, 16, 9 | 0x30])
          + gz(csv_lines(3, 8, 16, True, fmt="{}.000000000000000000e+00")))
    write("csv", "spaces-blank-lines", bytes([1, 255, 9]) + b" 1 , 2,\t3, 4 ,5\n\n  \n7,0,255,+1,1.0e2")

    # lora-adapter: [u16 config length][adapter_config.json][adapter_model.safetensors], model width 8,
    # 2 blocks, MLP 12 (Fuzz/lora-adapter.swift).
    width, mlp, layers = 8, 12, 2
    features = {"query": (width, width), "key": (width, width), "value": (width, width),
                "attention.output.dense": (width, width), "mlp.fc1": (width, mlp), "mlp.fc2": (mlp, width)}

    def module_path(layer, target):
        rel = f"attention.attention.{target}" if target in ("query", "key", "value") else target
        return f"base_model.model.encoder.layer.{layer}.{rel}"

    def adapter(name, r, targets, gated, active=lambda layer, t: True, extra=None, dtype="F32"):
        config = {"peft_type": "LORA", "r": r, "lora_alpha": float(2 * r), "use_rslora": False,
                  "target_modules": targets, "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False,
                  "base_model_name_or_path": "fuzz", "inference_mode": True}
        if gated:
            config["selective"] = {"threshold": 0.1, "initial_score": 0.15, "active_blocks": 0, "total_blocks": 0}
        config.update(extra or {})
        tensors = {}
        short = {"q": "query", "k": "key", "v": "value", "o": "attention.output.dense"}
        for layer in range(layers):
            for t in (short.get(t, t) for t in targets):
                fin, fout = features[t]
                p = module_path(layer, t)
                if active(layer, t):
                    tensors[p + ".lora_A.weight"] = tensor(dtype, [r, fin])
                    tensors[p + ".lora_B.weight"] = tensor(dtype, [fout, r])
                if gated:
                    tensors[p + ".lora_gate"] = ("F32", [1], np.array([0.2], "<f4").tobytes())
        cfg = json.dumps(config, indent=2, sort_keys=True).encode()
        write("lora-adapter", name, u16(len(cfg)) + cfg + safetensors(tensors, metadata={"format": "pt"}))

    adapter("qv-r2", 2, ["query", "value"], gated=False)
    adapter("selective-all-r1", 1, list(features), gated=True, active=lambda layer, t: (layer + len(t)) % 2 == 0)
    adapter("fc-r4-rslora", 4, ["mlp.fc1", "mlp.fc2"], gated=False, extra={"use_rslora": True})
    adapter("short-names-f16", 2, ["q", "k", "v", "o"], gated=True, active=lambda layer, t: layer == 0, dtype="F16")

    # clip-checkpoint: [u8 options] + a tiny CLIP (image width 4, text width 4, 1 block each, patch 2 on a 2×2 grid,
    # vocabulary 6, context 3, embedding 3) in OpenCLIP and in Hugging Face names.
    def clip(naming, with_text=True, ln_pre=True):
        d, dt, e, v, ctx, m = 4, 4, 3, 6, 3, 8
        oc = naming == "open_clip"
        t = {}
        def put(name, shape):
            t[name] = tensor("F32", shape)
        def block(prefix, w):
            if oc:
                for n, sh in [("ln_1.weight", [w]), ("ln_1.bias", [w]), ("attn.in_proj_weight", [3 * w, w]),
                              ("attn.in_proj_bias", [3 * w]), ("attn.out_proj.weight", [w, w]), ("attn.out_proj.bias", [w]),
                              ("ln_2.weight", [w]), ("ln_2.bias", [w]), ("mlp.c_fc.weight", [m, w]), ("mlp.c_fc.bias", [m]),
                              ("mlp.c_proj.weight", [w, m]), ("mlp.c_proj.bias", [w])]:
                    put(prefix + n, sh)
            else:
                for n, sh in [("layer_norm1.weight", [w]), ("layer_norm1.bias", [w]), ("layer_norm2.weight", [w]),
                              ("layer_norm2.bias", [w]), ("self_attn.out_proj.weight", [w, w]), ("self_attn.out_proj.bias", [w]),
                              ("mlp.fc1.weight", [m, w]), ("mlp.fc1.bias", [m]), ("mlp.fc2.weight", [w, m]), ("mlp.fc2.bias", [w])] \
                        + [(f"self_attn.{x}_proj.{p}", [w, w] if p == "weight" else [w]) for x in "qkv" for p in ("weight", "bias")]:
                    put(prefix + n, sh)
        if oc:
            put("visual.conv1.weight", [d, 3, 2, 2]); put("visual.class_embedding", [d]); put("visual.positional_embedding", [5, d])
            if ln_pre:
                put("visual.ln_pre.weight", [d]); put("visual.ln_pre.bias", [d])
            put("visual.ln_post.weight", [d]); put("visual.ln_post.bias", [d]); put("visual.proj", [d, e])
            block("visual.transformer.resblocks.0.", d)
            if with_text:
                put("token_embedding.weight", [v, dt]); put("positional_embedding", [ctx, dt]); put("text_projection", [dt, e])
                put("ln_final.weight", [dt]); put("ln_final.bias", [dt]); block("transformer.resblocks.0.", dt)
        else:
            put("vision_model.embeddings.patch_embedding.weight", [d, 3, 2, 2]); put("vision_model.embeddings.class_embedding", [d])
            put("vision_model.embeddings.position_embedding.weight", [5, d])
            put("vision_model.pre_layrnorm.weight", [d]); put("vision_model.pre_layrnorm.bias", [d])
            put("vision_model.post_layernorm.weight", [d]); put("vision_model.post_layernorm.bias", [d])
            put("visual_projection.weight", [e, d]); block("vision_model.encoder.layers.0.", d)
            if with_text:
                put("text_model.embeddings.token_embedding.weight", [v, dt])
                put("text_model.embeddings.position_embedding.weight", [ctx, dt]); put("text_projection.weight", [e, dt])
                put("text_model.final_layer_norm.weight", [dt]); put("text_model.final_layer_norm.bias", [dt])
                block("text_model.encoder.layers.0.", dt)
        t["logit_scale"] = ("F32", [], np.array([4.6], "<f4").tobytes())
        return safetensors(t, metadata={"format": "pt", "hidden_act": "quick_gelu"})

    write("clip-checkpoint", "open-clip", b"\x00" + clip("open_clip"))
    write("clip-checkpoint", "hf-gelu", b"\x01" + clip("hf"))
    write("clip-checkpoint", "open-clip-no-ln-pre-image-only", b"\x02" + clip("open_clip", with_text=False, ln_pre=False))

    # clip-tokenizer: raw UTF-8 (or not) text.
    for i, text in enumerate(["a photo of a trouser.", "&amp;lt; <b>x</b> &#x1F600; &eacute", "ＡＢＣ ﬁne “q” don't",
                              "ΣΟΦΟΣ İ ẞ q\u0301 \u200b\u00ad", "<start_of_text>a<end_of_text> " + "word " * 90]):
        write("clip-tokenizer", f"text-{i}", text.encode())
    write("clip-tokenizer", "invalid-utf8", b"caf\xe9 \xff\xfe na\xc3")

    # image-manifest: [options][manifest]; options bit 0 JSONL, bit 1 classes ["cat", "dog", "a b"]; the scratch
    # directory holds a.png, b.png, sub/c.png (Fuzz/image-manifest.swift).
    write("image-manifest", "csv", b"\x00path,label\na.png,cat\nsub/c.png,dog\n")
    write("image-manifest", "csv-bom-crlf-quotes-classes",
          b"\x02\xef\xbb\xbfid,\"label\",path\r\n1,\"a b\",\"a.png\"\r\n\r\n2,dog,\"sub/c.png\"\r\n3,cat,b.png")
    write("image-manifest", "csv-duplicate", b"\x00path,label\na.png,x\n./a.png,y\n")
    write("image-manifest", "jsonl", b'\x01{"path": "a.png", "label": "cat"}\n\n{"label": "\\u00e9", "path": "sub/c.png"}\n')
    write("image-manifest", "jsonl-classes-crlf",
          b'\x03\xef\xbb\xbf{"path":"b.png","label":"dog","x":[1,2.5e3,{"y":null}]}\r\n{"path":"a.png","label":"a b"}')
    # jpeg, png: [options][file], the files of Tests/Fixtures/images (tools/make_image_fixtures.py), good and broken;
    # options bit 0 (apply the EXIF orientation) set for the ones that carry one.
    images = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "Fixtures", "images")
    for name in sorted(os.listdir(images)):
        target = "jpeg" if name.endswith(".jpg") else "png" if name.endswith(".png") else None
        if target is None:
            continue
        with open(os.path.join(images, name), "rb") as f:
            data = f.read()
        write(target, os.path.splitext(name)[0], bytes([1 if ("exif" in name or "xmp" in name) else 0]) + data)

    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"wrote {sum(len(fs) for _, _, fs in os.walk(ROOT))} seed files, {total} bytes, under {ROOT}")


if __name__ == "__main__":
    main()
