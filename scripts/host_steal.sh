#!/usr/bin/env bash
# Steal time of this virtual machine over a benchmark: the share of CPU time the host gave to other
# guests. Timings taken while it is high measure the host as much as the code. bench_e2e.sh and
# bench_compare.sh print it under their tables.
# Usage: S=$(bash scripts/host_steal.sh) ... ; bash scripts/host_steal.sh "$S"
#   no argument: prints the current counters; with the counters of the start: prints the steal share since.
set -euo pipefail
read -r _ user nice system idle iowait irq softirq steal _ < /proc/stat
now="$((user + nice + system + idle + iowait + irq + softirq + steal)) $steal"
if [ $# -eq 0 ]; then echo "$now"; exit 0; fi
set -- $1 $now
total=$(( $3 - $1 )); st=$(( $4 - $2 ))
awk -v t="$total" -v s="$st" 'BEGIN {
    share = (t > 0) ? 100 * s / t : 0
    note = (share > 5) ? " (above 5 %: the timings are not comparable with a quiet host)" : ""
    printf "host steal time during the run: %.1f %% of CPU time%s\n", share, note
}'
