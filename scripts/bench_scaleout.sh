#!/usr/bin/env bash
# Speed of MPI ranks against one process on this machine (docs/PERFORMANCE.md, "Scale-out"):
# pgd over 1 000 images and the bundled JEM recipe's training iterations, 1 rank × 1 thread
# against 2 ranks × 1 thread (TCP between the ranks), alternating ROUNDS times. Prints the
# medians and the bytes each training iteration sends. Needs an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BIN:-.build/release/robust-eval}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-30}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=tcp,self
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PGD=(pgd --limit 1000 --threads 1 --seed 0)
TRAIN=(train --data fashion-mnist --arch wrn-10-2 --lr 1e-3 --warmup-iters 300 --no-augment --sgld-steps 10 --sgld-clamp
       --energy-l2 0.1 --seed 1 --epochs 1 --threads 1 --max-iters "$ITERS" --log-every "$ITERS")
secs() { local t0; t0=$(date +%s.%N); "$@" > "$work/last.log" 2>&1; echo "$(date +%s.%N) - $t0" | bc; }
rate() { grep "^iter $ITERS/" "$work/last.log" | awk '{print $3}'; }
p1=(); p2=(); t1=(); t2=()
for r in $(seq 1 "$ROUNDS"); do
    p1+=("$(secs "$B" "${PGD[@]}")")
    p2+=("$(secs mpirun -n 2 "$B" "${PGD[@]}")")
    rm -rf "$work/t1" "$work/t2"
    secs "$B" "${TRAIN[@]}" --out "$work/t1" > /dev/null; t1+=("$(rate)")
    secs mpirun -n 2 "$B" "${TRAIN[@]}" --out "$work/t2" > /dev/null; t2+=("$(rate)")
    bytes=$(grep -o "[0-9]* bytes sent per rank per iteration" "$work/last.log" || true)
    echo "round $r: pgd 1 rank ${p1[-1]} s, 2 ranks ${p2[-1]} s; train 1 rank ${t1[-1]} it/s, 2 ranks ${t2[-1]} it/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
mp1=$(median "${p1[@]}"); mp2=$(median "${p2[@]}"); mt1=$(median "${t1[@]}"); mt2=$(median "${t2[@]}")
echo "pgd, 1000 images, 1 thread per rank: 1 rank $mp1 s, 2 ranks $mp2 s: $(echo "scale=2; $mp1 / $mp2" | bc)x"
echo "train (bundled JEM recipe, K = 10), 1 thread per rank: 1 rank $mt1 it/s, 2 ranks $mt2 it/s: $(echo "scale=2; $mt2 / $mt1" | bc)x"
echo "$bytes"
