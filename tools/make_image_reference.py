#!/usr/bin/env python3
"""Reference outputs for the Images module's resizing and preprocessing (Sources/Images).

Default mode writes Tests/Fixtures/preprocess_ref.safetensors from a few small synthetic uint8 RGB images:

  img{i}                                   U8  [H, W, 3]   the image
  img{i}.resize.{bicubic|bilinear}.{w}x{h} U8  [h, w, 3]   Pillow's Image.resize((w, h), resample=...)
  img{i}.{dinov2|clip}.{resize}.{crop}.pixel_values  F32 [3, crop, crop]
  img{i}.{dinov2|clip}.{resize}.{crop}.levels        U8  [3, crop, crop]

pixel_values are Hugging Face's PIL-backend processors (transformers 5.x `BitImageProcessorPil`,
`CLIPImageProcessorPil`, configured as facebook/dinov2-small and openai/clip-vit-base-patch32 but with the sizes in
the key). To keep the file small, large outputs are stored as `.levels`: the uint8 levels p with
((float32)(p * (1/255)) - mean) / std == pixel_values bit for bit (checked here before storing; otherwise the float
tensor is stored).

`--images DIR --out F.safetensors` runs real image files instead: per file in sorted relative-path order,
  file{i}                                  U8  [H, W, 3]   Image.open(path).convert("RGB")
  file{i}.{dinov2|clip}.{256.224|224.224}.{pixel_values|levels}
with metadata file{i} = relative path and file{i}.alpha = "1" when the file has transparency: transformers 5.x
composites it onto WHITE before processing, whereas convert("RGB") drops alpha.

Pinned: pillow==13.0.0, transformers==5.23.0, numpy, safetensors (no torch needed).
"""
import argparse
import json
import os
import sys

import numpy as np
import PIL
from PIL import Image
from safetensors.numpy import save_file
from transformers import BitImageProcessorPil, CLIPImageProcessorPil

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def processor(family, resize, crop):
    """The hub configurations (facebook/dinov2-small, openai/clip-vit-base-patch32) with sizes as parameters."""
    common = dict(size={"shortest_edge": resize}, crop_size={"height": crop, "width": crop},
                  resample=3, do_resize=True, do_center_crop=True, do_rescale=True,
                  rescale_factor=0.00392156862745098, do_normalize=True, do_convert_rgb=True)
    if family == "dinov2":
        return BitImageProcessorPil(image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, **common)
    return CLIPImageProcessorPil(image_mean=CLIP_MEAN, image_std=CLIP_STD, **common)


def pixel_values(family, resize, crop, image):
    out = processor(family, resize, crop)(images=image, return_tensors="np")["pixel_values"]
    assert out.shape == (1, 3, crop, crop) and out.dtype == np.float32, (out.shape, out.dtype)
    return out[0]


def as_levels(x, family):
    """uint8 levels reproducing x exactly under HF's rescale + normalize, or None."""
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if family == "dinov2" else (CLIP_MEAN, CLIP_STD)
    m = np.array(mean, dtype=np.float64)[:, None, None]
    s = np.array(std, dtype=np.float64)[:, None, None]
    p = np.rint((x.astype(np.float64) * s + m) * 255.0)
    if p.min() < 0 or p.max() > 255:
        return None
    p = p.astype(np.uint8)
    v = (p.astype(np.float64) * 0.00392156862745098).astype(np.float32)
    fwd = ((v.T - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)).T
    return p if np.array_equal(fwd, x) else None


def put_processed(tensors, key, family, resize, crop, image, compact):
    x = pixel_values(family, resize, crop, image)
    name = f"{key}.{family}.{resize}.{crop}"
    levels = as_levels(x, family) if compact else None
    if levels is not None:
        tensors[name + ".levels"] = np.ascontiguousarray(levels)
    else:
        tensors[name + ".pixel_values"] = np.ascontiguousarray(x)


