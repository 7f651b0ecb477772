#!/usr/bin/env bash
# The early-exit study of docs/EARLY_EXIT.md, from the shipped MiniLM packs (tasks/packs/{sst2,mrpc}):
#   1. stage 2: off-ramps on each pack (only they train; SST-2 on 6000 train sentences, MRPC on 3168), a seeded
#      part of each train split held out (1000 / 500 sentences);
#   2. calibrate-exit: the entropy threshold for <= 1 point accuracy drop on that held-out part + the predictor;
#   3. compile both packs into one MiniLM build, and a synthetic albert-base build with (untrained) off-ramps for
#      the shape study;
#   4. edgemti report --early-exit: every SST-2 and MRPC dev sentence served full depth and with early exit,
#      priced without/with DVFS at three latency targets; results/early_exit/{early_exit.json,early_exit.png}.
# CPU only, one torch/onnxruntime thread; about an hour on a quiet 2-core machine.
#   usage: tools/early_exit_study.sh [DATA_DIR]   (default ../shared/data/glue)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data/glue}"
OUT=build/exit
mkdir -p "$OUT" results/early_exit
for spec in "sst2 6000 1000" "mrpc 3168 500"; do
  read -r task n hold <<<"$spec"
  [ -f "$OUT/$task/pack.json" ] || edgemti train --off-ramps --from-pack "tasks/packs/$task" --out "$OUT/$task" \
      --off-ramp-epochs 4 --off-ramp-examples "$n" --holdout-examples "$hold" --data-dir "$DATA" --threads 1 --no-progress
  edgemti calibrate-exit --pack "$OUT/$task" --max-accuracy-drop 0.01 --data-dir "$DATA"
done
[ -d "$OUT/minilm" ] || edgemti compile --backbone minilm --pack "$OUT/sst2" --pack "$OUT/mrpc" --out "$OUT/minilm" --no-capacity-check
[ -d "$OUT/albert" ] || python tools/albert_offramp_build.py "$OUT/albert"
edgemti report --early-exit "$OUT/minilm" --albert-build "$OUT/albert" --data-dir "$DATA" --out results/early_exit
cp results/early_exit/early_exit.png docs/img/early_exit.png
