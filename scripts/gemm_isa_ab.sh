#!/usr/bin/env bash
# The batch-invariant GEMM's AVX-512 blocks against its AVX2 blocks (scripts/gemm_isa_ab.c).
# Usage: bash scripts/gemm_isa_ab.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
k=Sources/CJEMKernels
omph=$(dirname "$(dpkg -L libomp-14-dev | grep '/omp.h$' | head -1)")
ompl=$(dirname "$(dpkg -L libomp-14-dev | grep '/libomp.so$' | head -1)")
out=${TMPDIR:-/tmp}/gemm_isa_ab
clang -O3 -march=x86-64-v3 -ffp-contract=fast -fopenmp -idirafter "$omph" -I"$k/include" -I"$k" \
  scripts/gemm_isa_ab.c "$k/gemm_invariant.c" -L"$ompl" -lomp -lopenblas -lm -o "$out"
LD_LIBRARY_PATH=$ompl OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=${1:-1} "$out"
