package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestNewLoggerJSONCarriesTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "json", slog.LevelInfo)
	require.NoError(t, err)
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("test").Start(t.Context(), "op")
	log.With("component", "x").InfoContext(ctx, "inside", "n", 1)
	span.End()
	log.InfoContext(t.Context(), "outside")
	log.Debug("below the level")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	var in, out map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &in))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &out))
	assert.Equal(t, span.SpanContext().TraceID().String(), in["trace_id"])
	assert.Equal(t, span.SpanContext().SpanID().String(), in["span_id"])
	assert.Equal(t, "x", in["component"])
	assert.NotContains(t, out, "trace_id", "no span, no trace_id")

	buf.Reset()
	text, err := NewLogger(&buf, "text", slog.LevelInfo)
	require.NoError(t, err)
	text.InfoContext(ctx, "inside")
	assert.Contains(t, buf.String(), "trace_id="+span.SpanContext().TraceID().String())

	_, err = NewLogger(io.Discard, "xml", slog.LevelInfo)
	assert.ErrorContains(t, err, `log format "xml"`)
}

// otlpSink is a loopback OTLP/HTTP endpoint that records the requests.
type otlpSink struct {
	mu    sync.Mutex
	paths []string
	types []string
	bytes int
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.paths = append(s.paths, r.Method+" "+r.URL.Path)
	s.types = append(s.types, r.Header.Get("Content-Type"))
	s.bytes += len(b)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
}

// TestSetupTracing: no exporter unless the environment asks; with
// OTEL_EXPORTER_OTLP_ENDPOINT, spans reach the endpoint over OTLP/HTTP on
// shutdown; grpc and unknown exporters are refused.
func TestSetupTracing(t *testing.T) {
	defer otel.SetTracerProvider(otel.GetTracerProvider())
	sink := &otlpSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()

	t.Run("none by default", func(t *testing.T) {
		t.Setenv("OTEL_TRACES_EXPORTER", "")
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
		shutdown, err := SetupTracing(t.Context(), "svc")
		require.NoError(t, err)
		_, span := otel.Tracer("t").Start(t.Context(), "op")
		assert.True(t, span.SpanContext().IsValid(), "spans get IDs for the logs")
		span.End()
		require.NoError(t, shutdown(t.Context()))
		assert.Empty(t, sink.paths, "nothing exported")
	})
	t.Run("otlp from the endpoint variable", func(t *testing.T) {
		t.Setenv("OTEL_TRACES_EXPORTER", "")
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
		t.Setenv("OTEL_SERVICE_NAME", "from-env")
		shutdown, err := SetupTracing(t.Context(), "svc")
		require.NoError(t, err)
		_, span := otel.Tracer("t").Start(t.Context(), "op")
		span.End()
		require.NoError(t, shutdown(t.Context()))
		sink.mu.Lock()
		defer sink.mu.Unlock()
		require.Equal(t, []string{"POST /v1/traces"}, sink.paths)
		assert.Equal(t, "application/x-protobuf", sink.types[0])
		assert.Positive(t, sink.bytes)
	})
	for _, tt := range []struct{ name, exporter, protocol, want string }{
		{"grpc", "otlp", "grpc", "http/protobuf"},
		{"unknown exporter", "zipkin", "", "zipkin"},
		{"json protocol", "otlp", "http/json", "http/json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OTEL_TRACES_EXPORTER", tt.exporter)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tt.protocol)
			_, err := SetupTracing(t.Context(), "svc")
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestStartMetrics(t *testing.T) {
	ms, err := StartMetrics(t.Context(), "", NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	assert.Nil(t, ms.Addr(), "no address, no server")
	assert.NoError(t, ms.Close())

	ctx, cancel := context.WithCancel(t.Context())
	ms, err = StartMetrics(ctx, "127.0.0.1:0", NewRegistry(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	resp, err := http.Get("http://" + ms.Addr().String() + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(b), "go_goroutines ")
	assert.Contains(t, string(b), "process_resident_memory_bytes ")
	cancel()
	require.NoError(t, ms.Close())
	_, err = http.Get("http://" + ms.Addr().String() + "/metrics")
	assert.Error(t, err, "closed with its context")
}
