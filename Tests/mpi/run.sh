#!/usr/bin/env bash
# Data-parallel checks under a real mpirun: each prints PASS/FAIL; the last line is "mpi: N passed, M failed".
#   1. MPI collectives (selora mpi-check) on 2 ranks of this machine and across 2 namespace hosts over TCP.
#   2. A 2-rank run equals a 1-rank run with the same global batch and seed (loss curve, active sets, adapter
#      within float tolerance), and both ranks hold bitwise-identical gates, scores, adapters and head.
#   3. bytes_reduced = 4 × (active A and B elements + scores until the gates settle + head + 4 statistics) at
#      every step, computed here from the logged active mask and the ViT-S shapes, and it falls as blocks switch off.
#   4. The same job across 2 namespace hosts (TCP, launch/cluster-sim) gives the single-node result.
#   5. A deliberately desynchronized rank makes the job fail within the check interval with an error naming the
#      ranks, exit ≠ 0, no hang.
#   6. CLIP: a CLIP-shaped checkpoint (selora clip-compose, OpenCLIP names) fine-tuned on 2 ranks equals 1 rank and
#      exports adapters under OpenCLIP module names; clip-eval on 2 ranks reports zero-shot retention beside target
#      accuracy and active blocks, with the selective all-reduce carrying less than LoRA's.
#   7. Image files (ImageFolder of JPEG / PNG, augmented, prefetched): 2 ranks = 1 rank.
#   8. Preemption: SIGTERM to one rank → checkpoint + exit 75 within 10 s; resume bitwise on 2 ranks, and within
#      float tolerance on another world size (2 → 1, 1 → 2).
# Usage: Tests/mpi/run.sh  (run by launch/test after the release build)
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="$REPO/.venv/bin/python"
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "PASS $*"; }
ko() { fail=$((fail + 1)); echo "FAIL $*"; }
unset OPENBLAS_NUM_THREADS
# Tests run with the machine's own OPENBLAS_CORETYPE: the launch scripts must not switch kernels here.
export SELORA_KEEP_CORETYPE=1

# A small job: 28 px (4 patches), a fast score learning rate so blocks switch off within 12 steps.
# The gates settle at step 8 (mask and scores frozen, truncated backward) for the last 4 steps.
JOB=(train --image-size 28 --train-count 64 --test-count 32 --steps 12 --batch-size 8 --rank 4 --penalty-start 4
     --score-lr 0.05 --check-every 3 --settle-after 8 --log-level warning)

# 1. collectives
for how in "launch/train -np 2" "launch/cluster-sim"; do
    out="$(timeout 120 $REPO/$how -- mpi-check 2>&1)"
    if grep -q "mpi-check (2 ranks): [0-9]* passed, 0 failed" <<<"$out"; then ok "mpi-check via $how"
    else ko "mpi-check via $how"; echo "$out" | tail -5; fi
done
out="$(timeout 120 "$REPO/launch/cluster-sim" -- mpi-check 2>&1)"
if grep -q "rank 0 runs on h1" <<<"$out" && grep -q "rank 1 runs on h2" <<<"$out"; then ok "cluster-sim ranks run on separate hosts h1, h2"
else ko "cluster-sim host names"; echo "$out" | tail -5; fi

# 2. one rank vs two ranks
mkdir -p "$T/dump"
if OPENBLAS_NUM_THREADS=1 timeout 300 "$REPO/.build/release/selora" "${JOB[@]}" --out "$T/one" >/dev/null 2>"$T/one.err"; then ok "1-rank run"
else ko "1-rank run"; tail -5 "$T/one.err"; fi
if timeout 300 "$REPO/launch/train" -np 2 -- "${JOB[@]}" --out "$T/two" --test-dump-state "$T/dump" >/dev/null 2>"$T/two.err"; then ok "2-rank run under mpirun"
else ko "2-rank run under mpirun"; tail -5 "$T/two.err"; fi
if [[ -s "$T/dump/rank-0.bin" ]] && cmp -s "$T/dump/rank-0.bin" "$T/dump/rank-1.bin"; then
    ok "both ranks hold bitwise-identical gates, scores, adapters and head ($(stat -c %s "$T/dump/rank-0.bin") bytes)"
