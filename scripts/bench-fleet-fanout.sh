#!/usr/bin/env bash
# bench-fleet-fanout: the client side of a fan-out, fleet-run against
# parallel-ssh (pssh), on a fleet of loopback "hosts" served by one cheap
# x/crypto/ssh server in its own process (scripts/bench-fleet-server).
#
# Usage (the full comparison, about 2 minutes, on a quiet machine: `uptime`
# shows a 1-minute load below 1.5), from the repository root:
#
#	make bench-fleet-fanout
#
# Smoke test at small sizes: N=50 BIG=200 BIGPAR=20 ROUNDS=1 make bench-fleet-fanout
#
# Why client-side: one OpenSSH sshd serving every target on a 2-core machine
# burns ~0.4 CPU-s per connection, so every client ties and the benchmark
# measures the server (scripts/bench-fleet.sh, kept as the secondary figure).
# On a real fleet each host has its own CPU and the operator's machine pays
# only the client side. bench-fleet-server costs a few ms of CPU per host and
# delays each write it makes by DELAY (20ms) to stand in for the network.
#
# What runs, against the same server in one run:
#   1. N hosts (1,000) at concurrency PAR (100), ROUNDS (2) interleaved rounds
#      of fleet-run (examples/fleet-run), parallel-ssh and the bare
#      x/crypto/ssh loop (scripts/bench-fleet-bare, the floor a Go client
#      reaches); best (lowest) wall time of the rounds, the ratio
#      fleet-run/pssh (goal <= 0.25), client CPU, and peak RSS.
#   2. fleet-run on BIG hosts (10,000) at concurrency BIGPAR (1,000).
# Peak RSS is given twice: "max proc" is GNU time's maximum resident set of
# the largest single process (pssh's python, or one of its ssh children);
# "tree" is the sum over the client's whole process tree (pssh plus its ssh
# processes alive at once), sampled every 0.2s.
# Knobs: N=1000 PAR=100 ROUNDS=2 BIG=10000 (0 skips) BIGPAR=1000 DELAY=20ms
# EXEC=each (run uname -a for every exec; once: run it once at server start)
# GOBENCH=1 (0 skips: BenchmarkSSHDFanOut in ./fleet on the N hosts, cold and
# then a second command over pooled connections) BENCHTIME=2x KEEP=1 (keep
# the work directory).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000}
PAR=${PAR:-100}
ROUNDS=${ROUNDS:-2}
BIG=${BIG:-10000}
BIGPAR=${BIGPAR:-1000}
DELAY=${DELAY:-20ms}
EXEC=${EXEC:-each}

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench-fleet-fanout: $1 is required ($2)" >&2; exit 1; }; }
need parallel-ssh "apt-get install pssh"
need ssh-keygen "apt-get install openssh-client"
need python3 "apt-get install python3"
[ -x /usr/bin/time ] || { echo "bench-fleet-fanout: /usr/bin/time is required (apt-get install time)" >&2; exit 1; }

load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN { exit !(l >= 1.5) }'; then
	echo "bench-fleet-fanout: warning: 1-minute load is $load1; on a busy machine these numbers are only a smoke test (run make bench-fleet-fanout when uptime shows a load below 1.5)" >&2
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; cat "$work/server.log" >&2; fi
	[ -n "${KEEP:-}" ] || rm -rf "$work"
	echo "work: $work"
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N "" -f "$work/host_ed25519"
ssh-keygen -q -t ed25519 -N "" -f "$work/id_ed25519"
go build -o "$work/fleet-run" ./examples/fleet-run
go build -o "$work/bare" ./scripts/bench-fleet-bare
go build -o "$work/server" ./scripts/bench-fleet-server

total=$(( N > BIG ? N : BIG ))
"$work/server" -n "$total" -host-key "$work/host_ed25519" -authorized-key "$work/id_ed25519.pub" \
	-hosts-out "$work/hosts-all" -known-hosts-out "$work/known_hosts-all" \
	-delay "$DELAY" -exec "$EXEC" -lifetime "${LIFETIME:-60m}" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 600); do
	[ -f "$work/hosts-all" ] && break
	kill -0 "$server_pid" 2>/dev/null || { echo "bench-fleet-fanout: the server did not start" >&2; exit 1; }
	sleep 0.1
done
[ -f "$work/hosts-all" ] || { echo "bench-fleet-fanout: the server did not start in 60s" >&2; exit 1; }
# The hosts (host:port) and known_hosts of each size: the first K of each.
subset() { head -n "$1" "$work/hosts-all" > "$work/hosts-$1"; head -n "$1" "$work/known_hosts-all" > "$work/known_hosts-$1"; }
subset "$N"
if [ "$BIG" -gt 0 ]; then subset "$BIG"; fi
user=$(id -un)

