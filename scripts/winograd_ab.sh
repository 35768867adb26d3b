#!/usr/bin/env bash
# A/B of the Winograd kernels: this checkout's Sources/CJEMKernels/winograd.c against the same file
# at another revision (default HEAD~1), compiled side by side into one program with the package's
# kernel flags. Prints whether every output is bit-identical, then per-pass times on the bundled
# JEM's layer shapes (WRN-10-2: 32 channels at 28×28, 64 at 14×14, 128 at 7×7; batch 64).
# Usage: bash scripts/winograd_ab.sh [REV] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:-HEAD~1}; T=${2:-1}
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
OMPH=$(dirname "$(dpkg -L libomp-14-dev | grep '/omp.h$' | head -1)")
OMPL=$(dirname "$(dpkg -L libomp-14-dev | grep '/libomp.so$' | head -1)")
git show "$REV:Sources/CJEMKernels/winograd.c" \
  | sed -e 's/jem_conv3x3_winograd_/old_conv3x3_winograd_/g; s/jem_winograd_/old_winograd_/g' \
        -e '0,/#include <string.h>/s//#include <string.h>\nvoid old_conv3x3_winograd_forward_act(float*, const float*, const float*, const float*, int, int, int, int, int, float*, int, float);/' > "$D/old.c"
K=Sources/CJEMKernels
clang -O3 -march=x86-64-v3 -ffp-contract=fast -fopenmp -idirafter "$OMPH" -I$K/include \
  scripts/winograd_ab.c "$D/old.c" $K/winograd.c $K/runtime.c $K/gemm_invariant.c \
  -L"$OMPL" -lomp -lopenblas -lm -o "$D/ab"
export LD_LIBRARY_PATH=$OMPL OPENBLAS_NUM_THREADS=1
echo "$REV vs working tree, bitwise:"
"$D/ab" | sed 's/^/  /'
echo "| layer | pass | $REV ms | new ms | speed-up |"
echo "|---|---|---:|---:|---:|"
for sh in "32 28" "64 14" "128 7"; do "$D/ab" $sh "$T"; done
