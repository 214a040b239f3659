// Package telemetry is the observability plumbing the programs in examples/
// share, so a service main wires logs, traces and metrics in a few lines:
//
//	logFormat := telemetry.LogFormatFlag(fs)        // -log-format text|json
//	metricsAddr := fs.String("metrics-addr", "", "serve /metrics on this `address`")
//	if err := cli.Parse(fs, args); err != nil {
//		return err
//	}
//	log, err := telemetry.NewLogger(stderr, *logFormat, slog.LevelInfo)
//	shutdown, err := telemetry.SetupTracing(ctx, "opskit-agent") // from the OTEL_* variables
//	defer shutdown(context.WithoutCancel(ctx))
//	reg := telemetry.NewRegistry()                   // Go and process collectors
//	ms, err := telemetry.StartMetrics(ctx, *metricsAddr, reg, log)
//	defer ms.Close()
//
// Logs: -log-format json writes slog's JSON, with trace_id and span_id on
// every record logged with a context that carries a span. Traces: see
// [SetupTracing]; there is no exporter unless the environment asks for one.
// Metrics: a registry of the program's own (never Prometheus' global one),
// served on /metrics by [StartMetrics] or [MetricsHandler].
//
// It is internal to examples/: a user's program copies what it needs.
//
// # Testing
//
// Its tests run the OTLP/HTTP exporter against a loopback HTTP server and
// scrape the metrics server.
package telemetry
