# Targets of package workflow (issue #10).

.PHONY: bench-workflow

bench-workflow: ## workflow.Runner overhead vs a bare errgroup loop (10,000 no-op targets), as a ratio, and memory per target
	bash scripts/bench-workflow.sh
