#!/usr/bin/env bash
# The main job on the bundled model (models/stories260K), from a fresh machine:
#   install dependencies, build, generate, measure perplexity, calibrate, quantize with every method,
#   compare perplexity and bits per weight, and generate with the quantized model.
# Usage: scripts/demo.sh [MODEL_DIR]   (outputs under out/demo/)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
SQ=build/squeeze
M=${1:-models/stories260K}
OUT=out/demo
mkdir -p "$OUT"
CALIB=$M/calib.txt
EVAL=$M/eval.txt
[ -f "$CALIB" ] || { echo "demo: $CALIB not found" >&2; exit 1; }

echo "== generate (greedy, from BOS)"
$SQ generate -m "$M" --temperature 0 -n 80
echo "== generate (sampled)"
$SQ generate -m "$M" -p "Once upon a time" -n 80 --temperature 0.8 --seed 1

echo "== calibrate: Fisher sensitivities + activation statistics (32 x 128 tokens of $CALIB)"
$SQ calibrate -m "$M" --data "$CALIB" --samples 32 --seqlen 128 --sampling sequential -o "$OUT/calib.safetensors" --force

echo "== quantize"
q() { local name=$1; shift; $SQ quantize -m "$M" -o "$OUT/$name" --force --sensitivity "$OUT/calib.safetensors" -q "$@" \
        --calib "$CALIB" --samples 32 --seqlen 128 --sampling sequential --json > "$OUT/$name.json"; }
q rtn-w3        --method rtn --bits 3
q squeezellm-w3 --method squeezellm --bits 3
q squeezellm-w3-s045 --method squeezellm --bits 3 --sparsity 0.45
q rtn-w4        --method rtn --bits 4
q squeezellm-w4 --method squeezellm --bits 4
q rtn-w4-g128   --method rtn --bits 4 --group-size 128
q smoothquant+-w4-g128 --method smoothquant+ --bits 4 --group-size 128 --alpha auto

echo "== compare: perplexity on $EVAL (ctx 128)"
printf "| %-22s | %14s | %9s |\n" model "bits/weight" ppl
printf "|%s|%s|%s|\n" "------------------------" "----------------" "-----------"
for d in "$M" "$OUT"/rtn-w3 "$OUT"/squeezellm-w3 "$OUT"/squeezellm-w3-s045 "$OUT"/rtn-w4 "$OUT"/squeezellm-w4 \
         "$OUT"/rtn-w4-g128 "$OUT"/smoothquant+-w4-g128; do
  ppl=$($SQ eval -m "$d" --data "$EVAL" --ctx 128 --json -q | sed -E 's/.*"ppl":([0-9.]+).*/\1/')
  bpw=$($SQ inspect -m "$d" --json | sed -nE 's/.*"linear_bits_per_weight": ([0-9.]+).*/\1/p')
  printf "| %-22s | %14.3f | %9.3f |\n" "$(basename "$d")" "$bpw" "$ppl"
done

echo "== generate with SqueezeLLM 3-bit"
$SQ generate -m "$OUT/squeezellm-w3" -p "Once upon a time" -n 80 --temperature 0
