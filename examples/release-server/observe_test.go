package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/opskit/opskit/internal/promtest"
	"github.com/opskit/opskit/release"
)

// startObserved runs the server with -metrics-addr and args and returns
// its base URL and its metrics URL, read from the first two stdout lines.
func startObserved(t *testing.T, args ...string) (baseURL, metricsURL string, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	stderr = &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0"}, args...), pw, stderr)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	require.True(t, lines.Scan(), "listening line; stderr: %s", stderr)
	baseURL, ok := strings.CutPrefix(lines.Text(), "listening on ")
	require.True(t, ok, "first stdout line %q", lines.Text())
	require.True(t, lines.Scan(), "metrics line")
	metricsURL, ok = strings.CutPrefix(lines.Text(), "metrics on ")
	require.True(t, ok, "second stdout line %q", lines.Text())
	go io.Copy(io.Discard, pr)
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done, "server exit")
	})
	return baseURL, metricsURL, stderr
}

// TestRunMetrics uploads real releases with release-upload's Uploader (a
// new one, the same again, other content under its version, a wrong
// secret, one over -max-size, one whose hook fails, and a resumable one)
// and scrapes -metrics-addr: every counter moved by what was sent, and
// promlint finds nothing. With -log-format json the refusals are logged
// with the trace ID of their upload span.
func TestRunMetrics(t *testing.T) {
	hook := writeFile(t, "hook.sh", "#!/bin/sh\n. \"$1\"\n[ \"$VERSION\" != bad ]\n", 0o755)
	secrets := writeFile(t, "secrets", "s3cret\n", 0o600)
	base, metricsURL, logs := startObserved(t, "-dir", t.TempDir(), "-secret-file", secrets, "-hook", hook, "-max-size", "1000", "-log-format", "json")

	up := &release.Uploader{URL: base + "/release", Secret: "s3cret"}
	send := func(up *release.Uploader, version, content string) error {
		_, err := up.Upload(t.Context(), release.Metadata{Product: "app", Version: version}, strings.NewReader(content), int64(len(content)))
		return err
	}
	require.NoError(t, send(up, "1.0.0", "tarball"))
	require.NoError(t, send(up, "1.0.0", "tarball"))
	require.ErrorIs(t, send(up, "1.0.0", "other!!"), release.ErrConflict)
	require.ErrorIs(t, send(&release.Uploader{URL: base + "/release", Secret: "wrong"}, "2.0.0", "tarball"), release.ErrUnauthorized)
	require.ErrorIs(t, send(up, "3.0.0", strings.Repeat("x", 1001)), release.ErrTooLarge)
	var se *release.StatusError
	require.ErrorAs(t, send(up, "bad", "hooked!"), &se)
	require.Equal(t, http.StatusInternalServerError, se.Code)
	file := filepath.Join(t.TempDir(), "release.tgz")
	require.NoError(t, os.WriteFile(file, []byte("resumable"), 0o644))
	_, err := up.UploadFileResumable(t.Context(), release.Metadata{Product: "app", Version: "4.0.0"}, file, filepath.Join(t.TempDir(), "state"))
	require.NoError(t, err)

	require.NoError(t, testutil.ScrapeAndCompare(metricsURL, strings.NewReader(`
# HELP opskit_release_uploads_total Release upload requests answered, by result: created (201), identical (200, stored before), conflict (409, version stored with other content), mismatch (422 or 460, checksum does not match), unauthorized (401), too_large (413), busy (503, all upload slots taken), invalid (other 4xx: bad, truncated or stalled request), hook_failed (500, release removed), error (500 or 507, storing failed).
# TYPE opskit_release_uploads_total counter
opskit_release_uploads_total{result="busy"} 0
opskit_release_uploads_total{result="conflict"} 1
opskit_release_uploads_total{result="created"} 2
opskit_release_uploads_total{result="error"} 0
opskit_release_uploads_total{result="hook_failed"} 1
opskit_release_uploads_total{result="identical"} 1
opskit_release_uploads_total{result="invalid"} 0
opskit_release_uploads_total{result="mismatch"} 0
opskit_release_uploads_total{result="too_large"} 1
opskit_release_uploads_total{result="unauthorized"} 1
# HELP opskit_release_hooks_total Hooks run for newly stored releases (also again after a restart), by result: succeeded, failed (the release was removed and the upload answered 500).
# TYPE opskit_release_hooks_total counter
opskit_release_hooks_total{result="failed"} 1
opskit_release_hooks_total{result="succeeded"} 2
# HELP opskit_release_uploads_in_flight Authenticated uploads in progress now, each holding one of MaxConcurrentUploads slots (their hook included); when all are taken, further uploads get 503.
# TYPE opskit_release_uploads_in_flight gauge
opskit_release_uploads_in_flight 0
`), "opskit_release_uploads_total", "opskit_release_hooks_total", "opskit_release_uploads_in_flight"))

	resp, err := http.Get(metricsURL)
	require.NoError(t, err)
	fams := promtest.Parse(t, resp.Body)
	resp.Body.Close()
	value := func(name string) float64 {
		v, ok := promtest.Find(fams, name, nil)
		require.True(t, ok, "%s served", name)
		return v
	}
	// The file bytes read: 7 + 7 + 7 (the conflict is read whole before
	// it is compared), 1001 (MaxSize+1 read, then refused), 7, 9; the
	// wrong secret is refused before its body is read.
	assert.Equal(t, float64(7+7+7+1001+7+9), value("opskit_release_received_bytes_total"))
	assert.Equal(t, 3.0, value("opskit_release_upload_duration_seconds"), "the 201s and the 200 are timed")
	assert.Equal(t, 3.0, value("opskit_release_hook_duration_seconds"))
	value("go_goroutines")
	value("process_start_time_seconds")
	problems, err := testutil.GatherAndLint(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return fams, nil }))
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint on the served metrics")

	var rejected map[string]any
	for l := range strings.SplitSeq(logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "release upload rejected" && rec["status"] == float64(http.StatusConflict) {
			rejected = rec
		}
	}
	require.NotNil(t, rejected, "-log-format json logs the conflict as JSON:\n%s", logs)
	assert.Len(t, rejected["trace_id"], 32, "with its upload's trace ID")
}

