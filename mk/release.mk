# Targets of package release.

.PHONY: bench-release

bench-release: ## release: 1 GiB through release-upload -> release-server vs openssl dgst + cp + sync, with peak RSS
	bash scripts/bench-release.sh
