#!/usr/bin/env bash
# bench-release: push a file (1 GiB by default) through the built
# release-upload -> release-server binaries over loopback, and in the same
# run do the naive local equivalent
#     openssl dgst -sha256 FILE && cp FILE DEST && sync
# Prints both throughputs, their ratio (opskit / naive; goal >= 0.8 for the
# directory store, >= 0.5 for S3) and the
# peak RSS of the client and the server (goal <= 64 MiB each), read from
# GNU time -v ("Maximum resident set size").
#
# STORES picks the release stores (default "dir s3"): "dir" stores under
# -dir; "s3" runs versitygw ($OPSKIT_VERSITYGW or
# /root/.cache/opskit/bin/versitygw, skipped with a note when missing) on
# loopback and stores through -s3-endpoint (goal >= 0.5 for S3). Each store
# gets its own server process, so the peak RSS is per store.
#
# --- s3 direct-put baseline (begin) ---
# For the s3 store a second baseline is measured in the same rounds: what a
# user would otherwise do to put a release in a bucket,
#     openssl dgst -sha256 FILE && bench-s3-put FILE (one PutObject with
#     x-amz-checksum-sha256, to the same versitygw) && sync
# (scripts/bench-s3-put, minio-go with release/s3store's options). Both
# ratios are printed: vs cp says what S3 costs against a local copy (the
# goal's baseline), vs a direct put says what opskit adds to an S3 upload
# that this machine has to pay anyway: the gateway hashes and writes the
# object to the same disk, which a cp never does.
# --- s3 direct-put baseline (end) ---
#
# Environment: SIZE_MIB (default 1024), ROUNDS (default 3; each round runs
# both sides back to back; the best of each side and the per-round ratios
# are printed), BENCH_DIR (default /tmp; must hold 4 x SIZE), STORES.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
ROUNDS=${ROUNDS:-3}
STORES=${STORES:-dir s3}
VERSITYGW=${OPSKIT_VERSITYGW:-/root/.cache/opskit/bin/versitygw}
TIME=/usr/bin/time
for tool in openssl "$TIME" go; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench-release: $tool is missing (GNU time: apt-get install time)" >&2
		exit 1
	fi
done

work=$(mktemp -d "${BENCH_DIR:-/tmp}/bench-release.XXXXXX")
server_pid=""
gw_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
	if [ -n "$gw_pid" ]; then kill "$gw_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "building release-server and release-upload"
go build -o "$work/bin/" ./examples/release-server ./examples/release-upload
# --- s3 direct-put baseline (begin) ---
case " $STORES " in *" s3 "*) go build -o "$work/bin/" ./scripts/bench-s3-put ;; esac
# --- s3 direct-put baseline (end) ---

echo "writing a ${SIZE_MIB} MiB random file"
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$work/file"
sync
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/secret"
mkdir -p "$work/store"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mibps() { awk -v s="$1" -v m="$SIZE_MIB" 'BEGIN { printf "%.1f", m / s }'; }
peak_kib() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"; }
cpu() { awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } /Voluntary context switches/ { v = $2 } END { printf "user %ss sys %ss, %s voluntary context switches", u, s, v }' "$1"; }

