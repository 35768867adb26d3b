#!/usr/bin/env bash
# A Python venv with PyTorch CPU 2.13 (the machine image ships the wheel), numpy, scipy,
# safetensors, torchattacks, onnx 1.23 and onnxruntime 1.31, for fixtures, benchmarks and the peer
# comparisons.
# Usage: bash scripts/setup_torch_venv.sh [VENV_DIR]   (default ./venv, git-ignored)
set -euo pipefail
V=${1:-venv}
[ -x "$V/bin/python" ] || python3 -m venv "$V"
"$V/bin/pip" install -q torch==2.13.0+cpu numpy scipy safetensors
"$V/bin/pip" install -q --no-deps torchattacks
"$V/bin/pip" install -q onnx==1.23.0 onnxruntime==1.31.0
"$V/bin/python" -c "import torch; print('torch', torch.__version__)"
