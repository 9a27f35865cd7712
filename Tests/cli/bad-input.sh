#!/usr/bin/env bash
# Bad input through the real `selora` binary: each case must exit non-zero, print an error naming the file /
# flag / tensor and what was expected, and leave an existing output file untouched.
# Usage: Tests/cli/bad-input.sh PATH/TO/selora WEIGHTS.safetensors PYTHON
set -uo pipefail
SELORA="$1"; WEIGHTS="$2"; PY="$3"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
pass=0; fail=0

# expect_fail NAME EXPECTED-SUBSTRING... -- COMMAND...
expect_fail() {
    local name="$1"; shift
    local wants=()
    while [[ "$1" != -- ]]; do wants+=("$1"); shift; done; shift
    echo keep > "$T/out.safetensors"
    "$@" >"$T/stdout" 2>"$T/stderr"
    local rc=$? ok=1 why=""
    [[ $rc -ne 0 ]] || { ok=0; why="exit code 0"; }
    for w in "${wants[@]}"; do grep -qF -- "$w" "$T/stderr" || { ok=0; why+=" missing '$w' in stderr"; }; done
    [[ "$(cat "$T/out.safetensors")" == keep ]] || { ok=0; why+=" output overwritten"; }
    if [[ $ok -eq 1 ]]; then pass=$((pass + 1)); echo "PASS $name";
    else fail=$((fail + 1)); echo "FAIL $name:$why"; sed 's/^/    /' "$T/stderr" | head -5; fi
}

