#!/usr/bin/env bash
# Reproduces the shipped MiniLM adapter packs (tasks/packs/{sst2,mrpc,rte}) and the accuracy runs of docs/RESULTS.md:
# adapters (size 8, shipped-pack size budget) vs full fine-tuning of the same pretrained MiniLM backbone on the
# real GLUE dev sets. Two streams (adapters, full fine-tuning) run side by side, one torch thread each, so the
# whole thing fits a 2-core machine in about 40 minutes.
#   usage: tools/train_packs.sh [adapters|full|all]   (default all; logs in runs/logs/)
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT="${1:-all}"
RUNS=runs/minilm
mkdir -p runs/logs
COMMON=(--backbone minilm --batch-size 32 --seed 0 --threads 1 --no-progress)
ADAPTER=(--adapter-size 8 --lr 1e-3)
FULL=(--full-finetune --lr 3e-5)

# task, extra options (same for both designs)
run_task() {  # design_args... -- task out extra...
  local design="$1" task="$2" out="$3"; shift 3
  local args
  if [ "$design" = adapter ]; then args=("${ADAPTER[@]}"); else args=("${FULL[@]}"); fi
  echo "[$(date -u +%H:%M:%S)] edgemti train --task $task --out $out ${COMMON[*]} ${args[*]} $*"
  edgemti train --task "$task" --out "$out" "${COMMON[@]}" "${args[@]}" "$@" >"runs/logs/${design}_${task}.log" 2>&1
  tail -n 1 "runs/logs/${design}_${task}.log"
}

stream() {
  local design="$1" dest
  for spec in "sst2 --epochs 2 --max-train-examples 8000" "mrpc --epochs 3" "rte --epochs 3" "stsb --epochs 2"; do
    set -- $spec
    local task="$1"; shift
    if [ "$design" = adapter ] && [ "$task" != stsb ]; then dest="tasks/packs/$task"; else dest="$RUNS/$design/$task"; fi
    run_task "$design" "$task" "$dest" "$@"
  done
}

case "$WHAT" in
  adapters) stream adapter ;;
  full) stream full ;;
  all) stream adapter & stream full & wait ;;
  *) echo "usage: $0 [adapters|full|all]" >&2; exit 2 ;;
esac
