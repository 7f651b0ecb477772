#!/usr/bin/env bash
# The paper's order of work on edgemti (docs/RESULTS.md, "Training on the compressed backbone"):
#   1. fix the compressed backbone once (sparsities + value format): the RRAM image is write-once;
#   2. train each task's pack on that backbone as the chip serves it (train --sparsity-*/--quant: the compiler's own
#      pruning mask and Q(i,f) codes, the pack quantized at the pack format in the forward pass);
#   3. compile the packs at the same settings (compile refuses a pack trained for another backbone image);
#   4. score the build as served (eval --build); a later task: train --on-build BUILD, then compile --add-pack.
# The paper prunes the backbone *with retraining* on one task first; edgemti's backbone is pruned one-shot by
# magnitude (the pretrained weights, never retrained): step 1 is that pruning.
#   usage: tools/compressed_recipe.sh OUT SPARSITY_EMBEDDING SPARSITY_TRANSFORMER QUANT TASK...
#   e.g.   tools/compressed_recipe.sh runs/recipe-s30 0.3 0.3 q3.13 sst2 mrpc
# Training options (default: the shipped packs' budget) come from $TRAIN_OPTS; logs go to OUT/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 5 ] || { sed -n '2,13p' "$0"; exit 2; }
OUT="$1"; SE="$2"; ST="$3"; Q="$4"; shift 4
TRAIN_OPTS=${TRAIN_OPTS:-"--backbone minilm --adapter-size 8 --epochs 2 --max-train-examples 8000 --threads 1 --seed 0"}
mkdir -p "$OUT/logs" "$OUT/packs"
PACKS=()
for task in "$@"; do
  echo "[$(date -u +%H:%M:%S)] edgemti train --task $task $TRAIN_OPTS --sparsity-embedding $SE --sparsity-transformer $ST --quant $Q --out $OUT/packs/$task"
  # shellcheck disable=SC2086
  nice edgemti train --task "$task" $TRAIN_OPTS --sparsity-embedding "$SE" --sparsity-transformer "$ST" --quant "$Q" \
      --no-progress --out "$OUT/packs/$task" >"$OUT/logs/train_$task.log" 2>&1
  tail -n 2 "$OUT/logs/train_$task.log"
  PACKS+=(--pack "$OUT/packs/$task")
done
echo "[$(date -u +%H:%M:%S)] edgemti compile --backbone minilm ${PACKS[*]} --sparsity-embedding $SE --sparsity-transformer $ST --quant $Q --out $OUT/build"
nice edgemti compile --backbone minilm "${PACKS[@]}" --sparsity-embedding "$SE" --sparsity-transformer "$ST" --quant "$Q" \
    --no-capacity-check --force --out "$OUT/build" >"$OUT/logs/compile.log" 2>&1
echo "[$(date -u +%H:%M:%S)] edgemti eval --build $OUT/build"
nice edgemti eval --build "$OUT/build" 2>/dev/null | tee "$OUT/eval.txt"
