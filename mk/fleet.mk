# fleet: comparison run against parallel-ssh on a real sshd (see scripts/bench-fleet.sh).
.PHONY: bench-fleet

bench-fleet: ## fleet: opskit fan-out vs parallel-ssh on 200 loopback targets, 1,000 targets, pooled second command
	bash scripts/bench-fleet.sh