def synthetic(w, h, seed):
    """Gradients + noise + saturated blocks + a fine checkerboard: exercises overshoot clipping and antialiasing."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), ((xx + 2 * yy) % 17) * 15], -1)
    img += rng.integers(-40, 41, size=(h, w, 3))
    img[h // 3: h // 3 + max(h // 4, 1), w // 5: w // 5 + max(w // 6, 1)] = [255, 0, 255]
    cb = ((yy // 2 + xx // 2) % 2).astype(bool)
    region = (xx < w / 2) & (yy >= 3 * h / 4)
    img[region & cb] = 255
    img[region & ~cb] = 0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# (width, height): odd sizes, landscape and portrait, smaller than the crop, large downscale, extreme aspect, tall
# (> 100 × taller than wide: Image.resize's vertical-first path), a single pixel, a short side equal to a recipe's
# resize (33: clip(size: 33) resizes to the same size, PIL's copy path).
SIZES = [(67, 45), (45, 67), (301, 263), (400, 13), (7, 900), (1, 1), (3, 2), (50, 33)]
DEFAULT_RECIPES_ON = {2, 4}          # full-size (256/224, 224/224) outputs only on these, to keep the file small
SMALL_RECIPES = [("dinov2", 46, 40), ("dinov2", 33, 40), ("clip", 33, 33), ("dinov2", 48, 17)]
DEFAULT_RECIPES = [("dinov2", 256, 224), ("clip", 224, 224)]


def resize_targets(w, h):
    t = [(max(1, w // 3), max(1, h // 2)), (max(1, w // 9), max(1, h // 7))]
    if w * h <= 20000:  # one pass only (the other side unchanged), on the smaller images only (file size)
        t += [(w, max(1, h // 3)), (max(1, w // 2) + 1, h)]
    if w * h <= 5000:  # upscaling, on the small images only (file size)
        t.append((2 * w - 1, h + 3))
    if h > 100 * w:
        t += [(5, 60), (3, 101)]
    out = []
    for s in t:
        if s not in out and s != (w, h):
            out.append(s)
    return out


def make_synthetic(path):
    tensors, meta = {}, {"pillow": PIL.__version__, "transformers": __import__("transformers").__version__}
    for i, (w, h) in enumerate(SIZES):
        a = synthetic(w, h, seed=i)
        key = f"img{i}"
        tensors[key] = a
        im = Image.fromarray(a, mode="RGB")
        for flt, code in (("bicubic", Image.Resampling.BICUBIC), ("bilinear", Image.Resampling.BILINEAR)):
            for tw, th in resize_targets(w, h):
                tensors[f"{key}.resize.{flt}.{tw}x{th}"] = np.asarray(im.resize((tw, th), resample=code))
        for fam, r, c in SMALL_RECIPES:
            put_processed(tensors, key, fam, r, c, im, compact=False)
        if i in DEFAULT_RECIPES_ON:
            for fam, r, c in DEFAULT_RECIPES:
                put_processed(tensors, key, fam, r, c, im, compact=True)
    save_file(tensors, path, metadata=meta)
    print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path) / 1e6:.2f} MB")


def make_from_files(directory, path, recipes=DEFAULT_RECIPES):
    files = []
    for root, _, names in os.walk(directory):
        for n in names:
            files.append(os.path.relpath(os.path.join(root, n), directory))
    tensors, meta = {}, {"pillow": PIL.__version__, "transformers": __import__("transformers").__version__}
    i = 0
    for rel in sorted(files):
        try:
            im = Image.open(os.path.join(directory, rel))
            im.load()
        except Exception as e:  # not an image PIL reads: skip, say so
            print(f"skip {rel}: {e}", file=sys.stderr)
            continue
        key = f"file{i}"
        meta[key] = rel
        if "A" in im.getbands() or im.info.get("transparency") is not None:
            meta[key + ".alpha"] = "1"
        tensors[key] = np.asarray(im.convert("RGB"))
        for fam, r, c in recipes:
            put_processed(tensors, key, fam, r, c, im, compact=True)
        i += 1
    meta["count"] = str(i)
    save_file(tensors, path, metadata=meta)
    print(f"{path}: {i} files, {os.path.getsize(path) / 1e6:.2f} MB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", help="directory of image files (default: synthetic images)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures",
                                                  "preprocess_ref.safetensors"))
    ap.add_argument("--recipes", default="dinov2:256:224,clip:224:224",
                    help="with --images: family:resize:crop,… (the committed file-level fixture uses small crops: "
                         "dinov2:32:28,clip:28:28,dinov2:20:14)")
    args = ap.parse_args()
    if args.images:
        recipes = [(f, int(r), int(c)) for f, r, c in (x.split(":") for x in args.recipes.split(","))]
        make_from_files(args.images, args.out, recipes)
    else:
        make_synthetic(args.out)


if __name__ == "__main__":
    main()
