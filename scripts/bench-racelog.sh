#!/usr/bin/env bash
# Comparison run for racelog (issue 5): scan a 1 GiB log (ordinary lines with
# a real race report every ~10 MiB) with examples/race-report -dry-run and
# with grep -c -F 'WARNING: DATA RACE', side by side in one run, and print
# the throughput ratio (grep runs with LC_ALL=C, its fastest setting). Usage: scripts/bench-racelog.sh [SIZE_MIB] [RUNS]
set -euo pipefail
size_mib=${1:-1024}
runs=${2:-3}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go build -o "$tmp/race-report" ./examples/race-report

# ~10 MiB of ordinary, varied log lines (some contain "WARN", "DATA", "RACE"
# in other spellings, so the marker search meets near misses).
awk 'BEGIN {
  srand(5); n = 0; size = 0
  while (size < 10 * 1048576) {
    n++
    lvl = (n % 17 == 0) ? "WARN" : ((n % 29 == 0) ? "ERROR" : "INFO")
    line = sprintf("2026-11-22T01:%02d:%02d.%06dZ %s http: request served method=GET path=/api/v1/items/%d status=200 bytes=%d duration=%.3fms data=race-free WARNING: slow=%s", \
      (n / 3600) % 60, (n / 60) % 60, n % 1000000, lvl, n, int(rand() * 100000), rand() * 20, (n % 7 == 0) ? "true" : "false")
    print line
    size += length(line) + 1
  }
}' > "$tmp/chunk.log"
report=racelog/testdata/plain.log   # real output of go build -race (two reports)
chunks=$(( size_mib / 10 ))
: > "$tmp/big.log"
for _ in $(seq "$chunks"); do cat "$tmp/chunk.log" "$report" >> "$tmp/big.log"; done
bytes=$(stat -c %s "$tmp/big.log")
cat "$tmp/big.log" > /dev/null   # warm the page cache for both tools

now() { date +%s%N; }
best_rl=0; best_grep=0
for i in $(seq "$runs"); do
  t0=$(now); rl=$("$tmp/race-report" -dry-run "$tmp/big.log" | wc -l); t1=$(now)
  g=$(LC_ALL=C grep -c -F 'WARNING: DATA RACE' "$tmp/big.log"); t2=$(now)
  d_rl=$(( t1 - t0 )); d_grep=$(( t2 - t1 ))
  if [ "$best_rl" = 0 ] || [ "$d_rl" -lt "$best_rl" ]; then best_rl=$d_rl; fi
  if [ "$best_grep" = 0 ] || [ "$d_grep" -lt "$best_grep" ]; then best_grep=$d_grep; fi
  echo "run $i: race-report $((d_rl / 1000000)) ms ($rl reports), grep -c -F $((d_grep / 1000000)) ms ($g lines)"
done
if [ "$rl" != "$g" ]; then
  echo "MISMATCH: race-report found $rl reports, grep counted $g marker lines" >&2
  exit 1
fi
awk -v b="$bytes" -v r="$best_rl" -v g="$best_grep" 'BEGIN {
  printf "log: %.0f MiB, %d reports\n", b / 1048576, '"$rl"'
  printf "race-report -dry-run: %7.1f MB/s (best of '"$runs"')\n", b / (r / 1e9) / 1e6
  printf "grep -c -F:           %7.1f MB/s (best of '"$runs"')\n", b / (g / 1e9) / 1e6
  printf "ratio racelog/grep:   %.2fx (goal >= 0.5x, aim 1x)\n", g / r
}'