else ko "rank states differ (or were not written)"; fi

compare() {  # compare RUN_A RUN_B LABEL
    "$PY" - "$1" "$2" <<'PY'
import json, sys, numpy as np
from safetensors.numpy import load_file
a, b = sys.argv[1], sys.argv[2]
ma = [json.loads(l) for l in open(f"{a}/metrics.jsonl")]; mb = [json.loads(l) for l in open(f"{b}/metrics.jsonl")]
assert len(ma) == len(mb) == 12, (len(ma), len(mb))
loss = max(abs(x["loss"] - y["loss"]) / max(abs(x["loss"]), 1e-6) for x, y in zip(ma, mb))
masks = all(x["active_mask"] == y["active_mask"] for x, y in zip(ma, mb))
A = load_file(f"{a}/adapter/adapter_model.safetensors"); B = load_file(f"{b}/adapter/adapter_model.safetensors")
same_keys = set(A) == set(B)
# Float sums in another order (the all-reduce) move the adapters by rounding only: abs difference ≪ their O(0.1) size.
adapter = max(float(np.abs(A[k] - B[k]).max()) for k in A) if same_keys else 1.0
scale = max(float(np.abs(A[k]).max()) for k in A)
print(f"loss curve max relative difference {loss:.2e}; active masks equal: {masks}; adapter max abs difference {adapter:.2e} (largest value {scale:.2f})")
sys.exit(0 if loss < 1e-4 and masks and same_keys and adapter < 2e-4 else 1)
PY
}
if r="$(compare "$T/one" "$T/two")"; then ok "2 ranks = 1 rank: $r"; else ko "2 ranks vs 1 rank: $r"; fi

# 3. bytes_reduced against the formula, from the logged masks
if r="$("$PY" - "$T/two/metrics.jsonl" <<'PY'
import json, sys
rank, d, m, classes = 4, 384, 1536, 10
dims = [(d, d), (d, d), (d, d), (d, d), (d, m), (m, d)]     # query, key, value, output, fc1, fc2 per layer
steps = [json.loads(l) for l in open(sys.argv[1])]
bad = []
for s in steps:
    mask = s["active_mask"]; assert len(mask) == 72
    ab = sum(rank * (dims[i % 6][0] + dims[i % 6][1]) for i, c in enumerate(mask) if c == "1")
    want = 4 * (ab + (0 if s["settled"] else 72) + classes * d + classes + 4)   # no scores once settled; 4 statistics
    if s["bytes_reduced"] != want: bad.append((s["step"], s["bytes_reduced"], want))
falls = steps[-1]["bytes_reduced"] < steps[0]["bytes_reduced"] and steps[-1]["active_blocks"] < 72
settled = [s["step"] for s in steps if s["settled"]]
print(f"{len(steps)} steps checked, {steps[0]['bytes_reduced']} B at 72 active -> {steps[-1]['bytes_reduced']} B at {steps[-1]['active_blocks']} active; "
      f"settled from step {settled[0] + 1 if settled else None}; mismatches {bad[:3]}")
sys.exit(0 if not bad and falls and settled and settled[0] == 8 else 1)
PY
)"; then ok "bytes_reduced formula: $r"; else ko "bytes_reduced: $r"; fi

# 4. two namespace hosts over TCP
if timeout 300 "$REPO/launch/cluster-sim" -- "${JOB[@]}" --out "$T/hosts" >/dev/null 2>"$T/hosts.err"; then
    if r="$(compare "$T/one" "$T/hosts")"; then ok "2 hosts over TCP = 1 rank: $r"; else ko "2 hosts vs 1 rank: $r"; fi
