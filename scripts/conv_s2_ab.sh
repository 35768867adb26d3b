#!/usr/bin/env bash
# A/B of the stride-2 convolutions (im2col path): this checkout's Sources/CJEMKernels/conv2d.c
# against the same file at another revision (default HEAD~1), compiled into one program with the
# package's kernel flags, 2 threads. Prints per-layer times and whether the outputs are bit-identical.
# Usage: bash scripts/conv_s2_ab.sh [REV]
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:-HEAD~1}
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
OMPH=$(dirname "$(dpkg -L libomp-14-dev | grep '/omp.h$' | head -1)")
OMPL=$(dirname "$(dpkg -L libomp-14-dev | grep '/libomp.so$' | head -1)")
git show "$REV:Sources/CJEMKernels/conv2d.c" \
  | sed -e 's/jem_conv2d_/old_conv2d_/g' \
        -e '0,/#include <string.h>/s//#include <string.h>\nvoid old_conv2d_forward_act(float*, const float*, const float*, const float*, int, int, int, int, int, int, int, int, int, int, int, float*, int, float);/' > "$D/old.c"
K=Sources/CJEMKernels
clang -O3 -march=x86-64-v3 -ffp-contract=fast -fopenmp -idirafter "$OMPH" -I$K/include \
  scripts/conv_s2_ab.c "$D/old.c" $K/conv2d.c $K/winograd.c $K/runtime.c $K/gemm_invariant.c \
  -L"$OMPL" -lomp -lopenblas -lm -o "$D/ab"
echo "| layer | pass | $REV ms | new ms | speed-up | outputs |"
echo "|---|---|---:|---:|---:|---|"
LD_LIBRARY_PATH=$OMPL "$D/ab"
