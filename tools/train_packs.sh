#!/usr/bin/env bash
# Reproduces the shipped MiniLM adapter packs (tasks/packs/{sst2,mrpc} by `all`, tasks/packs/rte by `second`) and
# the accuracy runs of docs/RESULTS.md:
# adapters (size 8, shipped-pack size budget) vs full fine-tuning of the same pretrained MiniLM backbone on the
# real GLUE dev sets. Two streams (adapters, full fine-tuning) run side by side, one torch thread each, so the
# whole thing fits a shared 2-core machine in about an hour (CPU budget: SST-2 subsampled to 8000 examples,
# STS-B to 3000, 2 epochs each).
#   usage: tools/train_packs.sh [adapters|full|all|second] [TASK...]   (default: all sst2 mrpc stsb rte)
# `second` runs the two dev-selected settings of docs/RESULTS.md (RTE adapters lr 2e-3 x 3 epochs -> the shipped
# tasks/packs/rte, MRPC full fine-tuning lr 1e-4 x 3 epochs -> runs/minilm/full/). Logs go to runs/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT="${1:-all}"
shift || true
TASKS=("$@")
[ ${#TASKS[@]} -gt 0 ] || TASKS=(sst2 mrpc stsb rte)
RUNS=runs/minilm
mkdir -p runs/logs
COMMON=(--backbone minilm --batch-size 32 --seed 0 --threads 1 --no-progress)
ADAPTER=(--adapter-size 8 --lr 1e-3)
FULL=(--full-finetune --lr 3e-5)

run_task() {  # design task out extra-options...
  local design="$1" task="$2" out="$3"; shift 3
  local args
  if [ "$design" = adapter ]; then args=("${ADAPTER[@]}"); else args=("${FULL[@]}"); fi
  echo "[$(date -u +%H:%M:%S)] edgemti train --task $task --out $out ${COMMON[*]} ${args[*]} $*"
  edgemti train --task "$task" --out "$out" "${COMMON[@]}" "${args[@]}" "$@" >"runs/logs/${design}_$(basename "$out").log" 2>&1
  tail -n 1 "runs/logs/${design}_$(basename "$out").log"
}

declare -A EXTRA=(
  [sst2]="--epochs 2 --max-train-examples 8000"
  [mrpc]="--epochs 2"
  [stsb]="--epochs 2 --max-train-examples 3000"
  [rte]="--epochs 2"
)

stream() {
  local design="$1" dest task
  for task in "${TASKS[@]}"; do
    if [ "$design" = adapter ] && { [ "$task" = sst2 ] || [ "$task" = mrpc ]; }; then dest="tasks/packs/$task"; else dest="$RUNS/$design/$task"; fi
    # shellcheck disable=SC2086
    run_task "$design" "$task" "$dest" ${EXTRA[$task]}
  done
}

second() {
  run_task adapter rte tasks/packs/rte --epochs 3 --lr 2e-3 &   # the shipped RTE pack
  run_task full mrpc "$RUNS/full/mrpc-e3-lr1e-4" --epochs 3 --lr 1e-4 &
  wait
}

case "$WHAT" in
  second) second ;;
  adapters) stream adapter ;;
  full) stream full ;;
  all) stream adapter & stream full & wait ;;
  *) echo "usage: $0 [adapters|full|all|second] [TASK...]" >&2; exit 2 ;;
esac
