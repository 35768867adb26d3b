#!/usr/bin/env bash
# FID and Inception-style score of each bundled model's SGLD samples (README "Sample quality"):
# unconditional from U(-1, 1) noise, class-conditional from noise, and class-conditional from
# JEM++'s per-class Gaussians, for each model of MODELS (default: jem, jem-k5, jem-k10 and the baseline,
# the control), all measured in
# the baseline's feature space against the Fashion-MNIST test split. Each sample set and report is
# kept in OUT (default docs/results/sample_quality); a re-run skips what exists, so it can be
# stopped and continued. Every model samples with the same clamped sampler (the JEMs' training
# sampler; unclamped, the baseline's chains leave [0, 1]).
#   MODELS, COUNT (default 500 samples per set), STEPS (default 200), THREADS (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BIN:-.build/release/robust-eval}
OUT=${OUT:-docs/results/sample_quality}
COUNT=${COUNT:-500}
STEPS=${STEPS:-200}
THREADS=${THREADS:-2}
MODELS=${MODELS:-jem jem-k5 jem-k10 baseline}
mkdir -p "$OUT" "$OUT/samples"
per=$((COUNT / 10))
# The floor at this sample count: COUNT real training images against the test split.
if [ ! -f "$OUT/real_train.json" ]; then
    python3 - "$COUNT" "$OUT/samples/real_train.npy" <<'PY'
import gzip, subprocess, sys
n, out = int(sys.argv[1]), sys.argv[2]
path = next(l for l in subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True, text=True).stdout.split()
            if l.endswith("train-images-idx3-ubyte.gz"))
raw = gzip.open(path).read()[16:16 + n * 784]
header = "{'descr': '|u1', 'fortran_order': False, 'shape': (%d, 1, 28, 28), }" % n
header += " " * (63 - (10 + len(header)) % 64) + "\n"
open(out, "wb").write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + raw)
PY
    "$B" fid --images "$OUT/samples/real_train.npy" --threads "$THREADS" --json "$OUT/real_train.json"
fi
# The ceiling at this sample count: COUNT images of uniform noise.
[ -f "$OUT/noise.json" ] || "$B" fid --images "noise:$COUNT" --seed 1 --threads "$THREADS" --json "$OUT/noise.json"
for model in $MODELS; do
    for mode in uncond cond gaussian; do
        s="$OUT/samples/${model}_${mode}.npy"
        j="$OUT/${model}_${mode}.json"
        [ -f "$j" ] && continue
        case $mode in
            uncond) args=(--count "$COUNT") ;;
            cond) args=(--per-class --count "$per") ;;
            gaussian) args=(--per-class --count "$per" --init gaussian) ;;
        esac
        t0=$(date +%s)
        "$B" sample --model "$model" "${args[@]}" --clamp --steps "$STEPS" --threads "$THREADS" --seed 1 --out "$s"
        "$B" fid --images "$s" --threads "$THREADS" --json "$j"
        echo "$model $mode: $COUNT samples, $STEPS steps, $(( $(date +%s) - t0 )) s"
    done
done
python3 - "$OUT" $MODELS <<'PY'
import json, os, sys
out = sys.argv[1]
print(f"{'model':10s} {'start':28s} {'FID':>8s} {'IS':>6s}")
r = json.load(open(os.path.join(out, "real_train.json")))
print(f"{'real':10s} {'training images':28s} {r['fid']:8.1f} {r['inception_score']:6.3f}")
r = json.load(open(os.path.join(out, "noise.json")))
print(f"{'noise':10s} {'uniform noise':28s} {r['fid']:8.1f} {r['inception_score']:6.3f}")
for m in sys.argv[2:]:
    for mode, name in (("uncond", "noise, unconditional"), ("cond", "noise, class-conditional"), ("gaussian", "class Gaussians (JEM++)")):
        p = os.path.join(out, f"{m}_{mode}.json")
        if os.path.exists(p):
            r = json.load(open(p))
            print(f"{m:10s} {name:28s} {r.get('fid', float('nan')):8.1f} {r.get('inception_score', float('nan')):6.3f}")
PY
