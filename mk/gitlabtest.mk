# gitlabx/gitlabtest: benchmarks of the fake itself (in-process, no socket).
.PHONY: bench-gitlabtest
bench-gitlabtest:
	go test ./gitlabx/gitlabtest/ -run '^$$' -bench . -benchmem -benchtime 2000x
