#!/usr/bin/env bash
# The exact recipe of the bundled models (Fashion-MNIST, WRN-10-2). Each command resumes its run
# if a checkpoint exists, so the script can be re-run after an interruption.
# Usage: [THREADS=N] bash scripts/train_bundled.sh [jem|baseline|all]  (default 2 threads; a
# resumed run must use the thread count it started with to reproduce it bit for bit)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product robust-eval >/dev/null
RE=.build/release/robust-eval
what=${1:-all}
run() {  # run NAME EPOCHS FLAGS...
    local name=$1 EPOCHS=$2; shift 2
    if [ -f "runs/$name/checkpoint.safetensors" ]; then
        $RE train --resume "runs/$name" --threads "${THREADS:-2}" --log-every 50 --epochs "$EPOCHS"
    else
        $RE train --out "runs/$name" --threads "${THREADS:-2}" --log-every 50 --epochs "$EPOCHS" "$@"
    fi
}
if [ "$what" = jem ] || [ "$what" = all ]; then
    # JEM: reference loss and sampler; 10 SGLD steps (reference 20) with JEM++ clamping and an
    # L2 energy penalty of 0.1 so it trains stably in about 3 hours on 2 cores. The schedule is
    # shared with the baseline: Adam 1e-3 (reference 1e-4, which needs far more than 6 epochs),
    # 300 warm-up iterations, ×0.3 at epochs 4 and 5, no crop/flip augmentation (data noise only):
    # on 28×28 images pad-4 crops slow a 6-epoch budget down (85.6 % validation after 5 epochs in
    # a baseline run with them).
    run jem 6 --data fashion-mnist --arch wrn-10-2 --decay-epochs 4,5 --lr 1e-3 --warmup-iters 300 \
        --no-augment --sgld-steps 10 --sgld-clamp --energy-l2 0.1 --seed 1
    cp runs/jem/model.safetensors Sources/robust-eval/Models/jem-fmnist.safetensors
fi
if [ "$what" = baseline ] || [ "$what" = all ]; then
    # Baseline: the same network and schedule, p(x) weight 0 (a plain classifier), 10 epochs (after
    # 6 it reached 89.93 % test accuracy, short of the 91 % target; it is cheap, so it trains longer).
    run baseline 10 --data fashion-mnist --arch wrn-10-2 --decay-epochs 4,5 --lr 1e-3 --warmup-iters 300 \
        --no-augment --px-weight 0 --seed 1
    cp runs/baseline/model.safetensors Sources/robust-eval/Models/baseline-fmnist.safetensors
fi
