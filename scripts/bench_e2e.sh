#!/usr/bin/env bash
# End-to-end workloads on the bundled JEM, robust-eval against PyTorch CPU on this machine, same
# threads: a 20-step SGLD chain (batch 64), 10-step PGD-L∞ (batch 128), one training iteration of
# the bundled JEM's recipe (batch 64), the defense at its defaults under BPDA PGD (batch 16), and
# batch-1 latency. Each workload runs in its own process so its peak resident memory (GNU time's
# %M) is its own. Prints a Markdown table: images/s, ratio, peak RSS of both.
# Usage: bash scripts/bench_e2e.sh [THREADS] [REPEATS] [WORKLOADS]   (needs venv/: scripts/setup_torch_venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}; R=${2:-5}; W=${3:-sgld,pgd,train,defend,latency}
PY=${PYTHON:-venv/bin/python}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "bench_e2e.sh needs GNU time (/usr/bin/time, Debian package 'time')" >&2; exit 2; }
swift build -c release --product robust-eval >/dev/null
mkdir -p runs/bench
for w in ${W//,/ }; do
    $TIME -f %M -o "runs/bench/rss_swift_$w" .build/release/robust-eval bench --workload "$w" --threads "$T" --repeats "$R" \
        --json "runs/bench/swift_$w.json" >/dev/null
    $TIME -f %M -o "runs/bench/rss_torch_$w" "$PY" scripts/bench_torch.py --workload "$w" --threads "$T" --repeats "$R" \
        > "runs/bench/torch_$w.json" 2>/dev/null
done
W="$W" "$PY" - <<'PY'
import json, os
print("| workload | batch | robust-eval img/s | PyTorch img/s | ratio | robust-eval peak RSS | PyTorch peak RSS |")
print("|---|---:|---:|---:|---:|---:|---:|")
for w in os.environ["W"].split(","):
    s = json.load(open(f"runs/bench/swift_{w}.json"))["rows"]
    t = {r["op"]: r["images_per_second"] for r in json.load(open(f"runs/bench/torch_{w}.json"))["rows"]}
    rs = int(open(f"runs/bench/rss_swift_{w}").read().split()[-1]) / 1024
    rt = int(open(f"runs/bench/rss_torch_{w}").read().split()[-1]) / 1024
    for r in s:
        p = t[r["op"]]
        print(f"| {r['op']} | {r['batch']} | {r['images_per_second']:.2f} | {p:.2f} | {r['images_per_second'] / p:.2f}× | {rs:.0f} MB | {rt:.0f} MB |")
PY
