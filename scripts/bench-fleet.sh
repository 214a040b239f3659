#!/usr/bin/env bash
# bench-fleet: opskit fan-out against parallel-ssh (pssh) on one real
# sshd on loopback, reached as 200 targets 127.0.0.2..127.0.0.201.
# This is the secondary figure (make bench-fleet-sshd): one sshd on a
# 2-core machine spends ~0.4 CPU-s per connection, so it measures the
# server and every client ties. The client-side comparison is
# scripts/bench-fleet-fanout.sh (make bench-fleet-fanout).
#
# Both sides: parallelism 50, cold connections, the same key exchange
# (curve25519-sha256), cipher (aes128-gcm@openssh.com) and host-key type
# (ssh-ed25519), enforced by the server. They run interleaved, ROUNDS
# times each, and the medians give the wall-time ratio opskit/pssh.
# A third client, the barest x/crypto/ssh loop (scripts/bench-fleet-bare),
# runs in each round too: its ratio to pssh is the floor any Go client can
# reach against this sshd on this machine.
# Then 1,000 targets through opskit, and a second command over pooled
# connections (Go benchmark BenchmarkSSHDFanOut).
# Knobs: ROUNDS=3 N=200 BIG=1000 (0 skips) PAR=50 GOBENCH=1 (0 skips) BENCHTIME=3x
# SSHD_FLAGS (e.g. -r) KEEP=1 (keep the work directory).
# Each round also prints the CPU used by the client side (with its ssh children
# for pssh) and by sshd (its reaped children), to show which side the time is on.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"

ROUNDS=${ROUNDS:-3}
N=${N:-200}
BIG=${BIG:-1000}
PAR=${PAR:-50}

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench-fleet: $1 is required ($2)" >&2; exit 1; }; }
need sshd openssh-server
need parallel-ssh pssh
need ssh-keygen openssh-client

