#!/usr/bin/env bash
# bench-freshdesk: the Speed run of issue 7. Escalates a ticket with 300
# conversations and 50 attachments (10 MiB) between the two in-process fakes,
# each answering after 20 ms, once with attachments copied one at a time and
# once with the bridge's default bound (4) and 8, side by side in one run,
# and prints time, peak heap and the speed-up of parallel copying.
# The issue names no outside tool to compare with; the baseline is the
# sequential copy (Parallel=1).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(go test -run '^$' -bench 'BenchmarkEscalate' -benchtime 1x -count 1 ./freshdesk/ | tee /dev/stderr)
echo
echo "$out" | awk '
/^BenchmarkEscalate\/parallel=/ {
	split($1, a, "[=-]"); p = a[2]
	ns[p] = $3
	for (i = 1; i <= NF; i++) { if ($i == "peak-heap-MiB") peak[p] = $(i-1) }
	printf "parallel=%-2s  %6.2f s  peak heap %6.1f MiB (fakes included)\n", p, $3/1e9, peak[p]
}
END {
	if (ns[1] && ns[4]) printf "speed-up of parallel=4 over sequential copy: %.2fx\n", ns[1]/ns[4]
	if (ns[1] && ns[8]) printf "speed-up of parallel=8 over sequential copy: %.2fx\n", ns[1]/ns[8]
}'
