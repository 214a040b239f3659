package freshdesk_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/opskit/opskit/internal/promtest"
)

// metric is the value of the sample of name whose labels include want
// (label, value pairs; a histogram's sample count); it fails the test when
// there is none.
func metric(t testing.TB, g prometheus.Gatherer, name string, want ...string) float64 {
	t.Helper()
	return promtest.Value(t, g, name, promtest.Labels(want...))
}

// TestMetricsEscalations escalates a ticket the ways a support team does
// (first time, again, after a new reply, an unknown ticket, Freshdesk
// rate-limiting) and checks every counter moved by what was done.
func TestMetricsEscalations(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOpt{reg: reg})
	esc := func() string { return "opskit_freshdesk_escalations_total" }

	got, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	require.True(t, got.Created)
	assert.Equal(t, 1.0, metric(t, reg, esc(), "result", "created"))
	assert.Equal(t, 3.0, metric(t, reg, "opskit_freshdesk_notes_copied_total"), "three conversations copied")
	assert.Equal(t, 1.0, metric(t, reg, "opskit_freshdesk_attachments_copied_total"), "one screenshot uploaded")
	assert.Equal(t, 1.0, metric(t, reg, "opskit_freshdesk_escalation_duration_seconds"), "one duration observed")
	assert.Equal(t, 0.0, metric(t, reg, "opskit_freshdesk_escalations_in_flight"))
	assert.Equal(t, 1.0, metric(t, reg, "opskit_http_client_requests_total", "client", "freshdesk", "endpoint", "/api/v2/tickets/:id", "method", "GET", "code", "200"))
	assert.Equal(t, 1.0, metric(t, reg, "opskit_http_client_requests_total", "client", "freshdesk", "endpoint", "attachment", "code", "200"), "the download is one series, whatever its URL")
	assert.Positive(t, metric(t, reg, "opskit_http_client_rate_limit_remaining", "client", "freshdesk"), "from Freshdesk's X-RateLimit-Remaining")
	assert.Equal(t, 3.0, metric(t, reg, "opskit_http_client_requests_total", "client", "gitlab", "endpoint", "/api/v4/projects/:id/issues/:id/notes", "method", "POST", "code", "201"))

	_, err = e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.Equal(t, 1.0, metric(t, reg, esc(), "result", "unchanged"), "pressing the button again")
	assert.Equal(t, 3.0, metric(t, reg, "opskit_freshdesk_notes_copied_total"), "nothing copied twice")

	e.fd.AddConversation(e.ticket, freshdesktest.Conversation{Body: "<p>still broken</p>", Incoming: true, UserID: 48000000001,
		Attachments: []freshdesktest.Attachment{{Name: "again.log", Content: []byte("boom")}}})
	_, err = e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.Equal(t, 1.0, metric(t, reg, esc(), "result", "updated"))
	assert.Equal(t, 4.0, metric(t, reg, "opskit_freshdesk_notes_copied_total"))
	assert.Equal(t, 2.0, metric(t, reg, "opskit_freshdesk_attachments_copied_total"))

	_, err = e.b.Escalate(t.Context(), 999)
	require.ErrorIs(t, err, freshdesk.ErrNotFound)
	assert.Equal(t, 1.0, metric(t, reg, esc(), "result", "not_found"))

	e.fd.RateLimitNext(1, 10*time.Minute) // longer than the client waits
	_, err = e.b.Escalate(t.Context(), e.ticket)
	var rl *freshdesk.RateLimitError
	require.ErrorAs(t, err, &rl)
	assert.Equal(t, 1.0, metric(t, reg, esc(), "result", "rate_limited"))
	assert.Equal(t, 1.0, metric(t, reg, "opskit_http_client_rate_limited_total", "client", "freshdesk", "endpoint", "/api/v2/tickets/:id"), "the 429 is counted by the transport")
	assert.Equal(t, 600.0, metric(t, reg, "opskit_http_client_rate_limit_wait_seconds_total", "client", "freshdesk"))

	e.fd.FailNext(1, http.StatusInternalServerError)
	_, err = e.b.Escalate(t.Context(), e.ticket)
	require.Error(t, err)
	assert.Equal(t, 1.0, metric(t, reg, esc(), "result", "error"))
	assert.Equal(t, 6.0, metric(t, reg, "opskit_freshdesk_escalation_duration_seconds"), "every escalation timed")
	assert.Equal(t, 0.0, metric(t, reg, "opskit_freshdesk_attachments_linked_total"))

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint")
	_, err = freshdesk.NewMetrics(reg)
	assert.Error(t, err, "registering twice on one registry")
	_, err = freshdesk.NewMetrics(nil)
	assert.Error(t, err)
}

// TestMetricsAttachmentLinked: a file over the upload limit is linked, and
// counted as such, not as copied.
func TestMetricsAttachmentLinked(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOpt{reg: reg, bridge: func(c *freshdesk.BridgeConfig) { c.MaxUploadSize = 100 }})
	_, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.Equal(t, 1.0, metric(t, reg, "opskit_freshdesk_attachments_linked_total"))
	assert.Equal(t, 0.0, metric(t, reg, "opskit_freshdesk_attachments_copied_total"))
}

