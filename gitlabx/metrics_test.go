package gitlabx_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/internal/promtest"
	"github.com/opskit/opskit/observe"
)

// metric is the value of the sample of name whose labels include want (a
// histogram's sample count); it fails the test when there is none.
func metric(t testing.TB, g prometheus.Gatherer, name string, want ...string) float64 {
	t.Helper()
	return promtest.Value(t, g, name, promtest.Labels(want...))
}

// failingBot is a handler with a name, as the bots' methods have.
type failingBot struct{}

func (failingBot) HandleMergeRequest(context.Context, *gitlab.MergeEvent) error {
	return errors.New("boom")
}

// blockingBot's push handler waits until release is closed.
type blockingBot struct{ release chan struct{} }

func (b blockingBot) HandlePush(context.Context, *gitlab.PushEvent) error { <-b.release; return nil }

// TestMetricsDeliveries sends the deliveries a receiver meets (accepted,
// redelivered, wrong token, malformed, unknown and unhandled events, GET,
// beyond a full queue, after Shutdown) and checks that every counter moved
// by what was sent, that the queue's depth is seen while a handler runs,
// and that promlint finds nothing.
func TestMetricsDeliveries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m, err := gitlabx.NewMetrics(reg)
		require.NoError(t, err)
		h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, Workers: 1, QueueSize: 1, Metrics: m})
		require.NoError(t, err)
		h.OnMergeRequest(failingBot{}.HandleMergeRequest)
		release := make(chan struct{})
		h.OnPush(blockingBot{release}.HandlePush)
		const mrEv, pushEv = "Merge Request Hook", "Push Hook"
		deliveries := func(event, answer string) float64 {
			return metric(t, reg, "opskit_gitlabx_deliveries_total", "event", event, "answer", answer)
		}
		mr, push := fixture(t, "merge_request_open"), fixture(t, "push")

		require.Equal(t, http.StatusAccepted, deliver(h, mrEv, mr, "Idempotency-Key", "m1").StatusCode)
		require.Equal(t, http.StatusOK, deliver(h, mrEv, mr, "Idempotency-Key", "m1").StatusCode)
		require.Equal(t, http.StatusUnauthorized, deliver(h, mrEv, mr, "X-Gitlab-Token", "wrong").StatusCode)
		require.Equal(t, http.StatusBadRequest, deliver(h, mrEv, []byte(`{"object_kind":`), "Idempotency-Key", "m2").StatusCode)
		require.Equal(t, http.StatusOK, deliver(h, "Frobnicate Hook", []byte(`{}`)).StatusCode)
		require.Equal(t, http.StatusOK, deliver(h, "Job Hook", []byte(`{}`)).StatusCode)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/hooks", nil))
		require.Equal(t, http.StatusMethodNotAllowed, w.Code)
		synctest.Wait()

		assert.Equal(t, 1.0, deliveries(mrEv, gitlabx.AnswerAccepted))
		assert.Equal(t, 1.0, deliveries(mrEv, gitlabx.AnswerDuplicate))
		assert.Equal(t, 1.0, deliveries(mrEv, gitlabx.AnswerUnauthorized))
		assert.Equal(t, 1.0, deliveries(mrEv, gitlabx.AnswerMalformed))
		assert.Equal(t, 1.0, deliveries("other", gitlabx.AnswerIgnored), "an undocumented event header is one series")
		assert.Equal(t, 1.0, deliveries("Job Hook", gitlabx.AnswerIgnored))
		assert.Equal(t, 1.0, deliveries("other", gitlabx.AnswerMethodNotAllowed))
		assert.Equal(t, 1.0, metric(t, reg, "opskit_gitlabx_duplicate_deliveries_total"))
		bot := "gitlabx_test.failingBot.HandleMergeRequest"
		assert.Equal(t, 1.0, metric(t, reg, "opskit_gitlabx_handler_errors_total", "handler", bot), "the MR handler failed once")
		assert.Equal(t, 1.0, metric(t, reg, "opskit_gitlabx_handler_duration_seconds", "handler", bot))
		assert.Equal(t, 0.0, metric(t, reg, "opskit_gitlabx_intake_pending_deliveries"))
		assert.Equal(t, 0.0, metric(t, reg, "opskit_gitlabx_dropped_deliveries_total", "reason", "busy"), "the alert's series exists before the first drop")

		require.Equal(t, http.StatusAccepted, deliver(h, pushEv, push, "Idempotency-Key", "p1").StatusCode)
		synctest.Wait() // the worker holds p1
		require.Equal(t, http.StatusAccepted, deliver(h, pushEv, push, "Idempotency-Key", "p2").StatusCode)
		require.Equal(t, http.StatusAccepted, deliver(h, pushEv, push, "Idempotency-Key", "p3").StatusCode, "beyond the queue: 202, dropped")
		assert.Equal(t, 2.0, metric(t, reg, "opskit_gitlabx_intake_pending_deliveries"), "one running, one queued")
		assert.Equal(t, float64(h.Stats().Intake.PendingBytes), metric(t, reg, "opskit_gitlabx_intake_pending_bytes"))
		assert.Greater(t, metric(t, reg, "opskit_gitlabx_intake_pending_bytes"), float64(2*len(push)))
		assert.Equal(t, 2.0, deliveries(pushEv, gitlabx.AnswerAccepted))
		assert.Equal(t, 1.0, deliveries(pushEv, gitlabx.AnswerDropped))
		assert.Equal(t, 1.0, metric(t, reg, "opskit_gitlabx_dropped_deliveries_total", "reason", "busy"))
		close(release)
		require.NoError(t, h.Shutdown(t.Context()))
		require.Equal(t, http.StatusAccepted, deliver(h, pushEv, push, "Idempotency-Key", "p4").StatusCode)
		assert.Equal(t, 1.0, metric(t, reg, "opskit_gitlabx_dropped_deliveries_total", "reason", "shutdown"))
		assert.Equal(t, 0.0, metric(t, reg, "opskit_gitlabx_intake_pending_deliveries"))
		assert.Equal(t, 0.0, metric(t, reg, "opskit_gitlabx_intake_redeliveries_total"))
		assert.Equal(t, 2.0, metric(t, reg, "opskit_gitlabx_handler_duration_seconds", "handler", "gitlabx_test.blockingBot.HandlePush"), "the push handler ran twice")
		assert.Equal(t, 0.0, metric(t, reg, "opskit_gitlabx_handler_errors_total", "handler", "gitlabx_test.blockingBot.HandlePush"))

		problems, err := testutil.GatherAndLint(reg)
		require.NoError(t, err)
		assert.Empty(t, problems, "promlint")
	})
}

