package release_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/opskit/opskit/release"
)

// BenchmarkUploadLoopbackObserved is BenchmarkUploadLoopback bare and with
// metrics and tracing on (release.Metrics on a registry, spans sampled and
// batched to an exporter that drops them), for the instrumentation
// overhead of issue 20; the end-to-end comparison of the built binaries is
// OBSERVE=1 scripts/bench-release.sh.
func BenchmarkUploadLoopbackObserved(b *testing.B) {
	const size = 64 << 20
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "metrics+tracing"
		}
		b.Run(name, func(b *testing.B) {
			cfg := release.ReceiverConfig{}
			if on {
				m, err := release.NewMetrics(prometheus.NewRegistry())
				if err != nil {
					b.Fatal(err)
				}
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				b.Cleanup(func() { tp.Shutdown(b.Context()) })
				cfg.Metrics, cfg.TracerProvider = m, tp
			}
			rc, _ := newReceiver(b, cfg)
			srv := httptest.NewServer(rc)
			b.Cleanup(srv.Close)
			up := &release.Uploader{URL: srv.URL, Secret: testSecret}
			b.SetBytes(size)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				md := release.Metadata{Product: "bench", Version: fmt.Sprintf("1.0.%d", i)}
				if _, err := up.Upload(b.Context(), md, io.LimitReader(newNoise(), size), size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
