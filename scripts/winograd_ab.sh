#!/usr/bin/env bash
# A/B of the Winograd kernels: this checkout's Sources/CJEMKernels/winograd.c against the same file
# at another revision (default HEAD~1), compiled side by side into one program with the package's
# kernel flags. Prints whether every output is bit-identical, then per-pass times on the bundled
# JEM's layer shapes (WRN-10-2: 32 channels at 28×28, 64 at 14×14, 128 at 7×7, and 32 → 64 at 28×28,
# 64 → 128 at 14×14; batch 64).
# Usage: bash scripts/winograd_ab.sh [REV] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:-HEAD~1}; T=${2:-1}
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
. scripts/kernel_ab_lib.sh
kernel_ab_build "$REV" winograd.c \
  's/jem_conv3x3_winograd_/old_conv3x3_winograd_/g; s/jem_winograd_/old_winograd_/g; 0,/#include <string.h>/s//#include <string.h>\nvoid old_conv3x3_winograd_forward_act(float*, const float*, const float*, const float*, int, int, int, int, int, float*, int, float);\nvoid old_conv3x3_winograd_backward_input_act(float*, const float*, const float*, float, const float*, int, int, int, int, int, float*);/' \
  scripts/winograd_ab.c "$D/ab" winograd.c runtime.c gemm_invariant.c
echo "$REV vs working tree, bitwise:"
"$D/ab" | sed 's/^/  /' || echo "  (outputs differ: expected for a change of summation order; the timings follow)"
echo "| layer | pass | $REV ms | new ms | speed-up |"
echo "|---|---|---:|---:|---:|"
# C = OC at each size, then the bundled JEM's channel-doubling layers (C OC at 28 × 28 and 14 × 14)
for sh in "32 28" "64 14" "128 7"; do "$D/ab" $sh "$T"; done
"$D/ab" 32 28 "$T" 64; "$D/ab" 64 14 "$T" 128
