# fleet: comparison run against parallel-ssh on a real sshd (see scripts/bench-fleet.sh).
.PHONY: bench-fleet

bench-fleet: ## fleet: opskit fan-out vs parallel-ssh on 200 loopback targets, 1,000 targets, pooled second command
	bash scripts/bench-fleet.sh

.PHONY: bench-fleet-inflight
bench-fleet-inflight: ## fleet: client heap and goroutines per host in flight (OPSKIT_BENCH_INFLIGHT hosts, default 1000)
	OPSKIT_BENCH_INFLIGHT=$${OPSKIT_BENCH_INFLIGHT:-1000} $(GO) test ./fleet -run '^$$' -bench GroupSSHMemoryInFlight -benchtime 1x