// TestRunTrace: an upload through release-server is one "release upload"
// span with the hook script's run as its child, in the provider the
// OTEL_* setup installs (here an in-memory one kept by OTEL_SDK_DISABLED).
func TestRunTrace(t *testing.T) {
	rec := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); tp.Shutdown(context.Background()) })
	t.Setenv("OTEL_SDK_DISABLED", "true") // keep the provider installed above

	hook := writeFile(t, "hook.sh", "#!/bin/sh\nexit 0\n", 0o755)
	secrets := writeFile(t, "secrets", "s3cret\n", 0o600)
	base, _, _ := startObserved(t, "-dir", t.TempDir(), "-secret-file", secrets, "-hook", hook)
	_, err := (&release.Uploader{URL: base + "/release", Secret: "s3cret"}).Upload(t.Context(),
		release.Metadata{Product: "app", Version: "1.0.0"}, strings.NewReader("tarball"), 7)
	require.NoError(t, err)

	var upload, hookSpan *tracetest.SpanStub
	spans := rec.GetSpans()
	for i := range spans {
		switch spans[i].Name {
		case "release upload":
			upload = &spans[i]
		case "release hook":
			hookSpan = &spans[i]
		}
	}
	require.NotNil(t, upload, "an upload span among %d", len(spans))
	require.NotNil(t, hookSpan, "a hook span")
	assert.Equal(t, upload.SpanContext.TraceID(), hookSpan.SpanContext.TraceID())
	assert.Equal(t, upload.SpanContext.SpanID(), hookSpan.Parent.SpanID(), "the hook is a child of the upload")
	for _, kv := range upload.Attributes {
		if kv.Key == "opskit.result" {
			assert.Equal(t, "created", kv.Value.AsString())
		}
	}
}
