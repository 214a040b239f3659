package freshdesk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/jetstream"
)

// natsURL starts a JetStream server for one test, on a random loopback
// port with file storage in a temporary directory.
func natsURL(t testing.TB) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "nats server ready")
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv.ClientURL()
}

// escalationSpans watches the freshdesk.Escalate spans of every replica:
// how many ran, and the most that ran at once for one ticket.
type escalationSpans struct {
	mu      sync.Mutex
	running int
	most    int
	ended   int
}

func (s *escalationSpans) OnStart(_ context.Context, sp sdktrace.ReadWriteSpan) {
	if sp.Name() != "freshdesk.Escalate" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running++
	s.most = max(s.most, s.running)
}

func (s *escalationSpans) OnEnd(sp sdktrace.ReadOnlySpan) {
	if sp.Name() != "freshdesk.Escalate" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	s.ended++
}

func (s *escalationSpans) Shutdown(context.Context) error   { return nil }
func (s *escalationSpans) ForceFlush(context.Context) error { return nil }

// replica is one bridge process on the shared stream and results bucket,
// serving its Handler.
func replica(t *testing.T, e *env, url string, tp trace.TracerProvider) (*freshdesk.Bridge, *httptest.Server) {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	in, err := jetstream.New(t.Context(), jetstream.Config{Conn: nc, Stream: "FRESHDESK_ESCALATIONS", Subject: "freshdesk.escalations",
		Partitions: 4, AckWait: time.Second, PinnedTTL: time.Second})
	require.NoError(t, err)
	res, err := jetstream.NewResults(t.Context(), jetstream.ResultsConfig{Conn: nc, Bucket: "FRESHDESK_RESULTS", TTL: time.Hour})
	require.NoError(t, err)
	b, err := freshdesk.NewBridge(freshdesk.BridgeConfig{
		Freshdesk: e.fd.Client(), GitLab: e.gl.Client(), Project: project, FreshdeskURL: "https://acme.freshdesk.com",
		AgentID: e.fd.AgentID(), CustomField: "cf_gitlab_issue", Token: "bridge-token", TracerProvider: tp,
		AllowedOrigin: "https://acme.freshdesk.com",
		Intake:        in, Results: res,
	})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { b.Shutdown(context.Background()) }) // before nc.Close: cleanups run last-in first-out
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	return b, srv
}

func call(t *testing.T, method, url, token string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, resp.Header, body
}

// waitResult polls GET /escalations/{id} until the escalation is no
// longer queued.
func waitResult(t *testing.T, base, id string) map[string]any {
	t.Helper()
	var body map[string]any
	require.Eventually(t, func() bool {
		var status int
		status, _, body = call(t, "GET", base+"/escalations/"+id, "bridge-token")
		require.Equal(t, http.StatusOK, status, "GET /escalations/%s: %v", id, body)
		return body["status"] != freshdesk.StatusQueued
	}, time.Minute, 20*time.Millisecond, "escalation %s finishes", id)
	return body
}

