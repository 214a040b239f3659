# fleet/agent targets (included by the root Makefile).
.PHONY: bench-agent

bench-agent: ## install a 200 MiB package into a real examples/agent: peak RSS, time vs unzip, stats read latency
	bash scripts/bench-agent.sh
