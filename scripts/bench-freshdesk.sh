#!/usr/bin/env bash
# bench-freshdesk: the Speed run of issue 7. Escalates a ticket with 300
# conversations and 50 attachments (10 MiB) between the two in-process fakes,
# each answering after 20 ms, once with attachments copied one at a time and
# once with the bridge's default bound (4) and 8, side by side in one run,
# and prints time, peak heap and the speed-up of parallel copying; then copies
# one 256 MiB attachment to show that memory stays flat.
# The issue names no outside tool to compare with; the baseline is the
# sequential copy (Parallel=1).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(go test -run '^$' -bench 'BenchmarkEscalate' -benchtime 1x -count 1 ./freshdesk/ | tee /dev/stderr)
echo
echo "$out" | awk '
/^BenchmarkEscalateLargeAttachment/ {
	for (i = 1; i <= NF; i++) { if ($i == "peak-heap-MiB") lp = $(i-1); if ($i == "B/op") lb = $(i-1) }
	large = sprintf("one 256 MiB attachment: %.2f s, peak heap +%s MiB, %.1f MiB allocated in all (streamed, not buffered)", $3/1e9, lp, lb/1048576)
	next
}
/^BenchmarkEscalate(Attachments)?\/parallel=/ {
	split($1, a, "[/=-]"); name = (a[1] == "BenchmarkEscalate") ? "300 conversations" : "10 conversations "; p = a[3]
	ns[name, p] = $3
	for (i = 1; i <= NF; i++) { if ($i == "peak-heap-MiB") peak = $(i-1) }
	printf "%s  parallel=%-2s  %6.2f s  peak heap %6.1f MiB (both fakes included)\n", name, p, $3/1e9, peak
	names[name] = 1
}
END {
	for (n in names) for (p = 4; p <= 8; p += 4)
		if (ns[n, 1] && ns[n, p]) printf "%s: parallel=%d is %.2fx the speed of a sequential copy\n", n, p, ns[n, 1]/ns[n, p]
	print "floor for 300 conversations: 300 ordered note writes x 20 ms = 6.0 s"
	if (large) print large
}'
