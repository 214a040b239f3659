# The one entry point for contributors. `make help` lists the targets.
# Package-specific targets (comparison runs such as bench-release) live in
# mk/<package>.mk and are included below.

GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK ?= $(GOBIN)/staticcheck
# Pinned tool versions; .ci/run installs the same ones.
STATICCHECK_VERSION := v0.8.2
STRINGER_VERSION    := v0.52.0

.PHONY: help test race lint fmt vet staticcheck bench integration tour cover generate tools ci

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

test: ## the README's test command
	$(GO) test ./...

race: ## all tests under the race detector
	$(GO) test -race ./...

lint: fmt vet staticcheck ## gofmt -l, go vet, staticcheck

fmt:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt: unformatted files:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck: tools
	$(STATICCHECK) ./...

bench: ## every Go benchmark, with allocations
	$(GO) test -run '^$$' -bench . -benchmem ./...

integration: ## tests against real programs (sshd, git); fails instead of skipping when one is missing
	OPSKIT_REQUIRE_INTEGRATION=1 $(GO) test -count=1 -run 'Integration' ./...

tour: ## the end-to-end tour on the built-in fakes
	$(GO) run ./examples/tour

cover: ## coverage report in cover.html
	$(GO) test -coverprofile=cover.out ./...
	$(GO) tool cover -html=cover.out -o cover.html
	$(GO) tool cover -func=cover.out | tail -1

generate: ## regenerate generated code (stringer)
	PATH="$(GOBIN):$$PATH" $(GO) generate ./...

tools: ## install the pinned linters and generators
	@test -x $(STATICCHECK) || GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@test -x $(GOBIN)/stringer || GOFLAGS= $(GO) install golang.org/x/tools/cmd/stringer@$(STRINGER_VERSION)

ci: ## what CI runs
	bash .ci/run

-include mk/*.mk

.PHONY: consumer vulncheck
consumer: ## a throwaway module importing every public package next to client-go and grpc: tidy, build, vet
	bash scripts/check-consumer.sh

vulncheck: ## govulncheck over the module (needs the Go vulnerability database)
	$(GO) run golang.org/x/vuln/cmd/govulncheck@v1.9.0 ./...