// TestIntakeTwoReplicasOneTicket presses the button of one ticket many
// times at once on two bridge replicas sharing one JetStream stream: every
// press is answered 202 "queued", every accepted escalation runs exactly
// once and never alongside another of the same ticket (on either replica),
// each replica serves the results of the other's work, and GitLab ends up
// with one issue whose notes are not doubled.
func TestIntakeTwoReplicasOneTicket(t *testing.T) {
	const presses = 8
	e := newEnv(t, envOpt{})
	e.gl.SetLatency(10 * time.Millisecond) // widen the window an overlap would need
	url := natsURL(t)
	spans := &escalationSpans{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	_, a := replica(t, e, url, tp)
	_, b := replica(t, e, url, tp)
	servers := []*httptest.Server{a, b}

	ids := make([]string, presses)
	var wg sync.WaitGroup
	for i := range presses {
		wg.Go(func() {
			status, hdr, body := call(t, "POST", fmt.Sprintf("%s/escalate/%d", servers[i%2].URL, e.ticket), "bridge-token")
			assert.Equal(t, http.StatusAccepted, status, "press %d: %v", i, body)
			assert.Equal(t, freshdesk.StatusQueued, body["status"], "press %d", i)
			assert.Equal(t, float64(e.ticket), body["ticket_id"], "press %d", i)
			ids[i], _ = body["id"].(string)
			assert.Equal(t, "/escalations/"+ids[i], hdr.Get("Location"), "press %d", i)
		})
	}
	wg.Wait()
	created, notes := 0, 0
	for i, id := range ids {
		require.NotEmpty(t, id, "press %d got an id", i)
		res := waitResult(t, servers[(i+1)%2].URL, id) // asked of the other replica
		assert.Equal(t, freshdesk.StatusDone, res["status"], "press %d: %v", i, res)
		assert.Equal(t, e.gl.URL()+"/acme/exporter/-/work_items/1", res["issue_url"], "press %d", i)
		if res["created"] == true {
			created++
		}
		n, _ := res["notes_added"].(float64)
		notes += int(n)
	}
	spans.mu.Lock()
	most, ended := spans.most, spans.ended
	spans.mu.Unlock()
	assert.Equal(t, 1, most, "escalations of one ticket ran one at a time across both replicas")
	assert.Equal(t, presses, ended, "every accepted escalation ran exactly once")
	assert.Equal(t, 1, created, "one escalation created the issue")
	assert.Equal(t, 3, notes, "the three conversations were copied once in all")
	assert.Len(t, e.issues(), 1)
	assert.Equal(t, e.conversationIDs(t), e.copied(t), "notes not doubled")
	assert.Equal(t, 1, e.linkNotes())
}

// TestIntakeHandlerAnswers checks the queued mode's HTTP answers: the
// status endpoint needs the token, knows only queued IDs, reports a failed
// escalation with its error, and answers CORS preflights for GET.
func TestIntakeHandlerAnswers(t *testing.T) {
	e := newEnv(t, envOpt{})
	_, srv := replica(t, e, natsURL(t), nil)
	for _, b := range []*httptest.Server{srv} {
		status, _, _ := call(t, "GET", b.URL+"/escalations/0123", "")
		assert.Equal(t, http.StatusUnauthorized, status, "GET status without a token")
		status, _, body := call(t, "GET", b.URL+"/escalations/0123", "bridge-token")
		assert.Equal(t, http.StatusNotFound, status, "GET status of an unknown id: %v", body)

		status, _, body = call(t, "POST", b.URL+"/escalate/999", "bridge-token")
		require.Equal(t, http.StatusAccepted, status, "an unknown ticket is queued too: %v", body)
		res := waitResult(t, b.URL, body["id"].(string))
		assert.Equal(t, freshdesk.StatusFailed, res["status"])
		assert.Contains(t, res["error"], "ticket 999")

		req, err := http.NewRequestWithContext(t.Context(), "OPTIONS", b.URL+"/escalations/0123", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", "https://acme.freshdesk.com")
		req.Header.Set("Access-Control-Request-Method", "GET")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNoContent, resp.StatusCode, "preflight of the status request")
	}
	assert.Empty(t, e.issues(), "nothing escalated")
}

// failingIntake refuses to store anything.
type failingIntake struct{ gitlabx.Intake }

func (failingIntake) Enqueue(context.Context, *gitlabx.Envelope) error {
	return errors.New("nats: no responders available for request")
}

// TestIntakeUnavailable: when the intake cannot store the escalation, the
// button hears 503 with the reason, not "queued".
func TestIntakeUnavailable(t *testing.T) {
	e := newEnv(t, envOpt{bridge: func(c *freshdesk.BridgeConfig) { c.Intake = failingIntake{} }})
	srv := httptest.NewServer(e.b.Handler())
	t.Cleanup(srv.Close)
	status, _, body := call(t, "POST", fmt.Sprintf("%s/escalate/%d", srv.URL, e.ticket), "bridge-token")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, body["error"], "no responders")
}

// TestEnqueueWithoutIntake: the synchronous default has nothing to queue in.
func TestEnqueueWithoutIntake(t *testing.T) {
	e := newEnv(t, envOpt{})
	_, err := e.b.Enqueue(t.Context(), e.ticket)
	assert.ErrorIs(t, err, freshdesk.ErrNoIntake)
	_, err = e.b.Result(t.Context(), "nope")
	assert.ErrorIs(t, err, freshdesk.ErrUnknownEscalation)
}
