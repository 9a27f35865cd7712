#!/usr/bin/env bash
# Every subcommand of `selora`, run once for real with its option groups on small inputs: each must exit 0.
# A subcommand that `selora --help` lists but this script does not run is a failure, so a new command cannot skip
# it. Guards against bugs that only show at run time (e.g. an option group built by hand instead of parsed, whose
# unparsed options trap when read).
# Usage: Tests/cli/subcommands.sh PATH/TO/selora WEIGHTS.safetensors   (run by launch/test)
set -uo pipefail
SELORA="$1"; WEIGHTS="$2"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
pass=0; fail=0; ran=()
run() {  # run NAME COMMAND...
    local name="$1"; shift
    ran+=("$name")
    if "$@" >"$T/out" 2>"$T/err"; then pass=$((pass + 1)); echo "PASS $name"
    else fail=$((fail + 1)); echo "FAIL $name (exit $?)"; tail -4 "$T/err" | sed 's/^/    /'; fi
}
L=(--log-level error)
FX="$REPO/Tests/Fixtures"
IMG="$FX/images"
mkdir -p "$T/img/a" "$T/img/b"
cp "$IMG"/jpeg_rgb_4*_37x23.jpg "$T/img/a/"; cp "$IMG"/png_gray8_30x20.png "$IMG"/png_rgb8_portrait_19x33.png "$IMG"/png_palette_27x15.png "$T/img/b/"
SMALL=(--image-size 28 --train-count 32 --test-count 16)
mkdir -p "$T/src"; ln -s "$T/img" "$T/src/train"; ln -s "$T/img" "$T/src/test"   # a source directory: train/ and test/ ImageFolders
VOCAB="$REPO/data/clip/bpe_simple_vocab_16e6.txt.gz"

run info          "$SELORA" info --weights "$WEIGHTS" "${L[@]}"
run bench         "$SELORA" bench --weights "$WEIGHTS" --cases 28x2 --steps 1 --methods base,lora,selective,full,lora-last-k "${L[@]}"
run mpi-check     "$SELORA" mpi-check --max-count 4096
run convert       "$SELORA" convert --weights "$WEIGHTS" --names transformers4 --out "$T/w4.safetensors" "${L[@]}"
run pixels        "$SELORA" pixels --images "$T/img" --recipe clip --image-size 28 --out "$T/px.safetensors"
run embed         "$SELORA" embed --weights "$T/w4.safetensors" --images "$T/img" --image-size 28 --out "$T/emb.safetensors" "${L[@]}"
run train         "$SELORA" train --weights "$WEIGHTS" "${SMALL[@]}" --steps 2 --batch-size 4 --rank 2 --out "$T/run" "${L[@]}"
run bench-adapter "$SELORA" bench --weights "$WEIGHTS" --adapter "$T/run/adapter" --cases 28x2 --steps 1 \
                      --methods lora,selective,settled "${L[@]}"
run test          "$SELORA" test --weights "$WEIGHTS" "${SMALL[@]}" --adapter "$T/run/adapter" --head "$T/run/head.safetensors" "${L[@]}"
run merge         "$SELORA" merge --weights "$WEIGHTS" --adapter "$T/run/adapter" --out "$T/merged.safetensors" "${L[@]}"
run grad          "$SELORA" grad --weights "$WEIGHTS" --adapter "$FX/lora_grad_ref" --head "$FX/lora_grad_ref/head.safetensors" \
                      --batch "$FX/lora_grad_ref/batch.safetensors" --out "$T/grad.safetensors" "${L[@]}"
run probe         "$SELORA" probe --weights "$WEIGHTS" "${SMALL[@]}" --batch-size 8 --probe-steps 5 "${L[@]}"
run eval          "$SELORA" eval --weights "$WEIGHTS" "${SMALL[@]}" --steps 2 --batch-size 4 --rank 2 --source-test-per-class 2 \
                      --source-train-count 20 --source-test-count 10 --methods lora,selective,lora-last-k --last-k 2 --seeds 0,1 --out "$T/eval" "${L[@]}"
run eval-files    "$SELORA" eval --weights "$WEIGHTS" --image-size 28 --train-data "$T/img" --test-data "$T/img" --steps 2 --batch-size 4 \
                      --rank 2 --sources "folder=$T/src,csv=$REPO/data/mnist_5k.csv.gz" --source-train-count 4 --source-test-count 4 \
                      --methods selective --out "$T/evalfiles" "${L[@]}"
run clip-compose  "$SELORA" clip-compose --weights "$WEIGHTS" "${SMALL[@]}" --source-test-per-class 2 --out "$T/clip.safetensors" "${L[@]}"
run text-embed    "$SELORA" text-embed --clip "$T/clip.safetensors" --vocab "$VOCAB" --classes "a,b,c" --out "$T/te.safetensors" "${L[@]}"
run clip-eval     "$SELORA" clip-eval --clip "$T/clip.safetensors" --vocab "$VOCAB" "${SMALL[@]}" --steps 2 --batch-size 4 --rank 2 \
                      --source-test-per-class 2 --methods selective --out "$T/clipeval" "${L[@]}"

# Every listed subcommand was run.
listed=$("$SELORA" --help | sed -n '/^SUBCOMMANDS:/,/^$/p' | grep -E '^  [a-z][a-z-]+ ' | awk '{print $1}')
for c in $listed; do
    [[ " ${ran[*]} " == *" $c "* ]] || { fail=$((fail + 1)); echo "FAIL subcommand '$c' is listed by selora --help but not run here"; }
done
echo "subcommands: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
