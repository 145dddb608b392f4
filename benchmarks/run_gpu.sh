#!/usr/bin/env bash
# The benchmarks on one CUDA GPU in under 8 minutes; every table and figure lands in one folder:
#   bash benchmarks/run_gpu.sh [OUT_DIR]          (from anywhere; default OUT_DIR=benchmarks/gpu)
# 1. `bench speed`: default network (64³) and SwinUNETR-48 (96³), random weights: step time and peak memory of
#    ARENA vs LoRA vs full fine-tuning, merged/unmerged latency vs the base network, sliding-window volumes/min.
# 2. `bench fewshot`, the full preset's methods on a shortened protocol (k 1 and 5, two seeds, 15 epochs, 3 mm
#    phantoms, 3 test volumes), stopped after $FEWSHOT_BUDGET s. Needs the foundation model: MODEL=default (the
#    embedded network; its absence skips this part) or a model folder / registry name.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/gpu}
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
MODEL=${MODEL:-default}
FEWSHOT_BUDGET=${FEWSHOT_BUDGET:-240}
mkdir -p "$OUT/figures"
start=$(date +%s)

"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'run_gpu.sh: no CUDA device')" || exit 1
"$PY" -c "import peft" 2>/dev/null || "$PY" -m pip install -q -r requirements-bench.txt \
  || echo "run_gpu.sh: peft unavailable: the peft peers are skipped"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

echo "== speed ($(date +%T))"
timeout 200 "$PY" -m arena_seg.cli bench speed --out "$OUT/speed" --device cuda --nets default swinunetr48 \
  || echo "run_gpu.sh: speed benchmark failed or timed out (partial results in $OUT/speed/speed.json)"

echo "== fewshot ($(date +%T))"
if [ "$MODEL" = default ] && ! "$PY" -c "
import sys; from arena_seg.models.registry import default_model_dir
sys.exit(0 if (default_model_dir() / 'network.json').is_file() else 1)"; then
  echo "run_gpu.sh: the embedded default model is missing; set MODEL=<model folder> to run the few-shot part"
else
  timeout 330 "$PY" -m arena_seg.cli bench fewshot --out "$OUT/fewshot" --force --device cuda --model "$MODEL" \
    --shots 1 5 --seeds 0 1 --epochs 15 --pool 5 --test 3 --budget "$FEWSHOT_BUDGET" \
    || echo "run_gpu.sh: few-shot benchmark failed or timed out (partial results in $OUT/fewshot/results.json)"
fi

for f in "$OUT"/speed/speed.png "$OUT"/speed/speed.md "$OUT"/fewshot/*.png "$OUT"/fewshot/results.md; do
  [ -f "$f" ] && cp "$f" "$OUT/figures/$(basename "$(dirname "$f")")-$(basename "$f")"
done
echo "== done in $(( $(date +%s) - start )) s: $OUT/figures"
ls -1 "$OUT/figures"