else ko "2-host run"; tail -5 "$T/hosts.err"; fi
[[ -z "$(ip netns list 2>/dev/null | grep selora || true)" ]] && ok "cluster-sim removed its namespaces" || ko "namespaces left behind"

# 5. desynchronized rank
start=$(date +%s)
timeout 120 "$REPO/launch/train" -np 2 -- "${JOB[@]}" --out "$T/desync" --test-perturb-rank 1 --test-perturb-step 4 --check-every 3 \
    >/dev/null 2>"$T/desync.err"
rc=$?; took=$(( $(date +%s) - start ))
if [[ $rc -ne 0 && $rc -ne 124 ]] && grep -q "ranks disagree on the active set, scores or parameters after step 5" "$T/desync.err" \
   && grep -q "rank(s) 1 differ from rank 0" "$T/desync.err"; then
    ok "desynchronized rank: exit $rc after ${took} s, error names rank 1 at the first check after the perturbation"
else ko "desynchronized rank: exit $rc after ${took} s"; tail -8 "$T/desync.err"; fi
[[ -z "$(pgrep -f 'selora train' || true)" ]] && ok "no selora process left behind" || ko "processes left behind"

# 6. CLIP on 2 ranks
clip="$T/clip.safetensors"
if timeout 300 "$REPO/.build/release/selora" clip-compose --out "$clip" --image-size 28 --train-count 64 \
        --source-test-per-class 10 --log-level warning 2>"$T/compose.err"; then ok "clip-compose (28 px)"
else ko "clip-compose"; tail -5 "$T/compose.err"; fi
if OPENBLAS_NUM_THREADS=1 timeout 300 "$REPO/.build/release/selora" "${JOB[@]}" --weights "$clip" --out "$T/clip-one" >/dev/null 2>"$T/clip-one.err" \
   && timeout 300 "$REPO/launch/train" -np 2 -- "${JOB[@]}" --weights "$clip" --out "$T/clip-two" >/dev/null 2>"$T/clip-two.err"; then
    if r="$(compare "$T/clip-one" "$T/clip-two")"; then ok "CLIP image tower: 2 ranks = 1 rank: $r"; else ko "CLIP 2 ranks vs 1 rank: $r"; fi
    if r="$("$PY" - "$T/clip-two/adapter" <<'PY'
import json, sys
from safetensors.numpy import load_file
d = sys.argv[1]
keys = list(load_file(f"{d}/adapter_model.safetensors"))
cfg = json.load(open(f"{d}/adapter_config.json"))
ok = keys and all(k.startswith("base_model.model.visual.transformer.resblocks.") for k in keys) \
     and any(".attn.q_proj.lora_A" in k for k in keys) and any(".mlp.c_fc." in k for k in keys) \
     and cfg["selective"]["targets"] == ["query", "key", "value", "attention.output.dense", "mlp.fc1", "mlp.fc2"]
saved = sorted(k[len("base_model.model."):-len(".lora_A.weight")] for k in keys if k.endswith(".lora_A.weight"))
ok = ok and sorted(cfg["target_modules"]) == saved   # exactly the saved (active) blocks' module paths
print(f"{len(keys)} tensors, e.g. {sorted(keys)[0]}; target_modules = the {len(saved)} saved blocks' paths, "
      f"e.g. {cfg['target_modules'][0]}")
sys.exit(0 if ok else 1)
PY
)"; then ok "CLIP adapters in OpenCLIP module names: $r"; else ko "CLIP adapter names: $r"; fi
else ko "CLIP train runs"; tail -n 5 "$T/clip-one.err" "$T/clip-two.err"; fi
if timeout 300 "$REPO/launch/train" -np 2 -- clip-eval --clip "$clip" --out "$T/clip-eval" --methods lora,selective \
        --image-size 28 --train-count 64 --test-count 32 --source-test-per-class 10 --steps 12 --batch-size 8 --rank 4 \
        --penalty-start 4 --score-lr 0.05 --log-level warning >/dev/null 2>"$T/clip-eval.err"; then
    if r="$("$PY" - "$T/clip-eval" <<'PY'
