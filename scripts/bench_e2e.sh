#!/usr/bin/env bash
# End-to-end workloads on the bundled JEM, robust-eval against PyTorch CPU on this machine, same
# threads: a 20-step SGLD chain (batch 64), 10-step PGD-L∞ (batch 128), one training iteration of
# the bundled JEM's recipe (batch 64), the defense at its defaults under BPDA PGD (batch 16), and
# batch-1 latency. Each workload runs in its own process so its peak resident memory (GNU time's
# %M) is its own. Prints a Markdown table: images/s, ratio, peak RSS of both. With ROUNDS=N the
# two sides alternate N times per workload and the table holds the median images/s of each side
# over the rounds (and the largest peak RSS): batch-1 timings on this machine move by up to 2×
# between back-to-back runs of either side. With AB_ENV="VAR=value ..." each round also runs
# robust-eval under those variables (e.g. AB_ENV=JEM_SPLIT=0: the old path), and the table gains its
# images/s and the ratio of the default to it: an A/B of two code paths in the same rounds.
# Usage: [ROUNDS=N] bash scripts/bench_e2e.sh [THREADS] [REPEATS] [WORKLOADS]   (needs venv/: scripts/setup_torch_venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-2}; R=${2:-5}; W=${3:-sgld,pgd,train,defend,latency}; N=${ROUNDS:-1}
PY=${PYTHON:-venv/bin/python}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "bench_e2e.sh needs GNU time (/usr/bin/time, Debian package 'time')" >&2; exit 2; }
swift build -c release --product robust-eval >/dev/null
mkdir -p runs/bench
rm -f runs/bench/*_r[0-9]*
STEAL=$(bash scripts/host_steal.sh)
for w in ${W//,/ }; do
    for ((i = 1; i <= N; i++)); do
        $TIME -f %M -o "runs/bench/rss_swift_${w}_r$i" .build/release/robust-eval bench --workload "$w" --threads "$T" \
            --repeats "$R" --json "runs/bench/swift_${w}_r$i.json" >/dev/null
        [ -z "${AB_ENV:-}" ] || env $AB_ENV $TIME -f %M -o "runs/bench/rss_ab_${w}_r$i" .build/release/robust-eval bench \
            --workload "$w" --threads "$T" --repeats "$R" --json "runs/bench/ab_${w}_r$i.json" >/dev/null
        $TIME -f %M -o "runs/bench/rss_torch_${w}_r$i" "$PY" scripts/bench_torch.py --workload "$w" --threads "$T" \
            --repeats "$R" > "runs/bench/torch_${w}_r$i.json" 2>/dev/null
    done
done
W="$W" N="$N" AB="${AB_ENV:-}" "$PY" - <<'PY'
import json, os, statistics
n = int(os.environ["N"]); ab = os.environ["AB"]
extra = f" robust-eval with {ab} img/s | default / {ab} |" if ab else ""
print("| workload | batch | robust-eval img/s | PyTorch img/s | ratio | robust-eval peak RSS | PyTorch peak RSS |" + extra)
print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if ab else ""))
def rows(side, w, i): return json.load(open(f"runs/bench/{side}_{w}_r{i}.json"))["rows"]
def rss(side, w): return max(int(open(f"runs/bench/rss_{side}_{w}_r{i}").read().split()[-1]) for i in range(1, n + 1)) / 1024
for w in os.environ["W"].split(","):
    for r in rows("swift", w, 1):
        op = r["op"]
        s = statistics.median(x["images_per_second"] for i in range(1, n + 1) for x in rows("swift", w, i) if x["op"] == op)
        p = statistics.median(x["images_per_second"] for i in range(1, n + 1) for x in rows("torch", w, i) if x["op"] == op)
        row = f"| {op} | {r['batch']} | {s:.2f} | {p:.2f} | {s / p:.2f}× | {rss('swift', w):.0f} MB | {rss('torch', w):.0f} MB |"
        if ab:
            a = statistics.median(x["images_per_second"] for i in range(1, n + 1) for x in rows("ab", w, i) if x["op"] == op)
            row += f" {a:.2f} | {s / a:.2f}× |"
        print(row)
PY
bash scripts/host_steal.sh "$STEAL"
echo "PyTorch heap: $("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("heap", "glibc defaults"))' "runs/bench/torch_${W%%,*}_r1.json") (scripts/peer_heap.py)"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores; AVX-512: $(grep -qw avx512f /proc/cpuinfo && echo yes || echo no)"
