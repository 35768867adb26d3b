#!/usr/bin/env bash
# Runs `robust-eval bench` and the same rows in PyTorch CPU on this machine, same threads and
# batch, and prints the ratio table (robust-eval ÷ PyTorch images/s) as Markdown.
# Usage: bash scripts/bench_compare.sh [THREADS] [REPEATS]   (needs venv/: scripts/setup_torch_venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}; R=${2:-5}
PY=${PYTHON:-venv/bin/python}
swift build -c release --product robust-eval >/dev/null
mkdir -p runs
STEAL=$(bash scripts/host_steal.sh)
.build/release/robust-eval bench --threads "$T" --repeats "$R" --json runs/bench_swift.json >/dev/null
"$PY" scripts/bench_torch.py --threads "$T" --repeats "$R" > runs/bench_torch.json 2>/dev/null
"$PY" - <<'PY'
import json
s = json.load(open("runs/bench_swift.json"))["rows"]
t = {(r["model"], r["input"], r["op"]): r["images_per_second"] for r in json.load(open("runs/bench_torch.json"))["rows"]}
print("| model | input | op | robust-eval img/s | PyTorch img/s | ratio |")
print("|---|---|---|---:|---:|---:|")
for r in s:
    p = t[(r["model"], r["input"], r["op"])]
    print(f"| {r['model']} | {r['input']} | {r['op']} | {r['images_per_second']:.1f} | {p:.1f} | {r['images_per_second']/p:.2f}× |")
PY
bash scripts/host_steal.sh "$STEAL"
