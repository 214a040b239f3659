package gitlabx_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// TestTruth15BusyReceiverNeverDisabled: the fake GitLab delivers its own
// webhooks, with GitLab's auto-disable rules (4 failures in a row disable a
// hook), to a Hooks whose in-memory queue is full (one worker, stuck; two
// queued) and then shutting down and shut down. Every delivery is answered
// 2xx, so the hook never collects a failure: a flood beyond the queue, a
// Shutdown in the middle of a flood and deliveries after it cost nothing
// but the dropped deliveries (counted, and logged for redelivery).
func TestTruth15BusyReceiverNeverDisabled(t *testing.T) {
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: proj, Path: "ops/app"})
	is := srv.AddIssue(proj, gitlabtest.Issue{Title: "flood", AuthorID: srv.Developer().ID})

	h := newHooks(t, gitlabx.HooksConfig{Workers: 1, QueueSize: 2, BotUserID: srv.BotUser().ID})
	release := make(chan struct{})
	h.OnNote(func(ctx context.Context, _ gitlabx.NoteEvent) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	hs := httptest.NewServer(h)
	defer hs.Close()
	srv.AddHook(proj, gitlabtest.Hook{URL: hs.URL, Options: gitlabtest.WebhookOptions{Token: hookToken}})

	dev := srv.ClientFor(gitlabtest.DeveloperToken)
	flood := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			_, _, err := dev.Notes.CreateIssueNote(proj, is.IID, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr(fmt.Sprintf("comment %d", i))})
			require.NoError(t, err)
		}
		require.NoError(t, srv.WaitDeliveries(t.Context()))
	}
	check := func(phase string, deliveries int) {
		t.Helper()
		got := srv.Deliveries()
		require.Equal(t, deliveries, len(got), "%s: deliveries (GitLab skips a disabled hook)", phase)
		for i, d := range got {
			require.NoError(t, d.Err, "%s: delivery %d", phase, i)
			assert.Equal(t, http.StatusAccepted, d.Status, "%s: delivery %d", phase, i)
		}
		st := srv.HookStatuses(proj)
		require.Len(t, st, 1)
		assert.Equal(t, gitlabtest.HookExecutable, st[0].State, "%s: hook state", phase)
		assert.Zero(t, st[0].RecentFailures, "%s: failures GitLab counted toward disabling the hook", phase)
		assert.Zero(t, st[0].Skipped, "%s: events GitLab did not deliver", phase)
	}

	// A flood while the one worker is stuck: 1 running, 2 queued, the rest
	// dropped with a 202.
	flood(0, 40)
	check("full queue", 40)
	s := h.Stats()
	assert.Equal(t, int64(40), s.Accepted+s.Dropped)
	assert.Equal(t, int64(37), s.Dropped, "dropped beyond the queue")

	// Shutdown in the middle of a flood: it waits for the stuck worker
	// while more events arrive, then finishes once the worker is free.
	done := make(chan error, 1)
	go func() { done <- h.Shutdown(context.Background()) }()
	flood(40, 20)
	close(release)
	require.NoError(t, <-done)
	flood(60, 20) // after Shutdown returned
	check("shutdown", 80)
	s = h.Stats()
	assert.Equal(t, int64(80), s.Accepted+s.Dropped)
	assert.Equal(t, int64(3), s.Done, "handled: the one running and the two queued")
}
