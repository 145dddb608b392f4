#!/usr/bin/env bash
# Issue 3's measured run: the embedded default model, 5 phantom shots of a novel organ (gallbladder; ORGAN=pancreas
# for the other one), ARENA vs fixed-rank LoRA at the same initial rank and default targets, Dice on 10 held-out
# phantoms. 40 epochs (EPOCHS=...): 5 shots give 200 steps, as many as 80 epochs of 2-3 shots. From the
# repository root:
#   [ORGAN=gallbladder] [EPOCHS=40] bash benchmarks/fewshot_cli.sh [OUT_DIR]
# Figures land in OUT_DIR/{arena,lora}/manifest.json and OUT_DIR/{arena,lora}-dice.json.
set -euo pipefail
OUT=${1:-runs/fewshot-cli}
ORGAN=${ORGAN:-gallbladder}
EPOCHS=${EPOCHS:-40}
BIN=.venv/bin/arena-seg
DATA=$OUT/data
[ -f "$DATA/labels.json" ] || $BIN phantoms --out "$DATA" --n 15 --seed 2000
mapfile -t IMAGES < <(ls "$DATA"/images/*.nii.gz | sort)
mapfile -t LABELS < <(ls "$DATA"/labels/*.nii.gz | sort)
for method in arena lora; do
  ( OMP_NUM_THREADS=1 $BIN finetune --images "${IMAGES[@]:0:5}" --labels "${LABELS[@]:0:5}" --label "$ORGAN" \
      --method "$method" --rank 16 --num-samples 2 --epochs "$EPOCHS" --out "$OUT/$method" --force --device cpu \
    && OMP_NUM_THREADS=1 $BIN evaluate --model "$OUT/$method" --images "${IMAGES[@]:5:10}" \
      --labels "${LABELS[@]:5:10}" --json "$OUT/$method-dice.json" ) &
done
wait
for method in arena lora; do
  .venv/bin/python - "$OUT" "$method" <<'PY'
import json, sys
out, method = sys.argv[1:]
m = json.load(open(f"{out}/{method}/manifest.json"))
d = json.load(open(f"{out}/{method}-dice.json"))["dice"]
ranks = m["effective_ranks"]
print(f"{method}: Dice {d} | ranks {ranks} | trainable {m['trainable_parameters']} | "
      f"{m['seconds']:.0f} s, {m['epochs_run']} epochs, peak RSS {m['peak_memory_mb']:.0f} MB")
PY
done