// statIntake is an Intake whose Stats are what a JetStream intake reports
// (a stream depth, redeliveries), or -1 when the stream cannot be asked.
type statIntake struct {
	gitlabx.Intake
	stats gitlabx.IntakeStats
}

func (s *statIntake) Stats() gitlabx.IntakeStats { return s.stats }

// TestMetricsIntakeStats: the intake metrics are read from the Intake's
// Stats at each scrape, and a depth JetStream could not report (-1) is left
// out rather than shown as -1.
func TestMetricsIntakeStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := gitlabx.NewMetrics(reg)
	require.NoError(t, err)
	in := &statIntake{Intake: gitlabx.NewMemoryIntake(), stats: gitlabx.IntakeStats{Pending: 5, PendingBytes: 4096, Redelivered: 3}}
	newHooks(t, gitlabx.HooksConfig{Intake: in, Metrics: m})
	assert.Equal(t, 5.0, metric(t, reg, "opskit_gitlabx_intake_pending_deliveries"))
	assert.Equal(t, 4096.0, metric(t, reg, "opskit_gitlabx_intake_pending_bytes"))
	assert.Equal(t, 3.0, metric(t, reg, "opskit_gitlabx_intake_redeliveries_total"))
	in.stats = gitlabx.IntakeStats{Pending: -1, PendingBytes: -1, Redelivered: 4}
	n, err := testutil.GatherAndCount(reg, "opskit_gitlabx_intake_pending_deliveries", "opskit_gitlabx_intake_pending_bytes")
	require.NoError(t, err)
	assert.Zero(t, n, "unknown depth is not reported")
	assert.Equal(t, 4.0, metric(t, reg, "opskit_gitlabx_intake_redeliveries_total"))

	_, err = gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, Metrics: m})
	assert.ErrorIs(t, err, gitlabx.ErrConfig, "one Metrics for two Hooks")
	_, err = gitlabx.NewMetrics(reg)
	assert.Error(t, err, "registering twice on one registry")
	_, err = gitlabx.NewMetrics(nil)
	assert.Error(t, err, "nil registry")
}

// TestDeliverySpan: with a TracerProvider, one delivery is one span
// carrying its X-Gitlab-Event-UUID, and the version check's GitLab calls,
// made through a traced client, are its children.
func TestDeliverySpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: proj, Path: "ops/app"})
	srv.SetFile(proj, "main", "VERSION", []byte("1.0.0\n"))
	srv.SetFile(proj, "feature", "VERSION", []byte("1.0.1\n"))
	mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{SourceBranch: "feature", AuthorID: 42})
	body, err := srv.MergeRequestEvent(proj, mr.IID, gitlabtest.EventOptions{Action: "open"})
	require.NoError(t, err)
	client := srv.Client(gitlab.WithHTTPClient(&http.Client{Transport: observe.NewTransport(nil, observe.TransportConfig{TracerProvider: tp})}))
	check, err := gitlabx.NewVersionCheck(client, gitlabx.VersionCheckConfig{})
	require.NoError(t, err)
	h := newHooks(t, gitlabx.HooksConfig{TracerProvider: tp})
	check.Register(h)
	h.OnMergeRequest(failingBot{}.HandleMergeRequest)

	const uuid = "0b7e2b4c-6a0e-4d2f-9d1c-3f1f0e6b9a11"
	require.Equal(t, http.StatusAccepted, deliver(h, "Merge Request Hook", body, "X-Gitlab-Event-UUID", uuid).StatusCode)
	require.NoError(t, h.Idle(t.Context()))
	require.Len(t, versionNotes(srv, mr.IID), 1, "the check ran")

	var delivery sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "gitlab webhook Merge Request Hook" {
			require.Nil(t, delivery, "one delivery span")
			delivery = s
		}
	}
	require.NotNil(t, delivery, "delivery span among %d spans", len(rec.Ended()))
	assert.Contains(t, delivery.Attributes(), attribute.String("gitlab.event_uuid", uuid))
	assert.Equal(t, codes.Error, delivery.Status().Code, "the failing handler marks the delivery")
	assert.False(t, delivery.Parent().IsValid(), "a root span: the handling is not part of GitLab's request")
	var children []string
	for _, s := range rec.Ended() {
		if s.Parent().SpanID() == delivery.SpanContext().SpanID() {
			assert.Equal(t, delivery.SpanContext().TraceID(), s.SpanContext().TraceID())
			children = append(children, s.Name())
		}
	}
	assert.Equal(t, []string{
		"GET /api/v4/projects/:id/repository/files/:id/raw",
		"GET /api/v4/projects/:id/repository/files/:id/raw",
		"GET /api/v4/user", // the bot's user, learned once
		"GET /api/v4/projects/:id/merge_requests/:id/notes",
		"POST /api/v4/projects/:id/merge_requests/:id/notes",
	}, children, "the version check's API calls are children of the delivery span")
}
