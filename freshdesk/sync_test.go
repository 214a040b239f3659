package freshdesk_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// syncEnv is an env whose bridge hears the project's webhooks.
type syncEnv struct {
	*env
	hooks *gitlabx.Hooks
	url   string
	dev   *gitlab.Client
}

func newSyncEnv(t *testing.T, sync freshdesk.SyncConfig) *syncEnv {
	t.Helper()
	return newSyncEnvOpt(t, envOpt{bridge: func(c *freshdesk.BridgeConfig) { c.Sync = sync }})
}

// newSyncEnvOpt is newSyncEnv with every option of newEnv.
func newSyncEnvOpt(t *testing.T, o envOpt) *syncEnv {
	t.Helper()
	e := newEnv(t, o)
	h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: "hook-token", RetryBackoff: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	e.b.Register(h)
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	e.gl.AddHook(project, gitlabtest.Hook{URL: hs.URL, Options: gitlabtest.WebhookOptions{Token: "hook-token"}})
	return &syncEnv{env: e, hooks: h, url: hs.URL, dev: e.gl.ClientFor(gitlabtest.DeveloperToken)}
}

// settle waits until GitLab delivered every webhook and the bridge handled
// all of them.
func (s *syncEnv) settle(t *testing.T) {
	t.Helper()
	require.NoError(t, s.gl.WaitDeliveries(t.Context()))
	require.Eventually(t, func() bool {
		st := s.hooks.Stats()
		return st.Done == st.Accepted
	}, 10*time.Second, time.Millisecond)
	assert.Zero(t, s.hooks.Stats().Failed, "no handler failed")
}

// redeliverAll sends every webhook GitLab delivered so far once more, with
// fresh Idempotency-Keys (as after a restart of the receiver, whose dedup
// memory is gone), and waits for the bridge to handle them.
func (s *syncEnv) redeliverAll(t *testing.T) {
	t.Helper()
	for _, d := range s.gl.Deliveries() {
		resp, err := gitlabtest.SendWebhook(t.Context(), s.url, d.Event, d.Body, gitlabtest.WebhookOptions{Token: "hook-token"})
		require.NoError(t, err)
		resp.Body.Close()
	}
	s.settle(t)
}

// syncNotes are the conversations the bridge left on the ticket for GitLab
// events (not the link-back note).
func (s *syncEnv) syncNotes() []freshdesktest.Conversation {
	var out []freshdesktest.Conversation
	for _, c := range s.fd.Conversations(s.ticket) {
		if strings.Contains(c.Body, "ref "+freshdesk.SyncRefPrefix) {
			out = append(out, c)
		}
	}
	return out
}

func (s *syncEnv) status(t *testing.T) int {
	tk, ok := s.fd.Ticket(s.ticket)
	require.True(t, ok)
	return tk.Status
}

func TestSyncRoundTrip(t *testing.T) {
	s := newSyncEnv(t, freshdesk.SyncConfig{CloseStatus: freshdesk.StatusResolved})
	esc, err := s.b.Escalate(t.Context(), s.ticket)
	require.NoError(t, err)
	iid := esc.IssueIID
	s.settle(t)
	assert.Empty(t, s.syncNotes(), "the bridge's own notes in GitLab are not copied back")

	// Developers comment: only the marked, non-internal comment reaches the ticket.
	for _, o := range []*gitlab.CreateIssueNoteOptions{
		{Body: gitlab.Ptr("Found it: NULL region in the join.")},
		{Body: gitlab.Ptr("/customer The fix ships in 5.2.1;\n<script>alert(1)</script> keep the workaround until then.")},
		{Body: gitlab.Ptr("/customer internal: blame the intern"), Internal: gitlab.Ptr(true)},
		{Body: gitlab.Ptr("/customers are waiting, hurry")},
		{Body: gitlab.Ptr("/customer")},
	} {
		_, _, err := s.dev.Notes.CreateIssueNote(project, iid, o)
		require.NoError(t, err)
	}
	s.settle(t)
	notes := s.syncNotes()
	require.Len(t, notes, 1, "one comment copied")
	assert.True(t, notes[0].Private, "copied as a private note")
	assert.Contains(t, notes[0].Body, "The fix ships in 5.2.1;<br>&lt;script&gt;alert(1)&lt;/script&gt; keep the workaround")
	assert.NotContains(t, notes[0].Body, "/customer")
	assert.Contains(t, notes[0].Body, esc.IssueURL)

	// Close: a private note and the status Resolved.
	_, _, err = s.dev.Issues.UpdateIssue(project, iid, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")})
	require.NoError(t, err)
	s.settle(t)
	notes = s.syncNotes()
	require.Len(t, notes, 2)
	assert.True(t, notes[1].Private)
	assert.Contains(t, notes[1].Body, "was closed by")
	assert.Contains(t, notes[1].Body, esc.IssueURL)
	assert.Equal(t, freshdesk.StatusResolved, s.status(t))

	// Reopen: a note and the status back to Open.
	_, _, err = s.dev.Issues.UpdateIssue(project, iid, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("reopen")})
	require.NoError(t, err)
	s.settle(t)
	notes = s.syncNotes()
	require.Len(t, notes, 3)
	assert.Contains(t, notes[2].Body, "was reopened by")
	assert.Equal(t, freshdesk.StatusOpen, s.status(t))

	// Redeliveries of every event change nothing, and nothing loops.
	before := s.fd.Conversations(s.ticket)
	glNotes := len(s.gl.Notes(project, gitlabtest.IssueNoteable, iid))
	s.redeliverAll(t)
	assert.Equal(t, before, s.fd.Conversations(s.ticket), "redelivered events leave the ticket as it was")
	assert.Equal(t, freshdesk.StatusOpen, s.status(t), "a redelivered close does not resolve the reopened ticket")
	again, err := s.b.Escalate(t.Context(), s.ticket)
	require.NoError(t, err)
	assert.Zero(t, again.NotesAdded, "the bridge's sync notes are not copied back to GitLab")
	s.settle(t)
	assert.Len(t, s.gl.Notes(project, gitlabtest.IssueNoteable, iid), glNotes)
	assert.Equal(t, before, s.fd.Conversations(s.ticket))
}

