package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/internal/promtest"
)

// syncBuffer is a bytes.Buffer for a writer and a reader on other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// served is a running gitlab-hooks: its webhook and metrics URLs.
type served struct {
	url, metricsURL string
	stderr          *syncBuffer
	stop            func() // cancels run and waits for it to return
}

// gitlabWithMR is a fake GitLab with the workflow labels, an MR whose
// version differs from its target's and that closes issue #1.
func gitlabWithMR(t *testing.T) (*gitlabtest.Server, gitlabtest.MergeRequest) {
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	for _, l := range []string{"wf::Todo", "wf::Doing", "wf::Review", "wf::QA", "wf::Testing"} {
		srv.AddLabel(7, l)
	}
	srv.SetFile(7, "main", "VERSION", []byte("1.0.0\n"))
	srv.SetFile(7, "12-fix-login", "VERSION", []byte("1.1.0\n"))
	srv.AddIssue(7, gitlabtest.Issue{Title: "login broken", AuthorID: 42})
	mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "Fix login", SourceBranch: "12-fix-login", ClosesIssues: []int64{1}, AuthorID: 42})
	return srv, mr
}

// serve runs gitlab-hooks against srv with -metrics-addr and args (the
// in-memory intake unless args say otherwise).
func serve(t *testing.T, srv *gitlabtest.Server, args ...string) served {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	errb := &syncBuffer{}
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", "-intake", "memory", "-data-dir", t.TempDir(),
			"-gitlab-url", srv.URL(), "-token-file", writeFile(t, "token", srv.Token()), "-secret-file", writeFile(t, "secret", "hook-secret"),
			"-labels", "Todo,Doing,Review,QA,Testing", "-scope", "wf"}, args...), pw, errb)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	require.True(t, lines.Scan(), "metrics line")
	murl := strings.TrimPrefix(lines.Text(), "gitlab-hooks: metrics on ")
	require.True(t, strings.HasPrefix(murl, "http://127.0.0.1:"), "first line %q", lines.Text())
	require.True(t, lines.Scan(), "listening line")
	url := strings.Fields(strings.TrimPrefix(lines.Text(), "gitlab-hooks: listening on "))[0]
	go io.Copy(io.Discard, pr)
	stopped := false
	s := served{url: url, metricsURL: murl, stderr: errb, stop: func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	}}
	t.Cleanup(s.stop)
	return s
}

// scrape and sample read the metrics served at a -metrics-addr.
var (
	scrape = promtest.Scrape
	sample = promtest.Sample
)

// TestRunMetrics sends real deliveries through gitlab-hooks (a wrong
// token, an MR opened, its redelivery) and scrapes -metrics-addr: the
// counters moved by what was sent and what the bots did, the intake's depth
// is back to 0 (with JetStream, the stream's), and promlint finds nothing.
func TestRunMetrics(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testRunMetrics(t) })
	t.Run("embedded jetstream", func(t *testing.T) { testRunMetrics(t, "-intake", "jetstream") })
}

func testRunMetrics(t *testing.T, intakeArgs ...string) {
	srv, mr := gitlabWithMR(t)
	s := serve(t, srv, append([]string{"-log-format", "json"}, intakeArgs...)...)
	body, err := srv.MergeRequestEvent(7, mr.IID, gitlabtest.EventOptions{Action: "open"})
	require.NoError(t, err)
	for _, tok := range []string{"wrong", "hook-secret", "hook-secret"} {
		resp, err := gitlabtest.SendWebhook(t.Context(), s.url, gitlabtest.MergeRequestHook, body,
			gitlabtest.WebhookOptions{Token: tok, IdempotencyKey: "delivery-1"})
		require.NoError(t, err)
		resp.Body.Close()
	}
	require.Eventually(t, func() bool {
		fams := scrape(t, s.metricsURL)
		return sample(fams, "opskit_gitlabx_handler_duration_seconds", "handler", "gitlabx.LabelMachine.HandleMergeRequest") == 1 &&
			sample(fams, "opskit_gitlabx_intake_pending_deliveries") == 0
	}, time.Minute, 10*time.Millisecond, "both bots handled the delivery and the intake let it go")

	require.NoError(t, testutil.ScrapeAndCompare(s.metricsURL, strings.NewReader(`
# HELP opskit_gitlabx_deliveries_total Webhook deliveries answered, by event (X-Gitlab-Event, other when unknown) and answer: accepted (202, stored), duplicate and ignored (200), dropped (202 but lost), unauthorized (401), malformed (400), too_large (413), unavailable (503), method_not_allowed (405).
# TYPE opskit_gitlabx_deliveries_total counter
opskit_gitlabx_deliveries_total{answer="accepted",event="Merge Request Hook"} 1
opskit_gitlabx_deliveries_total{answer="duplicate",event="Merge Request Hook"} 1
opskit_gitlabx_deliveries_total{answer="unauthorized",event="Merge Request Hook"} 1
# HELP opskit_gitlabx_duplicate_deliveries_total Redeliveries dropped because a delivery with the same dedupe key (webhook-id, Idempotency-Key, event UUID or body) was stored before.
# TYPE opskit_gitlabx_duplicate_deliveries_total counter
opskit_gitlabx_duplicate_deliveries_total 1
# HELP opskit_gitlabx_handler_errors_total Deliveries a registered handler failed on (returned an error or panicked) after its last attempt.
# TYPE opskit_gitlabx_handler_errors_total counter
opskit_gitlabx_handler_errors_total{handler="gitlabx.LabelMachine.HandleIssue"} 0
opskit_gitlabx_handler_errors_total{handler="gitlabx.LabelMachine.HandleMergeRequest"} 0
opskit_gitlabx_handler_errors_total{handler="gitlabx.VersionCheck.HandleMergeRequest"} 0
# HELP opskit_gitlabx_intake_pending_deliveries Deliveries the intake stores that are not handled yet (in memory: queued or running; JetStream: the stream's depth across replicas).
# TYPE opskit_gitlabx_intake_pending_deliveries gauge
opskit_gitlabx_intake_pending_deliveries 0
`), "opskit_gitlabx_deliveries_total", "opskit_gitlabx_duplicate_deliveries_total", "opskit_gitlabx_handler_errors_total",
		"opskit_gitlabx_intake_pending_deliveries"))

	fams := scrape(t, s.metricsURL)
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"opskit_gitlabx_handler_duration_seconds", []string{"handler", "gitlabx.VersionCheck.HandleMergeRequest"}, 1},
		{"opskit_gitlabx_dropped_deliveries_total", []string{"reason", "busy"}, 0},
		{"opskit_gitlabx_intake_pending_bytes", nil, 0},
		{"opskit_gitlabx_intake_redeliveries_total", nil, 0},
		{"opskit_http_client_requests_total", []string{"client", "gitlab", "endpoint", "/api/v4/projects/:id/merge_requests/:id/notes", "method", "POST", "code", "201"}, 1},
		{"opskit_http_client_requests_total", []string{"client", "gitlab", "endpoint", "/api/v4/projects/:id/issues/:id", "method", "PUT", "code", "200"}, 1},
	} {
		assert.Equal(t, tt.want, sample(fams, tt.name, tt.labels...), "%s%v", tt.name, tt.labels)
	}
	assert.NotEqual(t, -1.0, sample(fams, "go_goroutines"), "go_goroutines served")
	assert.NotEqual(t, -1.0, sample(fams, "process_start_time_seconds"), "process_start_time_seconds served")
	problems, err := testutil.GatherAndLint(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return fams, nil
	}))
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint on the served metrics")

	s.stop()
	var rejected map[string]any
	for l := range strings.SplitSeq(s.stderr.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "webhook rejected" {
			rejected = rec
		}
	}
	require.NotNil(t, rejected, "-log-format json logs the wrong token as JSON:\n%s", s.stderr.String())
	assert.Equal(t, float64(http.StatusUnauthorized), rejected["status"])
}

