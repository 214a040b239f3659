.PHONY: bench-semtag

bench-semtag: ## semtag: 20,000 tags over 200 pages on the fake (time, API calls) and a side-by-side run against git tag --sort=v:refname
	GO="$(GO)" bash scripts/bench-semtag.sh
