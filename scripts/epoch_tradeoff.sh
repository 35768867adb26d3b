#!/usr/bin/env bash
# Clean accuracy (full Fashion-MNIST test split) and PGD-L∞ 8/255 robust accuracy (10 steps, first
# 1 000 test images) of the models a training run wrote at its epoch ends: how accuracy and
# robustness move as training goes on. RUN is a run directory trained with `--keep-epoch-models`
# (it holds model-epochN.safetensors).
# With DEF_N=N, also the clean accuracy of the SGLD defense at its defaults (5 chains × 10 steps, one
# evaluation run) against the bare model on the first N test images (OUT/eN_defended_clean_nN.json).
# Writes OUT/eN_eval.json, OUT/eN_pgd.json and OUT/epochs.md; finished epochs are skipped.
# Usage: RUN=DIR [OUT=docs/results/targets/jem-epochs] [DEF_N=N] [THREADS=2] bash scripts/epoch_tradeoff.sh
set -euo pipefail
cd "$(dirname "$0")/.."
S=${RUN:?RUN=DIR holding model-epochN.safetensors (train --keep-epoch-models)}; OUT=${OUT:-docs/results/targets/jem-epochs}; T=${THREADS:-2}
B=${BIN:-.build/release/robust-eval}
[ -n "${BIN:-}" ] || swift build -c release --product robust-eval >/dev/null
mkdir -p "$OUT"
for m in $(ls "$S" | grep -E '^model-epoch[0-9]+\.safetensors$' | sort -V); do
    e=${m#model-epoch}; e=e${e%.safetensors}
    [ -f "$OUT/${e}_eval.json" ] || "$B" eval --model "$S/$m" --threads "$T" --json "$OUT/${e}_eval.json" >/dev/null
    [ -f "$OUT/${e}_pgd.json" ] || "$B" pgd --model "$S/$m" --eps 8/255 --limit 1000 --threads "$T" --json "$OUT/${e}_pgd.json" >/dev/null
    if [ -n "${DEF_N:-}" ] && [ ! -f "$OUT/${e}_defended_clean_n$DEF_N.json" ]; then
        "$B" curve --series "$S/$m:none" --series "$S/$m:10" --eps 0 --eval-runs 1 --limit "$DEF_N" --threads "$T" \
            --out "$OUT/${e}_defended_clean_n$DEF_N" >/dev/null
        rm -f "$OUT/${e}_defended_clean_n$DEF_N".{csv,svg,png}
    fi
done
python3 - "$OUT" <<'PY'
import glob, json, os, re, sys
d = sys.argv[1]
rows = []
for p in glob.glob(os.path.join(d, "e*_eval.json")):
    e = int(re.search(r"e(\d+)_eval", p).group(1))
    q = os.path.join(d, f"e{e}_pgd.json")
    if os.path.exists(q):
        rows.append((e, json.load(open(p)), json.load(open(q))))
lines = ["| epoch | clean (full test split) | PGD-L∞ 8/255 robust (first 1 000) | clean on those 1 000 | defense at its defaults: clean, bare → defended |",
         "|---:|---:|---:|---:|---|"]
for e, ev, pg in sorted(rows, key=lambda r: r[0]):
    cell = "–"
    for q in sorted(glob.glob(os.path.join(d, f"e{e}_defended_clean_n*.json"))):
        cv = json.load(open(q))
        bare = next(s for s in cv["series"] if s["defense"] == "none")["points"][0]
        dfd = next(s for s in cv["series"] if s["defense"] != "none")["points"][0]
        cell = f"{100 * bare['accuracy']:.1f} → {100 * dfd['accuracy']:.1f} % (n = {bare['n']})"
    lines.append(f"| {e} | {100 * ev['accuracy']:.2f} % | {100 * pg['robust_accuracy']:.2f} % | {100 * pg['clean_accuracy']:.2f} % | {cell} |")
text = "\n".join(lines) + "\n"
open(os.path.join(d, "epochs.md.tmp"), "w").write(text)
os.replace(os.path.join(d, "epochs.md.tmp"), os.path.join(d, "epochs.md"))
print(text, end="")
PY
