#!/usr/bin/env bash
# Measures the bundled models and writes every artefact the README reports into docs/results/:
# clean accuracy, PGD at the standard settings, the defense at its defaults, the paper's robustness
# comparison (L∞ and L2 curves for baseline under PGD, JEM-0, JEM-1, JEM-10 under defend's protocol), calibration,
# OOD detection and sample grids. Each step's command and wall time go to docs/results/commands.log.
# Usage: [MODELS="jem baseline"] [JEM=jem] [N_CURVE=100] [EOT=1] [THREADS=2] bash scripts/report_bundled.sh [steps...]
#   MODELS: the models of the per-model steps (eval pgd compare calibrate ood); JEM: the JEM of the
#   checks, defend, curve and sample steps (jem-k5 reproduces the previous default's artefacts).
#   steps: eval pgd compare checks defend curve calibrate ood sample (default: all); compare needs the
#   venv of scripts/setup_torch_venv.sh (torchattacks on the same weights and images).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product robust-eval >/dev/null
RE=.build/release/robust-eval
OUT=docs/results
mkdir -p "$OUT"
T=${THREADS:-2}; N_CURVE=${N_CURVE:-100}; EOT=${EOT:-1}; MODELS=${MODELS:-jem baseline}; J=${JEM:-jem}
steps=${*:-eval pgd compare checks defend curve calibrate ood sample}
run() {  # run NAME CMD...: runs, logs the command and wall time, keeps stdout in $OUT/NAME.txt
    local name=$1; shift
    local t0=$(date +%s)
    "$@" > "$OUT/$name.txt"
    local t1=$(date +%s)
    echo "$name ($((t1 - t0)) s): ${*/#$RE/robust-eval}" >> "$OUT/commands.log"
    cat "$OUT/$name.txt"
}
for s in $steps; do case $s in
eval)
    for m in $MODELS; do run "eval_$m" $RE eval --model $m --data fashion-mnist --threads $T --json "$OUT/eval_$m.json"; done ;;
pgd)
    for m in $MODELS; do
        run "pgd_linf_$m" $RE pgd --model $m --eps 8/255 --limit 1000 --threads $T --json "$OUT/pgd_linf_$m.json"
        run "pgd_l2_$m" $RE pgd --model $m --norm l2 --eps 0.5 --limit 1000 --threads $T --json "$OUT/pgd_l2_$m.json"
    done ;;
compare)
    for m in $MODELS; do for norm in linf l2; do
        file=$($RE info --model "$m" | sed -n 's/^file: *//p')
        run "compare_torchattacks_${norm}_$m" venv/bin/python scripts/compare_torchattacks.py --model "$file" \
            --n 1000 --norm $norm --threads $T --json "$OUT/compare_torchattacks_${norm}_$m.json"
    done; done ;;
checks)
    # Gradient masking checks on the JEM (Carlini et al.): a much stronger white-box attack (100 steps,
    # margin loss, 5 restarts) and a transfer attack crafted on the baseline.
    run pgd_strong_$J $RE pgd --model $J --eps 8/255 --steps 100 --loss margin --restarts 5 --limit 200 --threads $T --json "$OUT/pgd_strong_$J.json"
    run pgd_linf_${J}_n200 $RE pgd --model $J --eps 8/255 --limit 200 --threads 1 --json "$OUT/pgd_linf_${J}_n200.json"
    run transfer_baseline_to_$J $RE transfer --source baseline --target $J --eps 8/255 --limit 1000 --threads $T --json "$OUT/transfer_baseline_to_$J.json" ;;
defend)
    run defend_$J $RE defend --model $J --sgld-steps 10 --threads $T --json "$OUT/defend_$J.json" ;;
curve)
    for norm in linf l2; do
        if [ $norm = linf ]; then E=0,1/255,2/255,4/255,8/255,16/255,32/255; else E=0,0.25,0.5,1,2,3; fi
        run "curve_$norm" $RE curve --series baseline:none --series $J:0 --series $J:1 --series $J:10 \
            --norm $norm --eps $E --eot $EOT --limit $N_CURVE --threads $T --out "$OUT/curve_$norm"
    done ;;
calibrate)
    for m in $MODELS; do run "calibrate_$m" $RE calibrate --model $m --threads $T --json "$OUT/calibrate_$m.json" --diagram "$OUT/reliability_$m"; done ;;
ood)
    for m in $MODELS; do run "ood_$m" $RE ood --model $m --limit 2000 --threads $T --json "$OUT/ood_$m.json" --histograms "$OUT/ood_$m"; done ;;
sample)
    # From the chain start the model was trained with (its train_config), and from JEM++'s
    # class Gaussians (the 0-step grid shows those starts themselves).
    run sample_$J $RE sample --model $J --per-class --count 8 --steps 200 --threads $T --out "$OUT/samples_$J.png"
    run sample_${J}_uncond $RE sample --model $J --count 32 --steps 200 --threads $T --out "$OUT/samples_${J}_unconditional.png"
    # Unconditional chains from uniform noise with a 10× step for 1000 steps (the training step
    # leaves them on the flat noise plateau), and the same chains on the baseline as control.
    run sample_${J}_uncond_long $RE sample --model $J --count 32 --steps 1000 --step-size 10 --threads $T --out "$OUT/samples_${J}_unconditional_long.png"
    run sample_baseline_uncond_long $RE sample --model baseline --count 32 --steps 1000 --step-size 10 --clamp --threads $T --out "$OUT/samples_baseline_unconditional_long.png"
    run sample_${J}_gaussian_start $RE sample --model $J --init gaussian --per-class --count 8 --steps 0 --threads $T --out "$OUT/samples_${J}_gaussian_start.png"
    run sample_${J}_gaussian $RE sample --model $J --init gaussian --per-class --count 8 --steps 200 --threads $T --out "$OUT/samples_${J}_gaussian.png"
    # Control: the same chains on the baseline classifier (its logits read as an energy).
    run sample_baseline_gaussian $RE sample --model baseline --init gaussian --per-class --count 8 --steps 200 --clamp --threads $T --out "$OUT/samples_baseline_gaussian.png" ;;
*) echo "unknown step $s" >&2; exit 2 ;;
esac; done
