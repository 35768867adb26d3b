#!/usr/bin/env bash
# Fuzzes the file readers with libFuzzer (the toolchain's clang runtime; Swift's -sanitize=fuzzer).
# Usage: bash scripts/fuzz.sh FORMAT [SECONDS] [extra libFuzzer flags]
#   FORMAT: safetensors, npy, idx, cifar, svhn or onnx (default time: 1800 s)
# Builds Sources/fuzz-readers instrumented into .build-fuzz, starts from the committed seeds
# (Fuzz/corpus/FORMAT) plus what earlier runs found (.build-fuzz/corpus/FORMAT, not committed),
# and writes any crashing, hanging or memory-hungry input to Fuzz/findings/FORMAT/. Each finding
# becomes a regression input in Fuzz/regressions/FORMAT/ once fixed (replayed by `swift test`).
# The last line of .build-fuzz/FORMAT.log has the executions; scripts/fuzz_report.sh sums them.
set -euo pipefail
cd "$(dirname "$0")/.."
fmt=${1:?usage: fuzz.sh FORMAT [SECONDS]}
secs=${2:-1800}
shift $(( $# >= 2 ? 2 : 1 ))
if [ -z "${FUZZ_NO_BUILD:-}" ]; then
    swift build -c release --product fuzz-readers --scratch-path .build-fuzz \
        -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING >/dev/null
fi
work=.build-fuzz/corpus/$fmt
mkdir -p "$work" "Fuzz/findings/$fmt"
# Let libFuzzer see the runtime trap (SIGILL) itself, so it saves the input.
export SWIFT_BACKTRACE=enable=no
export FUZZ_FORMAT=$fmt OMP_NUM_THREADS=1
# -timeout: an input that takes 10 s is a hang; -rss_limit_mb: 1 GB is a runaway allocation.
.build-fuzz/release/fuzz-readers "$work" "Fuzz/corpus/$fmt" -max_total_time="$secs" -max_len=65536 \
    -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="Fuzz/findings/$fmt/" "$@" 2>&1 | tee ".build-fuzz/$fmt.log" | grep -E "^(#[0-9]+ +(pulse|DONE)|==|stat::|SUMMARY|Done)" || true