import json, sys
d = sys.argv[1]
rep = json.load(open(f"{d}/report.json")); md = open(f"{d}/report.md").read()
by = {r["method"]: r["metrics"] for r in rep["runs"]}
last = {m: [json.loads(l) for l in open(f"{d}/metrics-{m}-seed0.jsonl")][-1] for m in by}
ok = rep["format"] == "selora-report-2" and rep["protocol"]["kind"] == "zero-shot" and rep["protocol"]["ranks"] == 2 \
     and set(by) == {"lora", "selective"} and "held-out zero-shot" in md and "2 rank(s)" in md \
     and all(0 <= m["retention.zero-shot"] <= 1 for m in by.values()) and 0 <= rep["baselines"]["retention.zero-shot"] <= 1 \
     and by["selective"]["active_blocks"] < 72 and last["selective"]["bytes_reduced"] < last["lora"]["bytes_reduced"]
print(f"selective {by['selective']['active_blocks']:.0f}/72 active, {last['selective']['bytes_reduced']} B vs lora {last['lora']['bytes_reduced']} B per step; "
      f"held-out zero-shot {rep['baselines']['retention.zero-shot']:.3f} -> {by['selective']['retention.zero-shot']:.3f}")
sys.exit(0 if ok else 1)
PY
)"; then ok "clip-eval on 2 ranks: $r"; else ko "clip-eval report: $r"; fi
else ko "clip-eval on 2 ranks"; tail -5 "$T/clip-eval.err"; fi

# 7. Image files: an ImageFolder of JPEG / PNG fixtures, RandomResizedCrop + flip drawn from (seed, epoch, image) and
#    prefetched on the loader thread: 2 ranks = 1 rank, as with the in-memory sets.
IMG="$REPO/Tests/Fixtures/images"
mkdir -p "$T/img/a" "$T/img/b"
cp "$IMG"/jpeg_rgb_4*_37x23.jpg "$IMG"/jpeg_progressive_45x31.jpg "$IMG"/jpeg_exif*_30x18.jpg "$T/img/a/"
cp "$IMG"/png_gray*.png "$IMG"/png_palette_27x15.png "$IMG"/png_rgb*.png "$IMG"/jpeg_cmyk_33x21.jpg "$T/img/b/"
IJOB=("${JOB[@]}" --train-data "$T/img" --test-data "$T/img")
if OPENBLAS_NUM_THREADS=1 timeout 300 "$REPO/.build/release/selora" "${IJOB[@]}" --out "$T/img-one" >/dev/null 2>"$T/img-one.err" \
   && timeout 300 "$REPO/launch/train" -np 2 -- "${IJOB[@]}" --out "$T/img-two" >/dev/null 2>"$T/img-two.err"; then
    if r="$(compare "$T/img-one" "$T/img-two")"; then ok "image files (augmented, prefetched): 2 ranks = 1 rank: $r"
    else ko "image files 2 ranks vs 1 rank: $r"; fi
else ko "image-file runs"; tail -3 "$T/img-one.err" "$T/img-two.err"; fi

# 8. Preemption and another world size: SIGTERM to one rank mid-run → every rank checkpoints at the same step and
#    exits 75 within 10 s; the checkpoint resumes bitwise on the same world size and within float tolerance on
#    another (2 → 1 and 1 → 2 ranks), the sample order being a function of seed, epoch and step.
P=(train --image-size 56 --train-count 128 --test-count 16 --steps 70 --batch-size 8 --rank 4 --penalty-start 20
   --score-lr 0.05 --checkpoint-every 0 --log-level warning)