// TestMetricsSync drives the sync back through GitLab webhooks and checks
// opskit_freshdesk_sync_actions_total by kind and result.
func TestMetricsSync(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newSyncEnvOpt(t, envOpt{reg: reg, bridge: func(c *freshdesk.BridgeConfig) {
		c.Sync = freshdesk.SyncConfig{CloseStatus: freshdesk.StatusResolved}
	}})
	esc, err := s.b.Escalate(t.Context(), s.ticket)
	require.NoError(t, err)
	s.settle(t)
	sync := func(kind, result string) float64 {
		return metric(t, reg, "opskit_freshdesk_sync_actions_total", "kind", kind, "result", result)
	}
	bridgeNotes := sync("note", "ignored") // the bridge's own notes from the escalation

	for _, body := range []string{"/customer The fix ships in 5.2.1", "Found it: NULL region in the join."} {
		_, _, err := s.dev.Notes.CreateIssueNote(project, esc.IssueIID, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr(body)})
		require.NoError(t, err)
	}
	s.settle(t)
	assert.Equal(t, 1.0, sync("note", "synced"), "the /customer comment reached the ticket")
	assert.Equal(t, bridgeNotes+1, sync("note", "ignored"), "the plain comment stayed in GitLab")

	_, _, err = s.dev.Issues.UpdateIssue(project, esc.IssueIID, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")})
	require.NoError(t, err)
	s.settle(t)
	assert.Equal(t, 1.0, sync("close", "synced"))
	assert.Equal(t, 0.0, sync("reopen", "synced"))

	s.redeliverAll(t)
	assert.Equal(t, 1.0, sync("close", "duplicate"), "a redelivered close changes nothing")
	assert.Equal(t, 1.0, sync("note", "duplicate"), "a redelivered comment changes nothing")
	assert.Equal(t, 1.0, sync("close", "synced"))
	assert.Equal(t, 0.0, sync("close", "error"))

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint")
}

// TestEscalationSpans: one escalation is one span with the Freshdesk and
// GitLab API calls as its children, all in one trace.
func TestEscalationSpans(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	e := newEnv(t, envOpt{tp: tp})
	esc, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)

	spans := sr.Ended()
	var root sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == "freshdesk.Escalate" {
			require.Nil(t, root, "one escalation span")
			root = s
		}
	}
	require.NotNil(t, root, "an escalation span")
	assert.False(t, root.Parent().IsValid(), "the escalation is the root")
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range root.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	assert.Equal(t, e.ticket, attrs["freshdesk.ticket_id"].AsInt64())
	assert.Equal(t, esc.IssueURL, attrs["gitlab.issue_url"].AsString())
	assert.Equal(t, "created", attrs["opskit.result"].AsString())
	assert.Equal(t, int64(3), attrs["freshdesk.notes_added"].AsInt64())
	assert.Equal(t, codes.Unset, root.Status().Code)

	var children []string
	for _, s := range spans {
		if s == root {
			continue
		}
		assert.Equal(t, root.SpanContext().TraceID(), s.SpanContext().TraceID(), "span %s in the escalation's trace", s.Name())
		assert.Equal(t, root.SpanContext().SpanID(), s.Parent().SpanID(), "span %s is a child of the escalation", s.Name())
		children = append(children, s.Name())
	}
	slices.Sort(children)
	want := []string{
		"GET /api/v2/agents/:id",                    // the author of the private note
		"GET /api/v2/tickets/:id",                   // the ticket
		"GET /api/v2/tickets/:id/conversations",     // its conversations
		"GET /api/v4/projects/:id/issues",           // is there an issue already?
		"GET /api/v4/projects/:id/issues/:id/notes", // which conversations are copied?
		"GET /api/v4/user",                          // the bridge's own user
		"GET attachment",                            // the screenshot's download
		"POST /api/v2/tickets/:id/notes",            // the link-back note
		"POST /api/v4/projects/:id/issues",          // the issue
		"POST /api/v4/projects/:id/issues/:id/notes",
		"POST /api/v4/projects/:id/issues/:id/notes",
		"POST /api/v4/projects/:id/issues/:id/notes", // one note per conversation
		"POST /api/v4/projects/:id/uploads",          // the screenshot's upload
		"PUT /api/v2/tickets/:id",                    // the custom field
	}
	assert.Equal(t, want, children, "the escalation's API calls:\n%s", strings.Join(children, "\n"))

	// A failed escalation's span says so.
	_, err = e.b.Escalate(t.Context(), 999)
	require.Error(t, err)
	last := sr.Ended()[len(sr.Ended())-1]
	assert.Equal(t, "freshdesk.Escalate", last.Name())
	assert.Equal(t, codes.Error, last.Status().Code)
}

// TestEndpoint: Freshdesk's pre-signed S3 attachment URLs (as in the
// recorded payloads) carry IDs where a REST template expects names, so they
// are one series; API paths are templates.
func TestEndpoint(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"https://s3.amazonaws.com/cdn.freshdesk.com/data/helpdesk/attachments/production/4800123456/original/error-dialog.png?X-Amz-Signature=abc", "attachment"},
		{"https://acme.freshdesk.com/api/v2/tickets/4711/conversations?per_page=100&page=2", "/api/v2/tickets/:id/conversations"},
		{"https://acme.freshdesk.com/api/v2/agents/48000000101", "/api/v2/agents/:id"},
	} {
		r, err := http.NewRequest(http.MethodGet, tt.url, nil)
		require.NoError(t, err)
		assert.Equal(t, tt.want, freshdesk.Endpoint(r), tt.url)
	}
}
