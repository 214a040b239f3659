# racelog (issue 5): comparison run against grep -c -F on a 1 GiB log.
.PHONY: bench-racelog bench-racelog-quick

bench-racelog: ## racelog scan vs grep -c -F on a generated 1 GiB log (ratio)
	bash scripts/bench-racelog.sh 1024 3

bench-racelog-quick: ## the same on 100 MiB, one run
	bash scripts/bench-racelog.sh 100 1
