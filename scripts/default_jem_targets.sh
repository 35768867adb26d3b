#!/usr/bin/env bash
# The three figures that decide whether a JEM can be the default (README "Bundled models"):
#  1. clean accuracy on the full Fashion-MNIST test split (target ≥ 90 %);
#  2. `autoattack --version standard`, L∞ 8/255, on the first N_AA test images (target ≥ 60 %);
#  3. what the SGLD defense at its defaults (5 chains × 10 steps) costs in clean accuracy, one
#     evaluation run on the first N_DEF test images against the bare model on the same images
#     (target ≤ 2 points).
# Results go to OUT/MODEL/ (default docs/results/targets); the AutoAttack run keeps a --state file,
# so re-running the script continues where it stopped, and finished steps are skipped. To carry an
# unfinished run to another machine: gzip -k the .state.json and commit the .gz; this script resumes from it.
# Usage: [MODEL=jem] [N_AA=1000] [N_DEF=10000] [THREADS=2] [OUT=docs/results/targets] bash scripts/default_jem_targets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-jem}; N_AA=${N_AA:-1000}; N_DEF=${N_DEF:-10000}; T=${THREADS:-2}
D=${OUT:-docs/results/targets}/$MODEL
B=${BIN:-.build/release/robust-eval}
[ -n "${BIN:-}" ] || swift build -c release --product robust-eval >/dev/null
mkdir -p "$D"
[ -f "$D/eval.json" ] || "$B" eval --model "$MODEL" --threads "$T" --json "$D/eval.json"
# The short figures first, the long AutoAttack run last.
[ -f "$D/defended_clean_n$N_DEF.json" ] || "$B" curve --series "$MODEL:none" --series "$MODEL:10" --eps 0 --eval-runs 1 \
    --limit "$N_DEF" --threads "$T" --out "$D/defended_clean_n$N_DEF" >/dev/null && rm -f "$D/defended_clean_n$N_DEF".{csv,svg,png}
# A run that a session had to stop may have left its state compressed in the repository (state.json.gz):
# continue from it.
ST="$D/autoattack_linf_n$N_AA.state.json"
if [ ! -f "$D/autoattack_linf_n$N_AA.json" ] && [ ! -f "$ST" ] && [ -f "$ST.gz" ]; then gunzip -c "$ST.gz" > "$ST.tmp" && mv "$ST.tmp" "$ST"; fi
[ -f "$D/autoattack_linf_n$N_AA.json" ] || "$B" autoattack --model "$MODEL" --version standard --norm linf --eps 8/255 \
    --limit "$N_AA" --threads "$T" --state "$D/autoattack_linf_n$N_AA.state.json" --json "$D/autoattack_linf_n$N_AA.json"
rm -f "$ST.gz"  # finished: the carried state is no longer needed
python3 - "$D" "$MODEL" "$N_AA" "$N_DEF" <<'PY'
import json, sys
d, model, n_aa, n_def = sys.argv[1:5]
ev = json.load(open(f"{d}/eval.json"))
aa = json.load(open(f"{d}/autoattack_linf_n{n_aa}.json"))
cv = json.load(open(f"{d}/defended_clean_n{n_def}.json"))
bare = next(s for s in cv["series"] if s["defense"] == "none")["points"][0]
dfd = next(s for s in cv["series"] if s["defense"] != "none")["points"][0]
cost = 100 * (bare["accuracy"] - dfd["accuracy"])
rows = [
    ("clean accuracy, full test split", f"{100 * ev['accuracy']:.2f} %", ev["n"], "≥ 90 %", ev["accuracy"] >= 0.90),
    ("AutoAttack standard, L∞ 8/255", f"{100 * aa['robust_accuracy']:.2f} %", aa["n"], "≥ 60 %", aa["robust_accuracy"] >= 0.60),
    ("clean cost of the defense (5 chains × 10 steps)", f"{cost:.2f} points ({100 * bare['accuracy']:.2f} → {100 * dfd['accuracy']:.2f} %)",
     bare["n"], "≤ 2 points", cost <= 2),
]
print(f"| {model} | figure | n | target | met |")
print("|---|---:|---:|---|---|")
for name, v, n, t, ok in rows:
    print(f"| {name} | {v} | {n} | {t} | {'yes' if ok else 'no'} |")
summary = {"model": model, "clean_accuracy": ev["accuracy"], "autoattack_accuracy": aa["robust_accuracy"], "autoattack_n": aa["n"],
           "autoattack_seconds": aa["seconds"], "defended_clean_accuracy": dfd["accuracy"], "bare_clean_accuracy_same_images": bare["accuracy"],
           "defense_clean_cost_points": cost, "defense_n": bare["n"], "all_met": all(r[4] for r in rows)}
tmp = f"{d}/summary.json.tmp"
json.dump(summary, open(tmp, "w"), indent=2)
import os; os.replace(tmp, f"{d}/summary.json")
PY
