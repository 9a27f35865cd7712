#!/usr/bin/env bash
# Preprocessing throughput, Swift (swiftc -O, one core) next to Pillow + transformers' PIL-backend processors.
# Usage: tools/bench_preprocess.sh [python-with-pillow-and-transformers]   (report only; nothing is asserted)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
py="${1:-$here/.venv-ref/bin/python}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
for f in "$here"/Sources/Images/{RGBImage,Resample,ImagePreprocessing,RandomResizedCrop}.swift \
         "$here"/Sources/Tensors/SeededRandom.swift; do
    sed '/^import Tensors$/d' "$f" > "$tmp/$(basename "$f")"
done
cp "$here/tools/bench_preprocess.swift" "$tmp/main.swift"
swiftc -O -parse-as-library -module-name Bench "$tmp"/*.swift -o "$tmp/bench"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "== Swift (Images module)"
taskset -c 0 "$tmp/bench"
echo "== Pillow + transformers (PIL backend)"
taskset -c 0 "$py" - <<'PY' 2>&1 | grep -v "PyTorch was not found"
import time, numpy as np, PIL
from PIL import Image
from transformers import BitImageProcessorPil, CLIPImageProcessorPil
dino = BitImageProcessorPil(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3,
                            image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
clip = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3)
def rate(label, f):
    for _ in range(3): f()
    per = []
    for _ in range(7):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 0.3: f(); n += 1
        per.append((time.perf_counter() - t0) / n)
    per.sort()
    print(f"{label:<44} median {1 / per[3]:6.0f} images/s, best {1 / per[0]:6.0f}  (best {1000 * per[0]:.3f} ms/image)")
rng = np.random.default_rng(0)
for w, h in [(300, 300), (500, 375)]:
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    im = Image.fromarray(a)
    rate(f"BitImageProcessorPil(256, 224), {w}×{h}", lambda: dino(images=a, return_tensors="np"))
    rate(f"CLIPImageProcessorPil(224), {w}×{h}", lambda: clip(images=a, return_tensors="np"))
    s = (int(256 * w / h), 256) if w > h else (256, int(256 * h / w))
    rate(f"PIL resize to {s[0]}×{s[1]} bicubic only, {w}×{h}", lambda: im.resize(s, Image.Resampling.BICUBIC))
PY
