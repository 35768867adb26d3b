#!/usr/bin/env bash
# Where the bundled JEM's forward pass spends its time, layer by layer, beside PyTorch on the same
# machine: scripts/conv_layers.c (robust-eval's kernels, normal and batch-invariant mode) and
# scripts/conv_layers_torch.py (torch.profiler). Usage: bash scripts/conv_layers.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
. scripts/kernel_ab_lib.sh
k=Sources/CJEMKernels
kernel_build "$D/layers" scripts/conv_layers.c $k/conv2d.c $k/conv_direct.c $k/winograd.c $k/runtime.c $k/gemm_invariant.c $k/pointwise.c
echo "robust-eval, $T threads:"; OMP_NUM_THREADS=$T "$D/layers" 0
echo "robust-eval, batch-invariant mode:"; OMP_NUM_THREADS=$T "$D/layers" 1
echo "PyTorch $(venv/bin/python -c 'import torch; print(torch.__version__)'), $T threads:"
venv/bin/python scripts/conv_layers_torch.py "$T"
