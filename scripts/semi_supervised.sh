#!/usr/bin/env bash
# Semi-supervised JEM training (README "Semi-supervised training"): for N labelled images per class
# (default 10 and 100), a JEM whose p(y|x) sees only those N·10 images while p(x) sees all 59 000
# training images, against a classifier trained on the same labelled images alone (--px-weight 0,
# same recipe, same iterations, same seed, so the same labelled subset). Both use the bundled JEM's
# recipe (WRN-10-2, 5 clamped SGLD steps, energy L2 0.1, Adam 1e-3, 300 warm-up iterations, no
# augmentation) for EPOCHS passes over the training images (default 1: 922 iterations of 64), then
# are evaluated on the full Fashion-MNIST test split. Every run resumes from its checkpoint, and a
# finished evaluation is kept, so the script can be stopped and re-run.
#   NS (default "10 100"), KINDS (default "labelled-only jem"), EPOCHS (default 1), THREADS (default 2), OUT (default runs/semi)
# Results: OUT/<run>/eval.json, copied with the run's log.jsonl to RESULTS/<run>.{json,log.jsonl}
# (default docs/results/semi_supervised), and a table on stdout; the README's table is copied from it.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product robust-eval >/dev/null
RE=.build/release/robust-eval
OUT=${OUT:-runs/semi}
NS=${NS:-10 100}
KINDS=${KINDS:-labelled-only jem}
EPOCHS=${EPOCHS:-1}
THREADS=${THREADS:-2}
RESULTS=${RESULTS:-docs/results/semi_supervised}
mkdir -p "$OUT" "$RESULTS"
recipe=(--data fashion-mnist --arch wrn-10-2 --lr 1e-3 --warmup-iters 300 --no-augment --sgld-steps 5
        --sgld-clamp --energy-l2 0.1 --seed 1)
run() {  # run NAME FLAGS...
    local name=$1; shift
    local dir="$OUT/$name"
    if [ ! -f "$dir/eval.json" ]; then
        if [ -f "$dir/checkpoint.safetensors" ]; then
            "$RE" train --resume "$dir" --threads "$THREADS" --log-every 50 --epochs "$EPOCHS"
        else
            "$RE" train --out "$dir" --threads "$THREADS" --log-every 50 --epochs "$EPOCHS" "${recipe[@]}" "$@"
        fi
        "$RE" eval --model "$dir/model.safetensors" --threads "$THREADS" --json "$dir/eval.json"   # written atomically
    fi
    cp "$dir/eval.json" "$RESULTS/$name.json"
    cp "$dir/log.jsonl" "$RESULTS/$name.log.jsonl"
}
for n in $NS; do
    for kind in $KINDS; do
        case $kind in
            labelled-only) run "labelled-only-n$n" --labels-per-class "$n" --px-weight 0 ;;
            jem) run "jem-n$n" --labels-per-class "$n" ;;
            *) echo "KINDS: unknown kind '$kind' (expected labelled-only, jem)" >&2; exit 2 ;;
        esac
    done
done
python3 - "$OUT" $NS <<'PY'
import json, os, sys
out, ns = sys.argv[1], sys.argv[2:]
print("| labelled per class | labelled only (p(y|x)) | JEM (p(y|x) on the labelled, p(x) on all) |")
print("|---:|---:|---:|")
for n in ns:
    acc = {}
    for k in ("labelled-only", "jem"):
        p = os.path.join(out, f"{k}-n{n}", "eval.json")
        acc[k] = f"{100 * json.load(open(p))['accuracy']:.2f} %" if os.path.exists(p) else "—"
    print(f"| {n} | {acc['labelled-only']} | {acc['jem']} |")
PY
