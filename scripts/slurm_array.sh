#!/usr/bin/env bash
# An example Slurm job array: AutoAttack on the whole Fashion-MNIST test split in N shards, one
# task per shard, then one dependent job that merges the parts into the single run's report.
#
#   sbatch --array=1-8 scripts/slurm_array.sh        # 8 shards (must match SHARDS below)
#
# Every task runs the same command with its own --shard I/N; the parts land in $OUT. Because
# each image's random choices are keyed by its index in the whole selection, the merged report,
# per-example CSV and adversarial set equal what one process writes. Instead of an array, a
# single MPI job does the same without part files: srun robust-eval autoattack ... (or
# mpirun -n 8 robust-eval autoattack ...), rank 0 writes the outputs.
#SBATCH --job-name=robust-eval-aa
#SBATCH --cpus-per-task=4
#SBATCH --time=04:00:00
#SBATCH --output=robust-eval-%A_%a.log
set -euo pipefail
SHARDS=${SHARDS:-8}
OUT=${OUT:-aa-parts}
BIN=${BIN:-robust-eval}
# EXTRA_ARGS adds flags (e.g. EXTRA_ARGS="--limit 1000" or "--version rand --sgld-steps 10").
read -ra EXTRA <<< "${EXTRA_ARGS:-}"
ARGS=(autoattack --model jem --eps 8/255 --seed 0 --threads "${SLURM_CPUS_PER_TASK:-0}" "${EXTRA[@]}")
mkdir -p "$OUT"

if [ "${1:-}" = "merge" ]; then
    parts=()
    for i in $(seq 1 "$SHARDS"); do parts+=("$OUT/part$i.json"); done
    "$BIN" merge "${parts[@]}" --json "$OUT/autoattack.json" --per-example "$OUT/autoattack.csv" \
        --save-adversarials "$OUT/adversarials.npy"
    exit 0
fi

I=${SLURM_ARRAY_TASK_ID:?run as a job array (sbatch --array=1-$SHARDS) or with 'merge'}
# --state makes a pre-empted task continue where it stopped when Slurm requeues it.
"$BIN" "${ARGS[@]}" --shard "$I/$SHARDS" --json "$OUT/part$I.json" \
    --save-adversarials "$OUT/part$I.npy" --state "$OUT/part$I.state.json"

# The last task to finish submits the merge (or run: sbatch --dependency=afterok:JOBID scripts/slurm_array.sh merge).
if [ "$(ls "$OUT"/part*.json 2>/dev/null | grep -vc state)" -eq "$SHARDS" ] && command -v sbatch >/dev/null; then
    sbatch --job-name=robust-eval-merge "$0" merge || true
fi