work=$(mktemp -d)
sshd_pid=""
cleanup() { [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"; echo "work: $work"; }
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] && mkdir -p /run/sshd

ssh-keygen -q -t ed25519 -N "" -f "$work/host_ed25519"
ssh-keygen -q -t ed25519 -N "" -f "$work/id_ed25519"
cp "$work/id_ed25519.pub" "$work/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=$(id -un)
cat > "$work/sshd_config" <<CFG
Port $port
# One sshd for all targets: 127.0.0.0/8 is loopback, and AllowUsers
# below admits only loopback clients.
ListenAddress 0.0.0.0
HostKey $work/host_ed25519
PidFile none
AuthorizedKeysFile $work/authorized_keys
StrictModes no
UsePAM no
UseDNS no
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowUsers $user@127.0.0.0/8
MaxStartups 2000
MaxSessions 20
KexAlgorithms curve25519-sha256
Ciphers aes128-gcm@openssh.com
HostKeyAlgorithms ssh-ed25519
PrintMotd no
PrintLastLog no
LogLevel ERROR
CFG
"$(command -v sshd)" -D -e ${SSHD_FLAGS:-} -f "$work/sshd_config" 2>"$work/sshd.log" &
sshd_pid=$!
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

hosts() { # hosts N FILE: 127.0.0.2 onwards, host:port per line
	python3 - "$1" "$port" > "$2" <<'PY'
import sys
n, port = int(sys.argv[1]), sys.argv[2]
for i in range(2, n + 2):
    print(f"127.0.{i // 256}.{i % 256}:{port}")
PY
}
hosts "$N" "$work/hosts"
hosts "$BIG" "$work/hosts-big"
hosts $(( N > BIG ? N : BIG )) "$work/hosts-all"
pub=$(cut -d' ' -f1,2 "$work/host_ed25519.pub")
sed -E "s|^([0-9.]+):([0-9]+)$|[\1]:\2 $pub|" "$work/hosts-all" > "$work/known_hosts"

go build -o "$work/fleet-run" ./examples/fleet-run
go build -o "$work/bare" ./scripts/bench-fleet-bare
ssh_opts=(-O "UserKnownHostsFile=$work/known_hosts" -O StrictHostKeyChecking=yes -O BatchMode=yes
	-O "IdentityFile=$work/id_ed25519" -O IdentitiesOnly=yes -O ControlMaster=no -O ControlPath=none
	-O KexAlgorithms=curve25519-sha256 -O Ciphers=aes128-gcm@openssh.com -O HostKeyAlgorithms=ssh-ed25519)

# Each run also records the client side's CPU (user+sys seconds, with its
# children: the ssh processes for pssh) in $work/cpu.
opskit() {
	/usr/bin/time -f '%U %S' -o "$work/cpu" "$work/fleet-run" -hosts "$1" -user "$user" -key "$work/id_ed25519" -known-hosts "$work/known_hosts" \
		-concurrency "$PAR" -timeout 120s -- uname -a > "$work/opskit.out" 2>"$work/opskit.err"
}
bare() { # the barest x/crypto/ssh fan-out: the floor a Go client can reach
	/usr/bin/time -f '%U %S' -o "$work/cpu" "$work/bare" -hosts "$1" -user "$user" -key "$work/id_ed25519" -known-hosts "$work/known_hosts" \
		-concurrency "$PAR" -- uname -a > "$work/bare.out" 2>&1
}
pssh() {
	rm -rf "$work/pssh.out"
	/usr/bin/time -f '%U %S' -o "$work/cpu" parallel-ssh -h "$1" -p "$PAR" -l "$user" -t 120 "${ssh_opts[@]}" -o "$work/pssh.out" uname -a > "$work/pssh.log" 2>&1
}
now() { date +%s.%N; }
timeit() { local t0 t1; t0=$(now); "$@"; t1=$(now); echo "$t1 - $t0" | bc -l; }
cpu() { tail -1 "$work/cpu" | awk '{print $1 + $2}'; }
# sshd's CPU: its reaped children's user+sys (fields 16 and 17 of /proc/PID/stat), in seconds.
tck=$(getconf CLK_TCK)
sshd_cpu() { awk -v t="$tck" '{print ($16 + $17) / t}' "/proc/$sshd_pid/stat"; }

echo "bench-fleet: uname -a on $N targets (127.0.0.2..), one sshd on loopback, parallelism $PAR, $ROUNDS interleaved rounds"
echo "bench-fleet: machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
o=(); p=(); x=(); oc=(); pc=()
for r in $(seq "$ROUNDS"); do
	s0=$(sshd_cpu); to=$(timeit opskit "$work/hosts"); co=$(cpu); s1=$(sshd_cpu)
	ok=$(grep -c '"exit_code":0' "$work/opskit.out" || true)
	tp=$(timeit pssh "$work/hosts"); cp=$(cpu); s2=$(sshd_cpu)
	okp=$(grep -c SUCCESS "$work/pssh.log" || true)
	tx=$(timeit bare "$work/hosts"); cx=$(cpu); s3=$(sshd_cpu)
	printf '  round %d: opskit %.2fs wall, CPU client %.2fs sshd %.2fs (%d/%d ok)   pssh %.2fs wall, CPU client %.2fs sshd %.2fs (%d/%d ok)   bare x/crypto %.2fs wall, CPU client %.2fs sshd %.2fs (%s)\n' \
		"$r" "$to" "$co" "$(echo "$s1 - $s0" | bc -l)" "$ok" "$N" "$tp" "$cp" "$(echo "$s2 - $s1" | bc -l)" "$okp" "$N" \
		"$tx" "$cx" "$(echo "$s3 - $s2" | bc -l)" "$(cat "$work/bare.out")"
	o+=("$to"); p+=("$tp"); x+=("$tx"); oc+=("$co"); pc+=("$cp")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mo=$(median "${o[@]}"); mp=$(median "${p[@]}")
printf 'bench-fleet: median wall time: opskit %.2fs, pssh %.2fs, ratio opskit/pssh = %.2f (goal <= 0.60)\n' "$mo" "$mp" "$(echo "$mo / $mp" | bc -l)"
mx=$(median "${x[@]}")
printf 'bench-fleet: median wall time: bare x/crypto/ssh loop %.2fs, ratio bare/pssh = %.2f (the floor a Go client reaches against this sshd), opskit/bare = %.2f\n' "$mx" "$(echo "$mx / $mp" | bc -l)" "$(echo "$mo / $mx" | bc -l)"
mco=$(median "${oc[@]}"); mcp=$(median "${pc[@]}")
printf 'bench-fleet: median client CPU: opskit %.2fs, pssh+ssh %.2fs, ratio %.2f (the rest of the wall time is sshd)\n' "$mco" "$mcp" "$(echo "$mco / $mcp" | bc -l)"

if [ "$BIG" -gt 0 ]; then
	tb=$(timeit opskit "$work/hosts-big") || true
	okb=$(grep -c '"exit_code":0' "$work/opskit.out" || true)
	printf 'bench-fleet: opskit on %d targets: %d ok in %.2fs (client CPU %.2fs)\n' "$BIG" "$okb" "$tb" "$(cpu)"
fi
[ "${GOBENCH:-1}" = 1 ] || exit 0

echo "bench-fleet: Go benchmark, cold then pooled (a second command over open connections), $N targets:"
OPSKIT_BENCH_PORT=$port OPSKIT_BENCH_HOSTS=$N OPSKIT_BENCH_CONCURRENCY=$PAR OPSKIT_BENCH_USER=$user \
OPSKIT_BENCH_KEY=$work/id_ed25519 OPSKIT_BENCH_KNOWN_HOSTS=$work/known_hosts \
	go test -run '^$' -bench BenchmarkSSHDFanOut -benchtime "${BENCHTIME:-3x}" ./fleet | grep -E 'Benchmark|ok|FAIL'
