# gitlabx: webhook ack latency under load (make bench-gitlabx).
# Every fake GitLab API call takes 2 s; gitlabx.Hooks acks 1000 deliveries
# from 8 senders while hundreds are in flight, with the in-memory intake and
# with the JetStream intake (embedded server, file storage), then drains; the
# comparison is the same version check run synchronously inside the handler.
# Both intakes run again with metrics and tracing on (-observed), and the
# script prints the instrumentation's overhead on ack p50/p99.
# Knobs: N, JS_N, SYNC_N (deliveries), GITLABX_BENCH_WORKERS (HooksConfig.Workers
# and JetStream partitions, 64).

.PHONY: bench-gitlabx

bench-gitlabx: ## gitlabx: ack p50/p99 under 2 s API latency: in-memory and JetStream intakes vs a synchronous receiver
	bash scripts/bench-gitlabx.sh