# bench_store NAME SERVER-FLAGS...: start release-server with the flags,
# run ROUNDS rounds of naive vs opskit, stop it and print the summary.
bench_store() {
	local name=$1
	shift
	rm -f "$work/server.out"
	"$TIME" -v -o "$work/server.time" "$work/bin/release-server" -secret-file "$work/secret" \
		-addr 127.0.0.1:0 -max-size $(((SIZE_MIB + 1) << 20)) "$@" >"$work/server.out" 2>"$work/server.log" &
	local time_pid=$!
	for _ in $(seq 100); do
		grep -q '^listening on ' "$work/server.out" 2>/dev/null && break
		sleep 0.1
	done
	local url
	url=$(sed -n 's/^listening on //p' "$work/server.out")
	[ -n "$url" ] || { echo "release-server did not start:"; cat "$work/server.log"; exit 1; }
	server_pid=$(pgrep -P "$time_pid" release-server || true)

	local best_naive="" best_opskit="" client_peak=0 ratios="" round naive opskit peak client_cpu r t0 t1
	# --- s3 direct-put baseline (begin) ---
	local best_direct="" direct="" direct_ratios="" sum
	# --- s3 direct-put baseline (end) ---
	for round in $(seq "$ROUNDS"); do
		# Same page-cache state for both sides: the source file is cached.
		cat "$work/file" >/dev/null

		t0=$(now)
		openssl dgst -sha256 "$work/file" >/dev/null && cp "$work/file" "$work/dest" && sync
		t1=$(now)
		naive=$(elapsed "$t0" "$t1")
		rm -f "$work/dest"
		sync

		# --- s3 direct-put baseline (begin) ---
		if [ "$name" = s3 ]; then
			cat "$work/file" >/dev/null
			t0=$(now)
			sum=$(openssl dgst -sha256 -r "$work/file" | cut -d' ' -f1)
			"$work/bin/bench-s3-put" -endpoint "$gw_url" -bucket bench -credentials-file "$work/s3creds" \
				-key "direct/$round" -sha256 "$sum" "$work/file"
			sync
			t1=$(now)
			direct=$(elapsed "$t0" "$t1")
			rm -rf "$work/gw/data/bench/direct"
			sync
			if [ -z "$best_direct" ] || awk -v a="$direct" -v b="$best_direct" 'BEGIN { exit !(a < b) }'; then best_direct=$direct; fi
			cat "$work/file" >/dev/null
		fi
		# --- s3 direct-put baseline (end) ---

		t0=$(now)
		"$TIME" -v -o "$work/client.time" "$work/bin/release-upload" -url "$url/release" -secret-file "$work/secret" \
			-product bench -version "$name.$round" -progress never "$work/file" >"$work/client.out"
		[ "$name" = s3 ] && sync # the gateway's files count too
		t1=$(now)
		opskit=$(elapsed "$t0" "$t1")
		peak=$(peak_kib "$work/client.time")
		client_cpu=$(cpu "$work/client.time")
		[ "$peak" -gt "$client_peak" ] && client_peak=$peak
		rm -rf "$work/store/bench" "$work/gw/data/bench/bench"
		sync

		r=$(awk -v n="$naive" -v o="$opskit" 'BEGIN { printf "%.2f", n / o }')
		ratios="$ratios $r"
		# --- s3 direct-put baseline (begin) ---
		if [ -n "$direct" ]; then
			direct_ratios="$direct_ratios $(awk -v d="$direct" -v o="$opskit" 'BEGIN { printf "%.2f", d / o }')"
			printf '%s round %d: direct S3 put (openssl dgst + PutObject + sync) %ss (%s MiB/s)   ratio opskit / direct %s\n' "$name" "$round" \
				"$direct" "$(mibps "$direct")" "${direct_ratios##* }"
		fi
		# --- s3 direct-put baseline (end) ---
		printf '%s round %d: naive %ss (%s MiB/s)   opskit %ss (%s MiB/s)   ratio %s   %s\n' "$name" "$round" "$naive" "$(mibps "$naive")" \
			"$opskit" "$(mibps "$opskit")" "$r" "$(cut -c1-40 "$work/client.out")"
		if [ -z "$best_naive" ] || awk -v a="$naive" -v b="$best_naive" 'BEGIN { exit !(a < b) }'; then best_naive=$naive; fi
		if [ -z "$best_opskit" ] || awk -v a="$opskit" -v b="$best_opskit" 'BEGIN { exit !(a < b) }'; then best_opskit=$opskit; fi
	done

	kill -TERM "$server_pid"
	wait "$time_pid" || true
	server_pid=""
	local server_peak goal=0.8
	server_peak=$(peak_kib "$work/server.time")
	[ "$name" = s3 ] && goal=0.5

	local ratio median
	ratio=$(awk -v n="$best_naive" -v o="$best_opskit" 'BEGIN { printf "%.2f", n / o }')
	echo
	echo "store:           $name"
	echo "file:            ${SIZE_MIB} MiB, best of $ROUNDS rounds, machine load: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "naive:           openssl dgst -sha256 + cp + sync: ${best_naive}s ($(mibps "$best_naive") MiB/s)"
	echo "opskit:          release-upload -> release-server ($name store; loopback, sha256 both sides, fsync): ${best_opskit}s ($(mibps "$best_opskit") MiB/s)"
	median=$(echo $ratios | tr ' ' '\n' | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
	echo "throughput ratio (opskit / naive): $ratio best against best; per round:$ratios, median $median (goal >= $goal)"
	# --- s3 direct-put baseline (begin) ---
	if [ -n "$best_direct" ]; then
		echo "direct S3 put:   openssl dgst -sha256 + PutObject (x-amz-checksum-sha256) to the same versitygw + sync: ${best_direct}s ($(mibps "$best_direct") MiB/s)"
		echo "throughput ratio (opskit / direct S3 put): $(awk -v d="$best_direct" -v o="$best_opskit" 'BEGIN { printf "%.2f", d / o }') best against best; per round:$direct_ratios"
		echo "throughput ratio (direct S3 put / naive): $(awk -v n="$best_naive" -v d="$best_direct" 'BEGIN { printf "%.2f", n / d }') (where a hand-made S3 upload to this gateway stands against the cp baseline)"
	fi
	# --- s3 direct-put baseline (end) ---
	echo "peak RSS client: $((client_peak / 1024)) MiB (${client_peak} KiB; goal <= 64 MiB); last round CPU $client_cpu"
	echo "peak RSS server: $((server_peak / 1024)) MiB (${server_peak} KiB; goal <= 64 MiB); all rounds CPU $(cpu "$work/server.time")"
	echo
}

# start_gateway: versitygw on a free loopback port with a "bench" bucket;
# sets gw_url and writes the credentials file.
start_gateway() {
	mkdir -p "$work/gw/iam" "$work/gw/data"
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	gw_url="http://127.0.0.1:$port"
	local key=bench-access secret
	secret=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	ROOT_ACCESS_KEY=$key ROOT_SECRET_KEY=$secret "$TIME" -v -o "$work/gw.time" "$VERSITYGW" --port "127.0.0.1:$port" \
		--iam-dir "$work/gw/iam" posix "$work/gw/data" >"$work/gw.log" 2>&1 &
	gw_time_pid=$!
	sleep 0.1
	gw_pid=$(pgrep -P "$gw_time_pid" versitygw || true)
	printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$key" "$secret" >"$work/s3creds"
	for _ in $(seq 100); do
		[ -n "$gw_pid" ] || gw_pid=$(pgrep -P "$gw_time_pid" versitygw || true)
		if curl -fsS -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" \
			-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" -X PUT "$gw_url/bench" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "versitygw did not start:"
	cat "$work/gw.log"
	exit 1
}

for store in $STORES; do
	case $store in
	dir)
		bench_store dir -dir "$work/store"
		;;
	s3)
		if [ ! -x "$VERSITYGW" ]; then
			echo "s3: versitygw not found at $VERSITYGW (build it: GOBIN=$(dirname "$VERSITYGW") go install github.com/versity/versitygw/cmd/versitygw@v1.8.0); skipped"
			continue
		fi
		start_gateway
		bench_store s3 -dir "$work/store" -s3-endpoint "$gw_url" -bucket bench -s3-credentials-file "$work/s3creds" -server-id bench
		kill -TERM "$gw_pid"
		wait "$gw_time_pid" || true
		gw_pid=""
		echo "peak RSS versitygw: $(($(peak_kib "$work/gw.time") / 1024)) MiB"
		;;
	*)
		echo "unknown store $store (want dir or s3)" >&2
		exit 2
		;;
	esac