func TestSyncCloseAsPublicReply(t *testing.T) {
	s := newSyncEnv(t, freshdesk.SyncConfig{
		CloseReply:    true,
		CloseTemplate: `Hello, {{.Title}} is fixed (ref #{{.TicketID}}).`,
		CloseStatus:   freshdesk.StatusClosed,
	})
	esc, err := s.b.Escalate(t.Context(), s.ticket)
	require.NoError(t, err)
	_, _, err = s.dev.Issues.UpdateIssue(project, esc.IssueIID, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")})
	require.NoError(t, err)
	s.settle(t)
	notes := s.syncNotes()
	require.Len(t, notes, 1)
	assert.False(t, notes[0].Private, "a public reply")
	assert.False(t, notes[0].Incoming)
	assert.Equal(t, freshdesktest.SupportEmail, notes[0].FromEmail)
	assert.Contains(t, notes[0].Body, "Hello, Nightly export fails with HTTP 500 after upgrade to 5.2 is fixed (ref #4711).")
	assert.Equal(t, freshdesk.StatusClosed, s.status(t))

	s.redeliverAll(t)
	assert.Len(t, s.syncNotes(), 1, "the reply is sent once")
	again, err := s.b.Escalate(t.Context(), s.ticket)
	require.NoError(t, err)
	assert.Zero(t, again.NotesAdded, "the bridge's reply is not copied to GitLab")
}

// TestSyncPlantedMarkerIssue: an issue someone else opened with a ticket's
// marker does not talk to that ticket, whatever happens to it.
func TestSyncPlantedMarkerIssue(t *testing.T) {
	s := newSyncEnv(t, freshdesk.SyncConfig{CloseStatus: freshdesk.StatusResolved})
	planted, _, err := s.dev.Issues.CreateIssue(project, &gitlab.CreateIssueOptions{
		Title: gitlab.Ptr("planted"), Description: gitlab.Ptr(freshdesk.TicketMarker(s.ticket) + "\nhello"),
	})
	require.NoError(t, err)
	_, _, err = s.dev.Notes.CreateIssueNote(project, planted.IID, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("/customer please click https://phish.example/")})
	require.NoError(t, err)
	_, _, err = s.dev.Issues.UpdateIssue(project, planted.IID, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")})
	require.NoError(t, err)
	s.settle(t)
	assert.Empty(t, s.syncNotes(), "nothing reaches the ticket")
	assert.Equal(t, freshdesk.StatusOpen, s.status(t))

	// Even once the ticket is escalated (to the bridge's own issue), the
	// planted issue stays mute.
	_, err = s.b.Escalate(t.Context(), s.ticket)
	require.NoError(t, err)
	_, _, err = s.dev.Issues.UpdateIssue(project, planted.IID, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("reopen")})
	require.NoError(t, err)
	_, _, err = s.dev.Issues.UpdateIssue(project, planted.IID, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")})
	require.NoError(t, err)
	s.settle(t)
	assert.Empty(t, s.syncNotes())
	assert.Equal(t, freshdesk.StatusOpen, s.status(t))
}

// TestSyncIssueNamedByCustomField: an issue the bridge did not write still
// syncs when the ticket's custom field names it (for example after the
// bridge's token changed hands).
func TestSyncIssueNamedByCustomField(t *testing.T) {
	s := newSyncEnv(t, freshdesk.SyncConfig{})
	is, _, err := s.dev.Issues.CreateIssue(project, &gitlab.CreateIssueOptions{
		Title: gitlab.Ptr("moved"), Description: gitlab.Ptr(freshdesk.TicketMarker(s.ticket)),
	})
	require.NoError(t, err)
	_, err = s.fd.Client().UpdateCustomFields(t.Context(), s.ticket, map[string]any{"cf_gitlab_issue": is.WebURL})
	require.NoError(t, err)
	_, _, err = s.dev.Issues.UpdateIssue(project, is.IID, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")})
	require.NoError(t, err)
	s.settle(t)
	require.Len(t, s.syncNotes(), 1)
	assert.Equal(t, freshdesk.StatusOpen, s.status(t), "no CloseStatus configured: the status is left alone")
}

func TestSyncConfigTemplates(t *testing.T) {
	fd, gl := freshdesktest.NewServer(t), gitlabtest.NewServer(t)
	for _, sync := range []freshdesk.SyncConfig{
		{CloseTemplate: "{{.Nope}}"},
		{ReopenTemplate: "{{if}}"},
	} {
		_, err := freshdesk.NewBridge(freshdesk.BridgeConfig{Freshdesk: fd.Client(), GitLab: gl.Client(), Project: project,
			FreshdeskURL: "https://acme.freshdesk.com", Sync: sync})
		assert.ErrorIs(t, err, freshdesk.ErrConfig, "NewBridge with %+v", sync)
	}
}