run_np() {  # run_np RANKS OUT [ARGS…]: a P job on RANKS ranks
    local np="$1" out="$2"; shift 2
    if [[ "$np" == 1 ]]; then OPENBLAS_NUM_THREADS=1 timeout 300 "$REPO/.build/release/selora" "${P[@]}" --out "$out" "$@"
    else timeout 300 "$REPO/launch/train" -np "$np" -- "${P[@]}" --out "$out" "$@"; fi
}
preempt() {  # preempt RANKS OUT: start, SIGTERM one rank after ~30 logged steps; prints "EXIT MILLISECONDS CHECKPOINTS"
    local np="$1" out="$2"
    run_np "$np" "$out" >/dev/null 2>"$out.err" & local job=$!
    for _ in $(seq 600); do [[ -s "$out/metrics.jsonl" && $(wc -l <"$out/metrics.jsonl") -ge 30 ]] && break; sleep 0.1; done
    local pid; pid="$(pgrep -f "selora train .*--out $out" | tail -n 1)"
    local t0; t0=$(date +%s%N)
    kill -TERM "$pid"
    wait "$job"; local rc=$?
    echo "$rc $(( ($(date +%s%N) - t0) / 1000000 )) $(ls "$out/checkpoints" 2>/dev/null | tr '\n' ' ')"
}
same_final() {  # same_final RUN_A RUN_B TOLERANCE: final adapters and heads equal (0 = bitwise)
    "$PY" - "$1" "$2" "$3" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file
a, b, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
worst = 0.0
for f in ("adapter/adapter_model.safetensors", "head.safetensors"):
    A, B = load_file(f"{a}/{f}"), load_file(f"{b}/{f}")
    assert set(A) == set(B), f
    worst = max([worst] + [float(np.abs(A[k].astype(np.float64) - B[k]).max()) for k in A])
print(f"final adapter and head max abs difference {worst:.2e}")
sys.exit(0 if worst <= tol else 1)
PY
}
if run_np 2 "$T/pw2" >/dev/null 2>"$T/pw2.err" && run_np 1 "$T/pw1" >/dev/null 2>"$T/pw1.err"; then
    read -r rc ms ckpt <<<"$(preempt 2 "$T/pc2")"
    if [[ "$rc" == 75 ]] && ((ms < 10000)) && [[ -n "$ckpt" ]]; then ok "SIGTERM to rank 1 of 2: every rank exits 75 after $ms ms, checkpoint $ckpt"
    else ko "SIGTERM to one rank: exit $rc after $ms ms, checkpoints '$ckpt'"; tail -3 "$T/pc2.err"; fi
    cp -r "$T/pc2" "$T/pc2to1"
    if run_np 2 "$T/pc2" --resume "$T/pc2" >/dev/null 2>>"$T/pc2.err" && r="$(same_final "$T/pw2" "$T/pc2" 0)"; then
        ok "resume on the same 2 ranks = uninterrupted, bitwise: $r"
    else ko "resume on 2 ranks: $r"; tail -3 "$T/pc2.err"; fi
    if run_np 1 "$T/pc2to1" --resume "$T/pc2to1" >/dev/null 2>"$T/pc2to1.err" && r="$(same_final "$T/pw2" "$T/pc2to1" 2e-4)"; then
        ok "preempted on 2 ranks, resumed on 1 = uninterrupted within float tolerance: $r"
    else ko "2 → 1 rank resume: $r"; tail -3 "$T/pc2to1.err"; fi
    read -r rc ms ckpt <<<"$(preempt 1 "$T/pc1")"
    if [[ "$rc" == 75 ]] && run_np 2 "$T/pc1" --resume "$T/pc1" >/dev/null 2>"$T/pc1.err" && r="$(same_final "$T/pw1" "$T/pc1" 2e-4)"; then
        ok "preempted on 1 rank (exit 75, checkpoint $ckpt), resumed on 2 = uninterrupted within float tolerance: $r"
    else ko "1 → 2 rank resume (exit $rc): ${r:-}"; tail -3 "$T/pc1.err"; fi
else ko "uninterrupted preemption reference runs"; tail -3 "$T/pw2.err" "$T/pw1.err"; fi

echo "mpi: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