done

# --- OBSERVE=1: instrumentation overhead (issue 20) --------------------------
# A separate comparison, after the stores above: two directory-store servers
# side by side, one bare and one with metrics and tracing on (-metrics-addr,
# and OTEL_EXPORTER_OTLP_ENDPOINT exporting every span over OTLP/HTTP to a
# loopback sink), the same file uploaded to each in every round, in
# alternating order. Prints both throughputs and observed / bare (goal >=
# 0.95), then the observed server's upload counter and the span batches the
# sink received, to show both were on. STORES=dir OBSERVE=1 keeps the run
# short.
if [ "${OBSERVE:-0}" = 1 ]; then
	obs_pids=""
	trap 'for p in $obs_pids; do kill "$p" 2>/dev/null || true; done; cleanup' EXIT
	cat >"$work/otlp-sink.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[1], "a") as f:
            f.write(self.path + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
	python3 "$work/otlp-sink.py" "$work/otlp.requests" >"$work/otlp.port" &
	obs_pids="$obs_pids $!"
	for _ in $(seq 50); do [ -s "$work/otlp.port" ] && break; sleep 0.1; done
	mkdir -p "$work/obs-bare" "$work/obs-on"
	"$work/bin/release-server" -secret-file "$work/secret" -addr 127.0.0.1:0 -max-size $(((SIZE_MIB + 1) << 20)) \
		-dir "$work/obs-bare" >"$work/obs-bare.out" 2>"$work/obs-bare.log" &
	obs_bare_pid=$!
	OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(cat "$work/otlp.port")" OTEL_SERVICE_NAME=bench-release \
		"$work/bin/release-server" -secret-file "$work/secret" -addr 127.0.0.1:0 -max-size $(((SIZE_MIB + 1) << 20)) \
		-dir "$work/obs-on" -metrics-addr 127.0.0.1:0 >"$work/obs-on.out" 2>"$work/obs-on.log" &
	obs_on_pid=$!
	obs_pids="$obs_pids $obs_bare_pid $obs_on_pid"
	for _ in $(seq 100); do
		grep -q '^listening on ' "$work/obs-bare.out" 2>/dev/null && grep -q '^metrics on ' "$work/obs-on.out" 2>/dev/null && break
		sleep 0.1
	done
	obs_bare_url=$(sed -n 's/^listening on //p' "$work/obs-bare.out")
	obs_on_url=$(sed -n 's/^listening on //p' "$work/obs-on.out")
	obs_metrics_url=$(sed -n 's/^metrics on //p' "$work/obs-on.out")
	[ -n "$obs_bare_url" ] && [ -n "$obs_metrics_url" ] || { echo "release-server did not start:"; cat "$work/obs-bare.log" "$work/obs-on.log"; exit 1; }

	# obs_upload URL DIR VERSION: prints the seconds one upload took.
	obs_upload() {
		local t0 t1
		t0=$(now)
		"$work/bin/release-upload" -url "$1/release" -secret-file "$work/secret" -product bench -version "$3" \
			-progress never "$work/file" >/dev/null
		t1=$(now)
		rm -rf "$2/bench"
		sync
		elapsed "$t0" "$t1"
	}
	best_bare="" best_on="" obs_ratios=""
	for round in $(seq "$ROUNDS"); do
		cat "$work/file" >/dev/null
		if [ $((round % 2)) = 1 ]; then
			bare=$(obs_upload "$obs_bare_url" "$work/obs-bare" "obs.$round")
			on=$(obs_upload "$obs_on_url" "$work/obs-on" "obs.$round")
		else
			on=$(obs_upload "$obs_on_url" "$work/obs-on" "obs.$round")
			bare=$(obs_upload "$obs_bare_url" "$work/obs-bare" "obs.$round")
		fi
		r=$(awk -v b="$bare" -v o="$on" 'BEGIN { printf "%.3f", b / o }')
		obs_ratios="$obs_ratios $r"
		printf 'observe round %d: bare %ss (%s MiB/s)   metrics+tracing %ss (%s MiB/s)   ratio %s\n' "$round" "$bare" "$(mibps "$bare")" "$on" "$(mibps "$on")" "$r"
		if [ -z "$best_bare" ] || awk -v a="$bare" -v b="$best_bare" 'BEGIN { exit !(a < b) }'; then best_bare=$bare; fi
		if [ -z "$best_on" ] || awk -v a="$on" -v b="$best_on" 'BEGIN { exit !(a < b) }'; then best_on=$on; fi
	done
	created=$(curl -fsS "$obs_metrics_url" | sed -n 's/^opskit_release_uploads_total{result="created"} //p')
	kill -TERM "$obs_bare_pid" "$obs_on_pid"
	wait "$obs_bare_pid" "$obs_on_pid" || true # the observed server flushes its spans on the way out
	echo
	echo "instrumentation overhead (dir store, ${SIZE_MIB} MiB, best of $ROUNDS rounds, machine load: $(cut -d' ' -f1-3 /proc/loadavg))"
	echo "bare:            ${best_bare}s ($(mibps "$best_bare") MiB/s)"
	echo "metrics+tracing: ${best_on}s ($(mibps "$best_on") MiB/s); opskit_release_uploads_total{result=\"created\"} $created, OTLP export requests $(wc -l <"$work/otlp.requests" 2>/dev/null || echo 0)"
	echo "throughput ratio (metrics+tracing / bare): $(awk -v b="$best_bare" -v o="$best_on" 'BEGIN { printf "%.3f", b / o }') best against best; per round:$obs_ratios (goal >= 0.95)"
fi
