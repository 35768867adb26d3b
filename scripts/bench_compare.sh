#!/usr/bin/env bash
# Runs `robust-eval bench` and the same rows in PyTorch CPU on this machine, same threads and
# batch, and prints the ratio table (robust-eval ÷ PyTorch images/s) as Markdown.
# With ROUNDS=N the two sides alternate N times and the table holds each side's median images/s
# over the rounds (and the spread: the lowest and highest ratio of a single round); ONLY=wrn-10-2
# keeps the rows of one model.
# Usage: [ROUNDS=N] [ONLY=MODEL] bash scripts/bench_compare.sh [THREADS] [REPEATS]   (needs venv/: scripts/setup_torch_venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}; R=${2:-5}; N=${ROUNDS:-1}
PY=${PYTHON:-venv/bin/python}
only=(); [ -n "${ONLY:-}" ] && only=(--only "$ONLY")
swift build -c release --product robust-eval >/dev/null
mkdir -p runs/bench
rm -f runs/bench/rows_*_r[0-9]*.json
STEAL=$(bash scripts/host_steal.sh)
for ((i = 1; i <= N; i++)); do
    .build/release/robust-eval bench --threads "$T" --repeats "$R" "${only[@]}" --json "runs/bench/rows_swift_r$i.json" >/dev/null
    "$PY" scripts/bench_torch.py --threads "$T" --repeats "$R" "${only[@]}" > "runs/bench/rows_torch_r$i.json" 2>/dev/null
done
N="$N" "$PY" - <<'PY'
import json, os, statistics
n = int(os.environ["N"])
def rows(side, i): return json.load(open(f"runs/bench/rows_{side}_r{i}.json"))["rows"]
key = lambda r: (r["model"], r["input"], r["op"])
sw = [{key(r): r["images_per_second"] for r in rows("swift", i)} for i in range(1, n + 1)]
pt = [{key(r): r["images_per_second"] for r in rows("torch", i)} for i in range(1, n + 1)]
print("| model | input | op | robust-eval img/s | PyTorch img/s | ratio |" + (" ratio per round (min–max) |" if n > 1 else ""))
print("|---|---|---|---:|---:|---:|" + ("---:|" if n > 1 else ""))
for r in rows("swift", 1):
    k = key(r)
    s = statistics.median(d[k] for d in sw); p = statistics.median(d[k] for d in pt)
    per = [a[k] / b[k] for a, b in zip(sw, pt)]
    extra = f" {min(per):.2f}–{max(per):.2f}× |" if n > 1 else ""
    print(f"| {k[0]} | {k[1]} | {k[2]} | {s:.1f} | {p:.1f} | {s / p:.2f}× |{extra}")
PY
bash scripts/host_steal.sh "$STEAL"
echo "PyTorch heap: $("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("heap", "glibc defaults"))' "runs/bench/rows_torch_r1.json") (scripts/peer_heap.py)"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores; AVX-512: $(grep -qw avx512f /proc/cpuinfo && echo yes || echo no)"
