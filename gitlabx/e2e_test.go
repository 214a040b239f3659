package gitlabx_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// TestBotsOnGitLabFiredWebhooks lets the fake GitLab fire its own webhooks
// (as a developer opens and merges an MR, and as the bots write notes and
// labels): the bots do their job once, and the events their own writes
// cause are not delivered back (recursion detection), so nothing loops.
func TestBotsOnGitLabFiredWebhooks(t *testing.T) {
	srv := board(t, "", 1)
	srv.SetFile(proj, "main", "VERSION", []byte("1.0.0\n"))
	srv.SetFile(proj, "1-fix", "VERSION", []byte("1.0.1\n"))

	h := newHooks(t, gitlabx.HooksConfig{BotUserID: srv.BotUser().ID})
	check := newCheck(t, srv, gitlabx.VersionCheckConfig{})
	check.Register(h)
	newMachine(t, srv, gitlabx.LabelMachineConfig{ReopenOnMerge: true}).Register(h)
	finished := make(chan string, 8) // registered last: the bots are done with the delivery
	h.OnMergeRequest(func(_ context.Context, e *gitlab.MergeEvent) error {
		finished <- "mr " + e.ObjectAttributes.Action
		return nil
	})
	h.OnIssue(func(_ context.Context, e *gitlab.IssueEvent) error {
		finished <- "issue " + e.ObjectAttributes.Action
		return nil
	})
	hs := httptest.NewServer(h)
	defer hs.Close()
	srv.AddHook(proj, gitlabtest.Hook{URL: hs.URL, Options: gitlabtest.WebhookOptions{Token: hookToken}})

	wait := func(want ...string) {
		t.Helper()
		var got []string
		for range want {
			select {
			case s := <-finished:
				got = append(got, s)
			case <-t.Context().Done():
				t.Fatalf("waiting for %v, got %v", want, got)
			}
		}
		assert.ElementsMatch(t, want, got, "deliveries handled")
		require.NoError(t, srv.WaitDeliveries(t.Context()), "the bots' own events delivered")
	}

	dev := srv.ClientFor(gitlabtest.DeveloperToken)
	mr, _, err := dev.MergeRequests.CreateMergeRequest(proj, &gitlab.CreateMergeRequestOptions{
		Title: gitlab.Ptr("Fix login"), Description: gitlab.Ptr("Closes #1"),
		SourceBranch: gitlab.Ptr("1-fix"), TargetBranch: gitlab.Ptr("main"),
	})
	require.NoError(t, err)
	wait("mr open")
	labels, _ := issueLabels(t, srv, 1)
	assert.Equal(t, []string{"In Review"}, labels)
	require.Len(t, versionNotes(srv, mr.IID), 1)

	_, _, err = dev.MergeRequests.AcceptMergeRequest(proj, mr.IID, nil)
	require.NoError(t, err)
	wait("mr merge", "issue close")
	labels, state := issueLabels(t, srv, 1)
	assert.Equal(t, "opened", state, "reopened after GitLab closed it on merge")
	assert.Equal(t, []string{"To Test"}, labels)
	assert.Len(t, versionNotes(srv, mr.IID), 1)

	for _, d := range srv.Deliveries() {
		t.Logf("delivery %s: %d", d.Event, d.Status)
		assert.Equal(t, http.StatusAccepted, d.Status, "only the developer's events reach the bots")
	}
	require.NoError(t, h.Shutdown(t.Context()))
	st := srv.HookStatuses(proj)
	require.Len(t, st, 1)
	// The bots echo X-Gitlab-Event-UUID on their API calls, so GitLab's
	// recursion detection keeps their own writes from coming back.
	assert.Positive(t, st[0].Blocked, "the bots' writes were not delivered back to them")
	assert.Equal(t, gitlabtest.HookExecutable, st[0].State, "the hook was never disabled")
	assert.Zero(t, st[0].RecentFailures)
	select {
	case s := <-finished:
		t.Errorf("unexpected extra delivery handled: %s", s)
	default:
	}
}
