#!/usr/bin/env python3
"""Images/s of PIL + Hugging Face's DINOv2 processor (transformers' BitImageProcessorPil, shortest edge 256, center
crop 224) on image files, one process, one image at a time: Image.open(f).convert("RGB") then the processor —
the reference `selora pixels` is compared with (and matches bit for bit, Tests/ImagesTests).

    python3 tools/bench_loader_pil.py FILE... --out result.json
"""
import argparse, json, time

from PIL import Image
from transformers import BitImageProcessorPil


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    proc = BitImageProcessorPil(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3,
                                image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    t0 = time.perf_counter()
    for f in args.files:
        proc(images=Image.open(f).convert("RGB"), return_tensors="np")
    s = time.perf_counter() - t0
    json.dump({"images": len(args.files), "seconds": s, "images_per_s": len(args.files) / s}, open(args.out, "w"))
    print(f"PIL + BitImageProcessorPil: {len(args.files)} images in {s:.2f} s, {len(args.files) / s:.0f} images/s")


if __name__ == "__main__":
    main()
