# Targets of package freshdesk (issue 7).

.PHONY: bench-freshdesk bench-freshdesk-obs fuzz-freshdesk

bench-freshdesk: ## freshdesk speed run: 300 conversations, 50 attachments, 20 ms fakes; time, peak heap, parallel speed-up
	bash scripts/bench-freshdesk.sh

bench-freshdesk-obs: ## freshdesk bridge: one escalation with metrics and tracing on vs off, side by side; overhead in %
	bash scripts/bench-freshdesk-obs.sh

fuzz-freshdesk: ## fuzz the freshdesk HTML converter, Link and error decoders for 30s each
	$(GO) test -run '^$$' -fuzz '^FuzzMarkdown$$' -fuzztime 30s ./freshdesk/
	$(GO) test -run '^$$' -fuzz '^FuzzNextLink$$' -fuzztime 30s ./freshdesk/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeAPIError$$' -fuzztime 30s ./freshdesk/