# sample PID: the peak summed RSS (KiB) of PID and its descendants, every 0.2s, until PID exits.
cat > "$work/treerss.py" <<'PY'
import os, sys, time
root, page, peak = int(sys.argv[1]), os.sysconf("SC_PAGE_SIZE"), 0
def stat(p):
    with open(f"/proc/{p}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()
while True:
    try:
        if stat(root)[0] == "Z":
            break
    except OSError:
        break
    kids, rss = {}, {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                f = stat(p)
            except (OSError, ValueError):
                continue
            kids.setdefault(int(f[1]), []).append(int(p))
            rss[int(p)] = int(f[21])
    tot, todo = 0, [root]
    while todo:
        q = todo.pop()
        tot += rss.get(q, 0)
        todo += kids.get(q, [])
    peak = max(peak, tot * page // 1024)
    time.sleep(0.2)
print(peak)
PY

# measure NAME CMD...: runs CMD under GNU time with the tree sampler; sets
# wall (s), cpu (user+sys s, with children), rss (max proc, MB), tree (MB).
measure() {
	local name=$1 t0 t1; shift
	t0=$(date +%s.%N)
	/usr/bin/time -v -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" &
	local tpid=$!
	python3 "$work/treerss.py" "$tpid" > "$work/$name.tree" &
	local spid=$!
	wait "$tpid" || true
	t1=$(date +%s.%N)
	wait "$spid" || true
	wall=$(echo "$t1 - $t0" | bc -l)
	cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$work/$name.time")
	rss=$(awk -F': ' '/Maximum resident set size/ {print int($2 / 1024)}' "$work/$name.time")
	tree=$(( $(cat "$work/$name.tree") / 1024 ))
}
fleetrun() { # fleetrun HOSTS CONCURRENCY
	measure fleet-run "$work/fleet-run" -hosts "$work/hosts-$1" -known-hosts "$work/known_hosts-$1" \
		-user "$user" -key "$work/id_ed25519" -concurrency "$2" -timeout 120s -progress never -- uname -a
	ok=$(grep -c '"exit_code":0' "$work/fleet-run.out" || true)
}
pssh() { # pssh HOSTS CONCURRENCY
	measure pssh parallel-ssh -h "$work/hosts-$1" -p "$2" -l "$user" -t 120 -i \
		-O "UserKnownHostsFile=$work/known_hosts-$1" -O StrictHostKeyChecking=yes -O BatchMode=yes \
		-O "IdentityFile=$work/id_ed25519" -O IdentitiesOnly=yes -O ControlMaster=no -O ControlPath=none \
		uname -a
	ok=$(grep -c '\[SUCCESS\]' "$work/pssh.out" || true)
}
bare() { # bare HOSTS CONCURRENCY
	measure bare "$work/bare" -hosts "$work/hosts-$1" -known-hosts "$work/known_hosts-$1" \
		-user "$user" -key "$work/id_ed25519" -concurrency "$2" -- uname -a
	ok=$(cut -d/ -f1 "$work/bare.out")
}
report() { printf '%-9s %7.2fs wall  CPU %6.2fs  peak RSS %5d MB max proc, %5d MB tree  (%d/%d ok)\n' "$1" "$wall" "$cpu" "$rss" "$tree" "$ok" "$2"; }

echo "bench-fleet-fanout: uname -a on $N hosts at concurrency $PAR, $ROUNDS interleaved rounds, server delay $DELAY per write, exec $EXEC"
echo "bench-fleet-fanout: machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), RLIMIT_NOFILE $(ulimit -Sn)/$(ulimit -Hn)"
bo=""; bp=""; bx=""
for r in $(seq "$ROUNDS"); do
	echo "round $r:"
	fleetrun "$N" "$PAR"; report fleet-run "$N"; bo=$(printf '%s\n' $bo "$wall" | sort -g | head -1); ro=$rss; co=$cpu
	pssh "$N" "$PAR"; report pssh "$N"; bp=$(printf '%s\n' $bp "$wall" | sort -g | head -1); rp=$rss; tp=$tree; cp=$cpu
	bare "$N" "$PAR"; report bare "$N"; bx=$(printf '%s\n' $bx "$wall" | sort -g | head -1); cx=$cpu
done
printf 'bench-fleet-fanout: best of %d on %d hosts at concurrency %d: fleet-run %.2fs, pssh %.2fs, bare x/crypto/ssh %.2fs (floor)\n' "$ROUNDS" "$N" "$PAR" "$bo" "$bp" "$bx"
printf 'bench-fleet-fanout: ratio fleet-run/pssh = %.2f (goal <= 0.25), fleet-run/bare = %.2f; peak RSS fleet-run %d MB, pssh %d MB max proc / %d MB tree (last round)\n' \
	"$(echo "$bo / $bp" | bc -l)" "$(echo "$bo / $bx" | bc -l)" "$ro" "$rp" "$tp"
printf 'bench-fleet-fanout: client CPU per host (last round): fleet-run %.2fms, pssh+ssh %.2fms, bare %.2fms; ratio bare/pssh = %.2f (the floor: no client beats it by much here)\n' \
	"$(echo "1000 * $co / $N" | bc -l)" "$(echo "1000 * $cp / $N" | bc -l)" "$(echo "1000 * $cx / $N" | bc -l)" "$(echo "$bx / $bp" | bc -l)"

if [ "$BIG" -gt 0 ]; then
	fleetrun "$BIG" "$BIGPAR"
	echo "bench-fleet-fanout: fleet-run on $BIG hosts at concurrency $BIGPAR:"; report fleet-run "$BIG"
	[ "$ok" -eq "$BIG" ] || { echo "bench-fleet-fanout: fleet-run failed on some hosts; first errors:"; grep -v '"exit_code":0' "$work/fleet-run.out" | head -3; tail -3 "$work/fleet-run.err"; }
fi
if [ "${GOBENCH:-1}" = 1 ]; then
	echo "bench-fleet-fanout: Go benchmark, fleet.Group on $N hosts at concurrency $PAR, cold then pooled (a second command over open connections):"
	OPSKIT_BENCH_HOSTS_FILE=$work/hosts-$N OPSKIT_BENCH_HOSTS=$N OPSKIT_BENCH_CONCURRENCY=$PAR OPSKIT_BENCH_USER=$user \
	OPSKIT_BENCH_KEY=$work/id_ed25519 OPSKIT_BENCH_KNOWN_HOSTS=$work/known_hosts-$N \
		go test -run '^$' -bench BenchmarkSSHDFanOut -benchtime "${BENCHTIME:-2x}" ./fleet | grep -E 'Benchmark|ok|FAIL'
fi
echo "bench-fleet-fanout: load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
