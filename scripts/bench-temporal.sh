#!/usr/bin/env bash
# Per-target overhead of the Temporal backend (dev server on loopback, one
# in-process worker) against the local workflow.Runner, on no-op targets.
# Needs the temporal CLI ($OPSKIT_TEMPORAL or ~/.cache/opskit/bin/temporal).
# Usage: scripts/bench-temporal.sh [targets] [benchtime]   (default 1000 1x)
set -euo pipefail
cd "$(dirname "$0")/../workflow/temporal"
n=${1:-1000}
bt=${2:-1x}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
out=$(go test -run '^$' -bench 'Overhead' -benchtime "$bt" -count 1 . -args -bench-targets "$n")
echo "$out" | grep -E '^Benchmark'
runner=$(echo "$out" | awk '/^BenchmarkOverheadRunner/ {for (i=1;i<=NF;i++) if ($(i+1)=="ns/target") print $i}')
server=$(echo "$out" | awk '/^BenchmarkOverheadDevServer/ {for (i=1;i<=NF;i++) if ($(i+1)=="ns/target") print $i}')
if [ -n "$runner" ] && [ -n "$server" ]; then
	awk -v r="$runner" -v s="$server" -v n="$n" 'BEGIN { printf "%d targets: Runner %.0f ns/target, Temporal %.0f ns/target, overhead %.2f ms/target (%.0fx)\n", n, r, s, (s-r)/1e6, s/r }'
else
	echo "a benchmark did not run (is the temporal CLI missing?)"
fi
