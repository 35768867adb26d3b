#!/usr/bin/env bash
# A/B of the stride-2 convolutions (the direct kernels, or im2col with JEM_DIRECT_CONV=0): this checkout's Sources/CJEMKernels/conv2d.c
# against the same file at another revision (default HEAD~1), compiled into one program with the
# package's kernel flags, 2 threads. Prints per-layer times and whether the outputs are bit-identical.
# Usage: bash scripts/conv_s2_ab.sh [REV]
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:-HEAD~1}
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
. scripts/kernel_ab_lib.sh
# The old revision's conv2d.c, preceded by its conv_direct.c where it has one, symbols renamed.
kernel_ab_build "$REV" "conv_direct.c conv2d.c" \
  's/jem_conv2d_/old_conv2d_/g; 0,/#include <string.h>/s//#include <string.h>\nvoid old_conv2d_forward_act(float*, const float*, const float*, const float*, int, int, int, int, int, int, int, int, int, int, int, float*, int, float);/' \
  scripts/conv_s2_ab.c "$D/ab" conv2d.c conv_direct.c winograd.c runtime.c gemm_invariant.c
echo "| layer | pass | $REV ms | new ms | speed-up | outputs |"
echo "|---|---|---:|---:|---:|---|"
"$D/ab"
