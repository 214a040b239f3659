# workflow/temporal is a nested module: the root targets do not enter it.

.PHONY: temporal-test temporal-lint

temporal-test: ## workflow/temporal's and examples/rollout-temporal's tests (the dev-server ones need the temporal CLI, see .ci/run)
	cd workflow/temporal && $(GO) test -race ./...
	cd examples/rollout-temporal && $(GO) test -race ./...

temporal-lint: ## go vet and staticcheck on workflow/temporal and examples/rollout-temporal
	cd workflow/temporal && $(GO) vet ./... && $(STATICCHECK) ./...
	cd examples/rollout-temporal && $(GO) vet ./... && $(STATICCHECK) ./...

.PHONY: bench-temporal
bench-temporal: ## per-target overhead of the Temporal backend vs the local Runner (1,000 no-op targets; needs the temporal CLI)
	bash scripts/bench-temporal.sh
