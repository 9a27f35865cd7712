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
expect_fail "probe: image size not a multiple of 14" "--image-size 100" -- "$SELORA" probe --weights "$WEIGHTS" --image-size 100
expect_fail "probe: images file missing" "--train-images $T/none.gz" -- "$SELORA" probe --weights "$WEIGHTS" --train-images "$T/none.gz"
expect_fail "probe: more images than the file" "the files hold" -- "$SELORA" probe --weights "$WEIGHTS" --test-count 20000 --train-count 10 --image-size 14

# A good run for contrast: it must succeed and write the output.
if "${E[@]}" --weights "$WEIGHTS" --pixels "$PX" --out "$T/good.safetensors" 2>"$T/stderr" && [[ -s "$T/good.safetensors" ]]; then
    pass=$((pass + 1)); echo "PASS embed on good input writes its output"
else
    fail=$((fail + 1)); echo "FAIL embed on good input"; cat "$T/stderr"
fi
echo "cli: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
