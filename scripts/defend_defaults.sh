#!/usr/bin/env bash
# What `defend`'s default protocol costs and what its cheaper attack view gives up, on the bundled JEM:
#  1. peak memory of the full-chain gradient at K = 10 and K = 100 (16 images, one APGD step through
#     all 5 chains: the trajectory is kept, activations are recomputed per step);
#  2. the defaults (--sgld-steps 10) on the first N images (default 100), timed: scale to 1000 images;
#     beside them the protocol before 2026-11-29 (every candidate point judged by all 5 evaluation
#     runs, --judge-runs 5; Square with 100 queries) on the same images;
#  3. the attack views 1 or 5 chains × 10 or 20 APGD steps on the first M images (default 32),
#     same images and seed (1 chain × 10 steps are the defaults).
# Writes docs/results/defend_defaults/MODEL/*.json and a summary on stdout.
# Usage: [N=100] [M=32] [MODEL=jem] [ROBUST_EVAL=path] bash scripts/defend_defaults.sh
# (ROBUST_EVAL: a copy of the release binary, so the package can be rebuilt while this runs.)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100}; M=${M:-32}; MODEL=${MODEL:-jem}
B=${ROBUST_EVAL:-.build/release/robust-eval}
[ -n "${ROBUST_EVAL:-}" ] || swift build -c release --product robust-eval >/dev/null
OUT=docs/results/defend_defaults/$MODEL
mkdir -p "$OUT"
TIME=/usr/bin/time
for K in 10 100; do
    $TIME -f "%M" -o "$OUT/rss_k$K.txt" $B defend --model "$MODEL" --limit 16 --batch-size 16 --sgld-steps "$K" --attacks apgd-ce \
        --steps 1 --attack-chains 5 --eval-runs 1 --no-checks --threads 2 --json "$OUT/memory_k$K.json" >/dev/null
    echo "full-chain gradient, K = $K, 16 images × 5 chains: peak RSS $(( $(cat "$OUT/rss_k$K.txt") / 1024 )) MB"
done
$B defend --model "$MODEL" --limit "$N" --threads 2 --json "$OUT/defaults_n$N.json" | tail -12
$B defend --model "$MODEL" --limit "$N" --threads 2 --judge-runs 5 --n-queries 100 --json "$OUT/previous_protocol_n$N.json" >/dev/null
for view in "1 10" "1 20" "5 10" "5 20"; do
    set -- $view
    $B defend --model "$MODEL" --limit "$M" --threads 2 --attack-chains "$1" --steps "$2" --no-checks \
        --json "$OUT/chains$1_steps$2_n$M.json" >/dev/null
done
python3 - "$OUT" "$N" "$M" <<'PY'
import json, sys
out, n, m = sys.argv[1], sys.argv[2], sys.argv[3]
d = json.load(open(f"{out}/defaults_n{n}.json"))
print(f"defaults on {d['n']} images: robust {100 * d['robust_accuracy']:.2f} %, {d['seconds']:.0f} s "
      f"(→ {d['seconds'] * 1000 / d['n'] / 60:.0f} min for 1000 images)")
for a in d["per_attack"]:
    print(f"  {a['name']:10s} robust after {100 * a['robust_accuracy']:6.2f} %  {a['seconds']:7.1f} s")
p = json.load(open(f"{out}/previous_protocol_n{n}.json"))
print(f"previous protocol (--judge-runs 5 --n-queries 100) on the same images: robust {100 * p['robust_accuracy']:.2f} %, {p['seconds']:.0f} s")
for c, s in [(1, 10), (1, 20), (5, 10), (5, 20)]:
    r = json.load(open(f"{out}/chains{c}_steps{s}_n{m}.json"))
    print(f"view {c} chain(s), {s} steps, {r['n']} images: robust {100 * r['robust_accuracy']:.2f} % ({r['seconds']:.0f} s)")
PY