// TestRunTrace: one delivery through gitlab-hooks is one delivery span,
// carrying its X-Gitlab-Event-UUID, and the GitLab API calls both bots made
// for it are its children, in the same trace. GitLab refuses the label
// update, so the handler's failure is counted and logged (-log-format json)
// with the delivery's trace_id.
func TestRunTrace(t *testing.T) {
	rec := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); tp.Shutdown(context.Background()) })
	t.Setenv("OTEL_SDK_DISABLED", "true") // keep the provider installed above

	srv, mr := gitlabWithMR(t)
	srv.FailWhen(func(r *http.Request) (int, bool) {
		return http.StatusForbidden, r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/issues/")
	})
	s := serve(t, srv, "-log-format", "json")
	body, err := srv.MergeRequestEvent(7, mr.IID, gitlabtest.EventOptions{Action: "open"})
	require.NoError(t, err)
	const uuid = "5f0c3a4e-2b1d-4c8e-9a6f-7d2e1b0c9f88"
	resp, err := gitlabtest.SendWebhook(t.Context(), s.url, gitlabtest.MergeRequestHook, body,
		gitlabtest.WebhookOptions{Token: "hook-secret", EventUUID: uuid})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Eventually(t, func() bool {
		return sample(scrape(t, s.metricsURL), "opskit_gitlabx_handler_errors_total", "handler", "gitlabx.LabelMachine.HandleMergeRequest") == 1
	}, time.Minute, 10*time.Millisecond, "the label machine's failure is counted")
	require.Len(t, srv.Notes(7, gitlabtest.MergeRequestNoteable, mr.IID), 1, "the version check warned")
	s.stop() // the delivery span has ended

	spans := rec.GetSpans()
	var delivery *tracetest.SpanStub
	for i := range spans {
		if spans[i].Name == "gitlab webhook Merge Request Hook" {
			require.Nil(t, delivery, "one delivery span")
			delivery = &spans[i]
		}
	}
	require.NotNil(t, delivery, "a delivery span among %d", len(spans))
	attrs := map[string]string{}
	for _, a := range delivery.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	assert.Equal(t, uuid, attrs["gitlab.event_uuid"])
	var children []string
	for _, sp := range spans {
		if sp.Parent.SpanID() == delivery.SpanContext.SpanID() {
			assert.Equal(t, delivery.SpanContext.TraceID(), sp.SpanContext.TraceID())
			children = append(children, sp.Name)
		}
	}
	for _, want := range []string{
		"GET /api/v4/projects/:id/repository/files/:id/raw",  // the version check reads both branches
		"POST /api/v4/projects/:id/merge_requests/:id/notes", // and warns
		"PUT /api/v4/projects/:id/issues/:id",                // the label machine moves issue #1
	} {
		assert.Contains(t, children, want, "API calls made for the delivery are its children")
	}
	assert.GreaterOrEqual(t, len(children), 5, "children: %q", children)

	var failed map[string]any
	for l := range strings.SplitSeq(s.stderr.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "webhook handler failed" {
			failed = rec
		}
	}
	require.NotNil(t, failed, "the failure is logged as JSON:\n%s", s.stderr.String())
	assert.Equal(t, delivery.SpanContext.TraceID().String(), failed["trace_id"], "with the delivery's trace")
	assert.Equal(t, uuid, failed["event_uuid"])
}
