# Targets of package release.

.PHONY: bench-release

bench-release: ## release: 1 GiB through release-upload -> release-server (directory and S3 store via versitygw) vs openssl dgst + cp + sync (S3 also vs openssl dgst + one direct PutObject), with peak RSS (STORES="dir s3")
	bash scripts/bench-release.sh
