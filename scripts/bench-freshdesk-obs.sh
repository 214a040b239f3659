#!/usr/bin/env bash
# bench-freshdesk-obs: instrumentation overhead of the freshdesk bridge
# (issue 20). One escalation (20 conversations, 4 attachments of 64 KiB,
# fakes answering at once) with the bridge and its clients bare, and with
# metrics and tracing on, side by side in one run, repeated COUNT times;
# prints the mean time of each and the overhead of instrumentation.
# BENCHTIME (default 20x) and COUNT (default 5) make it shorter for a check:
# BENCHTIME=1x COUNT=1 bash scripts/bench-freshdesk-obs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(go test -run '^$' -bench '^BenchmarkEscalateObserved$' -benchtime "${BENCHTIME:-20x}" -count "${COUNT:-5}" ./freshdesk/ | tee /dev/stderr)
echo
echo "$out" | awk '
/^BenchmarkEscalateObserved\// {
	split($1, a, "/"); sub(/-[0-9]+$/, "", a[2])
	ns[a[2]] += $3; n[a[2]]++
	for (i = 1; i <= NF; i++) if ($i == "allocs/op") al[a[2]] += $(i-1)
}
END {
	off = ns["off"] / n["off"]; on = ns["metrics+tracing"] / n["metrics+tracing"]
	printf "escalation, bare:            %8.2f ms  %8.0f allocs\n", off/1e6, al["off"]/n["off"]
	printf "escalation, metrics+tracing: %8.2f ms  %8.0f allocs\n", on/1e6, al["metrics+tracing"]/n["metrics+tracing"]
	printf "instrumentation overhead: %+.1f%% time (%d runs each)\n", (on/off - 1) * 100, n["off"]
}'
