#!/usr/bin/env bash
# Installs the system packages robust-eval needs on Debian, if missing: OpenBLAS, LLVM's OpenMP
# runtime, zlib, librsvg (SVG → PNG for plots), Open MPI (sharded runs across ranks and machines)
# and the real Fashion-MNIST (the default data set).
# Needs root (or sudo).
set -euo pipefail
need=()
for p in libopenblas-dev libomp-dev zlib1g-dev librsvg2-bin dataset-fashion-mnist libopenmpi-dev openmpi-bin; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
    echo "installed: ${need[*]}"
fi
