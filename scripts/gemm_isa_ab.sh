#!/usr/bin/env bash
# The batch-invariant GEMM's AVX-512 blocks against its AVX2 blocks (scripts/gemm_isa_ab.c).
# Usage: bash scripts/gemm_isa_ab.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
. scripts/kernel_ab_lib.sh
kernel_build "$D/ab" scripts/gemm_isa_ab.c Sources/CJEMKernels/gemm_invariant.c
OMP_NUM_THREADS=${1:-1} "$D/ab"
