# fleet: comparison runs against parallel-ssh. The primary figure is the
# client side (scripts/bench-fleet-fanout.sh: a cheap x/crypto/ssh server in
# another process on 1,000 and 10,000 loopback addresses); the secondary one
# is one real OpenSSH sshd for every target (scripts/bench-fleet.sh), where
# the server's CPU decides the wall time.
.PHONY: bench-fleet bench-fleet-fanout bench-fleet-sshd

bench-fleet: ## fleet: both comparisons below, one after the other, client side first
	bash scripts/bench-fleet-fanout.sh
	bash scripts/bench-fleet.sh

bench-fleet-fanout: ## fleet: fleet-run vs parallel-ssh, 1,000 hosts at 100, best of 2; fleet-run on 10,000 at 1,000; bare x/crypto/ssh floor
	bash scripts/bench-fleet-fanout.sh

bench-fleet-sshd: ## fleet: opskit vs parallel-ssh on one real sshd, 200 loopback targets (secondary: measures sshd)
	bash scripts/bench-fleet.sh

.PHONY: bench-fleet-inflight
bench-fleet-inflight: ## fleet: client heap and goroutines per host in flight (OPSKIT_BENCH_INFLIGHT hosts, default 1000)
	OPSKIT_BENCH_INFLIGHT=$${OPSKIT_BENCH_INFLIGHT:-1000} $(GO) test ./fleet -run '^$$' -bench GroupSSHMemoryInFlight -benchtime 1x
