#!/usr/bin/env bash
# Issue 15's "Done when" on SST-2: does retraining a pack on the compressed backbone recover what compressing a
# float-trained pack lost? (docs/RESULTS.md, "Training on the compressed backbone")
#   float    : the shipped float-trained pack tasks/packs/sst2 (MiniLM, adapters 8, seeded 8000-example train
#              subset, 2 epochs), scored in PyTorch on the full SST-2 dev set (eval --pack);
#   compiled : that pack compiled at SE/ST sparsity and QUANT, scored as served (eval --build, full dev set);
#   retrained: a pack trained with the same options on that build (train --on-build), compiled at the same settings
#              (compile checks the backbone image), scored as served (eval --build, full dev set).
# recovered = (retrained - compiled) / (float - compiled).
#   usage: tools/retrain_recovery.sh SE ST [QUANT]     e.g. tools/retrain_recovery.sh 0.3 0.3 q3.13
set -euo pipefail
cd "$(dirname "$0")/.."
SE="${1:?sparsity embedding}"; ST="${2:?sparsity transformer}"; Q="${3:-q3.13}"
R="results/recovery/s${SE}-${ST}-${Q}"
mkdir -p "$R"
OPTS=(--backbone minilm --adapter-size 8 --epochs 2 --max-train-examples 8000 --threads 1 --seed 0)
run() { echo "[$(date -u +%H:%M:%S)] $*" >&2; nice "$@"; }
[ -f results/recovery/float.json ] || run edgemti eval --pack tasks/packs/sst2 --json >results/recovery/float.json
run edgemti compile --backbone minilm --pack tasks/packs/sst2 --sparsity-embedding "$SE" --sparsity-transformer "$ST" \
    --quant "$Q" --no-capacity-check --force --out "$R/build-float" >"$R/compile-float.log" 2>&1
run edgemti eval --build "$R/build-float" --json >"$R/eval-float.json"
run edgemti train --task sst2 "${OPTS[@]}" --on-build "$R/build-float" --no-progress --out "$R/pack-retrained" \
    >"$R/train.log" 2>&1
run edgemti compile --backbone minilm --pack "$R/pack-retrained" --sparsity-embedding "$SE" --sparsity-transformer "$ST" \
    --quant "$Q" --no-capacity-check --force --out "$R/build-retrained" >"$R/compile-retrained.log" 2>&1
run edgemti eval --build "$R/build-retrained" --json >"$R/eval-retrained.json"
python - "$R" <<'PY'
import json, sys
r = sys.argv[1]
f = 100 * json.load(open("results/recovery/float.json"))["metrics"]["accuracy"]
c = json.load(open(f"{r}/eval-float.json"))["tasks"][0]["headline"]
t = json.load(open(f"{r}/eval-retrained.json"))["tasks"][0]["headline"]
rec = (t - c) / (f - c) if f != c else float("nan")
print(f"{r}: float {f:.2f}  compiled {c:.2f}  retrained {t:.2f}  lost {f - c:.2f}  recovered {100 * rec:.0f} %")
PY
