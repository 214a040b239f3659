#!/usr/bin/env bash
# bench-agent: install a 200 MiB package into a real examples/agent process
# over its unix socket (curl streams the upload), report the agent's peak
# RSS (VmHWM) and wall time, and compare with unzip unpacking the same zip
# side by side. Then the Go benchmarks of a stats read during a slow
# collection. Usage: scripts/bench-agent.sh [SIZE_MIB]
set -euo pipefail
size_mib=${1:-200}
go=${GO:-go}
tmp=$(mktemp -d)
agent_pid=
cleanup() {
	if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

$go build -o "$tmp/agent" ./examples/agent
mkdir -p "$tmp/pkg/bin"
cp "$(command -v sleep)" "$tmp/pkg/bin/sleep"
head -c "${size_mib}M" /dev/urandom > "$tmp/pkg/data.bin"
(cd "$tmp/pkg" && zip -q -r -1 ../pkg.zip .)
rm -rf "$tmp/pkg"
zip_bytes=$(stat -c %s "$tmp/pkg.zip")
echo "package: $(( zip_bytes / 1048576 )) MiB zip (${size_mib} MiB of random data + sleep)"

"$tmp/agent" -dir "$tmp/pkgs" -socket "$tmp/agent.sock" -max-upload $(( 1 << 30 )) -start-grace 200ms \
	>"$tmp/agent.out" 2>"$tmp/agent.err" &
agent_pid=$!
for _ in $(seq 100); do [ -S "$tmp/agent.sock" ] && break; sleep 0.1; done
[ -S "$tmp/agent.sock" ] || { cat "$tmp/agent.err"; exit 1; }
base_kib=$(awk '/VmHWM/ {print $2}' "/proc/$agent_pid/status")

now() { date +%s.%N; }
t0=$(now)
curl -sS --fail-with-body --unix-socket "$tmp/agent.sock" -X POST -T "$tmp/pkg.zip" \
	-H 'Content-Type: application/zip' \
	"http://agent/v1/packages/big?binary=bin/sleep&arg=600" >"$tmp/install.json"
t1=$(now)
grep -q '"running":true' "$tmp/install.json" || { cat "$tmp/install.json"; exit 1; }
hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$agent_pid/status")
unpacked=$(stat -c %s "$tmp/pkgs/big/current/data.bin")
[ "$unpacked" -eq $(( size_mib * 1048576 )) ] || { echo "FAIL: unpacked data.bin is $unpacked bytes"; exit 1; }
cmp -s "$tmp/pkgs/big/current/bin/sleep" "$(command -v sleep)" || { echo "FAIL: bin/sleep differs"; exit 1; }

mkdir "$tmp/unzipped"
t2=$(now)
unzip -q "$tmp/pkg.zip" -d "$tmp/unzipped"
t3=$(now)

agent_s=$(echo "$t1 - $t0" | bc -l)
unzip_s=$(echo "$t3 - $t2" | bc -l)
printf 'agent install (upload + unpack + start, 200ms start grace): %.2fs\n' "$agent_s"
printf 'unzip of the same zip (no upload):                          %.2fs\n' "$unzip_s"
printf 'agent throughput: %.0f MiB/s of zip\n' "$(echo "$zip_bytes / 1048576 / $agent_s" | bc -l)"
printf 'ratio agent/unzip: %.2f\n' "$(echo "$agent_s / $unzip_s" | bc -l)"
printf 'agent peak RSS (VmHWM): %d MiB (at start %d MiB; limit 64 MiB)\n' $(( hwm_kib / 1024 )) $(( base_kib / 1024 ))
if [ "$hwm_kib" -gt $(( 64 * 1024 )) ]; then echo "FAIL: peak RSS above 64 MiB"; exit 1; fi

# A stats read over the socket while the agent runs (curl's own time included).
stats_s=$(curl -sS -o /dev/null -w '%{time_total}' --unix-socket "$tmp/agent.sock" http://agent/v1/stats)
printf 'GET /v1/stats over the socket with curl: %.3f ms\n' "$(echo "$stats_s * 1000" | bc -l)"

echo "Go benchmarks (stats read while a collection is stuck; extraction):"
$go test -run '^$' -bench 'StatsRead|StatsHTTP|Extract' -benchmem ./fleet/agent | grep -E '^Benchmark'
