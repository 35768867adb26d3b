#!/usr/bin/env bash
# The AutoAttack peer comparison on the bundled models (first 500 test images, 2 threads), one
# configuration after another; a configuration whose JSON exists is skipped, so re-running resumes.
# Results: docs/results/autoattack_compare_<model>_<norm>.json. Needs scripts/setup_torch_venv.sh
# and a release build. Both tools report wall-clock seconds per attack: a run that was paused (SIGSTOP)
# or shared the cores with other work keeps valid robust accuracies but not valid speed ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500}
for cfg in ${CONFIGS:-baseline:linf jem:linf jem-k10:linf baseline:l2 jem:l2 jem-k10:l2}; do
    m=${cfg%%:*}; norm=${cfg##*:}
    file=$(${ROBUST_EVAL:-.build/release/robust-eval} info --model "$m" | sed -n 's/^file: *//p')
    out=docs/results/autoattack_compare_${m}_$norm.json
    [ -f "$out" ] && { echo "skip $out"; continue; }
    echo "== $m $norm ($(date +%T))"
    venv/bin/python scripts/compare_autoattack.py --model "$file" --n "$N" --norm "$norm" --json "$out"
done
