#!/usr/bin/env bash
# Runner overhead against a bare errgroup loop: 10,000 no-op targets at
# concurrency 100 (BenchmarkRollout10k in workflow/bench_test.go). The two
# run back to back in each round, so load on a shared machine hits both;
# the ratio printed is the median of the rounds' ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-9}
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" ./workflow/
for i in $(seq "$rounds"); do
	"$bin" -test.run '^$' -test.bench 'Rollout10k' -test.benchmem -test.benchtime 50x
done | awk -v rounds="$rounds" '
/^BenchmarkRollout10k\/runner/   { for (i = 1; i <= NF; i++) { if ($i == "ns/target") rn[++nr] = $(i-1); if ($i == "B/op") rb = $(i-1); if ($i == "allocs/op") ra = $(i-1) } }
/^BenchmarkRollout10k\/errgroup/ { for (i = 1; i <= NF; i++) { if ($i == "ns/target") en[++ne] = $(i-1); if ($i == "B/op") eb = $(i-1); if ($i == "allocs/op") ea = $(i-1) } }
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
	return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
END {
	if (nr == 0 || nr != ne) { print "bench-workflow: benchmark output missing" > "/dev/stderr"; exit 1 }
	for (i = 1; i <= nr; i++) r[i] = rn[i] / en[i]
	mr = median(rn, nr); me = median(en, ne); ratio = median(r, nr)
	printf "10,000 no-op targets, concurrency 100, %d rounds (median):\n", nr
	printf "  workflow.Runner  %8.0f ns/target  %6.1f B/target  %4.2f allocs/target\n", mr, rb / 10000, ra / 10000
	printf "  errgroup loop    %8.0f ns/target  %6.1f B/target  %4.2f allocs/target\n", me, eb / 10000, ea / 10000
	printf "runner/errgroup time ratio: %.2fx (goal <= 1.5x)\n", ratio
}'