# Bad files, made from the real weights and the committed 56 px fixture.
"$PY" - "$WEIGHTS" "$T" "$REPO/Tests/Fixtures/dinov2_ref_56.safetensors" <<'PY'
import struct, sys, numpy as np
from safetensors.numpy import load_file, save_file
w = load_file(sys.argv[1]); t = sys.argv[2]
m = dict(w); del m["encoder.layer.3.mlp.fc1.weight"]; save_file(m, f"{t}/missing.safetensors")
m = dict(w); m["encoder.layer.3.mlp.fc1.weight"] = np.ascontiguousarray(w["encoder.layer.3.mlp.fc1.weight"].T)
save_file(m, f"{t}/misshaped.safetensors")
m = dict(w); m["encoder.layer.0.norm1.weight"] = w["encoder.layer.0.norm1.weight"].astype(np.int64)
save_file(m, f"{t}/wrongdtype.safetensors")
raw = open(sys.argv[1], "rb").read()
open(f"{t}/truncated.safetensors", "wb").write(raw[:len(raw) // 2])
n = struct.unpack("<Q", raw[:8])[0]
open(f"{t}/offsets.safetensors", "wb").write(raw[:8 + n] + raw[8 + n:-1000])          # data shorter than offsets
open(f"{t}/absurd.safetensors", "wb").write(struct.pack("<Q", 1 << 40) + raw[8:4096])
open(f"{t}/headerbeyond.safetensors", "wb").write(struct.pack("<Q", 4000) + raw[8:1000])
open(f"{t}/notjson.safetensors", "wb").write(struct.pack("<Q", 16) + b"{not json here!}")
open(f"{t}/short.safetensors", "wb").write(b"\x01\x02\x03")
hdr = b'{"pixel_values":{"dtype":"F32","shape":[1,3,28,28],"data_offsets":[0,100]}}'
hdr += b" " * (-len(hdr) % 8)
open(f"{t}/sizemismatch.safetensors", "wb").write(struct.pack("<Q", len(hdr)) + hdr + bytes(100))
px = load_file(sys.argv[3])["pixel_values"]
save_file({"pixel_values": np.zeros((1, 3, 225, 224), np.float32)}, f"{t}/px225.safetensors")
save_file({"images": px}, f"{t}/pxkey.safetensors")
save_file({"pixel_values": px[:, :1]}, f"{t}/px1ch.safetensors")
save_file({"pixel_values": load_file(sys.argv[3].replace("dinov2_ref_56.safetensors", "lora_grad_ref/batch.safetensors"))["pixel_values"],
           "labels": np.array([0, 1, 2, 11], np.int64)}, f"{t}/badlabels.safetensors")
bad = px.copy(); bad[0, 0, 0, 0] = np.nan
save_file({"pixel_values": bad}, f"{t}/pxnan.safetensors")
PY
PX="$REPO/Tests/Fixtures/dinov2_ref_56.safetensors"
OUT="$T/out.safetensors"
E=("$SELORA" embed --log-level error)

expect_fail "weights: no such file" "$T/nope.safetensors" "no such file" -- "${E[@]}" --weights "$T/nope.safetensors" --pixels "$PX" --out "$OUT"
expect_fail "weights: truncated" "$T/truncated.safetensors" -- "${E[@]}" --weights "$T/truncated.safetensors" --pixels "$PX" --out "$OUT"
expect_fail "weights: offsets outside the data" "$T/offsets.safetensors" "data_offsets" -- "${E[@]}" --weights "$T/offsets.safetensors" --pixels "$PX" --out "$OUT"
expect_fail "weights: absurd header size" "$T/absurd.safetensors" "header" -- "${E[@]}" --weights "$T/absurd.safetensors" --pixels "$PX" --out "$OUT"
expect_fail "weights: header beyond the file" "$T/headerbeyond.safetensors" "header" -- "${E[@]}" --weights "$T/headerbeyond.safetensors" --pixels "$PX" --out "$OUT"
expect_fail "weights: header not JSON" "$T/notjson.safetensors" "JSON" -- "${E[@]}" --weights "$T/notjson.safetensors" --pixels "$PX" --out "$OUT"
expect_fail "weights: shorter than 8 bytes" "$T/short.safetensors" "at least 8" -- "${E[@]}" --weights "$T/short.safetensors" --pixels "$PX" --out "$OUT"
expect_fail "weights: missing tensor" "$T/missing.safetensors" "encoder.layer.3.mlp.fc1.weight" -- "${E[@]}" --weights "$T/missing.safetensors" --pixels "$PX" --out "$OUT"
expect_fail "weights: mis-shaped tensor" "$T/misshaped.safetensors" "encoder.layer.3.mlp.fc1.weight" "[1536, 384]" -- "${E[@]}" --weights "$T/misshaped.safetensors" --pixels "$PX" --out "$OUT"
expect_fail "weights: wrong dtype" "$T/wrongdtype.safetensors" "encoder.layer.0.norm1.weight" "I64" -- "${E[@]}" --weights "$T/wrongdtype.safetensors" --pixels "$PX" --out "$OUT"
expect_fail "pixels: shape x dtype != bytes" "$T/sizemismatch.safetensors" "pixel_values" -- "${E[@]}" --weights "$WEIGHTS" --pixels "$T/sizemismatch.safetensors" --out "$OUT"
expect_fail "pixels: 225x224 not a multiple of 14" "225×224" "multiple of the patch size 14" -- "${E[@]}" --weights "$WEIGHTS" --pixels "$T/px225.safetensors" --out "$OUT"
expect_fail "pixels: key missing" "$T/pxkey.safetensors" "pixel_values" -- "${E[@]}" --weights "$WEIGHTS" --pixels "$T/pxkey.safetensors" --out "$OUT"
expect_fail "pixels: one channel" "$T/px1ch.safetensors" "[N, 3, H, W]" -- "${E[@]}" --weights "$WEIGHTS" --pixels "$T/px1ch.safetensors" --out "$OUT"
expect_fail "pixels: NaN" "$T/pxnan.safetensors" "NaN" -- "${E[@]}" --weights "$WEIGHTS" --pixels "$T/pxnan.safetensors" --out "$OUT"
expect_fail "out: directory missing" "$T/no/dir/x.safetensors" "does not exist" -- "${E[@]}" --weights "$WEIGHTS" --pixels "$PX" --out "$T/no/dir/x.safetensors"
expect_fail "out: same as input" "is also an input" -- "${E[@]}" --weights "$WEIGHTS" --pixels "$OUT" --out "$OUT"
expect_fail "flag: batch size 0" "--batch-size" -- "${E[@]}" --weights "$WEIGHTS" --pixels "$PX" --out "$OUT" --batch-size 0
expect_fail "flag: unknown log level" "--log-level" -- "$SELORA" embed --log-level loud --weights "$WEIGHTS" --pixels "$PX" --out "$OUT"
expect_fail "names: unknown naming" "--names" "transformers5" -- "$SELORA" convert --weights "$WEIGHTS" --names hf --out "$OUT"
expect_fail "names: CLIP names for a DINOv2 model" "--names open_clip" "transformers5" -- "$SELORA" convert --weights "$WEIGHTS" --names open_clip --out "$OUT"
expect_fail "probe: image size not a multiple of 14" "--image-size 100" -- "$SELORA" probe --weights "$WEIGHTS" --image-size 100
expect_fail "probe: images file missing" "--train-images $T/none.gz" -- "$SELORA" probe --weights "$WEIGHTS" --train-images "$T/none.gz"
expect_fail "probe: more images than the file" "the files hold" -- "$SELORA" probe --weights "$WEIGHTS" --test-count 20000 --train-count 10 --image-size 14

# Training configuration and data (selora train / eval).
"$PY" - "$T" <<'PY'
import gzip, struct, sys
t = sys.argv[1]
def idx_images(path, n, magic=0x803):
    with gzip.open(path, "wb") as f: f.write(struct.pack(">IIII", magic, n, 28, 28) + bytes(n * 784))
def idx_labels(path, labels):
    with gzip.open(path, "wb") as f: f.write(struct.pack(">II", 0x801, len(labels)) + bytes(labels))
idx_images(f"{t}/img.gz", 40); idx_labels(f"{t}/lab.gz", [i % 10 for i in range(40)])
idx_images(f"{t}/badmagic.gz", 40, magic=0x804)
idx_labels(f"{t}/lab12.gz", [12] + [i % 10 for i in range(39)])
idx_labels(f"{t}/labshort.gz", [1, 2, 3])
with gzip.open(f"{t}/src.csv.gz", "wt") as f:
    for i in range(30): f.write(",".join(["0"] * 784 + [str(i % 10)]) + "\n")
    f.write(",".join(["0"] * 700) + "\n")
PY
TR=("$SELORA" train --weights "$WEIGHTS" --out "$T/run" --image-size 28 --steps 2 --batch-size 4 --train-count 20 --test-count 8
    --train-images "$T/img.gz" --train-labels "$T/lab.gz" --test-images "$T/img.gz" --test-labels "$T/lab.gz")
expect_fail "train: --rank 0" "--rank" -- "${TR[@]}" --rank 0
expect_fail "train: --threshold above the initial score" "--threshold" "--initial-score" -- "${TR[@]}" --threshold 0.2
expect_fail "train: --penalty negative" "--penalty" -- "${TR[@]}" --penalty -1
expect_fail "train: unknown target module" "--targets" "mlp.fc3" -- "${TR[@]}" --targets query,mlp.fc3
expect_fail "train: --max-active above 100" "--max-active" "0…100" -- "${TR[@]}" --max-active 150
expect_fail "train: --max-active negative" "--max-active" -- "${TR[@]}" --max-active=-1
expect_fail "train: --steps 0" "--steps" -- "${TR[@]}" --steps 0
expect_fail "train: --lr 0" "--lr" "positive" -- "${TR[@]}" --lr 0
expect_fail "train: --warmup-steps beyond --steps" "--warmup-steps" -- "${TR[@]}" --warmup-steps 1000
expect_fail "train: empty --targets" "--targets" -- "${TR[@]}" --targets ,
expect_fail "train: --check-every 0" "--check-every" "positive" -- "${TR[@]}" --check-every 0
expect_fail "train: unknown method" "--method" -- "${TR[@]}" --method magic
expect_fail "train: --last-k 0" "--last-k" "got 0" -- "${TR[@]}" --method lora-last-k --last-k 0
expect_fail "train: --last-k 13 on the 12 layers of ViT-S" "--last-k" "1…12 (the backbone's layers)" "got 13" -- "${TR[@]}" --method lora-last-k --last-k 13
expect_fail "eval: --last-k 13 before any method trains" "--last-k" "1…12" -- "$SELORA" eval --weights "$WEIGHTS" --methods lora,lora-last-k --last-k 13 --image-size 28 --steps 2 --batch-size 4 --train-count 20 --test-count 8 --train-images "$T/img.gz" --train-labels "$T/lab.gz" --test-images "$T/img.gz" --test-labels "$T/lab.gz"
expect_fail "train: dataset missing" "--train-images $T/none.gz" -- "${TR[@]}" --train-images "$T/none.gz"
expect_fail "train: IDX with wrong magic" "$T/badmagic.gz" "magic" -- "${TR[@]}" --train-images "$T/badmagic.gz"
expect_fail "train: label out of range" "$T/lab12.gz" "12" -- "${TR[@]}" --train-labels "$T/lab12.gz"
expect_fail "train: fewer labels than images" "$T/labshort.gz" -- "${TR[@]}" --train-labels "$T/labshort.gz"
expect_fail "train: batch larger than the data" "--batch-size 64" "--train-count" -- "${TR[@]}" --batch-size 64
mkdir -p "$T/done" && echo '{}' > "$T/done/summary.json"
expect_fail "train: run directory already holds a run" "already holds a run" -- "${TR[@]}" --out "$T/done"
[[ "$(cat "$T/done/summary.json")" == "{}" ]] || { fail=$((fail + 1)); echo "FAIL existing run overwritten"; }
expect_fail "eval: source CSV malformed" "$T/src.csv.gz" "line 31" -- "$SELORA" eval --weights "$WEIGHTS" --source-csv "$T/src.csv.gz" --image-size 28 --steps 2 --batch-size 4 --train-count 20 --test-count 8 --train-images "$T/img.gz" --train-labels "$T/lab.gz" --test-images "$T/img.gz" --test-labels "$T/lab.gz"
expect_fail "eval: unknown method in --methods" "--methods" -- "$SELORA" eval --weights "$WEIGHTS" --methods lora,bogus
mkdir -p "$T/onlytrain/train"
expect_fail "eval: --sources entry without =" "--sources entry \`mnist\`" "NAME=PATH" -- "$SELORA" eval --weights "$WEIGHTS" --sources mnist
expect_fail "eval: --sources path missing" "--sources a=$T/nope" "no such file or directory" -- "$SELORA" eval --weights "$WEIGHTS" --sources "a=$T/nope"
expect_fail "eval: --sources directory without test/" "--sources a=$T/onlytrain" "test/" -- "$SELORA" eval --weights "$WEIGHTS" --sources "a=$T/onlytrain"
expect_fail "eval: --sources name twice" "--sources" "appears twice" -- "$SELORA" eval --weights "$WEIGHTS" --sources "a=$T/src.csv.gz,a=$T/src.csv.gz"
expect_fail "eval: --seeds not integers" "--seeds" "non-negative integer" -- "$SELORA" eval --weights "$WEIGHTS" --seeds 0,x
expect_fail "eval: --seeds negative" "--seeds" "non-negative integer" -- "$SELORA" eval --weights "$WEIGHTS" --seeds=-1,2
expect_fail "eval: --seeds with a repeat" "--seeds" "appears twice" -- "$SELORA" eval --weights "$WEIGHTS" --seeds 0,1,0
expect_fail "eval: --source-train-count 0" "--source-train-count" "positive" -- "$SELORA" eval --weights "$WEIGHTS" --source-train-count 0
expect_fail "eval: --source-test-count negative" "--source-test-count" "positive" -- "$SELORA" eval --weights "$WEIGHTS" --source-test-count=-5
expect_fail "clip-eval: --seeds with a repeat" "--seeds" "appears twice" -- "$SELORA" clip-eval --clip "$WEIGHTS" --seeds 2,2

# Adapters: merge refuses NaN, grad matches the JAX reference through the binary.
G="$REPO/Tests/Fixtures/lora_grad_ref"
cp -r "$G" "$T/nanadapter"
"$PY" - "$T/nanadapter/adapter_model.safetensors" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file, save_file
t = load_file(sys.argv[1]); k = sorted(x for x in t if x.endswith("lora_B.weight"))[0]; t[k][0, 0] = np.nan
save_file(t, sys.argv[1])
PY
expect_fail "merge: adapter with NaN" "NaN" -- "$SELORA" merge --weights "$WEIGHTS" --adapter "$T/nanadapter" --out "$OUT"
expect_fail "grad: labels out of the head's range" "labels must be in 0..<10" -- "$SELORA" grad --weights "$WEIGHTS" --adapter "$G" --head "$G/head.safetensors" --batch "$T/badlabels.safetensors" --out "$OUT"
if "$SELORA" grad --weights "$WEIGHTS" --adapter "$G" --head "$G/head.safetensors" --batch "$G/batch.safetensors" --out "$T/grads.safetensors" --log-level error \
   && "$PY" - "$T/grads.safetensors" "$G/expected_grads.safetensors" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file
got, want = load_file(sys.argv[1]), load_file(sys.argv[2])
assert set(got) == set(want), set(got) ^ set(want)
worst = max(float(np.abs(got[k] - want[k]).max() / max(np.abs(want[k]).max(), 1e-8)) for k in want)
print(f"selora grad vs JAX: worst error relative to the tensor's largest magnitude {worst:.2e}")
sys.exit(0 if worst <= 1e-3 else 1)
PY
then pass=$((pass + 1)); echo "PASS grad through the binary matches the JAX reference"
else fail=$((fail + 1)); echo "FAIL grad through the binary"; fi
if "$SELORA" merge --weights "$WEIGHTS" --adapter "$G" --out "$T/merged.safetensors" --log-level error && [[ -s "$T/merged.safetensors" ]]; then
    pass=$((pass + 1)); echo "PASS merge writes merged weights"
else fail=$((fail + 1)); echo "FAIL merge"; fi

# selora bench --adapter: a gate pattern from an adapter directory (tools/make_gate_adapter.py writes one).
BA=("$SELORA" bench --weights "$WEIGHTS" --cases 28x2 --steps 1 --log-level error)
expect_fail "bench: --adapter is not a directory" "--adapter $T/noadapter" "no such directory" -- "${BA[@]}" --adapter "$T/noadapter" --methods settled
mkdir -p "$T/emptyadapter"
expect_fail "bench: --adapter without adapter_config.json" "--adapter $T/emptyadapter" "adapter_config.json" -- "${BA[@]}" --adapter "$T/emptyadapter" --methods settled
expect_fail "bench: settled with base-weight gradients" "--weight-gradients" "settled" -- "${BA[@]}" --weight-gradients true --methods settled
expect_fail "bench: settled with no active block" "--methods settled" "no active block" -- "${BA[@]}" --active-percent 0 --methods settled
if "$PY" "$REPO/tools/make_gate_adapter.py" "$T/gates" --rank 4 >/dev/null \
   && "${BA[@]}" --adapter "$T/gates" --methods lora,settled --json "$T/bench.json" >/dev/null 2>"$T/stderr" \
   && "$PY" - "$T/bench.json" <<'PY'
import json, sys
lora, settled = [x for x in json.load(open(sys.argv[1])) if x["kind"] == "step"]
ok = (lora["active_blocks"], lora["rank"], lora["backward_from_layer"]) == (72, 4, 0) \
     and (settled["active_blocks"], settled["rank"], settled["backward_from_layer"]) == (3, 4, 5) \
     and settled["peak_rss_bytes"] > 0 and settled["step_s"] > 0
sys.exit(0 if ok else 1)
PY
then pass=$((pass + 1)); echo "PASS bench --adapter: settled times the adapter's 3 blocks at its rank, backward from layer 5"
else fail=$((fail + 1)); echo "FAIL bench --adapter on a written gate pattern"; sed 's/^/    /' "$T/stderr" | head -5; fi

# CLIP: checkpoints, vocabulary, class lists, image size, overwriting.
CF="$REPO/Tests/Fixtures/clip_ref/openclip_gelu.safetensors"
VOCAB="$REPO/data/clip/bpe_simple_vocab_16e6.txt.gz"
expect_fail "clip-eval: no such checkpoint" "--clip $T/nope.safetensors" "no such file" -- "$SELORA" clip-eval --clip "$T/nope.safetensors"
expect_fail "clip-eval: a DINOv2 file is not CLIP" "$WEIGHTS" "not a CLIP checkpoint" -- "$SELORA" clip-eval --clip "$WEIGHTS" --image-size 28
expect_fail "clip-eval: image size vs the CLIP patch" "--image-size 30" "patch size 8" -- "$SELORA" clip-eval --clip "$CF" --vision-heads 2 --text-heads 2 --image-size 30
expect_fail "text-embed: missing vocabulary" "--vocab $T/nope.gz" "fetch-clip-vocab" -- "$SELORA" text-embed --clip "$CF" --vocab "$T/nope.gz" --classes a,b --out "$OUT"
expect_fail "text-embed: token ids beyond the tower's vocabulary" "outside the vocabulary of 512" -- "$SELORA" text-embed --clip "$CF" --vocab "$VOCAB" --text-heads 2 --vision-heads 2 --classes cat,dog --out "$OUT"
expect_fail "text-embed: one class" "--classes" "at least two" -- "$SELORA" text-embed --clip "$CF" --vocab "$VOCAB" --classes cat --out "$OUT"
expect_fail "clip-compose: output exists" "--out $OUT exists" -- "$SELORA" clip-compose --weights "$WEIGHTS" --out "$OUT" --image-size 28 --train-count 16
if "$SELORA" clip-compose --weights "$WEIGHTS" --out "$T/clip.safetensors" --image-size 28 --train-count 64 --source-test-per-class 10 --log-level error \
   && "$SELORA" text-embed --clip "$T/clip.safetensors" --vocab "$VOCAB" --classes "T-shirt/top,trouser,pullover" \
        --templates "a photo of a {}.|a black and white photo of a {}." --out "$T/emb.safetensors" --head "$T/zs.safetensors" --log-level error \
   && "$PY" - "$T/emb.safetensors" "$T/zs.safetensors" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file
e, h = load_file(sys.argv[1]), load_file(sys.argv[2])
emb, scale = e["class_embeddings"], float(np.exp(e["logit_scale"][0]))
ok = emb.shape == (3, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5) \
     and np.allclose(h["weight"], scale * emb, rtol=1e-5, atol=1e-5) and not h["bias"].any()
print(f"class embeddings {emb.shape}, unit rows, head = {scale:.1f} x embeddings: {ok}")
sys.exit(0 if ok else 1)
PY
then pass=$((pass + 1)); echo "PASS clip-compose + text-embed write class embeddings and the zero-shot head"
else fail=$((fail + 1)); echo "FAIL clip-compose + text-embed"; fi
expect_fail "train: --init-head for another class count" "--init-head $T/zs.safetensors" "3 classes" "has 10" -- "${TR[@]}" --init-head "$T/zs.safetensors"
expect_fail "train: --init-head of another width" "$G/head.safetensors" "expected [classes ≥ 2, 24]" -- "$SELORA" train --weights "$CF" --heads 2 --out "$T/runh" --image-size 32 --steps 2 --batch-size 4 --train-count 20 --test-count 8 --init-head "$G/head.safetensors"

# Image files (--train-data / --test-data, selora pixels): a small ImageFolder of the decoder's fixtures.
IMG="$REPO/Tests/Fixtures/images"
mkimgs() {  # mkimgs DIR: two classes of three good images each
    mkdir -p "$1/cat" "$1/dog"
    cp "$IMG"/jpeg_rgb_420_37x23.jpg "$IMG"/png_rgb8_portrait_19x33.png "$IMG"/jpeg_progressive_45x31.jpg "$1/cat/"
    cp "$IMG"/png_gray8_30x20.png "$IMG"/jpeg_cmyk_33x21.jpg "$IMG"/png_palette_27x15.png "$1/dog/"
}
mkimgs "$T/ftrain"; mkimgs "$T/ftest"
FT=("$SELORA" train --weights "$WEIGHTS" --image-size 28 --steps 1 --batch-size 2 --train-data "$T/ftrain" --test-data "$T/ftest" --log-level error)
cp "$IMG/broken_truncated_half.jpg" "$T/ftrain/dog/z_truncated.jpg"
expect_fail "train: a truncated JPEG in the training folder" "$T/ftrain/dog/z_truncated.jpg" "truncated" -- "${FT[@]}" --out "$T/frun1" --steps 3
if "${FT[@]}" --out "$T/frun2" --steps 3 --skip-bad-images --log-level warning 2>"$T/stderr" >/dev/null \
   && grep -q "z_truncated.jpg" "$T/stderr" && grep -q '"skipped_images" : 1' "$T/frun2/summary.json"; then
    pass=$((pass + 1)); echo "PASS train --skip-bad-images: a warning naming the file, skipped_images 1 in summary.json"
else fail=$((fail + 1)); echo "FAIL train --skip-bad-images"; sed 's/^/    /' "$T/stderr" | head -5; fi
rm "$T/ftrain/dog/z_truncated.jpg"
cp "$IMG/broken_text.jpg" "$T/ftrain/cat/notanimage.jpg"
expect_fail "train: a text file named .jpg" "$T/ftrain/cat/notanimage.jpg" -- "${FT[@]}" --out "$T/frun3" --steps 3
rm "$T/ftrain/cat/notanimage.jpg"; cp "$IMG/broken_zero_bytes.jpg" "$T/ftrain/cat/empty.jpg"
expect_fail "train: a zero-byte image" "$T/ftrain/cat/empty.jpg" -- "${FT[@]}" --out "$T/frun4" --steps 3
rm "$T/ftrain/cat/empty.jpg"
mkdir -p "$T/ftrain/emu"
expect_fail "train: an empty class folder" "$T/ftrain/emu" -- "${FT[@]}" --out "$T/frun5"
rmdir "$T/ftrain/emu"; mkdir -p "$T/ftest2" && mkimgs "$T/ftest2" && mv "$T/ftest2/dog" "$T/ftest2/wolf"
expect_fail "train: test classes differ from the training classes" "wolf" "dog" -- "${FT[@]}" --out "$T/frun6" --test-data "$T/ftest2"
printf 'path,label\ncat/jpeg_rgb_420_37x23.jpg,cat\ncat/missing.png,cat\n' > "$T/ftrain/m.csv"
expect_fail "train: a manifest row naming a missing file" "$T/ftrain/m.csv" "missing.png" -- "${FT[@]}" --out "$T/frun7" --train-data "$T/ftrain/m.csv"
expect_fail "train: --train-data without --test-data" "--test-data" -- "$SELORA" train --train-data "$T/ftrain" --out "$T/frun8"
expect_fail "pixels: a truncated PNG" "broken_truncated.png" "truncated" -- "$SELORA" pixels --images "$IMG/broken_truncated.png" --out "$OUT"
expect_fail "pixels: no such directory" "$T/nodir" -- "$SELORA" pixels --images "$T/nodir" --out "$OUT"
if "$SELORA" pixels --images "$T/ftest" --out "$T/px.safetensors" >/dev/null 2>"$T/stderr" && "$PY" - "$T/px.safetensors" <<'PY'
import sys, json
from safetensors import safe_open
with safe_open(sys.argv[1], "numpy") as f:
    px, lab, meta = f.get_tensor("pixel_values"), f.get_tensor("labels"), f.metadata()
ok = px.shape == (6, 3, 224, 224) and list(lab) == [0, 0, 0, 1, 1, 1] and json.loads(meta["classes"]) == ["cat", "dog"]
sys.exit(0 if ok else 1)
PY
then pass=$((pass + 1)); echo "PASS pixels on an ImageFolder: pixel_values [6, 3, 224, 224], labels and classes"
else fail=$((fail + 1)); echo "FAIL pixels on an ImageFolder"; sed 's/^/    /' "$T/stderr" | head -5; fi

# A good run for contrast: it must succeed and write the output.
if "${E[@]}" --weights "$WEIGHTS" --pixels "$PX" --out "$T/good.safetensors" 2>"$T/stderr" && [[ -s "$T/good.safetensors" ]]; then
    pass=$((pass + 1)); echo "PASS embed on good input writes its output"
else
    fail=$((fail + 1)); echo "FAIL embed on good input"; cat "$T/stderr"
fi
echo "cli: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
