#!/usr/bin/env bash
# Summarises the last fuzzing run of each format (.build-fuzz/FORMAT.log, written by scripts/fuzz.sh):
# seconds, executions, executions/s, coverage (edges and features), corpus size, peak memory, and
# the findings left in Fuzz/findings/FORMAT. Usage: bash scripts/fuzz_report.sh [> docs/results/fuzz.txt]
cd "$(dirname "$0")/.."
printf "%-12s %8s %12s %8s %6s %6s %6s %8s %s\n" format seconds executions exec/s cov ft corpus peak_MB findings
for f in safetensors npy idx cifar svhn onnx; do
    log=.build-fuzz/$f.log
    [ -f "$log" ] || continue
    done_line=$(grep -E "^Done [0-9]+ runs in [0-9]+ second" "$log" | tail -1)
    runs=$(echo "$done_line" | awk '{print $2}')
    secs=$(echo "$done_line" | awk '{print $5}')
    last=$(grep -E "^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)" "$log" | tail -1)
    cov=$(echo "$last" | sed -E 's/.*cov: ([0-9]+).*/\1/')
    ft=$(echo "$last" | sed -E 's/.*ft: ([0-9]+).*/\1/')
    corp=$(echo "$last" | sed -E 's/.*corp: ([0-9]+).*/\1/')
    eps=$(grep "stat::average_exec_per_sec" "$log" | awk '{print $2}')
    rss=$(grep "stat::peak_rss_mb" "$log" | awk '{print $2}')
    findings=$(ls "Fuzz/findings/$f" 2>/dev/null | wc -l)
    crashed=$(grep -c "ERROR: libFuzzer" "$log")
    printf "%-12s %8s %12s %8s %6s %6s %6s %8s %s\n" "$f" "${secs:-stopped}" "${runs:-?}" "${eps:-?}" "$cov" "$ft" "$corp" "${rss:-?}" "$findings (crashes in log: $crashed)"
done
