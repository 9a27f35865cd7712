#!/usr/bin/env python3
"""Decode speed of RGBImage.decode against PIL's Image.open(f).convert("RGB"), one core, and an exactness check
of both on real files. Prints the figures; writes only under .cache/bench-decode/.

    .venv-img/bin/python tools/bench_decode.py [--png-dir data/elpv] [--photo PATH.jpg]

Cases: every PNG under --png-dir (default data/elpv: 2,624 real 300x300 8-bit gray ELPV cells), and a 500x375
4:2:0 quality-90 JPEG made from --photo (any JPEG photograph, resized with PIL's LANCZOS; without one, a
synthetic pattern). The Swift side is Sources/Images compiled with swiftc -O into one executable; it reads each
file whole and decodes it (decode(path:)), as PIL opens and converts it. Exactness: a position-weighted checksum
sum(p[i] * (i % 65521 + 1)) mod 2^64 of every decoded image, ours against PIL's.
"""
import argparse
import glob
import os
import subprocess
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, ".cache", "bench-decode")

MAIN = r"""
import Foundation
// args: repeats file...; prints "checksum width height" per file, then "seconds total_decodes" last.
let args = CommandLine.arguments
guard args.count >= 3, let repeats = Int(args[1]) else { fatalError("usage: bench repeats files...") }
let files = Array(args[2...])
func checksum(_ p: [UInt8]) -> UInt64 {
    var s: UInt64 = 0
    for i in 0..<p.count { s = s &+ UInt64(p[i]) &* UInt64(i % 65521 + 1) }
    return s
}
for f in files {
    do { let im = try RGBImage.decode(path: f); print(checksum(im.pixels), im.width, im.height) }
    catch { print("error \(error)") }
}
let t0 = DispatchTime.now().uptimeNanoseconds
var n = 0
for _ in 0..<repeats { for f in files { if (try? RGBImage.decode(path: f)) != nil { n += 1 } } }
print(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, n)
"""


def checksum(a):
    flat = a.reshape(-1).astype(np.uint64)
    w = (np.arange(flat.size, dtype=np.uint64) % np.uint64(65521)) + np.uint64(1)
    return int(np.sum(flat * w, dtype=np.uint64))


def build():
    os.makedirs(OUT, exist_ok=True)
    main = os.path.join(OUT, "main.swift")
    with open(main, "w") as f:
        f.write(MAIN)
    exe = os.path.join(OUT, "bench")
    sources = sorted(glob.glob(os.path.join(ROOT, "Sources", "Images", "*.swift")))
    subprocess.run(["swiftc", "-O", "-wmo", "-module-name", "BenchDecode", "-I", os.path.join(ROOT, "Sources", "CTurboJPEG"),
                    "-I", os.path.join(ROOT, "Sources", "CSPNG"), *sources, main, "-o", exe,
                    "-lturbojpeg", "-lspng"], check=True)
    return exe


def run_case(exe, name, files, repeats):
    out = subprocess.run(["taskset", "-c", "0", exe, str(repeats), *files], check=True, capture_output=True,
                         text=True).stdout.split("\n")
    lines = [l for l in out if l]
    mismatches = 0
    for f, line in zip(files, lines):
        want = np.asarray(Image.open(f).convert("RGB"))
        got = line.split()
        if got[0] == "error" or int(got[0]) != checksum(want) or (int(got[1]), int(got[2])) != (want.shape[1], want.shape[0]):
            mismatches += 1
    secs, n = lines[-1].split()
    ours = int(n) / float(secs)
    os.sched_setaffinity(0, {0})
    t0 = time.perf_counter()
    for _ in range(repeats):
        for f in files:
            Image.open(f).convert("RGB")
    pil = repeats * len(files) / (time.perf_counter() - t0)
    print(f"{name}: {len(files)} files, exact vs PIL: {len(files) - mismatches}/{len(files)}; "
          f"images/s on one core: ours {ours:.0f}, PIL {pil:.0f} ({ours / pil:.2f}x)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--png-dir", default=os.path.join(ROOT, "data", "elpv"))
    ap.add_argument("--photo", default=None)
    args = ap.parse_args()
    exe = build()
    pngs = sorted(glob.glob(os.path.join(args.png_dir, "**", "*.png"), recursive=True))
    if pngs:
        run_case(exe, f"PNG ({os.path.relpath(args.png_dir, ROOT)})", pngs, 3)
    if args.photo:
        im = Image.open(args.photo).convert("RGB").resize((500, 375), Image.Resampling.LANCZOS)
    else:
        y, x = np.mgrid[0:375, 0:500]
        im = Image.fromarray(np.clip(np.dstack([128 + 100 * np.sin(x / 9 + c) * np.cos(y / 13) for c in range(3)])
                                     + np.random.default_rng(0).normal(0, 10, (375, 500, 3)), 0, 255).astype(np.uint8))
    jpg = os.path.join(OUT, "photo_500x375.jpg")
    im.save(jpg, "JPEG", quality=90)
    run_case(exe, "JPEG 500x375 4:2:0 q90" + (" (photo)" if args.photo else " (synthetic)"), [jpg], 2000)


if __name__ == "__main__":
    main()
