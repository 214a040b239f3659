package observe_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/opskit/opskit/internal/promtest"
	"github.com/opskit/opskit/observe"
)

// value finds the sample of name whose labels include want in reg.
func value(t testing.TB, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	return promtest.Value(t, reg, name, want)
}

// fakeAPI answers like GitLab: notes are created, issue lists carry a
// rate-limit header, /api/v4/limited answers 429. It records the
// traceparent headers it sees.
type fakeAPI struct {
	mu           sync.Mutex
	traceparents []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.traceparents = append(f.traceparents, r.Header.Get("Traceparent"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasSuffix(r.URL.Path, "/notes") && r.Method == http.MethodPost:
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"id": 1, "body": "hello"}`))
	case strings.HasSuffix(r.URL.Path, "/issues"):
		w.Header().Set("RateLimit-Remaining", "42")
		w.Write([]byte(`[]`))
	case strings.HasSuffix(r.URL.Path, "/limited"):
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// TestTransport drives client-go and plain calls through the transport and
// checks the counters, the rate-limit figures, the spans and the
// propagated trace context.
func TestTransport(t *testing.T) {
	api := &fakeAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	reg := prometheus.NewRegistry()
	m, err := observe.NewClientMetrics(reg, "gitlab")
	require.NoError(t, err)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	hc := &http.Client{Transport: observe.NewTransport(nil, observe.TransportConfig{Metrics: m, TracerProvider: tp})}

	ctx, parent := tp.Tracer("test").Start(t.Context(), "delivery")
	gl, err := gitlab.NewClient("tok", gitlab.WithBaseURL(srv.URL), gitlab.WithHTTPClient(hc))
	require.NoError(t, err)
	for range 2 {
		_, _, err = gl.Notes.CreateIssueNote(7, 12, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("hello")}, gitlab.WithContext(ctx))
		require.NoError(t, err)
	}
	_, _, err = gl.Issues.ListProjectIssues("ops/app", &gitlab.ListProjectIssuesOptions{}, gitlab.WithContext(ctx))
	require.NoError(t, err)
	parent.End()

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/v4/limited", nil)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, "http://127.0.0.1:1/api/v4/projects/1", nil)
	_, err = hc.Do(req)
	require.Error(t, err)

	notes := map[string]string{"client": "gitlab", "endpoint": "/api/v4/projects/:id/issues/:id/notes", "method": "POST"}
	assert.Equal(t, 2.0, value(t, reg, "opskit_http_client_requests_total", with(notes, "code", "201")))
	assert.Equal(t, 2.0, value(t, reg, "opskit_http_client_request_duration_seconds", notes), "two durations observed")
	assert.Equal(t, 1.0, value(t, reg, "opskit_http_client_requests_total",
		map[string]string{"endpoint": "/api/v4/projects/:id/issues", "method": "GET", "code": "200"}), "the URL-encoded project path is an :id")
	assert.Equal(t, 42.0, value(t, reg, "opskit_http_client_rate_limit_remaining", nil))
	assert.Equal(t, 1.0, value(t, reg, "opskit_http_client_rate_limited_total", map[string]string{"endpoint": "/api/v4/limited"}))
	assert.Equal(t, 3.0, value(t, reg, "opskit_http_client_rate_limit_wait_seconds_total", nil))
	assert.Equal(t, 1.0, value(t, reg, "opskit_http_client_requests_total", map[string]string{"endpoint": "/api/v4/projects/:id", "code": "error"}))
	assert.Equal(t, 0.0, value(t, reg, "opskit_http_client_in_flight_requests", nil))
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint")

	// Spans: one client span per call, children of the delivery span, and
	// the trace context reached the server.
	var children []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Parent().SpanID() == parent.SpanContext().SpanID() {
			children = append(children, s)
		}
	}
	require.Len(t, children, 3)
	assert.Equal(t, "POST /api/v4/projects/:id/issues/:id/notes", children[0].Name())
	assert.Equal(t, trace.SpanKindClient, children[0].SpanKind())
	assert.Equal(t, "GET /api/v4/projects/:id/issues", children[2].Name())
	api.mu.Lock()
	defer api.mu.Unlock()
	assert.Contains(t, api.traceparents[0], parent.SpanContext().TraceID().String())
	assert.Contains(t, api.traceparents[0], children[0].SpanContext().SpanID().String())

	_, err = observe.NewClientMetrics(reg, "gitlab")
	assert.Error(t, err, "the same client twice on one registry")
	_, err = observe.NewClientMetrics(reg, "freshdesk")
	assert.NoError(t, err, "another client on the same registry")
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for kk, vv := range m {
		out[kk] = vv
	}
	return out
}

// TestTransportWithoutTracing: no TracerProvider, no span and no
// traceparent header.
func TestTransportWithoutTracing(t *testing.T) {
	api := &fakeAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	hc := &http.Client{Transport: observe.NewTransport(nil, observe.TransportConfig{})}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v4/projects/1/issues", nil)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	span.End()
	assert.Len(t, sr.Ended(), 1, "only the test's own span")
	assert.Equal(t, []string{""}, api.traceparents)
}

func TestRESTEndpoint(t *testing.T) {
	for _, tt := range []struct{ path, want string }{
		{"/api/v4/projects/7/issues/12/notes?per_page=100", "/api/v4/projects/:id/issues/:id/notes"},
		{"/api/v4/projects/ops%2Fapp/repository/tags/v1.2.3", "/api/v4/projects/:id/repository/tags/:id"},
		{"/api/v4/projects/7/repository/files/a%2Fb.go/raw", "/api/v4/projects/:id/repository/files/:id/raw"},
		{"/api/v4/user", "/api/v4/user"},
		{"/api/v4/projects/user/issues", "/api/v4/projects/:id/issues"},
		{"/api/v2/tickets/123/conversations", "/api/v2/tickets/:id/conversations"},
		{"/api/v2/tickets", "/api/v2/tickets"},
		{"/hooks/5", "/hooks/:id"},
		{"/", "/"},
		{"/api/v4/a/1/b/2/c/3/d/4/e/5/f/6/g/7/h/8", "/api/v4/a/:id/b/:id/c/:id/d/:id/e/:id/f/:id"},
	} {
		r := httptest.NewRequest(http.MethodGet, tt.path, nil)
		assert.Equal(t, tt.want, observe.RESTEndpoint(r), tt.path)
	}
}

func TestWriteTextfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rollout.prom")
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "opskit_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	require.NoError(t, observe.WriteTextfile(path, reg))
	c.Add(2)
	require.NoError(t, observe.WriteTextfile(path, reg), "replacing the previous file")

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	require.NoError(t, err)
	require.Contains(t, fams, "opskit_test_things_total")
	assert.Equal(t, 5.0, fams["opskit_test_things_total"].GetMetric()[0].GetCounter().GetValue())
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), st.Mode().Perm())
	ents, _ := os.ReadDir(dir)
	assert.Len(t, ents, 1, "no temporary file left")

	assert.Error(t, observe.WriteTextfile(filepath.Join(dir, "rollout.txt"), reg))
	assert.Error(t, observe.WriteTextfile(filepath.Join(dir, "missing", "x.prom"), reg))
}

// BenchmarkTransport times one loopback call bare, with metrics, and with
// metrics and spans, for the instrumentation-overhead comparison (run the
// three side by side: go test -bench Transport ./observe).
func BenchmarkTransport(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("[]")) }))
	defer srv.Close()
	for _, bc := range []struct {
		name string
		cfg  func() observe.TransportConfig
	}{
		{"bare", func() observe.TransportConfig { return observe.TransportConfig{} }},
		{"metrics", func() observe.TransportConfig {
			m, _ := observe.NewClientMetrics(prometheus.NewRegistry(), "gitlab")
			return observe.TransportConfig{Metrics: m}
		}},
		{"metrics+spans", func() observe.TransportConfig {
			m, _ := observe.NewClientMetrics(prometheus.NewRegistry(), "gitlab")
			return observe.TransportConfig{Metrics: m, TracerProvider: sdktrace.NewTracerProvider()} // sampled spans, no exporter
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hc := &http.Client{Transport: observe.NewTransport(nil, bc.cfg())}
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequestWithContext(b.Context(), http.MethodGet, srv.URL+"/api/v4/projects/7/issues", nil)
				resp, err := hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}
